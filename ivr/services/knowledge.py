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
            steps = data.get("steps") or []
            if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
                raise ConfigError(f"{path}: 'steps' must be a list of texts")
            self.articles[path.stem] = Article(
                id=path.stem,
                title=data["title"],
                answer=str(data.get("answer", "")),
                steps=list(steps),
                keywords=[str(k) for k in data.get("keywords") or []],
            )

    def get(self, article_id: str) -> Article:
        try:
            return self.articles[article_id]
        except KeyError as exc:
            raise ConfigError(f"knowledge article {article_id!r} not found in {self.dir}") from exc
