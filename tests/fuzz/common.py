"""What the fuzz families share: running one program on a fresh loop of each
implementation with time limits, recording what it observes, and comparing
the two records.

A record (a "trace") is a list of tuples of plain values: which operation
ran, what it returned or raised (exception type and message, with memory
addresses and the loop's class name taken out), which callbacks ran in
which order, what the exception handler was given, what warnings were
issued.  Two implementations agree on a program when their traces are
equal.
"""

import asyncio
import contextlib
import gc
import os
import re
import signal
import sys
import warnings

import turboloop

# Longest a single run_forever() of a program may take.  Programs are built
# so that every run ends in milliseconds; reaching this is a frozen loop.
RUN_LIMIT = 5.0

# Where the program being run is written before it runs, so that a crash or
# a hang that takes the process down leaves its reproducer behind.
LAST_PROGRAM = os.environ.get("TURBOLOOP_FUZZ_LAST", "")


class FrozenLoop(Exception):
    """A run of the loop did not end within RUN_LIMIT seconds."""


class Boom(Exception):
    """What fuzzed callbacks raise."""


IMPLEMENTATIONS = {
    "asyncio": asyncio.new_event_loop,
    "turboloop": turboloop.new_event_loop,
}

_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")
_LOOP_NAMES = re.compile(r"\b(_UnixSelectorEventLoop|SelectorEventLoop|Loop)\b")
_TRANSPORT_NAMES = re.compile(r"\b(_SelectorSocketTransport|SocketTransport)\b")


def normalize(text):
    text = _ADDRESS.sub("0x?", text)
    text = _LOOP_NAMES.sub("LOOP", text)
    return _TRANSPORT_NAMES.sub("TRANSPORT", text)


def describe_exception(exc):
    return (type(exc).__name__, normalize(str(exc)))


def outcome(fn, *args, **kwargs):
    """Call fn; return ("ok", value) or ("raised", type, message)."""
    try:
        value = fn(*args, **kwargs)
    except (FrozenLoop, KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - every exception is an observation
        return ("raised",) + describe_exception(exc)
    return ("ok", value)


def _on_alarm(signum, frame):
    raise FrozenLoop(f"the loop ran for more than {RUN_LIMIT} s")


@contextlib.contextmanager
def time_limit(seconds=RUN_LIMIT):
    """Raise FrozenLoop in the main thread if the block takes too long.  A
    loop sleeping in its poll is woken by the signal and raises from there;
    one spinning in C without checking for signals is caught by the
    faulthandler watchdog of the caller instead."""
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class Recorder:
    """The exception handler of a fuzzed loop: keeps what it is given."""

    def __init__(self, trace):
        self.trace = trace

    def __call__(self, loop, context):
        exc = context.get("exception")
        message = str(context.get("message"))
        if message.startswith("Exception in callback "):
            # The arguments' reprs name the implementations' classes,
            # truncated by reprlib.
            message = message.partition("(")[0]
        self.trace.append((
            "handler",
            normalize(message),
            type(exc).__name__ if exc is not None else None,
            normalize(str(exc)) if exc is not None else None,
        ))


def remember(program):
    """Write the program about to run where a post-mortem can find it."""
    if LAST_PROGRAM:
        with open(LAST_PROGRAM, "w") as f:
            f.write(repr(program) + "\n")


def run_both(program, run_one):
    """Run program on both implementations; return {name: trace}."""
    remember(program)
    traces = {}
    for name, factory in IMPLEMENTATIONS.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trace = run_one(program, factory, name)
            gc.collect()
        for w in caught:
            if issubclass(w.category, ResourceWarning):
                # Finalizers of objects a failed operation left behind run
                # whenever the collector gets to them.
                continue
            trace.append(("warning", w.category.__name__, normalize(str(w.message))))
        traces[name] = trace
    return traces


def diff(a, b, names=("asyncio", "turboloop")):
    """A readable account of where two traces part."""
    lines = []
    n = max(len(a), len(b))
    first = next((i for i in range(n) if i >= len(a) or i >= len(b) or a[i] != b[i]), None)
    if first is None:
        return ""
    lo = max(0, first - 5)
    lines.append(f"traces differ from entry {first}:")
    for i in range(lo, min(n, first + 8)):
        x = a[i] if i < len(a) else "<end>"
        y = b[i] if i < len(b) else "<end>"
        mark = "  " if x == y else "!!"
        lines.append(f"{mark} {i:3}  {names[0]}: {x!r}")
        if x != y:
            lines.append(f"{mark} {i:3}  {names[1]}: {y!r}")
    return "\n".join(lines)


def check_same(program, traces):
    a, b = traces["asyncio"], traces["turboloop"]
    frozen = [name for name, t in traces.items() if any(e[:2] == ("run", "frozen") for e in t)]
    if frozen:
        raise AssertionError(f"frozen loop ({', '.join(frozen)}) for program {program!r}\n{diff(a, b)}")
    if a != b:
        raise AssertionError(f"asyncio and turboloop disagree on {program!r}\n{diff(a, b)}")


def python_version():
    return "%d.%d.%d" % sys.version_info[:3]
