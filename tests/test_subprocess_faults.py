"""Child processes under stress and failure: a child killed by a signal, a
child that closes its stdin while the parent writes, many children at
once, a cancelled communicate(), and a loop closed while children run."""

import asyncio
import gc
import inspect
import os
import signal
import sys
import warnings
from asyncio import base_subprocess

import pytest
from support import PY

# Pidfds and pipes sit in the poller: run on turboloop's poll(2) backend too.
ALSO_POLL_BACKEND = True

PIPE = asyncio.subprocess.PIPE


def test_child_killed_by_a_signal(kind, loop):
    class Proto(asyncio.SubprocessProtocol):
        def __init__(self):
            self.events = []
            self.done = loop.create_future()

        def pipe_data_received(self, fd, data):
            self.events.append(("data", fd, data))

        def pipe_connection_lost(self, fd, exc):
            self.events.append(("pipe_lost", fd, exc))

        def process_exited(self):
            self.events.append("exited")

        def connection_lost(self, exc):
            self.events.append(("lost", exc))
            self.done.set_result(None)

    async def main():
        # The child says it is ready, then waits to be killed from outside.
        transport, proto = await loop.subprocess_exec(
            Proto, "sh", "-c", "echo ready; exec sleep 30", stdin=None, stderr=None)
        while not proto.events:
            await asyncio.sleep(0.01)
        os.kill(transport.get_pid(), signal.SIGKILL)
        await proto.done
        return transport, proto

    transport, proto = loop.run_until_complete(main())
    assert transport.get_returncode() == -signal.SIGKILL
    assert proto.events[0] == ("data", 1, b"ready\n")
    assert set(proto.events[1:-1]) == {("pipe_lost", 1, None), "exited"}
    assert proto.events[-1] == ("lost", None)
    transport.close()
    loop.close()


def test_child_closes_stdin_early(kind, loop):
    """The child closes its stdin while the parent waits in drain(): the
    drain gets BrokenPipeError, later drains ConnectionResetError, and
    communicate() does not mind."""
    async def main():
        proc = await asyncio.create_subprocess_exec(
            "sh", "-c", "echo ready; head -c 10 >/dev/null; exec 0<&-; exec sleep 30",
            stdin=PIPE, stdout=PIPE)
        assert await proc.stdout.readline() == b"ready\n"
        # More than the pipe holds and the high-water mark: drain() waits.
        proc.stdin.write(b"x" * (1 << 20))
        with pytest.raises(BrokenPipeError):
            await proc.stdin.drain()
        proc.stdin.write(b"more")           # dropped
        with pytest.raises(ConnectionResetError):
            await proc.stdin.drain()
        proc.kill()
        out, err = await proc.communicate(b"ignored")
        return out, proc.returncode

    assert loop.run_until_complete(main()) == (b"", -signal.SIGKILL)
    loop.close()


def test_communicate_with_stdin_closed_early(kind, loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            "sh", "-c", "exec 0<&-; echo done", stdin=PIPE, stdout=PIPE)
        return await proc.communicate(b"y" * (1 << 20)), proc.returncode

    assert loop.run_until_complete(main()) == ((b"done\n", None), 0)
    loop.close()


def test_200_concurrent_children(kind, loop):
    n = 200

    async def one(i):
        proc = await asyncio.create_subprocess_exec(
            "sh", "-c", 'read line; echo "$line"; exit $(($line % 7))',
            stdin=PIPE, stdout=PIPE)
        return proc

    async def main():
        procs = await asyncio.gather(*(one(i) for i in range(n)))
        # All n are alive here, each with two pipes and a watch.
        assert all(p.returncode is None for p in procs)
        results = await asyncio.gather(*(p.communicate(b"%d\n" % i) for i, p in enumerate(procs)))
        return [(out, p.returncode) for (out, _), p in zip(results, procs)]

    got = loop.run_until_complete(main())
    assert got == [(b"%d\n" % i, i % 7) for i in range(n)]
    loop.close()


def test_cancel_communicate(kind, loop):
    async def main():
        # The child never reads its stdin: communicate() waits in drain().
        proc = await asyncio.create_subprocess_exec(
            "sleep", "30", stdin=PIPE, stdout=PIPE, stderr=PIPE)
        task = asyncio.ensure_future(proc.communicate(b"z" * (8 << 20)))
        while proc.stdin.transport.get_write_buffer_size() == 0:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert proc.returncode is None
        proc.kill()
        # communicate() can be called again and finishes the process off.
        out, err = await proc.communicate()
        return out, err, proc.returncode

    assert loop.run_until_complete(main()) == (b"", b"", -signal.SIGKILL)
    loop.close()


def test_cancel_wait_for_communicate(kind, loop):
    async def main():
        proc = await asyncio.create_subprocess_exec("sleep", "30", stdout=PIPE)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(proc.communicate(), 0.05)
        proc.terminate()
        return await proc.wait()

    assert loop.run_until_complete(main()) == -signal.SIGTERM
    loop.close()


def pidfds():
    fds = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == "anon_inode:[pidfd]":
                fds.add(int(name))
        except OSError:
            pass
    return fds


def test_loop_closed_with_live_children(kind, loop, monkeypatch):
    """Closing the loop leaves the child to the transport's finalizer, which
    warns about the unclosed transport and kills the child, as asyncio does
    with its pidfd watcher.  asyncio's transport fails to close its pipes on
    a closed loop until CPython gh-114177 (3.14, some patch releases before):
    then close() raises in the finalizer and the child lives on."""
    if not kind.is_turboloop and PY < (3, 12):
        pytest.skip("asyncio 3.11's threaded child watcher keeps the transport until the child exits")
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)

    async def main():
        proc = await asyncio.create_subprocess_exec("sleep", "30", stdout=PIPE)
        return proc, proc.pid

    pidfds_before = pidfds()
    proc, pid = loop.run_until_complete(main())
    loop.close()
    leaked = pidfds() - pidfds_before
    if kind.is_turboloop or PY < (3, 12):
        assert not leaked
    else:
        # asyncio's pidfd watcher keeps the pidfd of a child whose loop
        # closed for good; turboloop's closes it with the loop.
        for fd in leaked:
            os.close(fd)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del proc
        gc.collect()
    messages = [str(w.message) for w in caught]
    assert any("unclosed transport <_UnixSubprocessTransport" in m for m in messages), messages
    if "is_closed" in inspect.getsource(base_subprocess.BaseSubprocessTransport.close):
        assert unraisable == []
        expected = -signal.SIGKILL
    else:
        assert [str(u.exc_value) for u in unraisable] == ["Event loop is closed"]
        os.kill(pid, signal.SIGTERM)
        expected = -signal.SIGTERM
    unraisable.clear()
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        # Popen's own finalizer reaped it, dead already.
        assert expected == -signal.SIGKILL
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    else:
        assert os.waitstatus_to_exitcode(status) == expected


@pytest.mark.skipif(sys.platform != "linux", reason="/proc")
def test_no_fd_or_zombie_left(kind, loop):
    """After many children, the process holds no more descriptors and no
    zombies than before (the kind fixture checks descriptors too)."""
    from test_subprocess import children_of_us
    before = children_of_us()

    async def main():
        for _ in range(3):
            procs = [await asyncio.create_subprocess_exec("true", stdin=PIPE, stdout=PIPE,
                                                          stderr=PIPE) for _ in range(20)]
            await asyncio.gather(*(p.communicate() for p in procs))

    loop.run_until_complete(main())
    assert children_of_us() == before
    loop.close()
