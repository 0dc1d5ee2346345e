"""run_in_executor, the default executor and its shutdown, getaddrinfo and
getnameinfo.  Only numeric addresses are resolved, so no test needs a network
or a name service."""

import asyncio
import concurrent.futures
import contextvars
import socket
import threading

import pytest

from support import PY, close_loop

var = contextvars.ContextVar("var", default="default")


def test_run_in_executor_default(kind, loop):
    main_thread = threading.get_ident()

    def work(a, b):
        return a + b, threading.get_ident()

    fut = loop.run_in_executor(None, work, 1, 2)
    assert asyncio.isfuture(fut)
    assert type(fut) is kind.Future
    result, worker_thread = loop.run_until_complete(fut)
    assert result == 3
    assert worker_thread != main_thread
    close_loop(loop)


def test_run_in_executor_exception(loop):
    def fail():
        raise ValueError("in thread")

    with pytest.raises(ValueError, match="in thread"):
        loop.run_until_complete(loop.run_in_executor(None, fail))
    close_loop(loop)


def test_run_in_executor_explicit_executor(loop):
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="explicit") as pool:
        name = loop.run_until_complete(loop.run_in_executor(pool, lambda: threading.current_thread().name))
    assert name.startswith("explicit")
    close_loop(loop)


def test_set_default_executor(loop):
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="custom-default")
    loop.set_default_executor(pool)
    name = loop.run_until_complete(loop.run_in_executor(None, lambda: threading.current_thread().name))
    assert name.startswith("custom-default")
    close_loop(loop)
    pool.shutdown(wait=True)


def test_set_default_executor_requires_thread_pool(loop):
    class NotAThreadPool(concurrent.futures.Executor):
        pass

    with pytest.raises(TypeError, match="executor must be ThreadPoolExecutor instance"):
        loop.set_default_executor(NotAThreadPool())
    loop.close()


def test_many_executor_calls(loop):
    async def main():
        return await asyncio.gather(*(loop.run_in_executor(None, pow, i, 2) for i in range(50)))

    assert loop.run_until_complete(main()) == [i * i for i in range(50)]
    close_loop(loop)


def test_to_thread_copies_context(loop):
    async def main():
        var.set("from task")
        return await asyncio.to_thread(var.get)

    assert loop.run_until_complete(main()) == "from task"
    close_loop(loop)


def test_cancelling_the_executor_future(loop):
    release = threading.Event()

    async def main():
        fut = loop.run_in_executor(None, release.wait)
        await asyncio.sleep(0)
        fut.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fut

    try:
        loop.run_until_complete(main())
    finally:
        release.set()
    close_loop(loop)


def test_shutdown_default_executor(loop):
    finished = []

    def work():
        finished.append(threading.current_thread().name)

    loop.run_until_complete(loop.run_in_executor(None, work))
    loop.run_until_complete(loop.shutdown_default_executor())
    assert len(finished) == 1
    with pytest.raises(RuntimeError, match="Executor shutdown has been called"):
        loop.run_in_executor(None, work)
    loop.close()


def test_shutdown_default_executor_without_executor(loop):
    loop.run_until_complete(loop.shutdown_default_executor())
    with pytest.raises(RuntimeError, match="Executor shutdown has been called"):
        loop.run_in_executor(None, print)
    loop.close()


def test_shutdown_default_executor_waits_for_running_work(loop):
    started = threading.Event()
    release = threading.Event()
    finished = []

    def work():
        started.set()
        release.wait()
        finished.append(True)

    async def main():
        fut = loop.run_in_executor(None, work)
        await loop.run_in_executor(None, started.wait)
        loop.call_later(0.01, release.set)
        await loop.shutdown_default_executor()
        assert finished == [True]
        await fut

    loop.run_until_complete(main())
    loop.close()


# 3.12 added timeout=, but 3.12.1 still awaits the executor's join before the
# timeout applies, so the timeout only takes effect from 3.13 on.
@pytest.mark.skipif(PY < (3, 13), reason="shutdown_default_executor(timeout) only times out from 3.13")
def test_shutdown_default_executor_timeout(loop):
    started = threading.Event()
    release = threading.Event()

    def work():
        started.set()
        release.wait()

    async def main():
        loop.run_in_executor(None, work)
        await loop.run_in_executor(None, started.wait)
        with pytest.warns(RuntimeWarning, match="did not finishing joining its threads within 0.01 seconds"):
            await loop.shutdown_default_executor(timeout=0.01)

    try:
        loop.run_until_complete(main())
    finally:
        release.set()
    loop.close()


@pytest.mark.skipif(PY < (3, 12), reason="shutdown_default_executor(timeout) is new in 3.12")
def test_shutdown_default_executor_timeout_not_reached(loop):
    loop.run_until_complete(loop.run_in_executor(None, lambda: None))
    loop.run_until_complete(loop.shutdown_default_executor(timeout=30))
    loop.close()


def test_close_shuts_the_default_executor_down(loop):
    loop.run_until_complete(loop.run_in_executor(None, lambda: None))
    loop.close()
    with pytest.raises(RuntimeError):
        loop.run_in_executor(None, print)


def test_run_in_executor_rejects_coroutine_function_in_debug_mode(loop):
    async def coro_func():
        pass

    loop.set_debug(True)
    with pytest.raises(TypeError, match=r"coroutines cannot be used with run_in_executor\(\)"):
        loop.run_in_executor(None, coro_func)
    loop.close()


# -- name resolution -----------------------------------------------------------


@pytest.mark.parametrize(
    "host, port, kwargs",
    [
        ("127.0.0.1", 80, dict(family=socket.AF_INET, type=socket.SOCK_STREAM)),
        ("127.0.0.1", "443", dict(type=socket.SOCK_DGRAM)),
        ("127.0.0.1", 0, dict(flags=socket.AI_NUMERICHOST, proto=socket.IPPROTO_TCP)),
        ("127.0.0.1", None, dict(family=socket.AF_INET, type=socket.SOCK_STREAM)),
        (None, 8080, dict(family=socket.AF_INET, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)),
    ],
)
def test_getaddrinfo_matches_socket_module(loop, host, port, kwargs):
    expected = socket.getaddrinfo(host, port, **kwargs)
    got = loop.run_until_complete(loop.getaddrinfo(host, port, **kwargs))
    assert got == expected
    close_loop(loop)


def test_getaddrinfo_error(loop):
    with pytest.raises(socket.gaierror):
        loop.run_until_complete(loop.getaddrinfo("not an address", 80, flags=socket.AI_NUMERICHOST))
    close_loop(loop)


def test_getaddrinfo_in_debug_mode(loop):
    loop.set_debug(True)
    got = loop.run_until_complete(loop.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM))
    assert got == socket.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)
    close_loop(loop)


@pytest.mark.parametrize("flags", [socket.NI_NUMERICHOST | socket.NI_NUMERICSERV, socket.NI_NUMERICHOST])
def test_getnameinfo_matches_socket_module(loop, flags):
    expected = socket.getnameinfo(("127.0.0.1", 80), flags)
    got = loop.run_until_complete(loop.getnameinfo(("127.0.0.1", 80), flags))
    assert got == expected
    close_loop(loop)


def test_getnameinfo_default_flags_numeric_result(loop):
    got = loop.run_until_complete(loop.getnameinfo(("127.0.0.1", 0), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV))
    assert got == ("127.0.0.1", "0")
    close_loop(loop)


def test_resolution_after_executor_shutdown_raises(loop):
    loop.run_until_complete(loop.shutdown_default_executor())
    with pytest.raises(RuntimeError, match="Executor shutdown has been called"):
        loop.run_until_complete(loop.getaddrinfo("127.0.0.1", 80))
    loop.close()
