# Types of turboloop's TLS protocol (see _sslproto.py): asyncio's
# SSLProtocol and _SSLProtocolTransport with their per-record methods in C.

import asyncio
import ssl
from asyncio import sslproto
from typing import Any

from . import _core

__all__ = ("SSLProtocol",)

class _SSLProtocolTransport(_core.SSLTransport, sslproto._SSLProtocolTransport): ...

class SSLProtocol(_core.SSLProtocol, sslproto.SSLProtocol):
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        app_protocol: asyncio.BaseProtocol,
        sslcontext: ssl.SSLContext | None,
        waiter: asyncio.Future[Any] | None,
        server_side: bool = False,
        server_hostname: str | None = None,
        call_connection_made: bool = True,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> None: ...
    def _get_app_transport(self) -> _SSLProtocolTransport: ...
