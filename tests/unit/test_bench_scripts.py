"""Every script `make bench` (and `make soak`) runs loads: what it takes from the product and
the tests exists.

The benchmarks run seldom and outside the suite, so a name they import that was moved or
renamed (the desk bench took the browser's arguments from a helper that no longer held
them) would otherwise only show when somebody runs `make bench`.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAKEFILE_BENCH = re.compile(r"^\t\$\(PY\) (bench/\w+\.py)", re.M)


def _bench_scripts() -> list[str]:
    return MAKEFILE_BENCH.findall((REPO / "Makefile").read_text())


def test_the_makefile_runs_every_script_of_bench() -> None:
    scripts = _bench_scripts()
    assert sorted(scripts) == sorted(f"bench/{p.name}" for p in (REPO / "bench").glob("*.py"))


@pytest.mark.parametrize("script", _bench_scripts())
def test_bench_script_loads(script: str) -> None:
    path = REPO / script
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as an import does (its dataclasses look themselves up)
    try:
        spec.loader.exec_module(module)  # runs its imports, not its main (guarded by __name__)
    finally:
        del sys.modules[spec.name]
    assert callable(module.main)
