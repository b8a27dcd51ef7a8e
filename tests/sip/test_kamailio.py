"""Scale-out: Kamailio (dispatcher, round robin, Record-Route) in front of two `ivr serve`.
The config is the one in deploy/kamailio/, as the README shows it."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.conftest import REPO
from tests.sip.peers import RawSip, Scenario, free_port, request, run_sipp, start_ivr, status_of

MODULES = [
    Path("/usr/lib/x86_64-linux-gnu/kamailio/modules"),
    Path("/usr/lib/aarch64-linux-gnu/kamailio/modules"),
    Path("/usr/lib/kamailio/modules"),
]


def start_kamailio(tmp_path: Path, ivr_ports: list[int]) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    mpath = next(p for p in MODULES if (p / "dispatcher.so").exists())
    listing = tmp_path / "dispatcher.list"
    listing.write_text("".join(f"1 sip:127.0.0.1:{p}\n" for p in ivr_ports))
    cfg = (REPO / "deploy" / "kamailio" / "kamailio.cfg").read_text()
    cfg = (
        cfg.replace("@LISTEN@", f"127.0.0.1:{port}")
        .replace("@MPATH@", str(mpath))
        .replace("@LIST@", str(listing))
    )
    (tmp_path / "kamailio.cfg").write_text(cfg)
    log = (tmp_path / "kamailio.log").open("w")
    proc = subprocess.Popen(
        [
            "kamailio",
            "-DD",
            "-E",
            "-f",
            str(tmp_path / "kamailio.cfg"),
            "-m",
            "64",
            "-M",
            "8",
            "-P",
            str(tmp_path / "kamailio.pid"),
            "-Y",
            str(tmp_path),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log.close()
    probe = RawSip()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            probe.send(
                request(
                    "OPTIONS",
                    port,
                    probe,
                    call_id=f"p{time.time()}",
                    branch=f"z9hG4bKp{time.time_ns()}",
                ),
                port,
            )
            if 200 in [status_of(m) for m in probe.recv_all(0.5)]:
                return proc, port
    finally:
        probe.close()
    proc.kill()
    proc.wait(5)
    raise AssertionError("kamailio did not start:\n" + (tmp_path / "kamailio.log").read_text())


def stop_kamailio(proxy: subprocess.Popen[str]) -> None:
    proxy.terminate()
    try:
        proxy.wait(10)
    except subprocess.TimeoutExpired:
        proxy.kill()
        proxy.wait(5)


def test_calls_through_kamailio_to_two_ivrs(ivr_home: Path, tmp_path: Path) -> None:
    ivrs = [start_ivr(ivr_home, tmp_path) for _ in range(2)]
    proxy, port = start_kamailio(tmp_path, [i.port for i in ivrs])
    try:
        # the caller hangs up (BYE from the caller's side, through the proxy)
        caller_ends = Scenario(proxied=True).invite().keys("1", 1500).pause(1500).bye()
        result = run_sipp(caller_ends.xml(), port, tmp_path)
        assert result.returncode == 0, result.stderr
        # the IVR hangs up (its BYE follows the Record-Route back through the proxy)
        ivr_ends = Scenario(proxied=True).invite().keys("0", 1500).wait_bye()
        result = run_sipp(ivr_ends.xml(), port, tmp_path)
        assert result.returncode == 0, result.stderr
        rows = [ivr.wait_records(1) for ivr in ivrs]  # round robin: one call each
    finally:
        stop_kamailio(proxy)
        for ivr in ivrs:
            ivr.stop()
    outcomes = sorted(r[0]["outcome"] for r in rows)
    assert [len(r) for r in rows] == [1, 1]
    assert outcomes == ["abandoned", "transferred"]
