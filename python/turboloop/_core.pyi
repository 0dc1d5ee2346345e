# Types of turboloop's C core, the extension module turboloop._core.
#
# The types follow the ones asyncio's counterparts have in the standard
# library's stubs, so code typed against asyncio type-checks against these.
# `python -m mypy.stubtest turboloop` compares this file with the built
# module, and tests/typecheck/stub_bases.py the base classes (CI runs
# both); tests/typecheck/stubtest-allowlist.txt lists what stubtest reports
# and why that is accepted.

import asyncio
import sys
from asyncio import transports
from asyncio.events import _TaskFactory
from collections.abc import Callable, Coroutine, Generator, Iterable
from contextvars import Context
from socket import socket
from typing import Any, TypeAlias, TypeVar, final, type_check_only

from typing_extensions import Self, TypedDict, TypeVarTuple, Unpack, disjoint_base

_T = TypeVar("_T")
_T_co = TypeVar("_T_co", covariant=True)
_Ts = TypeVarTuple("_Ts")

# What a Task runs: a coroutine, and before 3.12 also a generator-based one.
if sys.version_info >= (3, 12):
    _TaskCoro: TypeAlias = Coroutine[Any, Any, _T_co]
else:
    _TaskCoro: TypeAlias = (
        Coroutine[Any, Any, _T_co] | Generator[asyncio.Future[object] | None, None, _T_co]
    )

_Buffer: TypeAlias = bytes | bytearray | memoryview

@type_check_only
class LoopStats(TypedDict):
    """What Loop.stats() returns: counters since the loop was made."""

    iterations: int
    callbacks: int
    poll_time: float
    run_time: float
    ready: int
    timers: int
    timers_cancelled: int
    poller: str

@disjoint_base
class Loop:
    """The C half of turboloop.Loop: scheduling, timers, polling, futures
    and tasks.  Use turboloop.Loop (or turboloop.new_event_loop())."""

    slow_callback_duration: float
    def time(self) -> float: ...
    def call_soon(
        self, callback: Callable[[Unpack[_Ts]], object], *args: Unpack[_Ts], context: Context | None = None
    ) -> Handle: ...
    def call_soon_threadsafe(
        self, callback: Callable[[Unpack[_Ts]], object], *args: Unpack[_Ts], context: Context | None = None
    ) -> Handle: ...
    def call_later(
        self,
        delay: float,
        callback: Callable[[Unpack[_Ts]], object],
        *args: Unpack[_Ts],
        context: Context | None = None,
    ) -> TimerHandle: ...
    def call_at(
        self,
        when: float,
        callback: Callable[[Unpack[_Ts]], object],
        *args: Unpack[_Ts],
        context: Context | None = None,
    ) -> TimerHandle: ...
    def stop(self) -> None: ...
    def is_running(self) -> bool: ...
    def is_closed(self) -> bool: ...
    def get_debug(self) -> bool: ...
    def create_future(self) -> Future[Any]: ...
    if sys.version_info >= (3, 12):
        def create_task(
            self,
            coro: _TaskCoro[_T],
            *,
            name: str | None = None,
            context: Context | None = None,
            eager_start: bool | None = None,
        ) -> Task[_T]: ...
    else:
        def create_task(
            self, coro: _TaskCoro[_T], *, name: str | None = None, context: Context | None = None
        ) -> Task[_T]: ...

    def set_task_factory(self, factory: _TaskFactory | None, /) -> None: ...
    def get_task_factory(self) -> _TaskFactory | None: ...
    def stats(self) -> LoopStats: ...

# True when Future and Task are subclasses of asyncio's C Future and Task
# (the interpreter's _asyncio has the layout the build expects).
ASYNCIO_BASE: bool

class Future(asyncio.Future[_T]):
    """asyncio.Future in C."""

    def __init__(self, *, loop: asyncio.AbstractEventLoop | None = None) -> None: ...

# Covariant like asyncio.Task: set_result() and set_exception() of a task
# always raise, so the invariance Future[T] gets from them does not apply.
@disjoint_base
class Task(Future[_T_co], asyncio.Task[_T_co]):  # type: ignore[type-var]
    """asyncio.Task in C."""

    if sys.version_info >= (3, 12):
        def __init__(
            self,
            coro: _TaskCoro[_T_co],
            *,
            loop: asyncio.AbstractEventLoop | None = None,
            name: str | None = None,
            context: Context | None = None,
            eager_start: bool = False,
        ) -> None: ...
    else:
        def __init__(
            self,
            coro: _TaskCoro[_T_co],
            *,
            loop: asyncio.AbstractEventLoop | None = None,
            name: str | None = None,
            context: Context | None = None,
        ) -> None: ...
        # asyncio.Task has it from 3.12 on; turboloop's on 3.11 too.
        def get_context(self) -> Context: ...

@final
class FutureIter(Generator[Any, None, _T]):
    """What Future.__await__() returns."""

    def __next__(self) -> Any: ...
    def send(self, value: Any, /) -> Any: ...
    def throw(self, typ: Any, val: Any = None, tb: Any = None, /) -> Any: ...
    def close(self) -> None: ...

# turboloop's handles have the API of asyncio.Handle and asyncio.TimerHandle
# but are not subclasses of them.
@disjoint_base
class Handle:
    """What call_soon() and call_soon_threadsafe() return."""

    def __new__(
        cls,
        callback: Callable[..., object],
        args: Iterable[Any],
        loop: asyncio.AbstractEventLoop,
        context: Context | None = None,
    ) -> Self: ...
    def cancel(self) -> None: ...
    def cancelled(self) -> bool: ...
    def get_context(self) -> Context: ...

class TimerHandle(Handle):
    """What call_later() and call_at() return; ordered by deadline."""

    def __new__(
        cls,
        when: float,
        callback: Callable[..., object],
        args: Iterable[Any],
        loop: asyncio.AbstractEventLoop,
        context: Context | None = None,
    ) -> Self: ...
    def when(self) -> float: ...
    def __hash__(self) -> int: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __lt__(self, other: TimerHandle, /) -> bool: ...
    def __le__(self, other: TimerHandle, /) -> bool: ...
    def __gt__(self, other: TimerHandle, /) -> bool: ...
    def __ge__(self, other: TimerHandle, /) -> bool: ...

@final
class SocketOperation:
    """The pending half of a sock_recv(), sock_recv_into() or sock_sendall()
    that would have blocked (internal)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

@disjoint_base
class DatagramTransport(transports._FlowControlMixin):
    """The per-datagram paths (reading, sendto()) of the datagram transport
    the loop makes, a class that also derives from asyncio's selector
    datagram transport; user code does not make them."""

    def sendto(self, data: _Buffer, addr: Any = None) -> None: ...

@disjoint_base
class SocketTransport(transports._FlowControlMixin, transports.Transport):
    """The stream transport of TCP and Unix socket connections.  The loop
    makes them; user code does not."""

    def __init__(
        self,
        loop: Loop,
        sock: socket,
        protocol: asyncio.BaseProtocol,
        extra: dict[str, Any] | None,
        server: asyncio.Server | None,
        detach_with_transport: bool,
        context: Context | None = None,
        /,
    ) -> None: ...
    def write(self, data: _Buffer, /) -> None: ...
    def writelines(self, list_of_data: Iterable[_Buffer], /) -> None: ...
    def write_eof(self) -> None: ...
    def can_write_eof(self) -> bool: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def is_closing(self) -> bool: ...
    def is_reading(self) -> bool: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None: ...
    def get_write_buffer_limits(self) -> tuple[int, int]: ...
    def get_write_buffer_size(self) -> int: ...
    def set_protocol(self, protocol: asyncio.BaseProtocol, /) -> None: ...
    def get_protocol(self) -> asyncio.BaseProtocol: ...

@disjoint_base
class ReadPipeTransport(transports.ReadTransport):
    """The read end of a pipe (connect_read_pipe(), a child's stdout or
    stderr).  The loop makes them; user code does not."""

    def __init__(
        self,
        loop: Loop,
        pipe: Any,
        fd: int,
        protocol: asyncio.BaseProtocol,
        extra: dict[str, Any],
        watch_close: bool = False,
        /,
    ) -> None: ...
    def is_closing(self) -> bool: ...
    def close(self) -> None: ...
    def is_reading(self) -> bool: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def set_protocol(self, protocol: asyncio.BaseProtocol, /) -> None: ...
    def get_protocol(self) -> asyncio.BaseProtocol: ...

@disjoint_base
class WritePipeTransport(transports._FlowControlMixin, transports.WriteTransport):
    """The write end of a pipe (connect_write_pipe(), a child's stdin).  The
    loop makes them; user code does not."""

    def __init__(
        self,
        loop: Loop,
        pipe: Any,
        fd: int,
        protocol: asyncio.BaseProtocol,
        extra: dict[str, Any],
        watch_close: bool = False,
        /,
    ) -> None: ...
    def write(self, data: _Buffer, /) -> None: ...
    def write_eof(self) -> None: ...
    def can_write_eof(self) -> bool: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def is_closing(self) -> bool: ...
    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None: ...
    def get_write_buffer_limits(self) -> tuple[int, int]: ...
    def get_write_buffer_size(self) -> int: ...
    def set_protocol(self, protocol: asyncio.BaseProtocol, /) -> None: ...
    def get_protocol(self) -> asyncio.BaseProtocol: ...

@final
class PidfdWatch:
    """Watches one child process through a pidfd in the loop's poller and
    calls callback(pid, returncode, *args) once it has exited and been
    reaped.  Made by the loop's child watcher."""

    def __new__(cls, loop: Loop, pid: int, callback: Callable[..., object], args: tuple[Any, ...], /) -> Self: ...
    @property
    def pid(self) -> int: ...
    @property
    def fd(self) -> int: ...
    def cancel(self) -> None: ...

@final
class Profiler:
    """The accounting of a loop's profiler (turboloop.profiling reads it)."""

    def __new__(
        cls,
        *,
        cpu: bool = False,
        trace_events: int = 0,
        max_tasks: int = 1000,
        capture: Callable[[Any], object] | None = None,
        skip_prefixes: tuple[str, ...] = ...,
        task_types: tuple[type, ...] = ...,
    ) -> Self: ...
    @property
    def attached(self) -> bool: ...
    def attach(self, loop: Loop, /) -> None: ...
    def detach(self) -> None: ...
    def reset(self) -> None: ...
    def snapshot(self, *, trace: bool = True, finished: bool = True) -> dict[str, Any]: ...

@final
class SSLReadBuffer:
    """SSLReadBuffer(size=262144): the memory a loop's TLS connections
    receive records and collect decrypted data in."""

    def __new__(cls, size: int = 262144) -> Self: ...
    def __len__(self) -> int: ...
    if sys.version_info >= (3, 12):
        def __buffer__(self, flags: int, /) -> memoryview: ...

    @property
    def view(self) -> memoryview: ...
    @property
    def busy(self) -> int: ...

@disjoint_base
class SSLProtocol:
    """The C half of turboloop's TLS protocol: its per-record methods and
    the state asyncio's SSLProtocol methods use.  The loop makes them
    (turboloop._sslproto.SSLProtocol); user code does not."""

    def get_buffer(self, n: int, /) -> memoryview: ...
    def buffer_updated(self, nbytes: int, /) -> None: ...
    def pause_writing(self) -> None: ...
    def resume_writing(self) -> None: ...

@disjoint_base
class SSLTransport(transports._FlowControlMixin, transports.Transport):
    """The C half of the transport of a TLS connection."""

    def write(self, data: _Buffer, /) -> None: ...
    def writelines(self, list_of_data: Iterable[_Buffer], /) -> None: ...
    def is_closing(self) -> bool: ...

def _ssl_check_reads(flag: object, /) -> None: ...
