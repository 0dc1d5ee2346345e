"""The profiling options of ``python -m turboloop``.

    --profile               profile every loop the program creates and print
                            a report to stderr when it exits (also after
                            Ctrl-C or an exception)
    --profile=trace.json    ... and write the most recent events as a Chrome
                            trace to trace.json
    --trace-events=N        how many events the trace keeps (default 100,000)
    --profile-cpu           also measure each step's thread CPU time (two
                            system calls per step)
    --monitor               let `python -m turboloop top|ps PID` look at this
                            program while it runs
"""

import os
import sys

from . import profiling

OPTIONS_USAGE = """\
  --profile[=TRACE.json]  print a profile of the loop at exit (and write a trace)
  --trace-events=N        events kept for the trace (default 100,000)
  --profile-cpu           also measure the CPU time of each step
  --monitor               allow `python -m turboloop top|ps PID` to connect
"""


class Options:
    profile = False
    trace_path = None
    trace_events = profiling.DEFAULT_TRACE_EVENTS
    cpu = False
    monitor = False


def parse(args):
    """Split the leading profiling options off args: (Options, rest), or
    raise ValueError with a message for a bad one."""
    opts = Options()
    rest = list(args)
    while rest and rest[0].startswith("--"):
        arg = rest[0]
        name, eq, value = arg.partition("=")
        if name == "--profile":
            opts.profile = True
            if eq:
                if not value:
                    raise ValueError("--profile= needs a file name")
                opts.trace_path = value
        elif name == "--trace-events":
            try:
                opts.trace_events = int(value.replace("_", "").replace(",", ""))
            except ValueError:
                raise ValueError(f"--trace-events takes a number, not {value!r}") from None
            if opts.trace_events <= 0:
                raise ValueError("--trace-events must be positive")
        elif name == "--profile-cpu" and not eq:
            opts.cpu = True
        elif name == "--monitor" and not eq:
            opts.monitor = True
        else:
            raise ValueError(f"unknown option {arg}")
        rest.pop(0)
    return opts, rest


class Session:
    """For the duration of the program: profile each new loop, serve the
    monitor; at the end, print the reports and write the trace."""

    def __init__(self, opts, stream=None):
        self.opts = opts
        self.stream = stream
        self.profilers = []         # [(loop repr, Profiler)], in creation order

    def __enter__(self):
        if self.opts.profile:
            profiling.ProfilingMixin._new_loop_hooks.append(self._loop_created)
        if self.opts.monitor:
            from . import _monitor
            _monitor.start()
        return self

    def _loop_created(self, loop):
        loop.set_profiling(True, cpu=self.opts.cpu,
                           trace_events=self.opts.trace_events if self.opts.trace_path else 0)
        self.profilers.append(loop._profiler)

    def __exit__(self, *exc):
        hooks = profiling.ProfilingMixin._new_loop_hooks
        if self._loop_created in hooks:
            hooks.remove(self._loop_created)
        if self.opts.profile:
            try:
                self._finish()
            except Exception as e:       # noqa: BLE001 - never hide the program's own error
                print(f"turboloop: could not write the profile: {e!r}", file=sys.stderr)
        return False

    def _finish(self):
        stream = self.stream or sys.stderr
        profiles = [profiling.Profile(p.snapshot()) for p in self.profilers]
        # Loops that never ran anything (a fresh loop made and closed, as
        # asyncio.run() makes none but some programs do) are not reported.
        shown = [p for p in profiles if p.spans or p.wall]
        encoding = getattr(stream, "encoding", None) or "ascii"
        try:
            "\u00b5\u2026\u203a".encode(encoding)
            ascii = False
        except (UnicodeEncodeError, LookupError):
            ascii = True
        stream.write("\n")
        if not shown:
            stream.write("turboloop profile: no turboloop event loop ran\n")
        for i, p in enumerate(shown):
            if len(shown) > 1:
                stream.write(f"==== event loop {i + 1} of {len(shown)} ====\n")
            stream.write(p.report(ascii=ascii))
        if self.opts.trace_path:
            trace = {"traceEvents": [], "displayTimeUnit": "ms"}
            for i, p in enumerate(shown or profiles[:1]):
                one = p.chrome_trace(
                    pid=os.getpid() if len(shown) <= 1 else i + 1,
                    process_name="turboloop" if len(shown) <= 1 else f"event loop {i + 1}")
                trace["traceEvents"].extend(one["traceEvents"])
                trace.setdefault("otherData", one["otherData"])
            import json
            with open(self.opts.trace_path, "w", encoding="utf-8") as f:
                json.dump(trace, f)
            stream.write(f"turboloop: trace written to {self.opts.trace_path}\n"
                         f"  (open it in https://ui.perfetto.dev or chrome://tracing)\n")
        stream.flush()
