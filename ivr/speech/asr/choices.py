"""Whisper choosing among an ask's Mandarin phrases by how likely each is, given the audio.

Whisper base writes a short Mandarin word with the characters of another word of the same
syllables in other tones (背景, "background", as 北京, "Beijing": the tones are what
differ), or writes nothing for a word it heard. Free text cannot tell such words apart; the
model can: each of the ask's phrases is laid over the utterance, teacher-forced, and its
tokens' average log-probability says how well it fits (``weigh``, in the recognition
worker, on the encoding the free decode made). Measured on 204 recordings of 12 words by
17 speakers over the phone: 0.75 from the free text alone, 0.89 with the choice, 0.83 once
words that answer nothing were kept from becoming answers (README).

The choice (``choose``) is taken only where the free text cannot answer:

- when the free text is an answer whose syllables, without tones, are those of another
  answer too, the likeliest of those answers;
- when the free text is no answer (or nothing), the likeliest phrase, if it fits well
  enough (``MIN_FIT``), the free text is no filler (``_inventions.yaml``) nor words of
  another language, and neither the free text nor the voice is longer than that answer
  (``MAX_SECONDS_PER_SYLLABLE``): unrelated sentences are longer than a short answer, and
  sounds that are not speech never reach Whisper (Silero VAD).

A global command is never chosen: a person is called for, or the menu said again, only when
the caller was heard asking for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from ivr.speech.grammar import COMMAND_PREFIX, Grammar, normalize
from ivr.speech.understand import (
    is_hanzi,
    phrase_matches,
    pinyin,
    spelling_distance,
    syllables,
)

MAX_CHOICES: Final = 30  # more answers than an ask has: the free text alone
ENCODER_FRAMES_PER_SEC: Final = 50
# the encoding beyond the voice laid over: the choices fit a short answer, not 30 s of
# padding (which costs 1 s for 12 phrases and fits no better: measured, 0.047 s with the cut)
TAIL_FRAMES: Final = 25
# an utterance longer than the chosen answer at this many seconds a syllable, and 0.8 s
# more, is no answer to choose for (a caller saying a sentence)
MAX_SECONDS_PER_SYLLABLE: Final = 0.6
EXTRA_SECONDS: Final = 0.8
# an answer Whisper wrote at such an ask is no answer when the voice lasted longer than the
# answer at MAX_SECONDS_PER_SYLLABLE and this much more: Whisper wrote a prompt item or two
# for a longer sentence (行 好 for 这个节目真好看 in noise). Measured on the 518 answers
# heard right of the synthetic and recorded callers in the three conditions, and on 108
# unrelated sentences heard at six asks: the nearest right answer was 0.5 s under, the
# nearest sentence taken as an answer 0.56 s over (7 of the 9 such answers dropped)
WRITTEN_EXTRA_SECONDS: Final = 2.2
# an answer chosen where the free text had none must fit at least this well (average token
# log-probability). Recorded words that answer nothing (北京 at the content-type ask) fit
# some answer up to -3.1: at -5, 80 of 359 such cases (123 recordings at three asks)
# became answers. At -2.5 none does,
# and 1 of the 7 right choices from nothing on the recorded 12 words is kept (README)
MIN_FIT: Final = -2.5
# a one-syllable answer is heard once more without the prompt (``said_more``): a few words
# are all that check reads, and a decode that loops (喔喔喔...) stops there, not at 448
UNPROMPTED_TOKENS: Final = 24
# ... and stands unless that decode wrote two syllables or more that are no answer of its
# value and spell none of its phrases within this share of their toneless pinyin letters
MAX_UNPROMPTED_DISTANCE: Final = 0.5


@dataclass(frozen=True)
class Weighed:
    """The ask's phrases, each with its tokens' average log-probability over the utterance."""

    phrases: tuple[tuple[str, float], ...]


def choices_for(grammar: Grammar | None, locale: str) -> tuple[str, ...]:
    """The phrases to weigh at a Mandarin ask for one of a few phrases (else none): every
    answer, and the shortest phrase of each global command, which may fit best and so keep
    an answer from being chosen."""
    if (
        grammar is None
        or not locale.startswith("zh")
        or grammar.digits is not None
        or grammar.extension is not None
        or not all(is_hanzi(w) for p in grammar.phrases for w in p.split())
    ):
        return ()
    answers = [p for p, v in grammar.phrases.items() if not v.startswith(COMMAND_PREFIX)]
    commands: dict[str, str] = {}
    for phrase, value in grammar.phrases.items():
        shortest = commands.get(value)
        if value.startswith(COMMAND_PREFIX) and (shortest is None or len(phrase) < len(shortest)):
            commands[value] = phrase
    if not 1 < len(answers) <= MAX_CHOICES:
        return ()
    return (*answers, *commands.values())


def needs_weighing(text: str, phrases: tuple[str, ...]) -> bool:
    """Whether the free text leaves the choice open: it is not one of the phrases as written,
    or another phrase has its syllables (in other tones)."""
    said = normalize(text)
    if said not in phrases:
        return True
    sound = _sound(said)
    return sum(_sound(p) == sound for p in phrases) > 1


def weigh(
    model: Any, encoded: Any, language: str, phrases: tuple[str, ...], voice_end: int
) -> Weighed:
    """Each phrase laid over the utterance (``encoded``: the free decode's encoder output).

    ``voice_end``: the voice's last sample at 16 kHz; the encoding beyond it is cut.
    """
    import ctranslate2
    from faster_whisper.tokenizer import Tokenizer

    tokenizer = Tokenizer(
        model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language
    )
    encoding = np.asarray(encoded)
    frames = min(encoding.shape[1], voice_end * ENCODER_FRAMES_PER_SEC // 16000 + TAIL_FRAMES)
    cut = np.ascontiguousarray(encoding[:, :frames])
    batch = ctranslate2.StorageView.from_array(np.repeat(cut, len(phrases), axis=0))
    tokens = [tokenizer.encode("".join(p.split())) for p in phrases]
    aligned = model.model.align(
        batch, list(tokenizer.sot_sequence), tokens, [2 * frames] * len(phrases)
    )
    scored = tuple(
        (phrase, float(np.mean(np.log(np.maximum(result.text_token_probs, 1e-9)))))
        for phrase, result in zip(phrases, aligned, strict=True)
    )
    return Weighed(scored)


def outlasts(grammar: Grammar, text: str, voiced_sec: float) -> bool:
    """Whether the voice lasted far longer than saying the answer written in ``text`` takes
    (its phrases' syllables; all its characters where it matched by sound)."""
    tokens = normalize(text).split()
    said = sum(e - s for s, e, _ in phrase_matches(tokens, grammar.phrases)) or syllables(text)
    return voiced_sec > said * MAX_SECONDS_PER_SYLLABLE + WRITTEN_EXTRA_SECONDS


def said_more(grammar: Grammar, answer: str, unprompted: str | None) -> bool:
    """Whether a one-syllable answer stands for a longer word the prompt bent into it.

    Shown the ask's answers, Whisper base writes a two-syllable word that answers nothing
    as one of them (数字 as 好, 北京 as 行 at a yes-or-no ask). Decoded again on the same
    encoding without the prompt (``unprompted``, greedy), it writes what it heard instead
    (手指, 再見). The answer is dropped when that text has two syllables or more, is no
    answer of the same value, and spells no phrase of that value within
    ``MAX_UNPROMPTED_DISTANCE``. Measured on the recordings and the synthetic caller of
    the README's table: recorded words that answer nothing taken at the yes-or-no ask
    46 -> 25 of 119; of the answers heard right, none of 187 recorded lost, 3 of 359
    synthetic (是的 written 是 but heard 去吧; 可以了 and 不用了, written 好 and 不).
    """
    if unprompted is None or syllables(answer) != 1:
        return False
    heard = _sound(unprompted).split()
    meant = grammar.interpret(answer)
    if len(heard) < 2 or meant is None:
        return False
    again = grammar.interpret(unprompted)
    if again is not None and again.value == meant.value:
        return False
    spelt = "".join(heard)
    spellings = (
        _sound(phrase).replace(" ", "")
        for phrase, value in grammar.phrases.items()
        if value == meant.value
    )
    return all(
        spelling_distance(spelt, spelling) > MAX_UNPROMPTED_DISTANCE
        for spelling in spellings
        if spelling
    )


def _sound(text: str) -> str:
    return " ".join(pinyin(t) for t in normalize(text).split() if is_hanzi(t))


def choose(weighed: Weighed, grammar: Grammar, text: str, voiced_sec: float) -> str | None:
    """The phrase to take for ``text`` (the free decode's answer, or ""), or None to keep it.

    ``voiced_sec``: how long the voice lasted.
    """
    if not weighed.phrases:
        return None
    best: dict[str, tuple[float, str]] = {}  # value: its likeliest phrase
    for phrase, score in weighed.phrases:
        value = grammar.phrases[phrase]
        if value not in best or score > best[value][0]:
            best[value] = (score, phrase)
    ranked = sorted(best.items(), key=lambda item: -item[1][0])
    meant = grammar.interpret(text) if text else None
    if meant is not None:
        sound = _sound(text)
        same = {v for p, v in grammar.phrases.items() if sound and _sound(p) == sound}
        if len(same) < 2 or meant.is_command:
            return None  # the free text answers, and no other answer sounds the same
        return next(phrase for value, (_, phrase) in ranked if value in same)
    said = normalize(text)
    if said in grammar.inventions or not all(is_hanzi(t) for t in said.split()):
        return None  # a filler (嗯), or words of another language: not an answer unheard
    value, (score, phrase) = ranked[0]
    if value.startswith(COMMAND_PREFIX) or score < MIN_FIT:
        return None
    answer_syllables = len(phrase.split())
    if len(said.split()) > answer_syllables + 1:
        return None  # the free text says more than the answer would: something else was said
    if voiced_sec > answer_syllables * MAX_SECONDS_PER_SYLLABLE + EXTRA_SECONDS:
        return None  # the voice lasted longer than the answer would
    return phrase
