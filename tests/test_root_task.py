"""The task a program was started with is recognisable the way libraries
look for it: its done callbacks hold asyncio's own
``base_events._run_until_complete_cb``, the very function object.  anyio's
``find_root_task()`` relies on this, and keeps its worker threads alive for
the life of the root task; when it cannot find it, every task that calls
``to_thread.run_sync()`` starts, and ends, a thread of its own.

Every way of starting a program is checked, on asyncio and on turboloop.
anyio is a test dependency (the ``test`` extra); without it the anyio cases
are skipped.
"""

import asyncio
import threading
from asyncio import base_events

import pytest

from support import PY, quiet_deprecations


def has_asyncio_stop_callback(task):
    return any(cb is base_events._run_until_complete_cb for cb, _ in task._callbacks or ())


async def probe():
    """What a library can see from inside the main task."""
    main = asyncio.current_task()
    seen = {"marked": has_asyncio_stop_callback(main)}
    try:
        from anyio._backends._asyncio import find_root_task
    except ImportError:
        return seen

    async def child():
        # From another task: the case that needs the marker (inside the main
        # task itself anyio falls back to the current task).
        return find_root_task()

    seen["root_from_child"] = await asyncio.create_task(child()) is main
    seen["root_from_main"] = find_root_task() is main
    return seen


def expected():
    try:
        import anyio  # noqa: F401
    except ImportError:
        return {"marked": True}
    return {"marked": True, "root_from_child": True, "root_from_main": True}


def test_run(kind):
    assert kind.run(probe()) == expected()


@pytest.mark.skipif(PY < (3, 12), reason="asyncio.run(loop_factory=) is 3.12+")
def test_asyncio_run_loop_factory(kind):
    assert asyncio.run(probe(), loop_factory=kind.new_event_loop) == expected()


def test_runner(kind):
    with asyncio.Runner(loop_factory=kind.new_event_loop) as runner:
        assert runner.run(probe()) == expected()
        # A second run() in the same runner is a new main task.
        assert runner.run(probe()) == expected()


def test_run_until_complete(kind, loop):
    try:
        assert loop.run_until_complete(probe()) == expected()
        # A task made first and then run: the marker is added to it.
        task = loop.create_task(probe())
        assert loop.run_until_complete(task) == expected()
        # Once run_until_complete() returns the marker is gone again, as in
        # asyncio, so a finished loop does not keep pointing at the task.
        assert not has_asyncio_stop_callback(task)
    finally:
        loop.close()


def test_policy(kind, fresh_policy):
    # What `python -m turboloop` and install() do: asyncio.run() with the
    # loop coming from the event loop policy.
    with quiet_deprecations():
        asyncio.set_event_loop_policy(kind.EventLoopPolicy())
    assert asyncio.run(probe()) == expected()


def test_stop_callback_semantics(kind, loop):
    # asyncio's callback stops the loop when the task ends, except for
    # SystemExit/KeyboardInterrupt, which propagate out of run_forever().
    async def leave(exc):
        raise exc

    try:
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(leave(KeyboardInterrupt()))
        with pytest.raises(ValueError):
            loop.run_until_complete(leave(ValueError()))
        fut = loop.create_future()
        loop.call_soon(fut.cancel)
        with pytest.raises(asyncio.CancelledError):
            loop.run_until_complete(fut)
        assert loop.run_until_complete(asyncio.sleep(0, "done")) == "done"
    finally:
        loop.close()


N_TASKS = 500


def test_anyio_to_thread_reuses_its_worker(kind):
    # 500 short tasks made with create_task, one after another, each calling
    # to_thread.run_sync(): anyio's idle worker thread serves them all, as
    # long as it finds the root task.
    anyio = pytest.importorskip("anyio")
    threads = []

    def work():
        # Thread objects, not idents: an ident can be reused by a new thread.
        threads.append(threading.current_thread())

    async def one():
        await anyio.to_thread.run_sync(work)

    async def main():
        for _ in range(N_TASKS):
            await asyncio.create_task(one())

    kind.run(main())
    assert len(threads) == N_TASKS
    assert len(set(threads)) == 1


def test_anyio_run_with_loop_factory(kind):
    # anyio.run() with asyncio's backend and a loop factory: anyio's own
    # way of choosing a loop (backend_options={"loop_factory": ...}).
    anyio = pytest.importorskip("anyio")

    async def main():
        return type(asyncio.get_running_loop()), (await probe())

    loop_type, seen = anyio.run(main, backend="asyncio",
                                backend_options={"loop_factory": kind.new_event_loop})
    assert issubclass(loop_type, kind.Loop)
    assert seen == expected()
