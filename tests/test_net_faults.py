"""Faults on stream connections: resets by the peer while reading, writing
or closing, a peer that goes away mid-write, protocol callbacks that raise in
connection_lost, running out of file descriptors in accept() (EMFILE), and
a slow reader against a writer that respects pause_writing()."""

import asyncio
import contextlib
import errno
import os
import resource
import socket

import pytest
from support import rst, tcp_pair

# The multiplexer matters here: run on turboloop's poll(2) backend as well.
ALSO_POLL_BACKEND = True

BIG = 16 * 1024 * 1024


class Proto(asyncio.Protocol):
    def __init__(self, loop):
        self.loop = loop
        self.lost = loop.create_future()
        self.lost_calls = 0
        self.events = []
        self.received = 0

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        assert not self.lost.done()
        self.received += len(data)
        self.events.append("data")

    def eof_received(self):
        self.events.append("eof")

    def pause_writing(self):
        self.events.append("pause")

    def resume_writing(self):
        self.events.append("resume")

    def connection_lost(self, exc):
        self.lost_calls += 1
        self.events.append("lost")
        self.lost.set_result(exc)


async def connect(loop, closing, factory):
    a, b = tcp_pair()
    closing(b)
    b.setblocking(False)
    transport, proto = await loop.connect_accepted_socket(factory, a)
    return transport, proto, b


async def settle(n=5):
    for _ in range(n):
        await asyncio.sleep(0)


# -- resets -----------------------------------------------------------------------------


def test_reset_while_idle(loop, closing):
    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Proto(loop))
        await settle()
        rst(peer)
        exc = await proto.lost
        await settle()
        return exc, proto, transport

    exc, proto, transport = loop.run_until_complete(main())
    assert isinstance(exc, ConnectionResetError)
    assert proto.events == ["lost"]
    assert proto.lost_calls == 1
    assert transport.is_closing()
    loop.close()


@pytest.mark.parametrize("paused", [False, True])
def test_reset_while_writing(loop, closing, paused):
    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Proto(loop))
        if paused:
            transport.pause_reading()
        transport.write(b"x" * BIG)
        assert transport.get_write_buffer_size() > 0
        assert proto.events == ["pause"]
        # The peer reads a little, then resets the connection.
        await loop.sock_recv(peer, 1000)
        rst(peer)
        exc = await proto.lost
        await settle()
        # Writes after the loss are dropped.
        transport.write(b"more")
        return exc, proto, transport

    exc, proto, transport = loop.run_until_complete(main())
    assert isinstance(exc, (ConnectionResetError, BrokenPipeError))
    assert proto.lost_calls == 1
    # Nothing resumes a protocol whose connection is gone.
    assert proto.events == ["pause", "lost"]
    assert transport.get_write_buffer_size() == 0
    assert transport.is_closing()
    loop.close()


def test_reset_while_closing_with_buffer(loop, closing):
    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Proto(loop))
        transport.set_write_buffer_limits(high=BIG * 2)
        transport.write(b"x" * BIG)
        transport.close()
        assert transport.is_closing()
        assert not proto.lost.done()
        await loop.sock_recv(peer, 1000)
        rst(peer)
        exc = await proto.lost
        await settle()
        return exc, proto

    exc, proto = loop.run_until_complete(main())
    # The flush failed: connection_lost() gets the error, not None.
    assert isinstance(exc, (ConnectionResetError, BrokenPipeError))
    assert proto.lost_calls == 1
    loop.close()


def test_peer_closes_mid_write(loop, closing):
    # The peer shuts down cleanly but does not read everything: the writer
    # loses the connection exactly once, whichever it notices first.
    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Proto(loop))
        transport.set_write_buffer_limits(high=BIG * 2)
        transport.write(b"y" * BIG)
        await loop.sock_recv(peer, 1000)
        peer.shutdown(socket.SHUT_RDWR)
        peer.close()
        exc = await proto.lost
        await settle()
        transport.write(b"ignored")
        return exc, proto, transport

    exc, proto, transport = loop.run_until_complete(main())
    assert exc is None or isinstance(exc, OSError)
    assert proto.lost_calls == 1
    assert transport.get_write_buffer_size() == 0
    loop.close()


def test_write_to_reset_socket_without_buffer(loop, closing):
    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Proto(loop))
        transport.pause_reading()  # only the write can notice
        rst(peer)
        await settle()
        # The first send after a reset fails; the error goes to
        # connection_lost(), write() itself does not raise.
        transport.write(b"a")
        transport.write(b"b")
        exc = await proto.lost
        await settle()
        return exc, proto

    exc, proto = loop.run_until_complete(main())
    assert isinstance(exc, (ConnectionResetError, BrokenPipeError))
    assert proto.lost_calls == 1
    loop.close()


# -- connection_lost raising ---------------------------------------------------------------


@pytest.mark.parametrize("buffered", [False, True], ids=["empty-buffer", "pending-buffer"])
def test_connection_lost_raising_goes_to_handler(loop, errors, closing, buffered):
    class Bad(Proto):
        def connection_lost(self, exc):
            super().connection_lost(exc)
            raise ZeroDivisionError("in connection_lost")

    async def main():
        transport, proto, peer = await connect(loop, closing, lambda: Bad(loop))
        reader = None
        if buffered:
            transport.set_write_buffer_limits(high=BIG * 2)
            transport.write(b"z" * BIG)
            assert transport.get_write_buffer_size() > 0

            async def drain_peer():
                n = 0
                while True:
                    data = await loop.sock_recv(peer, 1 << 20)
                    if not data:
                        return n
                    n += len(data)

            reader = asyncio.ensure_future(drain_peer())
        transport.close()
        await proto.lost
        await settle()
        if reader is not None:
            assert await reader == BIG
        return proto, transport

    proto, transport = loop.run_until_complete(main())
    assert proto.lost_calls == 1
    assert len(errors) == 1
    assert isinstance(errors[0]["exception"], ZeroDivisionError)
    assert errors[0]["message"].startswith("Exception in callback")
    errors.clear()
    # The socket was closed all the same (the fixture checks descriptors).
    assert transport.get_extra_info("socket").fileno() == -1
    loop.close()


# -- accept() out of descriptors ----------------------------------------------------------------


@contextlib.contextmanager
def fd_exhaustion():
    """Use up every descriptor the process may open, under a lowered limit.
    Yields a callable that gives the descriptors back."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    fds = sorted(int(n) for n in os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (fds[-1] + 16, hard))
    hog = []

    def release():
        while hog:
            os.close(hog.pop())

    try:
        while True:
            try:
                hog.append(os.open(os.devnull, os.O_RDONLY))
            except OSError as exc:
                assert exc.errno == errno.EMFILE
                break
        yield release
    finally:
        release()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_accept_emfile_is_reported_and_recovers(loop, errors, monkeypatch):
    # asyncio waits ACCEPT_RETRY_DELAY (1 s) before accepting again; both
    # loops run asyncio's accept code, which reads the constant at call time.
    monkeypatch.setattr(asyncio.constants, "ACCEPT_RETRY_DELAY", 0.02)
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd")

    async def main():
        made = []

        def factory():
            made.append(Proto(loop))
            return made[-1]

        server = await loop.create_server(factory, "127.0.0.1", 0)
        addr = server.sockets[0].getsockname()
        clients = []
        try:
            # The connection waits in the kernel's accept queue ...
            c = socket.create_connection(addr)
            clients.append(c)
            # ... while the process has no descriptor left to accept it with.
            with fd_exhaustion() as release:
                while not errors:
                    await asyncio.sleep(0.005)
                # No connection could be made meanwhile.
                assert made == []
                release()
            # Descriptors are free again: the server accepts once more.
            while not made:
                await asyncio.sleep(0.005)
            proto = made[0]
            c.sendall(b"hello")
            while proto.received < 5:
                await asyncio.sleep(0.005)
            # It goes on accepting new connections too.
            c2 = socket.create_connection(addr)
            clients.append(c2)
            while len(made) < 2:
                await asyncio.sleep(0.005)
            for p in made:
                p.transport.close()
                await p.lost
            assert len(errors) >= 1
            for ctx in errors:
                assert ctx["message"] == "socket.accept() out of system resource"
                assert isinstance(ctx["exception"], OSError)
                assert ctx["exception"].errno == errno.EMFILE
                assert ctx["socket"].getsockname() == addr
            errors.clear()
        finally:
            for c in clients:
                c.close()
            server.close()
            await server.wait_closed()

    loop.run_until_complete(main())
    loop.close()


# -- a slow reader and a writer that respects flow control ------------------------------------------


# Small chunks are few: asyncio 3.12+ sums its write buffer on every write.
@pytest.mark.parametrize("chunk", [100, 4096, 65536, 300_000])
def test_slow_reader_keeps_writer_buffer_bounded(loop, closing, chunk):
    total = 4 * 1024 * 1024 if chunk > 100 else 1024 * 1024
    high = 64 * 1024

    class Writer(Proto):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.set_write_buffer_limits(high=high)
            self.sent = 0
            self.max_buffer = 0
            self.is_paused = False
            self.done = self.loop.create_future()
            self.produce()

        def produce(self):
            while not self.is_paused and self.sent < total:
                n = min(chunk, total - self.sent)
                self.transport.write(b"w" * n)
                self.sent += n
                self.max_buffer = max(self.max_buffer, self.transport.get_write_buffer_size())
            if self.sent >= total and not self.done.done():
                self.transport.write_eof()
                self.done.set_result(None)

        def pause_writing(self):
            super().pause_writing()
            self.is_paused = True

        def resume_writing(self):
            super().resume_writing()
            assert self.transport.get_write_buffer_size() <= high // 4
            self.is_paused = False
            self.produce()

    class SlowReader(Proto):
        def __init__(self, loop):
            super().__init__(loop)
            self.calls = 0
            self.eof = loop.create_future()

        def data_received(self, data):
            super().data_received(data)
            self.calls += 1
            if self.calls % 3 == 0:
                # Stop reading for a few loop iterations.
                self.transport.pause_reading()
                self.loop.call_soon(self.loop.call_soon, self.transport.resume_reading)

        def eof_received(self):
            super().eof_received()
            self.eof.set_result(None)
            return True

    async def main():
        a, b = socket.socketpair()
        rtransport, reader = await loop.connect_accepted_socket(lambda: SlowReader(loop), b)
        wtransport, writer = await loop.connect_accepted_socket(lambda: Writer(loop), a)
        await writer.done
        await reader.eof
        rtransport.close()
        wtransport.close()
        await reader.lost
        await writer.lost
        return writer, reader

    writer, reader = loop.run_until_complete(main())
    assert reader.received == total
    assert writer.max_buffer <= high + chunk
    assert writer.events.count("pause") >= 1
    assert writer.events.count("pause") == writer.events.count("resume")
    loop.close()
