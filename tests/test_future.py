"""Future semantics, written once and run against asyncio.Future and
turboloop.Future on their own loops."""

import asyncio
import contextvars
import gc
import re
import traceback

import pytest
from asyncio import format_helpers

from support import PY

var = contextvars.ContextVar("var", default="default")


def run_briefly(loop):
    loop.call_soon(loop.stop)
    loop.run_forever()


@pytest.fixture
def fut(kind, loop):
    future = kind.Future(loop=loop)
    yield future
    # Tests leave the future in whatever state they like; a pending one is
    # simply dropped, which asyncio does not report.
    loop.close()


# -- states ----------------------------------------------------------------------


def test_initial_state(fut, loop):
    assert not fut.done()
    assert not fut.cancelled()
    assert fut.get_loop() is loop
    with pytest.raises(asyncio.InvalidStateError, match="Result is not set."):
        fut.result()
    with pytest.raises(asyncio.InvalidStateError, match="Exception is not set."):
        fut.exception()


def test_set_result(fut):
    fut.set_result(42)
    assert fut.done()
    assert not fut.cancelled()
    assert fut.result() == 42
    assert fut.exception() is None


def test_set_result_none(fut):
    fut.set_result(None)
    assert fut.result() is None


@pytest.mark.parametrize("second", ["set_result", "set_exception"])
def test_set_twice_raises_invalid_state(fut, second):
    fut.set_result(1)
    with pytest.raises(asyncio.InvalidStateError):
        if second == "set_result":
            fut.set_result(2)
        else:
            fut.set_exception(ValueError())
    assert fut.result() == 1


def test_set_after_cancel_raises_invalid_state(fut):
    fut.cancel()
    with pytest.raises(asyncio.InvalidStateError):
        fut.set_result(1)
    with pytest.raises(asyncio.InvalidStateError):
        fut.set_exception(ValueError())


def test_set_exception(fut):
    exc = ValueError("bad")
    fut.set_exception(exc)
    assert fut.done()
    assert fut.exception() is exc
    with pytest.raises(ValueError) as info:
        fut.result()
    assert info.value is exc


def test_set_exception_class_is_instantiated(fut):
    fut.set_exception(KeyError)
    assert isinstance(fut.exception(), KeyError)


def test_set_exception_rejects_non_exceptions(fut):
    with pytest.raises(TypeError):
        fut.set_exception("not an exception")
    with pytest.raises(TypeError):
        fut.set_exception(int)
    assert not fut.done()


def test_set_exception_stop_iteration(fut):
    if PY >= (3, 13):
        # From 3.13 a StopIteration is stored as a RuntimeError caused by it.
        stop = StopIteration("stop")
        fut.set_exception(stop)
        exc = fut.exception()
        assert type(exc) is RuntimeError
        assert "StopIteration interacts badly with generators" in str(exc)
        assert exc.__cause__ is stop
        with pytest.raises(RuntimeError):
            fut.result()
    else:
        with pytest.raises(TypeError, match="StopIteration interacts badly with generators"):
            fut.set_exception(StopIteration())
        assert not fut.done()


@pytest.mark.skipif(PY < (3, 13), reason="a StopIteration subclass was rejected only by exact type before 3.13")
def test_set_exception_stop_iteration_subclass(fut):
    class MyStop(StopIteration):
        pass

    fut.set_exception(MyStop())
    assert type(fut.exception()) is RuntimeError


def test_result_reraises_with_original_traceback(fut):
    def inner():
        raise ValueError("deep")

    try:
        inner()
    except ValueError as exc:
        fut.set_exception(exc)
    with pytest.raises(ValueError) as info:
        fut.result()
    names = [entry.name for entry in info.traceback]
    assert "inner" in names


# -- cancel ------------------------------------------------------------------------


def test_cancel(fut):
    assert fut.cancel() is True
    assert fut.cancelled()
    assert fut.done()
    assert fut.cancel() is False
    with pytest.raises(asyncio.CancelledError):
        fut.result()
    with pytest.raises(asyncio.CancelledError):
        fut.exception()


def test_cancel_with_message(fut):
    assert fut.cancel(msg="the reason") is True
    with pytest.raises(asyncio.CancelledError) as info:
        fut.result()
    assert info.value.args == ("the reason",)
    with pytest.raises(asyncio.CancelledError) as info:
        fut.exception()
    assert info.value.args == ("the reason",)


def test_cancel_without_message_has_no_args(fut):
    fut.cancel()
    with pytest.raises(asyncio.CancelledError) as info:
        fut.result()
    assert info.value.args == ()


def test_cancel_done_future_returns_false(fut):
    fut.set_result(1)
    assert fut.cancel() is False
    assert not fut.cancelled()
    assert fut.result() == 1


def test_cancel_message_reaches_awaiting_coroutine(kind, loop, fut):
    async def waiter():
        try:
            await fut
        except asyncio.CancelledError as exc:
            return exc.args

    task = loop.create_task(waiter())
    loop.call_soon(fut.cancel, "stop waiting")
    assert loop.run_until_complete(task) == ("stop waiting",)


# -- done callbacks ----------------------------------------------------------------


def test_done_callbacks_run_from_the_loop_in_order(loop, fut):
    calls = []
    fut.add_done_callback(lambda f: calls.append(("a", f)))
    fut.add_done_callback(lambda f: calls.append(("b", f)))
    fut.add_done_callback(lambda f: calls.append(("c", f)))
    fut.set_result(1)
    # Not called synchronously by set_result().
    assert calls == []
    run_briefly(loop)
    assert calls == [("a", fut), ("b", fut), ("c", fut)]


def test_done_callback_on_done_future_is_scheduled(loop, fut):
    fut.set_result(1)
    calls = []
    fut.add_done_callback(calls.append)
    assert calls == []
    run_briefly(loop)
    assert calls == [fut]


def test_done_callbacks_run_on_cancel_and_exception(kind, loop):
    calls = []
    f1 = kind.Future(loop=loop)
    f2 = kind.Future(loop=loop)
    f1.add_done_callback(calls.append)
    f2.add_done_callback(calls.append)
    f1.cancel()
    f2.set_exception(ValueError())
    run_briefly(loop)
    assert calls == [f1, f2]
    f2.exception()
    loop.close()


def test_remove_done_callback(loop, fut):
    calls = []

    def cb(f):
        calls.append("cb")

    def other(f):
        calls.append("other")

    fut.add_done_callback(cb)
    fut.add_done_callback(other)
    fut.add_done_callback(cb)
    assert fut.remove_done_callback(cb) == 2
    assert fut.remove_done_callback(cb) == 0
    fut.set_result(None)
    run_briefly(loop)
    assert calls == ["other"]


def test_remove_done_callback_compares_by_equality(loop, fut):
    calls = []
    fut.add_done_callback(calls.append)
    # A fresh bound method object equal to the registered one.
    assert fut.remove_done_callback(calls.append) == 1
    fut.set_result(None)
    run_briefly(loop)
    assert calls == []


def test_remove_done_callback_from_a_callback(kind, loop):
    calls = []
    fut = kind.Future(loop=loop)

    def first(f):
        calls.append("first")

    def second(f):
        calls.append("second")

    fut.add_done_callback(first)
    fut.add_done_callback(second)
    fut.set_result(None)
    # Callbacks were scheduled when the future completed; removing one now
    # does not unschedule it.
    assert fut.remove_done_callback(second) == 0
    run_briefly(loop)
    assert calls == ["first", "second"]
    loop.close()


def test_done_callback_context(loop, fut):
    ctx = contextvars.copy_context()
    ctx.run(var.set, "callback ctx")
    seen = []
    fut.add_done_callback(lambda f: seen.append(var.get()), context=ctx)
    fut.set_result(None)
    run_briefly(loop)
    assert seen == ["callback ctx"]


def test_done_callback_default_context_is_copied_when_added(loop, fut):
    seen = []
    token = var.set("when added")
    try:
        fut.add_done_callback(lambda f: seen.append(var.get()))
        var.set("after adding")
    finally:
        var.reset(token)
    fut.set_result(None)
    run_briefly(loop)
    assert seen == ["when added"]


def test_many_done_callbacks(loop, fut):
    calls = []
    for i in range(100):
        fut.add_done_callback(lambda f, i=i: calls.append(i))
    fut.set_result(None)
    run_briefly(loop)
    assert calls == list(range(100))


# Re-entrancy: callbacks and __eq__ methods that change the callback list
# while the future walks it.  These must neither crash nor lose track.


def test_remove_done_callback_with_eq_that_removes(loop, fut):
    fut.add_done_callback(str)
    for _ in range(63):
        fut.add_done_callback(id)

    class Evil:
        def __eq__(self, other):
            fut.remove_done_callback(id)
            return False

    assert fut.remove_done_callback(Evil()) == 0
    fut.set_result(None)
    run_briefly(loop)


def test_remove_done_callback_with_eq_that_adds(loop, fut):
    fut.add_done_callback(str)
    for _ in range(63):
        fut.add_done_callback(id)
    extra = 0

    class Evil:
        def __eq__(self, other):
            nonlocal extra
            extra += 1
            if extra < 100:
                fut.add_done_callback(id)
            return False

    assert fut.remove_done_callback(Evil()) == 0
    fut.set_result(None)
    run_briefly(loop)


def test_done_callback_removing_later_callbacks(loop, fut):
    calls = []

    def remover(f):
        calls.append("remover")
        f.remove_done_callback(str)

    fut.add_done_callback(remover)
    fut.add_done_callback(str)
    fut.add_done_callback(str)
    fut.set_result(1)
    run_briefly(loop)
    assert calls == ["remover"]


def test_done_callback_adding_callbacks(loop, fut):
    calls = []

    def adder(f):
        calls.append("adder")
        f.add_done_callback(lambda f: calls.append("added later"))

    fut.add_done_callback(adder)
    fut.set_result(1)
    run_briefly(loop)
    run_briefly(loop)
    assert calls == ["adder", "added later"]


def test_result_set_from_done_callback_of_another_future(kind, loop):
    first = kind.Future(loop=loop)
    second = kind.Future(loop=loop)
    first.add_done_callback(lambda f: second.set_result(f.result() + 1))
    loop.call_soon(first.set_result, 1)
    assert loop.run_until_complete(second) == 2
    loop.close()


def test_future_awaited_by_several_tasks(kind, loop, fut):
    async def waiter(i):
        return await fut + i

    tasks = [loop.create_task(waiter(i)) for i in range(5)]
    loop.call_soon(fut.set_result, 10)
    assert loop.run_until_complete(asyncio.gather(*tasks)) == [10, 11, 12, 13, 14]


def test_exception_from_result_keeps_its_traceback_and_cause(kind, loop, fut):
    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise ValueError("outer") from inner
    except ValueError as exc:
        fut.set_exception(exc)
    with pytest.raises(ValueError) as info:
        fut.result()
    assert isinstance(info.value.__cause__, KeyError)
    assert "test_exception_from_result_keeps_its_traceback_and_cause" in "".join(
        traceback.format_exception(info.value)
    )


# -- awaiting --------------------------------------------------------------------


def test_await_protocol(fut):
    assert fut._asyncio_future_blocking is False
    it = fut.__await__()
    yielded = next(it)
    assert yielded is fut
    assert fut._asyncio_future_blocking is True
    fut._asyncio_future_blocking = False
    fut.set_result("value")
    with pytest.raises(StopIteration) as info:
        next(it)
    assert info.value.value == "value"


def test_iter_is_await(fut):
    it = iter(fut)
    assert next(it) is fut
    fut.set_result(3)
    with pytest.raises(StopIteration) as info:
        next(it)
    assert info.value.value == 3


def test_await_on_done_future_does_not_yield(fut):
    fut.set_result(5)
    with pytest.raises(StopIteration) as info:
        next(fut.__await__())
    assert info.value.value == 5


def test_await_raises_exception(fut):
    fut.set_exception(ValueError("awaited"))
    with pytest.raises(ValueError, match="awaited"):
        next(fut.__await__())


def test_resuming_pending_future_raises(fut):
    it = fut.__await__()
    next(it)
    with pytest.raises(RuntimeError, match="await wasn't used with future"):
        next(it)


def test_await_in_coroutine(loop, fut):
    async def waiter():
        return await fut

    task = loop.create_task(waiter())
    loop.call_soon(fut.set_result, "awaited value")
    assert loop.run_until_complete(task) == "awaited value"


def test_asyncio_future_blocking_attribute(fut):
    fut._asyncio_future_blocking = False
    assert fut._asyncio_future_blocking is False


def test_isfuture(kind, fut):
    assert asyncio.isfuture(fut)
    assert not asyncio.isfuture(kind.Future)
    assert asyncio.futures._get_loop(fut) is fut.get_loop()


def test_class_getitem(kind):
    alias = kind.Future[int]
    assert alias.__origin__ is kind.Future


def test_future_requires_loop_outside_running_loop(kind):
    # Without loop= and outside a running loop, asyncio falls back to the
    # policy's current loop; from a coroutine the running loop is used.
    async def make():
        return kind.Future()

    loop = kind.new_loop()
    f = loop.run_until_complete(make())
    assert f.get_loop() is loop
    loop.close()


def test_uninitialized_subclass_instance(kind):
    # A subclass whose __init__ forgets to call the base class gives an
    # object without a loop; it must refuse to work rather than crash.
    class Uninit(kind.Future):
        def __init__(self):
            pass

    fut = Uninit()
    assert fut.done() is False
    assert fut.cancelled() is False
    for method in (fut.result, fut.exception):
        with pytest.raises(asyncio.InvalidStateError, match="Future object is not initialized."):
            method()
    for call in (fut.cancel, lambda: fut.set_result(1), lambda: fut.set_exception(ValueError()), fut.get_loop,
                 lambda: next(iter(fut)), lambda: repr(fut)):
        with pytest.raises(RuntimeError, match="Future object is not initialized."):
            call()
    with pytest.raises(RuntimeError):
        fut.add_done_callback(print)


# -- unretrieved exceptions --------------------------------------------------------


def test_unretrieved_exception_is_reported(kind, loop, errors):
    fut = kind.Future(loop=loop)
    exc = ValueError("never looked at")
    fut.set_exception(exc)
    del fut
    gc.collect()
    context, = errors
    assert context["message"] == "Future exception was never retrieved"
    assert context["exception"] is exc
    assert type(context["future"]) is kind.Future
    errors.clear()
    loop.close()


@pytest.mark.parametrize("retrieve", ["exception", "result", "await"])
def test_retrieved_exception_is_not_reported(kind, loop, errors, retrieve):
    fut = kind.Future(loop=loop)
    fut.set_exception(ValueError())
    if retrieve == "exception":
        fut.exception()
    elif retrieve == "result":
        with pytest.raises(ValueError):
            fut.result()
    else:
        async def waiter():
            with pytest.raises(ValueError):
                await fut

        loop.run_until_complete(waiter())
    del fut
    gc.collect()
    assert errors == []
    loop.close()


@pytest.mark.parametrize("end", ["pending", "result", "cancelled"])
def test_other_outcomes_are_not_reported(kind, loop, errors, end):
    fut = kind.Future(loop=loop)
    if end == "result":
        fut.set_result(1)
    elif end == "cancelled":
        fut.cancel()
    del fut
    gc.collect()
    assert errors == []
    loop.close()


def test_unretrieved_exception_in_reference_cycle(kind, loop, errors):
    def fail_into(fut):
        # The traceback holds this frame, which holds the future, which holds
        # the exception: only the cycle collector can free it.
        try:
            raise ValueError("cycle")
        except ValueError as exc:
            fut.set_exception(exc)

    fut = kind.Future(loop=loop)
    fail_into(fut)
    del fut
    gc.collect()
    context, = errors
    assert context["message"] == "Future exception was never retrieved"
    assert str(context["exception"]) == "cycle"
    errors.clear()
    loop.close()


# -- reprs -------------------------------------------------------------------------


def test_repr_pending(fut):
    assert repr(fut) == "<Future pending>"


def test_repr_finished(fut):
    fut.set_result([1, 2])
    assert repr(fut) == "<Future finished result=[1, 2]>"


def test_repr_exception(fut):
    fut.set_exception(ValueError("x"))
    assert repr(fut) == "<Future finished exception=ValueError('x')>"
    fut.exception()


def test_repr_cancelled(fut):
    fut.cancel()
    assert repr(fut) == "<Future cancelled>"


def first_cb(f):
    pass


def other_cb(f):
    pass


def _source(cb):
    return format_helpers._format_callback_source(cb, ())


def test_repr_with_callbacks(fut):
    fut.add_done_callback(first_cb)
    assert repr(fut) == f"<Future pending cb=[{_source(first_cb)}]>"
    fut.add_done_callback(other_cb)
    assert repr(fut) == f"<Future pending cb=[{_source(first_cb)}, {_source(other_cb)}]>"


def test_repr_with_many_callbacks(fut):
    fut.add_done_callback(first_cb)
    for _ in range(3):
        fut.add_done_callback(other_cb)
    fut.add_done_callback(first_cb)
    assert repr(fut) == f"<Future pending cb=[{_source(first_cb)}, <3 more>, {_source(first_cb)}]>"


def test_repr_long_result_is_truncated(fut):
    fut.set_result("x" * 1000)
    assert len(repr(fut)) < 200
