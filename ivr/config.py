"""Settings: a TOML file plus environment variables, one object passed down.

Order of precedence: built-in defaults < TOML file (``$IVR_CONFIG`` or
``<home>/ivr.toml``) < ``IVR_*`` environment variables < command-line options.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ivr.errors import ConfigError

REPO_ROOT: Final = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Timeouts:
    """Listening windows in milliseconds (elderly-friendly defaults)."""

    no_input_ms: int = 8000
    no_input_yes_no_ms: int = 6000
    end_silence_ms: int = 750
    end_silence_digits_ms: int = 1500
    end_silence_complete_ms: int = 400
    # after this much silence a whole-utterance recogniser (Whisper) starts decoding while
    # the turn may still go on: a complete answer then ends the turn as soon as it is heard
    # (0: off, Whisper starts when the turn has ended)
    early_decode_ms: int = 400
    # once the streaming decoder has heard a whole answer (the turn then ends after
    # end_silence_complete_ms), Whisper's second opinion may start after this much silence
    # when no other answer is being decoded, so that it is ready about when the turn ends.
    # 0 (the default): not before early_decode_ms. 150 halves one call's menu reply, but
    # Whisper then misheard the menu answer now and then (README, Recognition)
    early_decode_complete_ms: int = 0
    max_speech_ms: int = 15000
    inter_digit_ms: int = 5000
    # at a read-back, a lone first key waits this long for more (a number, or * and its
    # last digits) before it counts as 1 = yes, 2 = no; # decides at once
    read_back_key_ms: int = 2500
    end_silence_recording_ms: int = 2500
    max_recording_ms: int = 60000


@dataclass(frozen=True)
class Voice:
    """Synthesis settings: the voice per locale and speaking rates (wpm, measured on the audio)."""

    rate_wpm: int = 150
    digits_rate_wpm: int = 120
    slower_step_wpm: int = 10
    min_rate_wpm: int = 125
    sentence_pause_ms: int = 450
    group_pause_ms: int = 350
    slower_extra_pause_ms: int = 250
    digit_pause_ms: int = 120  # between the digits of one group in a read-back
    # voice per locale: "auto" (the locale's natural voice when installed, else the best
    # espeak-ng voice), "piper:<voice>" (ivr/data/voices.toml) or an espeak-ng voice name
    voices: dict[str, str] = field(default_factory=lambda: {"en-US": "auto", "zh-CN": "auto"})


@dataclass(frozen=True)
class Patient:
    """Patient mode (``[patient]``): when a call switches to it, what changes, how long it is
    remembered for the caller's number."""

    slower_requests: int = 2  # the caller's "slower" this many times in a call switches it on
    failures_in_a_row: int = 2  # or this many asks in a row ending in no input or no match
    slower: int = 2  # the speaking speed it starts at (levels of "slower": rate and pauses)
    no_input_ms: int = 12000  # the no-input timeout of every ask
    remember_days: float = 180.0  # the next call from the number starts patient until then


@dataclass(frozen=True)
class Recognition:
    """Which engine hears which kind of ask (measured: README, "Recognition"), and where.

    A route is ``grammar`` (the grammar decoder alone), ``whisper`` (the transcriber
    alone) or ``grammar+whisper`` (the grammar decoder, and Whisper as a second opinion
    when the decoder is unsure, heard nothing it knows, or heard a global command).
    """

    whisper: bool = True  # use Whisper wherever an installed model serves the locale
    workers: int = -1  # recognition worker processes; -1: one per core; 0: in the call's process
    grammar_hosts: int = -1  # PocketSphinx host processes; -1: as many as workers; 0: in-process
    grammar_decoders: int = 8  # grammar decoders (pairs) per process that hear callers at once
    # `ivr serve`: recognition and voice processes run this much nicer than the calls'
    # process, so that on a busy machine the media clock and the dialogs get the CPU first
    worker_nice: int = 5
    threads_per_worker: int = 1
    beam_size: int = 5
    # grammar+whisper, at an undoable ask (a walkthrough step): the decoder's answer stands
    # alone from this confidence up; elsewhere Whisper always hears it
    second_opinion_below: float = 0.9
    # grammar+whisper: Whisper first hears the utterance over a window this long, and the
    # decoder's answer stands if it agrees; else over its whole 30 s window (0: never)
    quick_opinion_sec: float = 10.0
    # Whisper hears an ask for a number of several digits over a window this long, when the
    # utterance fits in it (30: the whole window, as at every other ask)
    number_window_sec: float = 15.0
    digits: str = "whisper"  # phone numbers, codes, ticket numbers
    phrases: str = "grammar+whisper"  # yes/no, menus, step commands
    dictation: str = "whisper"  # feedback


@dataclass(frozen=True)
class SipSecurity:
    """Who may call ``ivr serve`` from outside the ``--allow`` networks (``[sip]``).

    ``users`` maps a SIP user name to its HA1 hashes, never its password:
    ``[sip.users.alice]`` with ``ha1_sha256`` and/or ``ha1_md5`` (``ivr sip hash alice``
    prints them). Flood control counts initial requests per source address.
    """

    realm: str = "ivr"
    users: dict[str, Any] = field(default_factory=dict)
    # digest challenges, most preferred first (old phones may read only the first one)
    algorithms: list[str] = field(default_factory=lambda: ["SHA-256", "MD5"])
    nonce_ttl_s: float = 300.0
    # shared by the servers behind one proxy, so a nonce one issued is good on the others
    # (empty: each server draws its own at start)
    nonce_secret: str = ""
    rate_per_s: float = 10.0  # initial requests a source may send per second (then slowed)
    burst: int = 30
    drop_limit: int = 50  # requests dropped while slowed before the source is blocked
    fail_limit: int = 5  # failed authentications within a minute before it is blocked
    block_s: float = 300.0
    retry_after_s: int = 10  # Retry-After of the 503 over --max-calls


@dataclass(frozen=True)
class RecoveryLimits:
    """How often account recovery may be tried (``[recovery]``), counted in the store.

    An attempt is one number put forward for recovery: the caller-ID account the caller
    confirmed, or a number keyed or spoken and confirmed (bound to an account or not). New
    codes and resends within an attempt do not count (codes have their own limits). Over a
    limit the caller goes to an agent (reason ``security_hold``).
    """

    attempts_per_account: int = 5  # attempts on one account within the window
    attempts_per_caller: int = 5  # attempts from one calling number within the window
    accounts_per_caller: int = 3  # distinct accounts from one calling number: a ticket
    window_s: float = 24 * 3600.0


@dataclass(frozen=True)
class Settings:
    home: Path
    brand: str = "StreamTube"
    # the brand as callers of a locale know it (spoken and texted); others use ``brand``
    brands: dict[str, str] = field(default_factory=lambda: {"zh-CN": "流管视频"})
    locale: str = "en-US"
    prompts_dir: Path = REPO_ROOT / "prompts"
    grammars_dir: Path = REPO_ROOT / "grammars"
    confidence_accept: float = 0.6
    # dialled number (DNIS) -> locale, e.g. {"4008001001" = "zh-CN"}; others use ``locale``
    dnis: dict[str, str] = field(default_factory=dict)
    confidence_reject: float = 0.45
    timeouts: Timeouts = field(default_factory=Timeouts)
    voice: Voice = field(default_factory=Voice)
    asr: Recognition = field(default_factory=Recognition)
    models: Path | None = None  # models directory (default: <home>/models; $IVR_MODELS)
    sip: SipSecurity = field(default_factory=SipSecurity)
    recovery: RecoveryLimits = field(default_factory=RecoveryLimits)
    patient: Patient = field(default_factory=Patient)
    # key of the caller-number hashes that remember callers across calls (shared by the
    # servers of one store; empty: one drawn once and kept in <home>/caller.key)
    caller_secret: str = ""

    @property
    def db_path(self) -> Path:
        return self.home / "ivr.sqlite3"

    @property
    def models_dir(self) -> Path:
        return self.models or self.home / "models"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def recordings_dir(self) -> Path:
        return self.home / "recordings"

    def brand_for(self, locale: str) -> str:
        return self.brands.get(locale, self.brand)

    def with_(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def default_home() -> Path:
    env = os.environ.get("IVR_HOME")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".local" / "share" / "ivr"


def _merge(cls: type, base: Any, data: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    changes: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown setting {key!r} (expected one of {sorted(known)})")
        current = getattr(base, key)
        name = f"{where}.{key}"
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{name}: expected a table, got {type(value).__name__}")
            changes[key] = _merge(type(current), current, value, name)
        elif isinstance(current, Path) or "Path" in str(known[key].type):
            if not isinstance(value, str | Path) or not str(value):
                raise ConfigError(f"{name}: expected a path, got {value!r}")
            changes[key] = Path(str(value)).expanduser()
        elif isinstance(current, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{name}: expected true or false, got {value!r}")
            changes[key] = value
        elif isinstance(current, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{name}: expected a table, got {type(value).__name__}")
            changes[key] = {**current, **value}
        elif isinstance(current, list):
            if not isinstance(value, list):
                raise ConfigError(f"{name}: expected a list, got {type(value).__name__}")
            changes[key] = list(value)
        elif isinstance(current, int | float | str):
            changes[key] = _scalar(type(current), value, name)
        else:
            changes[key] = value
    return dataclasses.replace(base, **changes)


def _scalar(kind: type, value: Any, name: str) -> Any:
    """A number or text setting: the file's value as that type, or a clear error (text from
    the environment converts to numbers; a table or a list never becomes text)."""
    if isinstance(value, bool | list | dict):
        raise ConfigError(f"{name}: expected {kind.__name__}, got {value!r}")
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise ConfigError(f"{name}: expected a whole number, got {value!r}")
    try:
        return kind(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConfigError(f"{name}: expected {kind.__name__}, got {value!r}") from exc


def load_settings(
    config_file: Path | None = None, *, home: Path | None = None, **overrides: Any
) -> Settings:
    """Build the settings object from defaults, the TOML file, environment and overrides."""
    settings = Settings(home=home or default_home())
    path = config_file or (Path(os.environ["IVR_CONFIG"]) if "IVR_CONFIG" in os.environ else None)
    if path is None and (settings.home / "ivr.toml").exists():
        path = settings.home / "ivr.toml"
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"configuration file not found: {path}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        settings = _merge(Settings, settings, data, str(path))
    env: dict[str, Any] = {}
    for key in ("brand", "locale"):
        if f"IVR_{key.upper()}" in os.environ:
            env[key] = os.environ[f"IVR_{key.upper()}"]
    if os.environ.get("IVR_CALLER_SECRET"):
        env["caller_secret"] = os.environ["IVR_CALLER_SECRET"]
    if os.environ.get("IVR_MODELS"):
        env["models"] = os.environ["IVR_MODELS"]
    if env:
        settings = _merge(Settings, settings, env, "environment")
    clean = {k: v for k, v in overrides.items() if v is not None}
    if clean:
        settings = _merge(Settings, settings, clean, "options")
    check_locales(settings)
    if settings.asr.grammar_decoders < 1:
        raise ConfigError(
            f"asr.grammar_decoders: expected 1 or more, got {settings.asr.grammar_decoders}"
        )
    if not 0 <= settings.asr.worker_nice <= 19:
        raise ConfigError(f"asr.worker_nice: expected 0 to 19, got {settings.asr.worker_nice}")
    quick = settings.asr.quick_opinion_sec
    if quick != 0 and not 1 <= quick <= 30:
        raise ConfigError(f"asr.quick_opinion_sec: expected 0 (off) or 1 to 30, got {quick}")
    if not 5 <= settings.asr.number_window_sec <= 30:
        raise ConfigError(
            f"asr.number_window_sec: expected 5 to 30, got {settings.asr.number_window_sec}"
        )
    return settings


def check_locales(settings: Settings) -> None:
    """Every locale the settings name (default and DNIS mapping) must have prompts."""
    named = {"locale": settings.locale} | {f"dnis.{k}": v for k, v in settings.dnis.items()}
    for where, locale in named.items():
        if not (settings.prompts_dir / str(locale)).is_dir():
            known = sorted(p.name for p in settings.prompts_dir.iterdir() if p.is_dir())
            raise ConfigError(f"{where}: unknown locale {locale!r}; expected one of {known}")
