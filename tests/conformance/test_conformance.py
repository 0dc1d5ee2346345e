"""Runs the CPython conformance harness from pytest.  It takes minutes, so
it is skipped unless TURBOLOOP_CONFORMANCE=1; `python -m tests.conformance`
is the usual way in."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(os.environ.get("TURBOLOOP_CONFORMANCE", "") in ("", "0"),
                                reason="set TURBOLOOP_CONFORMANCE=1 to run CPython's asyncio suite")


def test_cpython_asyncio_suite():
    env = dict(os.environ)
    paths = [str(ROOT), str(ROOT / "python")] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    proc = subprocess.run([sys.executable, "-m", "tests.conformance"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    # The report is the useful part of a failure.
    assert proc.returncode == 0, proc.stdout[-20000:] + proc.stderr[-5000:]
