"""Digest authentication and flood control, as logic (the SIP tests use real peers)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ivr.channels.sip_guard import (
    Algorithm,
    DigestAuth,
    SourceGuard,
    Verdict,
    ha1,
    parse_digest,
    users_from_config,
)
from ivr.errors import ConfigError

REALM = "ivr"
URI = "sip:ivr@127.0.0.1:5080"
HASH = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def client(
    algorithm: str,
    user: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    *,
    nc: str = "00000001",
    cnonce: str = "0a4f113b",
    qop: str | None = "auth",
) -> str:
    """A client's digest response, written straight from RFC 7616 §3.4.1."""

    def h(text: str) -> str:
        return HASH[algorithm](text.encode()).hexdigest()

    a1, a2 = h(f"{user}:{realm}:{password}"), h(f"{method}:{uri}")
    if qop:
        return h(f"{a1}:{nonce}:{nc}:{cnonce}:{qop}:{a2}")
    return h(f"{a1}:{nonce}:{a2}")


def test_client_matches_the_rfc_examples() -> None:
    # RFC 2617 §3.5 (MD5) and RFC 7616 §3.9.1 (SHA-256 and MD5)
    assert (
        client(
            "MD5",
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        )
        == "6629fae49393a05397450978507c4ef1"
    )
    nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
    cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
    args = ("Mufasa", "http-auth@example.org", "Circle of Life", "GET", "/dir/index.html", nonce)
    assert client("SHA-256", *args, cnonce=cnonce) == (
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    )
    assert client("MD5", *args, cnonce=cnonce) == "8ca523f5e9506fed4657c9700eebdbec"


class Clock:
    def __init__(self) -> None:
        self.t = 1_764_000_000.0

    def __call__(self) -> float:
        return self.t


def make_auth(clock: Clock | None = None) -> DigestAuth:
    users = users_from_config(
        {
            "alice": {
                "ha1_sha256": ha1("alice", REALM, "s3cret-pass", Algorithm.SHA256),
                "ha1_md5": ha1("alice", REALM, "s3cret-pass", Algorithm.MD5),
            },
            "oldphone": {"ha1_md5": ha1("oldphone", REALM, "0000-pass", Algorithm.MD5)},
        }
    )
    return DigestAuth(users, realm=REALM, clock=clock or Clock(), nonce_ttl_s=300)


def header(
    algorithm: str,
    user: str,
    password: str,
    nonce: str,
    *,
    nc: str = "00000001",
    qop: str | None = "auth",
    uri: str = URI,
    realm: str = REALM,
) -> str:
    response = client(algorithm, user, realm, password, "INVITE", uri, nonce, nc=nc, qop=qop)
    parts = [
        f'username="{user}"',
        f'realm="{realm}"',
        f'nonce="{nonce}"',
        f'uri="{uri}"',
        f'response="{response}"',
        f"algorithm={algorithm}",
    ]
    if qop:
        parts += [f"qop={qop}", f"nc={nc}", 'cnonce="0a4f113b"']
    return "Digest " + ", ".join(parts)


def nonce_of(challenge: str) -> str:
    return parse_digest(challenge)["nonce"]


def test_challenges_offer_sha256_then_md5() -> None:
    auth = make_auth()
    first, second = auth.challenges()
    assert "algorithm=SHA-256" in first and "algorithm=MD5" in second
    assert 'qop="auth"' in first and "stale" not in first
    assert "stale=true" in auth.challenges(stale=True)[0]


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_right_password_passes(algorithm: str) -> None:
    auth = make_auth()
    nonce = nonce_of(auth.challenges()[0])
    result = auth.check("INVITE", URI, header(algorithm, "alice", "s3cret-pass", nonce))
    assert result.verdict is Verdict.OK and result.user == "alice"


def test_md5_only_user_and_no_qop_phone() -> None:
    auth = make_auth()
    nonce = nonce_of(auth.challenges()[1])
    old = header("MD5", "oldphone", "0000-pass", nonce, qop=None)
    assert auth.check("INVITE", URI, old).verdict is Verdict.OK
    assert auth.check("INVITE", URI, old).verdict is Verdict.FAILED  # without qop: once
    # a user without a SHA-256 hash cannot use SHA-256
    nonce = nonce_of(auth.challenges()[0])
    assert (
        auth.check("INVITE", URI, header("SHA-256", "oldphone", "0000-pass", nonce)).verdict
        is Verdict.FAILED
    )


def test_refusals() -> None:
    auth = make_auth()
    nonce = nonce_of(auth.challenges()[0])
    assert auth.check("INVITE", URI, None).verdict is Verdict.MISSING
    cases = {
        "wrong credentials": header("SHA-256", "alice", "wrong-pass", nonce),
        "wrong credentials ": header("SHA-256", "mallory", "s3cret-pass", nonce),
        "another request URI": header("SHA-256", "alice", "s3cret-pass", nonce, uri="sip:x@y"),
        "expected realm": header("SHA-256", "alice", "s3cret-pass", nonce, realm="other"),
        "malformed": 'Digest username="alice", realm',
        "unsupported algorithm": header("SHA-256", "alice", "s3cret-pass", nonce).replace(
            "algorithm=SHA-256", "algorithm=SHA-512"
        ),
    }
    for reason, value in cases.items():
        result = auth.check("INVITE", URI, value)
        assert result.verdict is Verdict.FAILED, reason
        assert reason.strip() in result.reason, (reason, result.reason)


def test_nonce_not_ours_is_challenged_again_unless_the_secret_is_shared() -> None:
    auth = make_auth()
    nonce = nonce_of(auth.challenges()[0])
    forged = auth.check("INVITE", URI, header("SHA-256", "alice", "s3cret-pass", nonce + "0"))
    assert forged.verdict is Verdict.MISSING  # a fresh challenge, not a failure
    other = DigestAuth(auth.users, realm=REALM, clock=auth.clock)
    theirs = nonce_of(other.challenges()[0])
    assert (
        auth.check("INVITE", URI, header("SHA-256", "alice", "s3cret-pass", theirs)).verdict
        is Verdict.MISSING
    )
    a = DigestAuth(auth.users, realm=REALM, secret=b"shared-secret-of-the-servers")
    b = DigestAuth(auth.users, realm=REALM, secret=b"shared-secret-of-the-servers")
    shared = nonce_of(a.challenges()[0])
    assert (
        b.check("INVITE", URI, header("SHA-256", "alice", "s3cret-pass", shared)).verdict
        is Verdict.OK
    )


def test_replayed_nonce_count_is_refused() -> None:
    auth = make_auth()
    nonce = nonce_of(auth.challenges()[0])
    first = header("SHA-256", "alice", "s3cret-pass", nonce, nc="00000001")
    assert auth.check("INVITE", URI, first).verdict is Verdict.OK
    replayed = auth.check("INVITE", URI, first)
    assert replayed.verdict is Verdict.FAILED and "replayed" in replayed.reason
    later = header("SHA-256", "alice", "s3cret-pass", nonce, nc="00000002")
    assert auth.check("INVITE", URI, later).verdict is Verdict.OK


def test_nonces_expire() -> None:
    clock = Clock()
    auth = make_auth(clock)
    nonce = nonce_of(auth.challenges()[0])
    clock.t += 301
    right = auth.check("INVITE", URI, header("SHA-256", "alice", "s3cret-pass", nonce))
    assert right.verdict is Verdict.STALE  # the phone retries with a new nonce, no prompt
    wrong = auth.check("INVITE", URI, header("SHA-256", "alice", "nope-nope", nonce))
    assert wrong.verdict is Verdict.FAILED  # stale is said only to the right password


def test_nonce_table_is_bounded() -> None:
    auth = make_auth()
    auth.max_nonces = 10
    for _ in range(50):
        nonce = nonce_of(auth.challenges()[0])
        assert (
            auth.check("INVITE", URI, header("MD5", "alice", "s3cret-pass", nonce)).verdict
            is Verdict.OK
        )
    assert len(auth._seen) == 10


def test_configuration_holds_hashes_only() -> None:
    with pytest.raises(ConfigError, match="HA1 hashes only, never passwords"):
        users_from_config({"alice": {"password": "s3cret"}})
    with pytest.raises(ConfigError, match="expected 64 hex digits"):
        users_from_config({"alice": {"ha1_sha256": "abc"}})
    with pytest.raises(ConfigError, match="expected ha1_sha256 and/or ha1_md5"):
        users_from_config({"alice": {}})
    with pytest.raises(ConfigError, match="expected a table"):
        users_from_config({"alice": "x"})


def test_flooding_source_is_slowed_then_blocked_others_not() -> None:
    now = [0.0]
    guard = SourceGuard(rate_per_s=10, burst=5, drop_limit=20, block_s=60, clock=lambda: now[0])
    flood, calm = ("192.0.2.7", 40000), ("192.0.2.8", 40000)
    admitted = sum(guard.admit(flood) for _ in range(10))
    assert admitted == 5  # the burst, then slowed
    assert not guard.blocked(flood)
    for _ in range(30):
        guard.admit(flood)
    assert guard.blocked(flood)
    assert guard.admit(calm) and not guard.blocked(calm)
    now[0] += 30
    assert guard.blocked(flood) and not guard.admit(flood)
    now[0] += 31
    assert not guard.blocked(flood) and guard.admit(flood)  # the block ends


def test_a_source_is_its_ip_address_whatever_port_it_sends_from() -> None:
    guard = SourceGuard(rate_per_s=10, burst=5, drop_limit=20, block_s=60, clock=lambda: 0.0)
    for port in range(40000, 40040):  # a scanner moving port on every request
        guard.admit(("192.0.2.7", port))
    assert guard.blocked(("192.0.2.7", 5060))
    assert not guard.blocked(("192.0.2.8", 40000))


def test_steady_source_within_rate_is_never_slowed() -> None:
    now = [0.0]
    guard = SourceGuard(rate_per_s=10, burst=5, clock=lambda: now[0])
    for _ in range(1000):
        now[0] += 0.11
        assert guard.admit(("10.0.0.1", 5060))


def test_failed_authentications_block_and_table_is_bounded() -> None:
    now = [0.0]
    guard = SourceGuard(fail_limit=5, window_s=60, max_sources=100, clock=lambda: now[0])
    src = ("192.0.2.7", 5060)
    for _ in range(4):
        guard.failed(src)
        now[0] += 1
    assert not guard.blocked(src)
    guard.failed(src)
    assert guard.blocked(src)
    for n in range(10000):  # spoofed addresses, one request each
        guard.admit((f"10.{n // 65536}.{n // 256 % 256}.{n % 256}", 5060))
    assert len(guard) == 100


def test_sip_hash_command_prints_configuration(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys
    import tomllib

    done = subprocess.run(
        [sys.executable, "-m", "ivr", "sip", "hash", "alice", "--realm", REALM],
        input="s3cret-pass\n",
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "IVR_HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    assert "s3cret-pass" not in done.stdout
    users = users_from_config(tomllib.loads(done.stdout)["sip"]["users"])
    assert users["alice"].ha1[Algorithm.MD5] == ha1("alice", REALM, "s3cret-pass", Algorithm.MD5)
    short = subprocess.run(
        [sys.executable, "-m", "ivr", "sip", "hash", "alice"],
        input="short\n",
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "IVR_HOME": str(tmp_path)},
    )
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
