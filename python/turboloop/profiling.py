"""turboloop's profiler: which task uses the CPU, and why the loop lags.

The accounting is done by the loop itself, in C (``turboloop._core.Profiler``),
while profiling is switched on for that loop::

    loop.set_profiling(True)            # start a new profile of this loop
    ...
    print(loop.get_profile().report())  # a Profile: plain objects and a report
    loop.set_profiling(False)

    with turboloop.profile() as p:      # the running loop, for a block
        await work()
    print(p.report())
    p.write_trace("trace.json")         # with trace_events=N

A loop that is not being profiled pays one predictable branch per callback.
``python -m turboloop --profile script.py`` profiles every loop a program
creates and prints the report at exit; see docs/profiling.md.
"""

import asyncio
import json
import os
import sys
import types
from dataclasses import dataclass, field

from asyncio import tasks as _tasks

from . import _core

__all__ = ("Profile", "TaskStats", "SiteStats", "Lag", "SlowStep", "profile",
           "ProfilingMixin")

# Files whose frames are not blamed for creating a task: asyncio's own
# (gather, ensure_future, TaskGroup...) and ours.  The creator shown is the
# innermost frame outside them.
_SKIP_PREFIXES = tuple(sorted({
    os.path.dirname(asyncio.__file__) + os.sep,
    os.path.dirname(os.path.abspath(__file__)) + os.sep,
}))
# Task classes other than ours whose steps reach the loop as callbacks.
_TASK_TYPES = tuple({t for t in (asyncio.Task, getattr(_tasks, "_PyTask", None))
                     if isinstance(t, type)})
DEFAULT_TRACE_EVENTS = 100_000
_NS = 1e-9


def _coro_stack(coro, limit=32):
    """The frames of a suspended coroutine and of what it awaits, outermost
    first, as (filename, lineno, name) tuples."""
    frames = []
    while coro is not None and len(frames) < limit:
        frame = (getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
                 or getattr(coro, "ag_frame", None))
        if frame is None:
            break
        code = frame.f_code
        frames.append((code.co_filename, frame.f_lineno,
                       getattr(code, "co_qualname", code.co_name)))
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return tuple(frames)


def _capture(task):
    # Called by the C profiler after one of the slowest steps: where the task
    # is suspended now, i.e. where that step ended.  Empty when it finished.
    if task.done():
        return ()
    return _coro_stack(task.get_coro())


def _new_profiler(cpu=False, trace_events=0, max_tasks=1000):
    return _core.Profiler(cpu=cpu, trace_events=trace_events, max_tasks=max_tasks,
                          capture=_capture, skip_prefixes=_SKIP_PREFIXES,
                          task_types=_TASK_TYPES)


# ---------------------------------------------------------------------------
# Rows


def _short_path(filename):
    """A file name as a person wants to read it: relative to the current
    directory when under it, else the last two components."""
    if not filename or filename.startswith("<"):
        return filename or "?"
    try:
        rel = os.path.relpath(filename)
    except ValueError:
        rel = filename
    if not rel.startswith(".."):
        return rel
    parts = filename.split(os.sep)
    return os.sep.join(parts[-2:])


def _where(filename, line):
    return f"{_short_path(filename)}:{line}" if filename else None


@dataclass
class TaskStats:
    """One task, seconds for times.  ``busy`` is the time in its steps and
    ``share`` its fraction of all the time the loop spent running callbacks
    and steps while profiled; ``waiting`` is the time it was suspended
    (``queued``: of that, the time it was ready to run but waited for the
    loop)."""
    id: int
    name: str
    coroutine: str
    created_at: str | None
    state: str                   # "pending", "done" or "gone"
    steps: int
    busy: float
    max_step: float
    cpu: float | None
    waiting: float
    queued: float
    share: float = 0.0


@dataclass
class SiteStats:
    """One piece of code the loop calls: a callback's function, a protocol
    method, an fd watcher, or a coroutine (all the steps of its tasks).
    ``busy`` excludes time in nested sites (a protocol method's time is not
    its transport's)."""
    kind: str                    # call_soon, timer, callback, io, protocol, task
    name: str
    location: str | None
    calls: int
    busy: float
    max: float
    cpu: float | None
    share: float = 0.0


@dataclass
class Lag:
    """How late things started: ``count`` samples, percentiles from a
    histogram with buckets 1/8 of an octave wide, and the exact maximum."""
    count: int
    mean: float
    p50: float
    p90: float
    p99: float
    max: float
    histogram: list = field(default_factory=list)   # (low, high, count), seconds

    @classmethod
    def from_raw(cls, raw):
        n = raw["count"]
        buckets = [(lo * _NS, hi * _NS, c) for lo, hi, c in raw["buckets"]]
        mx = raw["max"] * _NS

        def pct(q):
            if not n:
                return 0.0
            want = q * n
            seen = 0
            for lo, hi, c in buckets:
                seen += c
                if seen >= want:
                    return min((lo + hi) / 2, mx)
            return mx

        return cls(n, raw["sum"] * _NS / n if n else 0.0, pct(0.5), pct(0.9),
                   pct(0.99), mx, buckets)


@dataclass
class SlowStep:
    """One of the slowest callbacks or task steps (self time, seconds).
    For a task step, ``stack`` is where the task was suspended when the step
    ended (outermost frame first), empty if it finished; for a callback,
    ``location`` is where its function is defined."""
    duration: float
    cpu: float | None
    kind: str
    name: str
    task: str | None
    location: str | None
    stack: list
    at: float                    # seconds since profiling started


def _site_label(kind, what):
    """(name, location) of a site's label object."""
    if isinstance(what, types.CodeType):
        return (getattr(what, "co_qualname", what.co_name),
                _where(what.co_filename, what.co_firstlineno))
    if isinstance(what, tuple) and len(what) == 2:       # (protocol type, method)
        tp, meth = what
        loc = None
        fn = getattr(tp, meth, None)
        code = getattr(fn, "__code__", None)
        if code is not None:
            loc = _where(code.co_filename, code.co_firstlineno)
        return f"{tp.__qualname__}.{meth}", loc
    if isinstance(what, type):
        name = what.__qualname__
        if kind == "io":
            name += " (I/O)"
        return name, None
    return str(what), None


class Profile:
    """What a profiler recorded, as plain objects (times in seconds).

    ``tasks`` and ``callbacks`` are sorted by time, largest first;
    ``coroutines`` sums the tasks of each coroutine function (it also
    covers tasks whose records were dropped, see ``tasks_dropped``)."""

    def __init__(self, raw):
        self.raw = raw
        self.wall = raw["run"] * _NS            # time inside the loop's run
        self.busy = raw["busy"] * _NS           # running callbacks and steps
        self.poll = raw["poll"] * _NS           # in poll (mostly idle)
        self.idle = raw["poll_idle"] * _NS      # in polls that could block
        self.cpu_measured = raw["cpu_measured"]
        self.busy_cpu = raw["busy_cpu"] * _NS if self.cpu_measured else None
        # Reading the CPU clock (cpu=True): system calls, where a busy
        # machine likes to switch processes; the profiler's own time.
        self.cpu_clock = raw["cpu_clock"] * _NS
        self.iterations = raw["polls"]
        self.spans = raw["spans"]
        self.tasks_dropped = raw["tasks_dropped"]
        self.since = raw["now"] * _NS
        total = self.busy or 1.0

        sites = []
        for s in raw["sites"]:
            name, loc = _site_label(s["kind"], s["what"])
            sites.append(SiteStats(s["kind"], name, loc, s["calls"], s["busy"] * _NS,
                                   s["max"] * _NS, self._cpu(s["cpu"]),
                                   s["busy"] * _NS / total))
        self._sites = sites
        self.callbacks = sorted((s for s in sites if s.kind != "task" and s.calls),
                                key=lambda s: -s.busy)
        self.coroutines = sorted((s for s in sites if s.kind == "task" and s.calls),
                                 key=lambda s: -s.busy)

        self.tasks = []
        self._task_names = {}
        for t in raw["tasks"]:
            row = self._task_row(t, total)
            self._task_names[row.id] = row
            self.tasks.append(row)
        self.tasks.sort(key=lambda t: -t.busy)

        self.timer_lateness = Lag.from_raw(raw["timer_lateness"])
        self.ready_lag = Lag.from_raw(raw["ready_lag"])
        slowest = [self._slow_row(s) for s in raw["slowest"]]
        # Each callback's longest call is one of the slowest too, even when
        # the list above is full of longer task steps.
        seen = {(s.kind, s.name, s.duration) for s in slowest}
        for raw_site, site in zip(raw["sites"], sites):
            if site.kind != "task" and site.calls and (site.kind, site.name, site.max) not in seen:
                slowest.append(SlowStep(duration=site.max, cpu=None, kind=site.kind,
                                        name=site.name, task=None, location=site.location,
                                        stack=[], at=raw_site["max_at"] * _NS))
        self.slowest = sorted(slowest, key=lambda s: -s.duration)
        self.trace_events = raw["trace"]
        self.trace_total = raw["events_total"]
        # Drop the objects the raw rows hold (tasks), keep the rest.
        for t in raw["tasks"]:
            t["task"] = None
        raw["current"] = None

    def _cpu(self, ns):
        return ns * _NS if self.cpu_measured else None

    def _site(self, index):
        return self._sites[index] if 0 <= index < len(self._sites) else None

    def _task_row(self, t, total):
        task = t["task"]
        name = t["name"]
        if task is not None:
            try:
                name = task.get_name()
            except Exception:       # noqa: BLE001 - a broken subclass
                name = None
        site = self._site(t["site"])
        created = t["created"]
        if created is not None:
            created = _where(created[0].co_filename, created[1])
        return TaskStats(
            id=t["id"], name=name or f"<task {t['id']}>",
            coroutine=site.name if site else "?", created_at=created,
            state=t["state"], steps=t["steps"], busy=t["busy"] * _NS,
            max_step=t["max"] * _NS, cpu=self._cpu(t["cpu"]),
            waiting=t["wait"] * _NS, queued=t["queued"] * _NS,
            share=t["busy"] * _NS / total)

    def _slow_row(self, s):
        site = self._site(s["site"])
        task = self._task_names.get(s["task"]) if s["task"] else None
        stack = list(s["stack"] or ())
        if s["kind"] == "task":
            name = site.name if site else "?"
            mine = [f for f in stack if not f[0].startswith(_SKIP_PREFIXES)]
            if mine:
                location = _where(mine[-1][0], mine[-1][1])
            elif stack:
                location = _where(stack[-1][0], stack[-1][1])
            else:
                location = (site.location if site else None)
        else:
            name = site.name if site else "?"
            location = site.location if site else None
        return SlowStep(
            duration=s["dur"] * _NS, cpu=self._cpu(s["cpu"]), kind=s["kind"],
            name=name, task=(task.name if task else None) if s["task"] else None,
            location=location, stack=stack, at=s["t0"] * _NS)

    # -- plain data ------------------------------------------------------

    @property
    def other(self):
        """Time in the loop that was neither a callback nor a poll: timers,
        I/O dispatch, the profiler's own bookkeeping."""
        return max(0.0, self.wall - self.busy - self.poll - self.cpu_clock)

    def as_dict(self):
        """Everything but the trace, as JSON-serialisable dicts and lists."""
        from dataclasses import asdict
        return {
            "wall": self.wall, "busy": self.busy, "poll": self.poll,
            "idle": self.idle, "other": self.other, "busy_cpu": self.busy_cpu,
            "cpu_clock": self.cpu_clock,
            "iterations": self.iterations, "spans": self.spans,
            "tasks": [asdict(t) for t in self.tasks],
            "callbacks": [asdict(s) for s in self.callbacks],
            "coroutines": [asdict(s) for s in self.coroutines],
            "timer_lateness": asdict(self.timer_lateness),
            "ready_lag": asdict(self.ready_lag),
            "slowest": [asdict(s) for s in self.slowest],
            "tasks_dropped": self.tasks_dropped,
        }

    # -- the report --------------------------------------------------------

    def report(self, *, top=10, width=100, ascii=False):
        """The report ``python -m turboloop --profile`` prints."""
        from ._report import format_report
        return format_report(self, top=top, width=width, ascii=ascii)

    # -- Chrome trace-event format -----------------------------------------

    def chrome_trace(self, *, pid=None, process_name="turboloop"):
        """The recorded events as a Chrome trace (``{"traceEvents": [...]}``,
        complete events with microsecond timestamps): one track for the
        loop (callbacks, and polls as idle slices), one per task.  Loads in
        Perfetto (ui.perfetto.dev) and chrome://tracing."""
        from ._report import chrome_trace
        return chrome_trace(self, pid=os.getpid() if pid is None else pid,
                            process_name=process_name)

    def write_trace(self, path):
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.chrome_trace(), f)

    def __repr__(self):
        return (f"<Profile {self.wall:.3f}s busy={self.busy:.3f}s "
                f"tasks={len(self.tasks)} callbacks={len(self.callbacks)}>")


# ---------------------------------------------------------------------------
# The loop's methods


class ProfilingMixin:
    """turboloop.Loop's profiling methods."""

    _profiler = None
    # Called with each new loop: python -m turboloop --profile and --monitor.
    _new_loop_hooks = []

    def _init_profiling(self):
        if os.environ.get("TURBOLOOP_MONITOR", "") not in ("", "0"):
            from . import _monitor
            _monitor.start()
        for hook in list(self._new_loop_hooks):
            hook(self)

    def set_profiling(self, enabled=True, *, cpu=False, trace_events=0,
                      max_tasks=1000):
        """Switch this loop's profiler on or off.

        Switching it on starts a new profile (unless it is already on);
        switching it off keeps the data, for get_profile().  With cpu=True
        each step's thread CPU time is measured too (two system calls per
        step).  trace_events=N keeps the N most recent events for
        Profile.chrome_trace().  At most max_tasks finished tasks are kept
        individually; the cheapest of the others are dropped (their time
        stays in Profile.coroutines)."""
        if enabled:
            if self._profiler is not None and self._profiler.attached:
                return
            self._check_closed()
            profiler = _new_profiler(cpu, trace_events, max_tasks)
            profiler.attach(self)
            self._profiler = profiler
        elif self._profiler is not None:
            self._profiler.detach()

    def is_profiling(self):
        return self._profiler is not None and self._profiler.attached

    def get_profile(self):
        """The current (or last) profile of this loop, or None if it was
        never profiled."""
        if self._profiler is None:
            return None
        return Profile(self._profiler.snapshot())


class profile:
    """Profile a turboloop loop for the duration of a ``with`` block::

        with turboloop.profile() as p:          # the running loop
            await something()
        print(p.report())

    ``loop`` defaults to the running loop.  If that loop is already being
    profiled (for example under ``python -m turboloop --profile``), the
    block shares that profile instead of starting its own.  Inside the
    block, ``p.snapshot()`` is the profile so far; after it, ``p.profile``
    is the final one and the Profile attributes (``report()``, ``tasks``,
    ``callbacks``...) are available on ``p`` directly."""

    def __init__(self, loop=None, *, cpu=False, trace_events=0):
        self._loop = loop
        self._options = dict(cpu=cpu, trace_events=trace_events)
        self._profiler = None
        self._own = False
        self.profile = None

    def __enter__(self):
        loop = self._loop
        if loop is None:
            loop = asyncio.get_running_loop()
        if not isinstance(loop, ProfilingMixin):
            raise TypeError(f"turboloop.profile() needs a turboloop loop, got {loop!r}")
        if loop.is_profiling():
            self._profiler = loop._profiler
        else:
            self._profiler = _new_profiler(**self._options)
            self._profiler.attach(loop)
            self._own = True
        self._loop = loop
        return self

    def __exit__(self, *exc):
        if self._own:
            self._profiler.detach()
        self.profile = Profile(self._profiler.snapshot())
        return False

    def snapshot(self):
        if self._profiler is None:
            raise RuntimeError("profile() has not been entered")
        return Profile(self._profiler.snapshot())

    def __getattr__(self, name):
        # Profile's attributes, once the block is over.
        prof = self.__dict__.get("profile")
        if prof is None:
            raise AttributeError(name)
        return getattr(prof, name)
