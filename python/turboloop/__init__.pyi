# Types of the turboloop package.

import asyncio.events
import sys
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

from typing_extensions import deprecated

from ._core import Future as Future, Handle as Handle, Task as Task, TimerHandle as TimerHandle
from ._loop import Loop as Loop
from ._version import __version__ as __version__

__all__ = (
    "Loop",
    "Future",
    "Task",
    "Handle",
    "TimerHandle",
    "new_event_loop",
    "run",
    "install",
    "EventLoopPolicy",
)

_T = TypeVar("_T")

def new_event_loop() -> Loop: ...

# What asyncio.run() takes on the same Python.
if sys.version_info >= (3, 14):
    def run(main: Awaitable[_T], *, debug: bool | None = None) -> _T: ...

else:
    def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = None) -> _T: ...

# asyncio's event loop policies are deprecated from 3.14 on.
if sys.version_info >= (3, 14):
    @deprecated("Deprecated as asyncio's policies are; use asyncio.run(..., loop_factory=turboloop.new_event_loop)")
    def install() -> None: ...
    @deprecated("Deprecated as asyncio's policies are; use loop_factory=turboloop.new_event_loop")
    class EventLoopPolicy(asyncio.events._BaseDefaultEventLoopPolicy):
        def new_event_loop(self) -> Loop: ...

else:
    def install() -> None: ...
    class EventLoopPolicy(asyncio.events.BaseDefaultEventLoopPolicy):
        def new_event_loop(self) -> Loop: ...
        # asyncio's abstract policy methods, which raise NotImplementedError
        # here as in asyncio.BaseDefaultEventLoopPolicy (deprecated on 3.12
        # and 3.13).
        def get_child_watcher(self) -> asyncio.AbstractChildWatcher: ...
        def set_child_watcher(self, watcher: asyncio.AbstractChildWatcher | None) -> None: ...
