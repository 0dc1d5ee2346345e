"""create_future, create_task and the task factory; eager task start."""

import asyncio
import contextvars
import re

import pytest

from support import PY

var = contextvars.ContextVar("var", default="default")

needs_eager = pytest.mark.skipif(PY < (3, 12), reason="eager tasks are new in 3.12")


async def answer(value=42):
    return value


def test_create_future(kind, loop):
    fut = loop.create_future()
    assert type(fut) is kind.Future
    assert fut.get_loop() is loop
    assert not fut.done()
    fut.cancel()
    loop.close()


def test_create_task(kind, loop):
    task = loop.create_task(answer())
    assert type(task) is kind.Task
    assert task.get_loop() is loop
    assert loop.run_until_complete(task) == 42
    loop.close()


def test_create_task_default_name(loop):
    task = loop.create_task(answer())
    assert re.fullmatch(r"Task-\d+", task.get_name())
    other = loop.create_task(answer())
    assert int(other.get_name()[5:]) > int(task.get_name()[5:])
    loop.run_until_complete(asyncio.gather(task, other))
    loop.close()


def test_create_task_name(loop):
    task = loop.create_task(answer(), name="the answer")
    assert task.get_name() == "the answer"
    loop.run_until_complete(task)
    loop.close()


def test_create_task_context(loop):
    ctx = contextvars.copy_context()
    ctx.run(var.set, "task context")

    async def read_and_write():
        value = var.get()
        var.set("written by task")
        return value

    task = loop.create_task(read_and_write(), context=ctx)
    assert loop.run_until_complete(task) == "task context"
    assert ctx[var] == "written by task"
    assert var.get() == "default"
    if PY >= (3, 12):
        assert task.get_context() is ctx
    loop.close()


def test_create_task_default_context_is_a_copy(loop):
    token = var.set("creator")
    try:
        task = loop.create_task(_read_var())
    finally:
        var.reset(token)
    assert loop.run_until_complete(task) == "creator"
    loop.close()


async def _read_var():
    return var.get()


def test_create_task_rejects_non_coroutine(loop):
    with pytest.raises(TypeError):
        loop.create_task(42)
    loop.close()


def test_asyncio_create_task_uses_the_running_loop(kind, loop):
    async def main():
        task = asyncio.create_task(answer(), name="via asyncio")
        assert type(task) is kind.Task
        assert task.get_loop() is loop
        assert task.get_name() == "via asyncio"
        return await task

    assert loop.run_until_complete(main()) == 42
    loop.close()


def test_ensure_future_wraps_coroutine_in_a_task(kind, loop):
    task = asyncio.ensure_future(answer(), loop=loop)
    assert type(task) is kind.Task
    assert asyncio.ensure_future(task, loop=loop) is task
    loop.run_until_complete(task)
    loop.close()


def test_run_until_complete_wraps_coroutine_in_the_loops_task(kind, loop):
    async def main():
        return type(asyncio.current_task())

    assert loop.run_until_complete(main()) is kind.Task
    loop.close()


# -- task factory --------------------------------------------------------------


def test_task_factory_default_is_none(loop):
    assert loop.get_task_factory() is None
    loop.close()


def test_set_task_factory(kind, loop):
    calls = []

    def factory(lp, coro, **kwargs):
        calls.append((lp, kwargs))
        return kind.Task(coro, loop=lp, **kwargs)

    loop.set_task_factory(factory)
    assert loop.get_task_factory() is factory
    task = loop.create_task(answer())
    assert loop.run_until_complete(task) == 42
    assert calls[0] == (loop, {})
    loop.set_task_factory(None)
    assert loop.get_task_factory() is None
    assert type(loop.create_task(answer())) is kind.Task
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()


def test_task_factory_receives_context(kind, loop):
    calls = []
    ctx = contextvars.copy_context()

    def factory(lp, coro, **kwargs):
        calls.append(kwargs)
        return kind.Task(coro, loop=lp, **kwargs)

    loop.set_task_factory(factory)
    loop.run_until_complete(loop.create_task(answer(), context=ctx))
    assert calls == [{"context": ctx}]
    loop.close()


def test_task_factory_then_name_is_set(kind, loop):
    def factory(lp, coro, **kwargs):
        return kind.Task(coro, loop=lp, **kwargs)

    loop.set_task_factory(factory)
    task = loop.create_task(answer(), name="named after factory")
    assert task.get_name() == "named after factory"
    loop.run_until_complete(task)
    loop.close()


def test_task_factory_used_by_asyncio_helpers(kind, loop):
    made = []

    def factory(lp, coro, **kwargs):
        task = kind.Task(coro, loop=lp, **kwargs)
        made.append(task)
        return task

    loop.set_task_factory(factory)

    async def main():
        return await asyncio.gather(answer(1), answer(2))

    assert loop.run_until_complete(main()) == [1, 2]
    # run_until_complete's own task plus gather's two.
    assert len(made) == 3
    loop.close()


def test_set_task_factory_rejects_non_callable(loop):
    with pytest.raises(TypeError, match="task factory must be a callable or None"):
        loop.set_task_factory(42)
    loop.close()


def test_task_subclass_from_factory(kind, loop):
    class MyTask(kind.Task):
        def __init__(self, coro, **kwargs):
            super().__init__(coro, **kwargs)
            self.tag = "mine"

        def cancel(self, msg=None):
            return super().cancel(msg="via subclass")

    loop.set_task_factory(lambda lp, coro, **kw: MyTask(coro, loop=lp, **kw))

    async def main():
        current = asyncio.current_task()
        assert isinstance(current, MyTask)
        assert current.tag == "mine"
        child = asyncio.create_task(asyncio.sleep(3600))
        await asyncio.sleep(0)
        child.cancel()
        try:
            await child
        except asyncio.CancelledError as exc:
            return exc.args

    assert loop.run_until_complete(main()) == ("via subclass",)
    loop.close()


def test_future_subclass(kind, loop):
    class MyFuture(kind.Future):
        pass

    fut = MyFuture(loop=loop)
    loop.call_soon(fut.set_result, "sub")
    assert loop.run_until_complete(fut) == "sub"
    assert asyncio.isfuture(fut)
    loop.close()


# -- eager tasks ---------------------------------------------------------------


@needs_eager
def test_eager_task_completes_synchronously(kind, loop):
    steps = []

    async def quick():
        steps.append("ran")
        return "eager"

    async def main():
        task = kind.Task(quick(), loop=loop, eager_start=True)
        assert steps == ["ran"]
        assert task.done()
        assert task.result() == "eager"
        return await task

    assert loop.run_until_complete(main()) == "eager"
    loop.close()


@needs_eager
def test_eager_task_that_suspends(kind, loop):
    steps = []

    async def two_steps():
        steps.append("first")
        await asyncio.sleep(0)
        steps.append("second")
        return "done"

    async def main():
        task = kind.Task(two_steps(), loop=loop, eager_start=True)
        assert steps == ["first"]
        assert not task.done()
        assert task in asyncio.all_tasks()
        return await task

    assert loop.run_until_complete(main()) == "done"
    assert steps == ["first", "second"]
    loop.close()


@needs_eager
def test_eager_task_sees_itself_as_current(kind, loop):
    async def who():
        return asyncio.current_task()

    async def main():
        outer = asyncio.current_task()
        task = kind.Task(who(), loop=loop, eager_start=True)
        assert task.done()
        assert task.result() is task
        assert asyncio.current_task() is outer

    loop.run_until_complete(main())
    loop.close()


@needs_eager
def test_eager_start_without_running_loop_is_lazy(kind, loop):
    steps = []

    async def record():
        steps.append("ran")

    task = kind.Task(record(), loop=loop, eager_start=True)
    assert steps == []
    loop.run_until_complete(task)
    assert steps == ["ran"]
    loop.close()


@needs_eager
def test_eager_task_raising(kind, loop):
    async def fail():
        raise ValueError("eager failure")

    async def main():
        task = kind.Task(fail(), loop=loop, eager_start=True)
        assert task.done()
        with pytest.raises(ValueError, match="eager failure"):
            await task

    loop.run_until_complete(main())
    loop.close()


@needs_eager
def test_eager_task_factory(kind, loop):
    loop.set_task_factory(asyncio.create_eager_task_factory(kind.Task))
    order = []

    async def child(i):
        order.append(f"child {i} start")
        await asyncio.sleep(0)
        order.append(f"child {i} end")
        return i

    async def main():
        tasks = [asyncio.create_task(child(i)) for i in range(2)]
        assert all(type(t) is kind.Task for t in tasks)
        order.append("created")
        return await asyncio.gather(*tasks)

    assert loop.run_until_complete(main()) == [0, 1]
    assert order == ["child 0 start", "child 1 start", "created", "child 0 end", "child 1 end"]
    loop.close()


@needs_eager
def test_eager_task_factory_with_name_and_context(kind, loop):
    loop.set_task_factory(asyncio.create_eager_task_factory(kind.Task))
    ctx = contextvars.copy_context()
    ctx.run(var.set, "eager ctx")

    async def main():
        task = loop.create_task(_read_var(), name="eager named", context=ctx)
        assert task.done()
        assert task.get_name() == "eager named"
        return task.result()

    assert loop.run_until_complete(main()) == "eager ctx"
    loop.close()


@pytest.mark.skipif(PY < (3, 14), reason="loop.create_task(eager_start=) is new in 3.14")
def test_create_task_eager_start_argument(kind, loop):
    async def main():
        task = loop.create_task(answer(), eager_start=True)
        assert task.done()
        lazy = loop.create_task(answer(), eager_start=False)
        assert not lazy.done()
        return task.result() + await lazy

    assert loop.run_until_complete(main()) == 84
    loop.close()


@pytest.mark.skipif(PY >= (3, 14), reason="loop.create_task(eager_start=) exists from 3.14")
def test_create_task_eager_start_argument_refused(kind, loop):
    coro = answer()
    with pytest.raises(TypeError):
        loop.create_task(coro, eager_start=True)
    coro.close()
    loop.close()
