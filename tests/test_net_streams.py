"""asyncio's streams on the loop: open_connection/start_server and their Unix
variants, the StreamReader read methods over a real connection, drain(),
write_eof(), close()/wait_closed(), get_extra_info, and errors a stream
surfaces (refused connections, resets, incomplete reads)."""

import asyncio
import contextlib
import os
import socket
import struct

import pytest
from support import PY

BIG = 8 * 1024 * 1024


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def echo(reader, writer):
    """Echo until EOF, then half-close back."""
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


class Served:
    """A server's handler connections, so a test can wait for them."""

    def __init__(self, handler):
        self.handler = handler
        self.tasks = []

    async def __call__(self, reader, writer):
        self.tasks.append(asyncio.current_task())
        await self.handler(reader, writer)

    async def finish(self):
        await asyncio.gather(*self.tasks)


async def close_writer(writer):
    writer.close()
    await writer.wait_closed()


# -- TCP -----------------------------------------------------------------------


def test_open_connection_echo_round_trip(loop):
    async def main():
        served = Served(echo)
        server = await asyncio.start_server(served, "127.0.0.1", 0)
        host, port = server.sockets[0].getsockname()[:2]
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"line one\nline two\n")
        await writer.drain()
        assert await reader.readline() == b"line one\n"
        assert await reader.readline() == b"line two\n"
        writer.write(b"0123456789")
        assert await reader.readexactly(4) == b"0123"
        assert await reader.readuntil(b"7") == b"4567"
        writer.write(b"rest")
        writer.write_eof()
        assert await reader.read() == b"89rest"
        assert reader.at_eof()
        assert await reader.read() == b""
        assert await reader.readline() == b""
        await close_writer(writer)
        await served.finish()
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())
    loop.close()


def test_stream_extra_info(loop):
    async def main():
        server_side = loop.create_future()

        async def handler(reader, writer):
            server_side.set_result((writer.get_extra_info("sockname"), writer.get_extra_info("peername")))
            await reader.read()
            await close_writer(writer)

        served = Served(handler)
        server = await asyncio.start_server(served, "127.0.0.1", 0)
        addr = server.sockets[0].getsockname()
        reader, writer = await asyncio.open_connection(*addr)
        sock = writer.get_extra_info("socket")
        info = {
            "sockname": writer.get_extra_info("sockname"),
            "peername": writer.get_extra_info("peername"),
            "socket": (sock.family, sock.type, sock.getsockname()),
            "transport": writer.transport.get_extra_info("peername"),
            "default": writer.get_extra_info("nope", "dflt"),
        }
        srv_sockname, srv_peername = await server_side
        writer.close()
        await writer.wait_closed()
        await served.finish()
        server.close()
        await server.wait_closed()
        return addr, info, srv_sockname, srv_peername

    addr, info, srv_sockname, srv_peername = loop.run_until_complete(main())
    assert info["peername"] == addr
    assert info["socket"] == (socket.AF_INET, socket.SOCK_STREAM, info["sockname"])
    assert info["transport"] == addr
    assert info["default"] == "dflt"
    assert srv_sockname == addr
    assert srv_peername == info["sockname"]
    loop.close()


def test_large_transfer_with_drain(loop):
    payload = os.urandom(BIG)

    async def main():
        served = Served(echo)
        server = await asyncio.start_server(served, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname())

        async def send():
            view = memoryview(payload)
            for i in range(0, len(view), 100_000):
                writer.write(view[i:i + 100_000])
                await writer.drain()
            writer.write_eof()

        sender = asyncio.ensure_future(send())
        received = await reader.read()
        await sender
        await close_writer(writer)
        await served.finish()
        server.close()
        await server.wait_closed()
        return received

    received = loop.run_until_complete(main())
    assert len(received) == len(payload)
    assert received == payload
    loop.close()


def test_drain_waits_for_the_peer(loop):
    async def main():
        gate = asyncio.Event()
        got = loop.create_future()

        async def slow_reader(reader, writer):
            await gate.wait()
            got.set_result(len(await reader.read()))
            await close_writer(writer)

        served = Served(slow_reader)
        server = await asyncio.start_server(served, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
        writer.write(b"x" * BIG)
        assert writer.transport.get_write_buffer_size() > 0
        drain = asyncio.ensure_future(writer.drain())
        for _ in range(10):
            await asyncio.sleep(0)
        assert not drain.done()
        gate.set()
        await drain
        assert writer.transport.get_write_buffer_size() <= writer.transport.get_write_buffer_limits()[1]
        writer.write_eof()
        assert await got == BIG
        await close_writer(writer)
        await served.finish()
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())
    loop.close()


def test_readexactly_at_eof_raises_incomplete_read(loop):
    async def main():
        async def handler(reader, writer):
            writer.write(b"abc")
            writer.write_eof()
            await reader.read()
            await close_writer(writer)

        served = Served(handler)
        server = await asyncio.start_server(served, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
        with pytest.raises(asyncio.IncompleteReadError) as info:
            await reader.readexactly(10)
        assert info.value.partial == b"abc"
        assert info.value.expected == 10
        writer.write_eof()
        await close_writer(writer)
        await served.finish()
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())
    loop.close()


def test_readline_limit_overrun(loop):
    async def main():
        async def handler(reader, writer):
            writer.write(b"x" * 100 + b"\nshort\n")
            await writer.drain()
            await reader.read()
            await close_writer(writer)

        served = Served(handler)
        server = await asyncio.start_server(served, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname(), limit=50)
        with pytest.raises(asyncio.LimitOverrunError):
            await reader.readuntil(b"\n")
        # readline() turns the overrun into ValueError and drops the line.
        with pytest.raises(ValueError):
            await reader.readline()
        assert await reader.readline() == b"short\n"
        writer.write_eof()
        await close_writer(writer)
        await served.finish()
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())
    loop.close()


def test_stream_reader_flow_control_pauses_transport(loop):
    # A StreamReader pauses its transport past twice its limit and resumes it
    # once read from: the data all arrives, in order.
    payload = os.urandom(2 * 1024 * 1024)

    async def main():
        async def handler(reader, writer):
            writer.write(payload)
            writer.write_eof()
            await writer.drain()
            await reader.read()
            await close_writer(writer)

        served = Served(handler)
        server = await asyncio.start_server(served, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname(), limit=1024)
        paused_seen = False
        chunks = []
        while True:
            for _ in range(3):
                await asyncio.sleep(0)
            if not writer.transport.is_reading():
                paused_seen = True
            chunk = await reader.read(4096)
            if not chunk:
                break
            chunks.append(chunk)
        writer.write_eof()
        await close_writer(writer)
        await served.finish()
        server.close()
        await server.wait_closed()
        return b"".join(chunks), paused_seen

    data, paused_seen = loop.run_until_complete(main())
    assert data == payload
    assert paused_seen
    loop.close()


def test_open_connection_refused(loop):
    async def main():
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", closed_port())

    loop.run_until_complete(main())
    loop.close()


def test_writer_close_and_wait_closed(loop):
    async def main():
        peer_eof = loop.create_future()

        async def handler(reader, writer):
            peer_eof.set_result(await reader.read())
            await close_writer(writer)

        served = Served(handler)
        server = await asyncio.start_server(served, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
        writer.write(b"bye")
        assert not writer.is_closing()
        writer.close()
        assert writer.is_closing()
        writer.close()  # twice is fine
        await writer.wait_closed()
        await writer.wait_closed()  # and so is waiting twice
        assert writer.transport.is_closing()
        assert await peer_eof == b"bye"
        await served.finish()
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())
    loop.close()


def test_peer_reset_surfaces_in_reader_and_drain(loop):
    async def main():
        async def handler(reader, writer):
            await reader.readexactly(1)
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()

        served = Served(handler)
        server = await asyncio.start_server(served, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
        writer.write(b"!")
        with pytest.raises(ConnectionResetError):
            await reader.read()
        with pytest.raises(ConnectionResetError):
            writer.write(b"x" * 100)
            await writer.drain()
        writer.close()
        with pytest.raises(ConnectionResetError):
            await writer.wait_closed()
        await served.finish()
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())
    loop.close()


def test_many_concurrent_clients(loop):
    async def main():
        served = Served(echo)
        server = await asyncio.start_server(served, "127.0.0.1", 0)
        addr = server.sockets[0].getsockname()

        async def client(i):
            reader, writer = await asyncio.open_connection(*addr)
            msg = (f"client {i} " * (i + 1)).encode()
            writer.write(msg)
            writer.write_eof()
            data = await reader.read()
            await close_writer(writer)
            return data == msg

        results = await asyncio.gather(*(client(i) for i in range(40)))
        await served.finish()
        server.close()
        await server.wait_closed()
        return results

    assert all(loop.run_until_complete(main()))
    loop.close()


def test_start_server_handler_exception_is_reported(loop, errors):
    async def main():
        done = loop.create_future()

        async def handler(reader, writer):
            try:
                await reader.readexactly(2)
                raise ZeroDivisionError("handler failed")
            finally:
                writer.close()
                loop.call_soon(done.set_result, None)

        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
        writer.write(b"go")
        await done
        assert await reader.read() == b""
        await close_writer(writer)
        server.close()
        await server.wait_closed()
        for _ in range(5):
            await asyncio.sleep(0)

    loop.run_until_complete(main())
    assert len(errors) == 1
    assert errors[0]["message"] == "Unhandled exception in client_connected_cb"
    assert isinstance(errors[0]["exception"], ZeroDivisionError)
    errors.clear()
    loop.close()


# -- Unix sockets ----------------------------------------------------------------


def test_unix_stream_round_trip(loop, sock_path):
    async def main():
        served = Served(echo)
        server = await asyncio.start_unix_server(served, sock_path)
        assert os.path.exists(sock_path)
        assert server.sockets[0].getsockname() == sock_path
        reader, writer = await asyncio.open_unix_connection(sock_path)
        assert writer.get_extra_info("peername") == sock_path
        writer.write(b"first\nsecond\n")
        assert await reader.readline() == b"first\n"
        assert await reader.readexactly(7) == b"second\n"
        payload = os.urandom(1024 * 1024)
        received = asyncio.ensure_future(reader.read())
        writer.write(payload)
        await writer.drain()
        writer.write_eof()
        assert await received == payload
        await close_writer(writer)
        await served.finish()
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())
    if PY >= (3, 13):
        # 3.13 removes the socket file when the server closes.
        assert not os.path.exists(sock_path)
    loop.close()


def test_open_unix_connection_missing_path(loop, sock_path):
    async def main():
        with pytest.raises(FileNotFoundError):
            await asyncio.open_unix_connection(sock_path)

    loop.run_until_complete(main())
    loop.close()


def test_open_unix_connection_refused(loop, sock_path):
    # A socket file with nothing listening on it.
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(sock_path)

        async def main():
            with pytest.raises(ConnectionRefusedError):
                await asyncio.open_unix_connection(sock_path)

        loop.run_until_complete(main())
    loop.close()


def test_start_unix_server_replaces_stale_socket_file(loop, sock_path):
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(sock_path)  # left behind, not listening

    async def main():
        served = Served(echo)
        server = await asyncio.start_unix_server(served, sock_path)
        reader, writer = await asyncio.open_unix_connection(sock_path)
        writer.write(b"ok")
        writer.write_eof()
        data = await reader.read()
        await close_writer(writer)
        await served.finish()
        server.close()
        await server.wait_closed()
        return data

    assert loop.run_until_complete(main()) == b"ok"
    loop.close()


def test_start_unix_server_on_regular_file_fails(loop, sock_path):
    with open(sock_path, "w") as f:
        f.write("not a socket")

    async def main():
        with pytest.raises(OSError):
            await asyncio.start_unix_server(echo, sock_path)

    loop.run_until_complete(main())
    assert os.path.exists(sock_path)
    loop.close()


def test_unix_stream_over_existing_socket(loop):
    a, b = socket.socketpair()

    async def main():
        reader_a, writer_a = await asyncio.open_unix_connection(sock=a)
        reader_b, writer_b = await asyncio.open_unix_connection(sock=b)
        writer_a.write(b"ping")
        assert await reader_b.readexactly(4) == b"ping"
        writer_b.write(b"pong")
        writer_b.write_eof()
        assert await reader_a.read() == b"pong"
        writer_a.write_eof()
        assert await reader_b.read() == b""
        await close_writer(writer_a)
        await close_writer(writer_b)

    loop.run_until_complete(main())
    loop.close()
