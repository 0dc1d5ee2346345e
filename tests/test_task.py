"""Task semantics, written once and run against asyncio.Task and
turboloop.Task on their own loops."""

import asyncio
import contextvars
import gc
import io
import re
import traceback
import types

import pytest

from support import PY

var = contextvars.ContextVar("var", default="default")


def run_briefly(loop):
    loop.call_soon(loop.stop)
    loop.run_forever()


async def forever():
    await asyncio.sleep(3600)


async def answer(value=42):
    return value


@types.coroutine
def bare_yield(value=None):
    """Yield one value straight to the task, as a low-level awaitable would."""
    return (yield value)


# -- basics ------------------------------------------------------------------------


def test_task_runs_coroutine(kind, loop):
    task = kind.Task(answer(7), loop=loop)
    assert not task.done()
    assert loop.run_until_complete(task) == 7
    assert task.done()
    assert task.result() == 7
    loop.close()


def test_task_is_a_future(kind, loop):
    task = kind.Task(answer(), loop=loop)
    assert asyncio.isfuture(task)
    assert task.get_loop() is loop
    loop.run_until_complete(task)
    loop.close()


def test_task_rejects_non_coroutines(kind, loop):
    with pytest.raises(TypeError):
        kind.Task(42, loop=loop)
    with pytest.raises(TypeError):
        kind.Task(answer, loop=loop)
    loop.close()


def test_task_exception(kind, loop):
    async def fail():
        await asyncio.sleep(0)
        raise ValueError("task failed")

    task = kind.Task(fail(), loop=loop)
    with pytest.raises(ValueError, match="task failed"):
        loop.run_until_complete(task)
    assert isinstance(task.exception(), ValueError)
    loop.close()


def test_task_does_not_support_set_result(kind, loop):
    task = kind.Task(answer(), loop=loop)
    with pytest.raises(RuntimeError, match="Task does not support set_result operation"):
        task.set_result(1)
    with pytest.raises(RuntimeError, match="Task does not support set_exception operation"):
        task.set_exception(ValueError())
    loop.run_until_complete(task)
    loop.close()


def test_get_coro(kind, loop):
    coro = answer()
    task = kind.Task(coro, loop=loop)
    assert task.get_coro() is coro
    loop.run_until_complete(task)
    assert task.get_coro() is coro
    loop.close()


def test_names(kind, loop):
    task = kind.Task(answer(), loop=loop)
    assert re.fullmatch(r"Task-\d+", task.get_name())
    task.set_name("renamed")
    assert task.get_name() == "renamed"
    task.set_name(123)
    assert task.get_name() == "123"
    named = kind.Task(answer(), loop=loop, name="given")
    assert named.get_name() == "given"
    loop.run_until_complete(asyncio.gather(task, named))
    loop.close()


def test_class_getitem(kind):
    assert kind.Task[int].__origin__ is kind.Task


def test_await_task_from_task(kind, loop):
    async def outer():
        inner = kind.Task(answer(5), loop=loop)
        return await inner * 2

    assert loop.run_until_complete(kind.Task(outer(), loop=loop)) == 10
    loop.close()


def test_done_callbacks_on_task(kind, loop):
    calls = []
    task = kind.Task(answer(), loop=loop)
    task.add_done_callback(calls.append)
    loop.run_until_complete(task)
    run_briefly(loop)
    assert calls == [task]
    loop.close()


def test_task_subclass(kind, loop):
    class Sub(kind.Task):
        pass

    task = Sub(answer(3), loop=loop)
    assert loop.run_until_complete(task) == 3
    loop.close()


def test_awaiting_a_future_subclass_uses_its_add_done_callback(kind, loop):
    # Only exact Future types may be short-cut; a subclass's overridden
    # add_done_callback is what the task must call to be woken up.
    added = []

    class Watched(kind.Future):
        def add_done_callback(self, fn, *, context=None):
            added.append(fn)
            super().add_done_callback(fn, context=context)

    fut = Watched(loop=loop)

    async def coro():
        return await fut

    task = kind.Task(coro(), loop=loop)
    run_briefly(loop)
    assert len(added) == 1
    fut.set_result("woken")
    assert loop.run_until_complete(task) == "woken"
    loop.close()


def test_run_until_complete_stopped_early_does_not_report_its_task(kind, loop, errors):
    # The task run_until_complete() wraps a coroutine in is not reported as
    # "destroyed but pending": the caller got an error and has no handle on it.
    loop.call_soon(loop.stop)
    with pytest.raises(RuntimeError, match="Event loop stopped before Future completed."):
        loop.run_until_complete(forever())
    loop.close()
    gc.collect()
    assert errors == []


# -- what a coroutine may yield --------------------------------------------------


def test_bare_yield_reschedules(kind, loop):
    order = []

    async def worker(tag):
        for i in range(3):
            order.append(f"{tag}{i}")
            await bare_yield()

    a = kind.Task(worker("a"), loop=loop)
    b = kind.Task(worker("b"), loop=loop)
    loop.run_until_complete(asyncio.gather(a, b))
    assert order == ["a0", "b0", "a1", "b1", "a2", "b2"]
    loop.close()


def test_sleep_zero_interleaves(kind, loop):
    order = []

    async def worker(tag):
        for i in range(3):
            order.append(f"{tag}{i}")
            await asyncio.sleep(0)

    loop.run_until_complete(asyncio.gather(kind.Task(worker("a"), loop=loop), kind.Task(worker("b"), loop=loop)))
    assert order == ["a0", "b0", "a1", "b1", "a2", "b2"]
    loop.close()


def _bad_yield_message(kind, loop, value):
    async def coro():
        try:
            await bare_yield(value)
        except RuntimeError as exc:
            return str(exc)
        return "no error"

    return loop.run_until_complete(kind.Task(coro(), loop=loop))


def test_yielding_a_non_future(kind, loop):
    assert _bad_yield_message(kind, loop, 42) == "Task got bad yield: 42"
    loop.close()


def test_yielding_a_coroutine(kind, loop):
    coro = answer()
    message = _bad_yield_message(kind, loop, coro)
    coro.close()
    assert message.startswith("Task got bad yield: <coroutine object")
    loop.close()


def test_yielding_a_generator(kind, loop):
    def gen():
        yield

    message = _bad_yield_message(kind, loop, gen())
    assert message.startswith("yield was used instead of yield from for generator in task <Task")
    loop.close()


def test_yielding_a_future_without_await(kind, loop):
    fut = kind.Future(loop=loop)
    message = _bad_yield_message(kind, loop, fut)
    assert message.startswith("yield was used instead of yield from in task <Task")
    assert message.endswith("with <Future pending>")
    loop.close()


def test_awaiting_a_future_of_another_loop(kind, loop):
    other = kind.new_loop()
    foreign = kind.Future(loop=other)

    async def coro():
        try:
            await foreign
        except RuntimeError as exc:
            return str(exc)

    message = loop.run_until_complete(kind.Task(coro(), loop=loop))
    assert re.fullmatch(r"Task <Task .*> got Future <Future pending.*> attached to a different loop", message)
    other.close()
    loop.close()


def test_task_awaiting_itself(kind, loop):
    async def coro():
        try:
            await asyncio.current_task()
        except RuntimeError as exc:
            return str(exc)

    message = loop.run_until_complete(kind.Task(coro(), loop=loop))
    assert message.startswith("Task cannot await on itself: <Task")
    loop.close()


def test_coroutine_raising_stop_iteration(kind, loop):
    async def coro():
        raise StopIteration("leaked")

    task = kind.Task(coro(), loop=loop)
    with pytest.raises(RuntimeError, match="coroutine raised StopIteration"):
        loop.run_until_complete(task)
    loop.close()


def test_task_exception_keeps_traceback_and_cause(kind, loop):
    async def failing_coroutine():
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise ValueError("outer") from inner

    task = kind.Task(failing_coroutine(), loop=loop)
    with pytest.raises(ValueError):
        loop.run_until_complete(task)
    exc = task.exception()
    assert isinstance(exc.__cause__, KeyError)
    assert "in failing_coroutine" in "".join(traceback.format_exception(exc))
    loop.close()


def test_deep_await_chain(kind, loop):
    async def level(n):
        if n == 0:
            await asyncio.sleep(0)
            return 0
        return await level(n - 1) + 1

    assert loop.run_until_complete(kind.Task(level(200), loop=loop)) == 200
    loop.close()


def test_many_tasks_waiting_on_one_future(kind, loop):
    fut = kind.Future(loop=loop)

    async def waiter():
        return await fut

    tasks = [kind.Task(waiter(), loop=loop) for _ in range(1000)]
    run_briefly(loop)
    fut.set_result("all")
    assert loop.run_until_complete(asyncio.gather(*tasks)) == ["all"] * 1000
    loop.close()


def test_task_completing_from_a_done_callback_chain(kind, loop):
    # Each task's completion starts the next; the chain runs through done
    # callbacks rather than awaits.
    results = []

    async def step(i):
        return i

    def chain(i):
        if i == 50:
            loop.stop()
            return
        task = kind.Task(step(i), loop=loop)
        task.add_done_callback(lambda t: (results.append(t.result()), chain(i + 1)))

    loop.call_soon(chain, 0)
    loop.run_forever()
    assert results == list(range(50))
    loop.close()


# -- cancellation --------------------------------------------------------------


def test_cancel_pending_task(kind, loop):
    reached = []

    async def coro():
        reached.append("start")
        try:
            await forever()
        except asyncio.CancelledError:
            reached.append("cancelled")
            raise

    task = kind.Task(coro(), loop=loop)
    run_briefly(loop)
    assert task.cancel() is True
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)
    assert task.cancelled()
    assert reached == ["start", "cancelled"]
    assert task.cancel() is False
    loop.close()


def test_cancel_before_first_step_skips_the_body(kind, loop):
    reached = []

    async def coro():
        reached.append("ran")

    task = kind.Task(coro(), loop=loop)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)
    assert reached == []
    assert task.cancelled()
    loop.close()


def test_cancel_message(kind, loop):
    seen = []

    async def coro():
        try:
            await forever()
        except asyncio.CancelledError as exc:
            seen.append(exc.args)
            raise

    task = kind.Task(coro(), loop=loop)
    run_briefly(loop)
    task.cancel(msg="the message")
    with pytest.raises(asyncio.CancelledError) as info:
        loop.run_until_complete(task)
    assert seen == [("the message",)]
    # The first retrieval gets the CancelledError the coroutine raised.
    assert info.value.args == ("the message",)
    loop.close()


def test_cancel_is_forwarded_to_the_awaited_future(kind, loop):
    fut = kind.Future(loop=loop)

    async def coro():
        await fut

    task = kind.Task(coro(), loop=loop)
    run_briefly(loop)
    task.cancel(msg="forwarded")
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)
    assert fut.cancelled()
    with pytest.raises(asyncio.CancelledError) as info:
        fut.result()
    assert info.value.args == ("forwarded",)
    loop.close()


def test_task_may_swallow_cancellation(kind, loop):
    async def coro():
        try:
            await forever()
        except asyncio.CancelledError:
            return "swallowed"

    task = kind.Task(coro(), loop=loop)
    run_briefly(loop)
    task.cancel()
    assert loop.run_until_complete(task) == "swallowed"
    assert not task.cancelled()
    assert task.cancelling() == 1
    loop.close()


def test_cancelling_and_uncancel(kind, loop):
    task = kind.Task(forever(), loop=loop)
    assert task.cancelling() == 0
    assert task.cancel() is True
    assert task.cancelling() == 1
    assert task.cancel() is True
    assert task.cancelling() == 2
    assert task.uncancel() == 1
    assert task.cancelling() == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)
    assert task.cancelled()
    loop.close()


def test_uncancel_does_not_go_below_zero(kind, loop):
    task = kind.Task(answer(), loop=loop)
    assert task.uncancel() == 0
    assert task.cancelling() == 0
    loop.run_until_complete(task)
    loop.close()


@pytest.mark.skipif(PY < (3, 13), reason="from 3.13 uncancel() to zero withdraws a pending cancel")
def test_uncancel_to_zero_withdraws_pending_cancel(kind, loop):
    async def coro():
        await asyncio.sleep(0)
        return "not cancelled"

    task = kind.Task(coro(), loop=loop)
    task.cancel()
    assert task.uncancel() == 0
    assert loop.run_until_complete(task) == "not cancelled"
    loop.close()


def test_cancel_self_takes_effect_at_next_await(kind, loop):
    steps = []

    async def coro():
        asyncio.current_task().cancel()
        steps.append("still running")
        await asyncio.sleep(0)
        steps.append("not reached")

    task = kind.Task(coro(), loop=loop)
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)
    assert steps == ["still running"]
    loop.close()


def test_cancel_while_awaiting_completed_future(kind, loop):
    # The awaited future completes, then the task is cancelled before it
    # resumes: the cancellation wins.
    fut = kind.Future(loop=loop)

    async def coro():
        await fut
        await asyncio.sleep(0)
        return "finished"

    task = kind.Task(coro(), loop=loop)
    run_briefly(loop)
    fut.set_result(None)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)
    loop.close()


def test_cancelled_error_chain(kind, loop):
    # Awaiting a task cancelled with a message raises a CancelledError that
    # carries the message.
    inner = kind.Task(forever(), loop=loop)

    async def outer():
        try:
            await inner
        except asyncio.CancelledError as exc:
            return exc.args

    outer_task = kind.Task(outer(), loop=loop)
    run_briefly(loop)
    inner.cancel("inner msg")
    assert loop.run_until_complete(outer_task) == ("inner msg",)
    loop.close()


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exception_finishes_task_and_propagates(kind, loop, exc_type):
    async def coro():
        await asyncio.sleep(0)
        raise exc_type()

    task = kind.Task(coro(), loop=loop)
    with pytest.raises(exc_type):
        loop.run_until_complete(task)
    assert task.done()
    assert isinstance(task.exception(), exc_type)
    loop.close()


# -- current task, all tasks ---------------------------------------------------------


def test_current_task(kind, loop):
    async def coro():
        return asyncio.current_task(), asyncio.current_task(loop)

    task = kind.Task(coro(), loop=loop)
    assert loop.run_until_complete(task) == (task, task)
    assert asyncio.current_task(loop) is None
    loop.close()


def test_current_task_in_plain_callback_is_none(kind, loop):
    seen = []
    loop.call_soon(lambda: seen.append(asyncio.current_task()))
    run_briefly(loop)
    assert seen == [None]
    loop.close()


def test_current_task_switches_between_tasks(kind, loop):
    seen = []

    async def worker(tag):
        for _ in range(2):
            seen.append((tag, asyncio.current_task().get_name()))
            await asyncio.sleep(0)

    loop.run_until_complete(asyncio.gather(
        kind.Task(worker("a"), loop=loop, name="a"),
        kind.Task(worker("b"), loop=loop, name="b"),
    ))
    assert seen == [("a", "a"), ("b", "b"), ("a", "a"), ("b", "b")]
    loop.close()


def test_all_tasks(kind, loop):
    async def main():
        pending = kind.Task(forever(), loop=loop)
        done = kind.Task(answer(), loop=loop)
        await done
        tasks = asyncio.all_tasks()
        assert pending in tasks
        assert done not in tasks
        assert asyncio.current_task() in tasks
        assert asyncio.all_tasks(loop) == tasks
        pending.cancel()
        return pending

    pending = loop.run_until_complete(main())
    run_briefly(loop)
    assert pending.cancelled()
    assert asyncio.all_tasks(loop) == set()
    loop.close()


@pytest.mark.skipif(PY >= (3, 14), reason="3.14 keeps the current task in the thread state, and its "
                    "_enter_task/_leave_task only act on the running loop")
def test_step_leaving_with_another_task_current(kind, loop, errors):
    # The bookkeeping around a step checks what asyncio's _enter_task and
    # _leave_task check: a step that ends with another task current, and
    # the next step that finds one, are errors for the exception handler.
    import asyncio.tasks as tasks_module

    other = object()

    async def meddle():
        me = asyncio.current_task()
        tasks_module._leave_task(loop, me)
        tasks_module._enter_task(loop, other)
        await asyncio.sleep(0)

    task = loop.create_task(meddle())
    run_briefly(loop)
    run_briefly(loop)
    excs = [c["exception"] for c in errors]
    assert len(excs) == 2
    assert all(type(e) is RuntimeError for e in excs)
    # The wording is the running version's (3.14 rephrased the first).
    assert "leave task" in str(excs[0]).lower() or "leaving task" in str(excs[0]).lower()
    assert "enter into task" in str(excs[1])
    for e in excs:
        assert repr(task) in str(e) and repr(other) in str(e)
    errors.clear()
    assert asyncio.current_task(loop) is other
    tasks_module._leave_task(loop, other)
    # The failed step left the task pending for good, on either loop.
    assert not task.done()
    task._log_destroy_pending = False
    loop.close()


def _task_registry():
    """The WeakSet asyncio's _register_task adds to, where it is reachable."""
    import asyncio.tasks as tasks_module

    for name in ("_scheduled_tasks", "_all_tasks"):
        registry = getattr(tasks_module, name, None)
        if registry is not None and hasattr(registry, "_pending_removals"):
            return registry
    pytest.skip("asyncio keeps its task registry out of reach on this version")


def test_registry_shows_a_new_task_at_once(kind, loop):
    # Every way of reading the set asyncio's all_tasks() reads finds a task
    # made just before, and a task made while it is iterated changes it as
    # a WeakSet.add() would.
    registry = _task_registry()

    async def main():
        t = kind.Task(forever(), loop=loop)
        assert t in registry
        assert t in set(registry)
        assert any(ref() is t for ref in registry.data)
        n = len(registry)
        u = kind.Task(forever(), loop=loop)
        assert len(registry) == n + 1
        assert {t, u} <= set(registry)
        with pytest.raises(RuntimeError):
            for _ in registry:
                kind.Task(answer(), loop=loop)
                len(registry)
        t.cancel()
        u.cancel()
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    loop.run_until_complete(main())
    run_briefly(loop)
    assert asyncio.all_tasks(loop) == set()
    loop.close()


def test_default_task_names_count_up(kind, loop):
    async def main():
        a = kind.Task(answer(), loop=loop)
        b = kind.Task(answer(), loop=loop, name=None)
        c = kind.Task(answer(), loop=loop, name=12)
        na, nb = a.get_name(), b.get_name()
        assert na.startswith("Task-") and nb == f"Task-{int(na[5:]) + 1}"
        assert c.get_name() == "12"
        assert f"name='{na}'" in repr(a)
        c.set_name("x")
        assert c.get_name() == "x"
        await asyncio.gather(a, b, c)

    loop.run_until_complete(main())
    loop.close()


def test_finished_tasks_leave_the_registry(kind, loop):
    # A task that is gone is gone from the set all_tasks() reads, so the set
    # does not grow with every task ever made.
    registry = _task_registry()
    gc.collect()
    before = len(registry)

    async def main():
        for _ in range(50):
            await kind.Task(answer(), loop=loop)
        return len(registry)

    during = loop.run_until_complete(main())
    gc.collect()
    assert during <= before + 2
    assert len(registry) == before
    assert asyncio.all_tasks(loop) == set()
    loop.close()


def test_task_dying_while_the_registry_is_iterated(kind, loop):
    # A task destroyed while something iterates the registry is taken out
    # after the iteration, as WeakSet does for its own references.
    import _weakrefset

    registry = _task_registry()

    async def main():
        holder = [kind.Task(answer(), loop=loop)]
        await holder[0]
        keep = kind.Task(forever(), loop=loop)
        await asyncio.sleep(0)
        gc.collect()
        size = len(registry.data)
        with _weakrefset._IterationGuard(registry):
            holder.clear()
            gc.collect()
            # Deferred: still in the data, listed as a pending removal.
            assert len(registry.data) == size
            assert len(registry._pending_removals) == 1
            assert len(registry) == size - 1
        assert not registry._pending_removals
        assert len(registry.data) == size - 1
        assert all(ref() is not None for ref in registry.data)
        assert keep in asyncio.all_tasks(loop)
        keep.cancel()

    loop.run_until_complete(main())
    run_briefly(loop)
    assert asyncio.all_tasks(loop) == set()
    loop.close()


# -- contexts --------------------------------------------------------------------


def test_context_argument(kind, loop):
    ctx = contextvars.copy_context()
    ctx.run(var.set, "given")

    async def coro():
        value = var.get()
        var.set("changed")
        await asyncio.sleep(0)
        return value, var.get()

    task = kind.Task(coro(), loop=loop, context=ctx)
    assert loop.run_until_complete(task) == ("given", "changed")
    assert ctx[var] == "changed"
    assert var.get() == "default"
    loop.close()


def test_default_context_is_copied_at_creation(kind, loop):
    token = var.set("creator")
    try:
        task = kind.Task(_read_var(), loop=loop)
        var.set("later")
    finally:
        var.reset(token)
    assert loop.run_until_complete(task) == "creator"
    loop.close()


async def _read_var():
    await asyncio.sleep(0)
    return var.get()


@pytest.mark.skipif(PY < (3, 12), reason="Task.get_context() is new in 3.12")
def test_get_context(kind, loop):
    ctx = contextvars.copy_context()
    task = kind.Task(answer(), loop=loop, context=ctx)
    assert task.get_context() is ctx
    default = kind.Task(answer(), loop=loop)
    assert isinstance(default.get_context(), contextvars.Context)
    loop.run_until_complete(asyncio.gather(task, default))
    loop.close()


def test_task_context_survives_across_steps(kind, loop):
    async def coro():
        var.set("mine")
        for _ in range(3):
            await asyncio.sleep(0)
            assert var.get() == "mine"
        return var.get()

    async def other():
        for _ in range(3):
            await asyncio.sleep(0)
            assert var.get() == "default"

    results = loop.run_until_complete(asyncio.gather(kind.Task(coro(), loop=loop), kind.Task(other(), loop=loop)))
    assert results == ["mine", None]
    loop.close()


# -- stacks ----------------------------------------------------------------------


def test_get_stack_of_suspended_task(kind, loop):
    async def waiting_here():
        await forever()

    task = kind.Task(waiting_here(), loop=loop)
    run_briefly(loop)
    frames = task.get_stack()
    assert [f.f_code.co_name for f in frames] == ["waiting_here"]
    assert task.get_stack(limit=1)[0].f_code.co_name == "waiting_here"
    out = io.StringIO()
    task.print_stack(file=out)
    text = out.getvalue()
    assert text.startswith("Stack for <Task pending")
    assert "in waiting_here" in text
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)
    loop.close()


def test_get_stack_of_finished_task(kind, loop):
    task = kind.Task(answer(), loop=loop)
    loop.run_until_complete(task)
    assert task.get_stack() == []
    loop.close()


def test_print_stack_of_failed_task(kind, loop):
    async def fails_here():
        raise ValueError("printed")

    task = kind.Task(fails_here(), loop=loop)
    with pytest.raises(ValueError):
        loop.run_until_complete(task)
    out = io.StringIO()
    task.print_stack(file=out)
    text = out.getvalue()
    assert "Traceback for <Task finished" in text
    assert "ValueError: printed" in text
    loop.close()


# -- destruction reports -------------------------------------------------------------


def test_destroyed_pending_task_is_reported(kind, loop, errors):
    closed = []

    async def coro():
        try:
            await loop.create_future()
        finally:
            closed.append(True)

    task = kind.Task(coro(), loop=loop)
    run_briefly(loop)
    task_repr_start = repr(task)[:20]
    del task
    loop.close()
    gc.collect()
    context, = errors
    assert context["message"] == "Task was destroyed but it is pending!"
    assert repr(context["task"]).startswith(task_repr_start)
    errors.clear()
    # Dropping the task closed its coroutine, which ran the finally block.
    assert closed == [True]


def test_unretrieved_task_exception_is_reported(kind, loop, errors):
    async def fail():
        raise ValueError("not retrieved")

    task = kind.Task(fail(), loop=loop)
    run_briefly(loop)
    assert task.done()
    del task
    gc.collect()
    context, = errors
    assert context["message"] == "Task exception was never retrieved"
    assert str(context["exception"]) == "not retrieved"
    assert type(context["future"]) is kind.Task
    errors.clear()
    loop.close()


def test_finished_and_cancelled_tasks_are_not_reported(kind, loop, errors):
    done = kind.Task(answer(), loop=loop)
    cancelled = kind.Task(forever(), loop=loop)
    run_briefly(loop)
    cancelled.cancel()
    run_briefly(loop)
    assert done.done() and cancelled.cancelled()
    del done, cancelled
    gc.collect()
    assert errors == []
    loop.close()


# -- reprs -------------------------------------------------------------------------


def test_repr_states(kind, loop):
    async def returns():
        return 1

    task = kind.Task(returns(), loop=loop, name="r")
    assert re.fullmatch(r"<Task pending name='r' coro=<.*returns\(\) running at .*test_task.py:\d+>>", repr(task))
    loop.run_until_complete(task)
    assert re.fullmatch(
        r"<Task finished name='r' coro=<.*returns\(\) done, defined at .*test_task.py:\d+> result=1>", repr(task)
    )

    async def raises():
        raise ValueError("v")

    failed = kind.Task(raises(), loop=loop, name="f")
    with pytest.raises(ValueError):
        loop.run_until_complete(failed)
    assert re.fullmatch(r"<Task finished name='f' coro=<.*raises\(\) done, .*> exception=ValueError\('v'\)>",
                        repr(failed))

    waiting = kind.Task(forever(), loop=loop, name="w")
    run_briefly(loop)
    assert re.fullmatch(r"<Task pending name='w' coro=<forever\(\) running at .*> wait_for=<.*>>", repr(waiting))
    waiting.cancel()
    assert repr(waiting).startswith("<Task cancelling name='w' coro=<forever() running at ")
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(waiting)
    assert re.fullmatch(r"<Task cancelled name='w' coro=<forever\(\) done, defined at .*>>", repr(waiting))
    loop.close()
