"""Vosk adapter: the primary engine whenever a Vosk model for the locale is installed.

Only this module knows Vosk's CamelCase methods, its JSON result strings and
``[unk]``. Rejection: when the model knows ``[unk]`` the grammar gets it as a
garbage path; when it does not (the small Korean model, for one), a second
grammar recogniser hears the same frames with the locale's garbage words added
(``grammars/<locale>/_garbage.yaml``: common words that are not answers). The
answer stands only if that check pass heard the same answer or nothing; any
other words mean the caller said something else. (Mixing the garbage words into
the one grammar was measured too: short answers such as 네 then come back empty.)
A free-form pass beside the grammar was measured and rejected: on short answers
the small models' free-form text rarely agrees with correct grammar results.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any, Final

import numpy as np

from ivr.errors import EngineError, ModelError
from ivr.speech.asr.base import Engine, Hypothesis, Recognizer
from ivr.speech.audio import StreamResampler
from ivr.speech.grammar import Grammar

log = logging.getLogger(__name__)

MODEL_RATE: Final = 16000
UNK: Final = "[unk]"

_models: dict[Path, Any] = {}
_models_lock = threading.Lock()


def load_model(path: Path) -> Any:
    """Load a Vosk model once per process and share it."""
    import vosk

    path = path.resolve()
    with _models_lock:
        if path not in _models:
            vosk.SetLogLevel(-1)
            if not (path / "am" / "final.mdl").exists():
                raise ModelError(f"not a Vosk model: {path} has no am/final.mdl")
            try:
                _models[path] = vosk.Model(str(path))
            except Exception as exc:  # vosk raises a bare Exception on load failure
                raise ModelError(f"Vosk could not load the model at {path}: {exc}") from exc
        return _models[path]


class VoskEngine(Engine):
    name = "vosk"

    def __init__(self, model_path: Path, locale: str) -> None:
        self.locale = locale
        self.model_path = model_path
        self.model = load_model(model_path)
        self.has_unk = self.model.vosk_model_find_word(UNK) >= 0
        if not self.has_unk:
            log.info(
                "Vosk model %s has no [unk]: garbage words reject out-of-grammar speech", model_path
            )

    def unknown_words(self, words: set[str]) -> list[str]:
        return sorted(w for w in words if self.model.vosk_model_find_word(w) < 0)

    def recognizer(
        self, grammar: Grammar | None, sample_rate: int, context: dict[str, Any] | None = None
    ) -> Recognizer:
        return VoskRecognizer(self, grammar, sample_rate)

    def _kaldi(self, grammar: Grammar | None, garbage: bool = False) -> Any:
        import vosk

        if grammar is None:
            rec = vosk.KaldiRecognizer(self.model, MODEL_RATE)
        else:
            phrases = grammar.vosk_phrases()
            if self.has_unk:
                phrases.append(UNK)
            if garbage:
                own = set(phrases)
                phrases += [
                    w
                    for w in grammar.garbage
                    if w not in own and self.model.vosk_model_find_word(w) >= 0
                ]
            rec = vosk.KaldiRecognizer(
                self.model, MODEL_RATE, json.dumps(phrases, ensure_ascii=False)
            )
        rec.SetWords(True)
        return rec


def _result_text(result_json: str) -> tuple[str, float]:
    data = json.loads(result_json)
    words = data.get("result") or []
    confidence = float(np.mean([w.get("conf", 1.0) for w in words])) if words else 0.0
    return data.get("text", ""), confidence


class VoskRecognizer(Recognizer):
    def __init__(self, engine: VoskEngine, grammar: Grammar | None, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._engine = engine
        self._grammar = grammar
        self._resampler = StreamResampler(sample_rate, MODEL_RATE)
        try:
            self._rec = engine._kaldi(grammar)
        except Exception as exc:  # vosk raises bare exceptions
            raise EngineError(f"Vosk could not build a recogniser: {exc}") from exc
        self._check = (
            engine._kaldi(grammar, garbage=True)
            if grammar is not None and grammar.garbage and not engine.has_unk
            else None
        )
        self._check_texts: list[str] = []
        self._texts: list[str] = []
        self._confidences: list[float] = []
        self._done = False

    def accept(self, frame: np.ndarray) -> None:
        if self._done:
            raise EngineError("recogniser already finished")
        data = self._resampler.process(frame).tobytes()
        if not data:
            return
        if self._check is not None and self._check.AcceptWaveform(data):
            self._check_texts.append(_result_text(self._check.Result())[0])
        if self._rec.AcceptWaveform(data):
            text, conf = _result_text(self._rec.Result())
            if text:
                self._texts.append(text)
                self._confidences.append(conf)

    def partial(self) -> str:
        part = json.loads(self._rec.PartialResult()).get("partial", "")
        return " ".join([*self._texts, part]).strip()

    def finish(self) -> Hypothesis:
        if self._done:
            raise EngineError("recogniser already finished")
        self._done = True
        tail = self._resampler.process(np.zeros(0, dtype=np.int16), last=True).tobytes()
        if tail:
            self._rec.AcceptWaveform(tail)
        text, conf = _result_text(self._rec.FinalResult())
        if text:
            self._texts.append(text)
            self._confidences.append(conf)
        heard = " ".join(self._texts).strip()
        confidence = float(np.mean(self._confidences)) if self._confidences else 0.0
        if UNK in heard.split():
            confidence = 0.0
        if self._check is not None:
            if tail:
                self._check.AcceptWaveform(tail)
            self._check_texts.append(_result_text(self._check.FinalResult())[0])
            check = " ".join(t for t in self._check_texts if t).strip()
            if check and check != heard:
                log.debug("check pass heard %r, grammar pass %r: no match", check, heard)
                confidence = 0.0
        return Hypothesis(heard, confidence, self._engine.name)

    def close(self) -> None:
        self._done = True
