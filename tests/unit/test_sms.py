"""Splitting text messages into SMS parts: both alphabets, the edges of each limit."""

from __future__ import annotations

import re

import pytest

from ivr.config import REPO_ROOT
from ivr.services.knowledge import KnowledgeBase
from ivr.services.sms import Alphabet, alphabet, sms_length, split_sms

LABEL = re.compile(r"^\((\d+)/(\d+)\) ")


def _check(parts: list[str], alpha: Alphabet, per_part: int) -> list[str]:
    """Every part within its limit and numbered in order; the parts without their labels."""
    n = len(parts)
    bodies = []
    for i, part in enumerate(parts, 1):
        assert sms_length(part, alpha) <= per_part, (i, part)
        m = LABEL.match(part)
        assert m is not None and (int(m.group(1)), int(m.group(2))) == (i, n), part
        bodies.append(part[m.end() :])
    return bodies


def test_alphabet_and_length() -> None:
    assert alphabet("Open the app, and tap Log in.") is Alphabet.GSM7
    assert alphabet("Price: 5€ [approx]") is Alphabet.GSM7
    assert sms_length("5€ [x]", Alphabet.GSM7) == 9  # € [ ] take two septets each
    assert alphabet("Tap \u201cForgot password\u201d") is Alphabet.UCS2  # curly quotes
    assert alphabet("打开应用") is Alphabet.UCS2
    assert sms_length("打开😀", Alphabet.UCS2) == 4  # an emoji is two UTF-16 units


@pytest.mark.parametrize(
    ("text", "single"),
    [("a" * 160, True), ("a" * 161, False), ("€" * 80, True), ("€" + "a" * 159, False)],
)
def test_gsm7_single_message_edge(text: str, single: bool) -> None:
    parts = split_sms([text])
    if single:
        assert parts == [text]
    else:
        bodies = _check(parts, Alphabet.GSM7, 153)
        assert len(parts) == 2 and "".join(bodies) == text


def test_ucs2_single_message_edge() -> None:
    assert split_sms(["密" * 70]) == ["密" * 70]
    parts = split_sms(["密" * 71])
    assert len(parts) == 2
    _check(parts, Alphabet.UCS2, 67)
    assert "".join(_check(parts, Alphabet.UCS2, 67)) == "密" * 71


def test_steps_are_kept_whole_when_each_fits_a_part() -> None:
    steps = [
        "StreamTube: Reset your password",
        "1. Open the app on your phone, and tap Log in.",
        "2. Tap Forgot password. Then enter the phone number linked to your account.",
        "3. Enter the code from the text message we sent you.",
        "4. Choose a new password, and log in with it.",
    ]
    parts = split_sms(steps)
    bodies = _check(parts, Alphabet.GSM7, 153)
    assert len(parts) == 3  # 253 characters: two parts by count, three to keep steps whole
    assert [line for b in bodies for line in b.split("\n")] == steps


def test_a_long_step_is_cut_between_words_never_inside_one() -> None:
    words = [f"word{i:03d}" for i in range(120)]  # 959 characters in one step
    parts = split_sms(["Header", " ".join(words)])
    bodies = _check(parts, Alphabet.GSM7, 153)
    assert len(parts) == 7
    found = [w for b in bodies for line in b.split("\n") for w in line.split(" ")]
    assert found == ["Header", *words]


def test_ten_parts_or_more_leave_room_for_the_wider_label() -> None:
    words = ["abcdefghi"] * 200  # 2,000 characters: more than nine parts
    parts = split_sms([" ".join(words)])
    assert len(parts) >= 10
    bodies = _check(parts, Alphabet.GSM7, 153)
    assert parts[-1].startswith(f"({len(parts)}/{len(parts)}) ")
    assert sum(len(b.split()) for b in bodies) == 200


def test_chinese_is_cut_after_punctuation() -> None:
    kb = KnowledgeBase(REPO_ROOT / "prompts", "zh-CN").get("reset_password")
    steps = [f"流管视频\N{FULLWIDTH COLON}{kb.title}"]
    steps += [f"{i}. {step}" for i, step in enumerate(kb.steps, 1)]
    parts = split_sms(steps)
    bodies = _check(parts, Alphabet.UCS2, 67)
    assert len(parts) == 2
    assert [line for b in bodies for line in b.split("\n")] == steps
    long_step = "\N{FULLWIDTH COMMA}".join(["打开手机上的应用点击登录"] * 12) + "。"
    bodies = _check(split_sms([long_step]), Alphabet.UCS2, 67)
    for body in bodies[:-1]:
        assert body.endswith("\N{FULLWIDTH COMMA}"), body  # cut after a comma, not mid-clause
    assert "".join(bodies) == long_step


def test_a_word_longer_than_a_part_is_the_only_thing_cut() -> None:
    url = "https://example.org/" + "x" * 300
    parts = split_sms(["Go to", url])
    bodies = _check(parts, Alphabet.GSM7, 153)
    assert bodies[0].startswith("Go to\n")
    assert "".join(b.replace("Go to\n", "", 1) for b in bodies) == url


def test_nothing_to_send() -> None:
    assert split_sms([]) == [] and split_sms(["  "]) == []
