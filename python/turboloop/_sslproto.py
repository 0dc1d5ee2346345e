"""TLS for turboloop's loop: asyncio's SSLProtocol with its per-record work
in C.

SSLProtocol subclasses the C type _core.SSLProtocol (csrc/sslproto.c) and
the running Python's asyncio.sslproto.SSLProtocol, in that order: the
methods that run for every read and write (get_buffer, buffer_updated,
_do_read, _do_write, _write_appdata, flow control) are the C type's, and
everything that runs once per connection -- the handshake, the shutdown,
their timeouts, connection_made/connection_lost, eof_received, the fatal
error path -- is asyncio's own code for the running version.  The attributes
both use (_state, _transport, _sslobj, _write_backlog, the flow control
flags and water marks, ...) are fields of the C type.  _SSLProtocolTransport
does the same for the transport the application gets (csrc/ssltransport.c).
"""

from asyncio import constants, sslproto

from . import _core

try:
    import ssl
except ImportError:  # pragma: no cover
    ssl = None

__all__ = ("SSLProtocol",)


class _SSLProtocolTransport(_core.SSLTransport, sslproto._SSLProtocolTransport):
    """The transport of a TLS connection: write(), writelines() and
    is_closing() in C, the rest asyncio's."""


# Before 3.11.5 or so, is_closing() only looked at the transport itself.
if "_is_transport_closing" not in sslproto._SSLProtocolTransport.is_closing.__code__.co_names:
    _SSLProtocolTransport.is_closing = sslproto._SSLProtocolTransport.is_closing


def _checked_timeout(value, default, name):
    if value is None:
        return default
    if value <= 0:
        raise ValueError(f"{name} should be a positive number, got {value}")
    return value


def _read_buffer(loop):
    """The loop's TLS read buffer, made on first use (one per loop: see
    csrc/sslproto.h)."""
    buf = getattr(loop, "_ssl_read_buffer", None)
    if buf is None:
        buf = _core.SSLReadBuffer()
        if isinstance(loop, _core.Loop):
            loop._ssl_read_buffer = buf
    return buf


class SSLProtocol(_core.SSLProtocol, sslproto.SSLProtocol):
    """asyncio's SSLProtocol with its per-record methods in C."""

    def __init__(self, loop, app_protocol, sslcontext, waiter,
                 server_side=False, server_hostname=None,
                 call_connection_made=True,
                 ssl_handshake_timeout=None,
                 ssl_shutdown_timeout=None):
        # The state asyncio's __init__ sets up, with the loop's read buffer
        # in place of a 256 KiB buffer per connection.
        if ssl is None:
            raise RuntimeError("stdlib ssl module not available")
        ssl_handshake_timeout = _checked_timeout(
            ssl_handshake_timeout, constants.SSL_HANDSHAKE_TIMEOUT,
            "ssl_handshake_timeout")
        ssl_shutdown_timeout = _checked_timeout(
            ssl_shutdown_timeout, constants.SSL_SHUTDOWN_TIMEOUT,
            "ssl_shutdown_timeout")
        if not sslcontext:
            sslcontext = sslproto._create_transport_context(server_side,
                                                            server_hostname)
        self._server_side = server_side
        self._server_hostname = (server_hostname
                                 if server_hostname and not server_side else None)
        self._sslcontext = sslcontext
        self._extra = {"sslcontext": sslcontext}
        self._write_buffer_size = 0
        self._waiter = waiter
        self._loop = loop
        self._set_app_protocol(app_protocol)
        self._app_transport = None
        self._app_transport_created = False
        self._transport = None
        self._ssl_handshake_timeout = ssl_handshake_timeout
        self._ssl_shutdown_timeout = ssl_shutdown_timeout
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._state = sslproto.SSLProtocolState.UNWRAPPED
        self._conn_lost = 0
        self._app_state = (sslproto.AppProtocolState.STATE_INIT
                           if call_connection_made
                           else sslproto.AppProtocolState.STATE_CON_MADE)
        self._sslobj = sslcontext.wrap_bio(
            self._incoming, self._outgoing, server_side=server_side,
            server_hostname=self._server_hostname)
        self._ssl_writing_paused = False
        self._app_reading_paused = False
        self._ssl_reading_paused = False
        self._set_read_buffer_limits()
        self._eof_received = False
        self._app_writing_paused = False
        self._set_write_buffer_limits()
        self._read_buffer = _read_buffer(loop)
        self._get_app_transport()

    def _get_app_transport(self):
        if self._app_transport is None:
            if self._app_transport_created:
                raise RuntimeError("Creating _SSLProtocolTransport twice")
            self._app_transport = _SSLProtocolTransport(self._loop, self)
            self._app_transport_created = True
        return self._app_transport
