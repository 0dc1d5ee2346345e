"""Network setup for turboloop's loop.

The per-event work of sockets -- readiness, recv, send, protocol callbacks --
is done by the C core (csrc/transport*.c).  What runs once per connection or
per call -- resolving addresses, happy eyeballs, building a server's sockets,
accepting, TLS orchestration, sendfile, the sock_* coroutines -- is asyncio's
own code for the running Python version, taken from asyncio's Unix selector
loop and run on this loop, so its behaviour (arguments, errors, timeouts) is
asyncio's exactly.  Those functions reach the loop through a small set of
private hooks, which this module provides on top of the C core:
_make_socket_transport, _add_reader/_remove_reader (C), _transports, and
_selector (read only, for transport reprs).
"""

import collections
import inspect
import selectors
import types
import weakref

from asyncio import (base_events, constants, futures, selector_events, sslproto, trsock,
                     unix_events)
from asyncio.log import logger

from . import _core, _sslproto

__all__ = ("NetworkMixin",)

# asyncio's functions this loop runs unchanged.  A name missing from the
# running version of asyncio is simply not provided.
_BORROWED = (
    # streams and servers
    "create_connection", "_connect_sock", "_create_connection_transport",
    "_ensure_resolved", "_create_server_getaddrinfo", "create_server",
    "connect_accepted_socket", "create_unix_connection", "create_unix_server",
    "_start_serving", "_accept_connection", "_accept_connection2",
    "_stop_serving", "_ensure_fd_no_transport",
    # TLS
    "start_tls",
    # datagrams and pipes
    "create_datagram_endpoint", "_make_datagram_transport",
    "connect_read_pipe", "connect_write_pipe",
    # sendfile
    "sendfile", "_sendfile_native", "_sendfile_fallback", "sock_sendfile",
    "_sock_sendfile_native", "_sock_sendfile_fallback",
    "_check_sendfile_params", "_sock_sendfile_native_impl",
    "_sock_sendfile_update_filepos", "_sock_add_cancellation_callback",
    # low-level socket operations
    "_sock_recv", "_sock_recv_into",
    "sock_recvfrom", "_sock_recvfrom", "sock_recvfrom_into",
    "_sock_recvfrom_into", "_sock_sendall", "sock_sendto",
    "_sock_sendto", "sock_connect", "_sock_connect", "_sock_connect_cb",
    "sock_accept", "_sock_accept", "_sock_read_done", "_sock_write_done",
)

# Server._attach/_detach take the transport from 3.13 on.
_Future = _core.Future
_isfuture = futures.isfuture

_DETACH_WITH_ARG = len(inspect.signature(base_events.Server._detach).parameters) > 1

_core.SocketTransport._start_tls_compatible = True
_core.SocketTransport._sendfile_compatible = constants._SendfileMode.TRY_NATIVE


def _write_type_error():
    # How write() of a non-bytes object starts its TypeError; the wording
    # changed within 3.13.
    consts = getattr(selector_events._SelectorSocketTransport.write, "__code__", None)
    for c in consts.co_consts if consts is not None else ():
        if isinstance(c, str) and c.startswith("data argument must be"):
            return c
    return "data argument must be a bytes-like object, not "


_core.SocketTransport._write_type_error = _write_type_error()


def _asyncio_writelines(items):
    """What the running asyncio's own writelines() (3.12+) does with items
    on an idle transport: (the exception it raises or None, the chunks it
    queued); None where writelines() is the base class's write() (3.11).
    Its rules changed within releases (gh-155888), so they are found out
    by running it on a stand-in transport."""
    func = selector_events._SelectorSocketTransport.__dict__.get("writelines")
    if func is None:
        return None
    fake = types.SimpleNamespace(
        _eof=False, _empty_waiter=None, _conn_lost=0, _buffer=collections.deque(),
        _buffer_size=0, _sock_fd=-1, _write_ready=lambda: None,
        _maybe_pause_protocol=lambda: None,
        _loop=types.SimpleNamespace(_add_writer=lambda *args: None))
    try:
        func(fake, items)
    except Exception as exc:  # noqa: BLE001 - the answer is the exception
        return exc, list(fake._buffer)
    return None, list(fake._buffer)


def _writelines_skips_falsy():
    # Since gh-155888 asyncio's writelines() leaves out the items that are
    # false (b"", but also None) before it makes memoryviews of the rest.
    result = _asyncio_writelines([None])
    return result is not None and result[0] is None


_core.SocketTransport._writelines_skips_falsy = _writelines_skips_falsy()


class _DatagramTransport(_core.DatagramTransport,
                         selector_events._SelectorDatagramTransport):
    """asyncio's datagram transport with its per-datagram paths in C
    (csrc/datagram.c): reading, and sendto()'s immediate send.  The C base
    keeps the attributes those paths use (_sock, _protocol, _address, ...)
    in C fields that asyncio's code reads and writes as usual."""

    # What the C sendto() hands over to for everything but an immediate send.
    _py_sendto = selector_events._SelectorDatagramTransport.sendto

    def _add_reader(self, fd, callback, *args):
        if callback == self._read_ready and not args and fd == self._sock_fd:
            # The loop calls the C reader directly, in the context asyncio
            # would run the reader callback in (3.15+: the transport's).
            if self.is_reading():
                self._watch_reader(getattr(self, "_context", None))
            return
        super()._add_reader(fd, callback, *args)


class _SelectorView:
    """Enough of a selector for asyncio's transports' reprs: which events
    an fd is watched for."""

    def __init__(self, loop):
        self._loop = weakref.ref(loop)

    def get_key(self, fileobj):
        loop = self._loop()
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        events = 0
        if loop is not None and not loop.is_closed():
            if loop._get_reader(fd) is not None:
                events |= selectors.EVENT_READ
            if loop._get_writer(fd) is not None:
                events |= selectors.EVENT_WRITE
        if not events:
            raise KeyError(f"{fileobj!r} is not registered")
        return selectors.SelectorKey(fileobj, fd, events, None)


class _SelectorLevel:
    """asyncio's selector-loop versions of the methods that its Unix loop
    overrides and reaches with super(); see _borrow()."""


class NetworkMixin(_SelectorLevel):
    """The network part of turboloop.Loop."""

    def _init_network(self):
        # fd -> transport using it, as asyncio's selector loops keep it.
        self._transports = weakref.WeakValueDictionary()
        self._unix_server_sockets = {}
        self._selector = _SelectorView(self)

    # -- fd watchers -----------------------------------------------------

    def add_reader(self, fd, callback, *args):
        """Start watching the file descriptor for read availability."""
        self._ensure_fd_no_transport(fd)
        self._add_reader(fd, callback, *args)

    def remove_reader(self, fd):
        """Stop watching the file descriptor for read availability."""
        self._ensure_fd_no_transport(fd)
        return self._remove_reader(fd)

    def add_writer(self, fd, callback, *args):
        """Start watching the file descriptor for write availability."""
        self._ensure_fd_no_transport(fd)
        self._add_writer(fd, callback, *args)

    def remove_writer(self, fd):
        """Stop watching the file descriptor for write availability."""
        self._ensure_fd_no_transport(fd)
        return self._remove_writer(fd)

    # -- low-level socket operations -------------------------------------
    # The C core makes the first attempt and returns its result, or, when
    # the socket would block, a future of create_future() that a C watcher
    # completes (csrc/sockops.c).

    async def sock_recv(self, sock, n):
        """Receive up to n bytes from the socket.

        The return value is a bytes object representing the data received.
        """
        r = self._c_sock_recv(sock, n)
        if r.__class__ is _Future or _isfuture(r):
            return await r
        return r

    async def sock_recv_into(self, sock, buf):
        """Receive data from the socket into buf.

        Returns the number of bytes received.
        """
        r = self._c_sock_recv_into(sock, buf)
        if r.__class__ is _Future or _isfuture(r):
            return await r
        return r

    async def sock_sendall(self, sock, data):
        """Send all of data to the socket.

        Returns None when everything was sent; on error the exception
        propagates and how much was sent is unknown.
        """
        r = self._c_sock_sendall(sock, data)
        if r is not None:
            await r

    # -- transports ------------------------------------------------------

    def _make_socket_transport(self, sock, protocol, waiter=None, *,
                               extra=None, server=None, context=None):
        # The socket, sockname and peername entries of the extra info are
        # made when first asked for (_transport_extra()).
        self._ensure_fd_no_transport(sock)
        transport = _core.SocketTransport(self, sock, protocol, extra, server,
                                          _DETACH_WITH_ARG, context)
        self._transports[transport._sock_fd] = transport
        base_events._set_nodelay(sock)
        self.call_soon(protocol.connection_made, transport, context=context)
        # Reading starts once connection_made() has run.
        self.call_soon(transport._start_reading, context=context)
        if waiter is not None:
            self.call_soon(futures._set_result_unless_cancelled, waiter, None,
                           context=context)
        return transport

    def _make_ssl_transport(self, rawsock, protocol, sslcontext, waiter=None,
                            *, server_side=False, server_hostname=None,
                            extra=None, server=None,
                            ssl_handshake_timeout=constants.SSL_HANDSHAKE_TIMEOUT,
                            ssl_shutdown_timeout=constants.SSL_SHUTDOWN_TIMEOUT,
                            context=None):
        # asyncio's TLS protocol with its record work in C (_sslproto), over
        # the C socket transport.
        ssl_protocol = _sslproto.SSLProtocol(
            self, protocol, sslcontext, waiter, server_side, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout)
        self._make_socket_transport(rawsock, ssl_protocol, extra=extra,
                                    server=server, context=context)
        return ssl_protocol._app_transport

    # Called by the C transports.

    def _transport_extra(self, sock, extra, *peername):
        # The extra info asyncio's _SelectorTransport makes when it is
        # created; SocketTransport asks for it when it is first needed.
        info = {"peername": peername[0]} if peername else {} if extra is None else extra
        info["socket"] = trsock.TransportSocket(sock)
        try:
            info["sockname"] = sock.getsockname()
        except OSError:
            info["sockname"] = None
        if "peername" not in info:
            try:
                info["peername"] = sock.getpeername()
            except OSError:
                info["peername"] = None
        return info

    def _transport_error(self, transport, exc, message):
        if isinstance(exc, OSError):
            if self.get_debug():
                logger.debug("%r: %s", transport, message, exc_info=exc)
        else:
            self.call_exception_handler({
                "message": message,
                "exception": exc,
                "transport": transport,
                "protocol": transport.get_protocol(),
            })

    def _transport_debug(self, transport, what):
        logger.debug("%r %s", transport, what)

    def _transport_lost_write(self):
        logger.warning("socket.send() raised exception.")


def _copy_function(func, *, globals=None, closure=None):
    """A copy of func with other globals or another closure."""
    new = types.FunctionType(func.__code__,
                             func.__globals__ if globals is None else globals,
                             func.__name__, func.__defaults__,
                             func.__closure__ if closure is None else closure)
    new.__kwdefaults__ = func.__kwdefaults__
    new.__qualname__ = func.__qualname__
    new.__doc__ = func.__doc__
    new.__dict__.update(func.__dict__)
    return new


def _rebind_super(func, cls):
    """func with its zero-argument super() resolving past cls.

    A method that calls super() finds its class in a __class__ cell; taken
    out of asyncio's loop class it must be told which class it now sits in,
    or super() raises TypeError on this loop."""
    code = func.__code__
    if "__class__" not in code.co_freevars:
        return func
    return _copy_function(func, closure=tuple(
        types.CellType(cls) if name == "__class__" else cell
        for name, cell in zip(code.co_freevars, func.__closure__)))


def _borrow():
    mro = unix_events._UnixSelectorEventLoop.__mro__
    for name in _BORROWED:
        if name in NetworkMixin.__dict__:
            continue
        owners = [klass for klass in mro if name in klass.__dict__]
        if not owners:
            continue
        func = owners[0].__dict__[name]
        if "__class__" in getattr(getattr(func, "__code__", None),
                                  "co_freevars", ()):
            # super().name(...) reaches the next definition in asyncio's
            # class hierarchy, which goes one level down.
            if len(owners) < 2:
                raise RuntimeError(f"cannot take asyncio's {name}()")
            setattr(_SelectorLevel, name,
                    _rebind_super(owners[1].__dict__[name], _SelectorLevel))
            func = _rebind_super(func, NetworkMixin)
        setattr(NetworkMixin, name, func)


_borrow()


def _use_datagram_transport():
    # asyncio's _make_datagram_transport for the running version, making
    # the subclass above instead of _SelectorDatagramTransport.
    func = NetworkMixin._make_datagram_transport
    NetworkMixin._make_datagram_transport = _copy_function(func, globals=dict(
        func.__globals__, _SelectorDatagramTransport=_DatagramTransport))


_use_datagram_transport()


def _use_ssl_protocol():
    # asyncio's start_tls for the running version, making turboloop's
    # SSLProtocol (the only name it uses from asyncio.sslproto).
    func = NetworkMixin.start_tls
    ours = types.ModuleType(sslproto.__name__)
    ours.__dict__.update(sslproto.__dict__)
    ours.SSLProtocol = _sslproto.SSLProtocol
    NetworkMixin.start_tls = _copy_function(func, globals=dict(
        func.__globals__, sslproto=ours))


_use_ssl_protocol()
