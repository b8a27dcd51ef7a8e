"""Knowledge base: articles with a spoken answer and optional numbered steps, per locale."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ivr.errors import ConfigError


@dataclass(frozen=True)
class Article:
    id: str
    title: str
    answer: str = ""
    steps: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    points: list[str] = field(default_factory=list)

    def spoken(self) -> str:
        """The answer followed by its points, as one text to speak."""
        return " ".join([self.answer, *self.points]).strip()


class KnowledgeBase:
    def __init__(self, prompts_root: Path, locale: str) -> None:
        self.dir = prompts_root / locale / "knowledge"
        self.articles: dict[str, Article] = {}
        for path in sorted(self.dir.glob("*.yaml")):
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
            if not isinstance(data, dict) or not isinstance(data.get("title"), str):
                raise ConfigError(f"{path}: expected a mapping with a 'title'")
            steps = _texts(data, "steps", path)
            points = _texts(data, "points", path)
            self.articles[path.stem] = Article(
                id=path.stem,
                title=data["title"],
                answer=str(data.get("answer", "")),
                steps=list(steps),
                keywords=[str(k) for k in data.get("keywords") or []],
                points=points,
            )

    def get(self, article_id: str) -> Article:
        try:
            return self.articles[article_id]
        except KeyError as exc:
            raise ConfigError(f"knowledge article {article_id!r} not found in {self.dir}") from exc


def _texts(data: dict[str, object], key: str, path: Path) -> list[str]:
    items = data.get(key) or []
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        raise ConfigError(f"{path}: {key!r} must be a list of texts")
    return list(items)
