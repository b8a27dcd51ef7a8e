"""The service line's data and logic: both locales complete, knowledge as CALLFLOWS.md asks,
ticket rules, feedback classification, free-speech recording in the dialog engine."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
import yaml

from ivr.config import REPO_ROOT
from ivr.dialog.prompts import PromptBook
from ivr.services.codes import SmsOutbox
from ivr.services.feedback import CATEGORIES, FeedbackClassifier
from ivr.services.knowledge import KnowledgeBase
from ivr.services.store import Store
from ivr.services.tickets import Messages, TicketError, Tickets
from ivr.speech.grammar import GrammarBook, normalize

PROMPTS = REPO_ROOT / "prompts"
GRAMMARS = REPO_ROOT / "grammars"
LOCALES = ("en-US", "zh-CN")


def _fields(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


@pytest.mark.parametrize("locale", ["zh-CN"])
def test_every_prompt_exists_in_every_locale_with_the_same_placeholders(locale: str) -> None:
    english = PromptBook(PROMPTS, "en-US")
    other = PromptBook(PROMPTS, locale)
    assert set(other.prompts) == set(english.prompts)
    for pid, variants in english.prompts.items():
        assert set(other.prompts[pid]) == set(variants), pid
        for variant, text in variants.items():
            assert _fields(other.prompts[pid][variant]) == _fields(text), (pid, variant)


@pytest.mark.parametrize("locale", ["zh-CN"])
def test_every_grammar_has_the_same_meanings_and_keys(locale: str) -> None:
    english = GrammarBook(GRAMMARS, "en-US")
    other = GrammarBook(GRAMMARS, locale)
    assert other.names() == english.names()
    for name in english.names():
        en, zh = english.get(name), other.get(name)
        assert set(zh.phrases.values()) == set(en.phrases.values()), name
        assert zh.keys == en.keys, name
        assert zh.digits == en.digits, name


@pytest.mark.parametrize("locale", LOCALES)
def test_knowledge_base_has_what_the_flows_need(locale: str) -> None:
    kb = KnowledgeBase(PROMPTS, locale)
    assert len(kb.get("reset_password").steps) == 4
    assert len(kb.get("apply_live_streaming").steps) == 3
    assert kb.get("live_streaming").answer
    rules = kb.get("review_rules")
    assert len(rules.points) == 3  # marketing, vulgar or violent content, fake engagement
    for article in kb.articles.values():
        for text in [article.answer, *article.steps, *article.points]:
            # plain speech: short sentences, one idea each
            for sentence in text.replace("。", ".").split("."):
                assert len(sentence.split()) <= 22 and len(sentence) <= 160, sentence


def test_mandarin_is_matched_character_by_character() -> None:
    grammar = GrammarBook(GRAMMARS, "zh-CN").get("main_menu")
    for heard in ("忘记密码", "忘记 密码", "忘 记 密 码"):
        interp = grammar.interpret(heard)
        assert interp is not None and interp.value == "account_recovery"
    digits = GrammarBook(GRAMMARS, "zh-CN").get("ticket_number")
    interp = digits.interpret("二零二六 幺幺二零")
    assert interp is not None and interp.digits == "20261120"
    assert normalize("Ticket 二零") == "ticket 二 零"


@pytest.fixture
def tickets(tmp_path: Path) -> tuple[Tickets, SmsOutbox]:
    store = Store(tmp_path / "t.sqlite3")
    outbox = SmsOutbox(store)
    return Tickets(store, outbox), outbox


MESSAGES = Messages(created="ticket {number} opened", resolved="ticket {number}: {resolution}")


def test_ticket_life(tickets) -> None:  # type: ignore[no-untyped-def]
    service, outbox = tickets
    ticket = service.create(
        "content_review",
        {"content_type": "food"},
        caller="13800138000",
        locale="en-US",
        messages=MESSAGES,
    )
    assert [m.body for m in outbox.messages()] == [f"ticket {ticket.number} opened"]
    with pytest.raises(TicketError, match="resolution"):
        service.update(ticket.number, status="resolved", messages=MESSAGES)
    with pytest.raises(TicketError, match="unknown status"):
        service.update(ticket.number, status="closed")
    with pytest.raises(TicketError, match="no ticket"):
        service.update("00000000", status="resolved", resolution="x")
    with pytest.raises(TicketError, match="unknown team"):
        service.create("legal", {}, caller=None, locale="en-US")
    done = service.update(ticket.number, status="resolved", resolution="Fixed.", messages=MESSAGES)
    assert done.status == "resolved" and done.resolution == "Fixed."
    # resolving again (a note) does not text the caller twice
    service.update(ticket.number, note="checked again", messages=MESSAGES)
    assert [m.body for m in outbox.messages()][1:] == [f"ticket {ticket.number}: Fixed."]
    assert [c.status for c in service.get(ticket.number).history] == [  # type: ignore[union-attr]
        "open",
        "resolved",
        "resolved",
    ]
    assert service.list(status="resolved")[0].number == ticket.number
    assert service.list(team="product") == []


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("the app keeps crashing when i upload a video", "bug"),
        ("please add a dark mode i would like bigger text", "feature_request"),
        ("i waited two hours and nobody helped this is unacceptable", "complaint"),
        ("i love the new editor thank you it is wonderful", "praise"),
        ("my name is john", "other"),
        ("", "other"),
    ],
)
def test_feedback_classifier_en(text: str, category: str) -> None:
    result = FeedbackClassifier(PROMPTS, "en-US").classify(text)
    assert result.category == category
    assert result.queue == ("product" if category in ("bug", "feature_request") else "operations")


def test_feedback_classifier_zh() -> None:
    classifier = FeedbackClassifier(PROMPTS, "zh-CN")
    assert classifier.classify("上传 视频 的 时候 总是 闪退").category == "bug"
    assert classifier.classify("希望增加夜间模式").category == "feature_request"
    assert classifier.classify("太好了 很 喜欢").category == "praise"


def test_classifier_files_are_checked(tmp_path: Path) -> None:
    from ivr.errors import ConfigError

    (tmp_path / "xx" / "classifier").mkdir(parents=True)
    (tmp_path / "xx" / "classifier" / "feedback.yaml").write_text(
        yaml.safe_dump({"routes": {"bug": "product"}, "categories": {}}), encoding="utf-8"
    )
    with pytest.raises(ConfigError, match="routes must name exactly"):
        FeedbackClassifier(tmp_path, "xx")
    with pytest.raises(ConfigError, match="feedback classifier for yy not found"):
        FeedbackClassifier(tmp_path, "yy")
    assert set(CATEGORIES) == {"feature_request", "bug", "complaint", "praise", "other"}
