"""The TLS protocol and transport under load and at their edges, on asyncio
and on turboloop: TLS 1.2 and 1.3, records split across reads (and read
whole), large writes with pause_writing/resume_writing, a peer that closes
in the middle of a record or sends garbage, handshake timeouts, start_tls
with a BufferedProtocol, BufferedProtocol applications with small and
exactly filled buffers, the transport's API and error paths (type errors,
writes after close, abort, eof_received's return value, a raising
data_received, a raising pause_writing), and a read that another
connection's close interrupts.

On turboloop every read the protocol skips as empty is made anyway and must
fail with SSLWantReadError (_core._ssl_check_reads): a skip that would have
lost data fails the test."""

import asyncio
import logging
import os
import random
import shutil
import socket
import ssl
import subprocess
import threading

import pytest

from test_net_tls import HOST, certs, checked_reads, close_server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("checked_reads")


def contexts(certs, version=None):
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(certs["cert.pem"], certs["key.pem"])
    client = ssl.create_default_context(cafile=certs["ca.pem"])
    if version is not None:
        server.maximum_version = client.maximum_version = version
        server.minimum_version = client.minimum_version = version
    return server, client


class Collect(asyncio.Protocol):
    """Keeps what it receives and what happens to the connection."""

    def __init__(self, loop, want=None):
        self.loop = loop
        self.data = bytearray()
        self.events = []
        self.lost = loop.create_future()
        self.got = loop.create_future()
        self.want = want

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")

    def data_received(self, data):
        assert isinstance(data, bytes)
        self.data += data
        if self.want is not None and len(self.data) >= self.want and not self.got.done():
            self.got.set_result(None)

    def eof_received(self):
        self.events.append("eof")

    def connection_lost(self, exc):
        self.events.append("lost")
        if not self.lost.done():
            self.lost.set_result(exc)


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def tls_server(loop, factory, ctx, **kwargs):
    server = await loop.create_server(factory, "127.0.0.1", 0, ssl=ctx, **kwargs)
    return server, server.sockets[0].getsockname()[1]


# -- a peer that speaks TLS by hand, from a thread ---------------------------------------------


class RawPeer:
    """A blocking TLS client on an ssl.SSLObject, so the test decides how the
    bytes of records are cut into TCP segments."""

    def __init__(self, port, ctx, version=None):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(30)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname=HOST)
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.flush()
                self.pull()
        self.flush()

    def flush(self):
        data = self.outgoing.read()
        if data:
            self.sock.sendall(data)

    def pull(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("peer closed")
        self.incoming.write(data)

    def records(self, payload):
        """The TLS bytes of payload, not sent."""
        self.obj.write(payload)
        return self.outgoing.read()

    def read_exactly(self, n):
        out = bytearray()
        while len(out) < n:
            try:
                out += self.obj.read(n - len(out))
            except ssl.SSLWantReadError:
                self.pull()
        return bytes(out)

    def close(self):
        self.sock.close()


def in_thread(fn):
    """Run fn in a thread; the returned function joins it and re-raises."""
    box = {}

    def run():
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["exc"] = exc

    t = threading.Thread(target=run)
    t.start()

    def join():
        t.join(60)
        assert not t.is_alive()
        if "exc" in box:
            raise box["exc"]
        return box.get("result")

    return join


# -- data paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_echo_sizes_and_versions(loop, certs, version):
    server_ctx, client_ctx = contexts(certs, getattr(ssl.TLSVersion, version))
    rnd = random.Random(7)
    messages = [os.urandom(n) for n in (1, 1024, 16384, 16385, 100_000, 3)]
    messages += [os.urandom(rnd.randrange(1, 40000)) for _ in range(20)]
    total = b"".join(messages)

    async def main():
        server, port = await tls_server(loop, Echo, server_ctx)
        transport, proto = await loop.create_connection(
            lambda: Collect(loop, len(total)), "127.0.0.1", port, ssl=client_ctx, server_hostname=HOST)
        negotiated = transport.get_extra_info("ssl_object").version()
        for m in messages:
            transport.write(m)
        await proto.got
        transport.close()
        await proto.lost
        await close_server(server)
        return negotiated, bytes(proto.data), proto.events

    negotiated, data, events = loop.run_until_complete(main())
    assert negotiated == version.replace("_", ".")
    assert data == total
    # The peer answers our close_notify with its own.
    assert events == ["made", "eof", "lost"]
    loop.close()


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_records_split_at_every_position(loop, certs, version):
    # Records cut into pieces of random sizes (a header in two, several
    # records in one segment, a record over many): the data arrives whole and
    # in order.
    server_ctx, client_ctx = contexts(certs, getattr(ssl.TLSVersion, version))
    rnd = random.Random(11)
    payloads = [os.urandom(rnd.choice((1, 5, 7, 100, 1000, 5000))) for _ in range(60)]
    total = b"".join(payloads)

    async def main():
        made = []

        def factory():
            made.append(Collect(loop, len(total)))
            return made[-1]

        server, port = await tls_server(loop, factory, server_ctx)

        def peer():
            p = RawPeer(port, client_ctx)
            try:
                wire = b"".join(p.records(x) for x in payloads)
                i = 0
                while i < len(wire):
                    n = rnd.choice((1, 2, 3, 4, 5, 6, 13, 100, 1500, 20000))
                    p.sock.sendall(wire[i:i + n])
                    i += n
                    if rnd.random() < 0.3:
                        threading.Event().wait(0.001)
                return p.read_exactly(3)
            finally:
                p.close()

        join = in_thread(peer)
        while not made:
            await asyncio.sleep(0.001)
        await made[0].got
        made[0].transport.write(b"end")
        await loop.run_in_executor(None, join)
        await made[0].lost
        await close_server(server)
        return bytes(made[0].data)

    assert loop.run_until_complete(main()) == total
    loop.close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl tool")
@pytest.mark.parametrize("padding", [None, 256])
@pytest.mark.parametrize("suite", ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                   "TLS_CHACHA20_POLY1305_SHA256"])
def test_echo_each_tls13_suite_one_record_at_a_time(loop, certs, suite, padding):
    # openssl s_client as the peer, which can choose the TLS 1.3 cipher
    # suite and pad its records: every message comes as records of its own
    # (one at a time), of each size up to the largest a record holds, and
    # comes back whole.
    server_ctx, _ = contexts(certs)
    sizes = [1, 2, 15, 16, 17, 18, 100, 1000, 1024, 4096, 16383, 16384, 16385, 40000]
    messages = [os.urandom(n) for n in sizes]

    async def main():
        made = []
        server, port = await tls_server(loop, lambda: made.append(Echo()) or made[-1], server_ctx)
        cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-quiet", "-tls1_3",
               "-ciphersuites", suite]
        if padding:
            cmd += ["-record_padding", str(padding)]

        def peer():
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL)
            # An echo that never comes ends the peer rather than the run.
            timer = threading.Timer(30, proc.kill)
            timer.start()
            got = []
            try:
                for m in messages:
                    proc.stdin.write(m)
                    proc.stdin.flush()
                    out = bytearray()
                    while len(out) < len(m):
                        chunk = proc.stdout.read1(len(m) - len(out))
                        if not chunk:
                            break
                        out += chunk
                    got.append(bytes(out))
            finally:
                timer.cancel()
                proc.kill()
                proc.wait()
                proc.stdin.close()
                proc.stdout.close()
            return got

        join = in_thread(peer)
        got = await loop.run_in_executor(None, join)
        cipher = made[0].transport.get_extra_info("cipher")[0] if made else None
        for p in made:
            p.transport.close()
        await close_server(server)
        return got, cipher

    got, cipher = loop.run_until_complete(main())
    assert cipher == suite
    assert [len(g) for g in got] == sizes
    assert got == messages
    loop.close()


def test_large_writes_pause_and_resume(loop, certs):
    server_ctx, client_ctx = contexts(certs)
    chunk = os.urandom(256 * 1024)
    count = 24

    class Sender(asyncio.Protocol):
        def __init__(self):
            self.calls = []
            self.sizes = []
            self.lost = loop.create_future()

        def connection_made(self, transport):
            self.transport = transport
            transport.set_write_buffer_limits(high=128 * 1024)
            self.limits = transport.get_write_buffer_limits()
            for _ in range(count):
                transport.write(chunk)
            self.sizes.append(transport.get_write_buffer_size())

        def pause_writing(self):
            self.calls.append("pause")
            self.sizes.append(self.transport.get_write_buffer_size())

        def resume_writing(self):
            self.calls.append("resume")
            self.sizes.append(self.transport.get_write_buffer_size())

        def connection_lost(self, exc):
            self.lost.set_result(exc)

    async def main():
        senders = []
        server, port = await tls_server(loop, lambda: senders.append(Sender()) or senders[-1], server_ctx)
        transport, proto = await loop.create_connection(
            lambda: Collect(loop, count * len(chunk)), "127.0.0.1", port, ssl=client_ctx,
            server_hostname=HOST)
        # Read slowly at first, so the server's buffers fill up.
        transport.pause_reading()
        assert not transport.is_reading()
        await asyncio.sleep(0.2)
        transport.resume_reading()
        assert transport.is_reading()
        await proto.got
        transport.close()
        await proto.lost
        await senders[0].lost
        await close_server(server)
        return senders[0], bytes(proto.data)

    sender, data = loop.run_until_complete(main())
    assert data == chunk * count
    assert sender.limits == (32 * 1024, 128 * 1024)
    assert sender.calls[0] == "pause" and sender.calls[-1] == "resume"
    assert sender.calls == ["pause", "resume"] * (len(sender.calls) // 2)
    # Paused above the high-water mark, resumed at or below the low one.
    assert sender.sizes[0] >= 128 * 1024
    assert all(s <= 32 * 1024 for c, s in zip(sender.calls, sender.sizes[1:]) if c == "resume")
    loop.close()


def test_buffered_protocol_small_and_exact_buffers(loop, certs):
    server_ctx, client_ctx = contexts(certs)
    payload = os.urandom(50_000)

    class Buffered(asyncio.BufferedProtocol):
        def __init__(self, size):
            # A memoryview: asyncio reads the rest of a buffer into
            # buf[offset:], which for a bytearray is a copy (turboloop reads
            # into the buffer itself).
            self.buf = memoryview(bytearray(size))
            self.data = bytearray()
            self.got = loop.create_future()
            self.lost = loop.create_future()
            self.hints = 0

        def connection_made(self, transport):
            self.transport = transport

        def get_buffer(self, sizehint):
            assert isinstance(sizehint, int) and sizehint >= 0
            self.hints += 1
            return self.buf

        def buffer_updated(self, n):
            assert 0 < n <= len(self.buf)
            self.data += self.buf[:n]
            if len(self.data) >= len(payload) and not self.got.done():
                self.got.set_result(None)

        def eof_received(self):
            pass

        def connection_lost(self, exc):
            self.lost.set_result(exc)

    async def run(size):
        server, port = await tls_server(loop, Echo, server_ctx)
        transport, proto = await loop.create_connection(
            lambda: Buffered(size), "127.0.0.1", port, ssl=client_ctx, server_hostname=HOST)
        for i in range(0, len(payload), 1000):
            transport.write(payload[i:i + 1000])
        await proto.got
        transport.close()
        exc = await proto.lost
        await close_server(server)
        return bytes(proto.data), exc, proto.hints

    for size in (7, 1000, 65536):
        data, exc, hints = loop.run_until_complete(run(size))
        assert data == payload
        assert exc is None
        assert hints >= len(payload) // size
    loop.close()


def test_start_tls_with_buffered_protocol(loop, certs):
    server_ctx, client_ctx = contexts(certs)

    class Upgrading(asyncio.BufferedProtocol):
        def __init__(self):
            self.buf = bytearray(64)
            self.data = bytearray()
            self.tls = loop.create_future()
            self.got = loop.create_future()

        def connection_made(self, transport):
            self.transport = transport

        def get_buffer(self, sizehint):
            return self.buf

        def buffer_updated(self, n):
            self.data += self.buf[:n]
            if self.data == b"STARTTLS\n" and not self.tls.done():
                self.data.clear()
                self.tls.set_result(None)
            elif len(self.data) >= 20000 and not self.got.done():
                self.got.set_result(None)

        def connection_lost(self, exc):
            pass

    async def main():
        servers = []
        server = await loop.create_server(lambda: servers.append(Upgrading()) or servers[-1],
                                          "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"STARTTLS\n")
        while not servers:
            await asyncio.sleep(0.001)
        srv = servers[0]
        await srv.tls
        upgrade = asyncio.ensure_future(loop.start_tls(srv.transport, srv, server_ctx, server_side=True))
        await writer.start_tls(client_ctx, server_hostname=HOST)
        tls = await upgrade
        payload = bytes(range(200)) * 100
        writer.write(payload)
        await srv.got
        tls.write(b"done")
        assert await reader.readexactly(4) == b"done"
        writer.close()
        await writer.wait_closed()
        tls.close()
        await close_server(server)
        return bytes(srv.data), payload, type(tls).__name__

    data, payload, name = loop.run_until_complete(main())
    assert data == payload
    assert name == "_SSLProtocolTransport"
    loop.close()


# -- the peer misbehaves ------------------------------------------------------------------------------


def test_peer_closes_in_the_middle_of_a_record(loop, certs):
    server_ctx, client_ctx = contexts(certs)

    async def main():
        made = []
        server, port = await tls_server(loop, lambda: made.append(Collect(loop)) or made[-1], server_ctx)

        def peer():
            p = RawPeer(port, client_ctx)
            whole = p.records(b"whole record")
            cut = p.records(b"x" * 1000)
            p.sock.sendall(whole + cut[:len(cut) // 2])
            threading.Event().wait(0.1)
            p.sock.shutdown(socket.SHUT_WR)
            try:
                while p.sock.recv(65536):
                    pass
            except OSError:
                pass
            p.close()

        join = in_thread(peer)
        while not made:
            await asyncio.sleep(0.001)
        exc = await asyncio.wait_for(made[0].lost, 30)
        await loop.run_in_executor(None, join)
        await close_server(server)
        return bytes(made[0].data), made[0].events, exc

    data, events, exc = loop.run_until_complete(main())
    assert data == b"whole record"
    assert events == ["made", "eof", "lost"]
    assert exc is None
    loop.close()


def test_peer_sends_garbage_after_the_handshake(loop, certs, errors):
    server_ctx, client_ctx = contexts(certs)

    async def main():
        made = []
        server, port = await tls_server(loop, lambda: made.append(Collect(loop)) or made[-1], server_ctx)

        def peer():
            p = RawPeer(port, client_ctx)
            p.sock.sendall(p.records(b"fine"))
            threading.Event().wait(0.2)
            p.sock.sendall(b"\x17\x03\x03\x00\x20" + b"\x00" * 32 + b"GET / HTTP/1.0\r\n")
            try:
                while p.sock.recv(65536):
                    pass
            except OSError:
                pass
            p.close()

        join = in_thread(peer)
        while not made:
            await asyncio.sleep(0.001)
        exc = await asyncio.wait_for(made[0].lost, 30)
        await loop.run_in_executor(None, join)
        await close_server(server)
        return bytes(made[0].data), exc

    data, exc = loop.run_until_complete(main())
    assert data == b"fine"
    assert isinstance(exc, ssl.SSLError)
    # An SSLError is an OSError: logged in debug mode only, not handled.
    assert errors == []
    loop.close()


def test_handshake_timeout_in_the_middle_of_the_hello(loop, certs):
    server_ctx, client_ctx = contexts(certs)

    async def main():
        made = []
        server, port = await tls_server(loop, lambda: made.append(Collect(loop)) or made[-1], server_ctx,
                                        ssl_handshake_timeout=0.2)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = client_ctx.wrap_bio(incoming, outgoing, server_hostname=HOST)
        with pytest.raises(ssl.SSLWantReadError):
            obj.do_handshake()
        hello = outgoing.read()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(hello[:len(hello) // 2])
        with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(reader.readexactly(1), 30)
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionResetError:
            pass
        await close_server(server)
        return [m.events for m in made]

    # The protocol was made for the connection, which never came up.
    assert loop.run_until_complete(main()) == [[]]
    loop.close()


# -- the transport's API ------------------------------------------------------------------------------


def test_transport_api_and_errors(loop, certs, asyncio_log):
    server_ctx, client_ctx = contexts(certs)

    async def main():
        server, port = await tls_server(loop, Echo, server_ctx)
        transport, proto = await loop.create_connection(
            lambda: Collect(loop, 12), "127.0.0.1", port, ssl=client_ctx, server_hostname=HOST)
        results = {}
        with pytest.raises(TypeError) as info:
            transport.write("text")
        results["type error"] = str(info.value)
        transport.write(b"")
        transport.writelines([b"ab", bytearray(b"cd"), memoryview(b"efgh")])
        transport.write(memoryview(b"ijkl"))
        await proto.got
        results["data"] = bytes(proto.data)
        results["can_write_eof"] = transport.can_write_eof()
        with pytest.raises(NotImplementedError):
            transport.write_eof()
        results["extra"] = {k: transport.get_extra_info(k) is not None
                            for k in ("sslcontext", "ssl_object", "peercert", "cipher", "socket",
                                      "peername", "sockname")}
        results["missing"] = transport.get_extra_info("no such key", "default")
        results["protocol"] = transport.get_protocol() is proto
        results["limits"] = transport.get_write_buffer_limits()
        results["read limits"] = transport.get_read_buffer_limits()
        results["closing before"] = transport.is_closing()
        transport.close()
        results["closing after"] = transport.is_closing()
        for _ in range(8):
            transport.write(b"late")
        results["lost"] = await proto.lost
        await close_server(server)
        return results

    results = loop.run_until_complete(main())
    assert results == {
        "type error": "data: expecting a bytes-like instance, got str",
        "data": b"abcdefghijkl",
        "can_write_eof": False,
        "extra": dict.fromkeys(("sslcontext", "ssl_object", "peercert", "cipher", "socket",
                                "peername", "sockname"), True),
        "missing": "default",
        "protocol": True,
        "limits": (128 * 1024, 512 * 1024),
        "read limits": (64 * 1024, 256 * 1024),
        "closing before": False,
        "closing after": True,
        "lost": None,
    }
    warnings = [r.getMessage() for r in asyncio_log.take(logging.WARNING)]
    assert warnings == ["SSL connection is closed"] * 3
    loop.close()


def test_abort_drops_buffered_data(loop, certs):
    server_ctx, client_ctx = contexts(certs)

    async def main():
        server, port = await tls_server(loop, lambda: Collect(loop), server_ctx)
        transport, proto = await loop.create_connection(
            lambda: Collect(loop), "127.0.0.1", port, ssl=client_ctx, server_hostname=HOST)
        transport.write(b"x" * 100_000)
        transport.abort()
        closing = transport.is_closing()
        exc = await proto.lost
        await close_server(server)
        return closing, exc, proto.events

    closing, exc, events = loop.run_until_complete(main())
    assert closing
    assert exc is None
    assert events == ["made", "lost"]
    loop.close()


def test_eof_received_returning_true_is_ignored(loop, certs, asyncio_log):
    server_ctx, client_ctx = contexts(certs)

    class KeepOpen(Collect):
        def eof_received(self):
            super().eof_received()
            return True

    async def main():
        made = []
        server, port = await tls_server(loop, lambda: made.append(KeepOpen(loop)) or made[-1], server_ctx)
        transport, proto = await loop.create_connection(
            lambda: Collect(loop), "127.0.0.1", port, ssl=client_ctx, server_hostname=HOST)
        transport.write(b"bye")
        transport.close()
        await proto.lost
        exc = await made[0].lost
        await close_server(server)
        return made[0].events, bytes(made[0].data), exc

    events, data, exc = loop.run_until_complete(main())
    assert events == ["made", "eof", "lost"]
    assert data == b"bye"
    assert exc is None
    warnings = [r.getMessage() for r in asyncio_log.take(logging.WARNING)]
    assert warnings == ["returning true from eof_received() has no effect when using ssl"]
    loop.close()


def test_raising_data_received_is_a_fatal_error(loop, certs, errors):
    server_ctx, client_ctx = contexts(certs)

    class Raising(Collect):
        def data_received(self, data):
            raise ZeroDivisionError("boom")

    async def main():
        made = []
        server, port = await tls_server(loop, lambda: made.append(Raising(loop)) or made[-1], server_ctx)
        transport, proto = await loop.create_connection(
            lambda: Collect(loop), "127.0.0.1", port, ssl=client_ctx, server_hostname=HOST)
        transport.write(b"x")
        exc = await made[0].lost
        await proto.lost
        await close_server(server)
        return exc

    exc = loop.run_until_complete(main())
    assert isinstance(exc, ZeroDivisionError)
    assert len(errors) == 1
    ctx = errors.pop()
    assert ctx["message"] == "Fatal error on SSL protocol"
    assert ctx["exception"] is exc
    assert type(ctx["protocol"]).__name__ == "SSLProtocol"
    loop.close()


def test_raising_pause_writing_goes_to_the_handler(loop, certs, errors):
    server_ctx, client_ctx = contexts(certs)

    class Raising(Collect):
        def pause_writing(self):
            raise ValueError("no pause")

    async def main():
        server, port = await tls_server(loop, Echo, server_ctx)
        transport, proto = await loop.create_connection(
            lambda: Raising(loop, 10), "127.0.0.1", port, ssl=client_ctx, server_hostname=HOST)
        transport.set_write_buffer_limits(high=0)
        transport.write(b"0123456789")
        await proto.got
        transport.close()
        await proto.lost
        await close_server(server)
        return transport

    transport = loop.run_until_complete(main())
    assert errors
    for ctx in errors:
        assert ctx["message"] == "protocol.pause_writing() failed"
        assert isinstance(ctx["exception"], ValueError)
        assert ctx["transport"] is transport
    errors.clear()
    loop.close()


def test_close_of_another_connection_during_a_read(loop, certs):
    # SSLContext._msg_callback runs inside the SSL object's read; closing
    # another TLS connection there makes that connection read too, in the
    # middle of the first one's read.  Both keep their data.
    server_ctx, client_ctx = contexts(certs)
    conns = []
    closed = []

    armed = []

    def on_message(conn, direction, version, content_type, msg_type, data):
        if armed and direction == "read" and not closed:
            closed.append(True)
            conns[1].transport.close()

    async def main():
        # The SSL objects take the callback from the context when made.
        server_ctx._msg_callback = on_message
        server, port = await tls_server(loop, lambda: conns.append(Collect(loop)) or conns[-1], server_ctx)
        peers = []
        for _ in range(2):
            transport, proto = await loop.create_connection(
                lambda: Collect(loop), "127.0.0.1", port, ssl=client_ctx, server_hostname=HOST)
            peers.append((transport, proto))
        while len(conns) < 2:
            await asyncio.sleep(0.001)
        peers[1][0].write(b"second")
        while not conns[1].data:
            await asyncio.sleep(0.001)
        armed.append(True)
        # Several records in one segment, so the first connection's read
        # collects more than one.
        peers[0][0].writelines([b"a" * 3000, b"b" * 3000, b"c" * 3000])
        while len(conns[0].data) < 9000:
            await asyncio.sleep(0.001)
        for t, p in peers:
            t.close()
            await p.lost
        await close_server(server)
        return bytes(conns[0].data), bytes(conns[1].data)

    first, second = loop.run_until_complete(main())
    assert first == b"a" * 3000 + b"b" * 3000 + b"c" * 3000
    assert second == b"second"
    assert closed
    loop.close()


def test_set_protocol_to_a_buffered_protocol_and_a_bad_buffer(loop, certs, errors):
    server_ctx, client_ctx = contexts(certs)

    class Switching(Collect):
        def data_received(self, data):
            super().data_received(data)
            self.transport.set_protocol(ReadOnly(self))

    class ReadOnly(asyncio.BufferedProtocol):
        def __init__(self, first):
            self.first = first

        def get_buffer(self, sizehint):
            return b"read only"

        def buffer_updated(self, n):
            raise AssertionError("not reached")

        def connection_lost(self, exc):
            self.first.lost.set_result(exc)

    async def main():
        server, port = await tls_server(loop, Echo, server_ctx)
        transport, proto = await loop.create_connection(
            lambda: Switching(loop), "127.0.0.1", port, ssl=client_ctx, server_hostname=HOST)
        transport.write(b"one")
        while not proto.data:
            await asyncio.sleep(0.001)
        transport.write(b"two")
        exc = await proto.lost
        await close_server(server)
        return bytes(proto.data), exc

    data, exc = loop.run_until_complete(main())
    assert data == b"one"
    assert isinstance(exc, TypeError)
    assert "read-write bytes-like object" in str(exc)
    assert [c["message"] for c in errors] == ["Fatal error on SSL protocol"]
    errors.clear()
    loop.close()


def test_buffered_protocol_bytearray_buffer_gets_every_byte(kind, loop, certs):
    # turboloop reads into the bytearray get_buffer() returned, at the offset
    # reached; asyncio reads the rest of a buffer into buf[offset:], which
    # for a bytearray is a copy, and its data is lost.
    if not kind.is_turboloop:
        loop.close()
        pytest.skip("asyncio reads into a copy of a bytearray buffer after the first read")
    server_ctx, client_ctx = contexts(certs)
    payload = os.urandom(200_000)

    class Buffered(asyncio.BufferedProtocol):
        def __init__(self):
            self.buf = bytearray(65536)
            self.data = bytearray()
            self.got = loop.create_future()
            self.lost = loop.create_future()

        def connection_made(self, transport):
            self.transport = transport

        def get_buffer(self, sizehint):
            return self.buf

        def buffer_updated(self, n):
            self.data += self.buf[:n]
            if len(self.data) >= len(payload) and not self.got.done():
                self.got.set_result(None)

        def connection_lost(self, exc):
            self.lost.set_result(exc)

    async def main():
        server, port = await tls_server(loop, Echo, server_ctx)
        transport, proto = await loop.create_connection(
            Buffered, "127.0.0.1", port, ssl=client_ctx, server_hostname=HOST)
        # Small records: a read of many of them needs several SSL reads.
        for i in range(0, len(payload), 500):
            transport.write(payload[i:i + 500])
        await proto.got
        transport.close()
        await proto.lost
        await close_server(server)
        return bytes(proto.data)

    assert loop.run_until_complete(main()) == payload
    loop.close()


def test_tls_inside_tls(loop, certs):
    # start_tls() over a TLS transport: the inner protocol's transport is the
    # outer connection's TLS transport.
    server_ctx, client_ctx = contexts(certs)
    data = bytes(range(256)) * 2000

    async def handler(reader, writer):
        assert await reader.readline() == b"UPGRADE\n"
        writer.write(b"OK\n")
        await writer.drain()
        await writer.start_tls(server_ctx)
        while chunk := await reader.read(65536):
            writer.write(chunk.upper())
            await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx,
                                                       server_hostname=HOST)
        writer.write(b"UPGRADE\n")
        assert await reader.readline() == b"OK\n"
        await writer.start_tls(client_ctx, server_hostname=HOST)
        outer = writer.transport._ssl_protocol._transport
        writer.write(b"hello " + data)
        got = await reader.readexactly(len(data) + 6)
        writer.close()
        await writer.wait_closed()
        await close_server(server)
        return type(outer).__name__, got

    outer, got = loop.run_until_complete(main())
    assert outer == "_SSLProtocolTransport"
    assert got == (b"hello " + data).upper()
    loop.close()
