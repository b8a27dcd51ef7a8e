"""Which recogniser serves which locale, loaded once per process and shared."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from ivr.errors import EngineError
from ivr.speech.asr.base import Engine

log = logging.getLogger(__name__)


class Engines:
    """Vosk when a Vosk model for the locale is installed; else PocketSphinx for en-US."""

    def __init__(self, models_dir: Path, *, bundled: bool = True) -> None:
        self.models_dir = models_dir
        self.bundled = bundled
        self._engines: dict[str, Engine | None] = {}
        self._lock = threading.Lock()

    def vosk_model_for(self, locale: str) -> Path | None:
        from ivr.speech import models

        found = models.find_model(self.models_dir, locale)
        if found is not None:
            return found.path
        if self.bundled:
            return models.bundled_model_paths().get(locale)
        return None

    def describe(self, locale: str) -> str:
        path = self.vosk_model_for(locale)
        if path is not None:
            return f"vosk ({path})"
        if locale == "en-US":
            return "pocketsphinx (bundled en-US model)"
        return "none: keys only (install a Vosk model with `ivr models install`)"

    def for_locale(self, locale: str) -> Engine | None:
        with self._lock:
            if locale in self._engines:
                return self._engines[locale]
            engine: Engine | None
            path = self.vosk_model_for(locale)
            if path is not None:
                from ivr.speech.asr.vosk import VoskEngine

                engine = VoskEngine(path, locale)
            elif locale == "en-US":
                from ivr.speech.asr.sphinx import SphinxEngine

                engine = SphinxEngine(locale)
            else:
                log.warning("no speech recogniser for %s: keys only", locale)
                engine = None
            self._engines[locale] = engine
            return engine

    def require(self, locale: str) -> Engine:
        engine = self.for_locale(locale)
        if engine is None:
            raise EngineError(f"no speech recogniser for {locale}: {self.describe(locale)}")
        return engine
