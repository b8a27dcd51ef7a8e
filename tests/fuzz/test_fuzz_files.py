"""Files from outside: test calls, grammars, prompts, ivr.toml and model archives. Whatever
they hold, loading them gives a usable value or a clear error (the product's own, naming the
file), never a crash, and nothing is written half-way."""

from __future__ import annotations

import dataclasses
import io
import shutil
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from ivr.config import Settings, load_settings
from ivr.dialog.prompts import PromptBook
from ivr.errors import ConfigError, IvrError, ModelError
from ivr.qa.testcall import load_call
from ivr.speech.grammar import GrammarBook
from ivr.speech.models import install_model

REPO = Path(__file__).resolve().parents[2]
KEYS = [
    "name",
    "locale",
    "caller_id",
    "dialed",
    "turns",
    "expect",
    "fixtures",
    "outcome",
    "dtmf",
    "say",
    "silence",
    "hangup",
    "audio",
    "barge_in_ms",
    "transfer_reason",
    "said",
    "states",
    "values",
    "keys",
    "digits",
    "length",
    "min",
    "max",
    "description",
    "text",
    "noinput.1",
    "nomatch.2",
    "yes",
    "no",
    "1",
    "#",
    "timeouts",
    "voice",
    "asr",
    "sip",
    "users",
    "dnis",
    "brand",
    "brands",
    "no_input_ms",
    "rate_wpm",
    "voices",
    "realm",
    "ha1_md5",
    "algorithms",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(KEYS),
    st.sampled_from(["resolved", "en-US", "zh-CN"]),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=5),
    ),
    max_leaves=20,
)
yaml_texts = st.one_of(
    documents.map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
    st.text(max_size=200),
    st.sampled_from(
        [
            "turns: [",
            "? [a]\n: b",
            "a: &x [*x]",
            "!!python/object:os.system {}",
            "\ufeffname: x",
            "turns:\n  - dtmf: 1\n  - {}\n",
        ]
    ),
)


def _clear(exc: BaseException, path: Path) -> None:
    assert isinstance(exc, IvrError), f"{type(exc).__name__}: {exc}"
    assert str(path.name) in str(exc) or str(path.parent.name) in str(exc), str(exc)


# --- test calls -------------------------------------------------------------------------------
@given(text=yaml_texts)
@example(text="turns:\n  - audio: .\n")  # a folder where a WAV file belongs
@example(text="turns: [{dtmf: '1'}]\nexpect: {outcome: [resolved]}\n")
def test_test_call(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = tmp_path_factory.mktemp("call") / "call.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        call = load_call(path, synthesize=False)
    except Exception as exc:
        _clear(exc, path)
    else:
        assert call.turns and all(t.where.startswith(str(path)) for t in call.turns)


# --- grammars and prompts ---------------------------------------------------------------------
def _grammar_root(tmp: Path) -> Path:
    root = tmp / "grammars"
    shutil.copytree(
        REPO / "grammars" / "en-US", root / "en-US", ignore=shutil.ignore_patterns("[!_]*.yaml")
    )
    return root


@given(text=yaml_texts)
@example(text="values: [a, b]\n")
@example(text="keys: [1, 2]\n")
@example(text="digits: [1]\n")
@example(text="digits: {min: 5, max: 2}\n")
def test_grammar(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    root = _grammar_root(tmp_path_factory.mktemp("g"))
    path = root / "en-US" / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        grammar = GrammarBook(root, "en-US").get("fuzz")
    except Exception as exc:
        _clear(exc, path)
    else:
        grammar.jsgf()
        grammar.vosk_phrases()
        grammar.interpret("yes")


@given(text=yaml_texts)
@example(text="_digits: x\n")
def test_grammar_digit_words(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    root = _grammar_root(tmp_path_factory.mktemp("g"))
    path = root / "en-US" / "_digits.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        GrammarBook(root, "en-US")
    except Exception as exc:
        _clear(exc, path)


@given(text=yaml_texts)
@example(text="welcome: {text: 1, noinput.1: [a]}\n")
def test_prompts(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    root = tmp_path_factory.mktemp("p")
    (root / "en-US").mkdir()
    path = root / "en-US" / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        book = PromptBook(root, "en-US")
    except Exception as exc:
        _clear(exc, path)
    else:
        for pid in book.prompts:
            assert isinstance(book.text(pid), str)


# --- ivr.toml ---------------------------------------------------------------------------------
def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return (
            '"'
            + value.replace("\\", "\\\\")
            .replace('"', '\\"')
            .encode("ascii", "backslashreplace")
            .decode()
            .replace("\\x", "\\u00")
            + '"'
        )
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f'"{k}" = {_toml_value(v)}' for k, v in value.items()) + "}"


toml_scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(codec="ascii", min_codepoint=32), max_size=12),
    st.sampled_from(KEYS),
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=4),
    ),
    max_leaves=12,
)
toml_texts = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), toml_values, max_size=5).map(
        lambda d: "\n".join(f'"{k}" = {_toml_value(v)}' for k, v in d.items())
    ),
    st.text(max_size=200),
)


def _check_types(obj: Any, where: str) -> None:
    """Every setting has the type of its default (a table where a table belongs)."""
    default = type(obj)(home=obj.home) if isinstance(obj, Settings) else type(obj)()
    for f in dataclasses.fields(obj):
        value, base = getattr(obj, f.name), getattr(default, f.name)
        if dataclasses.is_dataclass(base):
            assert type(value) is type(base), f"{where}.{f.name}: {value!r}"
            _check_types(value, f"{where}.{f.name}")
        elif base is not None and not isinstance(base, Path):
            kinds = (int, float) if isinstance(base, float) else (type(base),)
            assert isinstance(value, kinds), f"{where}.{f.name}: {value!r}"


@given(text=toml_texts)
@example(text="timeouts = 5")
@example(text="dnis = [1]")
@example(text="[sip]\nusers = 3")
@example(text='locale = "xx-XX"')
def test_ivr_toml(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    home = tmp_path_factory.mktemp("home")
    path = home / "ivr.toml"
    path.write_text(text, encoding="utf-8")
    try:
        settings = load_settings(path, home=home)
    except Exception as exc:  # the product's error, naming the file or the setting
        assert isinstance(exc, IvrError), f"{type(exc).__name__}: {exc}"
        assert str(path) in str(exc) or str(exc).startswith(("locale:", "dnis.")), str(exc)
    else:
        _check_types(settings, "settings")


# --- model archives ---------------------------------------------------------------------------
def _tar(members: list[tuple[str, bytes, str]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tf:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            if kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
            else:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if kind == "file" else None)
    return out.getvalue()


def _zip(members: list[tuple[str, bytes, str]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data, _ in {m[0]: m for m in members}.values():  # one entry per name
            zf.writestr(name, data)
    return out.getvalue()


member_names = st.one_of(
    st.sampled_from(
        [
            "model/am/final.mdl",
            "model/conf/model.conf",
            "model/graph/HCLr.fst",
            "../escape",
            "/abs/path",
            "model/../../x",
            "model/ivector/",
            "a\\b",
            ".",
        ]
    ),
    st.text(st.characters(codec="ascii", min_codepoint=33), min_size=1, max_size=20),
)
members = st.lists(
    st.tuples(
        member_names, st.binary(max_size=64), st.sampled_from(["file", "file", "dir", "symlink"])
    ),
    max_size=6,
)
archives = st.one_of(
    st.tuples(st.just(".tar.gz"), members.map(_tar)),
    st.tuples(st.just(".zip"), members.map(_zip)),
    st.tuples(st.sampled_from([".zip", ".tar.gz", ".tgz", ".tar"]), st.binary(max_size=300)),
)


@given(archive=archives)
def test_model_archive(
    tmp_path_factory: pytest.TempPathFactory, archive: tuple[str, bytes]
) -> None:
    tmp = tmp_path_factory.mktemp("m")
    suffix, data = archive
    path = tmp / f"vosk-model-fuzz{suffix}"
    path.write_bytes(data)
    models = tmp / "models"
    try:
        install_model(str(path), models, locale="en-US", progress=False)
    except ModelError as exc:
        assert path.name in str(exc) or "model" in str(exc)
        # nothing half-way: no model, no temporary folder left behind
        assert not models.exists() or list(models.iterdir()) == []
    except ConfigError as exc:  # pragma: no cover - the installer raises ModelError
        raise AssertionError(exc) from exc
    assert not (tmp / "passwd").exists() and not Path(tmp.parent / "escape").exists()
