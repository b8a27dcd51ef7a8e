"""Whisper (faster-whisper on CTranslate2) behind the Recognizer interface.

Whisper transcribes rather than choosing among a grammar's phrases, so each ask
steers it with a prompt listing what the ask expects (the grammar's phrases, or the
digit words), and what it writes is mapped onto the grammar afterwards
(``ivr.speech.understand``): text that maps to no value is no match.

Whisper also writes text where nobody spoke ("Thank you.", "you", "six, six,
six" on silence, noise, tones or keypad beeps). Only audio the endpointer took
for speech and in which Silero VAD finds a voice reaches it, and a decode is
dropped when the model itself says there
was no speech (no-speech probability over 0.6 with an average log-probability
under -1) or when the text repeats itself (compression ratio over 2.4); the
grammar match does the rest. Decoding runs in the recognition worker processes
(``ivr.speech.asr.pool``); a call holds only its utterance's audio.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import logging
import math
import re
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from ivr.errors import EngineError
from ivr.speech.asr.base import Engine, Hypothesis, Recognizer, shown
from ivr.speech.asr.choices import (
    UNPROMPTED_TOKENS,
    Weighed,
    choices_for,
    choose,
    needs_weighing,
    outlasts,
    said_more,
    weigh,
)
from ivr.speech.asr.pool import RecognitionPool
from ivr.speech.audio import resample
from ivr.speech.dtmf import keys_in
from ivr.speech.grammar import COMMAND_PREFIX, Grammar, normalize
from ivr.speech.understand import bare_answer, is_hanzi, syllables
from ivr.speech.vad import voiced_span

log = logging.getLogger(__name__)

WHISPER_RATE: Final = 16000
NO_SPEECH_PROB: Final = 0.6
NO_SPEECH_LOGPROB: Final = -1.0
MAX_COMPRESSION: Final = 2.4
MAX_PROMPT_CHARS: Final = 600
MIN_AUDIO_MS: Final = 100
MAX_WORD_RUN: Final = 3  # "no, no, no" is a caller; a fourth "no" is Whisper looping
COMMAND_CONFIDENCE: Final = 0.68  # a global command needs average log-probability over about -1
# commands that take the caller away (to a person, to the menu): that bar always
LEAVING_COMMANDS: Final = frozenset({COMMAND_PREFIX + "agent", COMMAND_PREFIX + "main_menu"})
# the beam's next hypothesis may answer when the best does not (WhisperEngine._understood)
ALTERNATIVE_MARGIN: Final = 0.8
ALTERNATIVE_FLOOR: Final = -1.3
ALTERNATIVE_NO_SPEECH: Final = 0.5
# ... and writes about the syllables the best one wrote: Mandarin writes one character a
# syllable, and a next guess shorter by more (好 for 今天 去 很好) is another utterance
ALTERNATIVE_DROPPED_SYLLABLES: Final = 1

EDGE_SEC: Final = 0.3
CHOSEN_CONFIDENCE: Final = 0.75  # a phrase chosen by its fit: accepted, and read back as usual
GUESS_THREADS: Final = 8  # early decodes only start on an idle worker: few at once
# low dither, not digital silence, before and after the utterance: measured on single digits
# cut tight, it turns about one miss in four into a hit
_EDGE: Final = (
    np.random.default_rng(0).standard_normal(int(EDGE_SEC * WHISPER_RATE)) * 5e-4
).astype(np.float32)

_models: dict[tuple[str, int], Any] = {}
_models_lock = threading.Lock()


@dataclass(frozen=True)
class Decoded:
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    alternatives: tuple[tuple[str, float], ...] = ()  # (text, average log-probability)
    weighed: Weighed | None = None  # the ask's phrases laid over the audio (choices.py)
    voiced_sec: float = 0.0  # how long the voice lasted, as Silero VAD found it
    unprompted: str | None = None  # decoded again without the prompt (choices.said_more)

    @property
    def invented(self) -> bool:
        """The model's own signs that it wrote text where nobody spoke."""
        silent = self.no_speech_prob > NO_SPEECH_PROB and self.avg_logprob < NO_SPEECH_LOGPROB
        return silent or self.compression_ratio > MAX_COMPRESSION

    @property
    def confidence(self) -> float:
        """In [0.5, 1] for a decode that passed the checks above: never below the reject band.

        Whisper's log-probabilities on one short word are low even when it is right; the
        invention checks and the grammar match are what reject, not this number.
        """
        return confidence_of(self.text, self.avg_logprob)


def confidence_of(text: str, avg_logprob: float) -> float:
    """``Decoded.confidence`` for any hypothesis of the beam."""
    return 0.0 if not text else 0.5 + 0.5 * min(1.0, math.exp(avg_logprob))


def _model(path: str, threads: int) -> Any:
    with _models_lock:
        key = (path, threads)
        if key not in _models:
            from faster_whisper import WhisperModel

            _models[key] = WhisperModel(
                path, device="cpu", compute_type="int8", cpu_threads=threads
            )
        return _models[key]


def load(path: str, threads: int, language: str, prompt: str | None, beam_size: int) -> bool:
    """Load a model into this process and decode once as an ask would (a worker warming up).

    The first encode and the first beam search of a fresh model allocate their buffers and
    cost several times a later one; a first beam search alone took about 100 MB more
    (measured through SIP). Done here, with the engine's beam and a prompt as long as an
    ask's, before calls come, the first caller's answer is not the slow one, and a worker's
    memory is what it holds when it starts.
    """
    from faster_whisper.audio import pad_or_trim

    model = _model(path, threads)
    features = pad_or_trim(model.feature_extractor(_EDGE)[:, :-1])
    _generate(model, model.encode(features), language, prompt, beam_size)
    return True


def _generate(
    model: Any,
    encoded: Any,
    language: str,
    prompt: str | None,
    beam_size: int,
    max_length: int | None = None,
) -> tuple[list[tuple[str, float]], float]:
    """The beam's finished hypotheses, best first, each with its average log-probability
    (per token, end of text counted, as faster-whisper reports it), and the no-speech
    probability. ``max_length``: tokens at most (the model's own limit by default)."""
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_suppressed_tokens

    tokenizer = Tokenizer(
        model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language
    )
    previous = tokenizer.encode(" " + prompt.strip()) if prompt else []
    result = model.model.generate(
        encoded,
        [model.get_prompt(tokenizer, previous, without_timestamps=True)],
        beam_size=beam_size,
        num_hypotheses=beam_size,
        length_penalty=1.0,
        max_length=max_length or model.max_length,
        return_scores=True,
        return_no_speech_prob=True,
        suppress_blank=True,
        suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
    )[0]
    hypotheses: list[tuple[str, float]] = []
    for ids, score in zip(result.sequences_ids, result.scores, strict=True):
        text = tokenizer.decode(ids).strip()
        if text and text not in (t for t, _ in hypotheses):
            hypotheses.append((text, score * len(ids) / (len(ids) + 1)))
    return hypotheses, result.no_speech_prob


def decode(
    path: str,
    threads: int,
    audio: np.ndarray,
    language: str,
    prompt: str | None,
    beam_size: int,
    to_voice: bool = False,
    choices: tuple[str, ...] = (),
) -> Decoded:
    """One utterance (at most 30 s), 16 kHz float32 mono, decoded at temperature 0.

    The beam's other finished hypotheses come back as ``alternatives``: when the best one
    is no answer to the ask, the next one that is may be (``WhisperEngine.transcribe``).
    Each of ``choices`` (an ask's phrases) comes back weighed against the same encoding.
    """
    span = voiced_span(audio)
    if span is None:
        return Decoded("", -10.0, 1.0, 0.0)
    voiced_sec = (span[1] - span[0]) / WHISPER_RATE
    if to_voice:
        # a digit string: the voice and 0.3 s around it. Over a second of silence around a
        # number (the endpointer waits 1.5 s after a digit) made Whisper write a digit more
        # ("... eight zero zero zero zero"); on phrases, cutting changed words both ways.
        margin = int(EDGE_SEC * WHISPER_RATE)
        start = max(0, span[0] - margin)
        audio = audio[start : span[1] + margin]
        span = (span[0] - start, span[1] - start)
    from faster_whisper.audio import pad_or_trim

    model = _model(path, threads)
    features = pad_or_trim(model.feature_extractor(audio)[:, :-1])
    encoded = model.encode(features)
    hypotheses, no_speech = _generate(model, encoded, language, prompt, beam_size)
    best = hypotheses[0][0] if hypotheses else ""
    weighed = unprompted = None
    if choices and needs_weighing(best, choices):
        weighed = weigh(model, encoded, language, choices, span[1])
    if choices and (weighed is not None or syllables(best) == 1):
        # a one-syllable answer, written or to be chosen: what is heard without the prompt
        found, _ = _generate(model, encoded, language, None, 1, UNPROMPTED_TOKENS)
        unprompted = found[0][0] if found else ""
    if not hypotheses:
        return Decoded(
            "", -10.0, 1.0, 0.0, weighed=weighed, voiced_sec=voiced_sec, unprompted=unprompted
        )
    text, avg = hypotheses[0]
    return Decoded(
        text=text,
        avg_logprob=avg,
        no_speech_prob=no_speech,
        compression_ratio=compression_ratio(text),
        alternatives=tuple(hypotheses[1:]),
        weighed=weighed,
        voiced_sec=voiced_sec,
        unprompted=unprompted,
    )


def compression_ratio(text: str) -> float:
    """How well the text compresses: over 2.4, Whisper is repeating itself."""
    raw = text.encode("utf-8")
    return len(raw) / len(zlib.compress(raw)) if raw else 0.0


def grammar_prompt(grammar: Grammar | None, locale: str) -> str | None:
    """What the ask expects, written out: Whisper leans towards words it has just seen."""
    if grammar is None:
        return None
    chinese = locale.startswith("zh")
    sep = "，" if chinese else ", "  # noqa: RUF001 - Mandarin comma
    words: list[str] = []
    if grammar.digits is not None and grammar.digits.max > 1 and grammar.numbers.example:
        return grammar.numbers.example  # several digits: an example, written as wanted
    if grammar.digits is not None:
        seen: set[str] = set()
        for word, digit in grammar.digit_words.items():
            if digit not in seen:  # one word per digit: "zero, one, two, ..."
                seen.add(digit)
                words.append(word)
    else:
        # The ask's own answers, then (English) the global commands. A digit ask's prompt
        # holds digits alone: command phrases in it cost digits. Whisper base copies
        # Mandarin commands from its prompt when unsure ("主菜单" for 是的): answers only.
        own = [p for p, v in grammar.phrases.items() if not v.startswith(COMMAND_PREFIX)]
        words += own if chinese else own + [p for p in grammar.phrases if p not in own]
    if chinese:
        words = ["".join(w.split()) for w in words]
        if grammar.digits is not None:
            # digits written together, as a number is: shown a comma list, Whisper base wrote
            # a lone recorded digit as a list again (三 twice) or not at all, 5 of 10 right
            # over the phone; written together, 7 of 10 (9 of 10 at 16 kHz). Words stay a
            # comma list: apart by spaces, 是 came back as 是 是 是 and was dropped.
            sep = ""
    text = sep.join(dict.fromkeys(words))
    return (text[:MAX_PROMPT_CHARS] + ("。" if chinese else ".")) if text else None


def command_in_doubt(value: str, confidence: float, grammar: Grammar, prompt: str | None) -> bool:
    """A global command Whisper wrote too unsure to act on.

    Unsure, Whisper falls back on words of its prompt, and the English prompts list the
    global commands: a command written there needs average log-probability over about -1
    (the 30-call load test caught "agent", at -1.6, for "ticket status"). So does every
    command that takes the caller away, a person or the menu, wherever it was written. A
    command its prompt did not hold ("slower" asked of a Mandarin menu, whose prompt
    holds the menu's answers alone) is Whisper's own reading of the audio: the ordinary
    checks and bar apply, as for any answer.
    """
    if not value.startswith(COMMAND_PREFIX) or confidence >= COMMAND_CONFIDENCE:
        return False
    if value in LEAVING_COMMANDS or not prompt:
        return value in LEAVING_COMMANDS
    written = normalize(prompt).replace(" ", "")
    return any(
        phrase.replace(" ", "") in written for phrase, v in grammar.phrases.items() if v == value
    )


def collapse_repeats(text: str) -> str:
    """One word said once, written several times ("repeat, repeat", "no, no, no"): once.

    Whisper repeats a short answer it is unsure of. Not for digit asks: "five five" is two
    digits.
    """
    words = normalize(text).split()
    if any(is_hanzi(w) for w in words):
        return text  # Mandarin doubles characters in words of their own (谢谢, 看看)
    out: list[str] = []
    for word in words:
        if not out or out[-1] != word:
            out.append(word)
    return " ".join(out)


def loops(text: str, digit_words: dict[str, str] | None = None) -> bool:
    """One word written more than three times running: Whisper looping on a sound, not speech.

    Measured: keypad tones in line noise at a yes/no ask came back "No, no, no, no, no, no,
    no,". A caller says "no, no" or "no, no, no"; for digits "five five five five" is a
    number, so digit asks do not ask this, and asks whose answers may hold digits (a
    read-back's corrections) count only the words that are no digits (``digit_words``).
    """
    run = 1
    words = [
        w
        for w in normalize(text).split()
        if not digit_words or (w not in digit_words and not w.isdigit())
    ]
    for before, word in itertools.pairwise(words):
        run = run + 1 if word == before else 1
        if run > MAX_WORD_RUN:
            return True
    return False


def echoes_prompt(text: str, prompt: str | None, *, whole_items_too: bool = False) -> bool:
    """Whisper, unsure, copied a piece of its prompt that breaks off inside an item.

    An item whole is a real answer (a caller says a choice the prompt lists); a run of
    the prompt that starts or stops mid-item ("查询工" of 查询工单) is not. With
    ``whole_items_too`` (the example digit string of a digit ask) any run of two words or
    more is a copy.
    """
    if not prompt or not text:
        return False
    items = [normalize(i).split() for i in re.split(r"[,，.。]", prompt) if normalize(i)]  # noqa: RUF001
    said = normalize(text).split()
    flat = [t for item in items for t in item]
    if len(said) < 2:
        return False
    if whole_items_too:  # the example digit string: no piece of it is anybody's answer
        return any(flat[i : i + len(said)] == said for i in range(len(flat) - len(said) + 1))
    edges = {0, *itertools.accumulate(len(i) for i in items)}
    found = [i for i in range(len(flat) - len(said) + 1) if flat[i : i + len(said)] == said]
    return bool(found) and all(i not in edges or i + len(said) not in edges for i in found)


def _said_more(grammar: Grammar, answer: str, result: Decoded) -> bool:
    """``choices.said_more`` on the decode's text without the prompt, logged when it holds."""
    if not said_more(grammar, answer, result.unprompted):
        return False
    log.debug(
        "whisper: a longer word without the prompt (%s)", shown(result.unprompted or "", grammar)
    )
    return True


class WhisperEngine(Engine):
    """A Whisper model for one locale, decoded in the shared worker pool."""

    def __init__(
        self,
        path: Path,
        locale: str,
        *,
        pool: RecognitionPool,
        model_name: str = "whisper",
        threads: int = 1,
        beam_size: int = 5,
        warm_prompt: str | None = None,
    ) -> None:
        """``warm_prompt``: what a worker's first decode is steered with (``load``), the
        locale's example digit string; without one it decodes unprompted."""
        self.path = str(path)
        self.locale = locale
        self.language = locale.split("-", 1)[0].lower()
        self.name = model_name
        self.pool = pool
        self.threads = threads
        self.beam_size = beam_size
        self.warm_prompt = warm_prompt
        self._guess_lock = threading.Lock()
        self._guess_threads: concurrent.futures.ThreadPoolExecutor | None = None

    def warm(self) -> None:
        self.pool.warm(
            load, self.path, self.threads, self.language, self.warm_prompt, self.beam_size
        )

    def guesses(self) -> concurrent.futures.ThreadPoolExecutor:
        """Threads that wait on the workers for decodes begun before a turn ended."""
        with self._guess_lock:
            if self._guess_threads is None:
                self._guess_threads = concurrent.futures.ThreadPoolExecutor(
                    max_workers=GUESS_THREADS, thread_name_prefix="whisper-guess"
                )
            return self._guess_threads

    def recognizer(
        self, grammar: Grammar | None, sample_rate: int, context: dict[str, Any] | None = None
    ) -> Recognizer:
        return WhisperRecognizer(self, grammar, sample_rate)

    def unknown_words(self, words: set[str]) -> list[str]:
        return []  # open vocabulary: any word can be written

    def transcribe(self, audio: np.ndarray, rate: int, grammar: Grammar | None) -> Hypothesis:
        """Decode int16 audio at ``rate``; an invented or empty decode comes back empty."""
        if len(audio) * 1000 < MIN_AUDIO_MS * rate:
            return Hypothesis("", 0.0, self.name)
        if keys_in(audio, rate):  # keys, which the channel takes: Whisper writes words for them
            log.debug("whisper: keypad tones, no words")
            return Hypothesis("", 0.0, self.name)
        pcm = resample(audio.astype(np.int16), rate, WHISPER_RATE).astype(np.float32) / 32768.0
        pcm = np.concatenate([_EDGE, pcm, _EDGE])  # a word cut tight (barge-in) still has edges
        prompt = grammar_prompt(grammar, self.locale)
        digits = grammar is not None and grammar.digits is not None
        choices = choices_for(grammar, self.locale)
        result: Decoded = self.pool.run(
            decode,
            self.path,
            self.threads,
            pcm,
            self.language,
            prompt,
            self.beam_size,
            digits,
            choices,
        )
        example = grammar is not None and bool(prompt) and prompt == grammar.numbers.example
        numbers = grammar is not None and grammar.says_digits
        digit_words = grammar.digit_words if grammar is not None and numbers else None
        if (
            (not digits and loops(result.text, digit_words))
            or result.invented
            or echoes_prompt(
                result.text if numbers else collapse_repeats(result.text),
                prompt,
                whole_items_too=example,
            )
        ):
            log.debug("whisper: dropped a decode (%s)", shown(result.text, grammar))
            return self._chosen(result, grammar, "") or Hypothesis("", 0.0, self.name)
        # at a Mandarin phrase ask the fit tells near readings apart (choices.py); the beam's
        # next guess there answered 24 recorded words that were no answer, and none that was
        text, avg = self._understood(result, prompt, grammar, beam=not choices)
        chosen = self._chosen(result, grammar, text)
        if chosen is not None:
            return chosen
        if (
            choices
            and grammar is not None
            and grammar.interpret(text) is not None
            and outlasts(grammar, text, result.voiced_sec)
        ):
            log.debug("whisper: an answer too short for the voice (%s)", shown(text, grammar))
            return Hypothesis("", 0.0, self.name)
        if grammar is not None and _said_more(grammar, text, result):
            return Hypothesis("", 0.0, self.name)
        if grammar is not None and grammar.extension is not None and grammar.extension.example:
            text, avg = self._extended(pcm, grammar, grammar.extension.example, text, avg)
        meant = grammar.interpret(text) if grammar is not None else None
        confidence = confidence_of(text, avg)
        if (
            meant is not None
            and grammar is not None
            and command_in_doubt(meant.value, confidence, grammar, prompt)
        ):
            log.debug("whisper: unsure command dropped (avg log-probability %.2f)", avg)
            return Hypothesis("", 0.0, self.name)
        return Hypothesis(text, confidence, self.name)

    def _chosen(self, result: Decoded, grammar: Grammar | None, text: str) -> Hypothesis | None:
        """The ask's phrase the audio fits best, where the free text cannot answer (choices.py)."""
        if result.weighed is None or grammar is None:
            return None
        phrase = choose(result.weighed, grammar, text, result.voiced_sec)
        if phrase is None:
            return None
        if _said_more(grammar, phrase, result):
            return Hypothesis("", 0.0, self.name)
        log.debug("whisper: chose a phrase by its fit (%s)", shown(phrase, grammar))
        return Hypothesis(phrase, CHOSEN_CONFIDENCE, self.name)

    def _extended(
        self, pcm: np.ndarray, grammar: Grammar, example: str, text: str, avg: float
    ) -> tuple[str, float]:
        """More than a bare answer ("no, it ends in 8 0 0 0"): heard once more, steered by
        the extension's example.

        Whisper writes what its prompt lists: shown only "yes, no", it turns a correction's
        digits into words of no meaning ("it ends in eight near or near"); shown an example
        correction, it writes the digits (README, Recognition). A bare yes or no is decoded
        once, as before. The second decode's answer (or its beam's next one, nearly as
        likely) counts only when it is an extension answer and no copy of the example.
        """
        if not text or bare_answer(grammar, text) is not None:
            return text, avg
        # cut to the voice, as for a digit ask: silence after digits makes Whisper add one
        again: Decoded = self.pool.run(
            decode, self.path, self.threads, pcm, self.language, example, self.beam_size, True
        )
        if again.invented:
            return text, avg
        floor = max(again.avg_logprob - ALTERNATIVE_MARGIN, ALTERNATIVE_FLOOR)
        answers: list[tuple[str, float, bool]] = []  # (text, score, of a usual shape)
        for said, score in ((again.text, again.avg_logprob), *again.alternatives):
            if score < floor:
                break
            meant = grammar.interpret(said)
            if (
                meant is not None
                and meant.detail is not None
                and not echoes_prompt(said, example, whole_items_too=True)
            ):
                answers.append((said, score, not grammar.unusual(meant)))
        # the likeliest answer, unless it says a number again with a digit too many and a
        # nearly as likely one says it in the usual shape
        if answers:
            said, score, _ = min(answers, key=lambda a: not a[2])  # the first usual, else first
            log.debug("whisper: heard again with the example (%s)", shown(said, grammar))
            return said, score
        return text, avg

    @staticmethod
    def _understood(
        result: Decoded, prompt: str | None, grammar: Grammar | None, *, beam: bool = True
    ) -> tuple[str, float]:
        """The best hypothesis, or (``beam``) the beam's next one that answers the ask.

        Whisper's best guess at one short word is often a near-sounding word ("Bye" for
        "five", "Nice" for "nine", "New" for "zero"), with the answer a little lower in the
        same beam; a phone number's best guess may have a digit too many, and the next one
        the usual shape (the grammar's ``usual``). The next hypothesis that maps onto the
        grammar is taken when it is nearly as likely as the best (``ALTERNATIVE_MARGIN``),
        likely enough on its own (``ALTERNATIVE_FLOOR``), the model was sure somebody spoke,
        it drops no more than a syllable of the best one's Mandarin
        (``ALTERNATIVE_DROPPED_SYLLABLES``), and it is no global command: a person is never
        called for on a second guess.
        """
        digits = grammar is not None and grammar.says_digits
        best = result.text if digits else collapse_repeats(result.text)
        if grammar is None:
            return best, result.avg_logprob
        # an answer, unless it is a number of a shape such numbers seldom have (a phone number
        # with a digit too many): then a next guess of the usual shape is looked for
        heard = grammar.interpret(best)
        unusual = grammar.unusual(heard)
        if heard is not None and not unusual:
            return best, result.avg_logprob
        if not beam or result.no_speech_prob >= ALTERNATIVE_NO_SPEECH:
            return best, result.avg_logprob
        floor = max(result.avg_logprob - ALTERNATIVE_MARGIN, ALTERNATIVE_FLOOR)
        written = syllables(best)
        for text, avg in result.alternatives:
            if avg < floor:
                break  # the beam comes back best first
            if not digits and loops(text):
                continue
            said = text if digits else collapse_repeats(text)
            if syllables(said) < written - ALTERNATIVE_DROPPED_SYLLABLES:
                continue
            meant = bare_answer(grammar, said)
            if (
                meant is None
                or meant.is_command
                or (unusual and grammar.unusual(meant))
                or echoes_prompt(said, prompt, whole_items_too=prompt == grammar.numbers.example)
            ):
                continue
            if compression_ratio(said) > MAX_COMPRESSION:
                continue
            log.debug("whisper: the beam's next answer taken (avg log-probability %.2f)", avg)
            return said, avg
        return best, result.avg_logprob


class EarlyDecode:
    """A decode of an utterance begun while the caller is quiet, before the turn has ended.

    The endpointer waits a while after the last word before it ends the turn (1.5 s after
    digits, for slow speakers). ``start`` sends the audio so far to Whisper during that
    wait, only when a worker is free (under load it would take a worker from another
    caller's answer); ``drop`` forgets it when the caller speaks again.
    """

    def __init__(self, engine: WhisperEngine, grammar: Grammar | None, sample_rate: int) -> None:
        self.engine = engine
        self.grammar = grammar
        self.sample_rate = sample_rate
        self._future: concurrent.futures.Future[Hypothesis] | None = None

    def start(self, frames: list[np.ndarray], *, wait: bool, eager: bool = False) -> None:
        if self._future is not None or not frames:
            return
        if self.grammar is not None and self.grammar.extension is not None:
            # not at a read-back: a correction's digits ("no, it ends in 8 0 0 0") heard
            # with 0.4 s of silence after them came back with a digit too many
            return
        pool = self.engine.pool
        if not wait and (pool.busy() > 0 if eager else not pool.idle()):
            return
        audio = np.concatenate(frames)
        self._future = self.engine.guesses().submit(
            self.engine.transcribe, audio, self.sample_rate, self.grammar
        )
        if wait:
            concurrent.futures.wait([self._future])

    def drop(self) -> None:
        self._future = None

    def text(self) -> str:
        """What it heard, once done ("" before, or when it failed)."""
        future = self._future
        if future is None or not future.done() or future.exception() is not None:
            return ""
        return future.result().text

    def take(self) -> Hypothesis | None:
        """Its answer (waiting for it), or None: none started, or it failed."""
        future, self._future = self._future, None
        if future is None:
            return None
        try:
            return future.result()
        except EngineError as exc:
            log.warning("whisper: the early decode failed (%s); decoding again", exc)
            return None


class WhisperRecognizer(Recognizer):
    """Keeps the utterance's frames; decodes the whole utterance when it ends, or earlier.

    When the caller goes quiet (``pause()``) the utterance so far is decoded
    (``EarlyDecode``): its answer shows in ``partial()``, so a complete answer (all the
    digits of a phone number) ends the turn at once, and otherwise it is ready when the
    turn ends. If the caller speaks again (``resume()``), it is dropped.
    """

    def __init__(self, engine: WhisperEngine, grammar: Grammar | None, sample_rate: int) -> None:
        self.engine = engine
        self.grammar = grammar
        self.sample_rate = sample_rate
        self._frames: list[np.ndarray] = []
        self._early = EarlyDecode(engine, grammar, sample_rate)

    def accept(self, frame: np.ndarray) -> None:
        self._frames.append(frame)

    def pause(self, *, wait: bool = False, eager: bool = False) -> None:
        self._early.start(self._frames, wait=wait, eager=eager)

    def resume(self) -> None:
        self._early.drop()

    def partial(self) -> str:
        return self._early.text()

    def finish(self) -> Hypothesis:
        frames, self._frames = self._frames, []
        early = self._early.take()
        if early is not None:
            return early
        audio = np.concatenate(frames) if frames else np.zeros(0, np.int16)
        return self.engine.transcribe(audio, self.sample_rate, self.grammar)

    def close(self) -> None:
        self._frames = []
        self._early.drop()
