"""turboloop's Future and Task are asyncio.Future and asyncio.Task.

They are subclasses of asyncio's C types with asyncio's object layout, so
isinstance() checks in libraries take the same branch as on asyncio, and
asyncio's own C code (3.14+: the task list, the call graph, the reader behind
``python -m asyncio ps``) works on them.  The behavioural tests run on both
implementations; a few only concern turboloop's types.
"""

import asyncio
import gc
import subprocess
import sys
import weakref

import pytest

from support import CHILD_TIMEOUT, PY, script, subprocess_env

try:
    import _asyncio
except ImportError:  # pragma: no cover - every supported CPython has it
    _asyncio = None

needs_graph = pytest.mark.skipif(PY < (3, 14), reason="asyncio call graphs are 3.14+")


# -- isinstance and type -----------------------------------------------------


def test_future_and_task_are_asyncio_instances(kind, loop):
    async def coro():
        return 1

    fut = loop.create_future()
    task = loop.create_task(coro())
    assert isinstance(fut, asyncio.Future)
    assert isinstance(task, asyncio.Future)
    assert isinstance(task, asyncio.Task)
    assert asyncio.isfuture(fut) and asyncio.isfuture(task)
    assert type(fut) is kind.Future
    assert type(task) is kind.Task
    assert loop.run_until_complete(task) == 1
    loop.close()


def test_direct_construction_is_asyncio_instance(kind, loop):
    async def coro():
        return 2

    fut = kind.Future(loop=loop)
    task = kind.Task(coro(), loop=loop)
    assert isinstance(fut, asyncio.Future) and isinstance(task, asyncio.Task)
    assert loop.run_until_complete(task) == 2
    loop.close()


def test_type_relations(tl):
    if not tl._core.ASYNCIO_BASE:
        pytest.skip("asyncio's C types have another layout here: plain types")
    assert issubclass(tl.Future, _asyncio.Future)
    assert issubclass(tl.Task, _asyncio.Task)
    assert issubclass(tl.Task, tl.Future)
    assert tl.Task.__mro__ == (tl.Task, tl.Future, _asyncio.Task, _asyncio.Future, object)
    assert asyncio.Future is _asyncio.Future and asyncio.Task is _asyncio.Task


def test_object_sizes(tl):
    """No state is kept twice: a Future is exactly asyncio's size, a Task at
    most one pointer more (its registry weakref before 3.14)."""
    loop = tl.new_event_loop()
    try:
        ours = sys.getsizeof(loop.create_future())
        theirs = sys.getsizeof(asyncio.Future(loop=loop))
        assert ours == theirs
        assert tl.Task.__basicsize__ - _asyncio.Task.__basicsize__ in ((0,) if PY >= (3, 14) else (8,))
    finally:
        loop.close()


# -- Python subclasses and super() ---------------------------------------------


def test_python_subclass_super(kind, loop):
    calls = []

    class MyFuture(kind.Future):
        def set_result(self, value):
            calls.append(("set_result", value))
            super().set_result(value * 2)

        def add_done_callback(self, fn, *, context=None):
            calls.append("add_done_callback")
            return super().add_done_callback(fn, context=context)

    class MyTask(kind.Task):
        def cancel(self, msg=None):
            calls.append(("cancel", msg))
            return super().cancel(msg)

    fut = MyFuture(loop=loop)
    assert isinstance(fut, asyncio.Future)

    async def waiter():
        return await fut

    task = MyTask(waiter(), loop=loop)
    assert isinstance(task, asyncio.Task)
    loop.call_soon(fut.set_result, 21)
    assert loop.run_until_complete(task) == 42
    assert ("set_result", 21) in calls and "add_done_callback" in calls

    async def forever():
        await asyncio.sleep(3600)

    task2 = MyTask(forever(), loop=loop)
    loop.call_soon(task2.cancel, "stop")
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task2)
    assert ("cancel", "stop") in calls
    loop.close()


def test_subclass_instance_dict_and_weakref(kind, loop):
    class F(kind.Future):
        pass

    f = F(loop=loop)
    f.extra = 1
    assert f.extra == 1
    r = weakref.ref(f)
    assert r() is f
    del f
    gc.collect()
    assert r() is None
    loop.close()


# -- asyncio's own methods see the same state ------------------------------------


def test_asyncio_methods_read_our_state(kind, loop):
    """asyncio.Future's methods called on a turboloop future directly (not
    through the subclass) read the same fields turboloop writes."""
    fut = loop.create_future()
    assert asyncio.Future.done(fut) is False
    assert asyncio.Future.get_loop(fut) is loop
    fut.set_result("x")
    assert asyncio.Future.done(fut) is True
    assert asyncio.Future.result(fut) == "x"
    assert asyncio.Future._state.__get__(fut) == "FINISHED"

    failed = loop.create_future()
    failed.set_exception(ValueError("boom"))
    assert isinstance(asyncio.Future.exception(failed), ValueError)

    async def coro():
        await asyncio.sleep(0)
        return 3

    task = loop.create_task(coro(), name="named")
    assert asyncio.Task.get_name(task) == "named"
    assert asyncio.Task.get_coro(task) is task.get_coro()
    assert loop.run_until_complete(task) == 3
    assert asyncio.Future.result(task) == 3
    loop.close()


def test_asyncio_callbacks_getter_with_a_waiting_task(kind, loop):
    """A task waiting on a future is one done callback, as asyncio shows it;
    asyncio's own getter must not trip over turboloop's compact form."""
    fut = loop.create_future()

    async def waiter():
        return await fut

    task = loop.create_task(waiter())
    loop.run_until_complete(asyncio.sleep(0))
    cbs = fut._callbacks
    assert len(cbs) == 1
    assert asyncio.Future._callbacks.__get__(fut) is not None
    fut.set_result(5)
    assert loop.run_until_complete(task) == 5
    loop.close()


def test_callbacks_order_with_waiting_task(kind, loop):
    """A task's wake-up and plain callbacks keep their order, whichever comes
    first."""
    order = []
    fut = loop.create_future()
    fut.add_done_callback(lambda f: order.append("first"))

    async def waiter():
        await fut
        order.append("task")

    task = loop.create_task(waiter())
    loop.run_until_complete(asyncio.sleep(0))
    fut.add_done_callback(lambda f: order.append("last"))
    assert len(fut._callbacks) == 3
    fut.set_result(None)
    loop.run_until_complete(task)
    # The wake-up was added second: it runs second, as on asyncio.
    assert order == ["first", "task", "last"]
    loop.close()


def test_remove_task_wakeup_callback(kind, loop):
    """The wake-up a task adds compares equal to itself, as asyncio's bound
    method does, so remove_done_callback() finds it, and the task is then
    not woken."""
    fut = loop.create_future()

    async def waiter():
        return await fut

    task = loop.create_task(waiter())
    loop.run_until_complete(asyncio.sleep(0))
    (wakeup, _ctx), = fut._callbacks
    assert fut.remove_done_callback(wakeup) == 1
    assert fut._callbacks is None
    fut.set_result(1)
    for _ in range(3):
        loop.run_until_complete(asyncio.sleep(0))
    assert not task.done()
    # Nothing will wake it now: drop it quietly.
    task._log_destroy_pending = False
    task.get_coro().close()
    loop.close()


# -- libraries that branch on isinstance --------------------------------------------


def test_isinstance_branch_on_fut_waiter(kind, loop):
    """anyio decides how to deliver a cancellation with
    isinstance(task._fut_waiter, asyncio.Future)."""
    seen = []
    ev = asyncio.Event()

    async def waiter():
        await ev.wait()

    async def main():
        t = asyncio.ensure_future(waiter())
        await asyncio.sleep(0)
        seen.append(isinstance(t._fut_waiter, asyncio.Future))
        ev.set()
        await t

    loop.run_until_complete(main())
    assert seen == [True]
    loop.close()


def test_all_tasks_and_current_task(kind, loop):
    async def child():
        await asyncio.sleep(0)

    async def main():
        me = asyncio.current_task()
        assert isinstance(me, asyncio.Task)
        t = asyncio.create_task(child(), name="child")
        names = {x.get_name() for x in asyncio.all_tasks()}
        assert "child" in names and me.get_name() in names
        await t
        assert t not in asyncio.all_tasks()
        return True

    assert loop.run_until_complete(main())
    loop.close()


# -- 3.14+: call graphs and the task list ---------------------------------------


@needs_graph
def test_capture_call_graph(kind, loop):
    async def leaf(ev):
        await ev.wait()

    async def mid(ev):
        async with asyncio.TaskGroup() as tg:
            tg.create_task(leaf(ev), name="leaf")

    async def main():
        ev = asyncio.Event()
        t = asyncio.create_task(mid(ev), name="mid")
        for _ in range(3):
            await asyncio.sleep(0)
        leaf_task = next(x for x in asyncio.all_tasks() if x.get_name() == "leaf")
        graph = asyncio.capture_call_graph(leaf_task)
        awaited = [a.future.get_name() for a in graph.awaited_by]
        text = asyncio.format_call_graph(t)
        ev.set()
        await t
        return awaited, text

    awaited, text = loop.run_until_complete(main())
    assert awaited == ["mid"]
    assert "Task(name='mid'" in text and "<locals>.mid()" in text
    loop.close()


@needs_graph
def test_awaited_by_links(kind, loop):
    async def main():
        fut = loop.create_future()
        a = asyncio.create_task(asyncio.wait_for(fut, None), name="a")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        links = fut._asyncio_awaited_by
        fut.set_result(1)
        await a
        return links, fut._asyncio_awaited_by

    links, after = loop.run_until_complete(main())
    assert links is not None and len(links) == 1
    assert after is None
    loop.close()


@needs_graph
def test_asyncio_ps_sees_tasks(kind):
    """``python -m asyncio ps PID`` reads tasks out of another process's
    memory through asyncio's task list and struct offsets."""
    child = script(f"""
        import asyncio, sys
        {kind.import_line}
        async def sleeper():
            await asyncio.sleep(60)
        async def main():
            async with asyncio.TaskGroup() as tg:
                tg.create_task(sleeper(), name="sleeper-one")
                tg.create_task(sleeper(), name="sleeper-two")
                await asyncio.sleep(0)
                print("ready", flush=True)
        {kind.run_func}(main())
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], env=subprocess_env(),
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        ps = subprocess.run([sys.executable, "-m", "asyncio", "ps", str(proc.pid)],
                            capture_output=True, text=True, timeout=CHILD_TIMEOUT)
        if ps.returncode != 0 and ("ermission" in ps.stderr or "ptrace" in ps.stderr.lower()):
            pytest.skip(f"cannot read another process here: {ps.stderr.strip()[-200:]}")
        assert ps.returncode == 0, ps.stderr
        assert "sleeper-one" in ps.stdout and "sleeper-two" in ps.stdout
        assert "Task-1" in ps.stdout
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


# -- the plain fallback -------------------------------------------------------------


def test_plain_types_when_asked(tl):
    """TURBOLOOP_ASYNCIO_BASE=0 (and a layout the build does not expect)
    gives plain types with the same behaviour."""
    code = script("""
        import asyncio, sys, turboloop
        assert turboloop._core.ASYNCIO_BASE is False
        assert not issubclass(turboloop.Future, asyncio.Future)
        async def child():
            await asyncio.sleep(0)
            return 7
        async def main():
            fut = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_soon(fut.set_result, 1)
            assert await fut == 1
            t = asyncio.create_task(child())
            assert t in asyncio.all_tasks()
            f = turboloop.Future()
            f.x = 1
            return await t
        print(turboloop.run(main()))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=subprocess_env(TURBOLOOP_ASYNCIO_BASE="0"), timeout=CHILD_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "7"
    assert proc.stderr == ""
