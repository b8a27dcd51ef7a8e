"""The IVR's voice with the real engines: the natural Piper voice for English, espeak-ng
for Mandarin and as the fallback; pacing and level measured on the audio they make;
read-backs assembled from cached digit segments; the prompt cache."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

from ivr.config import Settings, Voice
from ivr.dialog.prompt_cache import (
    build_cache,
    digit_segments,
    prerender_text,
    prompt_speeches,
    slower_levels,
)
from ivr.dialog.prompts import PromptBook, SpokenDigits, SpokenText, render_text
from ivr.errors import EngineError
from ivr.speech import voices
from ivr.speech.audio import Audio, read_audio, telephone
from ivr.speech.level import (
    TARGET_DBOV,
    active_level_dbov,
    normalise,
    peak_dbfs,
    speaking_rate_wpm,
)
from ivr.speech.tts import Segment, Synthesizer
from ivr.speech.voices import resolve_voice, voice_for
from ivr.speech.whisper_models import locate
from tests.conftest import REPO

PIPER = "piper:en_US-joe-medium"
ESPEAK_EN = "en-us"
PROSE = [  # what the IVR reads as prose: a knowledge answer and walkthrough steps
    yaml.safe_load((REPO / "prompts/en-US/knowledge/live_streaming.yaml").read_text())["answer"],
    *yaml.safe_load((REPO / "prompts/en-US/knowledge/reset_password.yaml").read_text())["steps"],
]
DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synthesizer:
    return Synthesizer(tmp_path_factory.mktemp("voice-cache"))


@pytest.fixture(scope="module")
def listener(settings: Settings):  # type: ignore[no-untyped-def]
    from faster_whisper import WhisperModel

    path = locate(settings.models_dir, "whisper-tiny.en").path
    assert path is not None
    return WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=1)


def heard(listener, audio: Audio) -> str:  # type: ignore[no-untyped-def]
    pcm = audio.to_rate(16000).samples.astype(np.float32) / 32768.0
    segments, _ = listener.transcribe(
        pcm, language="en", beam_size=5, temperature=0.0, condition_on_previous_text=False
    )
    return " ".join(s.text for s in segments)


def digits_heard(text: str) -> str:
    words = re.findall(r"[a-z]+|\d", text.lower())
    return "".join(
        str(DIGIT_WORDS.index(w)) if w in DIGIT_WORDS else w
        for w in words
        if w.isdigit() or w in DIGIT_WORDS
    )


# --- which voice speaks ---------------------------------------------------------------------


def test_english_speaks_with_the_natural_voice_and_mandarin_with_espeak() -> None:
    assert voice_for(Voice(), "en-US") == PIPER
    assert not voice_for(Voice(), "zh-CN").startswith(voices.PIPER)
    assert resolve_voice("en-US", "espeak:en-us") == ESPEAK_EN  # chosen per locale in [voice]
    assert resolve_voice("en-US", "en-us") == ESPEAK_EN


def test_without_the_voice_package_english_falls_back_to_espeak_with_one_log_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    catalogue = tmp_path / "voices.toml"
    catalogue.write_text(
        '["en_US-absent-medium"]\npackage = "ivr_no_such_voice_package"\nlocale = "en-US"\n'
        "natural_wpm = 186.0\nstretch_exponent = 0.66\n"
    )
    monkeypatch.setattr(voices, "CATALOGUE_PATH", catalogue)
    for cached in (voices.natural_voices, voices.natural_voice_installed, voices._fallback_once):
        cached.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="ivr.speech.voices"):
            assert resolve_voice("en-US", "auto") == ESPEAK_EN
            assert resolve_voice("en-US", "piper:en_US-absent-medium") == ESPEAK_EN
        lines = [r for r in caplog.records if "espeak-ng" in r.getMessage()]
        assert len(lines) == 1 and "en_US-absent-medium" in lines[0].getMessage()
    finally:
        for cached in (voices.natural_voices, voices.natural_voice_installed):
            cached.cache_clear()


def test_cache_key_names_the_voice(synth: Synthesizer) -> None:
    keys = {synth.cache_key("Hello.", v, 150, 8000) for v in (PIPER, ESPEAK_EN)}
    assert len(keys) == 2


# --- pacing, measured on the audio ----------------------------------------------------------


@pytest.mark.parametrize("voice", [PIPER, ESPEAK_EN])
def test_prose_is_spoken_at_about_150_words_a_minute_and_slower_slows_it(
    synth: Synthesizer, voice: str
) -> None:
    words = sum(len(t.split()) for t in PROSE)
    rates = []
    for slower in (0, 1):
        text = SpokenText(" ".join(PROSE))
        speech = render_text("{t}", {"t": text}, voice=Voice(), slower=slower)
        audio = synth.render(speech, voice=voice, sample_rate=16000)
        rates.append(speaking_rate_wpm(audio.samples, audio.rate, words))
    normal, slower_rate = rates
    assert 135 <= normal <= 170, f"{voice}: {normal:.0f} words a minute"
    assert slower_rate <= normal * 0.92, f"{voice}: slower {slower_rate:.0f} vs {normal:.0f}"
    assert slower_rate >= 115  # slower adds pauses; it does not drag the words


def test_digits_are_read_slower_than_prose_and_alike_in_both_voices(synth: Synthesizer) -> None:
    code = SpokenDigits("4829130")
    rates = {}
    for voice in (PIPER, ESPEAK_EN):
        audio = synth.render(
            render_text("{c}", {"c": code}, voice=Voice()), voice=voice, sample_rate=16000
        )
        rates[voice] = speaking_rate_wpm(audio.samples, audio.rate, len(code.digits))
    assert all(60 <= r <= 120 for r in rates.values()), rates
    assert abs(rates[PIPER] - rates[ESPEAK_EN]) <= 0.2 * rates[ESPEAK_EN], rates


# --- read-backs from the cache ----------------------------------------------------------------


def test_a_code_read_back_is_assembled_from_cached_digits_and_understood(
    tmp_path: Path, settings: Settings, listener
) -> None:  # type: ignore[no-untyped-def]
    synth = Synthesizer(tmp_path / "cache")
    for part in digit_segments(settings, slower=0):
        synth.segment(
            part.text, voice=PIPER, rate_wpm=part.rate_wpm, sample_rate=8000, position=part.position
        )
    files = sorted((tmp_path / "cache").rglob("*.wav"))
    assert len(files) == 30  # ten digits, three positions
    speech = render_text("{c}", {"c": SpokenDigits("482913")}, voice=settings.voice)
    assert all(len(p.text) == 1 for p in speech.parts if isinstance(p, Segment))
    assert synth.covers(speech, voice=PIPER, sample_rate=8000)
    audio = synth.render(speech, voice=PIPER, sample_rate=8000)
    assert sorted((tmp_path / "cache").rglob("*.wav")) == files  # nothing new was synthesised
    text = heard(listener, telephone(audio))
    assert digits_heard(text) == "482913", text


# --- level ------------------------------------------------------------------------------------


def test_active_level_ignores_pauses_as_p56_does() -> None:
    rate = 8000
    t = np.arange(rate * 2) / rate
    tone = np.sin(2 * np.pi * 440 * t) * 3277  # -20 dBFS peak: -23 dBov
    assert abs(active_level_dbov(tone, rate) - (-23.0)) < 0.2
    gappy = np.concatenate([tone, np.zeros(rate * 2)])  # plain RMS would fall by 3 dB
    assert abs(active_level_dbov(gappy, rate) - (-23.0)) < 1.0
    assert active_level_dbov(np.zeros(rate), rate) < -90


def test_normalise_reaches_the_target_without_clipping() -> None:
    rate = 8000
    t = np.arange(rate * 2) / rate
    loud = (np.sign(np.sin(2 * np.pi * 300 * t)) * 32767).astype(np.int16)  # a full-scale square
    out = normalise(loud, rate)
    assert abs(active_level_dbov(out, rate) - TARGET_DBOV) < 0.5
    quiet = (np.sin(2 * np.pi * 300 * t) * 300).astype(np.int16) * np.repeat([1, 40], rate)
    out = normalise(quiet.astype(np.int16), rate)  # a quiet start then a loud part
    assert peak_dbfs(out) <= -0.9


def test_every_cached_prompt_has_the_same_level_in_both_voices(
    tmp_path: Path,
    settings: Settings,
    zh_prompts_built,  # type: ignore[no-untyped-def]
) -> None:
    """en-US: one rendering of a third of the prompts and variants, and every digit; zh-CN:
    every prompt, from the session's build of its whole cache (which is checked file by file
    too)."""
    zh_cache = zh_prompts_built[0].cache_dir / "prompts"
    levels: dict[str, list[float]] = {}
    for locale in ("en-US", "zh-CN"):
        synth = Synthesizer(zh_cache if locale == "zh-CN" else tmp_path / "cache")
        voice = voice_for(settings.voice, locale)
        seen: set[str] = set()
        for speech in prompt_speeches(settings, locale, slower=0):
            if speech.transcript in seen or not speech.parts:
                continue
            seen.add(speech.transcript)
            if locale == "en-US" and len(seen) % 3:  # a third keeps the test short; digits all
                continue
            audio = synth.render(speech, voice=voice, sample_rate=8000)
            levels.setdefault(voice, []).append(active_level_dbov(audio.samples, 8000))
        for part in digit_segments(settings, slower=0):
            synth.segment(
                part.text,
                voice=voice,
                rate_wpm=part.rate_wpm,
                sample_rate=8000,
                position=part.position,
            )
    assert set(levels) == {PIPER, voice_for(settings.voice, "zh-CN")}
    for voice, found in levels.items():
        assert all(abs(level - TARGET_DBOV) <= 2.0 for level in found), (voice, found)
    cached = sorted([*(tmp_path / "cache").rglob("*.wav"), *zh_cache.rglob("*.wav")])
    assert len(cached) > 100
    for path in cached:  # every cached segment
        audio = read_audio(path)
        assert abs(active_level_dbov(audio.samples, audio.rate) - TARGET_DBOV) <= 1.0, path
        assert peak_dbfs(audio.samples) < -0.9, path


# --- the cache --------------------------------------------------------------------------------


def test_prompts_build_covers_every_static_prompt_at_both_rates(zh_prompts_built) -> None:  # type: ignore[no-untyped-def]
    """One locale, the quickest voice; the same code builds the other."""
    s, report = zh_prompts_built
    synth = Synthesizer(s.cache_dir / "prompts")
    assert report.synthesized == report.segments > 0  # built from nothing
    voice = voice_for(s.voice, "zh-CN")
    book = PromptBook(s.prompts_dir, "zh-CN")
    static = [pid for pid in book.prompts if not book.placeholders(pid) - {"brand"}]
    assert len(static) > 20
    for slower in slower_levels(s):  # patient mode's speed too
        for speech in prompt_speeches(s, "zh-CN", slower=slower):
            for rate in (8000, 16000):
                assert synth.covers(speech, voice=voice, sample_rate=rate), speech.transcript
    again = build_cache(s, Synthesizer(s.cache_dir / "prompts"), ["zh-CN"])
    assert again.synthesized == 0


def test_a_resolution_is_in_the_cache_once_written(tmp_path: Path, settings: Settings) -> None:
    synth = Synthesizer(tmp_path / "cache")
    resolution = "We checked your video. It is visible to everyone again."
    prerender_text(settings, synth, "en-US", resolution)
    book = PromptBook(settings.prompts_dir, "en-US")
    speech = book.speech(
        "ticket_status.resolved",
        params={
            "number": SpokenDigits("20261120", "pairs"),
            "team": "content review",
            "resolution": SpokenText(resolution),
        },
        voice=settings.voice,
    )
    resolution_parts = [p for p in speech.parts if isinstance(p, Segment) and p.text in resolution]
    assert len(resolution_parts) == 2
    for part in resolution_parts:
        for rate in (8000, 16000):
            assert synth.is_cached(part, voice=PIPER, sample_rate=rate)


def test_uncached_speech_streams_sentence_by_sentence(tmp_path: Path) -> None:
    synth = Synthesizer(tmp_path / "cache")
    speech = render_text(
        "First, open the app. Then tap Me. Then tap Creator tools.", {}, voice=Voice()
    )
    assert len(speech.sentences()) == 3
    pieces = list(synth.stream(speech, voice=PIPER, sample_rate=8000))
    assert len(pieces) == 3 and all(p.seconds > 0.3 for p in pieces)
    assert synth.covers(speech, voice=PIPER, sample_rate=8000)
    assert len(list(synth.stream(speech, voice=PIPER, sample_rate=8000))) == 1  # now one piece


def test_a_long_uncached_sentence_plays_its_first_phrase_while_the_rest_is_made(
    tmp_path: Path, listener
) -> None:
    text = "We refunded the coins you paid for the gift that did not arrive."
    speech = render_text(text, {}, voice=Voice())
    streamed = list(Synthesizer(tmp_path / "a").stream(speech, voice=PIPER, sample_rate=8000))
    whole = Synthesizer(tmp_path / "b").render(speech, voice=PIPER, sample_rate=8000)
    assert len(streamed) == 2
    # the lead is a short phrase: a fraction of the sentence to make before anything plays
    assert streamed[0].seconds < 0.6 * whole.seconds
    joined = Audio(np.concatenate([p.samples for p in streamed]), 8000)
    words = re.findall(r"[a-z]+", heard(listener, telephone(joined)).lower())
    said = re.findall(r"[a-z]+", text.lower())
    # every word is there, in order: no phrase lost or played twice at the join (the
    # listener may mishear one word over the phone, as it did "gift" as "guest" once)
    assert len(words) == len(said), words
    assert sum(a != b for a, b in zip(words, said, strict=True)) <= 1, words
    # espeak-ng makes a sentence fast enough to make it whole
    espeak = list(Synthesizer(tmp_path / "c").stream(speech, voice=ESPEAK_EN, sample_rate=8000))
    assert len(espeak) == 1


def test_sentences_keep_a_read_back_with_its_sentence() -> None:
    speech = render_text(
        "I heard {c}. Is that right?", {"c": SpokenDigits("482913")}, voice=Voice()
    )
    pieces = speech.sentences()
    texts = [[p.text for p in s.parts if isinstance(p, Segment)] for s in pieces]
    assert texts == [["I heard", "4", "8", "2", "9", "1", "3"], ["Is that right?"]]
    assert [p for s in pieces for p in s.parts] == speech.parts


RSS_AFTER = """
import sys
from pathlib import Path
from ivr.config import Voice
from ivr.dialog.prompts import render_text
from ivr.speech.tts import Synthesizer

def rss_mb():
    with open("/proc/self/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[21]) * 4096 / 2**20

synth = Synthesizer(Path(sys.argv[1]))
def say(text):
    synth.render(render_text(text, {}, voice=Voice()), voice=sys.argv[2], sample_rate=8000)
short = "Your ticket is with the review team."
say(short)
before = rss_mb()
clause = "if the video you posted was taken down, we will look at it again"
say(", and ".join([clause] * 6) + ".")
say(short + " Thank you.")
print(before, rss_mb())
"""


def test_a_long_sentence_leaves_no_memory_behind_in_the_natural_voice(tmp_path: Path) -> None:
    """The voice's memory grew with the longest sentence it had spoken, and stayed grown: a
    long sentence once held hundreds of megabytes in the serving process for good."""
    done = subprocess.run(
        [sys.executable, "-c", RSS_AFTER, str(tmp_path / "cache"), PIPER],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    before, after = (float(v) for v in done.stdout.split())
    assert after - before < 150, (before, after)


GREETING = "Hello, and thank you for calling."


def _at_once(n: int, work: Callable[[], object]) -> list[object]:
    """``work`` in ``n`` threads started together: what each returned or raised."""
    start = threading.Barrier(n)
    got: list[object] = []

    def run() -> None:
        start.wait()
        try:
            got.append(work())
        except Exception as exc:
            got.append(exc)

    threads = [threading.Thread(target=run, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
        assert not t.is_alive()
    return got


def test_callers_reaching_the_same_uncached_prompt_share_one_synthesis(tmp_path: Path) -> None:
    """On a cold cache ten callers greeted at once made the greeting ten times, one after the
    other under the voice's lock: the tenth heard it only after all ten."""
    made: list[str] = []
    fail = threading.Event()

    class Counting(Synthesizer):
        def _voice_audio(self, text: str, voice: str, rate_wpm: int, position: str) -> Audio:
            made.append(text)
            if fail.is_set():
                time.sleep(0.5)  # long enough for the others to wait on this one
                raise EngineError("the voice failed")
            return super()._voice_audio(text, voice, rate_wpm, position)

    synth = Counting(tmp_path / "cache")

    def greet() -> np.ndarray:
        return synth.segment(GREETING, voice=PIPER, rate_wpm=150, sample_rate=8000)

    got = _at_once(6, greet)
    assert made == [GREETING]
    assert all(isinstance(a, np.ndarray) and np.array_equal(a, got[0]) for a in got)
    # a synthesis that fails fails every caller waiting on it, and the next one tries again
    made.clear()
    fail.set()
    other = "Thank you for waiting."
    failed = _at_once(4, lambda: synth.segment(other, voice=PIPER, rate_wpm=150, sample_rate=8000))
    assert made == [other] and all(isinstance(e, EngineError) for e in failed)
    fail.clear()
    assert len(synth.segment(other, voice=PIPER, rate_wpm=150, sample_rate=8000)) > 0
    assert made == [other, other]


def test_espeak_ng_crashing_loses_no_segment_and_never_the_calls(tmp_path: Path) -> None:
    """espeak-ng runs in a voice process of its own: it crashed twice with a segfault inside
    a busy process, which in the serving process would drop every call. A segfault there
    (sent while it synthesises) costs the segment a second synthesis, nothing more."""
    import signal

    from ivr.speech.espeak import voice_process

    synth = Synthesizer(tmp_path / "cache")
    first = synth.segment("您好。欢迎致电客服中心。", voice="cmn", rate_wpm=150, sample_rate=8000)
    assert len(first) > 8000
    pool = voice_process()
    (pid,) = pool.worker_pids()
    assert pid != os.getpid()
    maps = Path(f"/proc/{os.getpid()}/maps").read_text()
    assert "libespeak-ng" not in maps  # this process never loaded espeak-ng itself
    replaced = pool.replaced

    long_text = "请说出您账户绑定的手机号码。一位一位地说。说完以后请稍等。" * 4
    made: list[np.ndarray] = []
    worker = threading.Thread(
        target=lambda: made.append(
            synth.segment(long_text, voice="cmn", rate_wpm=80, sample_rate=8000)
        )
    )
    worker.start()
    deadline = time.monotonic() + 30
    while pool.busy() == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(pid, signal.SIGSEGV)
    worker.join(120)
    assert not worker.is_alive()
    assert made and len(made[0]) > 8000 * 10  # the whole long segment, made again
    assert pool.replaced == replaced + 1
    (new_pid,) = pool.worker_pids()
    assert new_pid != pid


_WORKER_LOGS = """
import logging, sys
from ivr.speech.processes import WorkerPool

def say() -> int:
    logging.getLogger("probe").warning("from the worker")
    logging.getLogger("probe").debug("below the level")
    return 1

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    pool = WorkerPool(1, what="speech synthesis")
    assert pool.run(say) == 1
    pool.close()
"""


def test_a_worker_process_logs_as_the_process_that_started_it(tmp_path: Path) -> None:
    """The voice process's warnings ("incomplete synthesis output") came out bare, without
    time or source, among `ivr serve`'s log lines: a worker now logs at its starter's level,
    each line naming the worker."""
    script = tmp_path / "owner.py"
    script.write_text(_WORKER_LOGS)
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    assert done.returncode == 0, done.stderr
    line = re.compile(r"^\S+ \S+ speech synthesis worker \d+ WARNING probe: from the worker$")
    assert any(line.match(x) for x in done.stderr.splitlines()), done.stderr
    assert "below the level" not in done.stderr
