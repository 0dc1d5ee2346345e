# Types of the network half of turboloop.Loop.  Most of these methods are
# asyncio's own for the running Python (see _network.py), so their
# signatures are asyncio's, version by version.

import asyncio
import ssl
import sys
from _typeshed import FileDescriptorLike, ReadableBuffer, StrPath, WriteableBuffer
from collections.abc import Callable, Sequence
from socket import _Address, _RetAddress, socket
from typing import IO, Any, TypeAlias, TypeVar

from typing_extensions import TypeVarTuple, Unpack

__all__ = ("NetworkMixin",)

_Ts = TypeVarTuple("_Ts")
_ProtocolT = TypeVar("_ProtocolT", bound=asyncio.BaseProtocol)
_SSL: TypeAlias = bool | ssl.SSLContext | None

class NetworkMixin:
    # File descriptors.
    def add_reader(
        self, fd: FileDescriptorLike, callback: Callable[[Unpack[_Ts]], object], *args: Unpack[_Ts]
    ) -> None: ...
    def remove_reader(self, fd: FileDescriptorLike) -> bool: ...
    def add_writer(
        self, fd: FileDescriptorLike, callback: Callable[[Unpack[_Ts]], object], *args: Unpack[_Ts]
    ) -> None: ...
    def remove_writer(self, fd: FileDescriptorLike) -> bool: ...

    # Streams and servers.
    if sys.version_info >= (3, 12):
        async def create_connection(
            self,
            protocol_factory: Callable[[], _ProtocolT],
            host: str | None = None,
            port: int | str | None = None,
            *,
            ssl: _SSL = None,
            family: int = 0,
            proto: int = 0,
            flags: int = 0,
            sock: socket | None = None,
            local_addr: tuple[str, int] | None = None,
            server_hostname: str | None = None,
            ssl_handshake_timeout: float | None = None,
            ssl_shutdown_timeout: float | None = None,
            happy_eyeballs_delay: float | None = None,
            interleave: int | None = None,
            all_errors: bool = False,
        ) -> tuple[asyncio.Transport, _ProtocolT]: ...
    else:
        async def create_connection(
            self,
            protocol_factory: Callable[[], _ProtocolT],
            host: str | None = None,
            port: int | str | None = None,
            *,
            ssl: _SSL = None,
            family: int = 0,
            proto: int = 0,
            flags: int = 0,
            sock: socket | None = None,
            local_addr: tuple[str, int] | None = None,
            server_hostname: str | None = None,
            ssl_handshake_timeout: float | None = None,
            ssl_shutdown_timeout: float | None = None,
            happy_eyeballs_delay: float | None = None,
            interleave: int | None = None,
        ) -> tuple[asyncio.Transport, _ProtocolT]: ...

    if sys.version_info >= (3, 13):
        async def create_server(
            self,
            protocol_factory: Callable[[], asyncio.BaseProtocol],
            host: str | Sequence[str] | None = None,
            port: int | str | None = None,
            *,
            family: int = ...,
            flags: int = ...,
            sock: socket | None = None,
            backlog: int = 100,
            ssl: _SSL = None,
            reuse_address: bool | None = None,
            reuse_port: bool | None = None,
            keep_alive: bool | None = None,
            ssl_handshake_timeout: float | None = None,
            ssl_shutdown_timeout: float | None = None,
            start_serving: bool = True,
        ) -> asyncio.Server: ...
    else:
        async def create_server(
            self,
            protocol_factory: Callable[[], asyncio.BaseProtocol],
            host: str | Sequence[str] | None = None,
            port: int | str | None = None,
            *,
            family: int = ...,
            flags: int = ...,
            sock: socket | None = None,
            backlog: int = 100,
            ssl: _SSL = None,
            reuse_address: bool | None = None,
            reuse_port: bool | None = None,
            ssl_handshake_timeout: float | None = None,
            ssl_shutdown_timeout: float | None = None,
            start_serving: bool = True,
        ) -> asyncio.Server: ...

    async def connect_accepted_socket(
        self,
        protocol_factory: Callable[[], _ProtocolT],
        sock: socket,
        *,
        ssl: _SSL = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> tuple[asyncio.Transport, _ProtocolT]: ...
    async def create_unix_connection(
        self,
        protocol_factory: Callable[[], _ProtocolT],
        path: str | None = None,
        *,
        ssl: _SSL = None,
        sock: socket | None = None,
        server_hostname: str | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> tuple[asyncio.Transport, _ProtocolT]: ...
    if sys.version_info >= (3, 13):
        async def create_unix_server(
            self,
            protocol_factory: Callable[[], asyncio.BaseProtocol],
            path: StrPath | None = None,
            *,
            sock: socket | None = None,
            backlog: int = 100,
            ssl: _SSL = None,
            ssl_handshake_timeout: float | None = None,
            ssl_shutdown_timeout: float | None = None,
            start_serving: bool = True,
            cleanup_socket: bool = True,
        ) -> asyncio.Server: ...
    else:
        async def create_unix_server(
            self,
            protocol_factory: Callable[[], asyncio.BaseProtocol],
            path: StrPath | None = None,
            *,
            sock: socket | None = None,
            backlog: int = 100,
            ssl: _SSL = None,
            ssl_handshake_timeout: float | None = None,
            ssl_shutdown_timeout: float | None = None,
            start_serving: bool = True,
        ) -> asyncio.Server: ...

    # TLS.
    async def start_tls(
        self,
        transport: asyncio.BaseTransport,
        protocol: asyncio.BaseProtocol,
        sslcontext: ssl.SSLContext,
        *,
        server_side: bool = False,
        server_hostname: str | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> asyncio.Transport | None: ...

    # Datagrams and pipes.
    async def create_datagram_endpoint(
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
    async def connect_read_pipe(
        self, protocol_factory: Callable[[], _ProtocolT], pipe: Any
    ) -> tuple[asyncio.ReadTransport, _ProtocolT]: ...
    async def connect_write_pipe(
        self, protocol_factory: Callable[[], _ProtocolT], pipe: Any
    ) -> tuple[asyncio.WriteTransport, _ProtocolT]: ...

    # sendfile.
    async def sendfile(
        self,
        transport: asyncio.WriteTransport,
        file: IO[bytes],
        offset: int = 0,
        count: int | None = None,
        *,
        fallback: bool = True,
    ) -> int: ...
    async def sock_sendfile(
        self,
        sock: socket,
        file: IO[bytes],
        offset: int = 0,
        count: int | None = None,
        *,
        fallback: bool | None = True,
    ) -> int: ...

    # Low-level socket operations.
    async def sock_recv(self, sock: socket, n: int) -> bytes: ...
    async def sock_recv_into(self, sock: socket, buf: WriteableBuffer) -> int: ...
    async def sock_recvfrom(self, sock: socket, bufsize: int) -> tuple[bytes, _RetAddress]: ...
    async def sock_recvfrom_into(
        self, sock: socket, buf: WriteableBuffer, nbytes: int = 0
    ) -> tuple[int, _RetAddress]: ...
    async def sock_sendall(self, sock: socket, data: ReadableBuffer) -> None: ...
    async def sock_sendto(self, sock: socket, data: ReadableBuffer, address: _Address) -> int: ...
    async def sock_connect(self, sock: socket, address: _Address) -> None: ...
    async def sock_accept(self, sock: socket) -> tuple[socket, _RetAddress]: ...
