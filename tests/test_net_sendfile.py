"""loop.sendfile() over the stream transport: the native path (os.sendfile
once the transport's buffer is empty), the fallback path (reads and
transport writes with flow control, taken for non-regular files or with a
TLS transport), offset/count, data written before and after, writes refused
while a sendfile is in progress, a reading protocol restored afterwards, and
a peer that goes away mid-transfer."""

import asyncio
import io
import os
import socket

import pytest

SIZE = 6 * 1024 * 1024 + 17


@pytest.fixture
def datafile(tmp_path, closing):
    data = os.urandom(SIZE)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    return data, closing(open(path, "rb"))


class Proto(asyncio.Protocol):
    def __init__(self, loop):
        self.lost = loop.create_future()
        self.data = bytearray()
        self.events = []

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.data += data

    def pause_writing(self):
        self.events.append("pause")

    def resume_writing(self):
        self.events.append("resume")

    def connection_lost(self, exc):
        self.lost.set_result(exc)


async def connect(loop, closing, family="unix"):
    if family == "tcp":
        with socket.create_server(("127.0.0.1", 0)) as srv:
            a = socket.create_connection(srv.getsockname())
            b, _ = srv.accept()
    else:
        a, b = socket.socketpair()
    closing(b)
    b.setblocking(False)
    transport, proto = await loop.connect_accepted_socket(lambda: Proto(loop), a)
    return transport, proto, b


async def read_all(loop, sock, n):
    out = bytearray()
    while len(out) < n:
        chunk = await loop.sock_recv(sock, 1 << 20)
        if not chunk:
            break
        out += chunk
    return bytes(out)


@pytest.mark.parametrize("family", ["unix", "tcp"])
def test_sendfile_native(loop, closing, datafile, family):
    data, f = datafile

    async def main():
        transport, proto, peer = await connect(loop, closing, family)
        reader = asyncio.ensure_future(read_all(loop, peer, SIZE + 6))
        transport.write(b"head:")
        sent = await loop.sendfile(transport, f, fallback=False)
        transport.write(b"!")
        received = await reader
        transport.close()
        await proto.lost
        return sent, received

    sent, received = loop.run_until_complete(main())
    assert sent == SIZE
    assert received == b"head:" + data + b"!"
    assert f.tell() == SIZE
    loop.close()


def test_sendfile_offset_and_count(loop, closing, datafile):
    data, f = datafile

    async def main():
        transport, proto, peer = await connect(loop, closing)
        reader = asyncio.ensure_future(read_all(loop, peer, 100_000))
        sent = await loop.sendfile(transport, f, 12345, 100_000)
        received = await reader
        transport.close()
        await proto.lost
        return sent, received

    sent, received = loop.run_until_complete(main())
    assert sent == 100_000
    assert received == data[12345:112345]
    assert f.tell() == 112345
    loop.close()


def test_sendfile_waits_for_a_full_buffer(loop, closing, datafile):
    data, f = datafile
    head = b"h" * (8 * 1024 * 1024)

    async def main():
        transport, proto, peer = await connect(loop, closing)
        transport.write(head)
        assert transport.get_write_buffer_size() > 0
        assert proto.events == ["pause"]
        reader = asyncio.ensure_future(read_all(loop, peer, len(head) + SIZE))
        sent = await loop.sendfile(transport, f)
        received = await reader
        transport.close()
        await proto.lost
        return sent, received

    sent, received = loop.run_until_complete(main())
    assert sent == SIZE
    assert received[:len(head)] == head
    assert received[len(head):] == data
    loop.close()


def test_write_refused_during_sendfile(loop, closing, datafile):
    data, f = datafile

    async def main():
        transport, proto, peer = await connect(loop, closing)
        task = asyncio.ensure_future(loop.sendfile(transport, f))
        for _ in range(3):
            await asyncio.sleep(0)
        assert not task.done()
        with pytest.raises(RuntimeError, match="sendfile is in progress"):
            transport.write(b"x")
        with pytest.raises(RuntimeError, match="sendfile is in progress"):
            transport.writelines([b"x"])
        received = await read_all(loop, peer, SIZE)
        assert await task == SIZE
        # Writable again afterwards.
        transport.write(b"tail")
        received += await read_all(loop, peer, 4)
        transport.close()
        await proto.lost
        return received

    assert loop.run_until_complete(main()) == data + b"tail"
    loop.close()


def test_sendfile_fallback_for_non_regular_file(loop, closing):
    data = os.urandom(3 * 1024 * 1024)

    async def main():
        transport, proto, peer = await connect(loop, closing)
        # Reading is paused during the fallback and resumed after it.
        peer.send(b"from peer during sendfile")
        reader = asyncio.ensure_future(read_all(loop, peer, len(data)))
        sent = await loop.sendfile(transport, io.BytesIO(data))
        received = await reader
        assert transport.get_protocol() is proto
        assert transport.is_reading()
        while len(proto.data) < 25:
            await asyncio.sleep(0)
        transport.close()
        await proto.lost
        return sent, received, bytes(proto.data)

    sent, received, got = loop.run_until_complete(main())
    assert sent == len(data)
    assert received == data
    assert got == b"from peer during sendfile"
    loop.close()


def test_sendfile_fallback_while_protocol_paused(loop, closing):
    data = os.urandom(1024 * 1024)
    head = b"h" * (8 * 1024 * 1024)

    async def main():
        transport, proto, peer = await connect(loop, closing)
        transport.write(head)
        assert proto.events == ["pause"]
        reader = asyncio.ensure_future(read_all(loop, peer, len(head) + len(data)))
        sent = await loop.sendfile(transport, io.BytesIO(data))
        received = await reader
        transport.close()
        await proto.lost
        return sent, received

    sent, received = loop.run_until_complete(main())
    assert sent == len(data)
    assert received == head + data
    loop.close()


def test_sendfile_no_fallback_raises(loop, closing):
    async def main():
        transport, proto, peer = await connect(loop, closing)
        with pytest.raises(asyncio.SendfileNotAvailableError):
            await loop.sendfile(transport, io.BytesIO(b"abc"), fallback=False)
        transport.write(b"still usable")
        assert await read_all(loop, peer, 12) == b"still usable"
        transport.close()
        await proto.lost

    loop.run_until_complete(main())
    loop.close()


def test_sendfile_on_closing_transport(loop, closing, datafile):
    _, f = datafile

    async def main():
        transport, proto, peer = await connect(loop, closing)
        transport.close()
        with pytest.raises(RuntimeError, match="closing"):
            await loop.sendfile(transport, f)
        await proto.lost

    loop.run_until_complete(main())
    loop.close()


def test_sendfile_peer_resets_mid_transfer(loop, closing, datafile):
    import struct
    _, f = datafile

    async def main():
        transport, proto, peer = await connect(loop, closing, "tcp")
        task = asyncio.ensure_future(loop.sendfile(transport, f))
        await loop.sock_recv(peer, 1000)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()
        with pytest.raises((ConnectionError, OSError)):
            await task
        exc = await proto.lost
        return exc

    exc = loop.run_until_complete(main())
    # The sendfile took the error; reading then sees the end of the stream.
    assert exc is None or isinstance(exc, OSError)
    loop.close()
