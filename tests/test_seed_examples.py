"""The code examples of the asyncio notes the project started from, run
unchanged on turboloop: as a script under `python -m turboloop`, and
in-process under turboloop.run() and asyncio.run(loop_factory=...).  Each must
print exactly what it prints under plain python.

The examples live in examples/seed/ (extracted from the notes, which hold
four code examples).
"""

import asyncio
import functools
import pathlib
import runpy
import subprocess
import sys

import pytest

from support import CHILD_TIMEOUT, PY, subprocess_env

TESTS = pathlib.Path(__file__).parent
ROOT = TESTS.parent
EXAMPLE_DIRS = [ROOT / "examples" / "seed"]
EXAMPLES = sorted(path for d in EXAMPLE_DIRS if d.is_dir() for path in d.glob("ex*.py"))
EXAMPLE_IDS = [str(path.relative_to(ROOT)) for path in EXAMPLES]


def _popen(args):
    return subprocess.Popen([sys.executable, *args], env=subprocess_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(proc):
    stdout, stderr = proc.communicate(timeout=CHILD_TIMEOUT)
    return proc.returncode, stdout, stderr


@functools.lru_cache(maxsize=None)
def plain_python(path):
    """(returncode, stdout, stderr) of `python path`, computed once per file."""
    return _finish(_popen([str(path)]))


def test_the_examples_are_there():
    assert len([p for p in EXAMPLES if p.parent == EXAMPLE_DIRS[0]]) == 4


@pytest.mark.parametrize("path", EXAMPLES, ids=EXAMPLE_IDS)
def test_script_under_python_m_turboloop(tl, path):
    # Both children run at once: the examples sleep for real (up to 2 s).
    turbo_proc = _popen(["-m", "turboloop", str(path)])
    plain = plain_python(path)
    turbo = _finish(turbo_proc)
    assert plain[0] == 0, plain[2]
    assert plain[1], "the example printed nothing"
    assert turbo[0] == plain[0], turbo[2]
    assert turbo[1] == plain[1]


RUNNERS = ["run", "asyncio.run(loop_factory)"]


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("path", EXAMPLES, ids=EXAMPLE_IDS)
def test_in_process(kind, path, runner, monkeypatch, capsys):
    if runner == "asyncio.run(loop_factory)" and PY < (3, 12):
        pytest.skip("asyncio.run(loop_factory=) is new in 3.12")
    returncode, expected, stderr = plain_python(path)
    assert returncode == 0, stderr

    real_run = asyncio.run
    real_sleep = asyncio.sleep
    # Looked up before asyncio.run is patched: for stock asyncio it is asyncio.run.
    kind_run = kind.module.run
    loops = []

    def run_on_kind(main, *, debug=None):
        async def recorded():
            loops.append(asyncio.get_running_loop())
            return await main

        if runner == "run":
            return kind_run(recorded(), debug=debug)
        return real_run(recorded(), debug=debug, loop_factory=kind.new_event_loop)

    def quick_sleep(delay, result=None):
        # In-process runs scale the examples' one- and two-second sleeps down;
        # the output does not depend on them and the suite stays fast.  The
        # child-process test runs them at full length.
        return real_sleep(delay / 100, result)

    monkeypatch.setattr(asyncio, "run", run_on_kind)
    monkeypatch.setattr(asyncio, "sleep", quick_sleep)
    capsys.readouterr()
    runpy.run_path(str(path), run_name="__main__")
    out = capsys.readouterr().out
    assert out == expected
    assert loops, "the example did not call asyncio.run()"
    assert all(isinstance(loop, kind.Loop) and loop.is_closed() for loop in loops)
