"""Random programs of loop API calls: call_soon, call_later, call_at,
call_soon_threadsafe, handle cancellation, add_reader/add_writer and their
removal on sockets open, closed and reused, stop/close/run_forever from
inside callbacks, and callbacks that raise.

A program is a list of operations run before the loop starts (the setup),
then the loop runs a fixed number of iterations (a call_soon chain, the
"ticks"), optionally followed by an idle phase in which nothing is ready
and the loop computes its poll timeout from the timer heap (and so does
the deadline arithmetic, including its errors), ended by a timer 5 ms on.

What makes a program's outcome deterministic, so that asyncio's trace and
turboloop's can be compared entry by entry:
  * a timer is either due at once or at least a second away, never in
    between: which iteration runs it does not depend on the speed of the
    machine;
  * equal deadlines are never scheduled twice (asyncio's heap runs them in
    an undefined order); see values.py;
  * a NaN deadline breaks asyncio's heap (every comparison with NaN is
    false, so heapq stops keeping the heap ordered, and timers then run in
    an order that depends on the heap's history, some never).  turboloop
    runs a NaN deadline as asyncio would if it were -inf, which is also
    what asyncio does while the NaN timer is alone at the head of its
    heap.  So the asyncio run of a program gets -inf where turboloop's gets
    NaN, a program has at most one of them (or of -inf), and no idle phase
    (where asyncio 3.13+ raises ValueError from a NaN at the head);
  * fd numbers are never literals that this process could have open, except
    0, 1 and 2; sockets are referred to through a pool.
"""

import asyncio
import heapq
import inspect
import math
import socket

from hypothesis import strategies as st

from . import values
from .common import Boom, FrozenLoop, Recorder, describe_exception, outcome, time_limit

MAX_DEPTH = 2
TICKS = st.integers(min_value=1, max_value=8)


def _nested_run_forever_is_harmless():
    """Whether run_forever() called from a callback of the running loop
    only raises.  In 3.13.0 its clean-up ran even when the set-up refused
    to start, clearing the running loop's stop request, its thread and the
    running-loop registration (fixed in 3.13.1); turboloop only raises.
    The fuzzer does not re-enter run_forever() where asyncio has that."""
    try:
        source = inspect.getsource(asyncio.BaseEventLoop.run_forever)
    except (OSError, TypeError):
        return False
    if "_run_forever_setup()" not in source:
        return True
    return source.index("_run_forever_setup()") < source.index("try:")


NESTED_RUN_FOREVER = _nested_run_forever_is_harmless()


# -- strategies ------------------------------------------------------------------------


def _fd_values():
    return st.one_of(
        st.tuples(st.sampled_from(["sock", "fd", "wrap"]), st.integers(0, 5)),
        st.tuples(st.just("lit"), st.sampled_from(values.LITERAL_FDS)),
        st.tuples(st.just("obj"), st.sampled_from(sorted(values.ODD_FILE_OBJECTS))),
    )


@st.composite
def _timer_value(draw, palette, used, allow_nan):
    choices = [v for v in palette
               if (v[3] is None or v[3] not in used) and (allow_nan or v[2] != "nan")]
    name, _, _, key = draw(st.sampled_from(choices))
    if key is not None:
        used.add(key)
    return name


@st.composite
def _actions(draw, depth, used, io):
    """The actions of a callback.  io: the callback of a reader or writer,
    which runs every iteration its fd is ready, so it schedules no timers
    (their deadlines would repeat)."""
    n = draw(st.integers(0, 3 if depth < MAX_DEPTH else 1))
    return tuple(draw(_op(depth, used, io)) for _ in range(n))


@st.composite
def _callback(draw, depth, used, io=False):
    if depth >= MAX_DEPTH:
        return ()
    return draw(_actions(depth + 1, used, io))


@st.composite
def _op(draw, depth, used, io=False):
    kinds = ["soon", "cancel", "stop", "add_reader", "add_writer",
             "remove_reader", "remove_writer", "close_sock", "send", "drain",
             "new_pair", "soon_threadsafe"]
    if not io:
        kinds += ["later", "at", "later", "at"]
    if depth > 0:
        kinds += ["raise", "raise", "close_loop", "run_until_complete", "is_running"]
        kinds += ["run_forever"] if NESTED_RUN_FOREVER else []
    else:
        kinds += ["close_loop"] if draw(st.integers(0, 9)) == 0 else []
    kind = draw(st.sampled_from(kinds))
    if kind in ("soon", "soon_threadsafe"):
        return (kind, draw(_callback(depth, used, io=io)))
    if kind in ("later", "at"):
        palette = values.DELAYS if kind == "later" else values.WHENS
        v = draw(_timer_value(palette, used, allow_nan=True))
        return (kind, v, draw(_callback(depth, used)))
    if kind == "cancel":
        return (kind, draw(st.integers(0, 20)))
    if kind in ("add_reader", "add_writer"):
        return (kind, draw(_fd_values()), draw(_callback(depth, used, io=True)))
    if kind in ("remove_reader", "remove_writer"):
        return (kind, draw(_fd_values()))
    if kind in ("close_sock", "send", "drain"):
        return (kind, draw(st.integers(0, 5)))
    return (kind,)


@st.composite
def programs(draw):
    used = set()
    setup = draw(st.lists(_op(0, used), min_size=1, max_size=12))
    ticks = draw(TICKS)
    program = {"setup": setup, "ticks": ticks, "idle": False}
    program["idle"] = draw(st.booleans()) and not uses_nan(program)
    return program


def uses_nan(program):
    def walk(x):
        if isinstance(x, (tuple, list)):
            if len(x) >= 2 and x[0] in ("later", "at") and x[1] == "nan":
                return True
            return any(walk(y) for y in x)
        return False
    return walk(program["setup"])


# -- running --------------------------------------------------------------------------


def _orderable(when):
    try:
        when < 0.0
    except TypeError:
        return False
    return True


class Callback:
    """A fuzzed callback: records that it ran, then does its actions."""

    def __init__(self, run, ident, actions):
        self.run = run
        self.ident = ident
        self.actions = actions

    def __call__(self, *args):
        run = self.run
        run.trace.append(("cb", self.ident))
        for i, action in enumerate(self.actions):
            if action[0] == "raise":
                raise Boom(f"from callback {self.ident}")
            run.do(action, (self.ident, i))

    def __repr__(self):
        return f"<cb {self.ident}>"


class Run:
    def __init__(self, program, factory, nan_as_minus_inf):
        self.program = program
        self.nan_as_minus_inf = nan_as_minus_inf
        self.trace = []
        self.loop = factory()
        self.loop.set_exception_handler(Recorder(self.trace))
        self.base = self.loop.time()
        self.handles = []
        self.pool = []          # [a, b, fd number of a when made]
        self.next_ident = 0
        self.done = False
        self.idle = False
        # Never due, never cancelled: asyncio's heap is never empty, so that
        # it refuses a deadline it cannot order at once, as turboloop does
        # (with an empty heap it accepts it and fails at the next iteration).
        self.anchor = self.loop.call_at(self.base + 10**6, print)
        for _ in range(2):
            self.new_pair()

    # -- values

    def new_pair(self):
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        self.pool.append([a, b, a.fileno()])

    def entry(self, i):
        return self.pool[i % len(self.pool)]

    def fd_value(self, spec):
        kind, arg = spec
        if kind == "sock":
            return self.entry(arg)[0]
        if kind == "fd":
            return self.entry(arg)[2]
        if kind == "wrap":
            return values.FileLike(self.entry(arg)[0])
        if kind == "lit":
            return arg
        return values.ODD_FILE_OBJECTS[arg]()

    def callback(self, actions):
        self.next_ident += 1
        return Callback(self, self.next_ident, actions)

    # -- operations

    def do(self, op, where):
        kind = op[0]
        loop = self.loop
        if kind in ("soon", "soon_threadsafe"):
            cb = self.callback(op[1])
            fn = loop.call_soon if kind == "soon" else loop.call_soon_threadsafe
            self.record(where, kind, outcome(fn, cb), handle=True)
        elif kind in ("later", "at"):
            entry = (values.DELAY_BY_NAME if kind == "later" else values.WHEN_BY_NAME)[op[1]]
            value = entry[1](self.base)
            if entry[2] == "nan" and self.nan_as_minus_inf:
                value = -math.inf
            cb = self.callback(op[2])
            fn = loop.call_later if kind == "later" else loop.call_at
            result = outcome(fn, value, cb)
            if result[0] == "raised":
                self.unpoison()
            self.record(where, kind, result, handle=True,
                        absolute=kind == "at" and "base" not in op[1])
        elif kind == "cancel":
            if self.handles:
                self.handles[op[1] % len(self.handles)].cancel()
        elif kind in ("add_reader", "add_writer"):
            if self.idle:
                # Nothing may become ready while idle (see tick()).
                self.trace.append((where, kind, "skipped: idle"))
                return
            cb = self.callback(op[2])
            self.record(where, kind, outcome(getattr(loop, kind), self.fd_value(op[1]), cb))
        elif kind in ("remove_reader", "remove_writer"):
            self.record(where, kind, outcome(getattr(loop, kind), self.fd_value(op[1])))
        elif kind == "close_sock":
            self.entry(op[1])[0].close()
        elif kind == "send":
            a, b, _ = self.entry(op[1])
            self.record(where, kind, outcome(b.send, b"x" * 7))
        elif kind == "drain":
            self.record(where, kind, outcome(self.drain, self.entry(op[1])[0]))
        elif kind == "new_pair":
            self.new_pair()
        elif kind == "stop":
            loop.stop()
        elif kind == "run_forever":
            self.record(where, kind, outcome(loop.run_forever))
        elif kind == "run_until_complete":
            fut = None
            try:
                fut = loop.create_future()
            except RuntimeError as exc:
                self.trace.append((where, kind, "create_future") + describe_exception(exc))
                return
            self.record(where, kind, outcome(loop.run_until_complete, fut))
            fut.cancel()
        elif kind == "close_loop":
            self.record(where, kind, outcome(loop.close))
        elif kind == "is_running":
            self.record(where, kind, outcome(loop.is_running))
        else:
            raise AssertionError(f"unknown operation {op!r}")

    def unpoison(self):
        """asyncio's call_at() pushes the handle on its heap before the
        comparison that fails, and leaves it there: every later heap
        operation that meets it raises.  turboloop refuses the deadline
        without keeping it; take asyncio's out again, so that the rest of
        the program is compared on equal terms."""
        scheduled = getattr(self.loop, "_scheduled", None)
        if isinstance(scheduled, list):
            scheduled[:] = [h for h in scheduled if _orderable(h._when)]
            heapq.heapify(scheduled)

    @staticmethod
    def drain(sock):
        got = 0
        while True:
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                return got
            if not data:
                return got
            got += len(data)

    def record(self, where, kind, result, handle=False, absolute=False):
        if result[0] == "ok" and handle:
            h = result[1]
            self.handles.append(h)
            when = h.when() if hasattr(h, "when") else None
            shown = type(when).__name__
            if absolute and when is not None and not isinstance(when, float):
                shown += " " + repr(when)
            # 3.14's call_soon_threadsafe() returns a private subclass of
            # Handle (with a lock around cancel(), which turboloop's GIL-held
            # Handle needs no more than the other methods do).
            name = "Handle" if type(h).__name__ == "_ThreadSafeHandle" else type(h).__name__
            self.trace.append((where, kind, "ok", name, shown))
        elif result[0] == "ok":
            value = result[1]
            if not isinstance(value, (bool, int, type(None))):
                value = type(value).__name__
            self.trace.append((where, kind, "ok", value))
        else:
            self.trace.append((where, kind) + result)

    # -- the run

    def tick(self, n):
        self.trace.append(("tick", n))
        if n < self.program["ticks"]:
            self.loop.call_soon(self.tick, n + 1)
        elif self.program["idle"]:
            # Nothing may be ready while idle, or the number of iterations
            # would depend on time: no fd is watched from now on.
            self.idle = True
            self.unwatch_all()
            self.loop.call_later(0.005, self.finish)
        else:
            self.finish()

    def finish(self):
        self.trace.append(("finish",))
        self.done = True
        self.loop.stop()

    def run(self):
        for i, op in enumerate(self.program["setup"]):
            self.do(op, ("setup", i))
        self.loop.call_soon(self.tick, 1) if not self.loop.is_closed() else None
        for attempt in range(4):
            if self.done or self.loop.is_closed():
                break
            try:
                with time_limit():
                    self.loop.run_forever()
                self.trace.append(("run", "returned"))
            except FrozenLoop:
                self.trace.append(("run", "frozen"))
                break
            except Exception as exc:  # noqa: BLE001
                self.trace.append(("run", "raised") + describe_exception(exc))
        self.cleanup()
        return self.trace

    def unwatch_all(self):
        loop = self.loop
        targets = [a for a, b, _ in self.pool] + [0, 1, 2]
        for target in targets:
            for method in (loop.remove_reader, loop.remove_writer):
                try:
                    method(target)
                except (OSError, ValueError):
                    pass

    def cleanup(self):
        loop = self.loop
        self.anchor.cancel()
        for h in self.handles:
            h.cancel()
        if not loop.is_closed():
            self.unwatch_all()
        self.trace.append(("close",) + outcome(loop.close))
        for a, b, _ in self.pool:
            a.close()
            b.close()
        self.handles.clear()
        self.pool.clear()


def run_program(program, factory, name):
    return Run(program, factory, nan_as_minus_inf=name == "asyncio").run()
