"""create_datagram_endpoint: local_addr, remote_addr, family, reuse_port,
allow_broadcast, sock=, Unix datagram sockets; sendto/datagram_received,
error_received for ICMP port unreachable and oversized datagrams,
get_write_buffer_size, closing, and the argument checks."""

import asyncio
import contextvars
import errno
import inspect
import os
import socket
import sys

import pytest
from asyncio import selector_events
from support import PY

# The multiplexer matters here: run on turboloop's poll(2) backend as well.
ALSO_POLL_BACKEND = True


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DProto(asyncio.DatagramProtocol):
    def __init__(self, loop):
        self.loop = loop
        self.transport = None
        self.datagrams = []
        self.errors = []
        self.lost = loop.create_future()
        self._waiter = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        assert not self.lost.done()
        self.datagrams.append((data, addr))
        self._wake()

    def error_received(self, exc):
        self.errors.append(exc)
        self._wake()

    def connection_lost(self, exc):
        self.lost.set_result(exc)

    def _wake(self):
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def wait(self, pred):
        while not pred():
            self._waiter = self.loop.create_future()
            await self._waiter


async def close(transport, proto):
    transport.close()
    return await proto.lost


def test_local_addr_receive_and_reply(loop, closing):
    peer = closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    peer.bind(("127.0.0.1", 0))
    peer.setblocking(False)

    async def main():
        transport, proto = await loop.create_datagram_endpoint(lambda: DProto(loop), local_addr=("127.0.0.1", 0))
        assert proto.transport is transport
        addr = transport.get_extra_info("sockname")
        assert addr[0] == "127.0.0.1"
        assert transport.get_extra_info("peername") is None
        assert transport.get_extra_info("socket").type == socket.SOCK_DGRAM
        for i in range(5):
            peer.sendto(b"datagram %d" % i, addr)
        await proto.wait(lambda: len(proto.datagrams) == 5)
        assert proto.datagrams == [(b"datagram %d" % i, peer.getsockname()) for i in range(5)]
        transport.sendto(b"reply", peer.getsockname())
        assert transport.get_write_buffer_size() == 0
        data, src = await loop.sock_recvfrom(peer, 100)
        assert (data, src) == (b"reply", addr)
        transport.sendto(b"", peer.getsockname())
        transport.sendto(b"after empty", peer.getsockname())
        if PY >= (3, 13):
            # An empty datagram is a datagram (3.13+) ...
            assert await loop.sock_recvfrom(peer, 100) == (b"", addr)
        # ... before, sendto() dropped it.
        assert await loop.sock_recvfrom(peer, 100) == (b"after empty", addr)
        assert await close(transport, proto) is None
        assert transport.is_closing()

    loop.run_until_complete(main())
    loop.close()


def test_remote_addr_connected_endpoint(loop, closing):
    peer = closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    peer.bind(("127.0.0.1", 0))
    peer.setblocking(False)
    other = closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    other.bind(("127.0.0.1", 0))

    async def main():
        transport, proto = await loop.create_datagram_endpoint(lambda: DProto(loop), remote_addr=peer.getsockname())
        assert transport.get_extra_info("peername") == peer.getsockname()
        transport.sendto(b"no address")
        transport.sendto(b"same address", peer.getsockname())
        with pytest.raises(ValueError):
            transport.sendto(b"other address", other.getsockname())
        assert await loop.sock_recv(peer, 100) == b"no address"
        assert await loop.sock_recv(peer, 100) == b"same address"
        me = transport.get_extra_info("sockname")
        # A connected socket only hears from its peer.
        other.sendto(b"stranger", me)
        peer.sendto(b"from peer", me)
        await proto.wait(lambda: proto.datagrams)
        await asyncio.sleep(0)
        assert proto.datagrams == [(b"from peer", peer.getsockname())]
        await close(transport, proto)

    loop.run_until_complete(main())
    loop.close()


def test_local_and_remote_addr(loop, closing):
    peer = closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    peer.bind(("127.0.0.1", 0))
    port = free_udp_port()

    async def main():
        transport, proto = await loop.create_datagram_endpoint(
            lambda: DProto(loop), local_addr=("127.0.0.1", port), remote_addr=peer.getsockname())
        assert transport.get_extra_info("sockname") == ("127.0.0.1", port)
        transport.sendto(b"x")
        peer.setblocking(False)
        assert await loop.sock_recvfrom(peer, 10) == (b"x", ("127.0.0.1", port))
        await close(transport, proto)

    loop.run_until_complete(main())
    loop.close()


def test_family_only_endpoint_sends_anywhere(loop, closing):
    peer = closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    peer.bind(("127.0.0.1", 0))
    peer.setblocking(False)

    async def main():
        transport, proto = await loop.create_datagram_endpoint(lambda: DProto(loop), family=socket.AF_INET)
        assert transport.get_extra_info("socket").family == socket.AF_INET
        transport.sendto(b"unbound sender", peer.getsockname())
        data, src = await loop.sock_recvfrom(peer, 100)
        assert data == b"unbound sender"
        # It got an address when it sent, and hears replies on it.
        peer.sendto(b"answer", src)
        await proto.wait(lambda: proto.datagrams)
        assert proto.datagrams == [(b"answer", peer.getsockname())]
        await close(transport, proto)

    loop.run_until_complete(main())
    loop.close()


def test_ipv6_endpoint(loop, closing):
    try:
        peer = closing(socket.socket(socket.AF_INET6, socket.SOCK_DGRAM))
        peer.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")

    async def main():
        transport, proto = await loop.create_datagram_endpoint(lambda: DProto(loop), local_addr=("::1", 0))
        assert transport.get_extra_info("socket").family == socket.AF_INET6
        peer.sendto(b"v6", transport.get_extra_info("sockname"))
        await proto.wait(lambda: proto.datagrams)
        assert proto.datagrams[0][0] == b"v6"
        assert proto.datagrams[0][1][:2] == peer.getsockname()[:2]
        await close(transport, proto)

    loop.run_until_complete(main())
    loop.close()


def test_reuse_port(loop):
    if not hasattr(socket, "SO_REUSEPORT"):
        pytest.skip("no SO_REUSEPORT")

    async def main():
        t1, p1 = await loop.create_datagram_endpoint(lambda: DProto(loop), local_addr=("127.0.0.1", 0), reuse_port=True)
        addr = t1.get_extra_info("sockname")
        t2, p2 = await loop.create_datagram_endpoint(lambda: DProto(loop), local_addr=addr, reuse_port=True)
        assert t2.get_extra_info("sockname") == addr
        for t in (t1, t2):
            assert t.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) != 0
        await close(t1, p1)
        await close(t2, p2)

    loop.run_until_complete(main())
    loop.close()


def test_reuse_address_is_refused(loop):
    # Removed in 3.11 (it allowed stealing a bound port).
    async def main():
        with pytest.raises(TypeError):
            await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0), reuse_address=True)

    loop.run_until_complete(main())
    loop.close()


def test_allow_broadcast(loop):
    async def main():
        t, p = await loop.create_datagram_endpoint(lambda: DProto(loop), local_addr=("127.0.0.1", 0), allow_broadcast=True)
        assert t.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) != 0
        t2, p2 = await loop.create_datagram_endpoint(lambda: DProto(loop), local_addr=("127.0.0.1", 0))
        assert t2.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) == 0
        await close(t, p)
        await close(t2, p2)

    loop.run_until_complete(main())
    loop.close()


def test_sock_argument(loop, closing):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    addr = sock.getsockname()
    peer = closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))

    async def main():
        transport, proto = await loop.create_datagram_endpoint(lambda: DProto(loop), sock=sock)
        assert sock.gettimeout() == 0
        assert transport.get_extra_info("sockname") == addr
        peer.sendto(b"to sock", addr)
        await proto.wait(lambda: proto.datagrams)
        assert proto.datagrams[0][0] == b"to sock"
        await close(transport, proto)
        assert sock.fileno() == -1

    loop.run_until_complete(main())
    loop.close()


def test_argument_errors(loop, closing):
    tcp = closing(socket.socket())
    udp = closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))

    async def main():
        factory = asyncio.DatagramProtocol
        with pytest.raises(ValueError):
            await loop.create_datagram_endpoint(factory, sock=tcp)
        with pytest.raises(ValueError):
            await loop.create_datagram_endpoint(factory, sock=udp, local_addr=("127.0.0.1", 0))
        with pytest.raises(ValueError):
            await loop.create_datagram_endpoint(factory)  # nothing to go on
        with pytest.raises((ValueError, OSError)):
            await loop.create_datagram_endpoint(
                factory, local_addr=("127.0.0.1", 0), remote_addr=("::1", 9), family=socket.AF_INET6)

    loop.run_until_complete(main())
    assert udp.fileno() >= 0
    loop.close()


def test_error_received_on_port_unreachable(loop):
    dead = free_udp_port()

    async def main():
        transport, proto = await loop.create_datagram_endpoint(lambda: DProto(loop), remote_addr=("127.0.0.1", dead))
        # The ICMP port-unreachable comes back as an error on the socket.
        for _ in range(3):
            transport.sendto(b"anyone?")
            await asyncio.sleep(0)
            if proto.errors:
                break
        await proto.wait(lambda: proto.errors)
        assert not transport.is_closing()
        await close(transport, proto)
        return proto

    proto = loop.run_until_complete(main())
    assert all(isinstance(e, ConnectionRefusedError) for e in proto.errors)
    assert proto.datagrams == []
    loop.close()


def test_error_received_on_oversized_datagram(loop, closing):
    peer = closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    peer.bind(("127.0.0.1", 0))

    async def main():
        transport, proto = await loop.create_datagram_endpoint(lambda: DProto(loop), local_addr=("127.0.0.1", 0))
        transport.sendto(b"x" * 70000, peer.getsockname())
        assert len(proto.errors) == 1
        assert proto.errors[0].errno == errno.EMSGSIZE
        assert not transport.is_closing()
        # Still usable.
        transport.sendto(b"fine", peer.getsockname())
        assert peer.recv(10) == b"fine"
        await close(transport, proto)

    loop.run_until_complete(main())
    loop.close()


def test_sendto_rejects_non_bytes(loop):
    async def main():
        transport, proto = await loop.create_datagram_endpoint(lambda: DProto(loop), local_addr=("127.0.0.1", 0))
        with pytest.raises(TypeError):
            transport.sendto("text", ("127.0.0.1", 9))
        await close(transport, proto)

    loop.run_until_complete(main())
    loop.close()


def test_abort_and_close_twice(loop):
    async def main():
        transport, proto = await loop.create_datagram_endpoint(lambda: DProto(loop), local_addr=("127.0.0.1", 0))
        transport.abort()
        transport.close()
        transport.abort()
        assert await proto.lost is None
        await asyncio.sleep(0)

    loop.run_until_complete(main())
    loop.close()


def test_unix_datagram_endpoints(loop, sock_dir):
    a_path = os.path.join(sock_dir, "a")
    b_path = os.path.join(sock_dir, "b")

    async def main():
        ta, pa = await loop.create_datagram_endpoint(lambda: DProto(loop), local_addr=a_path, family=socket.AF_UNIX)
        tb, pb = await loop.create_datagram_endpoint(
            lambda: DProto(loop), local_addr=b_path, remote_addr=a_path, family=socket.AF_UNIX)
        assert ta.get_extra_info("sockname") == a_path
        assert tb.get_extra_info("peername") == a_path
        tb.sendto(b"over unix")
        await pa.wait(lambda: pa.datagrams)
        assert pa.datagrams == [(b"over unix", b_path)]
        ta.sendto(b"back", b_path)
        await pb.wait(lambda: pb.datagrams)
        assert pb.datagrams == [(b"back", a_path)]
        await close(ta, pa)
        await close(tb, pb)

    loop.run_until_complete(main())
    loop.close()


def test_many_datagrams_in_order(loop, closing):
    peer = closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    peer.bind(("127.0.0.1", 0))
    peer.setblocking(False)

    async def main():
        transport, proto = await loop.create_datagram_endpoint(lambda: DProto(loop), local_addr=("127.0.0.1", 0))
        me = transport.get_extra_info("sockname")
        n = 200
        for i in range(n):
            transport.sendto(i.to_bytes(4, "big") * 10, peer.getsockname())
            # Bounce each one straight back.
            data, _ = await loop.sock_recvfrom(peer, 100)
            peer.sendto(data, me)
        await proto.wait(lambda: len(proto.datagrams) == n)
        await close(transport, proto)
        return [int.from_bytes(d[:4], "big") for d, _ in proto.datagrams]

    assert loop.run_until_complete(main()) == list(range(200))
    loop.close()


def test_sendto_queues_when_the_socket_is_full(loop, closing, sock_dir):
    # A peer that does not read: the socket's buffer fills, sendto() queues
    # (counted in get_write_buffer_size(), pause_writing() past the high-water
    # mark), and every datagram arrives once, in order, when the peer reads.
    path = os.path.join(sock_dir, "peer")
    theirs = closing(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM))
    theirs.bind(path)
    theirs.setblocking(False)

    class Flow(DProto):
        paused = resumed = 0

        def pause_writing(self):
            self.paused += 1

        def resume_writing(self):
            self.resumed += 1

    async def main():
        transport, proto = await loop.create_datagram_endpoint(
            lambda: Flow(loop), family=socket.AF_UNIX, remote_addr=path)
        transport.set_write_buffer_limits(high=4096)
        sent = 0
        while transport.get_write_buffer_size() == 0:
            transport.sendto(sent.to_bytes(4, "big") * 64)
            sent += 1
            assert sent < 100_000, "the socket never filled"
        for _ in range(40):
            transport.sendto(sent.to_bytes(4, "big") * 64)
            sent += 1
        queued = transport.get_write_buffer_size()
        assert queued >= 40 * 256
        assert proto.paused == 1
        got = []
        while len(got) < sent:
            assert not proto.errors
            data = await asyncio.wait_for(loop.sock_recv(theirs, 1024), 5)
            got.append(int.from_bytes(data[:4], "big"))
        # Everything arrived, so the queue was sent.  (Not checked through
        # get_write_buffer_size(): 3.13.0 counts 8 header bytes per datagram
        # in but not out.)
        await asyncio.sleep(0)
        assert proto.resumed == 1
        await close(transport, proto)
        return got, sent

    got, sent = loop.run_until_complete(main())
    assert got == list(range(sent))
    loop.close()


def test_sendto_other_address_on_connected_endpoint(loop, closing):
    peer = closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    peer.bind(("127.0.0.1", 0))

    async def main():
        transport, proto = await loop.create_datagram_endpoint(
            lambda: DProto(loop), remote_addr=peer.getsockname())
        with pytest.raises(ValueError, match="Invalid address"):
            transport.sendto(b"x", ("127.0.0.1", 9))
        transport.sendto(b"to the peer", peer.getsockname())
        transport.sendto(b"and again")
        await close(transport, proto)

    loop.run_until_complete(main())
    assert peer.recv(100) == b"to the peer"
    assert peer.recv(100) == b"and again"
    loop.close()


def test_datagram_received_raising_goes_to_the_handler(loop, errors, closing):
    # The exception leaves the reader callback: the loop reports it and keeps
    # reading.
    peer = closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))

    class Raising(DProto):
        def datagram_received(self, data, addr):
            super().datagram_received(data, addr)
            if data == b"boom":
                raise ZeroDivisionError("from datagram_received")

    async def main():
        transport, proto = await loop.create_datagram_endpoint(
            lambda: Raising(loop), local_addr=("127.0.0.1", 0))
        me = transport.get_extra_info("sockname")
        peer.sendto(b"boom", me)
        await proto.wait(lambda: len(proto.datagrams) == 1)
        peer.sendto(b"after", me)
        await proto.wait(lambda: len(proto.datagrams) == 2)
        await close(transport, proto)
        return proto

    proto = loop.run_until_complete(main())
    assert [d for d, _ in proto.datagrams] == [b"boom", b"after"]
    assert len(errors) == 1
    assert isinstance(errors[0]["exception"], ZeroDivisionError)
    assert errors[0]["message"].startswith("Exception in callback")
    errors.clear()
    loop.close()


def test_sendto_bytes_like_arguments(loop, closing):
    peer = closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    peer.bind(("127.0.0.1", 0))

    async def main():
        transport, proto = await loop.create_datagram_endpoint(
            lambda: DProto(loop), local_addr=("127.0.0.1", 0))
        to = peer.getsockname()
        transport.sendto(b"bytes", to)
        transport.sendto(bytearray(b"bytearray"), to)
        transport.sendto(memoryview(b"xmemoryview")[1:], to)
        transport.sendto(data=b"keywords", addr=to)
        transport.sendto(b"", to)
        await close(transport, proto)

    loop.run_until_complete(main())
    got = [peer.recv(100) for _ in range(4)]
    assert got == [b"bytes", b"bytearray", b"memoryview", b"keywords"]
    peer.setblocking(False)
    # An empty datagram is dropped by older versions' sendto(), sent by newer.
    if "if not data:" not in inspect.getsource(selector_events._SelectorDatagramTransport.sendto):
        assert peer.recv(100) == b""
    else:
        with pytest.raises(BlockingIOError):
            peer.recv(100)
    loop.close()


def test_sender_addresses_alternating_senders(loop, closing):
    # Two senders taking turns: each datagram carries its own sender's
    # address, equal to what the socket module reports, and replies to
    # either address (the received object, or an equal tuple) arrive.
    a = closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    b = closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))

    async def main():
        transport, proto = await loop.create_datagram_endpoint(
            lambda: DProto(loop), local_addr=("127.0.0.1", 0))
        me = transport.get_extra_info("sockname")
        for i in range(6):
            (a if i % 2 == 0 else b).sendto(b"%d" % i, me)
            await proto.wait(lambda: len(proto.datagrams) == i + 1)
        for data, addr in proto.datagrams:
            transport.sendto(b"re" + data, addr)
            transport.sendto(b"again" + data, (addr[0], addr[1]))
        await close(transport, proto)
        return proto.datagrams

    got = loop.run_until_complete(main())
    assert [addr for _, addr in got] == [a.getsockname(), b.getsockname()] * 3
    assert all(type(addr) is tuple for _, addr in got)
    assert [a.recv(100) for _ in range(6)] == [b"re0", b"again0", b"re2", b"again2", b"re4", b"again4"]
    assert [b.recv(100) for _ in range(6)] == [b"re1", b"again1", b"re3", b"again3", b"re5", b"again5"]
    loop.close()


def test_ipv6_sender_address_and_reply(loop, closing):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    peer = closing(socket.socket(socket.AF_INET6, socket.SOCK_DGRAM))
    try:
        peer.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")

    async def main():
        transport, proto = await loop.create_datagram_endpoint(
            lambda: DProto(loop), local_addr=("::1", 0))
        me = transport.get_extra_info("sockname")
        peer.sendto(b"six", me)
        await proto.wait(lambda: proto.datagrams)
        addr = proto.datagrams[0][1]
        transport.sendto(b"four-tuple", addr)
        transport.sendto(b"two-tuple", addr[:2])
        transport.sendto(b"flowinfo", (addr[0], addr[1], 0))
        await close(transport, proto)
        return addr

    addr = loop.run_until_complete(main())
    assert addr == peer.getsockname()
    assert [peer.recv(100) for _ in range(3)] == [b"four-tuple", b"two-tuple", b"flowinfo"]
    loop.close()


def test_unix_sender_addresses(loop, sock_dir):
    # Named, unnamed and (on Linux) abstract senders, as socket.recvfrom()
    # spells them.
    path = os.path.join(sock_dir, "server")
    named = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    named.bind(os.path.join(sock_dir, "named"))
    unnamed = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    senders = [named, unnamed]
    if sys.platform.startswith("linux"):
        abstract = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        abstract.bind(b"\0turboloop-test-%d" % os.getpid())
        senders.append(abstract)

    async def main():
        transport, proto = await loop.create_datagram_endpoint(
            lambda: DProto(loop), local_addr=path, family=socket.AF_UNIX)
        for i, s in enumerate(senders):
            s.sendto(b"x", path)
            await proto.wait(lambda: len(proto.datagrams) == i + 1)
        transport.sendto(b"reply", proto.datagrams[0][1])
        await close(transport, proto)
        return [addr for _, addr in proto.datagrams]

    try:
        addrs = loop.run_until_complete(main())
        assert addrs[0] == named.getsockname()
        assert addrs[1] is None
        if len(senders) > 2:
            assert addrs[2] == abstract.getsockname()
        assert named.recv(100) == b"reply"
    finally:
        for s in senders:
            s.close()
        loop.close()


def test_sendto_host_name_and_changed_protocol(loop, closing):
    # A host name is resolved by the socket module, as under asyncio; a
    # protocol set with set_protocol() gets the next datagram.
    peer = closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    peer.bind(("127.0.0.1", 0))

    async def main():
        transport, first = await loop.create_datagram_endpoint(
            lambda: DProto(loop), local_addr=("127.0.0.1", 0))
        me = transport.get_extra_info("sockname")
        transport.sendto(b"by name", ("localhost", peer.getsockname()[1]))
        peer.sendto(b"one", me)
        await first.wait(lambda: first.datagrams)
        second = DProto(loop)
        transport.set_protocol(second)
        peer.sendto(b"two", me)
        await second.wait(lambda: second.datagrams)
        await close(transport, second)
        return first, second

    first, second = loop.run_until_complete(main())
    assert [d for d, _ in first.datagrams] == [b"one"]
    assert [d for d, _ in second.datagrams] == [b"two"]
    assert peer.recv(100) == b"by name"
    loop.close()


def test_pause_resume_reading_and_context(loop, closing):
    # While reading is paused, datagrams wait in the socket; the protocol
    # runs in one context for every datagram, a copy of the context the
    # endpoint was created in.
    peer = closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    var = contextvars.ContextVar("var", default="unset")
    seen = []

    class P(DProto):
        def datagram_received(self, data, addr):
            seen.append((var.get(), data))
            var.set(data.decode())
            super().datagram_received(data, addr)

    async def main():
        var.set("creator")
        transport, proto = await loop.create_datagram_endpoint(
            lambda: P(loop), local_addr=("127.0.0.1", 0))
        me = transport.get_extra_info("sockname")
        peer.sendto(b"a", me)
        await proto.wait(lambda: len(proto.datagrams) == 1)
        transport.pause_reading()
        assert not transport.is_reading()
        peer.sendto(b"b", me)
        for _ in range(5):
            await asyncio.sleep(0)
        assert len(proto.datagrams) == 1
        transport.resume_reading()
        await proto.wait(lambda: len(proto.datagrams) == 2)
        peer.sendto(b"c", me)
        await proto.wait(lambda: len(proto.datagrams) == 3)
        await close(transport, proto)
        return var.get()

    assert loop.run_until_complete(main()) == "creator"
    # resume_reading() starts from a copy of the context it is called in.
    assert seen == [("creator", b"a"), ("creator", b"b"), ("b", b"c")]
    loop.close()
