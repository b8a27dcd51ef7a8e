"""The `ivr` command."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

from ivr import __version__
from ivr.config import Settings, check_locales, load_settings
from ivr.errors import IvrError
from ivr.services.privacy import mask_phone

log = logging.getLogger("ivr")
DEMO_CALLS = {
    "en-US": Path(__file__).parent / "data" / "demo_call.yaml",
    "zh-CN": Path(__file__).parent / "data" / "demo_call.zh-CN.yaml",
}


def _settings(args: argparse.Namespace) -> Settings:
    home = Path(args.home) if getattr(args, "home", None) else None
    settings = load_settings(Path(args.config) if args.config else None, home=home)
    if getattr(args, "locale", None):
        settings = settings.with_(locale=args.locale)
        check_locales(settings)
    return settings


def _store(args: argparse.Namespace, settings: Settings) -> Any:
    from ivr.services.store import Store

    return Store(Path(args.db) if getattr(args, "db", None) else settings.db_path)


def show_live(kind: str, data: dict[str, Any]) -> None:
    """Print the transcript as a call goes: what the IVR said, what was heard, value, confidence."""
    if kind == "line" and data["speaker"] == "ivr":
        print(f"  IVR    : {data['text']}", flush=True)
    elif kind == "turn":
        conf = "" if data["confidence"] is None else f", confidence {data['confidence']:.2f}"
        print(
            f"  CALLER : [{data['mode']}] heard {data['heard']!r} -> {data['value']}{conf}"
            f"  (ask {data['ask']})",
            flush=True,
        )


# --- demo ----------------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    from ivr.qa.runner import QaRunner
    from ivr.qa.testcall import load_call
    from ivr.speech.audio import write_wav

    settings = _settings(args)
    demo = DEMO_CALLS.get(settings.locale)
    if demo is None:
        print(f"ivr: no demo call for {settings.locale}", file=sys.stderr)
        return 2
    call = load_call(demo)
    print(f"ivr demo: {call.name} ({settings.locale})", flush=True)
    runner = QaRunner(settings, sample_rate=args.rate, db_file=settings.db_path)

    from ivr.channels.scripted import ScriptedChannel

    channel = ScriptedChannel(
        call.turns, sample_rate=args.rate, caller_id=call.caller_id, dialed=call.dialed
    )
    report = runner.run_call(call, channel=channel, observer=show_live)
    out = Path(args.out)
    write_wav(out, channel.stereo(), channel.sample_rate)
    print(f"outcome: {report.outcome}  (states: {' -> '.join(report.states)})")
    print(f"conversation written to {out} (stereo: caller left, IVR right)")
    if not report.passed:
        print(f"demo call did not go as scripted: {report.error}", file=sys.stderr)
        return 1
    return 0


# --- microphone ----------------------------------------------------------------------------------
def _device(value: str | None) -> str | int | None:
    return int(value) if value is not None and value.isdigit() else value


def cmd_devices(args: argparse.Namespace) -> int:
    from ivr.channels.microphone import list_devices

    devices = list_devices()
    if not devices:
        print("no audio devices found: connect a microphone and speaker, or configure ALSA")
        return 1
    for d in devices:
        kinds = []
        if d.get("max_input_channels", 0) > 0:
            kinds.append("input")
        if d.get("max_output_channels", 0) > 0:
            kinds.append("output")
        print(
            f"{d['index']:3d}  {d['name']:32s} {'/'.join(kinds):13s} "
            f"{int(d.get('default_samplerate') or 0)} Hz"
        )
    return 0


def _keyboard(channel: Any, stop: threading.Event) -> None:
    """Keys typed on the terminal act as the keypad (echoed on screen)."""
    import select

    fd = sys.stdin.fileno()
    old = None
    if os.isatty(fd):
        import termios
        import tty

        old = termios.tcgetattr(fd)
        tty.setcbreak(fd)
    try:
        while not stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            data = os.read(fd, 1)
            if not data:  # end of input: the keyboard is gone, the call goes on
                return
            char = data.decode(errors="ignore")
            if char in "0123456789*#":
                print(f"  [key {char}]", flush=True)
                channel.press(char)
            elif char == " ":
                channel.press(" ")
                print(f"  [talk {'on' if channel.talk else 'off'}]", flush=True)
            elif char in ("q", "\x04"):
                channel.hang_up_now()
                return
    finally:
        if old is not None:
            import termios

            termios.tcsetattr(fd, termios.TCSADRAIN, old)


def cmd_call(args: argparse.Namespace) -> int:
    import numpy as np

    from ivr.channels.microphone import EchoMode, MicrophoneChannel
    from ivr.session import Runtime

    settings = _settings(args)
    echo = EchoMode.PUSH_TO_TALK if args.push_to_talk else EchoMode(args.echo)
    channel = MicrophoneChannel(
        input_device=_device(args.input),
        output_device=_device(args.output),
        caller_id=args.caller_id,
        echo=echo,
    )
    if args.record:
        channel.recording = []
    runtime = Runtime(settings, store=_store(args, settings))
    runtime.accounts.seed_demo()
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: channel.hang_up_now())
    keys = threading.Thread(target=_keyboard, args=(channel, stop), daemon=True)
    keys.start()
    print(
        f"ivr call ({settings.locale}, {echo}): speak, or type 0-9 * # as the keypad; "
        "Ctrl-C hangs up",
        flush=True,
    )

    try:
        result = runtime.run_call(channel, observer=show_live)
    finally:
        stop.set()
        signal.signal(signal.SIGINT, previous)
        channel.close()
    print(f"call {result.call_id}: {result.outcome} {result.transfer_reason or ''}", flush=True)
    if args.record and channel.recording:
        from ivr.speech.audio import write_wav

        wav = Path(args.record) / f"{result.call_id}-caller.wav"
        write_wav(wav, np.concatenate(channel.recording), channel.sample_rate)
        print(f"what the IVR heard: {wav}; the call: ivr calls show {result.call_id}")
    return 0


# --- qa ------------------------------------------------------------------------------------------
def cmd_qa_run(args: argparse.Namespace) -> int:
    from ivr.qa.runner import QaRunner
    from ivr.qa.testcall import find_calls

    settings = _settings(args)
    runner = QaRunner(
        settings,
        sample_rate=args.rate,
        record_dir=Path(args.record) if args.record else None,
    )
    reports = []
    for path in find_calls([Path(p) for p in args.paths]):
        report = runner.run_path(path)
        reports.append(report)
        mark = "PASS" if report.passed else "FAIL"
        print(
            f"{mark} {report.name} ({path}) -> {report.outcome} {report.transfer_reason or ''}",
            file=sys.stderr,
        )
        if report.error:
            print(f"     {report.error}", file=sys.stderr)
    passed = sum(r.passed for r in reports)
    failed = len(reports) - passed
    if args.json:
        print(
            json.dumps(
                {"passed": passed, "failed": failed, "calls": [r.as_dict() for r in reports]},
                indent=2,
            )
        )
    if args.junit:
        _write_junit(Path(args.junit), reports)
    print(f"{passed} passed, {failed} failed", file=sys.stderr)
    return 0 if failed == 0 and reports else 1


def _write_junit(path: Path, reports: list[Any]) -> None:
    from xml.etree import ElementTree as ET

    suite = ET.Element(
        "testsuite",
        name="ivr-qa",
        tests=str(len(reports)),
        failures=str(sum(not r.passed for r in reports)),
    )
    for r in reports:
        case = ET.SubElement(
            suite, "testcase", name=r.name, classname=r.path, time=f"{r.seconds:.2f}"
        )
        if not r.passed:
            ET.SubElement(case, "failure", message=r.error or "failed")
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def cmd_qa_synth(args: argparse.Namespace) -> int:
    """Turn a test call's `say:` turns into WAV files and a call.yaml that uses them."""
    import yaml

    from ivr.qa.synth import write_caller_wav

    src = Path(args.path)
    src = src / "call.yaml" if src.is_dir() else src
    data = yaml.safe_load(src.read_text(encoding="utf-8"))
    out_dir = Path(args.out)
    (out_dir / "turns").mkdir(parents=True, exist_ok=True)
    for i, turn in enumerate(data.get("turns") or [], 1):
        if isinstance(turn, dict) and "say" in turn:
            wav = out_dir / "turns" / f"{i:02d}.wav"
            write_caller_wav(wav, str(turn["say"]), locale=data.get("locale", "en-US"))
            data["turns"][i - 1] = {"audio": f"turns/{wav.name}", "text": turn["say"]}
    (out_dir / "call.yaml").write_text(
        yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    print(f"wrote {out_dir / 'call.yaml'}")
    return 0


# --- speech tools --------------------------------------------------------------------------------
def cmd_asr(args: argparse.Namespace) -> int:
    from ivr.speech.audio import read_audio, split_frames
    from ivr.speech.engines import Engines
    from ivr.speech.grammar import GrammarBook

    settings = _settings(args)
    locale = args.locale or settings.locale
    grammar = GrammarBook(settings.grammars_dir, locale).get(args.grammar, commands=False)
    engine = Engines(settings.models_dir).require(locale)
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

    settings = _settings(args)
    voice = settings.voice
    if args.rate:
        from dataclasses import replace

        voice = replace(voice, rate_wpm=args.rate)
    speech = render_text(args.text.replace("{", "{{").replace("}", "}}"), {}, voice=voice)
    synth = Synthesizer(settings.cache_dir / "prompts")
    audio = synth.render(
        speech,
        voice=settings.voice.voices.get(settings.locale, "en-us"),
        sample_rate=args.sample_rate,
    )
    write_wav(args.output, audio.samples, audio.rate)
    print(f"wrote {args.output} ({audio.seconds:.2f} s at {audio.rate} Hz)")
    return 0


def cmd_prompts_build(args: argparse.Namespace) -> int:
    from ivr.dialog.prompts import PromptBook
    from ivr.speech.tts import Segment, Synthesizer

    settings = _settings(args)
    synth = Synthesizer(settings.cache_dir / "prompts")
    locales = (
        [args.locale]
        if args.locale
        else sorted(p.name for p in settings.prompts_dir.iterdir() if p.is_dir())
    )
    total = 0
    for locale in locales:
        book = PromptBook(settings.prompts_dir, locale)
        voice = settings.voice.voices.get(locale, locale.lower())
        for pid in sorted(book.prompts):
            if book.placeholders(pid) - {"brand"}:
                continue  # rendered per call (numbers, positions)
            for variant in book.prompts[pid]:
                for slower in (0, 1):
                    speech = book.speech(
                        pid,
                        variant=variant,
                        params={"brand": settings.brand},
                        voice=settings.voice,
                        slower=slower,
                    )
                    for part in speech.parts:
                        if isinstance(part, Segment):
                            for rate in args.sample_rates:
                                synth.segment(
                                    part.text, voice=voice, rate_wpm=part.rate_wpm, sample_rate=rate
                                )
                                total += 1
        print(f"{locale}: prompt cache ready")
    print(f"{total} segments cached in {synth.cache_dir}")
    return 0


# --- models --------------------------------------------------------------------------------------
def cmd_models_list(args: argparse.Namespace) -> int:
    from ivr.speech import models

    settings = _settings(args)
    rows = [(m.name, m.locale or "?", str(m.path)) for m in models.list_models(settings.models_dir)]
    rows += [(f"(bundled) {loc}", loc, str(p)) for loc, p in models.bundled_model_paths().items()]
    if not rows:
        print(
            f"no Vosk models in {settings.models_dir}; English uses the bundled PocketSphinx model"
        )
    for name, locale, path in rows:
        print(f"{name:40s} {locale:7s} {path}")
    return 0


def cmd_models_install(args: argparse.Namespace) -> int:
    from ivr.speech import models

    settings = _settings(args)
    info = models.install_model(
        args.source, settings.models_dir, locale=args.model_locale, sha256=args.sha256
    )
    print(f"installed {info.name} ({info.locale or 'locale unknown'}) at {info.path}")
    return 0


# --- calls ---------------------------------------------------------------------------------------
def cmd_calls_list(args: argparse.Namespace) -> int:
    from ivr.services.calls import list_calls

    settings = _settings(args)
    calls = list_calls(_store(args, settings), limit=args.limit)
    if args.json:
        print(json.dumps([c.as_dict() for c in calls], indent=2, ensure_ascii=False))
        return 0
    import datetime as dt

    for c in calls:
        when = dt.datetime.fromtimestamp(c.started_at).strftime("%Y-%m-%d %H:%M:%S")
        print(
            f"{c.id}  {when}  {c.channel:9s} {c.caller_masked or '-':15s} "
            f"{c.outcome or 'in progress':12s} {c.transfer_reason or ''}"
        )
    if not calls:
        print("no calls recorded yet")
    return 0


def cmd_calls_show(args: argparse.Namespace) -> int:
    from ivr.services.calls import load_call

    settings = _settings(args)
    record = load_call(_store(args, settings), args.call_id)
    if record is None:
        print(f"no call {args.call_id!r}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(record.as_dict(), indent=2, ensure_ascii=False))
        return 0
    print(f"call {record.id}: {record.outcome} {record.transfer_reason or ''}")
    print(f"caller {record.caller_masked}  channel {record.channel}  locale {record.locale}")
    print("path: " + " -> ".join(record.states))
    for line in record.transcript:
        print(f"  {line['speaker']:6s}: {line['text']}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    import shutil

    from ivr.speech.engines import Engines

    settings = _settings(args)
    ok = True
    print(f"ivr {__version__}; home {settings.home}")
    for exe in ("espeak-ng", "ffmpeg", "sipp", "baresip"):
        found = shutil.which(exe)
        print(f"  {exe:10s} {'found at ' + found if found else 'not installed'}")
        ok &= exe != "espeak-ng" or bool(found)
    for module in (
        "vosk",
        "pocketsphinx",
        "pyttsx3",
        "sounddevice",
        "transitions",
        "soxr",
        "webrtcvad",
    ):
        try:
            __import__(module)
            print(f"  {module:12s} ok")
        except (ImportError, OSError) as exc:
            print(f"  {module:12s} MISSING ({exc})")
            ok = ok and module == "sounddevice"
    engines = Engines(settings.models_dir)
    for locale in sorted(p.name for p in settings.grammars_dir.iterdir() if p.is_dir()):
        print(f"  speech input {locale}: {engines.describe(locale)}")
    return 0 if ok else 1


# --- parser --------------------------------------------------------------------------------------
# --- back office: tickets, feedback; flow diagrams ------------------------------------------------
def _runtime_services(args: argparse.Namespace) -> tuple[Settings, Any, Any]:
    from ivr.services.codes import SmsOutbox
    from ivr.services.tickets import Tickets

    settings = _settings(args)
    store = _store(args, settings)
    return settings, store, Tickets(store, SmsOutbox(store))


def _when(ts: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def _details(details: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in details.items())


def cmd_tickets_list(args: argparse.Namespace) -> int:
    _, _, tickets = _runtime_services(args)
    found = tickets.list(team=args.team, status=args.status, limit=args.limit)
    if args.json:
        print(json.dumps([t.as_dict() for t in found], indent=2, ensure_ascii=False))
        return 0
    for t in found:
        print(
            f"{t.number}  {_when(t.created_at)}  {t.team:15s} {t.status:12s} "
            f"{mask_phone(t.caller) or '-':15s} {_details(t.details)}"
        )
    if not found:
        print("no tickets")
    return 0


def cmd_tickets_show(args: argparse.Namespace) -> int:
    _, _, tickets = _runtime_services(args)
    ticket = tickets.get(args.number)
    if ticket is None:
        print(f"ivr: no ticket {args.number}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(ticket.as_dict(), indent=2, ensure_ascii=False))
        return 0
    print(f"ticket {ticket.number}: {ticket.status}  team {ticket.team}  locale {ticket.locale}")
    print(f"caller {mask_phone(ticket.caller) or '-'}  call {ticket.call_id or '-'}")
    print(f"details: {_details(ticket.details)}")
    if ticket.resolution:
        print(f"resolution: {ticket.resolution}")
    for change in ticket.history:
        print(f"  {_when(change.at)}  {change.status:12s} {change.note}")
    return 0


def cmd_tickets_update(args: argparse.Namespace) -> int:
    from ivr.dialog.prompts import PromptBook
    from ivr.session import ticket_messages

    settings, _, tickets = _runtime_services(args)
    ticket = tickets.get(args.number)
    if ticket is None:
        print(f"ivr: no ticket {args.number}", file=sys.stderr)
        return 1
    # the text message goes out in the language of the call that opened the ticket
    messages = ticket_messages(PromptBook(settings.prompts_dir, ticket.locale), settings.brand)
    updated = tickets.update(
        args.number,
        status=args.status,
        resolution=args.resolution,
        note=args.note,
        messages=messages,
    )
    print(f"ticket {updated.number}: {updated.status}")
    if updated.status == "resolved" and ticket.status != "resolved" and updated.caller:
        print(f"text message with the result queued to {mask_phone(updated.caller)}")
    return 0


def cmd_feedback_list(args: argparse.Namespace) -> int:
    from ivr.services.feedback import FeedbackBox

    settings = _settings(args)
    store = _store(args, settings)
    items = FeedbackBox(store, store.path.parent / "feedback").list(
        category=args.category, limit=args.limit
    )
    if args.json:
        print(json.dumps([i.as_dict() for i in items], indent=2, ensure_ascii=False))
        return 0
    for i in items:
        print(
            f"#{i.id:<5d} {_when(i.created_at)}  {i.category:16s} -> {i.queue:11s} "
            f"{i.seconds:5.1f} s  {i.caller or '-':15s} {i.transcript!r}"
        )
        if i.audio_path:
            print(f"        audio: {i.audio_path}")
    if not items:
        print("no feedback")
    return 0


def cmd_flow_graph(args: argparse.Namespace) -> int:
    from ivr.flows.graph import draw

    data = draw(args.name, args.format)
    if args.output:
        Path(args.output).write_bytes(data)
        print(f"wrote {args.output}")
    elif args.format == "mermaid":
        sys.stdout.write(data.decode())
    else:
        print(f"ivr: {args.format} is binary; give -o FILE", file=sys.stderr)
        return 2
    return 0


# --- SIP -----------------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    from ivr.serve import ServeOptions, Server, load_fixtures
    from ivr.session import Runtime

    settings = _settings(args)
    if args.host not in ("127.0.0.1", "::1", "localhost") and not args.allow:
        print(
            f"ivr: serving on {args.host} needs --allow NETWORK for the peers (PBX, proxy) "
            "that may send calls; everything else gets 403",
            file=sys.stderr,
        )
        return 2
    runtime = Runtime(settings, store=_store(args, settings))
    options = ServeOptions(
        host=args.host,
        port=args.port,
        max_calls=args.max_calls,
        agent_uri=args.agent,
        allowed_peers=tuple(args.allow or ()),
        record_dir=Path(args.record) if args.record else None,
        fixtures=load_fixtures(Path(args.fixtures)) if args.fixtures else None,
        grace_s=args.grace,
        ring_s=args.ring,
    )
    server = Server(settings, options, runtime)
    logging.getLogger("ivr").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    server.serve_forever()
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ivr", description="Offline telephone IVR and voice assistant."
    )
    p.add_argument("--version", action="version", version=f"ivr {__version__}")
    p.add_argument(
        "--config", help="TOML configuration file (default: $IVR_CONFIG or <home>/ivr.toml)"
    )
    p.add_argument("--home", help="data directory (default: $IVR_HOME or ~/.local/share/ivr)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="play a whole simulated account-recovery call")
    d.add_argument("--out", default="demo.wav", help="stereo WAV of the call (default demo.wav)")
    d.add_argument("--rate", type=int, default=16000, choices=(8000, 16000), help="channel rate")
    d.add_argument("--locale", help="locale (default from configuration)")
    d.set_defaults(func=cmd_demo)

    qa = sub.add_parser("qa", help="test calls: run, synth").add_subparsers(
        dest="qa", required=True
    )
    r = qa.add_parser("run", help="replay test calls and check what each expects")
    r.add_argument("paths", nargs="+", help="call.yaml files or folders of them")
    r.add_argument("--json", action="store_true", help="print a JSON report on stdout")
    r.add_argument("--junit", help="write a JUnit XML report")
    r.add_argument(
        "--rate",
        type=int,
        default=16000,
        choices=(8000, 16000),
        help="channel sample rate (8000: telephone)",
    )
    r.add_argument("--record", help="folder for a stereo WAV of each call")
    r.set_defaults(func=cmd_qa_run, locale=None)
    s = qa.add_parser("synth", help="write WAV files for a test call's `say:` turns")
    s.add_argument("path")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_qa_synth)

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

    m = sub.add_parser("models", help="Vosk models").add_subparsers(dest="models", required=True)
    ml = m.add_parser("list", help="installed models")
    ml.set_defaults(func=cmd_models_list)
    mi = m.add_parser("install", help="install a model from a known name, URL, archive or folder")
    mi.add_argument("source")
    mi.add_argument("--locale", dest="model_locale", help="locale the model serves, e.g. zh-CN")
    mi.add_argument("--sha256", help="expected SHA-256 of the archive")
    mi.set_defaults(func=cmd_models_install)

    tk = sub.add_parser("tickets", help="review tickets (back office)").add_subparsers(
        dest="tickets", required=True
    )
    tl = tk.add_parser("list", help="tickets, newest first")
    tl.add_argument("--team", help="only this team, e.g. content_review")
    tl.add_argument("--status", choices=("open", "in_progress", "resolved"))
    tl.add_argument("--limit", type=int, default=100)
    tl.add_argument("--db")
    tl.add_argument("--json", action="store_true")
    tl.set_defaults(func=cmd_tickets_list)
    ts = tk.add_parser("show", help="one ticket with its history")
    ts.add_argument("number")
    ts.add_argument("--db")
    ts.add_argument("--json", action="store_true")
    ts.set_defaults(func=cmd_tickets_show)
    tu = tk.add_parser("update", help="move a ticket on; resolving it texts the caller")
    tu.add_argument("number")
    tu.add_argument("--status", choices=("open", "in_progress", "resolved"))
    tu.add_argument("--resolution", help="the team's answer, read and texted to the caller")
    tu.add_argument("--note", help="a note for the history")
    tu.add_argument("--db")
    tu.set_defaults(func=cmd_tickets_update)

    fb = sub.add_parser("feedback", help="spoken feedback (back office)").add_subparsers(
        dest="feedback", required=True
    )
    fl = fb.add_parser("list", help="feedback, newest first")
    fl.add_argument(
        "--category", choices=("feature_request", "bug", "complaint", "praise", "other")
    )
    fl.add_argument("--limit", type=int, default=100)
    fl.add_argument("--db")
    fl.add_argument("--json", action="store_true")
    fl.set_defaults(func=cmd_feedback_list)

    fw = sub.add_parser("flow", help="call flows").add_subparsers(dest="flow", required=True)
    fg = fw.add_parser("graph", help="draw a flow's state machine from its definition")
    fg.add_argument(
        "name",
        help="call (everything), entry, account_recovery, live_streaming, "
        "content_review, ticket_status or feedback",
    )
    fg.add_argument("--format", choices=("mermaid", "svg", "png"), default="mermaid")
    fg.add_argument("-o", "--output", help="file to write (required for svg and png)")
    fg.set_defaults(func=cmd_flow_graph)

    sv = sub.add_parser("serve", help="answer SIP calls")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sv.add_argument("--port", type=int, default=5080, help="SIP port, UDP (default 5080)")
    sv.add_argument("--db", help="SQLite database (default: in the data directory)")
    sv.add_argument("--record", help="folder: each call saved as a test call (call.yaml)")
    sv.add_argument("--fixtures", help="a test call's fixtures block (accounts, code, tickets)")
    sv.add_argument("--agent", help="agents' SIP address for transfers, e.g. sip:agents@pbx:5060")
    sv.add_argument("--allow", action="append", help="network allowed to send INVITEs (repeatable)")
    sv.add_argument("--max-calls", type=int, default=50, help="concurrent calls (then 486)")
    sv.add_argument("--grace", type=float, default=20.0, help="seconds calls get on SIGTERM")
    sv.add_argument("--ring", type=float, default=0.5, help="seconds of ringing before answer")
    sv.add_argument("--locale", help="default locale (the dialled number may choose another)")
    sv.set_defaults(func=cmd_serve)

    c = sub.add_parser("calls", help="call records").add_subparsers(dest="calls", required=True)
    cl = c.add_parser("list", help="recent calls")
    cl.add_argument("--db")
    cl.add_argument("--limit", type=int, default=50)
    cl.add_argument("--json", action="store_true")
    cl.set_defaults(func=cmd_calls_list)
    cs = c.add_parser("show", help="one call: path, turns, transcript")
    cs.add_argument("call_id")
    cs.add_argument("--db")
    cs.add_argument("--json", action="store_true")
    cs.set_defaults(func=cmd_calls_show)

    call = sub.add_parser("call", help="talk to the IVR through a microphone and speaker")
    call.add_argument("--locale")
    call.add_argument("--input", help="input device name or index (see `ivr devices`)")
    call.add_argument("--output", help="output device name or index")
    call.add_argument("--caller-id", help="the caller's number, as a phone line would give it")
    call.add_argument("--record", help="folder for a WAV of what the IVR heard")
    call.add_argument("--db")
    call.add_argument(
        "--echo",
        choices=["half-duplex", "echo-aware"],
        default="half-duplex",
        help="half-duplex for loudspeakers (default), echo-aware for headsets",
    )
    call.add_argument(
        "--push-to-talk",
        action="store_true",
        help="the microphone is live only while talk is on (space toggles)",
    )
    call.set_defaults(func=cmd_call)

    dev = sub.add_parser("devices", help="audio input and output devices")
    dev.set_defaults(func=cmd_devices)

    doc = sub.add_parser("doctor", help="what is installed and which engine serves each locale")
    doc.set_defaults(func=cmd_doctor)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("transitions").setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except IvrError as exc:
        print(f"ivr: {exc}", file=sys.stderr)
        return 2
    except sqlite3.Error as exc:
        print(f"ivr: database error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
