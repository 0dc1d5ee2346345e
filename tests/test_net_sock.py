"""The loop's low-level socket coroutines: sock_recv, sock_recv_into,
sock_recvfrom, sock_recvfrom_into, sock_sendall, sock_sendto, sock_connect,
sock_accept and sock_sendfile, their errors, and what cancelling a pending
one leaves behind."""

import asyncio
import contextlib
import io
import os
import socket
import struct
import sys

import pytest

# The multiplexer matters here: run on turboloop's poll(2) backend as well.
ALSO_POLL_BACKEND = True

PAYLOAD = bytes(range(256)) * 64 * 1024  # 16 MiB: more than any socket buffer


def nb(sock):
    sock.setblocking(False)
    return sock


def socketpair(closing, family=socket.AF_UNIX):
    a, b = socket.socketpair(family)
    return nb(closing(a)), nb(closing(b))


def tcp_pair(closing):
    """A connected pair of non-blocking TCP sockets."""
    with socket.create_server(("127.0.0.1", 0)) as srv:
        a = closing(socket.create_connection(srv.getsockname()))
        b = closing(srv.accept()[0])
    return nb(a), nb(b)


def tcp_listener(closing, backlog=8):
    srv = closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    srv.bind(("127.0.0.1", 0))
    srv.listen(backlog)
    srv.setblocking(False)
    return srv


def udp_pair(closing):
    a = nb(closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)))
    b = nb(closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)))
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))
    return a, b


def closed_port():
    """A localhost TCP port with nothing listening on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def recv_exactly(loop, sock, n):
    chunks = []
    got = 0
    while got < n:
        data = await loop.sock_recv(sock, min(n - got, 1 << 20))
        if not data:
            break
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


# -- receiving -----------------------------------------------------------


def test_sock_recv_waits_for_data(loop, closing):
    a, b = socketpair(closing)

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 100))
        await asyncio.sleep(0)
        assert not task.done()
        b.send(b"hello")
        return await task

    assert loop.run_until_complete(main()) == b"hello"
    loop.close()


def test_sock_recv_returns_data_already_there(loop, closing):
    a, b = socketpair(closing)
    b.send(b"ready")
    assert loop.run_until_complete(loop.sock_recv(a, 3)) == b"rea"
    assert loop.run_until_complete(loop.sock_recv(a, 100)) == b"dy"
    loop.close()


def test_sock_recv_eof_gives_empty_bytes(loop, closing):
    a, b = socketpair(closing)

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 100))
        await asyncio.sleep(0)
        b.shutdown(socket.SHUT_WR)
        return await task

    assert loop.run_until_complete(main()) == b""
    loop.close()


def test_sock_recv_into(loop, closing):
    a, b = socketpair(closing)
    buf = bytearray(10)

    async def main():
        task = asyncio.ensure_future(loop.sock_recv_into(a, buf))
        await asyncio.sleep(0)
        assert not task.done()
        b.send(b"abcdef")
        n1 = await task
        b.send(b"0123456789XYZ")
        n2 = await loop.sock_recv_into(a, memoryview(buf)[2:])
        return n1, n2

    n1, n2 = loop.run_until_complete(main())
    assert n1 == 6
    assert n2 == 8
    assert bytes(buf) == b"ab01234567"
    rest = loop.run_until_complete(loop.sock_recv(a, 100))
    assert rest == b"89XYZ"
    loop.close()


def test_sock_recv_error_is_raised(loop, closing):
    a, b = tcp_pair(closing)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 100))
        await asyncio.sleep(0)
        b.close()  # RST
        return await task

    with pytest.raises(ConnectionResetError):
        loop.run_until_complete(main())
    loop.close()


def test_sock_recvfrom(loop, closing):
    a, b = udp_pair(closing)

    async def main():
        task = asyncio.ensure_future(loop.sock_recvfrom(a, 100))
        await asyncio.sleep(0)
        assert not task.done()
        await loop.sock_sendto(b, b"datagram", a.getsockname())
        return await task

    data, addr = loop.run_until_complete(main())
    assert data == b"datagram"
    assert addr == b.getsockname()
    loop.close()


def test_sock_recvfrom_truncates_to_bufsize(loop, closing):
    a, b = udp_pair(closing)
    b.sendto(b"0123456789", a.getsockname())
    data, addr = loop.run_until_complete(loop.sock_recvfrom(a, 4))
    assert data == b"0123"
    assert addr == b.getsockname()
    loop.close()


def test_sock_recvfrom_into(loop, closing):
    a, b = udp_pair(closing)
    buf = bytearray(16)

    async def main():
        task = asyncio.ensure_future(loop.sock_recvfrom_into(a, buf))
        await asyncio.sleep(0)
        assert not task.done()
        b.sendto(b"first", a.getsockname())
        first = await task
        b.sendto(b"second-datagram", a.getsockname())
        second = await loop.sock_recvfrom_into(a, memoryview(buf)[8:], 3)
        return first, second

    first, second = loop.run_until_complete(main())
    assert first == (5, b.getsockname())
    assert second == (3, b.getsockname())
    assert bytes(buf[:5]) == b"first"
    assert bytes(buf[8:11]) == b"sec"
    loop.close()


def test_sock_sendto_returns_byte_count(loop, closing):
    a, b = udp_pair(closing)
    n = loop.run_until_complete(loop.sock_sendto(b, b"x" * 1000, a.getsockname()))
    assert n == 1000
    assert a.recvfrom(2000) == (b"x" * 1000, b.getsockname())
    loop.close()


def test_sock_sendto_error(loop, closing):
    a, _ = udp_pair(closing)
    with pytest.raises(OSError):
        # A datagram larger than any UDP datagram can be.
        loop.run_until_complete(loop.sock_sendto(a, b"x" * 70000, ("127.0.0.1", 9)))
    loop.close()


# -- sending -------------------------------------------------------------


def test_sock_sendall_large_payload_blocks_until_read(loop, closing):
    a, b = socketpair(closing)

    async def main():
        send = asyncio.ensure_future(loop.sock_sendall(a, PAYLOAD))
        for _ in range(5):
            await asyncio.sleep(0)
        # Nobody has read anything: the payload cannot all be in the kernel.
        assert not send.done()
        received = await recv_exactly(loop, b, len(PAYLOAD))
        assert await send is None
        return received

    received = loop.run_until_complete(main())
    assert len(received) == len(PAYLOAD)
    assert received == PAYLOAD
    loop.close()


def test_sock_sendall_accepts_bytearray_and_memoryview(loop, closing):
    a, b = socketpair(closing)

    async def main():
        await loop.sock_sendall(a, bytearray(b"ab"))
        await loop.sock_sendall(a, memoryview(b"xxcdxx")[2:4])
        await loop.sock_sendall(a, b"")
        a.shutdown(socket.SHUT_WR)
        return await recv_exactly(loop, b, 100)

    assert loop.run_until_complete(main()) == b"abcd"
    loop.close()


def test_sock_sendall_to_closed_peer_raises(loop, closing):
    a, b = socketpair(closing)
    b.close()
    with pytest.raises((BrokenPipeError, ConnectionResetError)):
        loop.run_until_complete(loop.sock_sendall(a, b"data"))
    loop.close()


def test_sock_sendall_peer_closes_while_blocked(loop, closing):
    a, b = socketpair(closing)

    async def main():
        send = asyncio.ensure_future(loop.sock_sendall(a, PAYLOAD))
        await asyncio.sleep(0)
        assert not send.done()
        await loop.sock_recv(b, 1000)
        b.close()
        await send

    with pytest.raises((BrokenPipeError, ConnectionResetError)):
        loop.run_until_complete(main())
    assert loop.remove_writer(a) is False
    loop.close()


# -- connecting and accepting ----------------------------------------------


def test_sock_connect_and_accept(loop, closing):
    srv = tcp_listener(closing)
    client = nb(closing(socket.socket()))

    async def main():
        accept = asyncio.ensure_future(loop.sock_accept(srv))
        await asyncio.sleep(0)
        assert not accept.done()
        assert await loop.sock_connect(client, srv.getsockname()) is None
        conn, addr = await accept
        closing(conn)
        assert conn.gettimeout() == 0  # accepted sockets are non-blocking
        assert addr == client.getsockname()
        await loop.sock_sendall(client, b"ping")
        assert await loop.sock_recv(conn, 10) == b"ping"
        await loop.sock_sendall(conn, b"pong")
        assert await loop.sock_recv(client, 10) == b"pong"

    loop.run_until_complete(main())
    loop.close()


def test_sock_connect_resolves_host_name(loop, closing):
    srv = tcp_listener(closing)
    client = nb(closing(socket.socket()))

    async def main():
        await loop.sock_connect(client, ("localhost", srv.getsockname()[1]))
        conn, _ = await loop.sock_accept(srv)
        closing(conn)
        return client.getpeername()

    assert loop.run_until_complete(main()) == srv.getsockname()
    loop.close()


def test_sock_connect_refused(loop, closing):
    client = nb(closing(socket.socket()))
    with pytest.raises(ConnectionRefusedError):
        loop.run_until_complete(loop.sock_connect(client, ("127.0.0.1", closed_port())))
    assert loop.remove_writer(client) is False
    loop.close()


def test_sock_connect_unix_missing_path(loop, closing, tmp_path):
    client = nb(closing(socket.socket(socket.AF_UNIX)))
    with pytest.raises(FileNotFoundError):
        loop.run_until_complete(loop.sock_connect(client, str(tmp_path / "nothing")))
    loop.close()


def test_sock_connect_and_accept_unix(loop, closing, tmp_path):
    path = str(tmp_path / "sock")
    srv = nb(closing(socket.socket(socket.AF_UNIX)))
    srv.bind(path)
    srv.listen()
    client = nb(closing(socket.socket(socket.AF_UNIX)))

    async def main():
        accept = asyncio.ensure_future(loop.sock_accept(srv))
        await loop.sock_connect(client, path)
        conn, _ = await accept
        closing(conn)
        await loop.sock_sendall(conn, b"over unix")
        conn.shutdown(socket.SHUT_WR)
        return await recv_exactly(loop, client, 100)

    assert loop.run_until_complete(main()) == b"over unix"
    loop.close()


# -- blocking sockets are refused in debug mode ------------------------------


@pytest.mark.parametrize("op", [
    "sock_recv", "sock_recv_into", "sock_recvfrom", "sock_recvfrom_into",
    "sock_sendall", "sock_sendto", "sock_connect", "sock_accept",
])
def test_blocking_socket_raises_value_error_in_debug(loop, closing, op):
    loop.set_debug(True)
    sock = closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    assert sock.gettimeout() is None
    args = {
        "sock_recv": (sock, 10),
        "sock_recv_into": (sock, bytearray(10)),
        "sock_recvfrom": (sock, 10),
        "sock_recvfrom_into": (sock, bytearray(10)),
        "sock_sendall": (sock, b"x"),
        "sock_sendto": (sock, b"x", ("127.0.0.1", 9)),
        "sock_connect": (sock, ("127.0.0.1", 9)),
        "sock_accept": (sock,),
    }[op]
    with pytest.raises(ValueError, match="non-blocking"):
        loop.run_until_complete(getattr(loop, op)(*args))
    loop.close()


def test_blocking_socket_raises_value_error_in_debug_sock_sendfile(loop, closing, tmp_path):
    loop.set_debug(True)
    a, b = socket.socketpair()
    closing(a)
    closing(b)
    path = tmp_path / "f"
    path.write_bytes(b"data")
    f = closing(open(path, "rb"))
    with pytest.raises(ValueError, match="non-blocking"):
        loop.run_until_complete(loop.sock_sendfile(a, f))
    loop.close()


def test_socket_used_by_transport_is_refused(loop, closing):
    a, b = socketpair(closing)

    async def main():
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
        try:
            with pytest.raises(RuntimeError, match="is used by transport"):
                await loop.sock_recv(a, 10)
            with pytest.raises(RuntimeError, match="is used by transport"):
                loop.add_reader(a, print)
            with pytest.raises(RuntimeError, match="is used by transport"):
                loop.remove_writer(a.fileno())
        finally:
            transport.close()
            await asyncio.sleep(0)

    loop.run_until_complete(main())
    loop.close()


# -- cancellation --------------------------------------------------------------


@pytest.mark.parametrize("op", ["sock_recv", "sock_recv_into"])
def test_cancelled_recv_leaves_socket_usable(loop, closing, op):
    a, b = socketpair(closing)
    buf = bytearray(100)

    def start():
        if op == "sock_recv":
            return asyncio.ensure_future(loop.sock_recv(a, 100))
        return asyncio.ensure_future(loop.sock_recv_into(a, buf))

    async def main():
        task = start()
        await asyncio.sleep(0)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        # No reader is left behind for the cancelled call.
        assert loop.remove_reader(a) is False
        b.send(b"after cancel")
        # The data was not swallowed by the cancelled call.
        return await loop.sock_recv(a, 100)

    assert loop.run_until_complete(main()) == b"after cancel"
    assert loop.remove_reader(a) is False
    loop.close()


def test_cancelled_recvfrom_leaves_socket_usable(loop, closing):
    a, b = udp_pair(closing)

    async def main():
        task = asyncio.ensure_future(loop.sock_recvfrom(a, 100))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        assert loop.remove_reader(a) is False
        b.sendto(b"dgram", a.getsockname())
        return await loop.sock_recvfrom(a, 100)

    assert loop.run_until_complete(main()) == (b"dgram", b.getsockname())
    loop.close()


def test_cancel_first_of_two_pending_recvs_keeps_second(loop, closing):
    # The second sock_recv replaces the first's reader; cancelling the first
    # must not remove the reader the second is waiting on.
    a, b = socketpair(closing)

    async def main():
        first = asyncio.ensure_future(loop.sock_recv(a, 100))
        await asyncio.sleep(0)
        second = asyncio.ensure_future(loop.sock_recv(a, 100))
        await asyncio.sleep(0)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        await asyncio.sleep(0)
        b.send(b"for the second")
        return await asyncio.wait_for(second, 10)

    assert loop.run_until_complete(main()) == b"for the second"
    assert loop.remove_reader(a) is False
    loop.close()


def test_cancelled_accept_leaves_listener_usable(loop, closing):
    srv = tcp_listener(closing)

    async def main():
        task = asyncio.ensure_future(loop.sock_accept(srv))
        await asyncio.sleep(0)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        assert loop.remove_reader(srv) is False
        client = nb(closing(socket.socket()))
        await loop.sock_connect(client, srv.getsockname())
        conn, addr = await loop.sock_accept(srv)
        closing(conn)
        return addr, client.getsockname()

    addr, expected = loop.run_until_complete(main())
    assert addr == expected
    loop.close()


def test_cancelled_sendall_removes_writer(loop, closing):
    a, b = socketpair(closing)

    async def main():
        send = asyncio.ensure_future(loop.sock_sendall(a, PAYLOAD))
        await asyncio.sleep(0)
        assert not send.done()
        send.cancel()
        with pytest.raises(asyncio.CancelledError):
            await send
        await asyncio.sleep(0)
        assert loop.remove_writer(a) is False

    loop.run_until_complete(main())
    loop.close()


def test_cancelled_connect_removes_writer(loop, closing):
    # A listener whose backlog is full: a further connect stays in progress.
    srv = tcp_listener(closing, backlog=0)
    fillers = []
    for _ in range(8):
        s = nb(closing(socket.socket()))
        with contextlib.suppress(BlockingIOError):
            s.connect(srv.getsockname())
        fillers.append(s)
    client = nb(closing(socket.socket()))

    async def main():
        task = asyncio.ensure_future(loop.sock_connect(client, srv.getsockname()))
        await asyncio.sleep(0)
        if task.done():
            pytest.skip("the kernel completed the connect at once")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        assert loop.remove_writer(client) is False

    loop.run_until_complete(main())
    loop.close()


# -- sendfile --------------------------------------------------------------------


@pytest.fixture
def datafile(tmp_path, closing):
    data = os.urandom(3 * 1024 * 1024 + 123)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    return data, closing(open(path, "rb"))


def test_sock_sendfile_whole_file(loop, closing, datafile):
    data, f = datafile
    a, b = socketpair(closing)

    async def main():
        reader = asyncio.ensure_future(recv_exactly(loop, b, len(data)))
        sent = await loop.sock_sendfile(a, f)
        return sent, await reader

    sent, received = loop.run_until_complete(main())
    assert sent == len(data)
    assert received == data
    assert f.tell() == len(data)
    loop.close()


def test_sock_sendfile_offset_and_count(loop, closing, datafile):
    data, f = datafile
    a, b = socketpair(closing)

    async def main():
        sent = await loop.sock_sendfile(a, f, 1000, 5000)
        return sent, await recv_exactly(loop, b, 5000)

    sent, received = loop.run_until_complete(main())
    assert sent == 5000
    assert received == data[1000:6000]
    assert f.tell() == 6000
    loop.close()


def test_sock_sendfile_over_tcp(loop, closing, datafile):
    data, f = datafile
    srv = tcp_listener(closing)
    client = nb(closing(socket.socket()))

    async def main():
        accept = asyncio.ensure_future(loop.sock_accept(srv))
        await loop.sock_connect(client, srv.getsockname())
        conn, _ = await accept
        closing(conn)
        reader = asyncio.ensure_future(recv_exactly(loop, conn, len(data) - 10))
        sent = await loop.sock_sendfile(client, f, 10)
        return sent, await reader

    sent, received = loop.run_until_complete(main())
    assert sent == len(data) - 10
    assert received == data[10:]
    loop.close()


def test_sock_sendfile_fallback_for_non_regular_file(loop, closing):
    data = os.urandom(300_000)
    a, b = socketpair(closing)

    async def main():
        reader = asyncio.ensure_future(recv_exactly(loop, b, len(data)))
        sent = await loop.sock_sendfile(a, io.BytesIO(data))
        return sent, await reader

    sent, received = loop.run_until_complete(main())
    assert sent == len(data)
    assert received == data
    loop.close()


def test_sock_sendfile_no_fallback_raises(loop, closing):
    a, _ = socketpair(closing)
    with pytest.raises(asyncio.SendfileNotAvailableError):
        loop.run_until_complete(loop.sock_sendfile(a, io.BytesIO(b"abc"), fallback=False))
    loop.close()


def test_sock_sendfile_bad_arguments(loop, closing, datafile):
    _, f = datafile
    a, _ = socketpair(closing)
    u = nb(closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)))
    with pytest.raises(ValueError, match="SOCK_STREAM"):
        loop.run_until_complete(loop.sock_sendfile(u, f))
    with pytest.raises(ValueError, match="count"):
        loop.run_until_complete(loop.sock_sendfile(a, f, 0, 0))
    with pytest.raises(ValueError, match="offset"):
        loop.run_until_complete(loop.sock_sendfile(a, f, -1))
    with pytest.raises(TypeError):
        loop.run_until_complete(loop.sock_sendfile(a, f, 0, "10"))
    loop.close()


def test_sock_sendfile_empty_file(loop, closing, tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    f = closing(open(path, "rb"))
    a, _ = socketpair(closing)
    assert loop.run_until_complete(loop.sock_sendfile(a, f)) == 0
    loop.close()


def test_sock_ops_on_closed_loop_raise(kind, closing):
    loop = kind.new_loop()
    loop.close()
    a, _ = socketpair(closing)
    coro = loop.sock_recv(a, 10)
    try:
        with pytest.raises(RuntimeError):
            coro.send(None)
    finally:
        coro.close()


@pytest.mark.skipif(sys.platform != "linux", reason="Linux semantics")
def test_sock_recv_many_concurrent_sockets(loop, closing):
    pairs = [socketpair(closing) for _ in range(50)]

    async def main():
        tasks = [asyncio.ensure_future(loop.sock_recv(a, 100)) for a, _ in pairs]
        await asyncio.sleep(0)
        for i, (_, b) in enumerate(reversed(pairs)):
            b.send(str(i).encode())
        return await asyncio.gather(*tasks)

    results = loop.run_until_complete(main())
    assert results == [str(i).encode() for i in reversed(range(50))]
    loop.close()
