"""A few examples of each differential fuzzing family (tests/fuzz/), with a
fixed seed, as part of the suite; `python -m tests.fuzz` runs them for as
long as it is told."""

import pathlib
import sys

import pytest

from support import require_turboloop

hypothesis = pytest.importorskip("hypothesis")

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))


@pytest.mark.parametrize("family", ["loop_programs", "transport_programs"])
def test_fuzz_smoke(family):
    require_turboloop()
    import importlib

    from hypothesis import HealthCheck, given, settings

    common = importlib.import_module("tests.fuzz.common")
    module = importlib.import_module(f"tests.fuzz.{family}")

    @settings(max_examples=15, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(module.programs())
    def check(program):
        common.check_same(program, common.run_both(program, module.run_program))

    check()
