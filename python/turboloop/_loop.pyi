# Types of turboloop.Loop.

import asyncio
from collections.abc import Awaitable, Callable, Generator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextvars import Context
from socket import _GetAddrInfoResult, socket
from typing import Any, TypeAlias, TypeVar

from typing_extensions import TypeVarTuple, Unpack

from . import _core
from ._network import NetworkMixin

__all__ = ("Loop",)

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")
_ProtocolT = TypeVar("_ProtocolT", bound=asyncio.BaseProtocol)
_Context: TypeAlias = dict[str, Any]
_ExceptionHandler: TypeAlias = Callable[[asyncio.AbstractEventLoop, _Context], object]

class Loop(_core.Loop, NetworkMixin, asyncio.AbstractEventLoop):
    """turboloop's asyncio event loop."""

    def __init__(self) -> None: ...
    def __del__(self) -> None: ...

    # Running and stopping.
    def run_forever(self) -> None: ...
    def run_until_complete(self, future: Generator[Any, None, _T] | Awaitable[_T]) -> _T: ...
    def close(self) -> None: ...
    async def shutdown_asyncgens(self) -> None: ...
    async def shutdown_default_executor(self, timeout: float | None = None) -> None: ...

    # Callbacks.  The handles are turboloop's own, with asyncio's API but
    # not subclasses of asyncio.Handle and asyncio.TimerHandle, hence the
    # overrides that do not match AbstractEventLoop's.
    def call_soon(  # type: ignore[override]
        self, callback: Callable[[Unpack[_Ts]], object], *args: Unpack[_Ts], context: Context | None = None
    ) -> _core.Handle: ...
    def call_soon_threadsafe(  # type: ignore[override]
        self, callback: Callable[[Unpack[_Ts]], object], *args: Unpack[_Ts], context: Context | None = None
    ) -> _core.Handle: ...
    def call_later(  # type: ignore[override]
        self,
        delay: float,
        callback: Callable[[Unpack[_Ts]], object],
        *args: Unpack[_Ts],
        context: Context | None = None,
    ) -> _core.TimerHandle: ...
    def call_at(  # type: ignore[override]
        self,
        when: float,
        callback: Callable[[Unpack[_Ts]], object],
        *args: Unpack[_Ts],
        context: Context | None = None,
    ) -> _core.TimerHandle: ...

    # Debugging and errors.
    def set_debug(self, enabled: bool) -> None: ...
    def get_exception_handler(self) -> _ExceptionHandler | None: ...
    def set_exception_handler(self, handler: _ExceptionHandler | None) -> None: ...
    def default_exception_handler(self, context: _Context) -> None: ...
    def call_exception_handler(self, context: _Context) -> None: ...

    # Executors and name resolution.
    def run_in_executor(
        self, executor: Executor | None, func: Callable[[Unpack[_Ts]], _T], *args: Unpack[_Ts]
    ) -> asyncio.Future[_T]: ...
    # asyncio's loops take a ThreadPoolExecutor only, whatever
    # AbstractEventLoop says.
    def set_default_executor(self, executor: ThreadPoolExecutor) -> None: ...  # type: ignore[override]
    async def getaddrinfo(
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> _GetAddrInfoResult: ...
    async def getnameinfo(
        self, sockaddr: tuple[str, int] | tuple[str, int, int, int], flags: int = 0
    ) -> tuple[str, str]: ...

    # Unix signals.
    def add_signal_handler(
        self, sig: int, callback: Callable[[Unpack[_Ts]], object], *args: Unpack[_Ts]
    ) -> None: ...
    def remove_signal_handler(self, sig: int) -> bool: ...

    # Datagrams.  reuse_address= is gone from asyncio's loops since 3.11,
    # although AbstractEventLoop still has it.
    async def create_datagram_endpoint(  # type: ignore[override]
        self,
        protocol_factory: Callable[[], _ProtocolT],
        local_addr: tuple[str, int] | str | None = None,
        remote_addr: tuple[str, int] | str | None = None,
        *,
        family: int = 0,
        proto: int = 0,
        flags: int = 0,
        reuse_port: bool | None = None,
        allow_broadcast: bool | None = None,
        sock: socket | None = None,
    ) -> tuple[asyncio.DatagramTransport, _ProtocolT]: ...

    # Not implemented yet: they raise NotImplementedError.
    async def subprocess_exec(
        self,
        protocol_factory: Callable[[], _ProtocolT],
        *args: Any,
        stdin: Any = -1,
        stdout: Any = -1,
        stderr: Any = -1,
        **kwargs: Any,
    ) -> tuple[asyncio.SubprocessTransport, _ProtocolT]: ...
    async def subprocess_shell(
        self,
        protocol_factory: Callable[[], _ProtocolT],
        cmd: bytes | str,
        *,
        stdin: Any = -1,
        stdout: Any = -1,
        stderr: Any = -1,
        **kwargs: Any,
    ) -> tuple[asyncio.SubprocessTransport, _ProtocolT]: ...
