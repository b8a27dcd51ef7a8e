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


def caller_hash(number: str, key: bytes) -> str:
    """The keyed hash (HMAC-SHA256) a caller's number is kept under instead of the number.

    Only the digits count, so ``+86 138-0013-8000`` and ``+8613800138000`` are one caller.
    """
    digits = re.sub(r"\D", "", number)
    return hmac.new(key, digits.encode(), hashlib.sha256).hexdigest()


def caller_key(configured: str, home: Path) -> bytes:
    """The key of :func:`caller_hash`: the configured one, else a random key made once and
    kept (owner-only) in ``<home>/caller.key``."""
    if configured:
        return configured.encode()
    path = home / CALLER_KEY_FILE
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        pass
    home.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    try:  # created exclusively: two processes starting at once keep the first one's key
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key.hex())
    return key
