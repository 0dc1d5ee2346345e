"""Servers that choose their own event loop, run under `python -m turboloop`
and with the options docs/frameworks.md gives: the application reports the
loop it runs on.

uvicorn is a test dependency (the ``test`` extra); without it the cases that
start a real server are skipped.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import types

import pytest

from support import CHILD_TIMEOUT, script, subprocess_env

# An ASGI application answering every request with the module of its running
# loop's class and the process id.
APP = script("""
    import asyncio, os

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        loop = asyncio.get_running_loop()
        body = f"{type(loop).__module__} {os.getpid()}".encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
""")


def get(path):
    """GET / over the Unix socket at path: (loop module, server pid)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(CHILD_TIMEOUT)
        s.connect(path)
        s.sendall(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), data
    module, pid = body.decode().split()
    return module, int(pid)


class Server:
    """A uvicorn process serving APP on a Unix socket."""

    def __init__(self, tmp_path, args):
        (tmp_path / "app.py").write_text(APP)
        self.path = str(tmp_path / "http.sock")
        self.stderr = open(tmp_path / "stderr.txt", "w+")
        self.proc = subprocess.Popen(
            [sys.executable, *args, "app:app", "--uds", self.path, "--log-level", "warning"],
            cwd=tmp_path, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=self.stderr)

    def __enter__(self):
        deadline = time.monotonic() + CHILD_TIMEOUT
        while True:
            assert self.proc.poll() is None, f"the server exited: {self.read_stderr()}"
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(self.path)
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(CHILD_TIMEOUT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.read_stderr()
            self.stderr.close()

    def read_stderr(self):
        """What the server wrote to stderr so far (all of it once it exited)."""
        if not self.stderr.closed:
            self.stderr.seek(0)
            self.err = self.stderr.read()
        return self.err


@pytest.fixture
def uvicorn():
    uvicorn = pytest.importorskip("uvicorn")
    if not hasattr(pytest.importorskip("uvicorn.config"), "LOOP_FACTORIES"):
        pytest.skip("uvicorn < 0.36 takes no loop factory")
    return uvicorn


def test_python_m_turboloop_uvicorn(tl, uvicorn, tmp_path):
    # uvicorn's default (--loop auto) would pick uvloop where it is installed.
    with Server(tmp_path, ["-m", "turboloop", "-m", "uvicorn"]) as server:
        module, pid = get(server.path)
        assert module == "turboloop._loop"
        assert pid == server.proc.pid
    assert "turboloop:" not in server.read_stderr()


def test_python_m_turboloop_uvicorn_workers(tl, uvicorn, tmp_path):
    # Worker processes get the loop factory with the configuration.
    with Server(tmp_path, ["-m", "turboloop", "-m", "uvicorn", "--workers", "2"]) as server:
        module, pid = get(server.path)
        assert module == "turboloop._loop"
        assert pid != server.proc.pid


def test_python_m_turboloop_uvicorn_explicit_loop(tl, uvicorn, tmp_path):
    # A loop chosen on the command line is kept, and one line says how to
    # get turboloop instead.
    with Server(tmp_path, ["-m", "turboloop", "-m", "uvicorn", "--loop", "asyncio"]) as server:
        module, _ = get(server.path)
        assert module == "asyncio.unix_events"
        notes = [line for line in server.read_stderr().splitlines() if line.startswith("turboloop:")]
        assert notes == ["turboloop: uvicorn's --loop asyncio chooses the event loop, not turboloop; "
                         "for turboloop use --loop turboloop:new_event_loop"]


def test_uvicorn_loop_option(tl, uvicorn, tmp_path):
    # The spelling docs/frameworks.md gives, without python -m turboloop.
    with Server(tmp_path, ["-m", "uvicorn", "--loop", "turboloop:new_event_loop"]) as server:
        module, _ = get(server.path)
        assert module == "turboloop._loop"


# -- the command line adaptation, against both generations of uvicorn -------------


@pytest.fixture
def fake_uvicorn(monkeypatch):
    """Install a stand-in uvicorn.config; returns a function that makes it
    one of a loop-factory uvicorn (0.36+) or a loop-setup one (<= 0.35)."""
    package = types.ModuleType("uvicorn")
    config = types.ModuleType("uvicorn.config")
    package.config = config
    monkeypatch.setitem(sys.modules, "uvicorn", package)
    monkeypatch.setitem(sys.modules, "uvicorn.config", config)
    monkeypatch.delenv("UVICORN_LOOP", raising=False)
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)

    def make(factories):
        if factories:
            config.LOOP_FACTORIES = {"none": None, "auto": "x:y"}
        else:
            config.LOOP_SETUPS = {"none": None, "auto": "x:y"}
    return make


@pytest.mark.parametrize("factories", [True, False], ids=["uvicorn-0.36+", "uvicorn-0.35"])
def test_adapt_argv(tl, fake_uvicorn, factories, capsys, monkeypatch):
    from turboloop._frameworks import adapt_argv

    fake_uvicorn(factories)
    ours = ["--loop", "turboloop:new_event_loop" if factories else "asyncio"]
    assert adapt_argv("uvicorn", ["app:app", "--port", "1"]) == ours + ["app:app", "--port", "1"]
    assert capsys.readouterr().err == ""
    # Chosen on the command line or in the environment: kept.
    for argv in (["app:app", "--loop", "uvloop"], ["--loop=uvloop", "app:app"]):
        assert adapt_argv("uvicorn", argv) == argv
        assert capsys.readouterr().err.count("turboloop: uvicorn's --loop uvloop") == 1
    for argv in (["app:app", "--loop", "turboloop:new_event_loop"], ["app:app", "--loop", "none"],
                 ["--help"], ["--version"]):
        assert adapt_argv("uvicorn", argv) == argv
        assert capsys.readouterr().err == ""
    monkeypatch.setenv("UVICORN_LOOP", "uvloop")
    assert adapt_argv("uvicorn", ["app:app"]) == ["app:app"]
    assert "turboloop:" in capsys.readouterr().err
    monkeypatch.delenv("UVICORN_LOOP")
    # Worker processes of an old uvicorn cannot be told: one line says so.
    assert adapt_argv("uvicorn", ["app:app", "--workers", "2"]) == ours + ["app:app", "--workers", "2"]
    err = capsys.readouterr().err
    assert err.count("\n") == (0 if factories else 1)
    # Other modules are left alone.
    assert adapt_argv("aiohttp.web", ["app:app"]) == ["app:app"]
    assert capsys.readouterr().err == ""


def test_adapt_argv_hypercorn(tl, capsys):
    from turboloop._frameworks import adapt_argv

    # hypercorn's command line is never changed; one line says when the app
    # would not run on turboloop.
    for argv, note in [(["app:app"], "worker processes"),
                       (["app:app", "--workers", "2"], "worker processes"),
                       (["-w", "0", "app:app"], None),
                       (["-w0", "app:app"], None),
                       (["--workers=0", "app:app"], None),
                       (["-c", "conf.toml", "app:app"], None),
                       (["-k", "uvloop", "-w", "0", "app:app"], "--worker-class uvloop"),
                       (["--worker-class=asyncio", "--workers", "0", "app:app"], None),
                       (["--help"], None)]:
        assert adapt_argv("hypercorn", argv) == argv
        err = capsys.readouterr().err
        if note is None:
            assert err == "", argv
        else:
            assert err.count("\n") == 1 and note in err and err.startswith("turboloop: "), argv
