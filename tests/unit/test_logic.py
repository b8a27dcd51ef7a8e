"""Unit tests of logic: grammars, digit grouping, masking, codes, audio conversion."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest

from ivr.config import Voice
from ivr.dialog.prompts import SpokenDigits, group_digits, render_text
from ivr.errors import ConfigError, ModelError
from ivr.services.accounts import Accounts
from ivr.services.codes import Codes, Issue, SmsOutbox, Verify
from ivr.services.privacy import mask_phone, scrub
from ivr.services.store import Store
from ivr.speech.audio import alaw_decode, alaw_encode, resample, ulaw_decode, ulaw_encode
from ivr.speech.grammar import COMMAND_PREFIX, DigitRule
from ivr.speech.tts import Segment
from tests.conftest import REPO


def test_grammar_compiles_to_jsgf_and_vosk(grammars) -> None:  # type: ignore[no-untyped-def]
    g = grammars.get("phone_number")
    jsgf = g.jsgf()
    assert jsgf.count("<digit>") == 1 + 15  # the rule itself, 7 required, 8 optional
    assert "public <answer> =" in jsgf and "agent" in jsgf
    assert "oh" in g.vosk_phrases() and "agent" in g.vosk_phrases()
    assert (
        g.interpret("one three eight zero zero one three eight zero zero zero").value
        == "13800138000"
    )
    assert g.interpret("one two three") is None  # too short
    assert g.interpret("agent").value == COMMAND_PREFIX + "agent"
    assert "0" not in g.keys and "*" not in g.keys  # digit entry keys, not commands
    code = grammars.get("verification_code")
    assert code.digits == DigitRule(6, 6) and code.interpret("i didn't get it").value == "resend"
    yn = grammars.get("yes_no")
    assert yn.key("1") == "yes" and yn.key("0") == COMMAND_PREFIX + "agent"
    assert yn.is_complete("yes") and not grammars.get("phone_number").is_complete("one two")


def test_a_mishearing_counts_only_as_the_whole_answer(grammars) -> None:  # type: ignore[no-untyped-def]
    from ivr.speech.asr.whisper_text import grammar_prompt

    yn = grammars.get("yes_no")
    assert yn.interpret("Now.").value == "no"  # a human "no" over the phone, as written
    assert yn.interpret("not now") is None  # not a phrase, nor the whole mishearing
    assert "now" not in yn.phrases and "now" not in yn.jsgf() and "now" not in yn.vosk_phrases()
    assert "now" not in (grammar_prompt(yn, "en-US") or "")  # never shown to the transcriber


def test_only_a_walkthrough_step_is_undone_in_a_word() -> None:
    """Where an unsure decoder's answer may stand against a misspelling (routed.py)."""
    from ivr.speech.grammar import GrammarBook

    for locale in ("en-US", "zh-CN"):
        book = GrammarBook(REPO / "grammars", locale)
        undoable = {name for name in book.names() if book.get(name).undoable}
        assert undoable == {"step_done"}, locale


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("heard_as: {maybe: [now]}", "none of the values"),
        ("heard_as: {'no': [nope]}", "a phrase already"),
        ("heard_as: {'no': now}", "expected a list"),
        ("undoable: sometimes", "undoable: expected true or false"),
    ],
)
def test_a_bad_mishearing_or_flag_is_a_clear_error(tmp_path: Path, line: str, message: str) -> None:
    import shutil

    from ivr.speech.grammar import GrammarBook

    shutil.copytree(REPO / "grammars" / "en-US", tmp_path / "en-US")
    (tmp_path / "en-US" / "ask.yaml").write_text(
        "values:\n  'yes': ['yes']\n  'no': ['no', 'nope']\n" + line + "\n"
    )
    with pytest.raises(ConfigError, match=message):
        GrammarBook(tmp_path, "en-US").get("ask")


def test_bad_grammar_file_is_a_clear_error(tmp_path: Path) -> None:
    from ivr.speech.grammar import GrammarBook

    (tmp_path / "en-US").mkdir()
    (tmp_path / "en-US" / "_digits.yaml").write_text("zero: '0'\n")
    with pytest.raises(ConfigError, match="every digit"):
        GrammarBook(tmp_path, "en-US")


def test_every_grammar_word_is_known_to_the_model(grammars, sphinx) -> None:  # type: ignore[no-untyped-def]
    for name in grammars.names():
        assert sphinx.unknown_words(grammars.get(name).words()) == [], name


def test_digit_grouping_and_masking() -> None:
    assert group_digits("13800138000") == ["138", "0013", "8000"]
    assert group_digits("482913") == ["482", "913"]
    assert group_digits("20261120", "pairs") == ["20", "26", "11", "20"]
    assert mask_phone("13800138000") == "*******8000"
    assert scrub("code 482913 and phone 13800138000") == "code ****** and phone *******8000"
    speech = render_text(
        "I heard {n}. Is that right?", {"n": SpokenDigits("482913", keep=0)}, voice=Voice()
    )
    assert "482" not in speech.transcript and "*** ***" in speech.transcript
    digits = [(p.text, p.position) for p in speech.parts if isinstance(p, Segment) and p.position]
    assert digits == [  # one segment per digit, in its position in its group of three
        ("4", "start"),
        ("8", "middle"),
        ("2", "end"),
        ("9", "start"),
        ("1", "middle"),
        ("3", "end"),
    ]


def test_slower_lowers_rate_and_lengthens_pauses() -> None:
    v = Voice()
    normal = render_text("One. Two.", {}, voice=v)
    slow = render_text("One. Two.", {}, voice=v, slower=1)
    assert slow.parts[0].rate_wpm < normal.parts[0].rate_wpm  # type: ignore[union-attr]
    assert slow.parts[1].ms > normal.parts[1].ms  # type: ignore[union-attr]


def _codes(clock: list[float], code: str | None = None) -> tuple[Codes, Accounts, SmsOutbox]:
    store = Store(":memory:")
    accounts = Accounts(store)
    accounts.add("13800138000", "Wang Fang")
    outbox = SmsOutbox(store)
    return Codes(store, accounts, outbox, fixed_code=code, clock=lambda: clock[0]), accounts, outbox


def test_code_is_six_random_digits_sent_by_text() -> None:
    codes, _, outbox = _codes([1000.0])
    assert codes.issue("13800138000") is Issue.SENT
    body = outbox.messages("13800138000")[-1].body
    sent = "".join(c for c in body if c.isdigit())[:6]
    assert len(sent) == 6
    assert codes.verify("13800138000", sent) is Verify.OK


def test_code_expiry_tries_and_lock() -> None:
    clock = [1000.0]
    codes, accounts, _ = _codes(clock, "482913")
    codes.issue("13800138000")
    clock[0] += 301
    assert codes.verify("13800138000", "482913") is Verify.EXPIRED
    codes.issue("13800138000")
    assert codes.verify("13800138000", "000000") is Verify.WRONG
    assert codes.verify("13800138000", "000001") is Verify.WRONG
    assert codes.verify("13800138000", "000002") is Verify.LOCKED
    assert accounts.by_phone("13800138000").recovery_locked(clock[0] + 29 * 60)
    assert codes.issue("13800138000") is Issue.LOCKED
    clock[0] += 31 * 60
    assert codes.issue("13800138000") is Issue.SENT


def test_resend_limit() -> None:
    codes, _, _ = _codes([1000.0], "482913")
    codes.issue("13800138000")
    assert codes.issue("13800138000", resend=True) is Issue.SENT
    assert codes.issue("13800138000", resend=True) is Issue.SENT
    assert codes.issue("13800138000", resend=True) is Issue.RESEND_LIMIT


def test_g711_round_trip_and_antialiasing() -> None:
    t = np.arange(16000) / 16000
    tone = (np.sin(2 * np.pi * 440 * t) * 12000).astype(np.int16)
    for enc, dec in ((ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)):
        back = dec(enc(tone))
        assert np.corrcoef(tone, back)[0, 1] > 0.999
    high = (np.sin(2 * np.pi * 5000 * t) * 12000).astype(np.int16)
    narrow = resample(high, 16000, 8000)
    assert np.abs(narrow[200:-200]).max() < 300  # 5 kHz cannot exist at 8 kHz: filtered, not folded


def test_model_archive_checks(tmp_path: Path) -> None:
    from ivr.speech import models

    ko = models.bundled_model_paths()["ko-KR"]
    archive = tmp_path / "vosk-model-small-ko-test.tar"
    with tarfile.open(archive, "w") as tf:
        for rel in ("am/final.mdl", "conf/model.conf", "graph/HCLr.fst", "graph/Gr.fst"):
            tf.add(ko / rel, arcname=f"vosk-model-small-ko-test/{rel}")
    info = models.install_model(str(archive), tmp_path / "models", progress=False)
    assert info.locale == "ko-KR" and models.find_model(tmp_path / "models", "ko-KR") == info
    with pytest.raises(ModelError, match="checksum"):
        models.install_model(str(archive), tmp_path / "m2", sha256="0" * 64)
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(archive.read_bytes()[:5000])
    with pytest.raises(ModelError, match="cannot read model archive"):
        models.install_model(str(broken), tmp_path / "m3")
    assert [p.name for p in (tmp_path / "m3").iterdir()] == []
    with pytest.raises(ModelError, match=r"no am/final\.mdl"):
        models.check_layout(tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("turns: [\n", "not valid YAML"),
        ("name: x\n", "non-empty list of turns"),
        ("turns:\n  - dtmf: '12a'\n", "turn #1: dtmf: expected keys"),
        ("turns:\n  - silence: true\n  - shout: 'x'\n", "turn #2: expected exactly one of"),
        ("turns:\n  - silence: true\n    loud: 1\n", "turn #1: unknown keys"),
        ("turns:\n  - silence: true\nexpect: {outcome: happy}\n", "expect.outcome"),
    ],
)
def test_bad_test_call_files_name_the_file_and_turn(
    tmp_path: Path, text: str, message: str
) -> None:
    from ivr.qa.testcall import load_call

    path = tmp_path / "call.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_call(path)
    assert str(path) in str(info.value)


def test_busy_audio_device_message() -> None:
    """PortAudio's own error objects (as sounddevice raises them) become advice, not codes."""
    import sounddevice as sd

    from ivr.channels.microphone import open_error_message

    busy = open_error_message(
        sd.PortAudioError("Error opening InputStream: Device unavailable", -9985)
    )
    assert "busy or unavailable" in busy and "--input" in busy and "ivr devices" in busy
    other = open_error_message(sd.PortAudioError("Invalid sample rate", -9997))
    assert "busy" not in other and "--input" in other


def test_a_cut_to_the_voice_keeps_every_loud_part_and_drops_the_quiet_line() -> None:
    """``loud_extent``: the voice found (``span``), widened to the loud 10 ms frames."""
    from ivr.speech.asr.whisper_decode import loud_extent

    rate = 16000
    hiss = np.random.default_rng(0).standard_normal(rate * 4) * 1e-3
    t = np.arange(rate) / rate
    audio = hiss.copy()
    for start in (0.5, 2.5):  # two words, a second each; the voice found covers the first
        at = int(start * rate)
        audio[at : at + rate] += 0.3 * np.sin(2 * np.pi * 220 * t)
    first, last = loud_extent(audio, (int(0.5 * rate), int(1.5 * rate)))
    assert abs(first - 0.5 * rate) <= 160 and abs(last - 3.5 * rate) <= 160
    # nothing loud beyond the voice found: the voice found stands
    assert loud_extent(hiss, (rate, 2 * rate)) == (rate, 2 * rate)
    assert loud_extent(hiss[:100], (0, 50)) == (0, 50)
