"""The event loops under comparison, by name.

Each benchmark process imports exactly one of them, so a loop that fails to
import costs only its own column.
"""

import asyncio
import os
import sys

LOOPS = ("asyncio", "uvloop", "turboloop")


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
    raise ValueError(f"unknown loop {name!r}; choose from {', '.join(LOOPS)}")


def describe(name):
    """A short version string for the report header."""
    if name == "asyncio":
        return "asyncio (Python %d.%d.%d)" % sys.version_info[:3]
    if name == "uvloop":
        import uvloop
        return f"uvloop {uvloop.__version__}"
    if name == "turboloop":
        import turboloop
        where = os.path.dirname(os.path.abspath(turboloop.__file__))
        return f"turboloop {getattr(turboloop, '__version__', '?')} ({where})"
    raise ValueError(f"unknown loop {name!r}")
