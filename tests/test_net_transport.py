"""The stream socket transport's API as a protocol sees it, with a plain
Protocol and with a BufferedProtocol: writing (write, writelines,
write_eof), closing (close, abort, connection_lost), reading state
(pause_reading, resume_reading), write flow control (water marks,
pause_writing/resume_writing), get_extra_info, and what happens when a
protocol callback raises."""

import asyncio
import contextlib
import contextvars
import gc
import logging
import socket
import sys

import pytest
from support import PY, rst, tcp_pair

# The multiplexer matters here: run on turboloop's poll(2) backend as well.
ALSO_POLL_BACKEND = True

BIG = 16 * 1024 * 1024  # more than any socket buffer holds


def raw_pair(family):
    if family == "tcp":
        return tcp_pair()
    return socket.socketpair()


class Recorder(asyncio.Protocol):
    """Records every callback, checks their order, and resolves futures."""

    keep_open = None

    def __init__(self, loop):
        self.loop = loop
        self.transport = None
        self.events = []
        self.data = bytearray()
        self.made = loop.create_future()
        self.got_eof = loop.create_future()
        self.lost = loop.create_future()
        self.paused = loop.create_future()
        self.resumed = loop.create_future()
        self.waiting_for = None  # (size, future)
        self.lost_calls = 0

    def connection_made(self, transport):
        assert self.transport is None, "connection_made called twice"
        self.transport = transport
        self.events.append("made")
        self.made.set_result(transport)

    def data_received(self, data):
        assert isinstance(data, bytes)
        assert self.transport is not None, "data before connection_made"
        assert not self.got_eof.done(), "data_received after eof_received"
        assert not self.lost.done(), "data_received after connection_lost"
        self.data += data
        self.events.append("data")
        self._check_waiting()

    def _check_waiting(self):
        if self.waiting_for is not None:
            size, fut = self.waiting_for
            if len(self.data) >= size and not fut.done():
                fut.set_result(None)

    def wait_for_data(self, size):
        fut = self.loop.create_future()
        self.waiting_for = (size, fut)
        self._check_waiting()
        return fut

    def eof_received(self):
        assert not self.lost.done(), "eof_received after connection_lost"
        self.events.append("eof")
        self.got_eof.set_result(None)
        return self.keep_open

    def connection_lost(self, exc):
        self.lost_calls += 1
        self.events.append("lost")
        self.lost.set_result(exc)

    def pause_writing(self):
        self.events.append("pause")
        self.pause_size = self.transport.get_write_buffer_size()
        if not self.paused.done():
            self.paused.set_result(self.pause_size)

    def resume_writing(self):
        self.events.append("resume")
        self.resume_size = self.transport.get_write_buffer_size()
        if not self.resumed.done():
            self.resumed.set_result(self.resume_size)


class BufferedRecorder(Recorder, asyncio.BufferedProtocol):
    """The same records, through get_buffer/buffer_updated."""

    bufsize = 1000

    def __init__(self, loop):
        Recorder.__init__(self, loop)
        self.buf = bytearray(self.bufsize)
        self.hints = []

    def get_buffer(self, sizehint):
        assert not self.got_eof.done(), "get_buffer after eof_received"
        self.hints.append(sizehint)
        return self.buf

    def buffer_updated(self, nbytes):
        assert 0 < nbytes <= len(self.buf)
        assert not self.got_eof.done(), "buffer_updated after eof_received"
        self.data += self.buf[:nbytes]
        self.events.append("data")
        self._check_waiting()

    def data_received(self, data):  # pragma: no cover - must not be called
        raise AssertionError("data_received called on a BufferedProtocol")


PROTOCOLS = {"plain": Recorder, "buffered": BufferedRecorder}


@pytest.fixture(params=["plain", "buffered"])
def proto_cls(request):
    return PROTOCOLS[request.param]


@pytest.fixture(params=["unix", "tcp"])
def family(request):
    return request.param


async def connect(loop, closing, factory, family="unix"):
    """A transport on one end of a connected pair, and the raw other end."""
    a, b = raw_pair(family)
    closing(b)
    b.setblocking(False)
    try:
        transport, proto = await loop.connect_accepted_socket(factory, a)
    except BaseException:
        a.close()
        raise
    await proto.made
    return transport, proto, b


async def recv_all(loop, sock, n=None):
    """Read from a raw socket until EOF (or n bytes)."""
    out = bytearray()
    while n is None or len(out) < n:
        chunk = await loop.sock_recv(sock, 1 << 20)
        if not chunk:
            break
        out += chunk
    return bytes(out)


# -- the connection ------------------------------------------------------------


def test_callbacks_in_order_on_peer_close(loop, closing, proto_cls, family):
    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: proto_cls(loop), family)
        assert proto.events == ["made"]
        assert not transport.is_closing()
        assert transport.is_reading()
        assert transport.get_protocol() is proto
        peer.sendall(b"hello ")
        await proto.wait_for_data(6)
        peer.sendall(b"world")
        peer.shutdown(socket.SHUT_WR)
        exc = await proto.lost
        await asyncio.sleep(0)
        return transport, proto, exc

    transport, proto, exc = loop.run_until_complete(main())
    assert exc is None
    assert bytes(proto.data) == b"hello world"
    assert proto.events[0] == "made"
    assert proto.events[-2:] == ["eof", "lost"]
    assert set(proto.events[1:-2]) == {"data"}
    assert proto.lost_calls == 1
    assert transport.is_closing()
    assert not transport.is_reading()
    loop.close()


def test_get_extra_info_tcp(loop, closing):
    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Recorder(loop), "tcp")
        sock = transport.get_extra_info("socket")
        info = {
            "sockname": transport.get_extra_info("sockname"),
            "peername": transport.get_extra_info("peername"),
            "fileno": sock.fileno(),
            "family": sock.family,
            "type": sock.type,
            "nodelay": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
            "missing": transport.get_extra_info("no such key"),
            "default": transport.get_extra_info("no such key", 42),
            "peer": (peer.getsockname(), peer.getpeername()),
        }
        transport.close()
        await proto.lost
        return info

    info = loop.run_until_complete(main())
    assert info["sockname"] == info["peer"][1]
    assert info["peername"] == info["peer"][0]
    assert info["fileno"] >= 0
    assert info["family"] == socket.AF_INET
    assert info["type"] == socket.SOCK_STREAM
    # The loop turns Nagle's algorithm off on TCP transports.
    assert info["nodelay"] != 0
    assert info["missing"] is None
    assert info["default"] == 42
    loop.close()


def test_get_extra_info_unix_and_transport_socket(loop, closing):
    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Recorder(loop), "unix")
        sock = transport.get_extra_info("socket")
        assert isinstance(sock, asyncio.trsock.TransportSocket)
        assert sock.family == socket.AF_UNIX
        assert transport.get_extra_info("sockname") == ""
        assert transport.get_extra_info("peername") == ""
        # The TransportSocket forbids what would break the transport.
        with pytest.raises(ValueError):
            sock.setblocking(True)
        transport.close()
        await proto.lost
        # Extra info outlives the connection.
        assert transport.get_extra_info("peername") == ""

    loop.run_until_complete(main())
    loop.close()


def test_get_extra_info_first_asked_after_close(loop, closing):
    # The client transport is not asked for its extra info until it is
    # closed: the answers are what they were while connected.
    async def main():
        server = await loop.create_server(lambda: Recorder(loop), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, proto = await loop.create_connection(
            lambda: Recorder(loop), "127.0.0.1", port)
        transport.close()
        await proto.lost
        server.close()
        await server.wait_closed()
        return transport, port

    transport, port = loop.run_until_complete(main())
    sockname = transport.get_extra_info("sockname")
    assert transport.get_extra_info("peername") == ("127.0.0.1", port)
    assert sockname[0] == "127.0.0.1" and sockname[1] != port
    sock = transport.get_extra_info("socket")
    assert isinstance(sock, asyncio.trsock.TransportSocket)
    assert sock.fileno() == -1
    assert transport.get_extra_info("sslcontext") is None
    loop.close()


def test_server_side_extra_info_after_close(loop, closing):
    made = []

    class P(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            made.append(self)

    async def main():
        server = await loop.create_server(lambda: P(loop), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = closing(socket.create_connection(("127.0.0.1", port)))
        while not made:
            await asyncio.sleep(0)
        proto = made[0]
        assert proto.transport.get_extra_info("sslcontext") is None
        proto.transport.close()
        await proto.lost
        server.close()
        await server.wait_closed()
        return proto.transport, client

    transport, client = loop.run_until_complete(main())
    assert transport.get_extra_info("peername") == client.getsockname()
    assert transport.get_extra_info("sockname") == client.getpeername()
    assert transport.get_extra_info("socket").family == socket.AF_INET
    assert transport.get_extra_info("no such key", 7) == 7
    loop.close()


# -- writing -----------------------------------------------------------------


def test_write_is_sent_at_once(loop, closing, family):
    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Recorder(loop), family)
        transport.write(b"immediate")
        assert transport.get_write_buffer_size() == 0
        # No loop iteration needed: the data is in the kernel already.
        assert peer.recv(100) == b"immediate"
        transport.write(bytearray(b"array"))
        transport.write(memoryview(b"xxviewxx")[2:6])
        transport.write(b"")
        assert peer.recv(100) == b"arrayview"
        transport.close()
        await proto.lost

    loop.run_until_complete(main())
    loop.close()


def test_write_rejects_non_bytes(loop, closing):
    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Recorder(loop))
        for bad in ("text", 123, None, [b"list"]):
            with pytest.raises(TypeError):
                transport.write(bad)
        transport.close()
        await proto.lost

    loop.run_until_complete(main())
    loop.close()


def test_writelines(loop, closing, family):
    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Recorder(loop), family)
        transport.writelines([b"one ", bytearray(b"two "), memoryview(b"three "), b""])
        transport.writelines(iter([b"four ", b"five"]))
        transport.writelines([])
        transport.write_eof()
        return await recv_all(loop, peer), transport, proto

    data, transport, proto = loop.run_until_complete(main())
    assert data == b"one two three four five"
    transport.close()
    loop.run_until_complete(proto.lost)
    loop.close()


def test_large_writelines_is_delivered_in_order(loop, closing):
    chunks = [bytes([i]) * (300_000 + i) for i in range(40)]

    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Recorder(loop))
        transport.writelines(chunks)
        transport.write(b"tail")
        transport.close()
        data = await recv_all(loop, peer)
        assert await proto.lost is None
        return data

    assert loop.run_until_complete(main()) == b"".join(chunks) + b"tail"
    loop.close()


def test_write_eof(loop, closing, proto_cls, family):
    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: proto_cls(loop), family)
        assert transport.can_write_eof() is True
        transport.write(b"before eof")
        transport.write_eof()
        transport.write_eof()  # a second call does nothing
        assert not transport.is_closing()
        with pytest.raises(RuntimeError):
            transport.write(b"after eof")
        with pytest.raises(RuntimeError):
            transport.writelines([b"after eof"])
        assert await recv_all(loop, peer) == b"before eof"
        # The read side is still open.
        peer.sendall(b"still reading")
        await proto.wait_for_data(13)
        assert not transport.is_closing()
        peer.shutdown(socket.SHUT_WR)
        return await proto.lost, proto

    exc, proto = loop.run_until_complete(main())
    assert exc is None
    assert bytes(proto.data) == b"still reading"
    assert proto.events[-2:] == ["eof", "lost"]
    loop.close()


def test_partial_write_of_bytes_then_more(kind, loop, closing, family):
    # Part of a large bytes object goes out at once and the rest waits;
    # what is written behind it (a bytearray changed afterwards) follows it
    # as it was when written.
    if kind.name == "asyncio" and sys.version_info >= (3, 12):
        pytest.skip("asyncio 3.12+ queues the caller's bytearray itself behind a "
                    "queue, so a later change to it is what gets sent")
    first = bytes(range(256)) * (BIG // 256)
    second = bytearray(b"tail" * 1000)

    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Recorder(loop), family)
        transport.set_write_buffer_limits(high=BIG * 4)
        transport.write(first)
        queued = transport.get_write_buffer_size()
        assert 0 < queued < len(first)
        transport.write(second)
        assert transport.get_write_buffer_size() == queued + len(second)
        second[:4] = b"XXXX"
        transport.write_eof()
        data = await recv_all(loop, peer)
        assert transport.get_write_buffer_size() == 0
        transport.close()
        await proto.lost
        return data

    assert loop.run_until_complete(main()) == first + b"tail" * 1000
    loop.close()


def test_write_eof_waits_for_buffer(loop, closing):
    payload = bytes(range(256)) * (BIG // 256)

    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Recorder(loop))
        transport.set_write_buffer_limits(high=BIG * 2)
        transport.write(payload)
        assert transport.get_write_buffer_size() > 0
        transport.write_eof()
        data = await recv_all(loop, peer)
        assert transport.get_write_buffer_size() == 0
        transport.close()
        await proto.lost
        return data

    assert loop.run_until_complete(main()) == payload
    loop.close()


# -- closing -------------------------------------------------------------------------


def test_close_calls_connection_lost_once_later(loop, closing, proto_cls):
    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: proto_cls(loop))
        transport.close()
        assert transport.is_closing()
        assert not transport.is_reading()
        # connection_lost() is scheduled, not called from close().
        assert proto.events == ["made"]
        transport.close()
        transport.abort()
        exc = await proto.lost
        for _ in range(3):
            await asyncio.sleep(0)
        assert await recv_all(loop, peer) == b""
        return exc, proto, transport

    exc, proto, transport = loop.run_until_complete(main())
    assert exc is None
    assert proto.events == ["made", "lost"]
    assert proto.lost_calls == 1
    # The transport let go of its protocol.
    assert transport.get_protocol() is None
    loop.close()


def test_close_flushes_buffer_first(loop, closing, family):
    payload = bytes(range(256)) * (BIG // 256)

    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Recorder(loop), family)
        transport.set_write_buffer_limits(high=BIG * 2)
        transport.write(payload)
        assert transport.get_write_buffer_size() > 0
        transport.close()
        assert transport.is_closing()
        reader = asyncio.ensure_future(recv_all(loop, peer))
        exc = await proto.lost
        data = await reader
        return exc, data, proto

    exc, data, proto = loop.run_until_complete(main())
    assert exc is None
    assert data == payload
    assert proto.lost_calls == 1
    loop.close()


def test_write_after_close_with_pending_buffer_is_still_sent(loop, closing):
    payload = b"x" * BIG

    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Recorder(loop))
        transport.set_write_buffer_limits(high=BIG * 2)
        transport.write(payload)
        assert transport.get_write_buffer_size() > 0
        transport.close()
        transport.write(b"late")
        reader = asyncio.ensure_future(recv_all(loop, peer))
        await proto.lost
        return await reader

    data = loop.run_until_complete(main())
    assert data == payload + b"late"
    loop.close()


def test_abort_drops_buffer(loop, closing, family):
    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Recorder(loop), family)
        transport.set_write_buffer_limits(high=BIG * 2)
        transport.write(b"x" * BIG)
        assert transport.get_write_buffer_size() > 0
        transport.abort()
        assert transport.is_closing()
        assert transport.get_write_buffer_size() == 0
        exc = await proto.lost
        with contextlib.suppress(ConnectionResetError):
            data = await recv_all(loop, peer)
            assert len(data) < BIG
        transport.abort()
        return exc, proto

    exc, proto = loop.run_until_complete(main())
    assert exc is None
    assert proto.lost_calls == 1
    loop.close()


def test_writes_after_connection_lost_are_ignored_then_logged(loop, closing, asyncio_log):
    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Recorder(loop))
        transport.close()
        await proto.lost
        for _ in range(4):
            transport.write(b"ignored")
        assert asyncio_log.take(logging.WARNING) == []
        for _ in range(6):
            transport.write(b"ignored")
        transport.write(b"")  # empty writes are not counted
        warnings = asyncio_log.take(logging.WARNING)
        assert [r.getMessage() for r in warnings] == ["socket.send() raised exception."] * 6
        assert await recv_all(loop, peer) == b""

    loop.run_until_complete(main())
    loop.close()


def test_write_after_close_before_connection_lost_is_ignored(loop, closing):
    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Recorder(loop))
        transport.close()
        transport.write(b"dropped")
        await proto.lost
        return await recv_all(loop, peer)

    assert loop.run_until_complete(main()) == b""
    loop.close()


def test_connection_reset_gives_exception(loop, closing, proto_cls):
    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: proto_cls(loop), "tcp")
        peer.sendall(b"some data")
        await proto.wait_for_data(9)
        rst(peer)
        exc = await proto.lost
        await asyncio.sleep(0)
        return exc, proto, transport

    exc, proto, transport = loop.run_until_complete(main())
    assert isinstance(exc, ConnectionResetError)
    assert "eof" not in proto.events
    assert proto.lost_calls == 1
    assert transport.is_closing()
    loop.close()


def test_close_from_data_received_stops_reading(loop, closing, family):
    class CloseOnData(Recorder):
        def data_received(self, data):
            super().data_received(data)
            self.transport.close()

    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: CloseOnData(loop), family)
        peer.sendall(b"first")
        await proto.wait_for_data(5)
        with contextlib.suppress(OSError):
            peer.sendall(b"second")
        exc = await proto.lost
        for _ in range(3):
            await asyncio.sleep(0)
        return exc, proto

    exc, proto = loop.run_until_complete(main())
    assert exc is None
    assert bytes(proto.data) == b"first"
    assert proto.events == ["made", "data", "lost"]
    loop.close()


def test_abort_from_data_received(loop, closing, proto_cls):
    class AbortOnData(proto_cls):
        def buffer_updated(self, nbytes):
            super().buffer_updated(nbytes)
            self.transport.abort()

        def data_received(self, data):
            Recorder.data_received(self, data)
            self.transport.abort()

    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: AbortOnData(loop))
        peer.sendall(b"x")
        exc = await proto.lost
        for _ in range(3):
            await asyncio.sleep(0)
        return exc, proto

    exc, proto = loop.run_until_complete(main())
    assert exc is None
    assert proto.events == ["made", "data", "lost"]
    loop.close()


def test_eof_received_true_keeps_transport_open(loop, closing, proto_cls):
    class KeepOpen(proto_cls):
        keep_open = True

    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: KeepOpen(loop))
        peer.shutdown(socket.SHUT_WR)
        await proto.got_eof
        for _ in range(3):
            await asyncio.sleep(0)
        assert not transport.is_closing()
        assert not proto.lost.done()
        # Half-closed: the transport still writes.
        transport.write(b"reply after eof")
        transport.close()
        data = await recv_all(loop, peer)
        return data, await proto.lost, proto

    data, exc, proto = loop.run_until_complete(main())
    assert data == b"reply after eof"
    assert exc is None
    assert proto.events == ["made", "eof", "lost"]
    loop.close()


# -- reading state -------------------------------------------------------------------


def test_pause_and_resume_reading(loop, closing, proto_cls):
    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: proto_cls(loop))
        assert transport.is_reading()
        transport.pause_reading()
        assert not transport.is_reading()
        transport.pause_reading()  # idempotent
        assert not transport.is_reading()
        peer.sendall(b"while paused")
        for _ in range(5):
            await asyncio.sleep(0)
        assert proto.data == b""
        transport.resume_reading()
        assert transport.is_reading()
        transport.resume_reading()  # idempotent
        await proto.wait_for_data(12)
        assert bytes(proto.data) == b"while paused"
        # EOF is not reported while paused either.
        transport.pause_reading()
        peer.shutdown(socket.SHUT_WR)
        for _ in range(5):
            await asyncio.sleep(0)
        assert not proto.got_eof.done()
        transport.resume_reading()
        return await proto.lost, proto, transport

    exc, proto, transport = loop.run_until_complete(main())
    assert exc is None
    assert proto.events[-2:] == ["eof", "lost"]
    # pause/resume after close are no-ops
    transport.pause_reading()
    transport.resume_reading()
    assert not transport.is_reading()
    loop.close()


def test_pause_reading_in_connection_made(loop, closing, proto_cls):
    class PauseAtOnce(proto_cls):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.pause_reading()

    async def main():
        a, b = socket.socketpair()
        closing(b)
        b.sendall(b"early data")
        transport, proto = await loop.connect_accepted_socket(lambda: PauseAtOnce(loop), a)
        for _ in range(5):
            await asyncio.sleep(0)
        assert proto.data == b""
        assert not transport.is_reading()
        transport.resume_reading()
        await proto.wait_for_data(10)
        transport.close()
        await proto.lost
        return proto

    proto = loop.run_until_complete(main())
    assert bytes(proto.data) == b"early data"
    loop.close()


def test_data_received_chunks_are_bounded(loop, closing):
    payload = bytes(range(256)) * (4 * 1024 * 1024 // 256)

    class Sizes(Recorder):
        def data_received(self, data):
            self.sizes = getattr(self, "sizes", []) + [len(data)]
            super().data_received(data)

    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Sizes(loop))
        transport.pause_reading()
        sender = asyncio.ensure_future(loop.sock_sendall(peer, payload))
        await asyncio.sleep(0)
        transport.resume_reading()
        await sender
        await proto.wait_for_data(len(payload))
        transport.close()
        await proto.lost
        return proto

    proto = loop.run_until_complete(main())
    assert bytes(proto.data) == payload
    assert max(proto.sizes) <= 256 * 1024
    loop.close()


# -- write flow control -------------------------------------------------------------


def test_write_buffer_limits(loop, closing):
    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Recorder(loop))
        results = [transport.get_write_buffer_limits()]
        transport.set_write_buffer_limits(high=100)
        results.append(transport.get_write_buffer_limits())
        transport.set_write_buffer_limits(low=10)
        results.append(transport.get_write_buffer_limits())
        transport.set_write_buffer_limits(high=50, low=50)
        results.append(transport.get_write_buffer_limits())
        transport.set_write_buffer_limits(0, 0)
        results.append(transport.get_write_buffer_limits())
        transport.set_write_buffer_limits()
        results.append(transport.get_write_buffer_limits())
        with pytest.raises(ValueError):
            transport.set_write_buffer_limits(high=10, low=20)
        with pytest.raises(ValueError):
            transport.set_write_buffer_limits(high=-1)
        with pytest.raises(ValueError):
            transport.set_write_buffer_limits(low=-4)
        # A failed call changes nothing.
        results.append(transport.get_write_buffer_limits())
        transport.close()
        await proto.lost
        return results

    assert loop.run_until_complete(main()) == [
        (16384, 65536),
        (25, 100),
        (10, 40),
        (50, 50),
        (0, 0),
        (16384, 65536),
        (16384, 65536),
    ]
    loop.close()


def test_pause_and_resume_writing_at_the_marks(loop, closing, family):
    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Recorder(loop), family)
        transport.set_write_buffer_limits(high=100_000, low=20_000)
        assert transport.get_write_buffer_limits() == (20_000, 100_000)
        # Fill the kernel's buffers until the transport has to queue.
        written = 0
        while transport.get_write_buffer_size() == 0:
            transport.write(b"a" * 65536)
            written += 65536
            assert written < 256 * 1024 * 1024
        assert "pause" not in proto.events
        # Not over the high-water mark yet: queue more, one byte at a time
        # near the mark, to see exactly where pause_writing() comes.
        while transport.get_write_buffer_size() + 1000 <= 100_000:
            transport.write(b"b" * 1000)
            written += 1000
        assert "pause" not in proto.events
        while "pause" not in proto.events:
            before = transport.get_write_buffer_size()
            assert before <= 100_000
            transport.write(b"c")
            written += 1
        assert proto.pause_size == 100_001
        assert transport.get_write_buffer_size() == 100_001
        # More writes while paused are queued; pause_writing() is not repeated.
        transport.write(b"d" * 50_000)
        written += 50_000
        assert proto.events.count("pause") == 1
        assert transport.get_write_buffer_size() == 150_001
        # Read on the other side: resume_writing() once the buffer is at or
        # below the low-water mark.
        reader = asyncio.ensure_future(recv_all(loop, peer, written))
        resume_size = await proto.resumed
        assert resume_size <= 20_000
        data = await reader
        assert len(data) == written
        assert proto.events.count("resume") == 1
        transport.close()
        await proto.lost
        return proto.events

    events = loop.run_until_complete(main())
    assert events.index("pause") < events.index("resume")
    loop.close()


def test_lowering_high_water_pauses_at_once(loop, closing):
    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Recorder(loop))
        transport.set_write_buffer_limits(high=BIG * 2)
        transport.write(b"x" * BIG)
        size = transport.get_write_buffer_size()
        assert size > 0
        assert "pause" not in proto.events
        transport.set_write_buffer_limits(high=size - 1)
        assert proto.events.count("pause") == 1
        assert proto.pause_size == size
        transport.abort()
        await proto.lost

    loop.run_until_complete(main())
    loop.close()


def test_write_buffer_size_drains_to_zero(loop, closing):
    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Recorder(loop))
        transport.set_write_buffer_limits(high=BIG * 2)
        transport.write(b"x" * BIG)
        sizes = [transport.get_write_buffer_size()]
        reader = asyncio.ensure_future(recv_all(loop, peer, BIG))
        while transport.get_write_buffer_size():
            sizes.append(transport.get_write_buffer_size())
            await asyncio.sleep(0)
        await reader
        transport.close()
        await proto.lost
        return sizes

    sizes = loop.run_until_complete(main())
    assert 0 < sizes[0] < BIG
    assert sizes == sorted(sizes, reverse=True)
    loop.close()


def test_pause_writing_raising_goes_to_handler(loop, errors, closing):
    class Bad(Recorder):
        def pause_writing(self):
            raise ZeroDivisionError("pause")

        def resume_writing(self):
            super().resume_writing()
            raise KeyError("resume")

    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Bad(loop))
        transport.set_write_buffer_limits(high=1000, low=0)
        transport.write(b"x" * BIG)
        assert len(errors) == 1
        assert errors[0]["message"] == "protocol.pause_writing() failed"
        assert isinstance(errors[0]["exception"], ZeroDivisionError)
        assert errors[0]["transport"] is transport
        assert errors[0]["protocol"] is proto
        # The transport carries on.
        assert not transport.is_closing()
        reader = asyncio.ensure_future(recv_all(loop, peer, BIG))
        await proto.resumed
        assert await reader == b"x" * BIG
        assert len(errors) == 2
        assert errors[1]["message"] == "protocol.resume_writing() failed"
        assert isinstance(errors[1]["exception"], KeyError)
        errors.clear()
        assert not transport.is_closing()
        transport.close()
        await proto.lost

    loop.run_until_complete(main())
    loop.close()


def test_writing_from_resume_writing(loop, closing):
    # resume_writing() may write at once, the usual producer pattern.
    total = 8 * 1024 * 1024

    class Producer(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            self.sent = 0
            transport.set_write_buffer_limits(high=64 * 1024)
            self.produce()

        def produce(self):
            while self.sent < total and not self.is_paused:
                n = min(10_000, total - self.sent)
                self.transport.write(b"p" * n)
                self.sent += n
            if self.sent >= total:
                self.transport.write_eof()

        is_paused = False

        def pause_writing(self):
            super().pause_writing()
            assert self.transport.get_write_buffer_size() <= 64 * 1024 + 10_000
            self.is_paused = True

        def resume_writing(self):
            super().resume_writing()
            self.is_paused = False
            self.produce()

    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Producer(loop))
        data = await recv_all(loop, peer)
        transport.close()
        await proto.lost
        return data, proto

    data, proto = loop.run_until_complete(main())
    assert data == b"p" * total
    assert proto.events.count("pause") == proto.events.count("resume") >= 1
    loop.close()


# -- protocol callbacks that raise ------------------------------------------------------


@pytest.mark.parametrize("method", ["data_received", "eof_received"])
def test_raising_callback_goes_to_handler_and_closes(loop, errors, closing, method):
    class Bad(Recorder):
        def data_received(self, data):
            super().data_received(data)
            if method == "data_received":
                raise ValueError("boom")

        def eof_received(self):
            super().eof_received()
            if method == "eof_received":
                raise ValueError("boom")

    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Bad(loop))
        peer.sendall(b"data")
        if method == "eof_received":
            await proto.wait_for_data(4)
            peer.shutdown(socket.SHUT_WR)
        exc = await proto.lost
        for _ in range(3):
            await asyncio.sleep(0)
        return exc, transport, proto

    exc, transport, proto = loop.run_until_complete(main())
    assert isinstance(exc, ValueError) and str(exc) == "boom"
    assert transport.is_closing()
    assert proto.lost_calls == 1
    assert len(errors) == 1
    ctx = errors[0]
    assert ctx["message"] == f"Fatal error: protocol.{method}() call failed."
    assert ctx["exception"] is exc
    assert ctx["transport"] is transport
    assert ctx["protocol"] is proto
    errors.clear()
    loop.close()


@pytest.mark.parametrize("method", ["get_buffer", "buffer_updated"])
def test_raising_buffered_callback_goes_to_handler_and_closes(loop, errors, closing, method):
    class Bad(BufferedRecorder):
        def get_buffer(self, sizehint):
            buf = super().get_buffer(sizehint)
            if method == "get_buffer":
                raise ValueError("boom")
            return buf

        def buffer_updated(self, nbytes):
            super().buffer_updated(nbytes)
            if method == "buffer_updated":
                raise ValueError("boom")

    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Bad(loop))
        peer.sendall(b"data")
        exc = await proto.lost
        return exc, transport, proto

    exc, transport, proto = loop.run_until_complete(main())
    assert isinstance(exc, ValueError)
    assert len(errors) == 1
    assert errors[0]["message"] == f"Fatal error: protocol.{method}() call failed."
    assert errors[0]["exception"] is exc
    errors.clear()
    if method == "buffer_updated":
        assert bytes(proto.data) == b"data"
    loop.close()


def test_get_buffer_returning_empty_buffer(loop, errors, closing):
    class Empty(BufferedRecorder):
        bufsize = 0

    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Empty(loop))
        peer.sendall(b"data")
        return await proto.lost, transport

    exc, transport = loop.run_until_complete(main())
    assert isinstance(exc, RuntimeError)
    assert "empty buffer" in str(exc)
    assert len(errors) == 1
    assert errors[0]["message"] == "Fatal error: protocol.get_buffer() call failed."
    assert errors[0]["exception"] is exc
    errors.clear()
    assert transport.is_closing()
    loop.close()


def test_get_buffer_returning_read_only_buffer(loop, errors, closing):
    # recv_into() refuses a read-only buffer with TypeError; asyncio reports
    # it as a failed read.
    class ReadOnly(BufferedRecorder):
        def get_buffer(self, sizehint):
            return b"\0" * 100

    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: ReadOnly(loop))
        peer.sendall(b"data")
        return await proto.lost, transport

    exc, transport = loop.run_until_complete(main())
    assert isinstance(exc, TypeError)
    assert len(errors) == 1
    assert errors[0]["message"] == "Fatal read error on socket transport"
    assert errors[0]["exception"] is exc
    errors.clear()
    loop.close()


def test_write_non_contiguous_memoryview_is_a_write_error(loop, errors, closing):
    # asyncio hands the argument to socket.send(), which refuses it; the
    # error is a fatal write error on the transport, not raised by write().
    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Recorder(loop))
        transport.write(memoryview(b"abcdef")[::2])
        exc = await proto.lost
        return exc, transport

    exc, transport = loop.run_until_complete(main())
    assert isinstance(exc, BufferError)
    assert len(errors) == 1
    assert errors[0]["message"] == "Fatal write error on socket transport"
    assert errors[0]["exception"] is exc
    errors.clear()
    assert transport.is_closing()
    loop.close()


def test_close_in_connection_made(loop, closing, proto_cls):
    class CloseAtOnce(proto_cls):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.write(b"only this")
            transport.close()

    async def main():
        a, b = socket.socketpair()
        closing(b)
        transport, proto = await loop.connect_accepted_socket(lambda: CloseAtOnce(loop), a)
        assert transport.is_closing()
        exc = await proto.lost
        for _ in range(3):
            await asyncio.sleep(0)
        b.setblocking(False)
        return exc, proto, await recv_all(loop, b)

    exc, proto, sent = loop.run_until_complete(main())
    assert exc is None
    assert proto.events == ["made", "lost"]
    assert sent == b"only this"
    loop.close()


def test_abort_in_connection_made(loop, closing):
    class AbortAtOnce(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.abort()

    async def main():
        a, b = socket.socketpair()
        closing(b)
        transport, proto = await loop.connect_accepted_socket(lambda: AbortAtOnce(loop), a)
        return await proto.lost, proto

    exc, proto = loop.run_until_complete(main())
    assert exc is None
    assert proto.events == ["made", "lost"]
    loop.close()


def test_unclosed_transport_warns_and_closes_its_socket(kind, closing):
    # A transport still open when its loop is closed is not leaked: once it
    # is garbage, it warns and closes its socket, as asyncio's does.
    loop = kind.new_loop()
    a, b = socket.socketpair()
    closing(b)

    async def main():
        return await loop.connect_accepted_socket(asyncio.Protocol, a)

    transport, proto = loop.run_until_complete(main())
    loop.close()
    with pytest.warns(ResourceWarning, match="unclosed transport"):
        del transport, proto
        gc.collect()
    assert a.fileno() == -1
    assert b.recv(10) == b""


def test_keyboard_interrupt_from_data_received_leaves_loop(loop, closing):
    class Interrupt(Recorder):
        def data_received(self, data):
            super().data_received(data)
            raise KeyboardInterrupt

    async def setup():
        return await connect(loop, closing, lambda: Interrupt(loop))

    transport, proto, peer = loop.run_until_complete(setup())
    peer.sendall(b"x")
    with pytest.raises(KeyboardInterrupt):
        loop.run_until_complete(loop.create_future())
    assert bytes(proto.data) == b"x"
    # It is not treated as a transport error.
    assert not transport.is_closing()
    transport.close()
    assert loop.run_until_complete(proto.lost) is None
    loop.close()


# -- BufferedProtocol specifics ---------------------------------------------------------


def test_buffered_protocol_gets_hint_and_fills_small_buffers(loop, closing):
    class Small(BufferedRecorder):
        bufsize = 7

    payload = bytes(range(256)) * 40

    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Small(loop))
        peer.sendall(payload)
        peer.shutdown(socket.SHUT_WR)
        await proto.lost
        return proto

    proto = loop.run_until_complete(main())
    assert bytes(proto.data) == payload
    assert set(proto.hints) == {-1}
    assert proto.events.count("data") >= len(payload) // 7
    loop.close()


def test_buffered_protocol_different_buffer_each_time(loop, closing):
    class Rotating(BufferedRecorder):
        def __init__(self, loop):
            super().__init__(loop)
            self.bufs = [bytearray(3), memoryview(bytearray(5)), bytearray(11)]
            self.i = 0

        def get_buffer(self, sizehint):
            self.current = self.bufs[self.i % 3]
            self.i += 1
            return self.current

        def buffer_updated(self, nbytes):
            self.data += bytes(self.current[:nbytes])
            self.events.append("data")
            self._check_waiting()

    payload = b"The quick brown fox jumps over the lazy dog" * 50

    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Rotating(loop))
        await loop.sock_sendall(peer, payload)
        await proto.wait_for_data(len(payload))
        transport.close()
        await proto.lost
        return proto

    proto = loop.run_until_complete(main())
    assert bytes(proto.data) == payload
    loop.close()


def test_set_protocol_switches_reading_style(loop, closing):
    class Second(BufferedRecorder):
        pass

    async def main():
        transport, first, peer = await connect(loop, closing, lambda: Recorder(loop))
        peer.sendall(b"to the first")
        await first.wait_for_data(12)
        second = Second(loop)
        transport.set_protocol(second)
        assert transport.get_protocol() is second
        peer.sendall(b"to the second")
        await second.wait_for_data(13)
        third = Recorder(loop)
        third.transport = transport
        transport.set_protocol(third)
        peer.sendall(b"to the third")
        peer.shutdown(socket.SHUT_WR)
        exc = await third.lost
        return first, second, third, exc

    first, second, third, exc = loop.run_until_complete(main())
    assert bytes(first.data) == b"to the first"
    assert bytes(second.data) == b"to the second"
    assert bytes(third.data) == b"to the third"
    assert exc is None
    assert not first.lost.done() and not second.lost.done()
    loop.close()


# -- contexts and reprs ----------------------------------------------------------------------


@pytest.mark.parametrize("ending", ["peer-eof", "peer-reset", "close-in-data_received"])
def test_protocol_callbacks_see_the_connecting_context(loop, closing, ending):
    # Like asyncio: the callbacks an I/O event triggers run in one context,
    # copied from the code that made the connection, so what data_received()
    # sets is seen by later callbacks, connection_lost() included, however
    # the connection ends.
    var = contextvars.ContextVar("var", default="unset")

    class Ctx(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            self.seen_made = var.get()

        def data_received(self, data):
            super().data_received(data)
            self.seen_data = getattr(self, "seen_data", []) + [var.get()]
            var.set("set in data_received")
            if ending == "close-in-data_received" and len(self.data) == 2:
                self.transport.close()

        def connection_lost(self, exc):
            self.seen_lost = var.get()
            super().connection_lost(exc)

    async def main():
        var.set("connecting task")
        transport, proto, peer = await connect(loop, closing, lambda: Ctx(loop), "tcp")
        peer.sendall(b"1")
        await proto.wait_for_data(1)
        peer.sendall(b"2")
        await proto.wait_for_data(2)
        if ending == "peer-eof":
            peer.shutdown(socket.SHUT_WR)
        elif ending == "peer-reset":
            rst(peer)
        await proto.lost
        # Nothing leaked back into the task's context.
        assert var.get() == "connecting task"
        return proto

    proto = loop.run_until_complete(main())
    assert proto.seen_made == "connecting task"
    assert proto.seen_data == ["connecting task", "set in data_received"]
    assert proto.seen_lost == "set in data_received"
    assert var.get() == "unset"
    loop.close()


def test_pause_writing_runs_in_the_writers_context(loop, closing):
    # pause_writing() is called from inside write(): it sees the context of
    # the code that wrote.
    var = contextvars.ContextVar("var", default="unset")

    class Ctx(Recorder):
        def pause_writing(self):
            super().pause_writing()
            self.seen_pause = var.get()

    async def main():
        var.set("connecting task")
        transport, proto, peer = await connect(loop, closing, lambda: Ctx(loop))

        async def writer():
            var.set("writer task")
            transport.write(b"x" * BIG)

        await asyncio.ensure_future(writer())
        transport.abort()
        await proto.lost
        return proto

    proto = loop.run_until_complete(main())
    assert proto.seen_pause == "writer task"
    loop.close()


def test_large_reply_then_peer_eof_is_flushed_before_close(loop, closing, family):
    # The HTTP/1.0 pattern: the request ends with EOF, the reply is larger
    # than the socket buffer, and eof_received() lets the transport close,
    # which must flush the reply first.
    reply = bytes(range(256)) * (BIG // 256)

    class Server(Recorder):
        def data_received(self, data):
            super().data_received(data)
            if bytes(self.data) == b"request":
                self.transport.write(reply)

    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Server(loop), family)
        peer.sendall(b"request")
        peer.shutdown(socket.SHUT_WR)
        await proto.got_eof
        assert transport.is_closing()
        assert transport.get_write_buffer_size() > 0
        assert not proto.lost.done()
        data = await recv_all(loop, peer)
        return data, await proto.lost

    data, exc = loop.run_until_complete(main())
    assert exc is None
    assert data == reply
    loop.close()


def test_transport_on_a_high_descriptor_number(loop, closing):
    # The loop's descriptor table grows to whatever number the socket has.
    import resource
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    high_fd = min(soft - 10, 4000)
    if high_fd < 100:
        pytest.skip("descriptor limit too low")
    a, b = socket.socketpair()
    closing(b)
    os_fd = a.detach()
    import os
    try:
        os.dup2(os_fd, high_fd)
    finally:
        os.close(os_fd)
    a = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=high_fd)

    async def main():
        transport, proto = await loop.connect_accepted_socket(lambda: Recorder(loop), a)
        assert transport.get_extra_info("socket").fileno() == high_fd
        b.sendall(b"high")
        await proto.wait_for_data(4)
        transport.write(b"fd")
        assert b.recv(10) == b"fd"
        transport.close()
        await proto.lost
        return proto

    assert bytes(loop.run_until_complete(main()).data) == b"high"
    loop.close()


def test_duck_typed_protocol_missing_eof_received(loop, errors, closing):
    # Not an asyncio.Protocol subclass and no eof_received(): the EOF is a
    # failed protocol call, as in asyncio.
    class Duck:
        def __init__(self):
            self.made = loop.create_future()
            self.lost = loop.create_future()
            self.data = b""

        def connection_made(self, transport):
            self.transport = transport
            self.made.set_result(None)

        def data_received(self, data):
            self.data += data

        def connection_lost(self, exc):
            self.lost.set_result(exc)

    async def main():
        transport, proto, peer = await connect(loop, closing, Duck)
        peer.sendall(b"quack")
        peer.shutdown(socket.SHUT_WR)
        return await proto.lost, proto

    exc, proto = loop.run_until_complete(main())
    assert proto.data == b"quack"
    assert isinstance(exc, AttributeError)
    assert len(errors) == 1
    assert errors[0]["message"] == "Fatal error: protocol.eof_received() call failed."
    errors.clear()
    loop.close()


def test_repr_shows_state(loop, closing):
    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Recorder(loop))
        fd = transport.get_extra_info("socket").fileno()
        reprs = [repr(transport)]
        transport.pause_reading()
        reprs.append(repr(transport))
        transport.set_write_buffer_limits(high=BIG * 2)
        transport.write(b"x" * BIG)
        size = transport.get_write_buffer_size()
        reprs.append(repr(transport))
        transport.abort()
        reprs.append(repr(transport))
        await proto.lost
        reprs.append(repr(transport))
        return fd, size, reprs

    fd, size, reprs = loop.run_until_complete(main())
    assert f"fd={fd}" in reprs[0]
    assert "read=polling" in reprs[0]
    assert "write=<idle, bufsize=0>" in reprs[0]
    assert "read=idle" in reprs[1]
    assert f"write=<polling, bufsize={size}>" in reprs[2]
    assert "closing" in reprs[3]
    assert "closed" in reprs[4]
    loop.close()


@pytest.mark.skipif(PY < (3, 12), reason="asyncio 3.11 lets two transports share a socket")
def test_socket_of_a_transport_cannot_get_another(loop, closing):
    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Recorder(loop))
        # Newer asyncio versions close the socket when no transport can be
        # made for it; this one must not close the fd the transport uses.
        class Borrowed(socket.socket):
            def close(self):
                self.detach()

        raw = Borrowed(fileno=transport.get_extra_info("socket").fileno())
        try:
            with pytest.raises(RuntimeError, match="is used by transport"):
                await loop.connect_accepted_socket(asyncio.Protocol, raw)
        finally:
            raw.detach()
        transport.close()
        await proto.lost

    loop.run_until_complete(main())
    loop.close()
