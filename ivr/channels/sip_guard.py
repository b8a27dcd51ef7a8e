"""Who may call: SIP digest authentication and per-source flood control.

Pure logic, no SIP library: :mod:`ivr.channels.sip_stack` asks it about each request.

* **Digest** (RFC 3261 §22, RFC 7616 for SHA-256 as RFC 8760 brings it to SIP): users from
  the configuration with stored HA1 hashes (``H(user:realm:password)``), never passwords.
  A challenge offers SHA-256 first and MD5 for old phones (the order is configurable:
  some old phones read only the first challenge and know only MD5). Nonces are signed and dated
  (no state to keep until used), expire after ``nonce_ttl_s`` (then the peer is told
  ``stale=true`` and retries without asking its user again), and a nonce is accepted only
  with a nonce count higher than any seen before for it (without ``qop``, once): a
  captured request replayed is refused.
* **Flood control**, counted per source IP address (a scanner changes ports at will): each
  source gets a bucket
  of initial requests (INVITE, OPTIONS, REGISTER, ...) refilled at ``rate_per_s``; past it
  the requests are dropped unanswered (slowed); a source that goes on being dropped, or
  that fails authentication ``fail_limit`` times in ``window_s``, is blocked for
  ``block_s``: everything it sends is dropped before parsing. The tables are bounded
  (``max_sources``, ``max_nonces``), so memory stays flat whatever arrives.
"""

from __future__ import annotations

import collections
import enum
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from ivr.errors import ConfigError

log = logging.getLogger(__name__)

NONCE_TTL_S: Final = 300.0
MAX_NONCES: Final = 20000
MAX_SOURCES: Final = 20000
MAX_HEADER_CHARS: Final = 4096
_PARAM: Final = re.compile(r'([A-Za-z][\w-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,"]+)\s*(?:,|$)')


class Algorithm(enum.StrEnum):
    SHA256 = "SHA-256"
    MD5 = "MD5"


_HASHES: Final = {Algorithm.SHA256: hashlib.sha256, Algorithm.MD5: hashlib.md5}
_HEX_CHARS: Final = {Algorithm.SHA256: 64, Algorithm.MD5: 32}
CONFIG_KEYS: Final = {Algorithm.SHA256: "ha1_sha256", Algorithm.MD5: "ha1_md5"}


def _h(algorithm: Algorithm, text: str) -> str:
    return _HASHES[algorithm](text.encode()).hexdigest()


def algorithms_from_config(raw: object, where: str = "sip.algorithms") -> tuple[Algorithm, ...]:
    """The challenge order from ``ivr.toml`` (e.g. ``["SHA-256", "MD5"]``), checked."""
    if not isinstance(raw, list | tuple) or not raw:
        raise ConfigError(f'{where}: expected a list such as ["SHA-256", "MD5"], got {raw!r}')
    out: list[Algorithm] = []
    for item in raw:
        try:
            out.append(Algorithm(str(item).upper()))
        except ValueError as exc:
            raise ConfigError(f"{where}: expected SHA-256 or MD5, got {item!r}") from exc
    return tuple(dict.fromkeys(out))


def ha1(user: str, realm: str, password: str, algorithm: Algorithm) -> str:
    """``H(user:realm:password)``: what the configuration stores for a SIP user."""
    return _h(algorithm, f"{user}:{realm}:{password}")


@dataclass(frozen=True)
class SipUser:
    name: str
    ha1: Mapping[Algorithm, str]


def users_from_config(raw: Mapping[str, object], where: str = "sip.users") -> dict[str, SipUser]:
    """``{name: {ha1_sha256 = "...", ha1_md5 = "..."}}`` from ``ivr.toml``, checked."""
    users: dict[str, SipUser] = {}
    for name, entry in raw.items():
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}.{name}: expected a table, got {type(entry).__name__}")
        unknown = set(entry) - set(CONFIG_KEYS.values())
        if unknown:
            raise ConfigError(
                f"{where}.{name}: unknown keys {sorted(unknown)}; expected"
                f" {sorted(CONFIG_KEYS.values())} (HA1 hashes only, never passwords)"
            )
        hashes: dict[Algorithm, str] = {}
        for algorithm, key in CONFIG_KEYS.items():
            value = entry.get(key)
            if value is None:
                continue
            text = str(value).lower()
            if len(text) != _HEX_CHARS[algorithm] or not all(c in "0123456789abcdef" for c in text):
                raise ConfigError(
                    f"{where}.{name}.{key}: expected {_HEX_CHARS[algorithm]} hex digits"
                    f" ({algorithm} of user:realm:password), got {len(text)} characters"
                )
            hashes[algorithm] = text
        if not hashes:
            raise ConfigError(f"{where}.{name}: expected ha1_sha256 and/or ha1_md5")
        users[str(name)] = SipUser(str(name), hashes)
    return users


def parse_digest(header: str) -> dict[str, str]:
    """The parameters of a ``Digest ...`` Authorization header (lower-case names).

    Raises ValueError with what was expected for anything that is not one.
    """
    if len(header) > MAX_HEADER_CHARS:
        raise ValueError(f"expected a header of at most {MAX_HEADER_CHARS} characters")
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "digest":
        raise ValueError(f"expected the Digest scheme, got {scheme[:20]!r}")
    params: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        match = _PARAM.match(rest, pos)
        if match is None:
            raise ValueError(
                f"expected name=value at character {pos}, got {rest[pos : pos + 20]!r}"
            )
        value = match.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[match.group(1).lower()] = value
        pos = match.end()
        while pos < len(rest) and rest[pos] in " \t":
            pos += 1
    return params


def _same_target(digest_uri: str, request_uri: str) -> bool:
    """The credentials' URI names the request's: equal, or the same host and port with the
    user part left out (SIPp, some phones)."""
    if digest_uri == request_uri:
        return True

    def host(uri: str) -> str:
        scheme, _, rest = uri.partition(":")
        return f"{scheme.lower()}:{rest.rpartition('@')[2].split(';')[0].lower()}"

    return host(digest_uri) == host(request_uri) and "@" not in digest_uri


class Verdict(enum.StrEnum):
    OK = "ok"
    MISSING = "missing"  # no credentials, or a nonce not ours: challenge (not a failure)
    STALE = "stale"  # a nonce of ours that expired: challenge with stale=true
    FAILED = "failed"  # wrong password, unknown user, forged or replayed nonce


@dataclass(frozen=True)
class AuthResult:
    verdict: Verdict
    user: str | None = None
    reason: str = ""


class DigestAuth:
    """Challenges and checks credentials for one realm."""

    def __init__(
        self,
        users: Mapping[str, SipUser],
        *,
        realm: str,
        nonce_ttl_s: float = NONCE_TTL_S,
        clock: Callable[[], float] = time.time,
        max_nonces: int = MAX_NONCES,
        algorithms: tuple[Algorithm, ...] = (Algorithm.SHA256, Algorithm.MD5),
        secret: bytes | None = None,
    ) -> None:
        if not algorithms:
            raise ConfigError("sip.algorithms: expected at least one of SHA-256, MD5")
        self.algorithms = algorithms
        self.users = dict(users)
        self.realm = realm
        self.nonce_ttl_s = nonce_ttl_s
        self.clock = clock
        self.max_nonces = max_nonces
        # nonces are signed with this; servers behind one proxy share it ([sip] nonce_secret)
        # so a nonce one issued is good on the others
        self._secret = secret or secrets.token_bytes(32)
        self._seen: collections.OrderedDict[str, int] = collections.OrderedDict()

    # --- nonces ------------------------------------------------------------------------------
    def _sign(self, body: str) -> str:
        return hmac.new(self._secret, body.encode(), hashlib.sha256).hexdigest()[:32]

    def new_nonce(self) -> str:
        body = f"{int(self.clock() * 1000):x}.{secrets.token_hex(8)}"
        return f"{body}.{self._sign(body)}"

    def _nonce_age(self, nonce: str) -> float | None:
        """Seconds since we issued ``nonce``; None when it is not one of ours."""
        body, _, mac = nonce.rpartition(".")
        if not body or not hmac.compare_digest(self._sign(body), mac):
            return None
        try:
            issued_ms = int(body.split(".", 1)[0], 16)
        except ValueError:
            return None
        return self.clock() - issued_ms / 1000

    def challenges(self, *, stale: bool = False) -> list[str]:
        """``WWW-Authenticate`` values, most preferred first (RFC 8760 §2.4)."""
        nonce = self.new_nonce()
        extra = ", stale=true" if stale else ""
        return [
            f'Digest realm="{self.realm}", nonce="{nonce}", algorithm={a}, qop="auth"{extra}'
            for a in self.algorithms
        ]

    # --- checking ----------------------------------------------------------------------------
    def check(self, method: str, uri: str | None, header: str | None) -> AuthResult:
        if not header:
            return AuthResult(Verdict.MISSING)
        try:
            p = parse_digest(header)
        except ValueError as exc:
            return AuthResult(Verdict.FAILED, reason=f"malformed credentials: {exc}")
        name = p.get("username", "")
        try:
            algorithm = Algorithm(p.get("algorithm", "MD5").upper())
        except ValueError:
            algorithm = None
        if algorithm not in self.algorithms:
            return AuthResult(Verdict.FAILED, name, f"unsupported algorithm {p.get('algorithm')!r}")
        for key in ("realm", "nonce", "uri", "response"):
            if key not in p:
                return AuthResult(Verdict.FAILED, name, f"credentials without {key}")
        if p["realm"] != self.realm:
            return AuthResult(Verdict.FAILED, name, f"expected realm {self.realm!r}")
        age = self._nonce_age(p["nonce"])
        if age is None or age < -5:
            # not ours (another server's, or from before a restart): a fresh challenge, as
            # for no credentials; a forger gains nothing from it
            return AuthResult(Verdict.MISSING, name, "a nonce we did not issue")
        if uri is not None and not _same_target(p["uri"], uri):
            return AuthResult(
                Verdict.FAILED,
                name,
                f"credentials for another request URI: {p['uri'][:80]!r}, not {uri[:80]!r}",
            )
        user = self.users.get(name)
        stored = user.ha1.get(algorithm) if user is not None else None
        qop = p.get("qop")
        if qop is not None and qop != "auth":
            return AuthResult(Verdict.FAILED, name, f"unsupported qop {qop!r}")
        nc = 0
        if qop:
            try:
                nc = int(p.get("nc", ""), 16)
            except ValueError:
                return AuthResult(Verdict.FAILED, name, "expected a hexadecimal nonce count")
            if "cnonce" not in p:
                return AuthResult(Verdict.FAILED, name, "qop without cnonce")
        # the response is computed even for an unknown user, so both take the same time
        ha1_value = stored or _h(algorithm, f"{name}:{self.realm}:{secrets.token_hex(8)}")
        ha2 = _h(algorithm, f"{method}:{p['uri']}")
        if qop:
            expected = _h(
                algorithm, f"{ha1_value}:{p['nonce']}:{p['nc']}:{p['cnonce']}:{qop}:{ha2}"
            )
        else:
            expected = _h(algorithm, f"{ha1_value}:{p['nonce']}:{ha2}")
        if not hmac.compare_digest(expected, p["response"].lower()) or stored is None:
            return AuthResult(Verdict.FAILED, name, "wrong credentials")
        if age > self.nonce_ttl_s:
            return AuthResult(Verdict.STALE, name, "the nonce expired")
        last = self._seen.get(p["nonce"])
        if last is not None and (not qop or nc <= last):
            return AuthResult(Verdict.FAILED, name, "a replayed nonce")
        self._seen[p["nonce"]] = nc
        self._seen.move_to_end(p["nonce"])
        while len(self._seen) > self.max_nonces:  # the oldest are past their lifetime first
            self._seen.popitem(last=False)
        return AuthResult(Verdict.OK, name)


@dataclass
class _Source:
    tokens: float
    stamp: float
    dropped: int = 0
    fails: collections.deque[float] = field(default_factory=collections.deque)
    blocked_until: float = 0.0


class SourceGuard:
    """Slows, then blocks, sources that flood or keep failing authentication."""

    def __init__(
        self,
        *,
        rate_per_s: float = 10.0,
        burst: int = 30,
        drop_limit: int = 50,
        fail_limit: int = 5,
        window_s: float = 60.0,
        block_s: float = 300.0,
        max_sources: int = MAX_SOURCES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.drop_limit = drop_limit
        self.fail_limit = fail_limit
        self.window_s = window_s
        self.block_s = block_s
        self.max_sources = max_sources
        self.clock = clock
        self._sources: collections.OrderedDict[str, _Source] = collections.OrderedDict()
        self.blocks = 0

    def _get(self, addr: tuple[str, int]) -> _Source:
        ip = addr[0]
        source = self._sources.get(ip)
        now = self.clock()
        if source is None:
            source = _Source(tokens=float(self.burst), stamp=now)
            self._sources[ip] = source
            while len(self._sources) > self.max_sources:
                self._sources.popitem(last=False)
        else:
            self._sources.move_to_end(ip)
        return source

    def blocked(self, addr: tuple[str, int]) -> bool:
        source = self._sources.get(addr[0])
        return source is not None and source.blocked_until > self.clock()

    def _block(self, addr: tuple[str, int], source: _Source, why: str) -> None:
        source.blocked_until = self.clock() + self.block_s
        source.dropped = 0
        source.fails.clear()
        self.blocks += 1
        log.warning("source %s blocked for %.0f s: %s", addr[0], self.block_s, why)

    def admit(self, addr: tuple[str, int]) -> bool:
        """An initial request from ``addr``: True to handle it, False to drop it."""
        source = self._get(addr)
        now = self.clock()
        if source.blocked_until > now:
            return False
        source.tokens = min(self.burst, source.tokens + (now - source.stamp) * self.rate_per_s)
        source.stamp = now
        if source.tokens >= 1:
            source.tokens -= 1
            source.dropped = max(0, source.dropped - 1)
            return True
        source.dropped += 1
        if source.dropped == 1:
            log.info("source %s slowed: over %.0f requests/s", addr[0], self.rate_per_s)
        if source.dropped >= self.drop_limit:
            self._block(addr, source, f"flooding (over {self.rate_per_s:.0f} requests/s)")
        return False

    def failed(self, addr: tuple[str, int]) -> None:
        """A failed authentication from ``addr``."""
        source = self._get(addr)
        now = self.clock()
        source.fails.append(now)
        while source.fails and source.fails[0] < now - self.window_s:
            source.fails.popleft()
        if len(source.fails) >= self.fail_limit and source.blocked_until <= now:
            self._block(addr, source, f"{len(source.fails)} failed authentications")

    def __len__(self) -> int:
        return len(self._sources)
