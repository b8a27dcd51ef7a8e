"""`ivr` commands: talking to the IVR through a microphone and speaker."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from ivr.cli.common import DB_HELP, settings_for, show_live, store_for


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

    settings = settings_for(args)
    echo = EchoMode.PUSH_TO_TALK if args.push_to_talk else EchoMode(args.echo)
    channel = MicrophoneChannel(
        input_device=_device(args.input),
        output_device=_device(args.output),
        caller_id=args.caller_id,
        echo=echo,
    )
    if args.record:
        channel.recording = []
    runtime = Runtime(settings, store=store_for(args, settings))
    runtime.accounts.seed_demo()
    runtime.warm_in_background([settings.locale])  # loaded while the welcome plays
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: channel.hang_up_now())
    keys = threading.Thread(target=_keyboard, args=(channel, stop), daemon=True)
    keys.start()
    print(
        f"ivr call ({settings.locale}, {echo}): speak, or type 0-9 * # as the keypad; "
        "Ctrl-C hangs up",
        flush=True,
    )

    from ivr.qa.tape import CallTape

    tape = CallTape(channel) if args.record else None

    def observe(kind: str, data: dict[str, Any]) -> None:
        show_live(kind, data)
        if tape is not None:
            tape.observe(kind, data)

    try:
        result = runtime.run_call(tape or channel, observer=observe)
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
    if tape is not None:
        saved = tape.save(Path(args.record) / result.call_id, result)
        print(
            f"the call as a test call: {saved} "
            f"(ivr qa promote {result.call_id} --recordings {args.record} --out DIR)"
        )
    return 0


def register(sub: Any) -> None:
    call = sub.add_parser("call", help="talk to the IVR through a microphone and speaker")
    call.add_argument("--locale")
    call.add_argument("--input", help="input device name or index (see `ivr devices`)")
    call.add_argument("--output", help="output device name or index")
    call.add_argument("--caller-id", help="the caller's number, as a phone line would give it")
    call.add_argument(
        "--record", help="folder: a WAV of what the IVR heard, and the call as a test call"
    )
    call.add_argument("--db", help=DB_HELP)
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
