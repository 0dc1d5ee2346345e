"""os.fork() with a loop around: the child can make and run a new loop,
whether the parent's loop was idle or running the code that forked, and
what the child does to its copies of the parent's loop does not reach the
parent (its poller, wake-up fd and signal wake-up fd are the child's own).
"""

import asyncio
import os
import signal
import sys
import traceback

import pytest
from support import PY

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()"),
    # 3.12+ warns about forking while threads (an earlier test's executor, a
    # watcher thread) are alive; these children only run the loop.
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]


def in_child(body):
    """Fork; run body() in the child, which exits with body's return value
    (1 and a traceback on stderr if it raised).  Returns the child's pid."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = body()
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


def exit_code(pid):
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


async def some_io():
    """A little of everything: a timer, a pipe, a child process."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(0.001)
    r, w = os.pipe()
    reader = asyncio.StreamReader()
    with os.fdopen(r, "rb", 0) as rf:
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), rf)
        os.write(w, b"ping")
        os.close(w)
        data = await reader.read()
        transport.close()
    proc = await asyncio.create_subprocess_exec("sh", "-c", "exit 7")
    return data == b"ping" and await proc.wait() == 7


class Reader(asyncio.Protocol):
    def __init__(self):
        self.data = b""

    def data_received(self, data):
        self.data += data


def test_new_loop_in_a_child_of_an_idle_loop(kind, loop):
    r, w = os.pipe()
    rf = os.fdopen(r, "rb", 0)

    async def connect():
        return await loop.connect_read_pipe(Reader, rf)

    transport, proto = loop.run_until_complete(connect())
    pid = in_child(lambda: 0 if kind.run(some_io()) else 2)
    assert exit_code(pid) == 0

    # The parent's loop still works, its pipe included.
    async def after():
        os.write(w, b"still here")
        while not proto.data:
            await asyncio.sleep(0.01)
        return await some_io()

    assert loop.run_until_complete(after())
    assert proto.data == b"still here"
    transport.close()
    os.close(w)
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()


def test_new_loop_in_a_child_forked_by_a_running_loop(kind, loop):
    if not kind.is_turboloop and PY < (3, 12):
        pytest.skip("asyncio resets the running loop in forked children from 3.12 on")

    async def main():
        pid = in_child(lambda: 0 if kind.run(some_io()) else 2)
        # The parent's loop runs on while the child works.
        await asyncio.sleep(0.01)
        return pid

    pid = loop.run_until_complete(main())
    assert exit_code(pid) == 0
    assert loop.run_until_complete(some_io())
    loop.close()


def test_child_closing_its_copy_leaves_the_parent_alone(kind, loop):
    """The child closes the transports and the loop it inherited and wakes
    its copy from another thread: with a shared epoll and eventfd that
    would drop the parent's registrations and wake the parent."""
    if not kind.is_turboloop:
        pytest.skip("asyncio's selector loop shares its epoll with forked children")
    r, w = os.pipe()
    rf = os.fdopen(r, "rb", 0)
    transport, proto = loop.run_until_complete(loop.connect_read_pipe(Reader, rf))

    def child():
        transport.close()
        loop.call_soon_threadsafe(lambda: None)
        loop.run_until_complete(asyncio.sleep(0.01))
        loop.close()
        return 0

    pid = in_child(child)
    assert exit_code(pid) == 0

    async def after():
        os.write(w, b"data")
        for _ in range(100):
            if proto.data:
                break
            await asyncio.sleep(0.01)

    loop.run_until_complete(after())
    assert proto.data == b"data"
    assert not transport.is_closing()
    transport.close()
    os.close(w)
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()


def test_signals_in_the_child_do_not_reach_the_parent(kind, loop):
    if not kind.is_turboloop and PY < (3, 12):
        pytest.skip("asyncio unsets the signal wake-up fd in forked children from 3.12 on")
    got = []
    loop.add_signal_handler(signal.SIGUSR1, got.append, "parent")

    def child():
        os.kill(os.getpid(), signal.SIGUSR1)
        return 0

    try:
        pid = in_child(child)
        assert exit_code(pid) == 0
        loop.run_until_complete(asyncio.sleep(0.05))
        assert got == []
        # The parent's own signals still arrive.
        os.kill(os.getpid(), signal.SIGUSR1)
        loop.run_until_complete(asyncio.sleep(0.05))
        assert got == ["parent"]
    finally:
        loop.remove_signal_handler(signal.SIGUSR1)
    loop.close()


def test_child_with_signal_handlers_and_subprocesses(kind, loop):
    """In the child, the inherited loop can be used itself: its signal
    handlers and child watching work there."""
    if not kind.is_turboloop:
        pytest.skip("asyncio's selector loop shares its epoll with forked children")
    got = []
    loop.add_signal_handler(signal.SIGUSR2, got.append, "sig")

    def child():
        signal.set_wakeup_fd(loop._csock.fileno())

        async def main():
            os.kill(os.getpid(), signal.SIGUSR2)
            await asyncio.sleep(0.05)
            proc = await asyncio.create_subprocess_exec("sh", "-c", "exit 4")
            return await proc.wait()

        rc = loop.run_until_complete(main())
        return 0 if (rc, got) == (4, ["sig"]) else 3

    try:
        pid = in_child(child)
        assert exit_code(pid) == 0
        assert got == []
    finally:
        loop.remove_signal_handler(signal.SIGUSR2)
    loop.close()
