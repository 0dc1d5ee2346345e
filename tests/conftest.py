"""Fixtures: every behavioural test runs once on stock asyncio and once on
turboloop, so a behaviour difference shows up as a failing twin.

Run with the package importable, for example from the repository root:

    python setup.py build_ext --inplace -q
    PYTHONPATH=python python -m pytest tests

If ``import turboloop`` fails, the turboloop twins are skipped with the import
error as the reason.  Set TURBOLOOP_REQUIRE=1 to turn that skip into a
failure, so that a broken build cannot pass unnoticed.

``kind``        a support.LoopKind for "asyncio" or "turboloop" (parametrized;
                modules that set ALSO_POLL_BACKEND add "turboloop-poll").
                Loops made with ``kind.new_loop()`` get a recording exception
                handler and must be closed by the test.  At teardown the test
                fails if a loop was left open, if an exception handler call was
                not consumed, or if the process holds more file descriptors than
                before the test.
``loop``        ``kind.new_loop()``; the test closes it.
``errors``      the contexts the ``loop`` fixture's handler received; a test
                that expects a call checks it and clears the list.
``asyncio_log`` records of the "asyncio" logger.  An ERROR record the test did
                not take fails it, which covers loops that run with the default
                exception handler, such as those run() creates.
``tl``          the turboloop module, for tests that only concern turboloop
                (the command line, install()).
``pair``        (loop kind, type kind) for tests that run one implementation's
                Future and Task on the other's loop.

The checks here apply to this directory's own tests only; tests/conformance/
runs CPython's suite under its own rules.
"""

import asyncio
import contextlib
import faulthandler
import gc
import logging
import os
import pathlib
import shutil
import signal
import tempfile

import pytest

from support import KINDS, POLL_KIND, finish_kinds, make_kind, open_fds, quiet_deprecations, require_turboloop

# A hung loop would otherwise hang CI forever.  faulthandler's watchdog thread
# works even when the main thread is stuck inside C: it dumps every thread's
# stack (which names the test) and exits.
TEST_TIMEOUT = float(os.environ.get("TURBOLOOP_TEST_TIMEOUT", "120"))

_CONFORMANCE = pathlib.Path(__file__).parent / "conformance"

# A shell without job control starts a background command with SIGINT
# ignored, and child processes inherit that: Python then leaves Ctrl-C
# ignored in them, and the tests that press Ctrl-C in a child would fail
# for the way the suite was started.  Children get the default instead.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _is_ours(path):
    return _CONFORMANCE not in pathlib.Path(path).parents


def pytest_collection_modifyitems(config, items):
    for item in items:
        if not _is_ours(item.path):
            continue
        # An exception raised in __del__ or a dealloc is otherwise only
        # printed; make it fail the test it belongs to.
        item.add_marker(pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"))
        # A coroutine dropped on the floor is a bug in the test or the loop.
        item.add_marker(pytest.mark.filterwarnings("error:coroutine .* was never awaited:RuntimeWarning"))


def pytest_generate_tests(metafunc):
    if "kind" in metafunc.fixturenames:
        kinds = list(KINDS)
        if getattr(metafunc.module, "ALSO_POLL_BACKEND", False):
            kinds.append(POLL_KIND)
        metafunc.parametrize("kind", kinds, indirect=True)


_CALL_PASSED = pytest.StashKey[bool]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[_CALL_PASSED] = report.passed


def _finish(request, kinds, fds_before):
    """Run the teardown checks; after a failed or skipped test only clean up,
    since an unclosed loop is then a consequence, not news."""
    check = request.node.stash.get(_CALL_PASSED, False)
    finish_kinds(kinds, fds_before, report=check)


@pytest.fixture
def kind(request, monkeypatch):
    fds_before = open_fds()
    k = make_kind(request.param)
    if k.poller is not None:
        monkeypatch.setenv("TURBOLOOP_POLLER", k.poller)
    yield k
    _finish(request, [k], fds_before)


@pytest.fixture
def loop(kind):
    return kind.new_loop()


@pytest.fixture
def errors(kind, loop):
    return kind.errors(loop)


@pytest.fixture
def tl():
    return require_turboloop()


@pytest.fixture(params=[(lk, tk) for lk in KINDS for tk in KINDS], ids=lambda p: f"{p[0]}-loop-{p[1]}-types")
def pair(request):
    loop_name, types_name = request.param
    fds_before = open_fds()
    loop_kind = make_kind(loop_name)
    types_kind = make_kind(types_name)
    yield loop_kind, types_kind
    _finish(request, [loop_kind, types_kind], fds_before)


class AsyncioLog(logging.Handler):
    """Collects the records of the "asyncio" logger during one test."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)

    def take(self, min_level=logging.DEBUG):
        """Remove and return the records at or above min_level."""
        taken = [r for r in self.records if r.levelno >= min_level]
        self.records = [r for r in self.records if r.levelno < min_level]
        return taken


@pytest.fixture(autouse=True)
def asyncio_log(request):
    if not _is_ours(request.node.path):
        yield None
        return
    logger = logging.getLogger("asyncio")
    handler = AsyncioLog()
    logger.addHandler(handler)
    faulthandler.dump_traceback_later(TEST_TIMEOUT, exit=True)
    try:
        yield handler
    finally:
        faulthandler.cancel_dump_traceback_later()
        # The fixtures a test requests are torn down before this autouse one,
        # so their loops are closed and their garbage collected by now.
        gc.collect()
        logger.removeHandler(handler)
    errors_logged = [r for r in handler.records if r.levelno >= logging.ERROR]
    if errors_logged and request.node.stash.get(_CALL_PASSED, False):
        text = "\n".join(handler.format(r) for r in errors_logged)
        pytest.fail(f"unexpected errors logged by asyncio:\n{text}", pytrace=False)


@pytest.fixture
def fresh_policy():
    """Put back the default event loop policy after the test."""
    yield
    with quiet_deprecations():
        asyncio.set_event_loop_policy(None)


def pytest_collection_finish(session):
    # The teardown checks collect garbage after every test.  Freezing what
    # exists once collection is done (pytest's own objects, the collected
    # tests) keeps those collections down to what the tests themselves made.
    gc.collect()
    gc.freeze()


# -- network tests ----------------------------------------------------------------


@pytest.fixture
def closing():
    """closing(obj) registers a socket or file to be closed after the test."""
    with contextlib.ExitStack() as stack:
        yield stack.enter_context


@pytest.fixture
def sock_dir():
    # AF_UNIX paths are limited to about 107 bytes: keep them short.
    d = tempfile.mkdtemp(prefix="tlnet", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def sock_path(sock_dir):
    return os.path.join(sock_dir, "s")
