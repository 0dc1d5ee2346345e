"""Echo and HTTP servers run by the benchmark, one per process.

Each server listens on the loopback address (port chosen by the kernel) or on
a Unix socket path, prints ``READY <port-or-path>`` on stdout once it accepts
connections, and serves until its standard input reaches end-of-file or it is
killed.  A loop that lacks what a server mode needs (NotImplementedError or
AttributeError while setting up) makes the server print ``UNSUPPORTED
<reason>`` and exit with status 3, which the runner reports as n/a.
"""

import asyncio
import os
import socket
import sys

MODES = ("protocol", "buffered", "streams", "sockets")
# Receive size for the streams and sockets servers.  64 KiB is what most
# applications pass; much larger sizes make every recv() allocate (and then
# shrink) a large bytes object, which would measure the allocator instead.
READ_SIZE = 64 * 1024
# The buffered protocol allocates its buffer once, so it can afford to take a
# whole 100 KiB message in one read.
BUFFER_SIZE = 256 * 1024

UNSUPPORTED_EXIT = 3


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class EchoBufferedProtocol(asyncio.BufferedProtocol):
    def connection_made(self, transport):
        self.transport = transport
        self._new_buffer()

    def _new_buffer(self):
        self.view = memoryview(bytearray(BUFFER_SIZE))

    def get_buffer(self, sizehint):
        return self.view

    def buffer_updated(self, nbytes):
        self.transport.write(self.view[:nbytes])
        # A transport may keep a reference to data it could not send at once
        # instead of copying it; reading into the same memory again would then
        # corrupt the echo, so take a fresh buffer in that (rare) case.
        if self.transport.get_write_buffer_size():
            self._new_buffer()


async def _echo_stream(reader, writer):
    try:
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _echo_socket(loop, conn):
    try:
        while True:
            data = await loop.sock_recv(conn, READ_SIZE)
            if not data:
                break
            await loop.sock_sendall(conn, data)
    except ConnectionError:
        pass
    finally:
        conn.close()


async def _accept_sockets(loop, listener, tasks):
    while True:
        conn, _ = await loop.sock_accept(listener)
        conn.setblocking(False)
        if conn.family == socket.AF_INET:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = loop.create_task(_echo_socket(loop, conn))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


def _listening_socket(transport, path):
    if transport == "tcp":
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
    else:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
    sock.listen(1024)
    sock.setblocking(False)
    return sock


async def _wait_for_stdin_eof(loop):
    # Exiting when the runner closes our stdin means a runner that dies never
    # leaves a server behind.  The wait happens in a thread rather than
    # through add_reader so that it does not depend on how a loop handles
    # pipes; the thread costs nothing while it is blocked in read().
    try:
        await loop.run_in_executor(None, sys.stdin.buffer.read)
    except NotImplementedError:
        await loop.create_future()


def _unsupported(step, exc):
    detail = f": {exc}" if str(exc) else ""
    print(f"UNSUPPORTED {step}: {type(exc).__name__}{detail}", flush=True)
    os._exit(UNSUPPORTED_EXIT)


def _ready(what):
    print(f"READY {what}", flush=True)


async def serve_echo(mode, transport, path):
    loop = asyncio.get_running_loop()
    # The listening socket is made here for every mode, so all loops get the
    # same socket options and backlog.
    listener = _listening_socket(transport, path)
    where = listener.getsockname()[1] if transport == "tcp" else path
    step = "loop.create_server"
    try:
        if mode == "protocol":
            server = await loop.create_server(EchoProtocol, sock=listener, backlog=1024)
        elif mode == "buffered":
            server = await loop.create_server(EchoBufferedProtocol, sock=listener,
                                              backlog=1024)
        elif mode == "streams" and transport == "tcp":
            step = "asyncio.start_server"
            server = await asyncio.start_server(_echo_stream, sock=listener, backlog=1024)
        elif mode == "streams":
            step = "asyncio.start_unix_server"
            server = await asyncio.start_unix_server(_echo_stream, sock=listener,
                                                     backlog=1024)
        elif mode == "sockets":
            step = "loop.sock_accept"
            tasks = set()
            server = loop.create_task(_accept_sockets(loop, listener, tasks))
            # Let the accept task reach sock_accept, so a loop without it
            # fails here rather than after READY.
            await asyncio.sleep(0)
            if server.done():
                server.result()
        else:
            raise ValueError(f"unknown mode {mode!r}")
    except (NotImplementedError, AttributeError) as exc:
        _unsupported(step, exc)
    _ready(where)
    try:
        await _wait_for_stdin_eof(loop)
    finally:
        if isinstance(server, asyncio.Future):
            server.cancel()
        else:
            server.close()


HTTP_RESPONSE = (b"HTTP/1.1 200 OK\r\n"
                 b"Content-Type: text/plain; charset=utf-8\r\n"
                 b"Content-Length: 13\r\n"
                 b"\r\n"
                 b"Hello, World!")


async def _http_connection(reader, writer):
    # A minimal HTTP/1.1 keep-alive server over streams, the shape of what
    # streams-based servers do per request: read the head up to the blank
    # line, look at the request line, write the response, drain.
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            method, _, _ = head.partition(b" ")
            if method != b"GET":
                break
            writer.write(HTTP_RESPONSE)
            await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    except asyncio.CancelledError:
        # The server is going away: no need for asyncio.start_server's
        # callback to log the cancellation (3.11 does).
        pass
    finally:
        writer.close()


async def serve_streams_http():
    loop = asyncio.get_running_loop()
    listener = _listening_socket("tcp", None)
    try:
        server = await asyncio.start_server(_http_connection, sock=listener, backlog=1024)
    except (NotImplementedError, AttributeError) as exc:
        _unsupported("asyncio.start_server", exc)
    _ready(listener.getsockname()[1])
    try:
        await _wait_for_stdin_eof(loop)
    finally:
        server.close()


class IdleProtocol(asyncio.Protocol):
    count = 0

    def connection_made(self, transport):
        self.transport = transport
        IdleProtocol.count += 1

    def connection_lost(self, exc):
        IdleProtocol.count -= 1


def _rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


async def serve_idle(mode):
    """A server whose connections stay idle, for RSS per connection.  It
    answers each line on stdin ("rss") with "RSS <bytes> CONNS <n>" once
    the connections it has accepted have all been set up."""
    loop = asyncio.get_running_loop()
    listener = _listening_socket("tcp", None)
    active = set()

    async def handler(reader, writer):
        # A streams connection as servers keep it between requests: the
        # handler task waiting in a read.
        IdleProtocol.count += 1
        active.add(writer)
        try:
            await reader.read(1)
        except asyncio.CancelledError:
            pass    # the server is going away (3.11 would log it)
        finally:
            IdleProtocol.count -= 1
            active.discard(writer)
            writer.close()

    try:
        if mode == "protocol":
            server = await loop.create_server(IdleProtocol, sock=listener, backlog=4096)
        else:
            server = await asyncio.start_server(handler, sock=listener, backlog=4096)
    except (NotImplementedError, AttributeError) as exc:
        _unsupported("create_server", exc)
    _ready(listener.getsockname()[1])
    import gc
    import threading
    lines = asyncio.Queue()

    def read_stdin():
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line.strip())
        loop.call_soon_threadsafe(lines.put_nowait, None)

    threading.Thread(target=read_stdin, daemon=True).start()
    try:
        while (cmd := await lines.get()) is not None:
            # Let pending accepts and connection_made() calls run.
            for _ in range(20):
                await asyncio.sleep(0)
            gc.collect()
            print(f"RSS {_rss_bytes()} CONNS {IdleProtocol.count}", flush=True)
    finally:
        server.close()


async def serve_http():
    try:
        from aiohttp import web
    except ImportError as exc:
        _unsupported("import aiohttp", exc)

    async def hello(request):
        return web.Response(text="Hello, World!")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    listener = _listening_socket("tcp", None)
    try:
        site = web.SockSite(runner, listener, backlog=1024)
        await site.start()
    except (NotImplementedError, AttributeError) as exc:
        _unsupported("aiohttp SockSite.start", exc)
    _ready(listener.getsockname()[1])
    await _wait_for_stdin_eof(asyncio.get_running_loop())
