"""Helpers shared by the test modules: the two implementations under test and
small utilities for loops and child processes.  Fixtures live in conftest.py.
"""

import asyncio
import gc
import os
import socket
import struct
import sys
import textwrap
import warnings

import pytest

try:
    import turboloop
except Exception as exc:  # an incomplete build can fail in ways other than ImportError
    turboloop = None
    TURBOLOOP_IMPORT_ERROR = f"import turboloop failed: {type(exc).__name__}: {exc}"
else:
    TURBOLOOP_IMPORT_ERROR = None

REQUIRE_TURBOLOOP = os.environ.get("TURBOLOOP_REQUIRE", "") not in ("", "0")

KINDS = ["asyncio", "turboloop"]

# turboloop on its portable poll(2) backend rather than epoll.  Modules whose
# behaviour depends on the multiplexer (I/O, timers, wake-ups, signals) set
# ALSO_POLL_BACKEND = True to run on it as a third kind.
POLL_KIND = "turboloop-poll"

PY = sys.version_info


def require_turboloop():
    """Return the turboloop module, or skip (fail under TURBOLOOP_REQUIRE=1)."""
    if TURBOLOOP_IMPORT_ERROR is not None:
        if REQUIRE_TURBOLOOP:
            pytest.fail(TURBOLOOP_IMPORT_ERROR, pytrace=False)
        pytest.skip(TURBOLOOP_IMPORT_ERROR)
    return turboloop


def open_fds():
    """The open file descriptors of this process, mapped to what they point to."""
    fd_dir = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
    fds = {}
    for name in os.listdir(fd_dir):
        try:
            fds[int(name)] = os.readlink(os.path.join(fd_dir, name))
        except OSError:
            # The descriptor listdir itself used is gone by now.
            pass
    return fds


class ExceptionRecorder:
    """An exception handler that keeps every context it is given."""

    def __init__(self):
        self.contexts = []

    def __call__(self, loop, context):
        self.contexts.append(context)


class LoopKind:
    """One implementation under test: its loop, Future, Task and runners.

    Names are looked up lazily so that a package which imports but lacks a
    name fails only the tests that need that name.
    """

    def __init__(self, name):
        self.name = name
        self.is_turboloop = name.startswith("turboloop")
        # The TURBOLOOP_POLLER value this kind runs under; the kind fixture
        # sets it for the whole test, so children inherit it too.
        self.poller = "poll" if name == POLL_KIND else None
        self.module = turboloop if self.is_turboloop else asyncio
        self._loops = []
        self._recorders = {}

    def __repr__(self):
        return f"<LoopKind {self.name}>"

    # -- the public names of the implementation ---------------------------

    @property
    def Loop(self):
        return turboloop.Loop if self.is_turboloop else asyncio.SelectorEventLoop

    @property
    def Future(self):
        return self.module.Future

    @property
    def Task(self):
        return self.module.Task

    @property
    def Handle(self):
        return self.module.Handle

    @property
    def TimerHandle(self):
        return self.module.TimerHandle

    @property
    def EventLoopPolicy(self):
        # Both names are deprecated from 3.14, as the policy system is.
        with quiet_deprecations():
            return turboloop.EventLoopPolicy if self.is_turboloop else asyncio.DefaultEventLoopPolicy

    def new_event_loop(self):
        """The bare factory, suitable as loop_factory=; the caller closes the loop."""
        return self.module.new_event_loop()

    def run(self, coro, **kwargs):
        """turboloop.run() or asyncio.run()."""
        return self.module.run(coro, **kwargs)

    # Source snippets for scripts run in a child process.
    @property
    def import_line(self):
        return "import asyncio, turboloop" if self.is_turboloop else "import asyncio"

    @property
    def run_func(self):
        return "turboloop.run" if self.is_turboloop else "asyncio.run"

    @property
    def factory_expr(self):
        return "turboloop.new_event_loop" if self.is_turboloop else "asyncio.new_event_loop"

    # -- tracked loops -----------------------------------------------------

    def new_loop(self, *, record_errors=True):
        """A new loop that the fixture checks at teardown; the test closes it.

        With record_errors the loop gets an exception handler that records
        contexts instead of logging them; see errors().
        """
        loop = self.new_event_loop()
        self._loops.append(loop)
        if record_errors:
            recorder = ExceptionRecorder()
            loop.set_exception_handler(recorder)
            self._recorders[id(loop)] = recorder
        return loop

    def errors(self, loop):
        """The contexts passed to loop's recording handler; clear what you expect."""
        return self._recorders[id(loop)].contexts

    def teardown_problems(self):
        problems = []
        for loop in self._loops:
            if not loop.is_closed():
                problems.append(f"loop left unclosed: {loop!r}")
                try:
                    loop.close()
                except Exception as exc:
                    problems.append(f"closing it raised {exc!r}")
            recorder = self._recorders.get(id(loop))
            if recorder is not None and recorder.contexts:
                lines = "\n".join(
                    f"  {ctx.get('message')!r} exception={ctx.get('exception')!r}"
                    for ctx in recorder.contexts
                )
                problems.append(f"unexpected call_exception_handler calls on {loop!r}:\n{lines}")
        return problems


def make_kind(name):
    if name.startswith("turboloop"):
        require_turboloop()
    return LoopKind(name)


def finish_kinds(kinds, fds_before, report=True):
    """Close what the kinds left open and, with report, fail the current test
    if any kind left a problem or a descriptor leaked."""
    # Collecting garbage first makes destructor-time reports ("Task was
    # destroyed but it is pending!", "exception was never retrieved") land on
    # this test, and releases objects whose finalizers close descriptors.
    gc.collect()
    problems = []
    for k in kinds:
        problems += k.teardown_problems()
    gc.collect()
    leaked = {fd: target for fd, target in open_fds().items() if fd not in fds_before}
    if leaked:
        problems.append(f"file descriptors leaked: {leaked}")
    if problems and report:
        pytest.fail("\n".join(problems), pytrace=False)


class quiet_deprecations:
    """Silence the policy API's DeprecationWarning (3.14+) in housekeeping code."""

    def __enter__(self):
        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("ignore", DeprecationWarning)

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


def close_loop(loop):
    """Close a loop the way asyncio.run() does: async generators and the
    default executor are finished first, so no thread outlives the test."""
    try:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


# -- child processes -----------------------------------------------------------


def subprocess_env(**extra):
    """The environment for a child Python that must import this turboloop."""
    env = dict(os.environ)
    for name in ("PYTHONASYNCIODEBUG", "PYTHONDEVMODE", "PYTHONWARNINGS"):
        env.pop(name, None)
    paths = []
    if turboloop is not None:
        # The directory holding the turboloop package, however it was found.
        paths.append(os.path.dirname(os.path.dirname(os.path.abspath(turboloop.__file__))))
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra)
    return env


def script(text):
    """Dedent a script's source."""
    return textwrap.dedent(text).lstrip("\n")


# Generous, only so that a broken child cannot hang the suite.
CHILD_TIMEOUT = 60


# -- sockets ----------------------------------------------------------------------


def tcp_pair():
    """A connected pair of blocking TCP sockets on the loopback interface."""
    with socket.create_server(("127.0.0.1", 0)) as srv:
        a = socket.create_connection(srv.getsockname())
        b, _ = srv.accept()
    return a, b


def rst(sock):
    """Close with a reset instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
