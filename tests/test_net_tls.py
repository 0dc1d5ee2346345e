"""TLS over the loop's stream transports: ssl= on create_server,
create_connection and the Unix variants, streams with ssl, loop.start_tls on
both sides and StreamWriter.start_tls, get_extra_info's TLS keys, handshake
failures (wrong host name, untrusted certificate), ssl_handshake_timeout on
either side, ssl_shutdown_timeout, and the argument checks.

The certificates (a CA and a server certificate for localhost/127.0.0.1
that it signed) are made once per session with the openssl command line
tool, or with the cryptography package where that is missing."""

import asyncio
import contextlib
import datetime
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading

import pytest

HOST = "localhost"


# -- certificates ----------------------------------------------------------------


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _make_certs_openssl(d):
    with open(os.path.join(d, "ca.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
                "subjectKeyIdentifier=hash\n")
    with open(os.path.join(d, "leaf.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n"
                "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", *ec, "-keyout", "ca.key", "-out", "ca.csr", "-subj", "/CN=turboloop test CA", cwd=d)
    _openssl("x509", "-req", "-in", "ca.csr", "-signkey", "ca.key", "-out", "ca.pem", "-days", "2",
             "-extfile", "ca.ext", cwd=d)
    _openssl("req", *ec, "-keyout", "key.pem", "-out", "leaf.csr", "-subj", "/CN=localhost", cwd=d)
    _openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "cert.pem", "-days", "2", "-extfile", "leaf.ext", cwd=d)


def _make_certs_cryptography(d):
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def write_key(key, name):
        with open(os.path.join(d, name), "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "turboloop test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    for cert, name in ((ca, "ca.pem"), (leaf, "cert.pem")):
        with open(os.path.join(d, name), "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
    write_key(key, "key.pem")


@pytest.fixture(scope="session")
def certs():
    d = tempfile.mkdtemp(prefix="tltls")
    try:
        made = False
        if shutil.which("openssl"):
            try:
                _make_certs_openssl(d)
                made = True
            except (subprocess.SubprocessError, OSError):
                pass
        if not made:
            try:
                _make_certs_cryptography(d)
                made = True
            except ImportError:
                pass
        if not made:
            pytest.skip("neither the openssl tool nor the cryptography package is available")
        yield {name: os.path.join(d, name) for name in ("ca.pem", "cert.pem", "key.pem")}
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(autouse=True)
def checked_reads(kind):
    """On turboloop, make every TLS read the protocol skips as empty anyway,
    and fail if it returns data (turboloop._core._ssl_check_reads)."""
    if kind.is_turboloop:
        from turboloop import _core
        _core._ssl_check_reads(True)
        yield
        _core._ssl_check_reads(False)
    else:
        yield


@pytest.fixture
def server_ctx(certs):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs["cert.pem"], certs["key.pem"])
    return ctx


@pytest.fixture
def client_ctx(certs):
    return ssl.create_default_context(cafile=certs["ca.pem"])


# -- protocols -------------------------------------------------------------------------


class Echo(asyncio.Protocol):
    def __init__(self, loop, made=None):
        self.loop = loop
        self.lost = loop.create_future()
        self.made = made

    def connection_made(self, transport):
        self.transport = transport
        if self.made is not None:
            self.made.append(self)

    def data_received(self, data):
        self.transport.write(data)

    def eof_received(self):
        self.transport.close()

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)


class Client(asyncio.Protocol):
    def __init__(self, loop):
        self.loop = loop
        self.data = bytearray()
        self.lost = loop.create_future()
        self.eof = loop.create_future()
        self.lost_calls = 0
        self._want = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        assert not self.eof.done()
        self.data += data
        if self._want and len(self.data) >= self._want[0] and not self._want[1].done():
            self._want[1].set_result(None)

    def eof_received(self):
        self.eof.set_result(None)

    def connection_lost(self, exc):
        self.lost_calls += 1
        self.lost.set_result(exc)

    async def wait_for(self, n):
        if len(self.data) < n:
            self._want = (n, self.loop.create_future())
            await self._want[1]
        return bytes(self.data[:n])


async def close_server(server):
    """Close the server once the tasks it started (handshakes of accepted
    connections) are done: 3.11's wait_closed() does not wait for them."""
    me = asyncio.current_task()
    for _ in range(5000):
        if not [t for t in asyncio.all_tasks() if t is not me]:
            break
        await asyncio.sleep(0.001)
    server.close()
    await server.wait_closed()


# -- connections ------------------------------------------------------------------------


def test_create_server_and_connection_with_ssl(loop, server_ctx, client_ctx):
    async def main():
        made = []
        server = await loop.create_server(lambda: Echo(loop, made), "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        transport, proto = await loop.create_connection(
            lambda: Client(loop), "127.0.0.1", port, ssl=client_ctx, server_hostname=HOST)
        transport.write(b"hello over tls")
        assert await proto.wait_for(14) == b"hello over tls"
        info = {key: transport.get_extra_info(key) for key in (
            "sslcontext", "ssl_object", "peercert", "cipher", "compression", "peername", "socket")}
        info["own"] = transport.get_extra_info("socket").getsockname()
        srv_transport = made[0].transport
        srv_info = {key: srv_transport.get_extra_info(key) for key in ("sslcontext", "peercert", "peername")}
        assert not transport.can_write_eof()
        transport.close()
        assert await proto.lost is None
        await made[0].lost
        await close_server(server)
        return port, info, srv_info, transport

    port, info, srv_info, transport = loop.run_until_complete(main())
    assert info["sslcontext"] is client_ctx
    assert isinstance(info["ssl_object"], ssl.SSLObject)
    assert info["ssl_object"].server_hostname == HOST
    assert info["ssl_object"].version().startswith("TLS")
    assert dict(x[0] for x in info["peercert"]["subject"])["commonName"] == "localhost"
    assert ("DNS", "localhost") in info["peercert"]["subjectAltName"]
    name, version, bits = info["cipher"]
    assert isinstance(name, str) and version.startswith("TLS") and bits >= 128
    assert info["compression"] is None
    assert info["peername"] == ("127.0.0.1", port)
    assert info["socket"].family == socket.AF_INET
    assert srv_info["sslcontext"] is server_ctx
    assert srv_info["peercert"] is None  # no client certificate
    assert srv_info["peername"] == info["own"]
    assert transport.is_closing()
    loop.close()


def test_tls_large_transfer_both_ways(loop, server_ctx, client_ctx):
    payload = os.urandom(4 * 1024 * 1024)

    async def main():
        async def handler(reader, writer):
            # Echo in chunks with backpressure on both sides.
            while chunk := await reader.read(100_000):
                writer.write(chunk)
                await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx, server_hostname=HOST)

        async def send():
            view = memoryview(payload)
            for i in range(0, len(view), 65536):
                writer.write(view[i:i + 65536])
                await writer.drain()

        sender = asyncio.ensure_future(send())
        received = await reader.readexactly(len(payload))
        await sender
        writer.close()
        await writer.wait_closed()
        await close_server(server)
        return received

    assert loop.run_until_complete(main()) == payload
    loop.close()


def test_tls_unix_sockets(loop, server_ctx, client_ctx, sock_path):
    async def main():
        server = await loop.create_unix_server(lambda: Echo(loop), sock_path, ssl=server_ctx)
        transport, proto = await loop.create_unix_connection(
            lambda: Client(loop), sock_path, ssl=client_ctx, server_hostname=HOST)
        assert transport.get_extra_info("peercert") is not None
        transport.write(b"unix tls")
        assert await proto.wait_for(8) == b"unix tls"
        transport.close()
        await proto.lost
        await close_server(server)

    loop.run_until_complete(main())
    loop.close()


def test_tls_with_buffered_protocol_client(loop, server_ctx, client_ctx):
    class BufClient(asyncio.BufferedProtocol):
        def __init__(self):
            self.buf = bytearray(100)
            self.data = bytearray()
            self.got = loop.create_future()
            self.lost = loop.create_future()

        def connection_made(self, transport):
            self.transport = transport

        def get_buffer(self, sizehint):
            return self.buf

        def buffer_updated(self, n):
            self.data += self.buf[:n]
            if len(self.data) >= 5000 and not self.got.done():
                self.got.set_result(None)

        def connection_lost(self, exc):
            self.lost.set_result(exc)

    async def main():
        server = await loop.create_server(lambda: Echo(loop), "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        transport, proto = await loop.create_connection(
            BufClient, "127.0.0.1", port, ssl=client_ctx, server_hostname=HOST)
        msg = bytes(range(250)) * 20
        transport.write(msg)
        await proto.got
        transport.close()
        await proto.lost
        await close_server(server)
        return bytes(proto.data), msg

    data, msg = loop.run_until_complete(main())
    assert data == msg
    loop.close()


def test_server_hostname_defaults_to_host(loop, server_ctx, client_ctx):
    async def main():
        server = await loop.create_server(lambda: Echo(loop), "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        # host "localhost" is also the name checked against the certificate.
        transport, proto = await loop.create_connection(lambda: Client(loop), HOST, port, ssl=client_ctx)
        hostname = transport.get_extra_info("ssl_object").server_hostname
        transport.close()
        await proto.lost
        await close_server(server)
        return hostname

    assert loop.run_until_complete(main()) == HOST
    loop.close()


# -- handshake failures ----------------------------------------------------------------------------


def test_wrong_hostname_fails_verification(loop, server_ctx, client_ctx):
    async def main():
        made = []
        server = await loop.create_server(lambda: Echo(loop, made), "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(ssl.SSLCertVerificationError) as info:
            await loop.create_connection(
                lambda: Client(loop), "127.0.0.1", port, ssl=client_ctx, server_hostname="wrong.example")
        await close_server(server)
        return info.value, made

    exc, made = loop.run_until_complete(main())
    assert "wrong.example" in str(exc) or "match" in str(exc).lower()
    # The server never had a connection to report.
    assert made == []
    loop.close()


def test_untrusted_certificate_fails(loop, server_ctx):
    async def main():
        server = await loop.create_server(lambda: Echo(loop), "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        ctx = ssl.create_default_context()  # system CAs only
        with pytest.raises(ssl.SSLCertVerificationError):
            await loop.create_connection(lambda: Client(loop), "127.0.0.1", port, ssl=ctx, server_hostname=HOST)
        await close_server(server)

    loop.run_until_complete(main())
    loop.close()


def test_plain_client_to_tls_server(loop, server_ctx):
    async def main():
        server = await loop.create_server(lambda: Echo(loop), "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        # The server gives up on the handshake and closes the connection.
        with contextlib.suppress(ConnectionResetError):
            data = await reader.read()
            assert b"GET" not in data
        writer.close()
        with contextlib.suppress(ConnectionResetError):
            await writer.wait_closed()
        await close_server(server)

    loop.run_until_complete(main())
    loop.close()


def test_client_handshake_timeout(loop, client_ctx, closing):
    # A TCP server that never answers the handshake.
    silent = closing(socket.create_server(("127.0.0.1", 0)))

    async def main():
        with pytest.raises(ConnectionAbortedError, match="SSL handshake is taking longer"):
            await loop.create_connection(
                lambda: Client(loop), *silent.getsockname(), ssl=client_ctx, server_hostname=HOST,
                ssl_handshake_timeout=0.1)
        conn, _ = silent.accept()
        conn.close()

    loop.run_until_complete(main())
    loop.close()


def test_server_handshake_timeout(loop, server_ctx):
    async def main():
        made = []
        server = await loop.create_server(
            lambda: Echo(loop, made), "127.0.0.1", 0, ssl=server_ctx, ssl_handshake_timeout=0.1)
        sock = socket.create_connection(server.sockets[0].getsockname())
        sock.setblocking(False)
        try:
            # Never start the handshake: the server drops the connection.
            with contextlib.suppress(ConnectionResetError):
                assert await asyncio.wait_for(loop.sock_recv(sock, 100), 10) == b""
        finally:
            sock.close()
        await close_server(server)
        return made

    assert loop.run_until_complete(main()) == []
    loop.close()


def test_ssl_shutdown_timeout(loop, server_ctx, client_ctx, closing):
    # The peer completes the handshake, then never answers close_notify: the
    # closing transport gives up after ssl_shutdown_timeout.
    listener = closing(socket.create_server(("127.0.0.1", 0)))
    release = threading.Event()

    def peer():
        conn, _ = listener.accept()
        try:
            tls = server_ctx.wrap_socket(conn, server_side=True)
            try:
                release.wait(30)
            finally:
                tls.close()
        except (OSError, ssl.SSLError):
            conn.close()

    thread = threading.Thread(target=peer)
    thread.start()

    async def main():
        try:
            transport, proto = await loop.create_connection(
                lambda: Client(loop), *listener.getsockname(), ssl=client_ctx, server_hostname=HOST,
                ssl_shutdown_timeout=0.1)
            transport.close()
            exc = await asyncio.wait_for(proto.lost, 10)
            for _ in range(3):
                await asyncio.sleep(0)
            return exc, proto
        finally:
            release.set()

    try:
        exc, proto = loop.run_until_complete(main())
    finally:
        release.set()
        thread.join(30)
    assert proto.lost_calls == 1
    assert isinstance(exc, TimeoutError)
    assert "SSL shutdown timed out" in str(exc)
    loop.close()


# -- start_tls ------------------------------------------------------------------------------


def test_loop_start_tls_on_both_sides(loop, server_ctx, client_ctx):
    class Upgrading(asyncio.Protocol):
        """Plain until it reads b'STARTTLS\\n', then answers and upgrades."""

        def __init__(self):
            self.upgraded = loop.create_future()
            self.lost = loop.create_future()
            self.tls_data = bytearray()

        def connection_made(self, transport):
            self.transport = transport

        tls_started = False

        def data_received(self, data):
            if not self.tls_started:
                assert data == b"STARTTLS\n"
                self.tls_started = True
                self.transport.write(b"GO\n")
                asyncio.ensure_future(self.upgrade())
            else:
                # Data over TLS may come before start_tls() has returned.
                self.tls_data += data
                self.upgraded.add_done_callback(lambda f: f.result().write(data.upper()))

        async def upgrade(self):
            tls = await loop.start_tls(self.transport, self, server_ctx, server_side=True)
            self.transport = tls
            self.upgraded.set_result(tls)

        def connection_lost(self, exc):
            if not self.lost.done():
                self.lost.set_result(exc)

    async def main():
        servers = []
        server = await loop.create_server(lambda: servers.append(Upgrading()) or servers[-1], "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, proto = await loop.create_connection(lambda: Client(loop), "127.0.0.1", port)
        plain_transport = transport
        transport.write(b"STARTTLS\n")
        assert await proto.wait_for(3) == b"GO\n"
        tls = await loop.start_tls(transport, proto, client_ctx, server_hostname=HOST)
        # The old transport is no longer usable on its own.
        assert tls is not plain_transport
        assert tls.get_extra_info("peercert") is not None
        assert plain_transport.get_extra_info("sslcontext") is None
        proto.data.clear()
        tls.write(b"secret")
        assert await proto.wait_for(6) == b"SECRET"
        srv_tls = await servers[0].upgraded
        assert srv_tls.get_extra_info("sslcontext") is server_ctx
        tls.close()
        await proto.lost
        await servers[0].lost
        await close_server(server)
        return bytes(servers[0].tls_data)

    assert loop.run_until_complete(main()) == b"secret"
    loop.close()


def test_stream_writer_start_tls(loop, server_ctx, client_ctx):
    async def main():
        async def handler(reader, writer):
            assert await reader.readline() == b"STARTTLS\n"
            writer.write(b"OK\n")
            await writer.drain()
            await writer.start_tls(server_ctx)
            assert writer.get_extra_info("sslcontext") is server_ctx
            line = await reader.readline()
            writer.write(b"echo: " + line)
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"STARTTLS\n")
        assert await reader.readline() == b"OK\n"
        assert writer.get_extra_info("sslcontext") is None
        await writer.start_tls(client_ctx, server_hostname=HOST)
        assert writer.get_extra_info("sslcontext") is client_ctx
        assert writer.get_extra_info("peercert") is not None
        writer.write(b"over tls\n")
        answer = await reader.readline()
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        await close_server(server)
        return answer

    assert loop.run_until_complete(main()) == b"echo: over tls\n"
    loop.close()


def test_start_tls_argument_errors(loop, server_ctx, client_ctx):
    async def main():
        server = await loop.create_server(lambda: Echo(loop), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, proto = await loop.create_connection(lambda: Client(loop), "127.0.0.1", port)
        with pytest.raises(TypeError):
            await loop.start_tls(transport, proto, object())
        with pytest.raises(TypeError):
            await loop.start_tls(object(), proto, client_ctx)
        transport.close()
        await proto.lost
        await close_server(server)

    loop.run_until_complete(main())
    loop.close()


def test_ssl_argument_errors(loop, client_ctx, closing):
    a, b = socket.socketpair()
    closing(a)
    closing(b)

    async def main():
        with pytest.raises(ValueError, match="server_hostname"):
            await loop.create_connection(asyncio.Protocol, sock=a, ssl=client_ctx)
        with pytest.raises(ValueError, match="ssl_shutdown_timeout is only meaningful with ssl"):
            await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, ssl_shutdown_timeout=1)
        with pytest.raises(ValueError, match="ssl_shutdown_timeout is only meaningful with ssl"):
            await loop.connect_accepted_socket(asyncio.Protocol, a, ssl_shutdown_timeout=1)

    loop.run_until_complete(main())
    loop.close()


def test_sock_methods_refuse_ssl_sockets(loop, client_ctx, closing):
    raw = closing(socket.socket())
    sslsock = closing(client_ctx.wrap_socket(raw, server_hostname=HOST, do_handshake_on_connect=False))
    sslsock.setblocking(False)

    async def main():
        with pytest.raises(TypeError, match="SSLSocket"):
            await loop.sock_recv(sslsock, 10)
        with pytest.raises(TypeError, match="SSLSocket"):
            await loop.sock_sendall(sslsock, b"x")
        with pytest.raises(TypeError, match="SSLSocket"):
            await loop.sock_connect(sslsock, ("127.0.0.1", 9))
        with pytest.raises(TypeError, match="SSLSocket"):
            await loop.create_connection(asyncio.Protocol, sock=sslsock)

    loop.run_until_complete(main())
    loop.close()
