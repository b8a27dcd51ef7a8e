"""Where uncached speech is cut so that its first phrase plays while the rest is made."""

from __future__ import annotations

import pytest

from ivr.speech.phrasing import PhraseRules, phrase_rules


@pytest.fixture(scope="module")
def english() -> PhraseRules:
    return phrase_rules()["en-US"]


@pytest.mark.parametrize(
    ("text", "lead", "rest"),
    [
        # a comma the text has, even a little past the usual length
        (
            "We have restored the video you asked about, and it is public again.",
            "We have restored the video you asked about,",
            "and it is public again.",
        ),
        # before a word that begins a phrase
        (
            "Your review was finished this morning by the content team.",
            "Your review was finished this morning,",
            "by the content team.",
        ),
        # after a word that can end a phrase, not before an article
        (
            "The new version of the app fixes the problem you told us about.",
            "The new version of the app,",
            "fixes the problem you told us about.",
        ),
        # never after "was" or "you"
        (
            "The live room you reported was closed by our safety team.",
            "The live room you reported,",
            "was closed by our safety team.",
        ),
    ],
)
def test_a_long_sentence_is_cut_after_its_first_phrase(
    english: PhraseRules, text: str, lead: str, rest: str
) -> None:
    assert english.lead(text) == (lead, rest)


@pytest.mark.parametrize(
    "text",
    [
        "First, open the app.",  # short: made whole
        "Press 1 for help.",
        "Please hold on.",
        "Thank you, goodbye for now and take care.",  # the comma comes too early
    ],
)
def test_a_short_sentence_stays_whole(english: PhraseRules, text: str) -> None:
    assert english.lead(text) is None


def test_no_lead_ends_on_an_article_or_a_possessive(english: PhraseRules) -> None:
    text = "We sent a new code to the phone number on your account just now."
    cut = english.lead(text)
    assert cut is not None
    lead, rest = cut
    assert f"{lead[:-1]} {rest}" == text
    assert lead.split()[-1].strip(",") not in english.never_end_on
    assert rest.split()[0] not in english.never_begin
