"""PocketSphinx adapter: the embedded English default (model shipped in the package).

Rejection: a JSGF decoder cannot say "none of these", so beside it runs an
all-phone decoder on the same frames. The confidence is how well the phones
of the grammar's answer agree with the phones heard without any grammar
(1 - phone error rate / 2, clamped): out-of-grammar speech forced onto a
phrase disagrees strongly with what was actually said. The all-phone decoder costs three
times the grammar's own; where Whisper judges the answer anyway (``Engine.unscored``),
it is not run, nor made (README, *Recognition*).

Memory: the whole pronunciation dictionary costs about 20 MB in each decoder that loads
it. One decoder per process holds it (the lexicon); the decoders that hear callers start
from an empty dictionary and are given the pronunciations of each grammar's words when
they first meet the grammar, so a pair of decoders costs about 8 MB, not 50. A process
makes at most ``decoders`` pairs (``[asr] grammar_decoders``): a caller who starts speaking
while every pair is hearing someone keeps their audio until a pair comes free and is then
decoded from the start (the decoders run several times faster than speech), so memory stays
bounded however many callers speak at once.

Narrowband input (8 kHz telephone audio) is upsampled with the filtered
resampler to the model's 16 kHz; see the README for the measurement behind it.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Final

import numpy as np

from ivr.errors import EngineError
from ivr.speech.asr.base import Engine, Hypothesis, Recognizer, shown
from ivr.speech.audio import StreamResampler
from ivr.speech.grammar import Grammar

log = logging.getLogger(__name__)

MODEL_RATE: Final = 16000
WIP_DEFAULT: Final = 0.65
# A stronger word insertion penalty for digit strings of open length: with 0.65 long numbers
# gain inserted digits; exact-length strings and phrases decode best with the default.
WIP_DIGITS: Final = 1e-3
FREE_FORM_POOL: Final = 2  # language-model decoders per process (feedback dictation)
TRIM_FRAME: Final = 160  # 10 ms at 16 kHz
TRIM_MARGIN_FRAMES: Final = 5
FILLERS: Final = frozenset({"<s>", "</s>", "<sil>", "(NULL)", "SIL", "[NOISE]"})
EMPTY_DICT: Final = Path(__file__).resolve().parents[2] / "data" / "sphinx-empty.dict"
MAX_VARIANTS: Final = 10  # alternative pronunciations of one word: "either", "either(2)", ...
DECODERS: Final = 8  # decoder pairs per process (one core decodes about ten callers live)
WAIT_FOR_DECODER_SEC: Final = 30.0


def phone_error_rate(reference: list[str], heard: list[str]) -> float:
    """Levenshtein distance between phone strings, over the reference length."""
    if not reference:
        return float(len(heard) > 0) * 2.0
    row = list(range(len(heard) + 1))
    for i, ref in enumerate(reference, 1):
        prev, row[0] = row[0], i
        for j, got in enumerate(heard, 1):
            cur = row[j]
            row[j] = min(row[j] + 1, row[j - 1] + 1, prev + (ref != got))
            prev = cur
    return row[-1] / len(reference)


def _trim_to_voice(pcm: bytes) -> bytes:
    """The 16 kHz audio from a little before the first voiced frame to a little after the last."""
    samples = np.frombuffer(pcm, dtype=np.int16)
    n = len(samples) // TRIM_FRAME
    if n == 0:
        return b""
    frames = samples[: n * TRIM_FRAME].reshape(n, TRIM_FRAME).astype(np.float64)
    energy = np.sqrt((frames**2).mean(axis=1))
    floor = float(np.percentile(energy, 10))
    voiced = np.nonzero(energy > max(floor * 4, 100.0))[0]
    if len(voiced) == 0:
        return b""
    first = max(0, voiced[0] - TRIM_MARGIN_FRAMES)
    last = min(n, voiced[-1] + 1 + TRIM_MARGIN_FRAMES)
    return frames[first:last].astype(np.int16).tobytes()


def confidence_from_per(per: float) -> float:
    return float(min(1.0, max(0.0, 1.0 - per / 2.0)))


class _DecoderPair:
    """A grammar decoder and, once an utterance is to be scored, an all-phone decoder that
    hears the same frames."""

    def __init__(self, wip: float = WIP_DEFAULT) -> None:
        from pocketsphinx import Config, Decoder

        self.wip = wip
        try:
            self.grammar = Decoder(
                Config(
                    lm=None, samprate=MODEL_RATE, loglevel="FATAL", wip=wip, dict=str(EMPTY_DICT)
                )
            )
        except RuntimeError as exc:
            raise EngineError(f"PocketSphinx failed to start: {exc}") from exc
        self.phones: Any = None  # made for the first utterance to be scored
        self.searches: set[str] = set()
        self.words: set[str] = set()  # the words (all their pronunciations) it was given

    def _phones(self) -> Any:
        if self.phones is None:
            from pocketsphinx import Config, Decoder, get_model_path

            try:
                self.phones = Decoder(
                    Config(
                        lm=None,
                        allphone=get_model_path("en-us/en-us-phone.lm.bin"),
                        samprate=MODEL_RATE,
                        loglevel="FATAL",
                        dict=str(EMPTY_DICT),
                    )
                )
            except RuntimeError as exc:
                raise EngineError(f"PocketSphinx's phone decoder failed to start: {exc}") from exc
        return self.phones

    def decoders(self, scored: bool) -> tuple[Any, ...]:
        """The decoders that hear an utterance: the grammar's, and the phones' if scored."""
        return (self.grammar, self._phones()) if scored else (self.grammar,)

    def learn(self, pronunciations: dict[str, str]) -> None:
        """Words the grammar decoder will need, named as the dictionary names them."""
        for name, phones in pronunciations.items():
            self.grammar.add_word(name, phones, False)

    def start(self, cmn: str | None, scored: bool) -> None:
        """Begin an utterance from the given cepstral mean (see ``SphinxEngine.cmn``). Both
        decoders compute the same features, so one mean serves both."""
        for decoder in self.decoders(scored):
            if cmn is not None:
                decoder.set_cmn(cmn)
            decoder.start_utt()

    def hear(self, data: bytes, scored: bool) -> None:
        for decoder in self.decoders(scored):
            decoder.process_raw(data)

    def end(self, scored: bool) -> None:
        for decoder in self.decoders(scored):
            decoder.end_utt()

    def cmn(self) -> str:
        return str(self.grammar.get_cmn(True))


class SphinxEngine(Engine):
    name = "pocketsphinx"

    def __init__(self, locale: str = "en-US", decoders: int = DECODERS) -> None:
        if locale != "en-US":
            raise EngineError(f"the bundled PocketSphinx model is en-US only, got {locale!r}")
        if decoders < 1:
            raise EngineError(f"PocketSphinx needs at least one pair of decoders, got {decoders}")
        self.locale = locale
        self.decoders = decoders
        self._pools: dict[float, list[_DecoderPair]] = {WIP_DEFAULT: [], WIP_DIGITS: []}
        self._lock = threading.Lock()
        self._freed = threading.Condition(self._lock)
        self._lexicon = self._load_lexicon()
        first = _DecoderPair()
        self._pools[WIP_DEFAULT].append(first)
        self._made = 1  # pairs that exist, idle or hearing a caller (at most ``decoders``)
        # Live cepstral mean normalisation needs a mean to start from. Each utterance starts
        # from the last mean of its own call (the session passes it in ``context``), and a
        # call's first utterance from the model's own initial mean: never from a mean learned
        # on other calls, so the first caller after start is heard like the hundredth.
        self.cmn: str = first.cmn()
        self._free: list[Any] = []
        self._free_slots = threading.BoundedSemaphore(FREE_FORM_POOL)

    def pairs(self) -> int:
        """How many decoder pairs exist now (idle or hearing a caller)."""
        with self._lock:
            return self._made

    def _claim(self, wip: float) -> _DecoderPair | bool:
        """Under the lock: an idle pair of this weight, True if a new one may be made, or
        False while every pair is hearing a caller."""
        if self._pools[wip]:
            return self._pools[wip].pop()
        if self._made >= self.decoders:
            other = self._pools[WIP_DIGITS if wip == WIP_DEFAULT else WIP_DEFAULT]
            if not other:
                return False
            other.pop()  # an idle pair of the other weight makes room for one of this
            self._made -= 1
        self._made += 1
        return True

    def _made_for(self, claim: _DecoderPair | bool, wip: float) -> _DecoderPair:
        if isinstance(claim, _DecoderPair):
            return claim
        try:
            return _DecoderPair(wip)
        except EngineError:
            with self._lock:
                self._made -= 1
                self._freed.notify()
            raise

    def _try_take(self, wip: float) -> _DecoderPair | None:
        """A pair of decoders at once, or None while all ``decoders`` are hearing callers."""
        with self._lock:
            claim = self._claim(wip)
        return None if claim is False else self._made_for(claim, wip)

    def _take(self, wip: float, timeout: float = WAIT_FOR_DECODER_SEC) -> _DecoderPair:
        """A pair of decoders, waiting for one to come free."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while (claim := self._claim(wip)) is False:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise EngineError(f"no grammar decoder came free in {timeout:.0f} s")
                self._freed.wait(left)
        return self._made_for(claim, wip)

    def _give(self, pair: _DecoderPair) -> None:
        with self._lock:
            self._pools[pair.wip].append(pair)
            self._freed.notify()

    @staticmethod
    def _load_lexicon() -> Any:
        """A decoder that never hears anything: it holds the whole dictionary, for lookups."""
        from pocketsphinx import Config, Decoder

        try:
            return Decoder(Config(lm=None, samprate=MODEL_RATE, loglevel="FATAL"))
        except RuntimeError as exc:
            raise EngineError(f"PocketSphinx failed to load its dictionary: {exc}") from exc

    def unknown_words(self, words: set[str]) -> list[str]:
        with self._lock:
            return sorted(w for w in words if self._lexicon.lookup_word(w) is None)

    def pronunciations(self, words: set[str]) -> dict[str, str]:
        """Every pronunciation of each known word, by dictionary name ("either(2)")."""
        found: dict[str, str] = {}
        with self._lock:
            for word in sorted(words):
                for n in range(1, MAX_VARIANTS + 1):
                    name = word if n == 1 else f"{word}({n})"
                    phones = self._lexicon.lookup_word(name)
                    if phones is None:
                        break
                    found[name] = phones
        return found

    def recognizer(
        self, grammar: Grammar | None, sample_rate: int, context: dict[str, Any] | None = None
    ) -> Recognizer:
        if grammar is None:
            return SphinxFreeForm(self, sample_rate, context)
        return SphinxRecognizer(self, grammar, sample_rate, context)

    def unscored(
        self, grammar: Grammar, sample_rate: int, context: dict[str, Any] | None = None
    ) -> Recognizer:
        return SphinxRecognizer(self, grammar, sample_rate, context, score=False)

    def _take_free(self) -> Any:
        """A language-model decoder from the bounded pool (blocks while all are busy)."""
        from pocketsphinx import Config, Decoder

        self._free_slots.acquire()
        with self._lock:
            if self._free:
                return self._free.pop()
        try:
            return Decoder(Config(samprate=MODEL_RATE, loglevel="FATAL"))
        except RuntimeError as exc:
            self._free_slots.release()
            raise EngineError(f"PocketSphinx failed to load its language model: {exc}") from exc

    def _give_free(self, decoder: Any) -> None:
        with self._lock:
            self._free.append(decoder)
        self._free_slots.release()


class SphinxFreeForm(Recognizer):
    """Free-form dictation with the bundled language model (feedback): no grammar, no rejection.

    Language-model decoders are large and slow (about 0.3 x real time), so a process keeps a
    small bounded pool of them; a call waiting for one simply decodes a little later.
    The first pass starts from the call's cepstral mean; the words are decoded once more
    from the recording's own mean, which recovers many words on a long recording.
    """

    def __init__(
        self, engine: SphinxEngine, sample_rate: int, context: dict[str, Any] | None = None
    ) -> None:
        self.sample_rate = sample_rate
        self._engine = engine
        self._decoder: Any = engine._take_free()
        self._resampler = StreamResampler(sample_rate, MODEL_RATE)
        self._audio: list[bytes] = []
        cmn = (context or {}).get("sphinx_cmn", engine.cmn)
        if cmn is not None:
            self._decoder.set_cmn(cmn)
        self._decoder.start_utt()

    def accept(self, frame: np.ndarray) -> None:
        if self._decoder is None:
            raise EngineError("recogniser already finished")
        data = self._resampler.process(frame).tobytes()
        if data:
            self._decoder.process_raw(data)
            self._audio.append(data)

    def partial(self) -> str:
        if self._decoder is None:
            return ""
        hyp = self._decoder.hyp()
        return hyp.hypstr if hyp is not None else ""

    def finish(self) -> Hypothesis:
        decoder, self._decoder = self._decoder, None
        if decoder is None:
            raise EngineError("recogniser already finished")
        try:
            tail = self._resampler.process(np.zeros(0, dtype=np.int16), last=True).tobytes()
            if tail:
                decoder.process_raw(tail)
                self._audio.append(tail)
            decoder.end_utt()
            trimmed = _trim_to_voice(b"".join(self._audio))
            if trimmed:
                decoder.set_cmn(decoder.get_cmn(True))
                decoder.start_utt()
                decoder.process_raw(trimmed)
                decoder.end_utt()
            hyp = decoder.hyp()
            text = hyp.hypstr if hyp is not None else ""
            # the decoder's posterior is not calibrated for free text: report it as unknown-ish
            return Hypothesis(text, 1.0 if text else 0.0, self._engine.name)
        finally:
            self._engine._give_free(decoder)

    def close(self) -> None:
        decoder, self._decoder = self._decoder, None
        if decoder is not None:
            try:
                decoder.end_utt()
            except RuntimeError:
                log.debug("end_utt on an idle decoder")
            self._engine._give_free(decoder)


class SphinxRecognizer(Recognizer):
    """One utterance heard through a pair of decoders: the grammar's and the phones'
    (``score``; without it, the grammar's alone, and the hypothesis is unscored).

    While every pair of the process is hearing another caller, the audio waits here (and
    ``partial()`` is empty); the first pair to come free hears it from the start.
    """

    def __init__(
        self,
        engine: SphinxEngine,
        grammar: Grammar,
        sample_rate: int,
        context: dict[str, Any] | None = None,
        *,
        score: bool = True,
    ) -> None:
        self.sample_rate = sample_rate
        self._score = score
        self._context = context if context is not None else {}
        self._engine = engine
        self._grammar = grammar
        self._wip = (
            WIP_DIGITS
            if grammar.digits is not None and grammar.digits.min != grammar.digits.max
            else WIP_DEFAULT
        )
        self._key = f"{grammar.locale}/{grammar.name}/{hash(grammar.jsgf())}"
        self._first = "sphinx_cmn" not in self._context
        self._resampler = StreamResampler(sample_rate, MODEL_RATE)
        self._audio: list[bytes] = []
        self._pair: _DecoderPair | None = None
        self._done = False
        pair = engine._try_take(self._wip)
        if pair is not None:
            self._begin(pair)

    def _begin(self, pair: _DecoderPair) -> None:
        """Start hearing with ``pair``, from the first frame the utterance kept."""
        try:
            if self._key not in pair.searches:
                new = self._grammar.words() - pair.words
                pair.learn(self._engine.pronunciations(new))
                pair.words |= new
                pair.grammar.add_jsgf_string(self._key, self._grammar.jsgf())
                pair.searches.add(self._key)
            pair.grammar.activate_search(self._key)
            pair.start(self._context.get("sphinx_cmn", self._engine.cmn), self._score)
        except (RuntimeError, EngineError) as exc:
            self._engine._give(pair)
            self._done = True
            if isinstance(exc, EngineError):
                raise  # the phone decoder could not start: its own error, not the grammar's
            raise EngineError(
                f"PocketSphinx rejected grammar {self._grammar.name!r}: {exc}"
            ) from exc
        self._pair = pair
        for chunk in self._audio:  # what came while every pair was hearing someone else
            pair.hear(chunk, self._score)

    def ready(self) -> bool:
        """A pair of decoders is hearing this utterance (one free now is taken)."""
        if self._pair is None and not self._done:
            pair = self._engine._try_take(self._wip)
            if pair is not None:
                self._begin(pair)
        return self._pair is not None

    def accept(self, frame: np.ndarray) -> None:
        if self._done:
            raise EngineError("recogniser already finished")
        data = self._resampler.process(frame).tobytes()
        if data:
            self._audio.append(data)
        if self._pair is None:
            pair = self._engine._try_take(self._wip)
            if pair is not None:
                self._begin(pair)  # hears the kept audio, this frame's included
        elif data:
            self._pair.hear(data, self._score)

    def partial(self) -> str:
        if self._pair is None:
            return ""
        hyp = self._pair.grammar.hyp()
        return hyp.hypstr if hyp is not None else ""

    def finish(self) -> Hypothesis:
        if self._done:
            raise EngineError("recogniser already finished")
        if self._pair is None:
            self._begin(self._engine._take(self._wip))  # the caller waits for a free pair
        pair = self._pair
        assert pair is not None
        self._pair = None
        self._done = True
        scored = self._score
        try:
            tail = self._resampler.process(np.zeros(0, dtype=np.int16), last=True).tobytes()
            if tail:
                pair.hear(tail, scored)
            pair.end(scored)
            cmn = pair.cmn()
            if self._first and self._audio:
                # A call's first answer was decoded from a borrowed mean; decode it once more
                # from its own mean (a second pass costs a few ms for a short answer).
                pair.start(cmn, scored)
                for chunk in self._audio:
                    pair.hear(chunk, scored)
                pair.end(scored)
                cmn = pair.cmn()
            hyp = pair.grammar.hyp()
            text = hyp.hypstr if hyp is not None else ""
            if self._grammar.interpret(text) is None and self._audio:
                # No whole answer: decode once more from the words alone. Silence and noise
                # around them pull the live cepstral mean away from the voice.
                trimmed = _trim_to_voice(b"".join(self._audio))
                if trimmed:
                    pair.start(cmn, scored)
                    pair.hear(trimmed, scored)
                    pair.end(scored)
                    again = pair.grammar.hyp()
                    retry = again.hypstr if again is not None else ""
                    log.debug(
                        "second chance: %s -> %s",
                        shown(text, self._grammar),
                        shown(retry, self._grammar),
                    )
                    text = retry
            self._context["sphinx_cmn"] = cmn
            if not text.strip():
                return Hypothesis("", 0.0, self._engine.name, scored)
            if not scored:
                return Hypothesis(text, 0.0, self._engine.name, scored=False)
            words = [s.word for s in (pair.grammar.seg() or []) if s.word not in FILLERS]
            expected: list[str] = []
            for word in words:
                if word.startswith("+"):
                    continue
                pron = pair.grammar.lookup_word(word)
                expected.extend((pron or "").split())
            heard = [
                s.word
                for s in (pair.phones.seg() or [])
                if s.word not in FILLERS and not s.word.startswith("+")
            ]
            confidence = confidence_from_per(phone_error_rate(expected, heard))
            if not self._grammar.says_digits:  # the phones of a number would spell it
                log.debug("phones %s | %s", " ".join(expected), " ".join(heard))
            return Hypothesis(text, confidence, self._engine.name)
        finally:
            self._engine._give(pair)

    def close(self) -> None:
        self._done = True
        pair, self._pair = self._pair, None
        if pair is not None:
            for decoder in pair.decoders(self._score):
                try:
                    decoder.end_utt()
                except RuntimeError:
                    log.debug("end_utt on an idle decoder")
            self._engine._give(pair)
