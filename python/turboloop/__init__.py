"""turboloop: an asyncio event loop with its loop, Future and Task in C.

    import asyncio, turboloop
    turboloop.run(main())
    asyncio.run(main(), loop_factory=turboloop.new_event_loop)   # 3.12+
"""

import asyncio as _asyncio
import sys as _sys
import warnings as _warnings

from asyncio import events as _events

from ._core import Future, Handle, Task, TimerHandle
from ._loop import Loop
from ._version import __version__

__all__ = ("Loop", "Future", "Task", "Handle", "TimerHandle",
           "new_event_loop", "run", "install", "EventLoopPolicy")

# asyncio deprecates event loop policies from 3.14 on (removal in 3.16).
_POLICIES_DEPRECATED = _sys.version_info >= (3, 14)


def new_event_loop():
    """Return a new turboloop event loop."""
    return Loop()


def run(main, *, debug=None):
    """Run the coroutine `main` on a new turboloop loop and return its
    result, like asyncio.run(): the loop is closed afterwards, pending tasks
    are cancelled, and Ctrl-C cancels `main` and raises KeyboardInterrupt."""
    if _events._get_running_loop() is not None:
        raise RuntimeError(
            "turboloop.run() cannot be called from a running event loop")
    with _asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
        return runner.run(main)


if _POLICIES_DEPRECATED:
    _BasePolicy = _events._BaseDefaultEventLoopPolicy
else:
    _BasePolicy = _events.BaseDefaultEventLoopPolicy


class _EventLoopPolicy(_BasePolicy):
    """An event loop policy whose loops are turboloop loops."""

    def _loop_factory(self):
        return new_event_loop()

    def __repr__(self):
        return "<turboloop.EventLoopPolicy>"


_EventLoopPolicy.__name__ = _EventLoopPolicy.__qualname__ = "EventLoopPolicy"


def _set_policy(policy):
    if _POLICIES_DEPRECATED:
        _events._set_event_loop_policy(policy)
    else:
        _asyncio.set_event_loop_policy(policy)


def install():
    """Make turboloop the loop asyncio creates (through the event loop
    policy).  Deprecated on Python 3.14+, as asyncio's policies are; use
    asyncio.run(main(), loop_factory=turboloop.new_event_loop) instead."""
    if _POLICIES_DEPRECATED:
        _warnings.warn(
            "turboloop.install() is deprecated, as asyncio event loop "
            "policies are, and slated for removal in Python 3.16; use "
            "asyncio.run(..., loop_factory=turboloop.new_event_loop)",
            DeprecationWarning, stacklevel=2)
    _set_policy(_EventLoopPolicy())


def __getattr__(name):
    if name == "EventLoopPolicy":
        if _POLICIES_DEPRECATED:
            _warnings.warn(
                "turboloop.EventLoopPolicy is deprecated, as asyncio event "
                "loop policies are, and slated for removal in Python 3.16",
                DeprecationWarning, stacklevel=2)
        return _EventLoopPolicy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
