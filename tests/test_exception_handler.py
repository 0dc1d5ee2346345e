"""set_exception_handler / get_exception_handler / default_exception_handler /
call_exception_handler, and how failing callbacks reach them."""

import asyncio
import contextvars
import gc
import logging

import pytest
from asyncio import format_helpers

from support import PY

var = contextvars.ContextVar("var", default="default")


def raiser(exc):
    raise exc


def run_briefly(loop):
    loop.call_soon(loop.stop)
    loop.run_forever()


def test_get_set_exception_handler(kind):
    # A loop without the suite's recording handler, to see the initial state.
    loop = kind.new_loop(record_errors=False)
    assert loop.get_exception_handler() is None

    def handler(loop, context):
        pass

    loop.set_exception_handler(handler)
    assert loop.get_exception_handler() is handler
    loop.set_exception_handler(None)
    assert loop.get_exception_handler() is None
    loop.close()


def test_set_exception_handler_rejects_non_callable(loop):
    with pytest.raises(TypeError, match="A callable object or None is expected, got 'nope'"):
        loop.set_exception_handler("nope")
    loop.close()


def test_exception_in_callback(kind, loop, errors):
    exc = ValueError("boom")
    handle = loop.call_soon(raiser, exc)
    after = []
    loop.call_soon(after.append, "loop kept going")
    run_briefly(loop)
    assert after == ["loop kept going"]
    context, = errors
    assert context["exception"] is exc
    assert context["handle"] is handle
    expected_source = format_helpers._format_callback_source(raiser, (exc,))
    assert context["message"] == f"Exception in callback {expected_source}"
    errors.clear()
    loop.close()


def test_exception_in_timer_callback(kind, loop, errors):
    exc = ValueError("timer")
    handle = loop.call_later(0, raiser, exc)
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    context, = errors
    assert context["exception"] is exc
    assert context["handle"] is handle
    assert isinstance(context["handle"], kind.TimerHandle)
    errors.clear()
    loop.close()


def test_exception_in_threadsafe_callback(loop, errors):
    exc = ValueError("threadsafe")
    loop.call_soon_threadsafe(raiser, exc)
    run_briefly(loop)
    context, = errors
    assert context["exception"] is exc
    errors.clear()
    loop.close()


def test_handler_receives_the_loop(kind):
    loop = kind.new_loop(record_errors=False)
    seen = []
    loop.set_exception_handler(lambda lp, ctx: seen.append((lp, ctx)))
    context = {"message": "custom", "extra": 1}
    loop.call_exception_handler(context)
    (got_loop, got_context), = seen
    assert got_loop is loop
    assert got_context == context
    loop.close()


def test_default_handler_logs(kind, asyncio_log):
    loop = kind.new_loop(record_errors=False)
    try:
        raise ValueError("logged")
    except ValueError as e:
        exc = e
    loop.call_exception_handler({"message": "something failed", "exception": exc, "detail": 42})
    record, = asyncio_log.take()
    assert record.levelno == logging.ERROR
    lines = record.getMessage().splitlines()
    assert lines[0] == "something failed"
    assert "detail: 42" in lines[1:]
    assert record.exc_info[1] is exc
    loop.close()


def test_default_handler_without_message(kind, asyncio_log):
    loop = kind.new_loop(record_errors=False)
    loop.default_exception_handler({})
    record, = asyncio_log.take()
    assert record.getMessage() == "Unhandled exception in event loop"
    assert not record.exc_info
    loop.close()


def test_default_handler_callable_from_custom_handler(kind, asyncio_log):
    loop = kind.new_loop(record_errors=False)
    seen = []

    def handler(lp, context):
        seen.append(context["message"])
        lp.default_exception_handler(context)

    loop.set_exception_handler(handler)
    loop.call_soon(raiser, KeyError("k"))
    run_briefly(loop)
    assert len(seen) == 1
    record, = asyncio_log.take()
    assert record.getMessage().startswith("Exception in callback raiser(")
    assert "handle: <Handle raiser(" in record.getMessage()
    assert isinstance(record.exc_info[1], KeyError)
    loop.close()


def test_unset_handler_logs_callback_exception(kind, asyncio_log):
    loop = kind.new_loop(record_errors=False)
    loop.call_soon(raiser, RuntimeError("to the log"))
    run_briefly(loop)
    record, = asyncio_log.take()
    assert record.levelno == logging.ERROR
    assert record.getMessage().startswith("Exception in callback raiser(")
    assert str(record.exc_info[1]) == "to the log"
    loop.close()


def test_failing_custom_handler_is_logged(kind, asyncio_log):
    loop = kind.new_loop(record_errors=False)

    def bad_handler(lp, context):
        raise ZeroDivisionError("handler failed")

    loop.set_exception_handler(bad_handler)
    loop.call_soon(raiser, ValueError("original"))
    after = []
    loop.call_soon(after.append, 1)
    run_briefly(loop)
    assert after == [1]
    record, = asyncio_log.take()
    message = record.getMessage()
    assert message.startswith("Unhandled error in exception handler")
    assert "context: {" in message
    assert isinstance(record.exc_info[1], ZeroDivisionError)
    loop.close()


def test_subclass_default_exception_handler_is_used(kind):
    seen = []

    class MyLoop(kind.Loop):
        def default_exception_handler(self, context):
            seen.append(context)

    loop = MyLoop()
    try:
        loop.call_soon(raiser, ValueError("to subclass"))
        run_briefly(loop)
    finally:
        loop.close()
    context, = seen
    assert str(context["exception"]) == "to subclass"


def test_failing_subclass_default_handler_is_logged(kind, asyncio_log):
    class MyLoop(kind.Loop):
        def default_exception_handler(self, context):
            raise ZeroDivisionError

    loop = MyLoop()
    try:
        loop.call_soon(raiser, ValueError)
        after = []
        loop.call_soon(after.append, 1)
        run_briefly(loop)
        assert after == [1]
    finally:
        loop.close()
    record, = asyncio_log.take()
    assert record.getMessage() == "Exception in default exception handler"
    assert isinstance(record.exc_info[1], ZeroDivisionError)


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exceptions_from_handler_propagate(kind, exc_type):
    loop = kind.new_loop(record_errors=False)

    def handler(lp, context):
        raise exc_type

    loop.set_exception_handler(handler)
    loop.call_soon(raiser, ValueError)
    with pytest.raises(exc_type):
        run_briefly(loop)
    loop.close()


def test_base_exceptions_from_callback_bypass_handler(loop, errors):
    loop.call_soon(raiser, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        run_briefly(loop)
    assert errors == []
    loop.close()


def test_handler_may_close_over_state_and_reschedule(kind, loop, errors):
    # A handler that schedules more work runs that work on the same loop.
    loop.set_exception_handler(lambda lp, ctx: lp.call_soon(errors.append, ctx["exception"]))
    exc = ValueError()
    loop.call_soon(raiser, exc)
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert errors == [exc]
    errors.clear()
    loop.close()


@pytest.mark.skipif(PY < (3, 12), reason="3.12+ runs the handler in the failing handle's context")
def test_handler_runs_in_the_context_of_the_failing_callback(kind):
    loop = kind.new_loop(record_errors=False)
    seen = []
    loop.set_exception_handler(lambda lp, ctx: seen.append(var.get()))
    ctx = contextvars.copy_context()
    ctx.run(var.set, "callback context")
    loop.call_soon(raiser, ValueError, context=ctx)
    run_briefly(loop)
    assert seen == ["callback context"]
    loop.close()


@pytest.mark.skipif(PY < (3, 12), reason="3.12+ runs the handler in the failing task's context")
def test_handler_runs_in_the_task_context_for_unretrieved_exception(kind):
    loop = kind.new_loop(record_errors=False)
    seen = []
    loop.set_exception_handler(lambda lp, ctx: seen.append((ctx["message"], var.get())))
    ctx = contextvars.copy_context()
    ctx.run(var.set, "task context")

    async def fail():
        raise ValueError

    task = kind.Task(fail(), loop=loop, context=ctx)
    run_briefly(loop)
    del task
    gc.collect()
    assert seen == [("Task exception was never retrieved", "task context")]
    loop.close()


def test_exception_in_done_callback(kind, loop, errors):
    fut = kind.Future(loop=loop)
    exc = ValueError("in done callback")
    fut.add_done_callback(lambda f: raiser(exc))
    fut.set_result(None)
    run_briefly(loop)
    context, = errors
    assert context["exception"] is exc
    assert context["message"].startswith("Exception in callback ")
    errors.clear()
    loop.close()


def test_exception_in_task_is_not_a_handler_call(loop, errors):
    async def fail():
        raise ValueError

    task = loop.create_task(fail())
    run_briefly(loop)
    assert task.done()
    assert isinstance(task.exception(), ValueError)
    assert errors == []
    loop.close()
