"""Spoken feedback: classified by the locale's word lists, routed to a team, kept with its audio."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ivr.datafiles import read_yaml
from ivr.errors import ConfigError
from ivr.services.privacy import mask_phone, scrub
from ivr.services.store import Store
from ivr.speech.audio import Audio, write_wav

log = logging.getLogger(__name__)

CATEGORIES: Final = ("feature_request", "bug", "complaint", "praise", "other")
FALLBACK: Final = "other"
_JOIN_HANZI: Final = re.compile(r"(?<=[\u4e00-\u9fff])\s+(?=[\u4e00-\u9fff])")


@dataclass(frozen=True)
class Classification:
    category: str
    queue: str
    scores: dict[str, float]


class FeedbackClassifier:
    """Weighted cue words per category (``prompts/<locale>/classifier/feedback.yaml``).

    Latin-script cues match whole words; other scripts (Mandarin) match as substrings,
    since their dictation comes without spaces between words.
    """

    def __init__(self, prompts_root: Path, locale: str) -> None:
        path = prompts_root / locale / "classifier" / "feedback.yaml"
        data = read_yaml(path, f"the feedback classifier for {locale}") or {}
        routes = data.get("routes") or {}
        categories = data.get("categories") or {}
        if set(routes) != set(CATEGORIES):
            raise ConfigError(f"{path}: routes must name exactly {', '.join(CATEGORIES)}")
        if not set(categories) <= set(CATEGORIES):
            raise ConfigError(
                f"{path}: unknown categories {sorted(set(categories) - set(CATEGORIES))}"
            )
        self.routes: dict[str, str] = {str(k): str(v) for k, v in routes.items()}
        self.cues: list[tuple[str, re.Pattern[str], float]] = []
        for category, by_weight in categories.items():
            if not isinstance(by_weight, dict):
                raise ConfigError(f"{path}: {category}: expected weight -> list of cues")
            for weight, cues in by_weight.items():
                for cue in cues or []:
                    self.cues.append((category, _pattern(str(cue)), float(weight)))

    def classify(self, text: str) -> Classification:
        scores = dict.fromkeys(CATEGORIES, 0.0)
        lowered = _JOIN_HANZI.sub("", text.lower())  # dictation may space Mandarin words
        for category, pattern, weight in self.cues:
            scores[category] += weight * len(pattern.findall(lowered))
        best = max(CATEGORIES, key=lambda c: (scores[c], c == FALLBACK))
        category = best if scores[best] > 0 else FALLBACK
        return Classification(category, self.routes[category], scores)


def _pattern(cue: str) -> re.Pattern[str]:
    cue = cue.lower().strip()
    if cue.isascii():
        return re.compile(r"(?<![a-z'])" + re.escape(cue).replace(r"\ ", r"\s+") + r"(?![a-z'])")
    return re.compile(re.escape(cue))


@dataclass(frozen=True)
class FeedbackItem:
    id: int
    call_id: str | None
    created_at: float
    locale: str
    caller: str | None
    category: str
    queue: str
    transcript: str
    audio_path: str | None
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class FeedbackBox:
    """Stored feedback; the audio goes next to the database, in ``feedback/``."""

    def __init__(self, store: Store, audio_dir: Path) -> None:
        self.store = store
        self.audio_dir = audio_dir

    def add(
        self,
        *,
        call_id: str | None,
        locale: str,
        caller: str | None,
        classification: Classification,
        transcript: str,
        audio: Audio | None,
    ) -> FeedbackItem:
        now = time.time()
        path: Path | None = None
        if audio is not None and len(audio.samples):
            self.audio_dir.mkdir(parents=True, exist_ok=True)
            path = self.audio_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{call_id or 'call'}.wav"
            write_wav(path, audio.samples, audio.rate)
        cursor = self.store.execute(
            "INSERT INTO feedback(call_id, created_at, locale, caller, category, queue, transcript,"
            " audio_path, seconds, confirmed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
            (
                call_id,
                now,
                locale,
                mask_phone(caller),
                classification.category,
                classification.queue,
                scrub(transcript),
                None if path is None else str(path),
                0.0 if audio is None else audio.seconds,
            ),
        )
        log.info(
            "[%s] feedback stored: %s for %s",
            call_id,
            classification.category,
            classification.queue,
        )
        item = self.get(int(cursor.lastrowid or 0))
        assert item is not None
        return item

    def get(self, item_id: int) -> FeedbackItem | None:
        rows = self.store.query("SELECT * FROM feedback WHERE id = ?", (item_id,))
        return _item(rows[0]) if rows else None

    def list(self, *, category: str | None = None, limit: int = 100) -> list[FeedbackItem]:
        if category:
            rows = self.store.query(
                "SELECT * FROM feedback WHERE category = ? ORDER BY id DESC LIMIT ?",
                (category, limit),
            )
        else:
            rows = self.store.query("SELECT * FROM feedback ORDER BY id DESC LIMIT ?", (limit,))
        return [_item(r) for r in rows]


def _item(r: Any) -> FeedbackItem:
    return FeedbackItem(
        id=r["id"],
        call_id=r["call_id"],
        created_at=r["created_at"],
        locale=r["locale"],
        caller=r["caller"],
        category=r["category"],
        queue=r["queue"],
        transcript=r["transcript"],
        audio_path=r["audio_path"],
        seconds=r["seconds"],
    )
