"""create_connection, create_unix_connection and connect_accepted_socket:
host/port, sock=, local_addr, happy eyeballs and interleave, all_errors,
argument checks, connection errors, and cancelling a connection attempt.
(TLS options are in test_net_tls.py.)"""

import asyncio
import contextlib
import socket

import pytest
from support import PY


def listener(closing, host="127.0.0.1", family=socket.AF_INET, backlog=16):
    srv = closing(socket.socket(family, socket.SOCK_STREAM))
    srv.bind((host, 0))
    srv.listen(backlog)
    return srv


def full_listener(closing):
    """A listener whose accept queue is full: connects to it stay pending."""
    srv = listener(closing, backlog=0)
    for _ in range(4):
        s = closing(socket.socket())
        s.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            s.connect(srv.getsockname())
    return srv


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def addrinfo(host, port, family=socket.AF_INET):
    addr = (host, port) if family == socket.AF_INET else (host, port, 0, 0)
    return (family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", addr)


def fake_resolver(loop, infos):
    """Make the loop resolve any name to infos (a list of addrinfo tuples)."""
    calls = []

    async def getaddrinfo(host, port, *, family=0, type=0, proto=0, flags=0):
        calls.append((host, port, family))
        return [i for i in infos if family in (0, i[0])]

    loop.getaddrinfo = getaddrinfo
    return calls


class Proto(asyncio.Protocol):
    def __init__(self, loop):
        self.transport = None
        self.made_calls = 0
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.made_calls += 1
        self.transport = transport

    def connection_lost(self, exc):
        self.lost.set_result(exc)


async def accept_one(loop, srv):
    srv.setblocking(False)
    conn, addr = await loop.sock_accept(srv)
    return conn, addr


async def finish(transport, proto):
    transport.close()
    await proto.lost


# -- connecting ---------------------------------------------------------------------


def test_create_connection_host_port(loop, closing):
    srv = listener(closing)

    async def main():
        accept = asyncio.ensure_future(accept_one(loop, srv))
        transport, proto = await loop.create_connection(lambda: Proto(loop), *srv.getsockname())
        # create_connection() returns after connection_made() ran.
        assert proto.made_calls == 1
        assert proto.transport is transport
        conn, addr = await accept
        closing(conn)
        assert transport.get_extra_info("peername") == srv.getsockname()
        assert transport.get_extra_info("sockname") == addr
        transport.write(b"via create_connection")
        conn.setblocking(True)
        assert conn.recv(100) == b"via create_connection"
        await finish(transport, proto)

    loop.run_until_complete(main())
    loop.close()


def test_create_connection_resolves_localhost(loop, closing):
    srv = listener(closing)

    async def main():
        accept = asyncio.ensure_future(accept_one(loop, srv))
        transport, proto = await loop.create_connection(lambda: Proto(loop), "localhost", srv.getsockname()[1])
        closing((await accept)[0])
        assert transport.get_extra_info("peername") == srv.getsockname()
        await finish(transport, proto)

    loop.run_until_complete(main())
    loop.close()


def test_create_connection_ipv6(loop, closing):
    try:
        srv = listener(closing, "::1", socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback")

    async def main():
        accept = asyncio.ensure_future(accept_one(loop, srv))
        transport, proto = await loop.create_connection(lambda: Proto(loop), "::1", srv.getsockname()[1])
        closing((await accept)[0])
        assert transport.get_extra_info("socket").family == socket.AF_INET6
        assert transport.get_extra_info("peername")[:2] == ("::1", srv.getsockname()[1])
        await finish(transport, proto)

    loop.run_until_complete(main())
    loop.close()


def test_create_connection_family_restricts_resolution(loop, closing):
    srv = listener(closing)
    calls = fake_resolver(loop, [addrinfo("127.0.0.1", srv.getsockname()[1])])

    async def main():
        accept = asyncio.ensure_future(accept_one(loop, srv))
        transport, proto = await loop.create_connection(
            lambda: Proto(loop), "some.name", srv.getsockname()[1], family=socket.AF_INET)
        closing((await accept)[0])
        await finish(transport, proto)
        with pytest.raises(OSError, match="empty list"):
            await loop.create_connection(lambda: Proto(loop), "some.name", 1, family=socket.AF_INET6)

    loop.run_until_complete(main())
    assert calls[0] == ("some.name", srv.getsockname()[1], socket.AF_INET)
    loop.close()


def test_create_connection_with_sock(loop, closing):
    srv = listener(closing)
    sock = socket.create_connection(srv.getsockname())
    conn = closing(srv.accept()[0])

    async def main():
        transport, proto = await loop.create_connection(lambda: Proto(loop), sock=sock)
        # The loop made the socket non-blocking and owns it now.
        assert sock.gettimeout() == 0
        assert transport.get_extra_info("socket").fileno() == sock.fileno()
        transport.write(b"over sock=")
        assert conn.recv(100) == b"over sock="
        await finish(transport, proto)
        assert sock.fileno() == -1

    loop.run_until_complete(main())
    loop.close()


def test_create_connection_local_addr(loop, closing):
    srv = listener(closing)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        local_port = probe.getsockname()[1]

    async def main():
        accept = asyncio.ensure_future(accept_one(loop, srv))
        transport, proto = await loop.create_connection(
            lambda: Proto(loop), *srv.getsockname(), local_addr=("127.0.0.1", local_port))
        conn, addr = await accept
        closing(conn)
        assert addr == ("127.0.0.1", local_port)
        assert transport.get_extra_info("sockname") == ("127.0.0.1", local_port)
        await finish(transport, proto)

    loop.run_until_complete(main())
    loop.close()


def test_create_connection_local_addr_in_use(loop, closing):
    srv = listener(closing)
    busy = listener(closing)

    async def main():
        with pytest.raises(OSError) as info:
            await loop.create_connection(
                lambda: Proto(loop), *srv.getsockname(), local_addr=busy.getsockname())
        assert info.value.errno == __import__("errno").EADDRINUSE

    loop.run_until_complete(main())
    loop.close()


def test_create_connection_refused(loop):
    async def main():
        with pytest.raises(ConnectionRefusedError):
            await loop.create_connection(lambda: Proto(loop), "127.0.0.1", closed_port())

    loop.run_until_complete(main())
    loop.close()


def test_create_connection_tries_every_address(loop, closing):
    srv = listener(closing)
    bad = closed_port()
    fake_resolver(loop, [addrinfo("127.0.0.1", bad), addrinfo("127.0.0.1", srv.getsockname()[1])])

    async def main():
        accept = asyncio.ensure_future(accept_one(loop, srv))
        transport, proto = await loop.create_connection(lambda: Proto(loop), "two.addresses", 0)
        closing((await accept)[0])
        peer = transport.get_extra_info("peername")
        await finish(transport, proto)
        return peer

    assert loop.run_until_complete(main()) == srv.getsockname()
    loop.close()


def test_create_connection_errors_combined(loop):
    ports = [closed_port(), closed_port()]
    fake_resolver(loop, [addrinfo("127.0.0.1", p) for p in ports])

    async def main():
        with pytest.raises(OSError) as info:
            await loop.create_connection(lambda: Proto(loop), "two.addresses", 0)
        return info.value

    exc = loop.run_until_complete(main())
    if ports[0] != ports[1]:
        assert str(exc).startswith("Multiple exceptions: ")
        assert str(ports[0]) in str(exc) and str(ports[1]) in str(exc)
    loop.close()


@pytest.mark.skipif(PY < (3, 12), reason="all_errors is new in 3.12")
def test_create_connection_all_errors(loop):
    fake_resolver(loop, [addrinfo("127.0.0.1", closed_port()), addrinfo("127.0.0.1", closed_port())])

    async def main():
        with pytest.raises(ExceptionGroup) as info:
            await loop.create_connection(lambda: Proto(loop), "two.addresses", 0, all_errors=True)
        return info.value

    group = loop.run_until_complete(main())
    assert len(group.exceptions) == 2
    assert all(isinstance(e, ConnectionRefusedError) for e in group.exceptions)
    loop.close()


@pytest.mark.skipif(PY < (3, 12), reason="all_errors is new in 3.12")
def test_create_connection_all_errors_single_address(loop):
    async def main():
        with pytest.raises(ExceptionGroup) as info:
            await loop.create_connection(lambda: Proto(loop), "127.0.0.1", closed_port(), all_errors=True)
        return info.value

    group = loop.run_until_complete(main())
    assert [type(e) for e in group.exceptions] == [ConnectionRefusedError]
    loop.close()


def test_happy_eyeballs_skips_a_hanging_address(loop, closing):
    hanging = full_listener(closing)
    srv = listener(closing)
    fake_resolver(loop, [addrinfo("127.0.0.1", hanging.getsockname()[1]),
                         addrinfo("127.0.0.1", srv.getsockname()[1])])

    async def main():
        accept = asyncio.ensure_future(accept_one(loop, srv))
        transport, proto = await loop.create_connection(
            lambda: Proto(loop), "two.addresses", 0, happy_eyeballs_delay=0.01)
        closing((await accept)[0])
        peer = transport.get_extra_info("peername")
        await finish(transport, proto)
        return peer

    # The pending attempt on the first address is abandoned and its socket
    # closed (the fixture checks no descriptor leaks).
    assert loop.run_until_complete(main()) == srv.getsockname()
    loop.close()


def test_happy_eyeballs_with_refused_first(loop, closing):
    srv = listener(closing)
    fake_resolver(loop, [addrinfo("127.0.0.1", closed_port()),
                         addrinfo("127.0.0.1", srv.getsockname()[1])])

    async def main():
        accept = asyncio.ensure_future(accept_one(loop, srv))
        transport, proto = await loop.create_connection(
            lambda: Proto(loop), "two.addresses", 0, happy_eyeballs_delay=10)
        closing((await accept)[0])
        peer = transport.get_extra_info("peername")
        await finish(transport, proto)
        return peer

    # A failed attempt starts the next one without waiting for the delay.
    assert loop.run_until_complete(main()) == srv.getsockname()
    loop.close()


def test_happy_eyeballs_all_fail(loop):
    fake_resolver(loop, [addrinfo("127.0.0.1", closed_port()), addrinfo("127.0.0.1", closed_port())])

    async def main():
        with pytest.raises(OSError):
            await loop.create_connection(lambda: Proto(loop), "two.addresses", 0, happy_eyeballs_delay=0.01)

    loop.run_until_complete(main())
    loop.close()


def test_interleave_orders_families(loop, closing):
    try:
        srv6 = listener(closing, "::1", socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback")
    # Two refused IPv4 addresses first; with interleave=1 the IPv6 address is
    # tried second and succeeds, without interleave only third.
    port6 = srv6.getsockname()[1]
    infos = [addrinfo("127.0.0.1", closed_port()), addrinfo("127.0.0.1", closed_port()),
             addrinfo("::1", port6, socket.AF_INET6)]
    tried = []

    async def main(interleave):
        fake_resolver(loop, infos)
        orig = loop._connect_sock

        async def spy(exceptions, addr_info, laddr_infos=None):
            tried.append(addr_info[4][1])
            return await orig(exceptions, addr_info, laddr_infos)

        loop._connect_sock = spy
        try:
            accept = asyncio.ensure_future(accept_one(loop, srv6))
            transport, proto = await loop.create_connection(
                lambda: Proto(loop), "mixed", 0, interleave=interleave)
            closing((await accept)[0])
            await finish(transport, proto)
        finally:
            del loop._connect_sock

    loop.run_until_complete(main(1))
    assert tried == [infos[0][4][1], port6]
    tried.clear()
    loop.run_until_complete(main(None))
    assert tried == [infos[0][4][1], infos[1][4][1], port6]
    loop.close()


def test_cancel_pending_create_connection(loop, closing):
    hanging = full_listener(closing)

    async def main():
        task = asyncio.ensure_future(loop.create_connection(lambda: Proto(loop), *hanging.getsockname()))
        for _ in range(5):
            await asyncio.sleep(0)
        if task.done():
            task.exception()
            pytest.skip("the kernel completed or refused the connect at once")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    # The socket of the abandoned attempt is closed: the fixture checks fds.
    loop.run_until_complete(main())
    loop.close()


def test_wait_for_timeout_on_create_connection(loop, closing):
    hanging = full_listener(closing)

    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(loop.create_connection(lambda: Proto(loop), *hanging.getsockname()), 0.05)

    loop.run_until_complete(main())
    loop.close()


def test_connection_made_raising_goes_to_handler(loop, errors, closing):
    srv = listener(closing)

    class Bad(Proto):
        def connection_made(self, transport):
            super().connection_made(transport)
            raise ZeroDivisionError("in connection_made")

    async def main():
        accept = asyncio.ensure_future(accept_one(loop, srv))
        transport, proto = await loop.create_connection(lambda: Bad(loop), *srv.getsockname())
        closing((await accept)[0])
        assert len(errors) == 1
        assert isinstance(errors[0]["exception"], ZeroDivisionError)
        assert errors[0]["message"].startswith("Exception in callback")
        errors.clear()
        await finish(transport, proto)

    loop.run_until_complete(main())
    loop.close()


# -- argument checks ---------------------------------------------------------------


def test_create_connection_argument_errors(loop, closing):
    a, b = socket.socketpair()
    closing(a)
    closing(b)
    udp = closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))

    async def main():
        factory = asyncio.Protocol
        with pytest.raises(ValueError, match="can not be specified at the same time"):
            await loop.create_connection(factory, "127.0.0.1", 1, sock=a)
        with pytest.raises(ValueError, match="no sock specified"):
            await loop.create_connection(factory)
        with pytest.raises(ValueError, match="ssl_handshake_timeout is only meaningful with ssl"):
            await loop.create_connection(factory, "127.0.0.1", 1, ssl_handshake_timeout=1)
        with pytest.raises(ValueError, match="ssl_shutdown_timeout is only meaningful with ssl"):
            await loop.create_connection(factory, "127.0.0.1", 1, ssl_shutdown_timeout=1)
        with pytest.raises(ValueError, match="server_hostname is only meaningful with ssl"):
            await loop.create_connection(factory, "127.0.0.1", 1, server_hostname="x")
        with pytest.raises(ValueError, match="Stream Socket was expected"):
            await loop.create_connection(factory, sock=udp)

    loop.run_until_complete(main())
    # Nothing was taken over: the sockets are still open.
    assert a.fileno() >= 0 and udp.fileno() >= 0
    loop.close()


def test_connect_accepted_socket_argument_errors(loop, closing):
    udp = closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    a, b = socket.socketpair()
    closing(a)
    closing(b)

    async def main():
        with pytest.raises(ValueError, match="Stream Socket was expected"):
            await loop.connect_accepted_socket(asyncio.Protocol, udp)
        with pytest.raises(ValueError, match="ssl_handshake_timeout is only meaningful with ssl"):
            await loop.connect_accepted_socket(asyncio.Protocol, a, ssl_handshake_timeout=1)

    loop.run_until_complete(main())
    loop.close()


def test_connect_accepted_socket(loop, closing):
    srv = listener(closing)
    client = closing(socket.create_connection(srv.getsockname()))
    conn, _ = srv.accept()

    async def main():
        transport, proto = await loop.connect_accepted_socket(lambda: Proto(loop), conn)
        assert proto.made_calls == 1
        assert transport.get_extra_info("peername") == client.getsockname()
        transport.write(b"y")
        assert client.recv(1) == b"y"
        await finish(transport, proto)
        assert client.recv(1) == b""

    loop.run_until_complete(main())
    loop.close()


# -- Unix ----------------------------------------------------------------------------


def test_create_unix_connection(loop, closing, sock_path):
    srv = closing(socket.socket(socket.AF_UNIX))
    srv.bind(sock_path)
    srv.listen()

    async def main():
        accept = asyncio.ensure_future(accept_one(loop, srv))
        transport, proto = await loop.create_unix_connection(lambda: Proto(loop), sock_path)
        conn, _ = await accept
        closing(conn)
        assert transport.get_extra_info("peername") == sock_path
        assert transport.get_extra_info("socket").family == socket.AF_UNIX
        transport.write(b"unix")
        conn.setblocking(True)
        assert conn.recv(10) == b"unix"
        await finish(transport, proto)

    loop.run_until_complete(main())
    loop.close()


def test_create_unix_connection_errors(loop, closing, sock_path):
    a, b = socket.socketpair()
    closing(a)
    closing(b)

    async def main():
        with pytest.raises(FileNotFoundError):
            await loop.create_unix_connection(asyncio.Protocol, sock_path)
        with pytest.raises(ValueError):
            await loop.create_unix_connection(asyncio.Protocol, sock_path, sock=a)
        with pytest.raises(ValueError):
            await loop.create_unix_connection(asyncio.Protocol)
        with pytest.raises(ValueError):
            await loop.create_unix_connection(asyncio.Protocol, sock_path, ssl_handshake_timeout=1)

    loop.run_until_complete(main())
    loop.close()


def test_create_unix_connection_with_sock(loop, closing):
    a, b = socket.socketpair()
    closing(b)

    async def main():
        transport, proto = await loop.create_unix_connection(lambda: Proto(loop), sock=a)
        transport.write(b"there")
        assert b.recv(10) == b"there"
        await finish(transport, proto)
        assert b.recv(10) == b""

    loop.run_until_complete(main())
    loop.close()
