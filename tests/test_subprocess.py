"""Child processes: loop.subprocess_exec()/subprocess_shell(), the
SubprocessTransport and SubprocessProtocol callbacks, and
asyncio.create_subprocess_exec()/create_subprocess_shell() with
asyncio.subprocess.Process on top -- every stdin/stdout/stderr form, the
Popen keyword arguments asyncio passes through, and the errors asyncio
raises for bad arguments and failed execs."""

import asyncio
import logging
import os
import signal
import subprocess
import sys

import pytest
from support import PY

PIPE = asyncio.subprocess.PIPE
DEVNULL = asyncio.subprocess.DEVNULL
STDOUT = asyncio.subprocess.STDOUT

# Children are shell commands where they can be: a shell starts in a
# fraction of the time an interpreter takes.
CAT = ["cat"]
ECHO2 = ["sh", "-c", 'd=$(cat); printf "OUT:%s" "$d"; printf "ERR:%s" "$d" >&2']


def children_of_us():
    """Pids whose parent is this process (zombies included)."""
    me = str(os.getpid())
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses.
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[1] == me:
            found.append((int(name), fields[0]))
    return found


class Recorder(asyncio.SubprocessProtocol):
    """Records every callback, in order."""

    def __init__(self, loop):
        self.events = []
        self.data = {1: b"", 2: b""}
        self.exited = loop.create_future()
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.events.append("connection_made")
        self.transport = transport

    def pipe_data_received(self, fd, data):
        if not self.events or self.events[-1] != ("data", fd):
            self.events.append(("data", fd))
        self.data[fd] += data

    def pipe_connection_lost(self, fd, exc):
        self.events.append(("pipe_lost", fd, exc))

    def process_exited(self):
        self.events.append("process_exited")
        self.exited.set_result(self.transport.get_returncode())

    def connection_lost(self, exc):
        self.events.append(("connection_lost", exc))
        self.lost.set_result(exc)


# -- the transport and the protocol ----------------------------------------------------


def test_subprocess_exec_protocol_order(kind, loop):
    async def main():
        transport, proto = await loop.subprocess_exec(lambda: Recorder(loop), *ECHO2)
        assert isinstance(transport, asyncio.SubprocessTransport)
        assert proto.events == ["connection_made"]
        stdin = transport.get_pipe_transport(0)
        stdin.write(b"hello")
        stdin.close()
        await proto.lost
        return transport, proto

    transport, proto = loop.run_until_complete(main())
    assert proto.data == {1: b"OUT:hello", 2: b"ERR:hello"}
    ev = proto.events
    assert ev[0] == "connection_made"
    assert ev[-1] == ("connection_lost", None)
    assert ev.count("process_exited") == 1
    # Each pipe: its data, then its end; every pipe ends before connection_lost.
    for fd in (1, 2):
        assert ev.index(("data", fd)) < ev.index(("pipe_lost", fd, None))
    assert ("pipe_lost", 0, None) in ev
    assert transport.get_returncode() == 0
    assert transport.is_closing() is False
    transport.close()
    assert transport.is_closing() is True
    loop.close()


def test_subprocess_shell_exitcode_and_close_after_finish(kind, loop):
    async def main():
        transport, proto = await loop.subprocess_shell(
            lambda: Recorder(loop), "exit 7", stdin=None, stdout=None, stderr=None)
        assert transport.get_pipe_transport(0) is None
        assert transport.get_pipe_transport(1) is None
        assert transport.get_pipe_transport(2) is None
        assert await proto.exited == 7
        await proto.lost
        return transport, proto

    transport, proto = loop.run_until_complete(main())
    assert proto.events == ["connection_made", "process_exited", ("connection_lost", None)]
    assert transport.get_returncode() == 7
    assert transport.close() is None
    loop.close()


def test_transport_pid_signals_and_wait(kind, loop):
    async def main():
        transport, proto = await loop.subprocess_exec(
            lambda: Recorder(loop), "sleep", "30", stdin=None, stdout=None, stderr=None)
        pid = transport.get_pid()
        assert isinstance(pid, int) and pid > 0
        assert transport.get_extra_info("subprocess").pid == pid
        assert transport.get_returncode() is None
        assert f"pid={pid} running" in repr(transport)
        transport.send_signal(signal.SIGTERM)
        rc = await transport._wait()
        assert await transport._wait() == rc      # again, once finished
        await proto.lost
        return transport, rc

    transport, rc = loop.run_until_complete(main())
    assert rc == -signal.SIGTERM
    # After the end the process is gone: asyncio raises ProcessLookupError.
    for call in (lambda: transport.send_signal(signal.SIGTERM), transport.terminate, transport.kill):
        with pytest.raises(ProcessLookupError):
            call()
    transport.close()
    loop.close()


def test_terminate_and_kill(kind, loop):
    async def one(action):
        proc = await asyncio.create_subprocess_exec("sleep", "30")
        getattr(proc, action)()
        return await proc.wait()

    assert loop.run_until_complete(one("terminate")) == -signal.SIGTERM
    assert loop.run_until_complete(one("kill")) == -signal.SIGKILL
    loop.close()


def test_close_kills_a_running_child(kind, loop, asyncio_log):
    async def main():
        transport, proto = await loop.subprocess_exec(
            lambda: Recorder(loop), "sleep", "30", stdin=None, stdout=None, stderr=None)
        transport.close()
        return await proto.exited

    assert loop.run_until_complete(main()) == -signal.SIGKILL
    loop.close()


def test_set_protocol(kind, loop):
    async def main():
        transport, proto = await loop.subprocess_exec(
            lambda: Recorder(loop), "cat", stdout=None, stderr=None)
        other = Recorder(loop)
        other.transport = transport
        transport.set_protocol(other)
        assert transport.get_protocol() is other
        transport.get_pipe_transport(0).close()
        await other.lost
        transport.close()
        return proto, other

    proto, other = loop.run_until_complete(main())
    assert proto.events == ["connection_made"]
    assert other.events == [("pipe_lost", 0, None), "process_exited", ("connection_lost", None)]
    loop.close()


# -- asyncio.subprocess.Process ----------------------------------------------------------


def test_create_subprocess_exec_communicate(kind, loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(*CAT, stdin=PIPE, stdout=PIPE)
        out, err = await proc.communicate(b"some data" * 1000)
        return proc, out, err

    proc, out, err = loop.run_until_complete(main())
    assert (out, err) == (b"some data" * 1000, None)
    assert proc.returncode == 0
    assert isinstance(proc, asyncio.subprocess.Process)
    loop.close()


def test_create_subprocess_shell_stdout_stderr(kind, loop):
    async def main():
        proc = await asyncio.create_subprocess_shell(
            "printf out; printf err >&2; exit 3", stdout=PIPE, stderr=PIPE)
        return proc, await proc.communicate()

    proc, (out, err) = loop.run_until_complete(main())
    assert (out, err) == (b"out", b"err")
    assert proc.returncode == 3
    loop.close()


def test_streams_and_drain(kind, loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(*CAT, stdin=PIPE, stdout=PIPE)
        proc.stdin.write(b"line one\nline two\n")
        await proc.stdin.drain()
        first = await proc.stdout.readline()
        proc.stdin.close()
        await proc.stdin.wait_closed()
        rest = await proc.stdout.read()
        return first, rest, await proc.wait()

    assert loop.run_until_complete(main()) == (b"line one\n", b"line two\n", 0)
    loop.close()


def test_wait_from_many_tasks(kind, loop):
    async def main():
        proc = await asyncio.create_subprocess_exec("sh", "-c", "exit 5")
        return await asyncio.gather(*(proc.wait() for _ in range(10)))

    assert loop.run_until_complete(main()) == [5] * 10
    loop.close()


@pytest.mark.parametrize("form", ["PIPE", "DEVNULL", "STDOUT", "file", "fd", "None"])
def test_stdout_stderr_forms(kind, loop, form, tmp_path):
    path = tmp_path / "out.txt"

    async def main(stdout, stderr):
        proc = await asyncio.create_subprocess_exec(
            "sh", "-c", "echo to-out; echo to-err >&2", stdin=DEVNULL, stdout=stdout,
            stderr=stderr)
        return proc, await proc.communicate()

    if form in ("file", "fd"):
        with open(path, "wb") as f:
            target = f if form == "file" else f.fileno()
            proc, (out, err) = loop.run_until_complete(main(target, target))
        assert sorted(path.read_bytes().splitlines()) == [b"to-err", b"to-out"]
        assert (out, err) == (None, None)
    elif form == "STDOUT":
        proc, (out, err) = loop.run_until_complete(main(PIPE, STDOUT))
        assert sorted(out.splitlines()) == [b"to-err", b"to-out"]
        assert err is None
        assert proc.stderr is None
    elif form == "PIPE":
        proc, (out, err) = loop.run_until_complete(main(PIPE, PIPE))
        assert (out, err) == (b"to-out\n", b"to-err\n")
    elif form == "DEVNULL":
        proc, (out, err) = loop.run_until_complete(main(DEVNULL, DEVNULL))
        assert (out, err) == (None, None)
    else:
        # Inherited: the child writes to our own stdout/stderr.
        proc, (out, err) = loop.run_until_complete(main(None, DEVNULL))
        assert (out, err) == (None, None)
    assert proc.returncode == 0
    loop.close()


def test_stdin_forms(kind, loop, tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes(b"from a file")

    async def main(stdin):
        proc = await asyncio.create_subprocess_exec(*CAT, stdin=stdin, stdout=PIPE)
        return (await proc.communicate())[0]

    with open(path, "rb") as f:
        assert loop.run_until_complete(main(f)) == b"from a file"
    with open(path, "rb") as f:
        assert loop.run_until_complete(main(f.fileno())) == b"from a file"
    assert loop.run_until_complete(main(DEVNULL)) == b""
    loop.close()


def test_pipe_transports_are_the_loops(kind, loop):
    async def main():
        transport, proto = await loop.subprocess_exec(lambda: Recorder(loop), *CAT)
        pipes = [transport.get_pipe_transport(fd) for fd in (0, 1, 2)]
        transport.get_pipe_transport(0).close()
        await proto.lost
        transport.close()
        return pipes

    stdin, stdout, stderr = loop.run_until_complete(main())
    assert isinstance(stdin, asyncio.WriteTransport)
    assert isinstance(stdout, asyncio.ReadTransport)
    assert isinstance(stderr, asyncio.ReadTransport)
    if kind.is_turboloop:
        from turboloop import _core
        assert type(stdin) is _core.WritePipeTransport
        assert type(stdout) is _core.ReadPipeTransport
    loop.close()


# -- Popen keyword arguments ------------------------------------------------------------


def run_sh(loop, code, **kwargs):
    async def main():
        proc = await asyncio.create_subprocess_exec("sh", "-c", code, stdout=PIPE, **kwargs)
        out, _ = await proc.communicate()
        return proc.returncode, out

    return loop.run_until_complete(main())


def test_cwd_and_env(kind, loop, tmp_path):
    rc, out = run_sh(loop, 'pwd -P; printf %s "$TL_X"', cwd=tmp_path,
                     env={**os.environ, "TL_X": "yes"})
    assert rc == 0
    assert out.decode().splitlines() == [os.path.realpath(tmp_path), "yes"]
    loop.close()


def test_shell_env(kind, loop):
    async def main():
        proc = await asyncio.create_subprocess_shell(
            'printf %s "$TL_Y"', env={**os.environ, "TL_Y": "shell"}, stdout=PIPE)
        return (await proc.communicate())[0]

    assert loop.run_until_complete(main()) == b"shell"
    loop.close()


def test_pass_fds_and_close_fds(kind, loop):
    r, w = os.pipe()
    try:
        rc, _ = run_sh(loop, f"printf through > /proc/self/fd/{w}", pass_fds=(w,))
        assert rc == 0
        assert os.read(r, 100) == b"through"
        # Without pass_fds the descriptor is closed in the child.
        rc, out = run_sh(loop, f"test -e /proc/self/fd/{w} && echo open || echo closed")
        assert (rc, out) == (0, b"closed\n")
        os.set_inheritable(w, True)
        rc, out = run_sh(loop, f"test -e /proc/self/fd/{w} && echo open || echo closed",
                         close_fds=False)
        assert (rc, out) == (0, b"open\n")
    finally:
        os.close(r)
        os.close(w)
    loop.close()


def closed_fd():
    """A descriptor number that is closed and stays so (the pipes a spawn
    makes take the lowest free numbers)."""
    with open(os.devnull, "rb") as f:
        fd = os.dup2(f.fileno(), 500)
    os.close(fd)
    return fd


def test_pass_fds_of_a_closed_fd(kind, loop):
    w = closed_fd()
    before = children_of_us()

    async def main():
        with pytest.raises(OSError) as info:
            await asyncio.create_subprocess_exec("true", stdout=PIPE, pass_fds=(w,))
        return info.value

    exc = loop.run_until_complete(main())
    assert exc.errno == 9       # EBADF, raised by the child before exec
    assert children_of_us() == before
    loop.close()


# The shell's pid, process group and session, from its own /proc entry.
IDS = 'read pid comm state ppid pgrp session rest < /proc/self/stat; echo "$pid $pgrp $session"'


def test_session_group_umask_preexec(kind, loop):
    rc, out = run_sh(loop, IDS + "; umask", start_new_session=True, umask=0o077)
    pid, pgrp, session, umask = out.split()
    assert rc == 0 and pid == pgrp == session and umask == b"0077"
    rc, out = run_sh(loop, IDS, process_group=0)
    pid, pgrp, session = out.split()
    assert rc == 0 and pid == pgrp != session
    rc, out = run_sh(loop, 'printf %s "$TL_PRE"',
                     preexec_fn=lambda: os.environ.__setitem__("TL_PRE", "ran"))
    assert (rc, out) == (0, b"ran")
    loop.close()


def test_user_group_extra_groups(kind, loop):
    uid, gid = os.getuid(), os.getgid()
    kwargs = {"user": uid, "group": gid}
    if uid == 0:
        kwargs["extra_groups"] = [gid]
    rc, out = run_sh(loop, "id -u; id -g", **kwargs)
    assert (rc, out) == (0, f"{uid}\n{gid}\n".encode())
    loop.close()


# -- bad arguments and failed execs ------------------------------------------------------


@pytest.mark.parametrize("kwargs", [
    {"universal_newlines": True}, {"bufsize": 4096}, {"shell": True},
    {"text": True}, {"encoding": "utf-8"}, {"errors": "strict"},
])
def test_exec_refuses(kind, loop, kwargs):
    async def main():
        await loop.subprocess_exec(asyncio.SubprocessProtocol, "true", **kwargs)

    with pytest.raises(ValueError):
        loop.run_until_complete(main())
    loop.close()


@pytest.mark.parametrize("cmd,kwargs", [
    (["ls", "-l"], {}), ("true", {"universal_newlines": True}), ("true", {"bufsize": 4096}),
    ("true", {"shell": False}), ("true", {"text": True}), ("true", {"encoding": "utf-8"}),
])
def test_shell_refuses(kind, loop, cmd, kwargs):
    async def main():
        await loop.subprocess_shell(asyncio.SubprocessProtocol, cmd, **kwargs)

    with pytest.raises(ValueError):
        loop.run_until_complete(main())
    loop.close()


def test_create_subprocess_text_mode_refused(kind, loop):
    async def main():
        for kwargs in ({"text": True}, {"encoding": "utf-8"}, {"errors": "strict"}):
            with pytest.raises(ValueError):
                await asyncio.create_subprocess_exec(sys.executable, **kwargs)
            with pytest.raises(ValueError):
                await asyncio.create_subprocess_shell("true", **kwargs)

    loop.run_until_complete(main())
    loop.close()


@pytest.mark.parametrize("stdin", [None, PIPE])
def test_exec_not_found(kind, loop, stdin):
    before = children_of_us()

    async def main():
        with pytest.raises(FileNotFoundError):
            await asyncio.create_subprocess_exec("/nonexistent/program", stdin=stdin,
                                                 stdout=PIPE, stderr=PIPE)

    loop.run_until_complete(main())
    assert children_of_us() == before
    loop.close()


def test_exec_permission_denied(kind, loop, tmp_path):
    path = tmp_path / "not-executable"
    path.write_text("#!/bin/sh\n")
    before = children_of_us()

    async def main():
        with pytest.raises(PermissionError):
            await loop.subprocess_exec(asyncio.SubprocessProtocol, str(path))

    if os.geteuid() == 0:
        path.chmod(0o644)       # root may execute anything with an x bit
    loop.run_until_complete(main())
    assert children_of_us() == before
    loop.close()


def test_exec_bad_cwd(kind, loop):
    async def main():
        with pytest.raises(FileNotFoundError):
            await asyncio.create_subprocess_exec("true", cwd="/nonexistent/dir")

    loop.run_until_complete(main())
    loop.close()


def test_debug_mode_logs(kind, loop, asyncio_log):
    loop.set_debug(True)

    async def main():
        proc = await asyncio.create_subprocess_exec("true", stdout=PIPE)
        await proc.communicate()

    logger = logging.getLogger("asyncio")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        loop.run_until_complete(main())
    finally:
        logger.setLevel(level)
    text = "\n".join(r.getMessage() for r in asyncio_log.take())
    assert "execute program 'true' stdout=<pipe>" in text
    assert "exited with return code 0" in text
    assert "was closed by peer" in text
    loop.close()


def test_unknown_popen_argument(kind, loop):
    async def main():
        with pytest.raises(TypeError):
            await asyncio.create_subprocess_exec("true", no_such_argument=1)

    loop.run_until_complete(main())
    loop.close()


# -- the child watcher ----------------------------------------------------------------


def test_exit_status_reaped_elsewhere(kind, loop, asyncio_log):
    """A child reaped behind the loop's back: returncode 255 and a warning,
    as asyncio's pidfd watcher does."""
    if not kind.is_turboloop and PY < (3, 12):
        pytest.skip("asyncio 3.11's default watcher (a thread) waits for the child itself")

    async def main():
        proc = await asyncio.create_subprocess_exec("sleep", "30")
        os.kill(proc.pid, signal.SIGKILL)
        os.waitpid(proc.pid, 0)
        return await proc.wait()

    assert loop.run_until_complete(main()) == 255
    messages = [r.getMessage() for r in asyncio_log.take()]
    assert any("exit status already read" in m for m in messages), messages
    loop.close()


def test_watcher_callback_errors_are_reported(kind, loop):
    """The C watcher reports a failing callback like any failing callback."""
    if not kind.is_turboloop:
        pytest.skip("turboloop's watcher")
    from turboloop import _core
    errors = kind.errors(loop)
    seen = []

    def boom(pid, returncode, *args):
        seen.append((pid, returncode) + args)
        raise ZeroDivisionError

    async def main():
        proc = subprocess.Popen(["sh", "-c", "exit 3"])
        watch = _core.PidfdWatch(loop, proc.pid, boom, ("extra",))
        assert repr(watch) == f"<PidfdWatch pid={proc.pid} watching>"
        while not seen:
            await asyncio.sleep(0.01)
        assert repr(watch) == f"<PidfdWatch pid={proc.pid} done>"
        proc.returncode = 3     # reaped by the watch
        return proc

    proc = loop.run_until_complete(main())
    assert seen == [(proc.pid, 3, "extra")]
    assert [type(c["exception"]) for c in errors] == [ZeroDivisionError]
    assert "boom" in errors[0]["message"]
    errors.clear()
    loop.close()


def test_watch_cancel(kind, loop):
    if not kind.is_turboloop:
        pytest.skip("turboloop's watcher")
    from turboloop import _core
    proc = subprocess.Popen(["sleep", "30"])
    watch = _core.PidfdWatch(loop, proc.pid, lambda *a: pytest.fail("called"), ())
    assert watch.fd >= 0
    watch.cancel()
    assert watch.fd == -1
    proc.kill()
    proc.wait()
    with pytest.raises(ProcessLookupError):
        _core.PidfdWatch(loop, proc.pid, print, ())
    with pytest.raises(ValueError):
        _core.PidfdWatch(loop, 0, print, ())
    loop.close()
    with pytest.raises(RuntimeError):
        _core.PidfdWatch(loop, os.getpid(), print, ())


def test_fallback_threaded_watcher(kind, loop, monkeypatch):
    """Without pidfds the loop watches children as asyncio does then."""
    from asyncio import unix_events
    if kind.is_turboloop:
        from turboloop import _subprocess
        monkeypatch.setattr(_subprocess, "_can_use_pidfd", lambda: False)
        other = kind.new_loop()
        assert type(other._watcher).__name__.endswith("ThreadedChildWatcher")
    elif PY >= (3, 14):
        monkeypatch.setattr(unix_events, "can_use_pidfd", lambda: False)
        other = kind.new_loop()
        assert type(other._watcher) is unix_events._ThreadedChildWatcher
    else:
        other = kind.new_loop()

    async def main():
        procs = [await asyncio.create_subprocess_exec("sh", "-c", f"exit {i}") for i in range(5)]
        return [await p.wait() for p in procs]

    try:
        assert other.run_until_complete(main()) == [0, 1, 2, 3, 4]
    finally:
        other.close()
    loop.close()


# -- a big output -------------------------------------------------------------------


def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def test_1gib_stdout_slow_reader_bounded_memory(kind, loop):
    """A child writes 1 GiB to stdout faster than the parent reads it: the
    stream's buffer pauses the pipe transport at its limit, so memory stays
    bounded by the water marks whatever the size."""
    total = 1 << 30
    limit = 64 * 1024           # the StreamReader default
    max_read = 256 * 1024       # what one read of the pipe transport may add

    async def main():
        proc = await asyncio.create_subprocess_exec(
            "head", "-c", str(total), "/dev/zero", stdout=PIPE, limit=limit)
        reader = proc.stdout
        pipe = proc._transport.get_pipe_transport(1)
        got = peak = pauses = 0
        rss0 = rss_peak = rss()
        n = 0
        while True:
            peak = max(peak, len(reader._buffer))
            pauses += not pipe.is_reading()
            # A quarter of the limit per loop iteration, while one read of
            # the pipe may bring up to 64 KiB: the buffer fills whatever
            # the order of the loop's polls.
            data = await reader.read(limit // 4)
            if not data:
                break
            got += len(data)
            n += 1
            if n % 4096 == 0:
                rss_peak = max(rss_peak, rss())
            await asyncio.sleep(0)          # the slow part
        return got, peak, pauses, rss_peak - rss0, await proc.wait()

    got, peak, pauses, grown, rc = loop.run_until_complete(main())
    assert (got, rc) == (total, 0)
    assert peak <= 2 * limit + max_read
    assert pauses > 0
    if "libasan" not in os.environ.get("LD_PRELOAD", ""):
        # (AddressSanitizer holds freed memory back in its quarantine.)
        assert grown < 32 << 20
    loop.close()
