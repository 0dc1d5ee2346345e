"""Pipe transports: loop.connect_read_pipe() and connect_write_pipe() over
os.pipe(), socket pairs and FIFOs -- reading, end of file, pausing, writing
at once and queued, flow control with the water marks, write_eof(),
close(), abort(), a reader that goes away, and the errors asyncio raises or
reports."""

import asyncio
import contextvars
import errno
import os
import socket

import pytest

# The multiplexer matters here: run on turboloop's poll(2) backend as well.
ALSO_POLL_BACKEND = True

BIG = 1024 * 1024


class ReadProto(asyncio.Protocol):
    def __init__(self, loop):
        self.events = []
        self.data = b""
        self.made = loop.create_future()
        self.lost = loop.create_future()
        self.got = asyncio.Event()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")
        self.made.set_result(None)

    def data_received(self, data):
        self.data += data
        if self.events[-1] != "data":
            self.events.append("data")
        self.got.set()

    def eof_received(self):
        self.events.append("eof")

    def connection_lost(self, exc):
        self.events.append(("lost", exc))
        self.lost.set_result(exc)


class WriteProto(asyncio.BaseProtocol):
    def __init__(self, loop):
        self.events = []
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")

    def pause_writing(self):
        self.events.append("pause")

    def resume_writing(self):
        self.events.append("resume")

    def connection_lost(self, exc):
        self.events.append(("lost", exc))
        self.lost.set_result(exc)


@pytest.fixture
def fds():
    """os.pipe() as (read file, write file), closed after the test if the
    test left them open."""
    r, w = os.pipe()
    rf, wf = os.fdopen(r, "rb", 0), os.fdopen(w, "wb", 0)
    yield rf, wf
    rf.close()
    wf.close()


async def settle(n=5):
    for _ in range(n):
        await asyncio.sleep(0)


# -- reading ---------------------------------------------------------------------


def test_read_pipe_data_and_eof(kind, loop, fds):
    rf, wf = fds

    async def main():
        transport, proto = await loop.connect_read_pipe(lambda: ReadProto(loop), rf)
        assert proto.events == ["made"]
        assert transport.get_extra_info("pipe") is rf
        assert transport.is_reading()
        os.write(wf.fileno(), b"hello ")
        os.write(wf.fileno(), b"world")
        wf.close()
        exc = await proto.lost
        return transport, proto, exc

    transport, proto, exc = loop.run_until_complete(main())
    assert exc is None
    assert proto.data == b"hello world"
    assert proto.events == ["made", "data", "eof", ("lost", None)]
    assert transport.is_closing()
    assert rf.closed            # the transport closed the pipe
    assert "closed" in repr(transport)
    transport.close()           # harmless now
    loop.close()


def test_read_pipe_pause_resume(kind, loop, fds):
    rf, wf = fds

    async def main():
        transport, proto = await loop.connect_read_pipe(lambda: ReadProto(loop), rf)
        transport.pause_reading()
        assert not transport.is_reading()
        transport.pause_reading()           # twice is fine
        os.write(wf.fileno(), b"x")
        await settle()
        assert proto.data == b""
        assert "idle" in repr(transport)
        transport.resume_reading()
        transport.resume_reading()
        assert "polling" in repr(transport)
        await proto.got.wait()
        transport.close()
        assert not transport.is_reading()
        transport.resume_reading()          # no effect once closing
        await proto.lost
        return proto

    proto = loop.run_until_complete(main())
    assert proto.data == b"x"
    assert proto.events == ["made", "data", ("lost", None)]
    loop.close()


def test_read_pipe_big_reads(kind, loop):
    """A socket pair as a pipe: reads come in chunks of at most 256 KiB."""
    a, b = socket.socketpair()
    b.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    sizes = []

    class Proto(ReadProto):
        def data_received(self, data):
            sizes.append(len(data))
            super().data_received(data)

    async def main():
        transport, proto = await loop.connect_read_pipe(lambda: Proto(loop), a)
        b.setblocking(False)
        total = 0
        while total < BIG:
            try:
                total += b.send(b"y" * (BIG - total))
            except BlockingIOError:
                await asyncio.sleep(0.001)
        b.close()
        await proto.lost
        return proto

    proto = loop.run_until_complete(main())
    assert len(proto.data) == BIG
    assert max(sizes) <= 256 * 1024
    loop.close()


def test_read_pipe_data_received_raises(kind, loop, errors, fds):
    rf, wf = fds

    class Proto(ReadProto):
        def data_received(self, data):
            super().data_received(data)
            raise ZeroDivisionError

    async def main():
        transport, proto = await loop.connect_read_pipe(lambda: Proto(loop), rf)
        os.write(wf.fileno(), b"1")
        await proto.got.wait()
        proto.got.clear()
        os.write(wf.fileno(), b"2")
        await proto.got.wait()
        transport.close()
        await proto.lost
        return proto

    proto = loop.run_until_complete(main())
    # Reported each time, as a failing callback; the transport reads on.
    assert proto.data == b"12"
    assert [type(c["exception"]) for c in errors] == [ZeroDivisionError] * 2
    assert all(c["message"].startswith("Exception in callback ") and "_read_ready" in c["message"]
               for c in errors)
    errors.clear()
    loop.close()


def test_read_pipe_regular_file_refused(kind, loop, tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"")

    async def main():
        with open(path, "rb") as f:
            with pytest.raises(ValueError, match="Pipe transport is for pipes/sockets only."):
                await loop.connect_read_pipe(lambda: ReadProto(loop), f)
            with open(path, "wb") as g:
                with pytest.raises(ValueError, match="pipes, sockets and character devices"):
                    await loop.connect_write_pipe(lambda: WriteProto(loop), g)

    loop.run_until_complete(main())
    loop.close()


def test_read_pipe_contexts(kind, loop, fds):
    """data_received runs in a copy of the context current when reading
    began; after resume_reading(), of the one current then."""
    rf, wf = fds
    var = contextvars.ContextVar("var", default="unset")
    seen = []

    class Proto(ReadProto):
        def data_received(self, data):
            seen.append(var.get())
            super().data_received(data)

    async def main():
        var.set("at-connect")
        transport, proto = await loop.connect_read_pipe(lambda: Proto(loop), rf)
        var.set("later")
        os.write(wf.fileno(), b"a")
        await proto.got.wait()
        proto.got.clear()
        transport.pause_reading()
        var.set("at-resume")
        transport.resume_reading()
        os.write(wf.fileno(), b"b")
        await proto.got.wait()
        transport.close()
        await proto.lost

    loop.run_until_complete(main())
    assert seen == ["at-connect", "at-resume"]
    loop.close()


# -- writing ---------------------------------------------------------------------


def test_write_pipe_immediate_and_eof(kind, loop, fds):
    rf, wf = fds

    async def main():
        transport, proto = await loop.connect_write_pipe(lambda: WriteProto(loop), wf)
        assert isinstance(transport, asyncio.WriteTransport)
        assert transport.can_write_eof()
        transport.write(b"abc")
        transport.write(bytearray(b"def"))
        transport.write(memoryview(b"ghi"))
        transport.write(b"")
        assert transport.get_write_buffer_size() == 0
        assert os.read(rf.fileno(), 100) == b"abcdefghi"
        transport.write_eof()
        assert transport.is_closing()
        transport.write_eof()
        exc = await proto.lost
        return transport, proto, exc

    transport, proto, exc = loop.run_until_complete(main())
    assert exc is None
    assert proto.events == ["made", ("lost", None)]
    assert wf.closed
    assert rf.read() == b""
    loop.close()


def test_write_pipe_flow_control(kind, loop, fds):
    rf, wf = fds

    async def main():
        transport, proto = await loop.connect_write_pipe(lambda: WriteProto(loop), wf)
        assert transport.get_write_buffer_limits() == (16384, 65536)
        transport.set_write_buffer_limits(high=100000)
        assert transport.get_write_buffer_limits() == (25000, 100000)
        with pytest.raises(ValueError):
            transport.set_write_buffer_limits(high=1, low=2)
        data = bytes(range(256)) * (BIG // 256)
        transport.write(data)
        size = transport.get_write_buffer_size()
        assert 0 < size < BIG
        assert proto.events == ["made", "pause"]
        assert "polling" in repr(transport) and f"bufsize={size}" in repr(transport)
        # A reader in a thread drains the pipe.
        got = await loop.run_in_executor(None, read_exactly, rf, BIG)
        await settle()
        assert transport.get_write_buffer_size() == 0
        transport.close()
        await proto.lost
        return proto, got == data

    proto, same = loop.run_until_complete(main())
    assert same
    # asyncio's pipes resume once their buffer is empty.
    assert proto.events == ["made", "pause", "resume", ("lost", None)]
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()


def read_exactly(f, n):
    out = bytearray()
    while len(out) < n:
        chunk = os.read(f.fileno(), n - len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def test_write_pipe_mutable_data_is_copied(kind, loop, fds):
    rf, wf = fds

    async def main():
        transport, proto = await loop.connect_write_pipe(lambda: WriteProto(loop), wf)
        transport.set_write_buffer_limits(high=BIG * 4)
        filler = b"f" * (1 << 20)
        transport.write(filler)                # fills the pipe; the rest is queued
        buf = bytearray(b"before")
        transport.write(buf)
        buf[:] = b"AFTER!"
        transport.write(memoryview(buf)[:3])
        buf[:] = b"xxxxxx"
        got = await loop.run_in_executor(None, read_exactly, rf, len(filler) + 9)
        transport.abort()
        await proto.lost
        return got[len(filler):]

    assert loop.run_until_complete(main()) == b"beforeAFT"
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()


def test_write_pipe_close_flushes_first(kind, loop, fds):
    rf, wf = fds

    async def main():
        transport, proto = await loop.connect_write_pipe(lambda: WriteProto(loop), wf)
        transport.write(b"z" * BIG)
        transport.close()
        assert transport.is_closing()
        transport.write(b"dropped")
        got = await loop.run_in_executor(None, rf.read)
        return got, await proto.lost

    got, exc = loop.run_until_complete(main())
    assert got == b"z" * BIG
    assert exc is None
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()


def test_write_pipe_abort_drops_the_queue(kind, loop, fds):
    rf, wf = fds

    async def main():
        transport, proto = await loop.connect_write_pipe(lambda: WriteProto(loop), wf)
        transport.write(b"z" * BIG)
        assert transport.get_write_buffer_size() > 0
        transport.abort()
        assert transport.get_write_buffer_size() == 0
        exc = await proto.lost
        return proto, exc, rf.read()

    proto, exc, got = loop.run_until_complete(main())
    assert exc is None
    assert 0 < len(got) < BIG
    assert proto.events == ["made", "pause", ("lost", None)]
    loop.close()


def test_write_pipe_reader_goes_away(kind, loop, fds):
    """The reading end closes: connection_lost(None) when nothing was
    queued, BrokenPipeError when something was."""
    rf, wf = fds
    r2, w2 = os.pipe()
    wf2 = os.fdopen(w2, "wb", 0)

    async def main():
        t1, p1 = await loop.connect_write_pipe(lambda: WriteProto(loop), wf)
        t2, p2 = await loop.connect_write_pipe(lambda: WriteProto(loop), wf2)
        t2.write(b"q" * BIG)
        rf.close()
        os.close(r2)
        return await p1.lost, await p2.lost, p2

    exc1, exc2, p2 = loop.run_until_complete(main())
    assert exc1 is None
    assert isinstance(exc2, BrokenPipeError)
    assert p2.events == ["made", "pause", ("lost", exc2)]
    loop.close()


def test_write_pipe_write_after_loss(kind, loop, fds, asyncio_log):
    rf, wf = fds

    async def main():
        transport, proto = await loop.connect_write_pipe(lambda: WriteProto(loop), wf)
        rf.close()
        # The first write finds the pipe broken: connection_lost(EPIPE).
        transport.write(b"x")
        exc = await proto.lost
        for _ in range(6):
            transport.write(b"x")
        return exc

    exc = loop.run_until_complete(main())
    assert isinstance(exc, BrokenPipeError)
    warnings = [r.getMessage() for r in asyncio_log.take()]
    assert warnings.count("pipe closed by peer or os.write(pipe, data) raised exception.") == 2
    loop.close()


def test_write_pipe_bad_data(kind, loop, fds):
    rf, wf = fds

    async def main():
        transport, proto = await loop.connect_write_pipe(lambda: WriteProto(loop), wf)
        with pytest.raises(AssertionError):
            transport.write("text")
        transport.close()
        await proto.lost

    loop.run_until_complete(main())
    loop.close()


def test_write_pipe_pause_writing_raises(kind, loop, errors, fds):
    rf, wf = fds

    class Proto(WriteProto):
        def pause_writing(self):
            raise ZeroDivisionError

    async def main():
        transport, proto = await loop.connect_write_pipe(lambda: Proto(loop), wf)
        transport.write(b"z" * BIG)
        transport.abort()
        await proto.lost

    loop.run_until_complete(main())
    assert [c["message"] for c in errors] == ["protocol.pause_writing() failed"]
    assert isinstance(errors[0]["exception"], ZeroDivisionError)
    errors.clear()
    loop.close()


def test_write_to_a_fifo(kind, loop, tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    rfd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)

    async def main():
        with open(path, "wb", 0) as f:
            transport, proto = await loop.connect_write_pipe(lambda: WriteProto(loop), f)
            transport.write(b"through a fifo")
            await settle()
            got = os.read(rfd, 100)
            os.close(rfd)
            return got, await proto.lost

    got, exc = loop.run_until_complete(main())
    assert got == b"through a fifo"
    assert exc is None
    loop.close()


def test_unclosed_pipe_transport_warns(kind, loop, fds):
    rf, wf = fds

    async def main():
        await loop.connect_read_pipe(lambda: ReadProto(loop), rf)

    loop.run_until_complete(main())
    loop.close()
    with pytest.warns(ResourceWarning, match="unclosed transport"):
        import gc
        gc.collect()
    assert rf.closed


def test_read_error_other_than_eio(kind, loop, errors, fds):
    """A read error is reported to the exception handler (EIO, what a pty
    gives, only in debug mode) and closes the transport."""
    rf, wf = fds

    async def main():
        transport, proto = await loop.connect_read_pipe(lambda: ReadProto(loop), rf)
        exc = OSError(errno.EBADF, "bad")
        transport._fatal_error(exc, "Fatal read error on pipe transport")
        assert transport.is_closing()
        return await proto.lost, exc

    lost, exc = loop.run_until_complete(main())
    assert lost is exc
    assert [c["message"] for c in errors] == ["Fatal read error on pipe transport"]
    errors.clear()

    r, w = os.pipe()

    async def eio():
        with os.fdopen(r, "rb", 0) as f:
            transport, proto = await loop.connect_read_pipe(lambda: ReadProto(loop), f)
            transport._fatal_error(OSError(errno.EIO, "io"))
            return await proto.lost

    assert loop.run_until_complete(eio()).errno == errno.EIO
    assert errors == []
    os.close(w)
    loop.close()
