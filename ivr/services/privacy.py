"""Masking of personal data for logs, transcripts and agent screens."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path
from typing import Final

CALLER_KEY_FILE: Final = "caller.key"
_LONG_DIGITS: Final = re.compile(r"(?<!\d)(\d[\d \-]{4,}\d)(?!\d)")


def mask_phone(number: str | None) -> str | None:
    """Only the last four digits of a phone number are ever shown."""
    if not number:
        return number
    digits = re.sub(r"\D", "", number)
    if len(digits) <= 4:
        return "*" * len(digits)
    return "*" * (len(digits) - 4) + digits[-4:]


def mask_code(code: str | None) -> str | None:
    return None if code is None else "*" * len(code)


def scrub(text: str) -> str:
    """Mask every run of 6 or more digits in free text (codes, phone numbers)."""

    def repl(m: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", m.group(1))
        if len(digits) < 6:
            return m.group(1)
        return mask_phone(digits) if len(digits) >= 7 else "*" * len(digits)  # type: ignore[return-value]

    return _LONG_DIGITS.sub(repl, text)


def caller_key(number: str | None, secret: bytes) -> str | None:
    """A keyed hash (HMAC-SHA256) of a phone number's digits: calls from one number share it,
    and the number cannot be read back from it without the secret."""
    digits = re.sub(r"\D", "", number or "")
    if not digits:
        return None
    return hmac.new(secret, digits.encode(), hashlib.sha256).hexdigest()


def secret_key(configured: str, home: Path) -> bytes:
    """The key of the number hashes: the configured one (the same on every server of a
    store), else one drawn once and kept in ``<home>/caller.key`` (readable by its owner)."""
    if configured:
        return configured.encode()
    path = home / CALLER_KEY_FILE
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        pass
    home.mkdir(parents=True, exist_ok=True)
    draft = home / f".{CALLER_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(secrets.token_hex(32).encode())
    try:
        os.link(draft, path)  # whole or not at all; the first process to draw one wins
    except FileExistsError:
        pass
    finally:
        draft.unlink()
    return bytes.fromhex(path.read_text(encoding="ascii").strip())
