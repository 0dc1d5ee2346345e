"""The event loops under comparison, by name.

Each benchmark process imports exactly one of them, so a loop that fails to
import costs only its own column.
"""

import asyncio
import os
import sys

LOOPS = ("asyncio", "uvloop", "turboloop")
# Not compared by default: turboloop with its profiler switched on, for
# measuring what profiling costs (python -m bench.callgrind --loops
# turboloop,turboloop-prof).
EXTRA_LOOPS = ("turboloop-prof",)


def loop_factory(name):
    """Return a zero-argument callable that creates a new loop of kind NAME."""
    if name == "asyncio":
        # The default selector loop (epoll on Linux), as asyncio.run() uses.
        return asyncio.new_event_loop
    if name == "uvloop":
        import uvloop
        return uvloop.new_event_loop
    if name == "turboloop":
        import turboloop
        return turboloop.new_event_loop
    if name == "turboloop-prof":
        import turboloop

        def profiled():
            loop = turboloop.new_event_loop()
            loop.set_profiling(True)
            return loop
        return profiled
    raise ValueError(f"unknown loop {name!r}; choose from {', '.join(LOOPS + EXTRA_LOOPS)}")


def describe(name):
    """A short version string for the report header."""
    if name == "asyncio":
        return "asyncio (Python %d.%d.%d)" % sys.version_info[:3]
    if name == "uvloop":
        import uvloop
        return f"uvloop {uvloop.__version__}"
    if name in ("turboloop", "turboloop-prof"):
        import turboloop
        where = os.path.dirname(os.path.abspath(turboloop.__file__))
        prof = ", profiling on" if name == "turboloop-prof" else ""
        return f"turboloop {getattr(turboloop, '__version__', '?')} ({where}{prof})"
    raise ValueError(f"unknown loop {name!r}")
