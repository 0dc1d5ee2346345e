"""create_server and create_unix_server, and the Server object: several
hosts, sock=, reuse_port/reuse_address, start_serving=False and
start_serving(), serve_forever() and its cancellation, is_serving, sockets,
get_loop, async with, closing with live connections and wait_closed() as each
Python version defines it, close_clients/abort_clients and keep_alive
(3.13+), and the Unix socket file's cleanup."""

import asyncio
import contextlib
import errno
import os
import socket

import pytest
from support import PY


def has_ipv6():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class ServerProto(asyncio.Protocol):
    """Echoes, records its transport, and reports connection_lost."""

    def __init__(self, loop, conns):
        self.loop = loop
        self.lost = loop.create_future()
        conns.append(self)

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def connection_lost(self, exc):
        self.lost.set_result(exc)


class Conns(list):
    """The server protocols made so far; wait() for the nth."""

    def __init__(self, loop):
        super().__init__()
        self.loop = loop

    def factory(self):
        return ServerProto(self.loop, self)

    async def wait(self, n):
        while len(self) < n:
            await asyncio.sleep(0)
        return self[n - 1]


async def client(addr, family=socket.AF_INET):
    """A connected echo client: (reader, writer)."""
    if family == socket.AF_UNIX:
        return await asyncio.open_unix_connection(addr)
    return await asyncio.open_connection(*addr[:2])


async def roundtrip(reader, writer, msg=b"ping"):
    writer.write(msg)
    return await reader.readexactly(len(msg))


async def close_writer(writer):
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def can_connect(addr):
    try:
        r, w = await asyncio.open_connection(*addr[:2])
    except ConnectionRefusedError:
        return False
    await close_writer(w)
    return True


# -- creating --------------------------------------------------------------------------


def test_create_server_basics(loop):
    async def main():
        conns = Conns(loop)
        server = await loop.create_server(conns.factory, "127.0.0.1", 0)
        assert server.get_loop() is loop
        assert server.is_serving()
        socks = server.sockets
        assert len(socks) == 1
        assert isinstance(socks[0], asyncio.trsock.TransportSocket)
        addr = socks[0].getsockname()
        assert addr[0] == "127.0.0.1" and addr[1] > 0
        # SO_REUSEADDR is on by default on Unix.
        assert socks[0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) != 0
        assert "sockets=" in repr(server)
        reader, writer = await client(addr)
        assert await roundtrip(reader, writer) == b"ping"
        proto = await conns.wait(1)
        assert proto.transport.get_extra_info("sockname") == addr
        assert proto.transport.get_extra_info("peername") == writer.get_extra_info("sockname")
        await close_writer(writer)
        assert await proto.lost is None
        server.close()
        assert not server.is_serving()
        assert server.sockets == () or server.sockets == []
        await server.wait_closed()
        return addr

    addr = loop.run_until_complete(main())
    # The listening socket is gone.
    with socket.socket() as s:
        assert s.connect_ex(addr) == errno.ECONNREFUSED
    loop.close()


@pytest.mark.skipif(not has_ipv6(), reason="no IPv6 loopback")
def test_create_server_multiple_hosts(loop):
    async def main():
        conns = Conns(loop)
        server = await loop.create_server(conns.factory, ["127.0.0.1", "::1"], 0)
        families = sorted(s.family for s in server.sockets)
        assert families == sorted([socket.AF_INET, socket.AF_INET6])
        for s in server.sockets:
            addr = s.getsockname()
            reader, writer = await asyncio.open_connection(addr[0], addr[1])
            assert await roundtrip(reader, writer, str(addr).encode()) == str(addr).encode()
            await close_writer(writer)
        v6 = [s for s in server.sockets if s.family == socket.AF_INET6][0]
        # IPv6 sockets of a multi-host server are IPv6 only.
        assert v6.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        server.close()
        await server.wait_closed()
        return len(conns)

    assert loop.run_until_complete(main()) == 2
    loop.close()


def test_create_server_with_sock(loop, closing):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    addr = sock.getsockname()

    async def main():
        conns = Conns(loop)
        server = await loop.create_server(conns.factory, sock=sock)
        assert sock.gettimeout() == 0
        assert server.sockets[0].getsockname() == addr
        reader, writer = await client(addr)
        assert await roundtrip(reader, writer) == b"ping"
        await close_writer(writer)
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())
    assert sock.fileno() == -1  # the server closed it
    loop.close()


def test_create_server_reuse_port(loop):
    if not hasattr(socket, "SO_REUSEPORT"):
        pytest.skip("no SO_REUSEPORT")

    async def main():
        conns = Conns(loop)
        first = await loop.create_server(conns.factory, "127.0.0.1", 0, reuse_port=True)
        port = first.sockets[0].getsockname()[1]
        assert first.sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) != 0
        second = await loop.create_server(conns.factory, "127.0.0.1", port, reuse_port=True)
        assert second.sockets[0].getsockname()[1] == port
        for s in (first, second):
            s.close()
            await s.wait_closed()

    loop.run_until_complete(main())
    loop.close()


def test_create_server_address_in_use(loop, closing):
    taken = closing(socket.socket())
    taken.bind(("127.0.0.1", 0))
    taken.listen()

    async def main():
        with pytest.raises(OSError) as info:
            await loop.create_server(asyncio.Protocol, "127.0.0.1", taken.getsockname()[1])
        assert info.value.errno == errno.EADDRINUSE

    loop.run_until_complete(main())
    loop.close()


def test_create_server_argument_errors(loop, closing):
    sock = closing(socket.socket())
    udp = closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))

    async def main():
        with pytest.raises(ValueError, match="host/port and sock can not be specified at the same time"):
            await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, sock=sock)
        with pytest.raises(ValueError, match="Neither host/port nor sock were specified"):
            await loop.create_server(asyncio.Protocol)
        with pytest.raises(ValueError, match="ssl_handshake_timeout is only meaningful with ssl"):
            await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, ssl_handshake_timeout=1)
        with pytest.raises(ValueError, match="A Stream Socket was expected"):
            await loop.create_server(asyncio.Protocol, sock=udp)
        with pytest.raises(TypeError):
            await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, ssl=True)

    loop.run_until_complete(main())
    loop.close()


def test_many_connections_at_once(loop):
    async def main():
        conns = Conns(loop)
        server = await loop.create_server(conns.factory, "127.0.0.1", 0, backlog=200)
        addr = server.sockets[0].getsockname()
        # Connect them all before the loop gets to accept any.
        socks = []
        try:
            for _ in range(150):
                s = socket.socket()
                socks.append(s)
                s.connect(addr)
            await conns.wait(150)
            for s in socks:
                s.setblocking(False)
                s.send(b"x")
            for s in socks:
                assert await loop.sock_recv(s, 1) == b"x"
        finally:
            for s in socks:
                s.close()
        await asyncio.gather(*(p.lost for p in conns))
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())
    loop.close()


# -- serving -------------------------------------------------------------------------------


def test_start_serving_false(loop):
    async def main():
        conns = Conns(loop)
        server = await loop.create_server(conns.factory, "127.0.0.1", 0, start_serving=False)
        assert not server.is_serving()
        addr = server.sockets[0].getsockname()
        # Not listening yet: connecting is refused.
        assert not await can_connect(addr)
        await server.start_serving()
        assert server.is_serving()
        await server.start_serving()  # idempotent
        reader, writer = await client(addr)
        assert await roundtrip(reader, writer) == b"ping"
        await close_writer(writer)
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())
    loop.close()


def test_serve_forever_cancelled_closes_server(loop):
    async def main():
        conns = Conns(loop)
        server = await loop.create_server(conns.factory, "127.0.0.1", 0, start_serving=False)
        addr = server.sockets[0].getsockname()
        task = asyncio.ensure_future(server.serve_forever())
        await asyncio.sleep(0)
        assert server.is_serving()
        with pytest.raises(RuntimeError, match="already being awaited"):
            await server.serve_forever()
        reader, writer = await client(addr)
        assert await roundtrip(reader, writer) == b"ping"
        await close_writer(writer)
        await conns[0].lost
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not server.is_serving()
        assert not server.sockets
        assert not await can_connect(addr)
        with pytest.raises(RuntimeError, match="is closed"):
            await server.serve_forever()

    loop.run_until_complete(main())
    loop.close()


def test_serve_forever_ends_when_server_closed(loop):
    async def main():
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        task = asyncio.ensure_future(server.serve_forever())
        await asyncio.sleep(0)
        server.close()
        # close() cancels serve_forever().
        with pytest.raises(asyncio.CancelledError):
            await task
        await server.wait_closed()

    loop.run_until_complete(main())
    loop.close()


def test_async_with_closes_server(loop):
    async def main():
        async with await loop.create_server(asyncio.Protocol, "127.0.0.1", 0) as server:
            assert server.is_serving()
            addr = server.sockets[0].getsockname()
            assert await can_connect(addr)
        assert not server.is_serving()
        assert not await can_connect(addr)

    loop.run_until_complete(main())
    loop.close()


def test_close_keeps_live_connections(loop):
    async def main():
        conns = Conns(loop)
        server = await loop.create_server(conns.factory, "127.0.0.1", 0)
        addr = server.sockets[0].getsockname()
        reader, writer = await client(addr)
        assert await roundtrip(reader, writer, b"before") == b"before"
        server.close()
        assert not server.is_serving()
        # New connections are refused ...
        assert not await can_connect(addr)
        # ... the existing one keeps working.
        assert await roundtrip(reader, writer, b"after close") == b"after close"
        wait = asyncio.ensure_future(server.wait_closed())
        for _ in range(5):
            await asyncio.sleep(0)
        if PY >= (3, 12):
            # wait_closed() waits for the connections to go.
            assert not wait.done()
        else:
            # 3.11 and earlier: it returns at once once the server is closed.
            assert wait.done()
        await close_writer(writer)
        await conns[0].lost
        await wait
        assert conns[0].transport.is_closing()

    loop.run_until_complete(main())
    loop.close()


@pytest.mark.skipif(PY < (3, 12, 1), reason="wait_closed() semantics fixed in 3.12.1")
def test_wait_closed_before_close_waits_for_close(loop):
    async def main():
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        wait = asyncio.ensure_future(server.wait_closed())
        for _ in range(5):
            await asyncio.sleep(0)
        assert not wait.done()
        server.close()
        await wait

    loop.run_until_complete(main())
    loop.close()


def test_server_side_transport_close_detaches(loop):
    async def main():
        conns = Conns(loop)
        server = await loop.create_server(conns.factory, "127.0.0.1", 0)
        reader, writer = await client(server.sockets[0].getsockname())
        proto = await conns.wait(1)
        await asyncio.sleep(0)
        server.close()
        wait = asyncio.ensure_future(server.wait_closed())
        # The server side closes its end: the client sees EOF, and the server
        # has no connection left.
        proto.transport.close()
        assert await reader.read() == b""
        await proto.lost
        await wait
        await close_writer(writer)

    loop.run_until_complete(main())
    loop.close()


@pytest.mark.skipif(PY < (3, 13), reason="close_clients/abort_clients are new in 3.13")
@pytest.mark.parametrize("how", ["close_clients", "abort_clients"])
def test_close_and_abort_clients(loop, how):
    async def main():
        conns = Conns(loop)
        server = await loop.create_server(conns.factory, "127.0.0.1", 0)
        addr = server.sockets[0].getsockname()
        clients = [await client(addr) for _ in range(3)]
        for r, w in clients:
            assert await roundtrip(r, w) == b"ping"
        server.close()
        getattr(server, how)()
        for p in conns:
            assert p.transport.is_closing()
        results = await asyncio.gather(*(p.lost for p in conns))
        assert results == [None, None, None]
        await server.wait_closed()
        for r, w in clients:
            if how == "close_clients":
                assert await r.read() == b""
            else:
                with contextlib.suppress(ConnectionResetError):
                    assert await r.read() == b""
            await close_writer(w)

    loop.run_until_complete(main())
    loop.close()


@pytest.mark.skipif(PY < (3, 13), reason="keep_alive is new in 3.13")
def test_keep_alive(loop):
    async def main():
        conns = Conns(loop)
        server = await loop.create_server(conns.factory, "127.0.0.1", 0, keep_alive=True)
        plain = await loop.create_server(conns.factory, "127.0.0.1", 0)
        assert server.sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
        assert plain.sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
        reader, writer = await client(server.sockets[0].getsockname())
        proto = await conns.wait(1)
        sock = proto.transport.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
        await close_writer(writer)
        await proto.lost
        for s in (server, plain):
            s.close()
            await s.wait_closed()

    loop.run_until_complete(main())
    loop.close()


# -- Unix servers ----------------------------------------------------------------------


def test_create_unix_server(loop, sock_path):
    async def main():
        conns = Conns(loop)
        server = await loop.create_unix_server(conns.factory, sock_path)
        assert server.sockets[0].family == socket.AF_UNIX
        assert server.sockets[0].getsockname() == sock_path
        reader, writer = await client(sock_path, socket.AF_UNIX)
        assert await roundtrip(reader, writer) == b"ping"
        proto = await conns.wait(1)
        assert proto.transport.get_extra_info("sockname") == sock_path
        await close_writer(writer)
        await proto.lost
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())
    if PY >= (3, 13):
        assert not os.path.exists(sock_path)
    else:
        assert os.path.exists(sock_path)
    loop.close()


@pytest.mark.skipif(PY < (3, 13), reason="cleanup_socket is new in 3.13")
def test_create_unix_server_cleanup_socket_false(loop, sock_path):
    async def main():
        server = await loop.create_unix_server(asyncio.Protocol, sock_path, cleanup_socket=False)
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())
    assert os.path.exists(sock_path)
    loop.close()


@pytest.mark.skipif(PY < (3, 13), reason="cleanup is new in 3.13")
def test_create_unix_server_cleanup_leaves_replaced_file(loop, sock_path):
    async def main():
        server = await loop.create_unix_server(asyncio.Protocol, sock_path)
        os.unlink(sock_path)
        with open(sock_path, "w") as f:
            f.write("someone else's")
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())
    # Not the server's socket any more: left alone.
    with open(sock_path) as f:
        assert f.read() == "someone else's"
    loop.close()


def test_create_unix_server_with_sock(loop, sock_path):
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(sock_path)

    async def main():
        server = await loop.create_unix_server(asyncio.Protocol, sock=sock)
        assert server.sockets[0].getsockname() == sock_path
        reader, writer = await client(sock_path, socket.AF_UNIX)
        await close_writer(writer)
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())
    loop.close()


def test_create_unix_server_argument_errors(loop, sock_path, closing):
    tcp = closing(socket.socket())

    async def main():
        with pytest.raises(ValueError):
            await loop.create_unix_server(asyncio.Protocol, sock_path, sock=tcp)
        with pytest.raises(ValueError):
            await loop.create_unix_server(asyncio.Protocol)
        with pytest.raises(ValueError):
            await loop.create_unix_server(asyncio.Protocol, sock=tcp)
        with pytest.raises(ValueError):
            await loop.create_unix_server(asyncio.Protocol, sock_path, ssl_handshake_timeout=1)

    loop.run_until_complete(main())
    loop.close()


def test_loop_close_with_serving_server(kind):
    # Closing the loop under a serving server: the listening socket is not
    # leaked once the server is closed afterwards (the fixture checks fds).
    loop = kind.new_loop()

    async def main():
        return await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)

    server = loop.run_until_complete(main())
    server.close()
    loop.run_until_complete(server.wait_closed())
    loop.close()
