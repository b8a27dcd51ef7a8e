"""Shared fixtures: one engine set and synthesizer per test session, data under tmp paths."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ivr.config import Settings, load_settings

SHARED_SPEECH = Path(
    os.environ.get("IVR_SHARED_SPEECH", Path(__file__).resolve().parents[2] / "shared" / "speech")
)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One models directory for the whole run, with Whisper base put together as a user would
    (`ivr models install whisper-base`); every settings object and `ivr` process finds it
    through $IVR_MODELS."""
    from ivr.speech import whisper_models

    path = tmp_path_factory.mktemp("models")
    whisper_models.install(path, "whisper-base")
    before = os.environ.get("IVR_MODELS")
    os.environ["IVR_MODELS"] = str(path)
    yield path
    if before is None:
        os.environ.pop("IVR_MODELS", None)
    else:
        os.environ["IVR_MODELS"] = before


@pytest.fixture(scope="session")
def ivr_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ivr-home")


@pytest.fixture(scope="session")
def settings(ivr_home: Path, models_dir: Path) -> Settings:
    return load_settings(home=ivr_home)


@pytest.fixture(scope="session")
def sphinx():  # type: ignore[no-untyped-def]
    from ivr.speech.asr.sphinx import SphinxEngine

    return SphinxEngine()


@pytest.fixture(scope="session")
def engines(settings: Settings):  # type: ignore[no-untyped-def]
    """The engines a call uses (grammar decoder, Whisper in the worker pool), shared."""
    from ivr.speech.engines import Engines

    return Engines.from_settings(settings)


@pytest.fixture(scope="session")
def zh_prompts_built(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> Any:
    """zh-CN's prompts built once for the session (both rates, every speed), as `ivr prompts
    build` does, in a home of their own: returns that home's settings and the build's report.
    Tests that change the cache copy it first."""
    from ivr.dialog.prompt_cache import build_cache
    from ivr.speech.tts import Synthesizer

    built = settings.with_(home=tmp_path_factory.mktemp("zh-prompts"))
    report = build_cache(built, Synthesizer(built.cache_dir / "prompts"), ["zh-CN"])
    return built, report


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium shared by every web page test of the session (tests/browser.py)."""
    from tests.browser import chromium

    yield from chromium()


@pytest.fixture(scope="session")
def grammars():  # type: ignore[no-untyped-def]
    from ivr.speech.grammar import GrammarBook

    return GrammarBook(REPO / "grammars", "en-US")


@pytest.fixture(autouse=True)
def _quiet_transitions() -> Iterator[None]:
    logging.getLogger("transitions").setLevel(logging.WARNING)
    yield
