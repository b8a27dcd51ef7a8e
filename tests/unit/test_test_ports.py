"""The ports the tests hand to servers: never one that another worker, the IVR's RTP, baresip's
RTP or the kernel might hand out meanwhile."""

from __future__ import annotations

import re
import socket

import pytest

from ivr.channels.sip_stack import EndpointConfig
from tests.sip import peers


@pytest.mark.parametrize("workers", [2, 4, 6])
def test_ports_come_from_each_workers_own_slice(
    monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", str(workers))
    slices = []
    for worker in range(workers):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{worker}")
        slices.append(set(peers._slice()))
    for i, one in enumerate(slices):
        assert len(one) >= 1000
        for other in slices[i + 1 :]:
            assert not one & other
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        ephemeral = int(f.read().split()[0])
    rtp = EndpointConfig().rtp_ports[0]
    baresip = re.search(r"rtp_ports (\d+)-(\d+)", peers.BARESIP_CONFIG)
    assert baresip is not None
    assert max(max(s) for s in slices) < rtp < EndpointConfig().rtp_ports[1]
    assert EndpointConfig().rtp_ports[1] <= int(baresip[1]) < int(baresip[2]) < ephemeral


def test_the_next_ports_are_others_and_taken_ones_are_skipped() -> None:
    first = peers.free_port()
    wide = peers.free_port(span=22)  # SIPp's media for nine calls
    assert not set(range(first, first + 4)) & set(range(wide, wide + 22))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        second = peers.free_port()
        holder.bind(("127.0.0.1", second + 2))  # in its block, taken by TCP only
        rounds = len(peers._slice()) // peers.BLOCK
        rest = [peers.free_port() for _ in range(rounds)]  # once round the slice
        assert second not in rest
        for port in [first, *rest]:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", port))
