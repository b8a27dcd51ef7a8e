"""The ports the tests hand to servers: never one that another worker, the IVR's RTP or the
kernel might hand out meanwhile."""

from __future__ import annotations

import socket

import pytest

from ivr.channels.sip_stack import EndpointConfig
from tests.sip import peers


def test_ports_come_from_each_workers_own_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    slices = []
    for worker in ("gw0", "gw1", "gw2", "gw3"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        slices.append(set(peers._slice()))
    for i, one in enumerate(slices):
        for other in slices[i + 1 :]:
            assert not one & other
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        ephemeral = int(f.read().split()[0])
    rtp = EndpointConfig().rtp_ports[0]
    last = max(port for s in slices for port in s) + peers.BLOCK - 1
    assert last < rtp < ephemeral


def test_the_next_port_is_another_and_a_taken_one_is_skipped() -> None:
    first = peers.free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        second = peers.free_port()
        holder.bind(("127.0.0.1", second + 2))  # its block, taken by TCP only
        rest = [peers.free_port() for _ in range(len(peers._slice()))]  # once round
        assert first != second
        assert second not in rest
        for port in [first, *rest]:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", port))
