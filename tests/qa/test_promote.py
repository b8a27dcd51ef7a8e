"""`ivr qa promote`: a call recorded by `ivr serve --record` over SIP becomes a test call
that replays with the same outcome, with no code or full number in clear."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from ivr.qa.promote import StandIns
from tests.qa.conftest import ivr
from tests.sip.peers import Scenario, run_sipp, start_ivr
from tests.sip.test_sipp import FIXTURES, RECOVERY_KEYS

CODE, PHONE = "482913", "13800138000"


@pytest.fixture(scope="module")
def recorded(ivr_home: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One real SIP call (SIPp keys, RFC 4733) answered by `ivr serve --record`."""
    work = tmp_path_factory.mktemp("promote")
    fixtures = work / "fixtures.yaml"
    fixtures.write_text(FIXTURES)
    record = work / "recorded"
    server = start_ivr(ivr_home, work, "--fixtures", str(fixtures), "--record", str(record))
    try:
        result = run_sipp(
            Scenario().invite().keys(RECOVERY_KEYS).wait_bye().xml(), server.port, work
        )
        assert result.returncode == 0, result.stderr
        server.wait_log('"event": "call_ended"', 30)
    finally:
        server.stop()
    (row,) = server.records()
    return work, server.db, record, fixtures, row


def test_promoted_sip_call_replays_with_the_same_outcome(ivr_home: Path, recorded) -> None:  # type: ignore[no-untyped-def]
    work, db, record, fixtures, row = recorded
    out = work / "promoted"
    made = ivr(
        ivr_home,
        "qa",
        "promote",
        row["id"][:8],
        "--db",
        str(db),
        "--recordings",
        str(record),
        "--fixtures",
        str(fixtures),
        "--out",
        str(out),
    )
    assert made.returncode == 0, made.stderr
    text = (out / "call.yaml").read_text()
    assert CODE not in text and PHONE not in text  # never in clear
    assert CODE in (record / row["id"] / "call.yaml").read_text()  # the raw tape had it
    call = yaml.safe_load(text)
    assert call["expect"]["outcome"] == row["outcome"] == "resolved"
    assert call["expect"]["states"] == json.loads(row["states"])
    stand_in = call["fixtures"]["verification_code"]
    assert len(stand_in) == 6 and stand_in != CODE
    assert call["caller_id"] == call["fixtures"]["accounts"][0]["phone"]  # one stand-in throughout
    assert call["caller_id"].endswith(PHONE[-4:]) and call["caller_id"] != PHONE
    assert {"dtmf": stand_in, "ask": "verification_code"} in call["turns"]
    replay = ivr(ivr_home, "qa", "run", str(out), "--json")
    assert replay.returncode == 0, replay.stdout + replay.stderr
    (again,) = json.loads(replay.stdout)["calls"]
    assert again["passed"] and again["outcome"] == row["outcome"]
    assert again["states"] == json.loads(row["states"])


def test_promote_names_a_missing_call_or_recording(ivr_home: Path, recorded) -> None:  # type: ignore[no-untyped-def]
    work, db, record, _fixtures, row = recorded
    unknown = ivr(
        ivr_home,
        "qa",
        "promote",
        "ffffffff",
        "--db",
        str(db),
        "--recordings",
        str(record),
        "--out",
        str(work / "x"),
    )
    assert unknown.returncode == 2 and "no call 'ffffffff'" in unknown.stderr
    nowhere = ivr(
        ivr_home,
        "qa",
        "promote",
        row["id"],
        "--db",
        str(db),
        "--recordings",
        str(work / "empty"),
        "--out",
        str(work / "y"),
    )
    assert nowhere.returncode == 2 and "ivr serve --record" in nowhere.stderr


def test_stand_ins_are_consistent_and_never_the_value() -> None:
    s = StandIns()
    phone = s.text(f"call {PHONE}#")
    assert phone.startswith("call 1") and phone.endswith("8000#") and PHONE not in phone
    assert s.text(PHONE) == phone[5:-1]  # the same value, the same stand-in
    code = s.value(CODE)
    assert len(code) == 6 and code != CODE and s.value(CODE) == code
    assert s.text("press 12345") == "press 12345"  # short numbers are not sensitive


def test_a_spoken_code_becomes_the_synthetic_caller_saying_its_stand_in(tmp_path: Path) -> None:
    from ivr.qa.promote import promote
    from ivr.services.calls import CallRecorder, Outcome, TurnRecord
    from ivr.services.store import Store
    from ivr.speech.audio import write_wav

    store = Store(tmp_path / "calls.sqlite3")
    rec = CallRecorder(store, channel="sip", locale="en-US", caller_id=PHONE)
    for state in ("welcome", "main_menu", "verification_code"):
        rec.state(state)
    rec.turn(TurnRecord("main_menu", "speech", "forgot password", "account_recovery", 0.9))
    rec.turn(TurnRecord("verification_code", "speech", "4 8 2 9 1 3", CODE, 0.8))
    rec.finish(Outcome.ABANDONED)
    tape = tmp_path / "recorded" / rec.call_id
    (tape / "turns").mkdir(parents=True)
    for name in ("01-main_menu.wav", "02-verification_code.wav"):
        write_wav(tape / "turns" / name, np.full(1600, 1000, dtype=np.int16), 8000)
    tape_call = {
        "caller_id": PHONE,
        "turns": [
            {"audio": "turns/01-main_menu.wav", "ask": "main_menu"},
            {"audio": "turns/02-verification_code.wav", "ask": "verification_code"},
            {"hangup": True, "ask": "confirm_verification_code"},
        ],
    }
    (tape / "call.yaml").write_text(yaml.safe_dump(tape_call))
    fixtures = tmp_path / "fixtures.yaml"
    fixtures.write_text(FIXTURES)
    out = tmp_path / "promoted"
    path = promote(store, rec.call_id, recordings=tmp_path / "recorded", out=out, fixtures=fixtures)
    store.close()
    text = path.read_text()
    assert CODE not in text and PHONE not in text
    call = yaml.safe_load(text)
    code = call["fixtures"]["verification_code"]
    assert call["turns"][0] == {"audio": "turns/01-main_menu.wav", "ask": "main_menu"}
    assert call["turns"][1] == {"say": " ".join(code), "ask": "verification_code"}
    assert sorted(p.name for p in (out / "turns").iterdir()) == ["01-main_menu.wav"]
    assert call["expect"] == {
        "outcome": "abandoned",
        "transfer_reason": None,
        "ticket_team": None,
        "states": ["welcome", "main_menu", "verification_code"],
    }


def test_private_turns_of_a_tape_become_the_synthetic_caller(tmp_path: Path) -> None:
    """A tape keeps no audio while a code is asked or read back (``private: speech``): the
    code becomes its spoken stand-in, the read-back's answer what the recogniser heard."""
    from ivr.qa.promote import promote
    from ivr.services.calls import CallRecorder, Outcome, TurnRecord
    from ivr.services.store import Store

    store = Store(tmp_path / "calls.sqlite3")
    rec = CallRecorder(store, channel="sip", locale="en-US", caller_id=PHONE)
    rec.turn(TurnRecord("main_menu", "dtmf", "1", "account_recovery", 1.0))
    rec.turn(TurnRecord("verification_code", "speech", "(code spoken)", "******", 0.8))
    rec.turn(TurnRecord("confirm_verification_code", "speech", "yes", "yes", 0.9))
    rec.finish(Outcome.ABANDONED)
    tape = tmp_path / "recorded" / rec.call_id
    tape.mkdir(parents=True)
    private = [
        {"silence": True, "ask": ask, "private": "speech"}
        for ask in ("verification_code", "confirm_verification_code")
    ]
    turns = [{"dtmf": "1", "ask": "main_menu"}, *private, {"hangup": True, "ask": "step_done"}]
    (tape / "call.yaml").write_text(yaml.safe_dump({"caller_id": PHONE, "turns": turns}))
    fixtures = tmp_path / "fixtures.yaml"
    fixtures.write_text(FIXTURES)
    path = promote(
        store,
        rec.call_id,
        recordings=tmp_path / "recorded",
        out=tmp_path / "out",
        fixtures=fixtures,
    )
    store.close()
    call = yaml.safe_load(path.read_text())
    code = call["fixtures"]["verification_code"]
    assert code != CODE and CODE not in path.read_text()
    assert call["turns"][1:3] == [
        {"say": " ".join(code), "ask": "verification_code"},
        {"say": "yes", "ask": "confirm_verification_code"},
    ]


def test_corrections_at_a_code_read_back_become_the_stand_in(tmp_path: Path) -> None:
    """Keys "*13#", or "no, it ends in 1 3" said, at a code's read-back are a piece of the
    code: the promoted call keys or says the stand-in code whole instead."""
    from ivr.qa.promote import promote
    from ivr.services.calls import CallRecorder, Outcome, TurnRecord
    from ivr.services.store import Store
    from ivr.speech.audio import write_wav

    store = Store(tmp_path / "calls.sqlite3")
    rec = CallRecorder(store, channel="sip", locale="en-US", caller_id=PHONE)
    rec.turn(TurnRecord("verification_code", "dtmf", "******", "******", 1.0))
    rec.turn(TurnRecord("confirm_verification_code", "dtmf", "******", "******", 1.0))
    rec.turn(TurnRecord("confirm_verification_code", "speech", "(code spoken)", "******", 0.8))
    rec.turn(TurnRecord("confirm_verification_code", "dtmf", "1", "yes", 1.0))
    rec.finish(Outcome.ABANDONED)
    tape = tmp_path / "recorded" / rec.call_id
    (tape / "turns").mkdir(parents=True)
    write_wav(tape / "turns" / "03.wav", np.full(1600, 1000, dtype=np.int16), 8000)
    tape_call = {
        "caller_id": PHONE,
        "turns": [
            {"dtmf": "482910", "ask": "verification_code"},
            {"dtmf": "*13#", "ask": "confirm_verification_code"},
            {"audio": "turns/03.wav", "ask": "confirm_verification_code"},
            {"dtmf": "1", "ask": "confirm_verification_code"},
        ],
    }
    (tape / "call.yaml").write_text(yaml.safe_dump(tape_call))
    fixtures = tmp_path / "fixtures.yaml"
    fixtures.write_text(FIXTURES)
    out = tmp_path / "promoted"
    path = promote(store, rec.call_id, recordings=tmp_path / "recorded", out=out, fixtures=fixtures)
    store.close()
    call = yaml.safe_load(path.read_text())
    code = call["fixtures"]["verification_code"]
    assert code != CODE
    turns = call["turns"]
    assert turns[1] == {"dtmf": code + "#", "ask": "confirm_verification_code"}
    assert turns[2] == {"say": " ".join(code), "ask": "confirm_verification_code"}
    assert turns[3] == {"dtmf": "1", "ask": "confirm_verification_code"}
    assert not (out / "turns").exists()  # no audio of a code kept
