"""Property-based fuzzing of everything that parses outside input (Hypothesis).

The examples are drawn from a fixed seed (``derandomize``), so a run is repeatable; an input
that once failed is kept with ``@example`` beside its property as a regression test.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ivr-fuzz",
    derandomize=True,
    deadline=None,  # a busy 2-core machine: no per-example time limit
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile("ivr-fuzz")
