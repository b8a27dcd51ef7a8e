"""Who may call: peers outside --allow authenticate with SIP digest (SIPp's authentication,
baresip registered with a password); wrong passwords are refused; a flooding source is
slowed and blocked while calls from another source go on."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.channels.sip_guard import Algorithm, ha1
from tests.sip.peers import Ivr, RawSip, Scenario, request, run_sipp, start_ivr, status_of

REALM = "ivr-test"
PASSWORD = "s3cret-pass"
UNTRUSTED = "192.0.2.0/24"  # so that 127.0.0.1 is an outside peer that must authenticate


def config(
    path: Path,
    *,
    algorithms: tuple[Algorithm, ...] = (Algorithm.SHA256, Algorithm.MD5),
    extra: str = "",
) -> Path:
    lines = ["[sip]", f'realm = "{REALM}"', extra, "[sip.users.alice]"]
    for algorithm in algorithms:
        key = "ha1_sha256" if algorithm is Algorithm.SHA256 else "ha1_md5"
        lines.append(f'{key} = "{ha1("alice", REALM, PASSWORD, algorithm)}"')
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def guarded(ivr_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    # SIPp 3.6.1 and baresip 1.0 know MD5 only and read the first challenge: MD5 first
    order = 'algorithms = ["MD5", "SHA-256"]'
    monkeypatch.setenv("IVR_CONFIG", str(config(tmp_path / "ivr.toml", extra=order)))
    server = start_ivr(ivr_home, tmp_path, "--allow", UNTRUSTED)
    yield server
    server.stop()


def test_sipp_call_with_password(guarded: Ivr, tmp_path: Path) -> None:
    scenario = Scenario().invite_with_auth("alice", PASSWORD).pause(3000).bye()
    result = run_sipp(scenario.xml(), guarded.port, tmp_path, timeout=40)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (call,) = guarded.wait_records(1, timeout=30)
    assert call["outcome"] == "abandoned"  # the caller hung up after 3 s: the call was taken
    assert PASSWORD not in guarded.log.read_text()


def test_wrong_password_refused(guarded: Ivr, tmp_path: Path) -> None:
    scenario = Scenario().invite_with_auth("alice", "wrong-pass", status=403)
    result = run_sipp(scenario.xml(), guarded.port, tmp_path, timeout=30)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    guarded.wait_log("authentication failed for 'alice'", timeout=10)
    assert guarded.records() == []  # no call was started
    assert "wrong-pass" not in guarded.log.read_text()


def test_without_credentials_challenged(guarded: Ivr) -> None:
    client = RawSip()
    try:
        client.send(
            request("INVITE", guarded.port, client, call_id="noauth-1", branch="z9hG4bKna1"),
            guarded.port,
        )
        answers = client.recv_all(3.0)
    finally:
        client.close()
    finals = [m for m in answers if (status_of(m) or 0) >= 200]
    assert finals and status_of(finals[0]) == 401
    challenges = [
        line for line in finals[0].splitlines() if line.lower().startswith("www-authenticate:")
    ]
    assert len(challenges) == 2
    assert "algorithm=MD5" in challenges[0] and "algorithm=SHA-256" in challenges[1]
    assert guarded.records() == []


def _digest(challenge: str, method: str, uri: str, password: str, nc: str = "00000001") -> str:
    import hashlib

    from ivr.channels.sip_guard import parse_digest

    p = parse_digest(challenge)
    h = hashlib.sha256 if p["algorithm"] == "SHA-256" else hashlib.md5

    def hx(text: str) -> str:
        return h(text.encode()).hexdigest()

    a1, a2 = hx(f"alice:{p['realm']}:{password}"), hx(f"{method}:{uri}")
    response = hx(f"{a1}:{p['nonce']}:{nc}:cafe:auth:{a2}")
    return (
        f'Authorization: Digest username="alice", realm="{p["realm"]}", nonce="{p["nonce"]}",'
        f' uri="{uri}", response="{response}", algorithm={p["algorithm"]}, qop=auth,'
        f' nc={nc}, cnonce="cafe"'
    )


def test_sha256_call_and_replay_refused(guarded: Ivr) -> None:
    """A client answering the SHA-256 challenge (RFC 7616, written in this test) gets the
    call; the same credentials replayed in a new call are refused."""
    from tests.sip.peers import free_port, header, raw_sdp

    client = RawSip()
    uri = f"sip:ivr@127.0.0.1:{guarded.port}"
    try:
        body = raw_sdp(free_port())
        client.send(
            request("INVITE", guarded.port, client, call_id="sha-1", branch="z9hG4bKs1", body=body),
            guarded.port,
        )
        (challenge,) = [
            c
            for c in header(
                next(m for m in client.recv_all(2.0) if status_of(m) == 401), "WWW-Authenticate"
            )
            if "SHA-256" in c
        ]
        credentials = _digest(challenge, "INVITE", uri, PASSWORD)
        client.send(
            request(
                "INVITE",
                guarded.port,
                client,
                call_id="sha-1",
                branch="z9hG4bKs2",
                cseq=2,
                body=body,
                extra=credentials,
            ),
            guarded.port,
        )
        answers = client.recv_all(4.0)
        ok = [m for m in answers if status_of(m) == 200]
        assert ok, answers
        to_tag = header(ok[0], "To")[0].split("tag=")[1]
        client.send(
            request(
                "ACK",
                guarded.port,
                client,
                call_id="sha-1",
                branch="z9hG4bKs3",
                cseq=2,
                to_tag=to_tag,
            ),
            guarded.port,
        )
        client.send(
            request(
                "BYE",
                guarded.port,
                client,
                call_id="sha-1",
                branch="z9hG4bKs4",
                cseq=3,
                to_tag=to_tag,
            ),
            guarded.port,
        )
        guarded.wait_records(1, timeout=30)
        # the captured INVITE played again as a new call: refused
        client.send(
            request(
                "INVITE",
                guarded.port,
                client,
                call_id="sha-2",
                branch="z9hG4bKs5",
                cseq=2,
                body=body,
                extra=credentials,
            ),
            guarded.port,
        )
        finals = [
            m
            for m in client.recv_all(3.0)
            if (status_of(m) or 0) >= 200 and header(m, "Call-ID") == ["sha-2"]
        ]
    finally:
        client.close()
    assert [status_of(m) for m in finals] == [403]
    guarded.wait_log("a replayed nonce", timeout=10)
    assert len(guarded.records()) == 1


OPTIONS_FLOOD = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="options flood">
  <send>
    <![CDATA[
      OPTIONS sip:ivr@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:scanner@[local_ip]:[local_port]>;tag=[pid]F[call_number]
      To: <sip:ivr@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 OPTIONS
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="401" timeout="200" ontimeout="1"/>
  <label id="1"/>
</scenario>
"""


FLOOD_HOST = "127.0.0.2"  # the loopback network answers on every 127.x.y.z


def test_flood_from_one_source_blocked_while_another_calls(guarded: Ivr, tmp_path: Path) -> None:
    import subprocess

    from tests.sip.peers import end_process, free_port

    flood_port = free_port()
    scenario = tmp_path / "flood.xml"
    scenario.write_text(OPTIONS_FLOOD)
    flood = subprocess.Popen(
        [
            "sipp",
            f"127.0.0.1:{guarded.port}",
            "-sf",
            str(scenario),
            "-m",
            "6000",
            "-r",
            "300",
            "-l",
            "400",
            "-i",
            FLOOD_HOST,  # another address on this host: a source is its IP address
            "-p",
            str(flood_port),
            "-timeout",
            "60s",
            "-nostdin",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        guarded.wait_log(f"source {FLOOD_HOST} blocked", timeout=30)
        assert flood.poll() is None  # the flood goes on while the call is made
        call = Scenario().invite_with_auth("alice", PASSWORD).pause(2000).bye()
        result = run_sipp(call.xml(), guarded.port, tmp_path, timeout=40)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    finally:
        flood.kill()
        end_process(flood)
    (record,) = guarded.wait_records(1, timeout=30)
    assert record["outcome"] == "abandoned"
    # the flooding address is still blocked, from any port: not even a challenge; another
    # address is answered
    for host, expected in ((FLOOD_HOST, []), ("127.0.0.1", [401])):
        client = RawSip(0, host)
        port = client.port
        try:
            client.send(
                request(
                    "OPTIONS",
                    guarded.port,
                    client,
                    call_id=f"probe-{port}",
                    branch=f"z9hG4bKp{port}",
                ),
                guarded.port,
            )
            got = [status_of(m) for m in client.recv_all(2.0)]
        finally:
            client.close()
        assert got == expected, (port, got)
    assert guarded.log.read_text().count("blocked for") == 1


@pytest.fixture
def md5_only(ivr_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """baresip 1.0 gives up on a challenge list that holds SHA-256 at all (ENOSYS): old
    phones like it are served with MD5 challenges only."""
    toml = config(tmp_path / "ivr.toml", algorithms=(Algorithm.MD5,), extra='algorithms = ["MD5"]')
    monkeypatch.setenv("IVR_CONFIG", str(toml))
    server = start_ivr(ivr_home, tmp_path, "--allow", UNTRUSTED)
    yield server
    server.stop()


@pytest.mark.parametrize("password", [PASSWORD, "wrong-pass"])
def test_baresip_registered_with_a_password(md5_only: Ivr, tmp_path: Path, password: str) -> None:
    import numpy as np

    from ivr.speech.audio import write_wav
    from tests.sip.peers import Baresip

    guarded = md5_only

    silence = tmp_path / "silence.wav"
    write_wav(silence, np.zeros(16000 * 20, np.int16), 16000)
    ivr_uri = f"sip:ivr@127.0.0.1:{guarded.port}"
    phone = Baresip.make(
        tmp_path / "phone",
        f"aufile,{silence}",
        account=f"<sip:alice@127.0.0.1:{guarded.port}>;auth_pass={password};regint=600;"
        "audio_codecs=PCMU/8000/1",
    )
    phone.start(f"/dial {ivr_uri}", seconds=15)
    try:
        if password == PASSWORD:
            guarded.wait_log("registration from 127.0.0.1", timeout=30)
            (call,) = guarded.wait_records(1, timeout=40, finished=False)
            assert call["channel"] == "sip"
        else:
            guarded.wait_log("authentication failed for 'alice'", timeout=30, count=2)
    finally:
        phone.stop()
    log = guarded.log.read_text()
    assert password not in log
    if password != PASSWORD:
        assert guarded.records() == [] and "registration from" not in log
