"""`ivr` commands: speech tools: recognise, synthesise, prompt cache, models."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ivr.cli.common import settings_for
from ivr.errors import IvrError
from ivr.speech.voices import voice_for


def cmd_asr(args: argparse.Namespace) -> int:
    from ivr.speech.audio import read_audio, split_frames
    from ivr.speech.engines import Engines
    from ivr.speech.grammar import GrammarBook

    settings = settings_for(args)
    locale = args.locale or settings.locale
    grammar = GrammarBook(settings.grammars_dir, locale).get(args.grammar, commands=False)
    engine = Engines.from_settings(settings).require(locale)
    status = 0
    for file in args.files:
        try:
            audio = read_audio(file)
        except IvrError as exc:
            print(f"{file}: {exc}", file=sys.stderr)
            status = 1
            continue
        rate = 16000 if audio.rate not in (8000, 16000) else audio.rate
        audio = audio.to_rate(rate)
        rec = engine.recognizer(grammar, rate)
        for frame in split_frames(audio.samples, rate):
            rec.accept(frame)
        hyp = rec.finish()
        interp = grammar.interpret(hyp.text)
        accepted = interp is not None and hyp.confidence >= settings.confidence_reject
        row = {
            "file": file,
            "heard": hyp.text,
            "value": interp.value if accepted and interp else None,
            "confidence": round(hyp.confidence, 3),
            "engine": hyp.engine,
        }
        if args.json:
            print(json.dumps(row, ensure_ascii=False))
        else:
            print(
                f"{file}: heard {hyp.text!r} -> {row['value']} (confidence {row['confidence']},"
                f" {hyp.engine})"
            )
    return status


def cmd_say(args: argparse.Namespace) -> int:
    from ivr.dialog.prompts import render_text
    from ivr.speech.audio import write_wav
    from ivr.speech.tts import Synthesizer

    settings = settings_for(args)
    voice = settings.voice
    if args.rate:
        from dataclasses import replace

        voice = replace(voice, rate_wpm=args.rate)
    speech = render_text(args.text.replace("{", "{{").replace("}", "}}"), {}, voice=voice)
    synth = Synthesizer(settings.cache_dir / "prompts")
    audio = synth.render(
        speech,
        voice=voice_for(settings.voice, settings.locale),
        sample_rate=args.sample_rate,
    )
    write_wav(args.output, audio.samples, audio.rate)
    print(f"wrote {args.output} ({audio.seconds:.2f} s at {audio.rate} Hz)")
    return 0


def cmd_prompts_build(args: argparse.Namespace) -> int:
    from ivr.dialog.prompt_cache import build_cache
    from ivr.speech.tts import Synthesizer

    settings = settings_for(args)
    synth = Synthesizer(settings.cache_dir / "prompts")
    locales = (
        [args.locale]
        if args.locale
        else sorted(p.name for p in settings.prompts_dir.iterdir() if p.is_dir())
    )
    report = build_cache(
        settings,
        synth,
        locales,
        sample_rates=tuple(args.sample_rates),
        progress=lambda line: print(line, flush=True),
    )
    print(
        f"{report.segments} segments cached in {synth.cache_dir}"
        f" ({report.synthesized} synthesised, {report.seconds:.1f} s)"
    )
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from ivr.speech import models

    settings = settings_for(args)
    rows = [(m.name, m.locale or "?", str(m.path)) for m in models.list_models(settings.models_dir)]
    rows += [(f"(bundled) {loc}", loc, str(p)) for loc, p in models.bundled_model_paths().items()]
    if not rows:
        print(
            f"no Vosk models in {settings.models_dir}; English uses the bundled PocketSphinx model"
        )
    for name, locale, path in rows:
        print(f"{name:40s} {locale:7s} {path}")
    from ivr.speech import whisper_models

    for name, model in whisper_models.CATALOGUE.items():
        found = whisper_models.locate(settings.models_dir, name)
        where = str(found.path) if found.path else "-"
        print(f"{name:40s} {','.join(model.locales):7s} {where}  [whisper: {found.note}]")
    return 0


def cmd_models_install(args: argparse.Namespace) -> int:
    from ivr.speech import models

    settings = settings_for(args)
    from ivr.speech import whisper_models

    if args.source in whisper_models.CATALOGUE:
        path = whisper_models.install(settings.models_dir, args.source)
        print(f"installed {args.source} (Whisper, SHA-256 checked) at {path}")
        return 0
    info = models.install_model(
        args.source, settings.models_dir, locale=args.model_locale, sha256=args.sha256
    )
    print(f"installed {info.name} ({info.locale or 'locale unknown'}) at {info.path}")
    return 0


def register(sub: Any) -> None:
    a = sub.add_parser("asr", help="recognise audio files with one grammar")
    a.add_argument("files", nargs="+")
    a.add_argument("--grammar", required=True, help="grammar name, e.g. yes_no, main_menu, digits")
    a.add_argument("--locale")
    a.add_argument("--json", action="store_true", help="one JSON object per file")
    a.set_defaults(func=cmd_asr)

    say = sub.add_parser("say", help="synthesise text to a WAV file")
    say.add_argument("text")
    say.add_argument("-o", "--output", required=True)
    say.add_argument("--rate", type=int, help="words per minute (default from configuration)")
    say.add_argument("--sample-rate", type=int, default=16000)
    say.add_argument("--locale")
    say.set_defaults(func=cmd_say)

    pr = sub.add_parser("prompts", help="prompt cache").add_subparsers(
        dest="prompts", required=True
    )
    b = pr.add_parser("build", help="render every static prompt into the cache")
    b.add_argument("--locale")
    b.add_argument("--sample-rates", type=int, nargs="+", default=[8000, 16000])
    b.set_defaults(func=cmd_prompts_build)

    m = sub.add_parser("models", help="speech models: Vosk and Whisper").add_subparsers(
        dest="models", required=True
    )
    ml = m.add_parser("list", help="installed models")
    ml.set_defaults(func=cmd_models_list)
    mi = m.add_parser("install", help="install a model from a known name, URL, archive or folder")
    mi.add_argument("source")
    mi.add_argument("--locale", dest="model_locale", help="locale the model serves, e.g. zh-CN")
    mi.add_argument("--sha256", help="expected SHA-256 of the archive")
    mi.set_defaults(func=cmd_models_install)
