"""Which recognisers serve which locale, loaded once per process and shared.

Per locale: a grammar decoder (Vosk when a Vosk model for the locale is installed,
else PocketSphinx's bundled model for en-US, in its own host processes) and, when a
Whisper model that hears the locale is installed, Whisper in the recognition worker pool.
The routes of ``[asr]`` decide which one hears each kind of ask (``ivr.speech.asr.routed``).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from ivr.config import Recognition, Settings
from ivr.errors import EngineError
from ivr.speech.asr.base import Engine
from ivr.speech.asr.pool import RecognitionPool, shared_pool
from ivr.speech.processes import default_workers

log = logging.getLogger(__name__)


class Engines:
    def __init__(
        self,
        models_dir: Path,
        *,
        grammars_dir: Path | None = None,
        bundled: bool = True,
        asr: Recognition | None = None,
        accept: float = 0.6,
        reject: float = 0.45,
    ) -> None:
        self.models_dir = models_dir
        self.grammars_dir = grammars_dir
        self.bundled = bundled
        self.asr = asr or Recognition()
        self.accept = accept
        self.reject = reject
        self._engines: dict[str, Engine | None] = {}
        self._lock = threading.Lock()
        self._pool: RecognitionPool | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Engines:
        return cls(
            settings.models_dir,
            grammars_dir=settings.grammars_dir,
            asr=settings.asr,
            accept=settings.confidence_accept,
            reject=settings.confidence_reject,
        )

    @property
    def pool(self) -> RecognitionPool:
        if self._pool is None:
            self._pool = shared_pool(None if self.asr.workers < 0 else self.asr.workers)
        return self._pool

    def vosk_model_for(self, locale: str) -> Path | None:
        from ivr.speech import models

        found = models.find_model(self.models_dir, locale)
        if found is not None:
            return found.path
        if self.bundled:
            return models.bundled_model_paths().get(locale)
        return None

    def whisper_model_for(self, locale: str) -> tuple[str, Path] | None:
        if not self.asr.whisper:
            return None
        from ivr.speech import whisper_models

        found = whisper_models.for_locale(self.models_dir, locale)
        if found is None or found.path is None:
            return None
        return found.model.name, found.path

    def _grammar_description(self, locale: str) -> str | None:
        path = self.vosk_model_for(locale)
        if path is not None:
            return f"vosk ({path})"
        if locale == "en-US":
            hosts = self.grammar_hosts()
            if hosts == 0:
                return "pocketsphinx (bundled en-US model)"
            return f"pocketsphinx (bundled en-US model, in {hosts} host processes)"
        return None

    def describe(self, locale: str) -> str:
        grammar = self._grammar_description(locale)
        whisper = self.whisper_model_for(locale)
        if grammar is None and whisper is None:
            return "none: keys only (install a Vosk or Whisper model with `ivr models install`)"
        if whisper is None:
            return f"{grammar} for every ask"
        from ivr.speech.asr.whisper_decode import WINDOW_SEC

        a = self.asr
        numbers = (
            f" (numbers over {a.number_window_sec:g} s first)"
            if a.number_window_sec < WINDOW_SEC
            else ""
        )
        if grammar is None:
            return f"{whisper[0]} for every ask{numbers}"
        quick = (
            f" (a quick opinion over {a.quick_opinion_sec:g} s first)"
            if a.phrases == "grammar+whisper" and a.quick_opinion_sec
            else ""
        )
        digits = f"{a.digits}{numbers if 'whisper' in a.digits else ''}"
        return (
            f"{grammar}; {whisper[0]} ({whisper[1]}); digits: {digits}, "
            f"yes/no and menus: {a.phrases}{quick}, feedback: {a.dictation}"
        )

    def _grammar_engine(self, locale: str) -> Engine | None:
        path = self.vosk_model_for(locale)
        if path is not None:
            from ivr.speech.asr.vosk import VoskEngine

            return VoskEngine(path, locale)
        if locale != "en-US":
            return None
        count = self.grammar_hosts()
        if count == 0:
            from ivr.speech.asr.sphinx import SphinxEngine

            return SphinxEngine(locale, decoders=self.asr.grammar_decoders)
        from ivr.speech.asr.hosted import HostedSphinxEngine
        from ivr.speech.asr.hosts import shared_hosts

        return HostedSphinxEngine(locale, shared_hosts(locale, count, self.asr.grammar_decoders))

    def grammar_hosts(self) -> int:
        """How many processes host PocketSphinx (0: it decodes in the calls' process)."""
        if self.asr.grammar_hosts >= 0:
            return self.asr.grammar_hosts
        return default_workers() if self.asr.workers < 0 else self.asr.workers

    def for_locale(self, locale: str) -> Engine | None:
        with self._lock:
            if locale in self._engines:
                return self._engines[locale]
            grammar_engine = self._grammar_engine(locale)
            whisper_engine = None
            found = self.whisper_model_for(locale)
            if found is not None:
                from ivr.speech.asr.whisper import WhisperEngine

                whisper_engine = WhisperEngine(
                    found[1],
                    locale,
                    pool=self.pool,
                    model_name=found[0],
                    threads=self.asr.threads_per_worker,
                    beam_size=self.asr.beam_size,
                    warm_prompt=self._example_digits(locale),
                    number_window_sec=self.asr.number_window_sec,
                )
            engine: Engine | None
            if grammar_engine is None and whisper_engine is None:
                log.warning("no speech recogniser for %s: keys only", locale)
                engine = None
            elif whisper_engine is None:
                engine = grammar_engine
            else:
                from ivr.speech.asr.routed import Route, RoutedEngine

                engine = RoutedEngine(
                    locale,
                    grammar_engine=grammar_engine,
                    whisper=whisper_engine,
                    digits=Route(self.asr.digits),
                    phrases=Route(self.asr.phrases),
                    dictation=Route(self.asr.dictation),
                    accept=self.accept,
                    reject=self.reject,
                    second_opinion_below=self.asr.second_opinion_below,
                    quick_window_sec=self.asr.quick_opinion_sec,
                )
            self._engines[locale] = engine
            return engine

    def _example_digits(self, locale: str) -> str | None:
        """The locale's example digit string (``_numbers.yaml``), to warm Whisper with."""
        if self.grammars_dir is None:
            return None
        from ivr.speech.understand import NumberWords

        return NumberWords.load(self.grammars_dir / locale / "_numbers.yaml").example or None

    def warm(self, locales: list[str]) -> None:
        """Build each locale's engines and load its Whisper model into every worker.

        Otherwise the first caller of a process waits for the loading (a second and more)
        on their first answer.
        """
        for locale in dict.fromkeys(locales):
            engine = self.for_locale(locale)
            if engine is not None:
                engine.warm()

    def require(self, locale: str) -> Engine:
        engine = self.for_locale(locale)
        if engine is None:
            raise EngineError(f"no speech recogniser for {locale}: {self.describe(locale)}")
        return engine

    def close(self) -> None:
        """Stop the recognition workers (the next utterance starts new ones). The grammar
        decoder's hosts are the process's, stopped at its exit."""
        if self._pool is not None:
            self._pool.close()
