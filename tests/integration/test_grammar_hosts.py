"""The grammar decoder in host processes: the same answers as in the calls' process, a host
killed mid-utterance replaced without the caller losing the answer, bounded decoders."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ivr.qa.synth import caller_speech
from ivr.speech.asr.base import Engine, Hypothesis
from ivr.speech.asr.hosted import HostedSphinxEngine
from ivr.speech.asr.hosts import DecoderHosts
from ivr.speech.asr.sphinx import SphinxEngine
from ivr.speech.audio import split_frames, telephone
from ivr.speech.grammar import Grammar, GrammarBook

REPO = Path(__file__).resolve().parents[2]
BOOK = GrammarBook(REPO / "grammars", "en-US")


@pytest.fixture(scope="module")
def hosts() -> Iterator[DecoderHosts]:
    hosts = DecoderHosts("en-US", 2, 8)
    yield hosts
    hosts.close()


def _frames(text: str) -> list[np.ndarray]:
    return split_frames(telephone(caller_speech(text)).samples, 8000)


def _hear(
    engine: Engine,
    grammar: Grammar,
    frames: list[np.ndarray],
    context: dict[str, object],
    *,
    scored: bool = True,
) -> tuple[Hypothesis, list[str]]:
    make = engine.recognizer if scored else engine.unscored
    rec = make(grammar, 8000, context)
    partials = []
    for i, frame in enumerate(frames):
        rec.accept(frame)
        if i % 5 == 0:
            partials.append(rec.partial())
    return rec.finish(), partials


def test_a_hosted_grammar_decoder_hears_as_the_one_in_the_calls_process(
    hosts: DecoderHosts,
) -> None:
    """Same words, confidence and partial results, and the call's cepstral mean carried on
    from one answer to the next, through the pipe."""
    hosted, local = HostedSphinxEngine("en-US", hosts), SphinxEngine()
    assert hosted.unknown_words({"ticket", "qwxz"}) == ["qwxz"]
    contexts: tuple[dict[str, object], dict[str, object]] = ({}, {})
    for name, text in [("main_menu", "account recovery"), ("yes_no", "yes"), ("yes_no", "no")]:
        grammar, frames = BOOK.get(name), _frames(text)
        there = _hear(hosted, grammar, frames, contexts[0])
        here = _hear(local, grammar, frames, contexts[1])
        assert there == (Hypothesis(here[0].text, here[0].confidence, "pocketsphinx"), here[1])
        assert grammar.interpret(there[0].text) is not None
        assert contexts[0]["sphinx_cmn"] == contexts[1]["sphinx_cmn"]


def test_unscored_the_decoder_hears_the_same_words_without_its_phone_decoder(
    hosts: DecoderHosts,
) -> None:
    """Where Whisper judges the answer, the decoder skips its all-phone pass (and never
    makes that decoder): the same words and partial results, with no confidence."""
    hosted, local, scoring = HostedSphinxEngine("en-US", hosts), SphinxEngine(), SphinxEngine()
    for name, text in [("main_menu", "ticket status"), ("yes_no", "yes"), ("yes_no", "no")]:
        grammar, frames = BOOK.get(name), _frames(text)
        scored = _hear(scoring, grammar, frames, {})
        assert scored[0].scored and scored[0].confidence > 0
        heard = _hear(local, grammar, frames, {}, scored=False)
        assert heard[1] == scored[1]  # two fresh engines: the same partial results
        there = _hear(hosted, grammar, frames, {}, scored=False)[0]
        for hyp in (heard[0], there):
            assert hyp.text == scored[0].text and grammar.interpret(hyp.text) is not None
            assert (hyp.scored, hyp.confidence) == (False, 0.0)
    pairs = [pair for pool in local._pools.values() for pair in pool]
    assert pairs and all(pair.phones is None for pair in pairs)


def test_a_grammar_host_killed_mid_utterance_is_replaced_and_the_utterance_heard(
    hosts: DecoderHosts,
) -> None:
    engine = HostedSphinxEngine("en-US", hosts)
    grammar, frames = BOOK.get("main_menu"), _frames("account recovery")
    expected = _hear(SphinxEngine(), grammar, frames, {})[0].text
    before = hosts.replaced
    rec = engine.recognizer(grammar, 8000, {})
    for frame in frames[: len(frames) // 2]:
        rec.accept(frame)
    host = rec._host  # type: ignore[attr-defined]
    assert host is not None
    os.kill(host.proc.pid, signal.SIGKILL)
    host.proc.join(10)
    for frame in frames[len(frames) // 2 :]:
        rec.accept(frame)
    heard = rec.finish()
    assert heard.text == expected
    assert grammar.interpret(heard.text).value == "account_recovery"
    assert hosts.replaced == before + 1
    assert host.proc.pid not in hosts.pids() and len(hosts.pids()) == 2


def test_a_finish_beyond_the_hosts_decoders_waits_for_one_to_come_free() -> None:
    """One host with one pair of decoders, two callers at once: the second caller's answer
    waits in the host, without stopping it, until the first one's finish frees the pair."""
    hosts = DecoderHosts("en-US", 1, 1)
    try:
        engine = HostedSphinxEngine("en-US", hosts)
        menu = BOOK.get("main_menu")
        first = engine.recognizer(menu, 8000, {})
        second = engine.recognizer(menu, 8000, {})
        for frame in _frames("account recovery"):
            first.accept(frame)
        for frame in _frames("feedback"):
            second.accept(frame)
        assert second.partial() == ""  # no pair yet: nothing heard
        results: dict[str, Hypothesis] = {}
        waiter = threading.Thread(target=lambda: results.update(second=second.finish()))
        waiter.start()
        time.sleep(0.5)
        assert waiter.is_alive()  # waiting for the pair the first caller holds
        results["first"] = first.finish()
        waiter.join(60)
        assert not waiter.is_alive()
        assert menu.interpret(results["first"].text).value == "account_recovery"
        assert menu.interpret(results["second"].text).value == "feedback"
    finally:
        hosts.close()


def test_one_utterance_gone_wrong_in_a_host_leaves_the_others_heard() -> None:
    """Audio the decoder cannot take (here, half a sample) is that utterance's error: the
    host goes on hearing every other utterance, and is not replaced."""
    from ivr.errors import EngineError

    hosts = DecoderHosts("en-US", 1, 8)
    try:
        engine = HostedSphinxEngine("en-US", hosts)
        menu = BOOK.get("main_menu")
        broken = engine.recognizer(menu, 8000, {})
        good = engine.recognizer(menu, 8000, {})
        frames = _frames("account recovery")
        broken.accept(frames[0])
        broken._host.send(("audio", broken._sid, b"\x00"))  # type: ignore[attr-defined]
        for frame in frames:
            good.accept(frame)
        with pytest.raises(EngineError):
            broken.finish()
        assert menu.interpret(good.finish().text).value == "account_recovery"
        assert hosts.replaced == 0
    finally:
        hosts.close()


def test_recognition_in_the_calls_process_when_asked(tmp_path: Path) -> None:
    from ivr.config import Recognition
    from ivr.speech.engines import Engines

    local = Engines(tmp_path, asr=Recognition(whisper=False, workers=0)).for_locale("en-US")
    assert isinstance(local, SphinxEngine)
    hosted = Engines(tmp_path, asr=Recognition(whisper=False)).for_locale("en-US")
    assert isinstance(hosted, HostedSphinxEngine)
    alone = Engines(tmp_path, asr=Recognition(whisper=False, grammar_hosts=0))
    assert isinstance(alone.for_locale("en-US"), SphinxEngine)
    assert alone.describe("en-US") == "pocketsphinx (bundled en-US model) for every ask"


def test_closed_hosts_end_by_themselves() -> None:
    """Closing the hosts (a process's exit) ends their loops: they exit, not wait to be killed
    (each `ivr` command and server stop used to wait 5 s per host)."""
    hosts = DecoderHosts("en-US", 2, 1)
    engine = HostedSphinxEngine("en-US", hosts)
    engine.warm()
    rec = engine.recognizer(BOOK.get("yes_no"), 8000, {})
    for frame in _frames("yes"):
        rec.accept(frame)
    procs = [h.proc for h in hosts._hosts]  # type: ignore[attr-defined]
    hosts.close()
    assert [p.exitcode for p in procs] == [0, 0]
    from ivr.errors import EngineError

    with pytest.raises(EngineError):
        rec.finish()  # its host is gone, and no new one starts after close
    with pytest.raises(EngineError):
        engine.warm()  # nor when warmed
    assert hosts.pids() == []
