"""One job of the harness, in an interpreter of its own: one CPython test
module in one phase.  It writes one JSON record per line to --out, flushed
as it goes, so that the parent knows which test was running if this process
hangs or crashes:

  {"event": "plan", "tests": [[id, group], ...], "excluded": [[id, reason], ...]}
  {"event": "start", "id": ...}
  {"event": "end", "id": ..., "outcome": ..., "detail": ..., "time": ...,
   "target_loops": n, "stock_loops": n}
  {"event": "finished"}
  {"event": "fatal", "detail": ...}      (nothing could be run)

Outcomes: passed, failed, error, skipped, cpython_xfail (a test CPython marks
expectedFailure failed, as it should), unexpected_success.
"""

import argparse
import contextlib
import faulthandler
import importlib
import json
import os
import sys
import threading
import time
import traceback
import unittest
import warnings

from . import plug, tables, targets

PACKAGE = "test.test_asyncio."
DETAIL_LINES = 30
LOG_MARKER = "--- conformance harness: start of "


def short_id(test_id):
    return test_id[len(PACKAGE):] if test_id.startswith(PACKAGE) else test_id


def fixture_id(description):
    """unittest names a failing class or module fixture
    "setUpClass (test.test_asyncio.test_x.Cls)"; the harness calls it
    "test_x.Cls.setUpClass" so it sorts and filters like a test id."""
    if " (" in description and description.endswith(")"):
        what, _, where = description[:-1].partition(" (")
        return f"{short_id(where)}.{what}"
    return short_id(description)


class Recorder:
    def __init__(self, path):
        self._file = open(path, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, **record):
        line = json.dumps(record) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()


class LoopCounter:
    """Counts, per test, the loops the target's factory made and the stock
    asyncio loops made some other way (asyncio's virtual-time TestLoop
    aside), so that the report can tell a pass on a target loop from a pass
    that never touched one."""

    def __init__(self):
        self.target = 0
        self.stock = 0
        self._local = threading.local()

    def reset(self):
        self.target = 0
        self.stock = 0

    def wrap(self, new_loop):
        def factory():
            self.target += 1
            self._local.inside = True
            try:
                return new_loop()
            finally:
                self._local.inside = False

        return factory

    def wrap_class(self, loop_class):
        """A subclass of `loop_class` under the same name whose instances
        count as the factory's do (for asyncio.EventLoop() calls)."""
        counter = self

        def __init__(self, *args, **kwargs):
            counter.target += 1
            counter._local.inside = True
            try:
                super(cls, self).__init__(*args, **kwargs)
            finally:
                counter._local.inside = False

        cls = type(loop_class.__name__, (loop_class,), {
            "__init__": __init__, "__module__": loop_class.__module__,
            "__qualname__": loop_class.__qualname__})
        return cls

    def install_stock_hook(self):
        from asyncio import base_events
        from test.test_asyncio import utils as test_utils

        original = base_events.BaseEventLoop.__init__
        counter = self

        def __init__(self, *args, **kwargs):
            if not getattr(counter._local, "inside", False) and not isinstance(self, test_utils.TestLoop):
                counter.stock += 1
            original(self, *args, **kwargs)

        base_events.BaseEventLoop.__init__ = __init__


def _set_policy(policy):
    from asyncio import events

    setter = getattr(events, "_set_event_loop_policy", None)
    if setter is not None:
        # 3.14+ deprecates the public setter; the private one is what
        # CPython's own tests use there.
        setter(policy)
    else:
        import asyncio

        asyncio.set_event_loop_policy(policy)


def install_loop_environment(target, counter):
    """Make every loop the tests create through asyncio a target loop: the
    event loop policy, the default policy a test gets back after
    set_event_loop_policy(None), and asyncio.EventLoop.  Returns the factory
    and the stock loop classes a test class may name as its loop_factory."""
    import asyncio
    from asyncio import unix_events

    factory = counter.wrap(target.new_loop)

    bases = (target.policy_class,)
    if hasattr(unix_events._UnixDefaultEventLoopPolicy, "set_child_watcher"):
        # Up to 3.13 the loop tests' setUp installs a child watcher through
        # the policy; the Unix default policy is where asyncio keeps it.
        # Without this, only the order of tests decides whether a test finds
        # the policy it expects.
        bases += (unix_events._UnixDefaultEventLoopPolicy,)

    class ConformancePolicy(*bases):
        _loop_factory = staticmethod(factory)

    _set_policy(ConformancePolicy())
    unix_events._UnixDefaultEventLoopPolicy._loop_factory = staticmethod(factory)
    stock = {asyncio.SelectorEventLoop, unix_events._UnixSelectorEventLoop}
    if hasattr(asyncio, "EventLoop"):
        stock.add(asyncio.EventLoop)
        loop_class = counter.wrap_class(target.loop_class)
        asyncio.EventLoop = loop_class
        unix_events.EventLoop = loop_class
    counter.install_stock_hook()
    return factory, stock


def classify_loop_test(module, cls, method_name, selection):
    """(group, None) for a loops-phase test, or (None, reason) if the tables
    leave it out."""
    if selection is not None:
        if cls.__name__ not in selection and f"{cls.__name__}.{method_name}" not in selection:
            return None, "drives loop internals; only the tests in tables.SELECTIONS run"
    reason = tables.EXCLUDED_TESTS.get((module, f"{cls.__name__}.{method_name}"))
    if reason:
        return None, reason
    definer = plug.defining_class(cls, method_name)
    reason = tables.EXCLUDED_MIXINS.get((module, definer.__name__))
    if reason:
        return None, reason
    pattern = tables.NETWORK_TESTS.get((module, definer.__name__))
    if pattern is not None and pattern.search(method_name):
        return "network", None
    return tables.loop_phase_group(module), None


def build(module, phase, target, counter):
    """[(test, group)], [(id, reason)] for one job."""
    loader = unittest.TestLoader()
    if phase == tables.LOOPS:
        factory, stock_classes = install_loop_environment(target, counter)
    mod = importlib.import_module(PACKAGE + module)
    tests, excluded = [], []
    if phase == tables.TYPES:
        for cls in plug.plug_types(mod, target):
            for name in loader.getTestCaseNames(cls):
                tests.append((cls(name), "future-task"))
        return tests, excluded

    generated, variants = plug.make_loop_variants(mod, factory)
    families = tables.TYPE_FAMILIES.get(module, set())
    selection = tables.SELECTIONS.get(module)
    classes = []
    for cls in plug.module_classes(mod):
        if cls in variants or plug.in_family(cls, mod, families):
            continue
        reason = tables.EXCLUDED_CLASSES.get((module, cls.__name__))
        if reason:
            excluded.extend((f"{module}.{cls.__name__}.{name}", reason)
                            for name in loader.getTestCaseNames(cls))
            continue
        if (module, cls.__name__) in tables.REBIND_STOCK_LOOP:
            cls = plug.rebind_stock_loop(cls, mod, counter.wrap_class(target.loop_class))
        if (module, cls.__name__) in tables.REBIND_SSL_PROTOCOL:
            cls = plug.rebind_ssl_protocol(cls, mod, target.ssl_protocol)
        classes.append(cls)
    for cls in classes + generated:
        # IsolatedAsyncioTestCase classes that name a stock loop class as
        # their loop_factory (3.13+) get the target's factory instead.
        if plug.static_attr(cls, "loop_factory") in stock_classes:
            cls.loop_factory = staticmethod(factory)
        for name in loader.getTestCaseNames(cls):
            group, reason = classify_loop_test(module, cls, name, selection)
            if group is None:
                excluded.append((f"{module}.{cls.__name__}.{name}", reason))
                continue
            tests.append((cls(name), group))
    return tests, excluded


class StreamingResult(unittest.TestResult):
    """Records each test's outcome as soon as it is known."""

    def __init__(self, recorder, counter, groups, dump_after, dump_file):
        super().__init__()
        self._rec = recorder
        self._counter = counter
        self._groups = groups
        self._dump_after = dump_after
        self._dump_file = dump_file
        self._current = None
        self._test = None

    def startTest(self, test):
        super().startTest(test)
        self._counter.reset()
        self._test = test
        self._current = {"id": short_id(test.id()), "outcome": "passed", "detail": "",
                         "t0": time.monotonic()}
        self._rec.write(event="start", id=self._current["id"])
        # A marker in the log, so that the parent can cut out what this test
        # printed (and the stacks faulthandler dumps if it hangs or dies).
        with contextlib.suppress(Exception):
            self._dump_file.write(f"{LOG_MARKER}{self._current['id']}\n")
            self._dump_file.flush()
        if self._dump_after > 0:
            # If the test hangs, the stacks of all threads land in the job's
            # log before the parent kills this process.
            faulthandler.dump_traceback_later(self._dump_after, file=self._dump_file)

    def stopTest(self, test):
        faulthandler.cancel_dump_traceback_later()
        cur = self._current
        if cur is not None:
            self._rec.write(event="end", id=cur["id"], outcome=cur["outcome"], detail=cur["detail"],
                            time=round(time.monotonic() - cur["t0"], 3),
                            target_loops=self._counter.target, stock_loops=self._counter.stock)
        self._current = None
        self._test = None
        super().stopTest(test)

    def _trim(self, err, test):
        text = self._exc_info_to_string(err, test) if isinstance(err, tuple) else str(err)
        lines = text.rstrip().splitlines()
        return "\n".join(lines[-DETAIL_LINES:])

    def _set(self, test, outcome, detail):
        if self._current is not None and test is self._test:
            # The first failure of a test is the one to report; a later one
            # (a cleanup after a failed assertion) is usually a consequence.
            if self._current["outcome"] in ("passed",):
                self._current["outcome"] = outcome
                self._current["detail"] = detail
            return
        # A class or module fixture failed outside any test.
        self._rec.write(event="end", id=fixture_id(getattr(test, "description", None) or test.id()),
                        outcome=outcome, detail=detail, time=0, target_loops=0, stock_loops=0)

    def addError(self, test, err):
        super().addError(test, err)
        if issubclass(err[0], unittest.SkipTest):
            self._set(test, "skipped", str(err[1]))
        else:
            self._set(test, "error", self._trim(err, test))

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._set(test, "failed", self._trim(err, test))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._set(test, "skipped", reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._set(test, "cpython_xfail", self._trim(err, test))

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._set(test, "unexpected_success", "CPython marks this test expectedFailure, but it passed")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            outcome = "failed" if issubclass(err[0], test.failureException) else "error"
            self._set(test, outcome, f"{subtest.id()}\n" + self._trim(err, test))


def main(argv):
    parser = argparse.ArgumentParser(prog="python -m tests.conformance --child")
    parser.add_argument("module")
    parser.add_argument("phase", choices=(tables.TYPES, tables.LOOPS))
    parser.add_argument("--target", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--skip", help="file with the ids of tests already done, one a line")
    parser.add_argument("--groups", default=",".join(tables.GROUPS))
    parser.add_argument("--test-timeout", type=float, default=0)
    args = parser.parse_args(argv)

    rec = Recorder(args.out)
    dump_file = sys.stderr
    faulthandler.enable(file=dump_file, all_threads=True)
    groups = set(args.groups.split(","))
    try:
        target = targets.load(args.target)
        counter = LoopCounter()
        with warnings.catch_warnings():
            # Importing the suite and swapping policies warns on 3.14+.
            warnings.simplefilter("ignore", DeprecationWarning)
            tests, excluded = build(args.module, args.phase, target, counter)
    except unittest.SkipTest as exc:
        rec.write(event="plan", tests=[], excluded=[], skipped_module=str(exc))
        rec.write(event="finished")
        _exit(0)
    except BaseException:
        rec.write(event="fatal", detail=traceback.format_exc())
        _exit(3)

    tests = [(t, g) for t, g in tests if g in groups]
    rec.write(event="plan", tests=[[short_id(t.id()), g] for t, g in tests], excluded=excluded)
    skip = set()
    if args.skip and os.path.exists(args.skip):
        with open(args.skip, encoding="utf-8") as f:
            skip = {line.strip() for line in f if line.strip()}
    suite = unittest.TestSuite(t for t, _ in tests if short_id(t.id()) not in skip)
    dump_after = max(args.test_timeout - 1.0, 0.5) if args.test_timeout else 0
    result = StreamingResult(rec, counter, groups, dump_after, dump_file)
    try:
        suite.run(result)
    except BaseException:
        # Something escaped unittest (a KeyboardInterrupt a test meant for
        # the loop, say): charge it to the running test and let the parent
        # start a fresh process for the rest.
        if result._current is not None:
            result._set(result._test, "error", "escaped the test runner:\n" + traceback.format_exc())
            result.stopTest(result._test)
        _exit(4)
    rec.write(event="finished")
    _exit(0)


def list_main(argv):
    """Import every module of the running Python's test.test_asyncio and
    write, as JSON, how the harness would treat it."""
    import pkgutil

    parser = argparse.ArgumentParser(prog="python -m tests.conformance --child-list")
    parser.add_argument("--target", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    report = {"python": sys.version.split()[0], "target_error": None, "target_version": "", "modules": {}}
    try:
        target = targets.load(args.target)
        report["target_version"] = target.version
    except BaseException:
        report["target_error"] = traceback.format_exc()
    import test.test_asyncio as package

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("test_"):
                continue
            entry = {"status": tables.module_status(info.name), "pluggable": 0,
                     "skipped": None, "import_error": None}
            try:
                mod = importlib.import_module(PACKAGE + info.name)
                entry["pluggable"] = plug.count_pluggable(mod)
            except unittest.SkipTest as exc:
                entry["skipped"] = str(exc)
            except BaseException:
                entry["import_error"] = traceback.format_exc()
            report["modules"][info.name] = entry
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(report, f)
    _exit(0)


def _exit(code):
    # Threads a test left behind must not keep this process alive, and
    # interpreter shutdown with a half-broken loop can hang: leave at once.
    with contextlib.suppress(BaseException):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)
