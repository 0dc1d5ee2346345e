"""An aiohttp server and client talking to each other over real sockets on
each loop: plain and chunked responses, multi-megabyte bodies both ways,
JSON, sendfile through FileResponse, websockets, many sequential and
concurrent requests over kept-alive connections, a Unix socket site, a
refused connection, and a clean shutdown.

aiohttp is a test dependency (the ``test`` extra); without it the module is
skipped.
"""

import asyncio
import contextlib
import gc
import gzip
import hashlib
import logging
import random
import socket

import pytest

from support import close_loop

aiohttp = pytest.importorskip("aiohttp")

# Where aiodns is installed (Debian's python3-aiohttp pulls it in), aiohttp
# resolves with c-ares, whose channel keeps its own thread, epoll, pipe and
# inotify fds past the end of a test.  Resolve through the loop's
# getaddrinfo() instead: that is the loop's code, which is what is under test.
aiohttp.connector.DefaultResolver = aiohttp.resolver.ThreadedResolver
from aiohttp import web  # noqa: E402

# The network layer sits on the multiplexer: run on the poll(2) backend too.
ALSO_POLL_BACKEND = True

MB = 1024 * 1024


def payload(size, seed=0):
    """size deterministic pseudo-random bytes."""
    return random.Random(seed).randbytes(size)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


STREAM_CHUNKS = [payload(1000 + 7919 * i, seed=i) for i in range(40)]
FILE_DATA = payload(3 * MB + 12345, seed=99)


# -- the server ----------------------------------------------------------------


class Peers:
    """The client addresses the server saw a request from, in order."""

    def __init__(self):
        self.seen = []


PEERS = web.AppKey("peers", Peers)


async def text(request):
    return web.Response(text="hello, world", headers={"X-Server": "turboloop-test"})


async def numbered(request):
    n = int(request.match_info["n"])
    request.app[PEERS].seen.append(request.transport.get_extra_info("peername"))
    return web.Response(text=f"reply {n} " + "x" * (n % 97), headers={"X-N": str(n)})


async def echo(request):
    body = await request.read()
    return web.Response(
        body=body,
        content_type="application/octet-stream",
        headers={
            "X-Length": str(len(body)),
            "X-Sha256": sha256(body),
            "X-Chunked-Request": str(request.headers.get("Transfer-Encoding") == "chunked"),
            "X-Echo-Header": request.headers.get("X-Client", ""),
        },
    )


async def json_handler(request):
    if request.method == "POST":
        data = await request.json()
        return web.json_response({"got": data, "keys": sorted(data)})
    return web.json_response({"name": "turboloop", "numbers": list(range(10)), "nested": {"ok": True}})


async def stream(request):
    resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    for chunk in STREAM_CHUNKS:
        await resp.write(chunk)
        await asyncio.sleep(0)
    await resp.write_eof()
    return resp


async def gzipped(request):
    resp = web.Response(text="compress me " * 5000)
    resp.enable_compression(web.ContentCoding.gzip)
    return resp


async def websocket(request):
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.TEXT:
            if msg.data == "close":
                await ws.close(code=4000, message=b"bye")
            else:
                await ws.send_str("echo: " + msg.data)
        elif msg.type == aiohttp.WSMsgType.BINARY:
            await ws.send_bytes(msg.data[::-1])
    return ws


def make_app(file_path=None):
    app = web.Application(client_max_size=16 * MB)
    app[PEERS] = Peers()
    app.router.add_get("/text", text)
    app.router.add_get("/n/{n}", numbered)
    app.router.add_post("/echo", echo)
    app.router.add_get("/json", json_handler)
    app.router.add_post("/json", json_handler)
    app.router.add_get("/stream", stream)
    app.router.add_get("/gzip", gzipped)
    app.router.add_get("/ws", websocket)
    if file_path is not None:

        async def file(request):
            return web.FileResponse(file_path)

        app.router.add_get("/file", file)
    return app


class AiohttpLog(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def aiohttp_log():
    """Warnings and errors aiohttp logs (a failing handler, a protocol error)
    fail the test."""
    handler = AiohttpLog()
    logger = logging.getLogger("aiohttp")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
    if handler.records:
        text = "\n".join(handler.format(r) for r in handler.records)
        pytest.fail(f"aiohttp logged:\n{text}", pytrace=False)


@pytest.fixture
def run(kind, loop, aiohttp_log):
    """Run a coroutine on the kind's loop; close the loop as asyncio.run()
    would at the end of the test."""
    yield loop.run_until_complete
    close_loop(loop)


@contextlib.asynccontextmanager
async def serving(app, *, unix_path=None):
    """Serve app on 127.0.0.1 (and unix_path); yield the runner and the base URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        if unix_path is not None:
            await web.UnixSite(runner, unix_path).start()
        host, port = [a for a in runner.addresses if isinstance(a, tuple)][0][:2]
        yield runner, f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def unused_port():
    """A port on 127.0.0.1 that nothing listens on (it was just freed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the tests -----------------------------------------------------------------


def test_routes(run, tmp_path):
    file_path = tmp_path / "data.bin"
    file_path.write_bytes(FILE_DATA)

    async def main():
        async with serving(make_app(file_path)) as (runner, url):
            async with aiohttp.ClientSession() as session:
                async with session.get(url + "/text") as resp:
                    assert resp.status == 200
                    assert resp.headers["X-Server"] == "turboloop-test"
                    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
                    assert resp.headers["Content-Length"] == "12"
                    assert await resp.text() == "hello, world"

                async with session.get(url + "/missing") as resp:
                    assert resp.status == 404
                    await resp.read()

                async with session.post(url + "/text") as resp:
                    assert resp.status == 405
                    assert resp.headers["Allow"] == "GET,HEAD"
                    await resp.read()

                async with session.head(url + "/text") as resp:
                    assert resp.status == 200
                    assert await resp.read() == b""

                # JSON both ways.
                async with session.get(url + "/json") as resp:
                    assert resp.status == 200
                    assert resp.content_type == "application/json"
                    assert await resp.json() == {
                        "name": "turboloop", "numbers": list(range(10)), "nested": {"ok": True},
                    }
                sent = {"b": [1, 2.5, None], "a": "\u00e9t\u00e9 \u2603", "c": {"d": True}}
                async with session.post(url + "/json", json=sent) as resp:
                    assert resp.status == 200
                    assert await resp.json() == {"got": sent, "keys": ["a", "b", "c"]}

                # A body of a few MB each way, byte-exact, with a request header echoed.
                big = payload(5 * MB + 321, seed=1)
                async with session.post(url + "/echo", data=big, headers={"X-Client": "abc"}) as resp:
                    assert resp.status == 200
                    assert resp.headers["X-Length"] == str(len(big))
                    assert resp.headers["X-Sha256"] == sha256(big)
                    assert resp.headers["X-Chunked-Request"] == "False"
                    assert resp.headers["X-Echo-Header"] == "abc"
                    assert resp.headers["Content-Length"] == str(len(big))
                    assert await resp.read() == big

                # A chunked request body, from an async generator.
                parts = [payload(50_000 + i, seed=100 + i) for i in range(30)]

                async def body():
                    for part in parts:
                        yield part
                        await asyncio.sleep(0)

                async with session.post(url + "/echo", data=body()) as resp:
                    assert resp.status == 200
                    assert resp.headers["X-Chunked-Request"] == "True"
                    assert await resp.read() == b"".join(parts)

                # A chunked response, read as it comes.
                async with session.get(url + "/stream") as resp:
                    assert resp.status == 200
                    assert resp.headers["Transfer-Encoding"] == "chunked"
                    assert "Content-Length" not in resp.headers
                    received = bytearray()
                    async for data in resp.content.iter_any():
                        received += data
                    assert bytes(received) == b"".join(STREAM_CHUNKS)

                # Compressed: the client decompresses; the raw bytes are gzip.
                async with session.get(url + "/gzip") as resp:
                    assert resp.status == 200
                    assert resp.headers["Content-Encoding"] == "gzip"
                    assert await resp.text() == "compress me " * 5000
                async with session.get(url + "/gzip", auto_decompress=False) as resp:
                    assert gzip.decompress(await resp.read()) == b"compress me " * 5000

                # FileResponse: loop.sendfile() on the server's transport.
                async with session.get(url + "/file") as resp:
                    assert resp.status == 200
                    assert resp.headers["Content-Length"] == str(len(FILE_DATA))
                    assert await resp.read() == FILE_DATA
                async with session.get(url + "/file", headers={"Range": "bytes=1000000-1999999"}) as resp:
                    assert resp.status == 206
                    assert resp.headers["Content-Range"] == f"bytes 1000000-1999999/{len(FILE_DATA)}"
                    assert await resp.read() == FILE_DATA[1000000:2000000]

                # After all that, the connection is still good for a small request.
                async with session.get(url + "/text") as resp:
                    assert await resp.text() == "hello, world"

    run(main())


def test_many_requests_keepalive(run):
    app = make_app()
    peers = app[PEERS].seen

    async def main():
        async with serving(app) as (runner, url):
            # Sequential requests reuse one connection.
            async with aiohttp.ClientSession() as session:
                for n in range(100):
                    async with session.get(f"{url}/n/{n}") as resp:
                        assert resp.status == 200
                        assert resp.headers["X-N"] == str(n)
                        assert await resp.text() == f"reply {n} " + "x" * (n % 97)
            assert len(peers) == 100
            assert len(set(peers)) == 1
            peers.clear()

            # 200 requests with at most 20 in flight, over at most 20
            # connections that each serve several requests.
            connector = aiohttp.TCPConnector(limit=20)
            async with aiohttp.ClientSession(connector=connector) as session:
                in_flight = 0
                most_in_flight = 0

                async def one(n):
                    nonlocal in_flight, most_in_flight
                    in_flight += 1
                    most_in_flight = max(most_in_flight, in_flight)
                    try:
                        if n % 10 == 0:
                            data = payload(100_000 + n, seed=n)
                            async with session.post(url + "/echo", data=data) as resp:
                                assert resp.status == 200
                                assert await resp.read() == data
                        else:
                            async with session.get(f"{url}/n/{n}") as resp:
                                assert resp.status == 200
                                assert resp.headers["X-N"] == str(n)
                                assert await resp.text() == f"reply {n} " + "x" * (n % 97)
                        return n
                    finally:
                        in_flight -= 1

                sem = asyncio.Semaphore(20)

                async def limited(n):
                    async with sem:
                        return await one(n)

                results = await asyncio.gather(*(limited(n) for n in range(200)))
                assert results == list(range(200))
                assert most_in_flight == 20
            assert len(peers) == 180  # the GETs; the echo POSTs are not recorded
            assert 1 <= len(set(peers)) <= 20
            assert len(set(peers)) < len(peers)

    run(main())


@contextlib.contextmanager
def frequent_gc():
    """Collect garbage every few allocations, so that collections (and with
    them the traversal of the loop's queued callbacks and I/O events) happen
    in the middle of reading, parsing and writing, whatever the allocation
    history of the test run."""
    old = gc.get_threshold()
    gc.set_threshold(10, 2, 2)
    try:
        yield
    finally:
        gc.set_threshold(*old)


def test_gc_during_concurrent_requests(run):
    async def main():
        async with serving(make_app()) as (runner, url):
            async with aiohttp.ClientSession() as session:

                async def one(n):
                    if n % 5 == 0:
                        data = payload(20_000 + n, seed=n)
                        async with session.post(url + "/echo", data=data) as resp:
                            assert resp.status == 200
                            assert await resp.read() == data
                    else:
                        async with session.get(f"{url}/n/{n}") as resp:
                            assert resp.status == 200
                            assert await resp.text() == f"reply {n} " + "x" * (n % 97)
                    return n

                with frequent_gc():
                    for _ in range(3):
                        assert await asyncio.gather(*(one(n) for n in range(30))) == list(range(30))
                    async with session.ws_connect(url + "/ws") as ws:
                        for i in range(20):
                            await ws.send_str(str(i))
                        for i in range(20):
                            assert await ws.receive_str() == f"echo: {i}"

    run(main())


def test_websocket(run):
    async def main():
        async with serving(make_app()) as (runner, url):
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(url + "/ws") as ws:
                    for i in range(50):
                        await ws.send_str(f"message {i}")
                        assert await ws.receive_str() == f"echo: message {i}"
                    big = payload(2 * MB + 3, seed=5)
                    await ws.send_bytes(big)
                    assert await ws.receive_bytes() == big[::-1]
                    await ws.send_json({"k": [1, 2]})
                    assert await ws.receive_str() == 'echo: {"k": [1, 2]}'
                    await ws.send_str("close")
                    msg = await ws.receive()
                    assert msg.type == aiohttp.WSMsgType.CLOSE
                    assert msg.data == 4000
                    assert msg.extra == "bye"
                    assert ws.closed
                    assert ws.close_code == 4000

                # Several websockets at once, closed by the client.
                async def client(i):
                    async with session.ws_connect(url + "/ws") as ws:
                        for j in range(20):
                            await ws.send_str(f"{i}.{j}")
                        for j in range(20):
                            assert await ws.receive_str() == f"echo: {i}.{j}"
                        data = payload(10_000 * (i + 1), seed=i)
                        await ws.send_bytes(data)
                        assert await ws.receive_bytes() == data[::-1]
                        await ws.close()
                        assert ws.close_code == aiohttp.WSCloseCode.OK
                    return i

                assert await asyncio.gather(*(client(i) for i in range(10))) == list(range(10))

    run(main())


def test_unix_site(run, tmp_path):
    path = str(tmp_path / "http.sock")

    async def main():
        async with serving(make_app(), unix_path=path) as (runner, url):
            connector = aiohttp.UnixConnector(path=path)
            async with aiohttp.ClientSession(connector=connector) as session:
                for _ in range(3):
                    async with session.get("http://unix/text") as resp:
                        assert resp.status == 200
                        assert await resp.text() == "hello, world"
                big = payload(4 * MB + 1, seed=2)
                async with session.post("http://unix/echo", data=big) as resp:
                    assert resp.status == 200
                    assert resp.headers["X-Sha256"] == sha256(big)
                    assert await resp.read() == big
                async with session.get("http://unix/stream") as resp:
                    assert await resp.read() == b"".join(STREAM_CHUNKS)
                async with session.ws_connect("http://unix/ws") as ws:
                    await ws.send_str("over unix")
                    assert await ws.receive_str() == "echo: over unix"
                results = await asyncio.gather(*(session.get(f"http://unix/n/{n}") for n in range(30)))
                for n, resp in enumerate(results):
                    assert resp.status == 200
                    assert await resp.text() == f"reply {n} " + "x" * (n % 97)
                    resp.release()
            # The TCP site of the same runner works too.
            async with aiohttp.ClientSession() as session:
                async with session.get(url + "/text") as resp:
                    assert await resp.text() == "hello, world"

    run(main())


def test_shutdown_with_idle_keepalive_connections(run):
    """The server is cleaned up while the client still holds kept-alive
    connections; afterwards the port refuses connections."""

    async def main():
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=5))
        try:
            async with serving(make_app()) as (runner, url):
                responses = await asyncio.gather(*(session.get(f"{url}/n/{n}") for n in range(5)))
                for resp in responses:
                    assert resp.status == 200
                    await resp.read()
                    resp.release()
            # runner.cleanup() has run: the listening socket is closed.
            with pytest.raises(aiohttp.ClientConnectionError):
                async with session.get(url + "/text", headers={"Connection": "close"}) as resp:
                    await resp.read()
        finally:
            await session.close()

    run(main())


def test_connection_refused(run):
    port = unused_port()

    async def main():
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectorError) as info:
                async with session.get(f"http://127.0.0.1:{port}/"):
                    pass
            assert isinstance(info.value.os_error, ConnectionRefusedError)
            assert info.value.port == port
        return "done"

    assert run(main()) == "done"


def test_unix_connection_refused(run, tmp_path):
    path = str(tmp_path / "nobody.sock")

    async def main():
        connector = aiohttp.UnixConnector(path=path)
        async with aiohttp.ClientSession(connector=connector) as session:
            with pytest.raises(aiohttp.ClientConnectorError) as info:
                async with session.get("http://unix/"):
                    pass
            assert isinstance(info.value.os_error, FileNotFoundError)

    run(main())
