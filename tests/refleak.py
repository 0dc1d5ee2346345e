"""Reference leak hunt over the test suite, like CPython's `regrtest -R`.

    python3.14d -m tests.refleak [-R WARMUP:ROUNDS] [pytest arguments...]

Runs every selected test WARMUP + ROUNDS times in a row (default 3:3) and
measures, around each of the last ROUNDS runs, after a full collection:
the interpreter's total reference count (sys.gettotalrefcount(), debug
builds only), its allocated memory blocks (sys.getallocatedblocks()) and
the process's open file descriptors.  As in CPython, a test leaks
references or blocks when every measured run grew them (by at least one),
and file descriptors when any measured run changed their number.  The
report lists the leaking tests with their deltas; the exit status is 1 if
there is any.  Without a debug interpreter only blocks and fds are
measured.

The pytest arguments default to `tests -q -p no:cacheprovider`; the
turboloop under test is whatever `import turboloop` finds (for example
PYTHONPATH=python after `python3.14d setup.py build_ext --inplace`).  The
twins of the suite's tests that run on stock asyncio only (parameter
`kind` or `pair` all asyncio) are left out: they measure asyncio.
"""

import gc
import os
import sys

import pytest
from _pytest.runner import runtestprotocol


def _open_fds():
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def _clear_caches():
    """Drop what the standard library caches on the side (compiled regular
    expressions, source lines for tracebacks, the type attribute cache), as
    CPython's regrtest does before it counts, so that a cache filling up is
    not taken for a leak."""
    import linecache
    import re

    re.purge()
    linecache.clearcache()
    clear = getattr(sys, "_clear_internal_caches", None) or getattr(sys, "_clear_type_cache", None)
    if clear is not None:
        clear()
    for name in ("typing", "fractions", "decimal", "inspect"):
        module = sys.modules.get(name)
        for func in getattr(module, "_cleanups", ()) if name == "typing" else ():
            func()


def _measure():
    _clear_caches()
    gc.collect()
    gc.collect()
    refs = sys.gettotalrefcount() if hasattr(sys, "gettotalrefcount") else 0
    return refs, sys.getallocatedblocks(), _open_fds()


class RefleakPlugin:
    def __init__(self, warmup, rounds):
        self.warmup = warmup
        self.rounds = rounds
        self.leaks = []
        self.checked = 0

    def pytest_collection_modifyitems(self, config, items):
        keep, drop = [], []
        for item in items:
            params = getattr(getattr(item, "callspec", None), "params", {})
            names = [params[k] for k in ("kind", "pair") if k in params]
            flat = [getattr(n, "name", n) for n in names]
            flat = [x for n in flat for x in (n if isinstance(n, tuple) else (n,))]
            (drop if flat and all(x == "asyncio" for x in flat) else keep).append(item)
        items[:] = keep
        config.hook.pytest_deselected(items=drop)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item, nextitem):
        item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        runs = self.warmup + self.rounds
        deltas = []
        reports = []
        for i in range(runs):
            # What a run captured (its stdout, its log) is kept on the item
            # for the report: only the last run's is wanted, and the others
            # would count as a leak.
            item._report_sections = []
            before = _measure() if i >= self.warmup else None
            # Tears down what the next test does not share, as a normal run
            # does: the test's own fixtures, not those of its module.
            reports = runtestprotocol(item, nextitem=nextitem, log=False)
            if any(r.failed or r.skipped for r in reports):
                # A failing or skipped test says nothing about leaks; report
                # it as it is.
                break
            if before is not None:
                after = _measure()
                deltas.append(tuple(a - b for a, b in zip(after, before)))
        else:
            self.checked += 1
            refs = [d[0] for d in deltas]
            blocks = [d[1] for d in deltas]
            fds = [d[2] for d in deltas]
            problems = []
            if hasattr(sys, "gettotalrefcount") and all(d >= 1 for d in refs):
                problems.append(f"references {refs}")
            if all(d >= 1 for d in blocks):
                problems.append(f"memory blocks {blocks}")
            if any(fds):
                problems.append(f"file descriptors {fds}")
            if problems:
                self.leaks.append((item.nodeid, problems))
        for report in reports:
            item.ihook.pytest_runtest_logreport(report=report)
        item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True

    def pytest_terminal_summary(self, terminalreporter):
        tr = terminalreporter
        tr.section("reference leaks")
        tr.write_line(f"-R {self.warmup}:{self.rounds}: {self.checked} tests measured "
                      f"({'refcounts, ' if hasattr(sys, 'gettotalrefcount') else ''}"
                      f"memory blocks, file descriptors)")
        if not self.leaks:
            tr.write_line("no leaks")
        for nodeid, problems in self.leaks:
            tr.write_line(f"LEAK {nodeid}: {'; '.join(problems)}")


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    warmup, rounds = 3, 3
    if argv and argv[0] == "-R":
        warmup, rounds = (int(x) for x in argv[1].split(":"))
        argv = argv[2:]
    elif argv and argv[0].startswith("-R"):
        warmup, rounds = (int(x) for x in argv[0][2:].split(":"))
        argv = argv[1:]
    if not argv:
        argv = ["tests", "-q", "-p", "no:cacheprovider"]
    plugin = RefleakPlugin(warmup, rounds)
    status = pytest.main(argv, plugins=[plugin])
    if plugin.leaks and status == 0:
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
