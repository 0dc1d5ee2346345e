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
there is any.  A turboloop test that seems to leak is measured again
against its asyncio twin (the same test on stock asyncio), run the same
way right after it: pytest's own fixtures keep things per run (tmp_path's
bookkeeping, caplog's records), and only growth beyond the twin's is
reported.  A test without a twin (one that runs turboloop in a child
process only, say) is measured against its fixtures alone: the same
fixtures and parameters around a body that does nothing.  Without a debug interpreter only blocks and fds are
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


def _nothing(**kwargs):
    """The body of a test's fixture-only baseline (see _fixture_twin())."""


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
        self.baselined = 0
        self.twins = {}

    def pytest_collection_modifyitems(self, config, items):
        keep, drop = [], []
        for item in items:
            params = getattr(getattr(item, "callspec", None), "params", {})
            names = [params[k] for k in ("kind", "pair") if k in params]
            flat = [getattr(n, "name", n) for n in names]
            flat = [x for n in flat for x in (n if isinstance(n, tuple) else (n,))]
            (drop if flat and all(x == "asyncio" for x in flat) else keep).append(item)
        items[:] = keep
        # The asyncio twins are not measured for themselves, only as the
        # baseline of a turboloop test that seems to leak (see _twin()).
        self.twins = {item.nodeid: item for item in drop}
        config.hook.pytest_deselected(items=drop)

    def _twin(self, item):
        """The asyncio twin of a turboloop test, or None: the same test with
        every turboloop parameter id (turboloop, turboloop-poll) made
        asyncio.  What pytest's own fixtures keep per run (tmp_path's
        bookkeeping, caplog's) grows its count just the same, so only growth
        beyond the twin's is turboloop's."""
        head, sep, ids = item.nodeid.partition("[")
        if not sep:
            return None
        ids = ids.replace("turboloop-poll", "asyncio").replace("turboloop", "asyncio")
        return self.twins.get(head + "[" + ids)

    @staticmethod
    def _fixture_twin(item):
        """For a test without an asyncio twin: a test with the same fixtures
        and parameters whose body does nothing, so that what the fixtures
        keep per run is not counted as the test's."""
        if not isinstance(item, pytest.Function):
            return None
        kwargs = {"name": item.name + "[fixtures only]", "callobj": _nothing,
                  "fixtureinfo": item._fixtureinfo, "keywords": item.keywords,
                  "originalname": item.originalname}
        if hasattr(item, "callspec"):
            kwargs["callspec"] = item.callspec
        return pytest.Function.from_parent(item.parent, **kwargs)

    def _deltas(self, item, nextitem):
        """Run item warmup + rounds times; the (refs, blocks, fds) growth of
        each measured run and the last run's reports.  The deltas are None
        when a run failed or was skipped."""
        deltas = []
        reports = []
        for i in range(self.warmup + self.rounds):
            # What a run captured (its stdout, its log) is kept on the item
            # for the report: only the last run's is wanted, and the others
            # would count as a leak.
            item._report_sections = []
            before = _measure() if i >= self.warmup else None
            # Tears down what the next test does not share, as a normal run
            # does: the test's own fixtures, not those of its module.
            reports = runtestprotocol(item, nextitem=nextitem, log=False)
            if any(r.failed or r.skipped for r in reports):
                return None, reports
            if before is not None:
                after = _measure()
                deltas.append(tuple(a - b for a, b in zip(after, before)))
        return deltas, reports

    @staticmethod
    def _problems(deltas):
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
        return problems

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item, nextitem):
        item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        deltas, reports = self._deltas(item, nextitem)
        if deltas is not None:
            # A failing or skipped test says nothing about leaks; it is
            # reported as it is.
            self.checked += 1
            problems = self._problems(deltas)
            twin, what = None, ""
            if problems:
                twin, what = self._twin(item), "its asyncio twin"
                if twin is None:
                    twin, what = self._fixture_twin(item), "its fixtures alone"
            if twin is not None:
                base, _ = self._deltas(twin, nextitem)
                if base is None:
                    problems.append(f"({what} failed: no baseline)")
                else:
                    excess = [tuple(t - b for t, b in zip(d, bd)) for d, bd in zip(deltas, base)]
                    problems = self._problems(excess)
                    if problems:
                        problems.append(f"beyond {what}: {[d[0] for d in base]}")
                    else:
                        self.baselined += 1
            elif problems:
                problems.append("(no baseline)")
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
        if self.baselined:
            tr.write_line(f"{self.baselined} tests grew no more than their asyncio twins "
                          "or their fixtures alone (what pytest's fixtures keep per "
                          "run): not leaks")
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
