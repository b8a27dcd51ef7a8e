"""The microphone channel: a caller at a kiosk or desk, through sounddevice (PortAudio).

The sound-device callbacks only move frames: input frames into a queue, output frames
out of a buffer. Recognition and synthesis never run in them. Over- and underruns are
counted and logged, never fatal.

Echo: with loudspeakers the IVR hears itself, so three modes are offered:

* ``half-duplex`` (default, for speakers): the microphone is muted while a prompt plays
  and for a short tail after it; keys still barge in.
* ``echo-aware`` (headsets): speech barge-in stays on, but a frame counts as the caller
  only when it is louder than what is playing by a margin (little leaks into a headset).
* ``push-to-talk``: the microphone is live only while talk is on (space bar toggles).
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
import time
from typing import Any, Final

import numpy as np

from ivr.channels.base import Channel, ChannelEvent, Frame, HangUp, Key
from ivr.errors import ChannelError
from ivr.speech.audio import Audio, StreamResampler, frame_samples

log = logging.getLogger(__name__)

RATE: Final = 16000
ECHO_TAIL_MS: Final = 300
ECHO_MARGIN: Final = 4.0  # caller must be this many times louder than the playback level
RECEIVE_TIMEOUT_SEC: Final = 1.0


class EchoMode(enum.StrEnum):
    HALF_DUPLEX = "half-duplex"
    ECHO_AWARE = "echo-aware"
    PUSH_TO_TALK = "push-to-talk"


def _sounddevice() -> Any:
    try:
        import sounddevice as sd
    except OSError as exc:
        raise ChannelError(
            "no audio system: the PortAudio library is missing "
            "(install it with: apt-get install libportaudio2)"
        ) from exc
    return sd


# PortAudio error codes that mean "the device is there but cannot be had now"
BUSY_CODES: Final = {-9985, -9993, -9996}  # unavailable, bad config (in use), invalid device


def open_error_message(exc: Exception) -> str:
    """What to tell a person whose audio device could not be opened."""
    code = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else None
    text = str(exc.args[0]) if exc.args else str(exc)
    if code in BUSY_CODES or any(w in text.lower() for w in ("busy", "unavailable", "in use")):
        return (
            f"the audio device is busy or unavailable ({text}): close the program that is "
            "using it, or pick another device with --input/--output (see `ivr devices`)"
        )
    return (
        f"cannot open the audio device ({text}): pick another with --input/--output "
        "(see `ivr devices`)"
    )


def list_devices() -> list[dict[str, Any]]:
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
    except Exception as exc:  # PortAudio errors come as sounddevice.PortAudioError
        raise ChannelError(f"cannot list audio devices: {exc}") from exc
    return [dict(d, index=i) for i, d in enumerate(devices)]


def _device_rate(sd: Any, device: str | int | None, kind: str) -> int:
    try:
        info = sd.query_devices(device, kind)
    except (ValueError, Exception) as exc:
        raise ChannelError(
            f"no {kind} device {device!r}: {exc} (see `ivr devices` for the list)"
        ) from exc
    return int(info["default_samplerate"] or RATE)


class MicrophoneChannel(Channel):
    name = "microphone"

    def __init__(
        self,
        *,
        input_device: str | int | None = None,
        output_device: str | int | None = None,
        caller_id: str | None = None,
        echo: EchoMode = EchoMode.HALF_DUPLEX,
    ) -> None:
        self.sample_rate = RATE
        self.caller_id = caller_id
        self.echo = echo
        self.talk = echo is not EchoMode.PUSH_TO_TALK
        self.overruns = 0
        self.underruns = 0
        self._events: queue.Queue[ChannelEvent] = queue.Queue(maxsize=2000)
        self._hang_up_asked = False
        self._frame = frame_samples(RATE)
        self._out = np.zeros(0, dtype=np.int16)
        self._out_lock = threading.Lock()
        self._tail_frames = 0
        self._play_level = 0.0
        self._closed = False
        self._private = False
        self.recording: list[np.ndarray] | None = None  # what the dialog heard, when kept
        sd = _sounddevice()
        in_rate = _device_rate(sd, input_device, "input")
        out_rate = _device_rate(sd, output_device, "output")
        self._in_resampler = StreamResampler(in_rate, RATE)
        self._out_rate = out_rate
        self._pending_in = np.zeros(0, dtype=np.int16)
        try:
            self._input = sd.InputStream(
                device=input_device,
                samplerate=in_rate,
                channels=1,
                dtype="int16",
                blocksize=in_rate // 50,
                callback=self._on_input,
            )
            self._output = sd.OutputStream(
                device=output_device,
                samplerate=out_rate,
                channels=1,
                dtype="int16",
                blocksize=out_rate // 50,
                callback=self._on_output,
            )
            self._input.start()
            self._output.start()
        except Exception as exc:  # sounddevice.PortAudioError and friends
            raise ChannelError(open_error_message(exc)) from exc

    # --- callbacks: only move frames ---------------------------------------------------------
    def _on_input(self, indata: np.ndarray, frames: int, _time: Any, status: Any) -> None:
        if status and status.input_overflow:
            self.overruns += 1
        try:
            self._events.put_nowait(Frame(indata[:, 0].copy(), time.perf_counter()))
        except queue.Full:
            self.overruns += 1

    def _on_output(self, outdata: np.ndarray, frames: int, _time: Any, status: Any) -> None:
        if status and status.output_underflow:
            self.underruns += 1
        with self._out_lock:
            chunk = self._out[:frames]
            self._out = self._out[frames:]
        outdata[: len(chunk), 0] = chunk
        outdata[len(chunk) :, 0] = 0

    # --- Channel -----------------------------------------------------------------------------
    def receive(self) -> ChannelEvent:
        while True:
            if self._hang_up_asked:
                self._hang_up_asked = False
                return HangUp()
            try:
                event = self._events.get(timeout=RECEIVE_TIMEOUT_SEC)
            except queue.Empty as exc:
                if self._closed:
                    return HangUp("closed")
                raise ChannelError("the audio input stopped delivering frames") from exc
            if not isinstance(event, Frame):
                return event
            samples = self._resample_in(event.samples)
            if samples is not None:
                heard = self._gate(samples)
                if self.recording is not None:  # a code's span is kept as silence
                    self.recording.append(np.zeros_like(heard) if self._private else heard)
                return Frame(heard, event.at)

    def _resample_in(self, samples: np.ndarray) -> np.ndarray | None:
        self._pending_in = np.concatenate([self._pending_in, self._in_resampler.process(samples)])
        if len(self._pending_in) < self._frame:
            return None
        frame, self._pending_in = self._pending_in[: self._frame], self._pending_in[self._frame :]
        return frame

    def _gate(self, frame: np.ndarray) -> np.ndarray:
        """What the dialog hears, given the echo mode."""
        playing = self.is_playing()
        if playing:
            self._tail_frames = ECHO_TAIL_MS // 20
        elif self._tail_frames:
            self._tail_frames -= 1
        if not self.talk:
            return np.zeros_like(frame)
        if self.echo is EchoMode.HALF_DUPLEX and (playing or self._tail_frames):
            return np.zeros_like(frame)
        if self.echo is EchoMode.ECHO_AWARE and playing:
            level = float(np.abs(frame.astype(np.int32)).mean())
            if level < ECHO_MARGIN * self._play_level:
                return np.zeros_like(frame)
        return frame

    def play(self, audio: Audio) -> None:
        samples = audio.to_rate(self._out_rate).samples
        self._play_level = float(np.abs(audio.samples.astype(np.int32)).mean()) * 0.05
        with self._out_lock:
            self._out = samples.astype(np.int16)

    def stop_playback(self) -> None:
        with self._out_lock:
            self._out = np.zeros(0, dtype=np.int16)

    def is_playing(self) -> bool:
        with self._out_lock:
            return len(self._out) > 0

    def press(self, key: str) -> None:
        """A key from the keyboard (thread-safe)."""
        if key == " " and self.echo is EchoMode.PUSH_TO_TALK:
            self.talk = not self.talk
            return
        self._events.put(Key(key, time.perf_counter()))

    def private(self, on: bool) -> None:
        self._private = on

    def hang_up_now(self) -> None:
        """Hang up from a signal handler (Ctrl-C): a plain flag, since a queue's lock may be
        held by the very thread the handler interrupts. Seen within a frame (20 ms)."""
        self._hang_up_asked = True

    def hang_up(self) -> None:
        # let the goodbye finish playing before the streams close
        deadline = 0
        while self.is_playing() and deadline < 1500:
            threading.Event().wait(0.02)
            deadline += 1

    def close(self) -> None:
        self._closed = True
        for stream in (self._input, self._output):
            try:
                stream.stop()
                stream.close()
            except Exception:  # closing a stream that already failed
                log.debug("stream close failed", exc_info=True)
        if self.overruns or self.underruns:
            log.warning("audio overruns %d, underruns %d", self.overruns, self.underruns)
