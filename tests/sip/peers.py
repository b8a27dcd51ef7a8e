"""Real SIP peers for the tests: `ivr serve` itself, SIPp scenarios, a raw UDP client.

Every process is started by these helpers, waited on with a bound and ended by its own id.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

SIPP_DATA = Path("/usr/share/sip-tester")
KEY_PCAP = {
    **{d: f"dtmf_2833_{d}.pcap" for d in "0123456789"},
    "#": "dtmf_2833_pound.pcap",
    "*": "dtmf_2833_star.pcap",
}


# Ports the tests hand to the processes they start. They come from 10000-19999: below the IVR's
# RTP ports (20000-30000) and baresip's (set to 30000-32000 below), and below the kernel's
# ephemeral ports (32768 and up), which every outgoing connection and every bind to port 0
# takes from. Each pytest-xdist worker has its own slice and walks it in order, so two workers,
# or a checked-then-released port and someone's connect(), never meet on one port; a process
# outside pytest-xdist (a bench) starts at a place of its own in the first slice.
TEST_PORTS = range(10000, 20000)
BLOCK = 4  # ports are handed out in blocks: baresip takes p and p + 1, SIPp's media p and p + 2
_cursor: list[int] = []  # this process's next block in its slice
_cursor_lock = threading.Lock()


def _slice() -> range:
    """This worker's ports: TEST_PORTS cut in as many slices as there are workers (at least 4)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    count = max(4, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    index = int(worker) % count if worker.isdigit() else 0
    width = len(TEST_PORTS) // count // BLOCK * BLOCK
    first = TEST_PORTS.start + index * width
    return range(first, first + width)


def _free(port: int, span: int) -> bool:
    taken: list[socket.socket] = []
    try:
        for candidate in range(port, port + span):
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                s = socket.socket(socket.AF_INET, kind)
                taken.append(s)
                s.bind(("127.0.0.1", candidate))
        return True
    except OSError:
        return False
    finally:
        for s in taken:
            s.close()


def free_port(span: int = BLOCK) -> int:
    """A port p on 127.0.0.1 with p to p + span - 1 free for UDP and TCP alike, from this
    worker's slice of TEST_PORTS. The next call hands out the ports after them, so a port given
    to a process that has not bound it yet is not given again until the slice comes round."""
    ports = _slice()
    span = -(-span // BLOCK) * BLOCK
    with _cursor_lock:
        if not _cursor:
            _cursor.append(os.getpid() % (len(ports) // BLOCK) * BLOCK)
        for _ in range(len(ports) // BLOCK):
            at = _cursor[0] if _cursor[0] + span <= len(ports) else 0
            _cursor[0] = at + span
            if _free(ports.start + at, span):
                return ports.start + at
    raise RuntimeError(f"no {span} free ports in a row left in {ports}")


@dataclass
class Ivr:
    """A running `ivr serve` process."""

    proc: subprocess.Popen[str]
    port: int
    db: Path
    log: Path
    out: object = None

    def records(self) -> list[sqlite3.Row]:
        conn = sqlite3.connect(self.db)
        conn.row_factory = sqlite3.Row
        try:
            return list(conn.execute("SELECT * FROM calls ORDER BY started_at"))
        finally:
            conn.close()

    def wait_records(
        self, n: int, timeout: float = 60.0, finished: bool = True
    ) -> list[sqlite3.Row]:
        deadline = time.monotonic() + timeout
        rows: list[sqlite3.Row] = []
        while time.monotonic() < deadline:
            rows = self.records()
            done = [r for r in rows if r["ended_at"] is not None] if finished else rows
            if len(done) >= n:
                return rows
            time.sleep(0.2)
        raise AssertionError(
            f"expected {n} finished calls, have {rows and [dict(r) for r in rows]}\n"
            + self.log.read_text(errors="replace")[-3000:]
        )

    def wait_log(self, text: str, timeout: float, count: int = 1) -> None:
        """Wait until the server's log holds ``text`` (``count`` times)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log.read_text(errors="replace").count(text) >= count:
                return
            time.sleep(0.2)
        raise AssertionError(
            f"{text!r} not logged within {timeout} s:\n"
            + self.log.read_text(errors="replace")[-3000:]
        )

    def stop(self, timeout: float = 40.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.out is not None:
            self.out.close()  # type: ignore[attr-defined]
        return int(self.proc.returncode)


def start_ivr(home: Path, workdir: Path, *args: str, port: int | None = None) -> Ivr:
    port = port or free_port()
    db = workdir / f"ivr-{port}.sqlite3"
    log = workdir / f"ivr-{port}.log"
    env = {**os.environ, "IVR_HOME": str(home)}
    out = log.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ivr", "serve", "--port", str(port), "--db", str(db), *args],
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if "ready on" in log.read_text(errors="replace"):
            return Ivr(proc, port, db, log, out)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    proc.wait(5)
    out.close()
    raise AssertionError("ivr serve did not start:\n" + log.read_text(errors="replace"))


# --- SIPp scenarios ---------------------------------------------------------------------------
SDP = """v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP {formats}
{rtpmaps}a=ptime:20
"""
CODECS = {"PCMU": "a=rtpmap:0 PCMU/8000\n", "PCMA": "a=rtpmap:8 PCMA/8000\n"}
EVENTS = "a=rtpmap:101 telephone-event/8000\na=fmtp:101 0-15\n"


def sdp(codec: str = "PCMU", events: bool = True) -> str:
    pt = "0" if codec == "PCMU" else "8"
    return SDP.format(
        formats=f"{pt} 101" if events else pt,
        rtpmaps=CODECS[codec] + (EVENTS if events else ""),
    )


HEAD = """      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Caller" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:ivr@[remote_ip]:[remote_port]>{to_tag}
      Call-ID: [call_id]
      CSeq: {cseq}
      Contact: <sip:{caller}@[local_ip]:[local_port]>
      Max-Forwards: 70
{extra}"""


def _msg(
    start: str, cseq: str, caller: str, body: str = "", to_tag: str = "", extra: str = ""
) -> str:
    body = "\n".join("      " + line for line in body.splitlines())
    ctype = "      Content-Type: application/sdp\n" if body else ""
    head = HEAD.format(caller=caller, cseq=cseq, to_tag=to_tag, extra=extra)
    return (
        f"    <![CDATA[\n      {start}\n{head}{ctype}      Content-Length: [len]\n\n{body}\n    ]]>"
    )


def _invite(caller: str, seq: int = 1, body: str | None = None, extra: str = "") -> str:
    return _msg(
        "INVITE sip:ivr@[remote_ip]:[remote_port] SIP/2.0",
        f"{seq} INVITE",
        caller,
        sdp() if body is None else body,
        extra=extra,
    )


def _ack_in_transaction(caller: str, seq: int, branch: str) -> str:
    """The ACK of a final error response: it belongs to the INVITE's transaction (``branch``)."""
    return _msg(
        "ACK sip:ivr@[remote_ip]:[remote_port] SIP/2.0",
        f"{seq} ACK",
        caller,
        to_tag="[peer_tag_param]",
    ).replace("branch=[branch]", f"branch={branch}")


@dataclass
class Scenario:
    """A SIPp caller scenario, built step by step."""

    caller: str = "13800138000"
    steps: list[str] = field(default_factory=list)
    cseq: int = 1
    proxied: bool = False  # through a proxy: in-dialog requests carry its Route headers

    @property
    def _routes(self) -> str:
        return "      [routes]\n" if self.proxied else ""

    def invite(
        self, codec: str = "PCMU", events: bool = True, extra: str = "", expect_200: str = ""
    ) -> Scenario:
        msg = _invite(self.caller, body=sdp(codec, events), extra=extra)
        self.steps.append(f'  <send retrans="500">\n{msg}\n  </send>')
        self.steps.append('  <recv response="100" optional="true"/>')
        self.steps.append('  <recv response="180" optional="true"/>')
        self.steps.append(f'  <recv response="200" rtd="true" rrs="true">{expect_200}</recv>')
        self.steps.append(self._ack("1"))
        return self

    def invite_then_cancel(self) -> Scenario:
        """INVITE, then CANCEL once it rings: 200 for the CANCEL, 487 for the INVITE."""
        msg = _invite(self.caller)
        cancel = _msg("CANCEL sip:ivr@[remote_ip]:[remote_port] SIP/2.0", "1 CANCEL", self.caller)
        # CANCEL and the ACK of the 487 belong to the INVITE's transaction: its branch
        cancel = cancel.replace("branch=[branch]", "branch=[branch-3]")
        ack = _ack_in_transaction(self.caller, 1, "[branch-6]")
        self.steps += [
            f'  <send retrans="500">\n{msg}\n  </send>',
            '  <recv response="100" optional="true"/>',
            '  <recv response="180"/>',
            f"  <send>\n{cancel}\n  </send>",
            '  <recv response="200"/>',
            '  <recv response="487"/>',
            f"  <send>\n{ack}\n  </send>",
        ]
        return self

    def invite_expecting(self, status: int) -> Scenario:
        """INVITE answered with an error ``status`` (then the ACK for it)."""
        msg = _invite(self.caller)
        ack = _ack_in_transaction(self.caller, 1, "[branch-3]")
        self.steps += [
            f'  <send retrans="500">\n{msg}\n  </send>',
            '  <recv response="100" optional="true"/>',
            f'  <recv response="{status}"/>',
            f"  <send>\n{ack}\n  </send>",
        ]
        return self

    def invite_with_auth(self, user: str, password: str, status: int = 200) -> Scenario:
        """INVITE, 401 with a digest challenge, the INVITE again with credentials (SIPp's
        ``[authentication]``, MD5): answered ``status`` (200: the call goes on)."""
        msg = _invite(self.caller)
        ack = _ack_in_transaction(self.caller, 1, "[branch-3]")
        self.cseq = 2
        again = _invite(
            self.caller, 2, extra=f"      [authentication username={user} password={password}]\n"
        )
        self.steps += [
            f'  <send retrans="500">\n{msg}\n  </send>',
            '  <recv response="100" optional="true"/>',
            '  <recv response="401" auth="true"/>',
            f"  <send>\n{ack}\n  </send>",
            f'  <send retrans="500">\n{again}\n  </send>',
            '  <recv response="100" optional="true"/>',
        ]
        if status == 200:
            self.steps += [
                '  <recv response="180" optional="true"/>',
                '  <recv response="200" rtd="true" rrs="true"/>',
                self._ack("2"),
            ]
        else:
            ack2 = _ack_in_transaction(self.caller, 2, "[branch-2]")
            self.steps += [f'  <recv response="{status}"/>', f"  <send>\n{ack2}\n  </send>"]
        return self

    def _ack(self, seq: str) -> str:
        msg = _msg(
            "ACK [next_url] SIP/2.0",
            f"{seq} ACK",
            self.caller,
            to_tag="[peer_tag_param]",
            extra=self._routes,
        )
        return f"  <send>\n{msg}\n  </send>"

    def keys(self, keys: str, pause_ms: int = 1500) -> Scenario:
        for key in keys:
            self.pause(pause_ms)
            self.steps.append(
                f'  <nop><action><exec play_pcap_audio="{SIPP_DATA / KEY_PCAP[key]}"/>'
                "</action></nop>"
            )
        return self

    def pause(self, ms: int) -> Scenario:
        self.steps.append(f'  <pause milliseconds="{ms}"/>')
        return self

    def audio(self, ulaw_file: Path) -> Scenario:
        self.steps.append(f'  <nop><action><exec rtp_stream="{ulaw_file},-1,0"/></action></nop>')
        return self

    def reinvite(self) -> Scenario:
        self.cseq += 1
        msg = _msg(
            "INVITE [next_url] SIP/2.0",
            f"{self.cseq} INVITE",
            self.caller,
            sdp(),
            to_tag="[peer_tag_param]",
            extra=self._routes,
        )
        self.steps.append(f'  <send retrans="500">\n{msg}\n  </send>')
        self.steps.append('  <recv response="100" optional="true"/>')
        self.steps.append('  <recv response="200"/>')
        self.steps.append(self._ack(str(self.cseq)))
        return self

    def bye(self) -> Scenario:
        self.cseq += 1
        msg = _msg(
            "BYE [next_url] SIP/2.0",
            f"{self.cseq} BYE",
            self.caller,
            to_tag="[peer_tag_param]",
            extra=self._routes,
        )
        self.steps.append(f'  <send retrans="500">\n{msg}\n  </send>')
        self.steps.append('  <recv response="200"/>')
        return self

    def wait_bye(self, timeout_ms: int = 90000, answer: bool = True, check: str = "") -> Scenario:
        self.steps.append(f'  <recv request="BYE" timeout="{timeout_ms}">{check}</recv>')
        if answer:
            self.steps.append(OK_TO_LAST)
        return self

    def xml(self, name: str = "ivr test") -> str:
        return (
            '<?xml version="1.0" encoding="ISO-8859-1" ?>\n'
            f'<scenario name="{name}">\n' + "\n".join(self.steps) + "\n</scenario>\n"
        )


OK_TO_LAST = """  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>"""


def run_sipp(
    scenario: str,
    ivr_port: int,
    workdir: Path,
    *,
    calls: int = 1,
    rate: int = 1,
    limit: int | None = None,
    timeout: float = 150.0,
    transport: str = "u1",
    rate_period_ms: int = 1000,
) -> subprocess.CompletedProcess[str]:
    """Run a SIPp scenario to its end; ``transport`` is SIPp's ``-t`` (u1 UDP, t1 TCP).

    ``rate`` new calls every ``rate_period_ms``, at most ``limit`` at once."""
    name = uuid.uuid4().hex[:8]
    path = workdir / f"scenario-{name}.xml"
    path.write_text(scenario)
    cmd = [
        "sipp",
        f"127.0.0.1:{ivr_port}",
        "-sf",
        str(path),
        "-m",
        str(calls),
        "-r",
        str(rate),
        "-rp",
        str(rate_period_ms),
        "-l",
        str(limit or calls),
        "-i",
        "127.0.0.1",
        "-p",
        str(free_port()),
        "-mp",
        str(free_port(span=4 + 2 * calls)),  # SIPp streams each call's audio from its own pair
        "-timeout",
        f"{int(timeout)}s",
        "-timeout_error",
        "-nostdin",
        "-trace_err",
        "-t",
        transport,
        "-error_file",
        str(workdir / f"sipp-{name}.err"),
    ]
    proc = subprocess.Popen(
        cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = proc.communicate(timeout=timeout + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(5)
    errors = workdir / f"sipp-{name}.err"
    if errors.exists():
        err += errors.read_text(errors="replace")[-4000:]
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def start_sipp(
    scenario: str, ivr_port: int, workdir: Path, calls: int = 1
) -> subprocess.Popen[str]:
    """SIPp in the background (for calls that must be in progress while the test acts)."""
    path = workdir / f"scenario-{uuid.uuid4().hex[:8]}.xml"
    path.write_text(scenario)
    return subprocess.Popen(
        [
            "sipp",
            f"127.0.0.1:{ivr_port}",
            "-sf",
            str(path),
            "-m",
            str(calls),
            "-r",
            str(calls),
            "-l",
            str(calls),
            "-i",
            "127.0.0.1",
            "-p",
            "0",
            "-timeout",
            "90s",
            "-nostdin",
        ],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def end_process(proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# --- a raw UDP client for exact and hostile messages ------------------------------------------
class RawSip:
    """A UDP socket that sends SIP text as written and collects what comes back."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.port = self.sock.getsockname()[1]

    def send(self, text: str | bytes, port: int) -> None:
        data = text.encode() if isinstance(text, str) else text
        self.sock.sendto(data, ("127.0.0.1", port))

    def recv_all(self, wait: float = 1.5) -> list[str]:
        out: list[str] = []
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            self.sock.settimeout(left)
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                return out
            out.append(data.decode(errors="replace"))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def request(
    method: str,
    port: int,
    client: RawSip,
    *,
    call_id: str,
    branch: str,
    cseq: int = 1,
    body: str = "",
    extra: str = "",
    to_tag: str = "",
    from_tag: str = "raw1",
    uri: str | None = None,
) -> str:
    uri = uri or f"sip:ivr@127.0.0.1:{port}"
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{client.port};branch={branch};rport",
        f"From: <sip:13800138000@127.0.0.1:{client.port}>;tag={from_tag}",
        f"To: <sip:ivr@127.0.0.1:{port}>{';tag=' + to_tag if to_tag else ''}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:13800138000@127.0.0.1:{client.port}>",
        "Max-Forwards: 70",
    ]
    if extra:
        lines.append(extra.rstrip("\r\n"))
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body.encode())}")
    return "\r\n".join(lines) + "\r\n\r\n" + body


def raw_sdp(rtp_port: int, formats: str = "0 101", rtpmap: str = "") -> str:
    rtpmap = rtpmap or (
        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
    )
    return (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {rtp_port} RTP/AVP {formats}\r\n{rtpmap}a=ptime:20\r\n"
    )


def status_of(message: str) -> int | None:
    m = re.match(r"SIP/2\.0 (\d{3})", message)
    return int(m.group(1)) if m else None


def header(message: str, name: str) -> list[str]:
    return re.findall(rf"^{name}:\s*(.*?)\r?$", message, re.MULTILINE | re.IGNORECASE)


# --- baresip as a phone ------------------------------------------------------------------------
BARESIP_CONFIG = """poll_method epoll
sip_listen 127.0.0.1:{port}
rtp_ports 30000-32000
net_interface 127.0.0.1
audio_player aufile,{dir}/player.wav
audio_source {source}
audio_alert aufile,/dev/null
ausrc_srate 16000
auplay_srate 16000
module_path /usr/lib/baresip/modules
module g711.so
module g722.so
module aufile.so
module ausine.so
module sndfile.so
module menu.so
module account.so
snd_path {dir}/rec
{extra}"""


@dataclass
class Baresip:
    """A baresip phone with its own configuration folder; records what it hears."""

    folder: Path
    port: int
    proc: subprocess.Popen[str] | None = None
    log: Path | None = None
    _out: object = None

    @classmethod
    def make(
        cls,
        folder: Path,
        source: str,
        *,
        codecs: str = "G722/16000/1,PCMU/8000/1",
        answer: bool = False,
        user: str = "caller",
        account: str | None = None,
    ) -> Baresip:
        """``account``: a whole account line instead of the local one (e.g. registering
        with the IVR with a password)."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "rec").mkdir(exist_ok=True)
        port = free_port()  # baresip binds SIP on port (UDP, TCP) and TLS on port + 1
        extra = "answermode auto\n" if answer else ""
        (folder / "config").write_text(
            BARESIP_CONFIG.format(port=port, dir=folder, source=source, extra=extra)
        )
        (folder / "accounts").write_text(
            (account or f"<sip:{user}@127.0.0.1:{port}>;regint=0;audio_codecs={codecs}")
            + (";answermode=auto" if answer else "")
            + "\n"
        )
        return cls(folder, port)

    def start(self, *commands: str, seconds: int = 120) -> None:
        self.log = self.folder / "baresip.log"
        args = ["baresip", "-f", str(self.folder), "-t", str(seconds)]
        for command in commands:
            args += ["-e", command]
        self._out = self.log.open("w")
        self.proc = subprocess.Popen(
            args,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=self.folder,
        )

    def wait(self, timeout: float) -> None:
        assert self.proc is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout)
        self.stop()

    def stop(self) -> None:
        """Hang up and quit: the first SIGTERM ends baresip's calls (BYE); baresip then waits
        for every open transaction, so after a moment a second one closes its modules (and
        the recordings) and exits."""
        if self.proc is not None and self.proc.poll() is None:
            for grace in (3, 5):
                self.proc.terminate()
                try:
                    self.proc.wait(grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
            else:
                self.proc.kill()
                self.proc.wait(5)
        if self._out is not None:
            self._out.close()  # type: ignore[attr-defined]
            self._out = None

    def wait_for_call(self, timeout: float) -> None:
        """Until a call is up: baresip starts recording what it hears when the audio starts."""
        deadline = time.monotonic() + timeout
        while not list((self.folder / "rec").glob("dump-*-dec.wav")):
            assert time.monotonic() < deadline, "no call reached this phone"
            time.sleep(0.2)

    def heard(self) -> Path:
        dumps = sorted((self.folder / "rec").glob("dump-*-dec.wav"))
        assert dumps, (self.log.read_text(errors="replace") if self.log else "no log")[-3000:]
        return dumps[-1]
