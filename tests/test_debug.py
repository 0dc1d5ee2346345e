"""Debug mode: get_debug/set_debug, PYTHONASYNCIODEBUG, slow callback
logging, thread checks, source tracebacks."""

import asyncio
import gc
import logging
import re
import subprocess
import sys
import threading
import time

import pytest

from support import CHILD_TIMEOUT, script, subprocess_env

# Slow-callback tests sleep this long inside a callback, against a threshold
# well below it.  Only a lower bound is relied on: sleep never returns early.
SLOW = 0.03
THRESHOLD = 0.01


def noop():
    pass


def slow():
    time.sleep(SLOW)


def run_briefly(loop):
    loop.call_soon(loop.stop)
    loop.run_forever()


@pytest.fixture(autouse=True)
def no_debug_env(monkeypatch):
    monkeypatch.delenv("PYTHONASYNCIODEBUG", raising=False)


def test_debug_off_by_default(loop):
    assert loop.get_debug() is bool(sys.flags.dev_mode)
    loop.close()


def test_set_debug(loop):
    loop.set_debug(True)
    assert loop.get_debug() is True
    assert "debug=True" in repr(loop)
    loop.set_debug(False)
    assert loop.get_debug() is False
    loop.close()


def test_environment_variable_turns_debug_on(kind, monkeypatch):
    monkeypatch.setenv("PYTHONASYNCIODEBUG", "1")
    loop = kind.new_loop()
    try:
        assert loop.get_debug() is True
    finally:
        loop.close()


def test_empty_environment_variable_leaves_debug_off(kind, monkeypatch):
    monkeypatch.setenv("PYTHONASYNCIODEBUG", "")
    loop = kind.new_loop()
    try:
        assert loop.get_debug() is bool(sys.flags.dev_mode)
    finally:
        loop.close()


def test_environment_variable_in_a_child_process(kind):
    code = script(f"""
        {kind.import_line}
        async def main():
            print(asyncio.get_running_loop().get_debug())
        {kind.run_func}(main())
        loop = {kind.factory_expr}()
        print(loop.get_debug())
        loop.close()
    """)
    for value, expected in (("1", "True\nTrue\n"), ("", "False\nFalse\n")):
        env = subprocess_env(PYTHONASYNCIODEBUG=value)
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                              timeout=CHILD_TIMEOUT)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == expected


def test_dev_mode_turns_debug_on(kind):
    code = script(f"""
        {kind.import_line}
        loop = {kind.factory_expr}()
        print(loop.get_debug())
        loop.close()
    """)
    proc = subprocess.run([sys.executable, "-X", "dev", "-c", code], env=subprocess_env(),
                          capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "True\n"


@pytest.mark.parametrize("debug", [True, False])
def test_run_debug_argument(kind, monkeypatch, debug):
    # debug= wins over the environment in both directions.
    monkeypatch.setenv("PYTHONASYNCIODEBUG", "" if debug else "1")

    async def main():
        return asyncio.get_running_loop().get_debug()

    assert kind.run(main(), debug=debug) is debug


def test_coroutine_origin_tracking_follows_debug(loop):
    depth_before = sys.get_coroutine_origin_tracking_depth()
    loop.set_debug(True)

    async def depth():
        return sys.get_coroutine_origin_tracking_depth()

    assert loop.run_until_complete(depth()) == asyncio.constants.DEBUG_STACK_DEPTH
    assert sys.get_coroutine_origin_tracking_depth() == depth_before
    loop.set_debug(False)
    assert loop.run_until_complete(depth()) == depth_before
    loop.close()


# -- slow callbacks ------------------------------------------------------------


def test_slow_callback_duration_attribute(loop):
    assert loop.slow_callback_duration == 0.1
    loop.slow_callback_duration = 0.25
    assert loop.slow_callback_duration == 0.25
    loop.close()


def test_slow_callback_is_logged_in_debug_mode(loop, asyncio_log):
    loop.set_debug(True)
    loop.slow_callback_duration = THRESHOLD
    handle = loop.call_soon(slow)
    handle_repr = repr(handle)
    run_briefly(loop)
    records = [r for r in asyncio_log.take() if r.getMessage().startswith("Executing")]
    record, = records
    assert record.levelno == logging.WARNING
    match = re.fullmatch(r"Executing (<.*>) took (\d+\.\d{3}) seconds", record.getMessage())
    assert match, record.getMessage()
    assert match.group(1) == handle_repr
    assert float(match.group(2)) >= SLOW - 0.001
    loop.close()


def test_slow_timer_callback_is_logged(loop, asyncio_log):
    loop.set_debug(True)
    loop.slow_callback_duration = THRESHOLD
    loop.call_later(0, slow)
    loop.call_later(SLOW + 0.01, loop.stop)
    loop.run_forever()
    messages = [r.getMessage() for r in asyncio_log.take()]
    assert any(re.fullmatch(r"Executing <TimerHandle when=\S+ slow\(\) at .*> took \d+\.\d{3} seconds", m)
               for m in messages), messages
    loop.close()


def test_slow_task_step_is_logged(loop, asyncio_log):
    loop.set_debug(True)
    loop.slow_callback_duration = THRESHOLD

    async def slow_step():
        await asyncio.sleep(0)
        time.sleep(SLOW)

    loop.run_until_complete(slow_step())
    messages = [r.getMessage() for r in asyncio_log.take()]
    assert any(re.fullmatch(r"Executing <Task .*slow_step\(\).*> took \d+\.\d{3} seconds", m, re.S)
               for m in messages), messages
    loop.close()


def test_fast_callbacks_are_not_logged(loop, asyncio_log):
    loop.set_debug(True)
    loop.slow_callback_duration = 3600
    loop.call_soon(slow)
    run_briefly(loop)
    assert not [r for r in asyncio_log.take() if r.getMessage().startswith("Executing")]
    loop.close()


def test_slow_callback_not_logged_without_debug(loop, asyncio_log):
    loop.slow_callback_duration = THRESHOLD
    loop.call_soon(slow)
    run_briefly(loop)
    assert not [r for r in asyncio_log.take() if r.getMessage().startswith("Executing")]
    loop.close()


# -- checks done only in debug mode -------------------------------------------


@pytest.mark.parametrize("method", ["call_soon", "call_later", "call_at"])
def test_non_threadsafe_call_from_another_thread_raises(kind, loop, method):
    loop.set_debug(True)
    outcome = []
    done = kind.Future(loop=loop)

    def worker():
        try:
            if method == "call_soon":
                loop.call_soon(noop)
            elif method == "call_later":
                loop.call_later(0, noop)
            else:
                loop.call_at(loop.time(), noop)
        except RuntimeError as exc:
            outcome.append(str(exc))
        loop.call_soon_threadsafe(done.set_result, None)

    thread = threading.Thread(target=worker)
    loop.call_soon(thread.start)
    loop.run_until_complete(done)
    thread.join()
    assert outcome == ["Non-thread-safe operation invoked on an event loop other than the current one"]
    loop.close()


def test_call_soon_from_another_thread_allowed_when_loop_is_not_running(loop):
    loop.set_debug(True)
    thread = threading.Thread(target=loop.call_soon, args=(noop,))
    thread.start()
    thread.join()
    loop.close()


async def _coroutine_function():
    pass


@pytest.mark.parametrize("method", ["call_soon", "call_later", "call_at", "call_soon_threadsafe"])
@pytest.mark.parametrize("bad", ["coroutine function", "not callable"])
def test_bad_callbacks_rejected_in_debug_mode(loop, method, bad):
    loop.set_debug(True)
    callback = _coroutine_function if bad == "coroutine function" else 42
    schedule = {
        "call_soon": lambda: loop.call_soon(callback),
        "call_later": lambda: loop.call_later(0, callback),
        "call_at": lambda: loop.call_at(loop.time(), callback),
        "call_soon_threadsafe": lambda: loop.call_soon_threadsafe(callback),
    }[method]
    if bad == "coroutine function":
        expected = f"coroutines cannot be used with {'call_at' if method == 'call_later' else method}()"
    else:
        expected = "a callable object was expected by"
    with pytest.raises(TypeError, match=re.escape(expected)):
        schedule()
    loop.close()


# -- source tracebacks ---------------------------------------------------------


def test_handle_repr_shows_where_it_was_created(loop):
    loop.set_debug(True)
    handle = loop.call_soon(noop)
    timer = loop.call_later(10, noop)
    assert re.fullmatch(r"<Handle noop\(\) at .*test_debug.py:\d+ created at .*test_debug.py:\d+>", repr(handle))
    assert re.fullmatch(
        r"<TimerHandle when=\S+ noop\(\) at .*test_debug.py:\d+ created at .*test_debug.py:\d+>", repr(timer)
    )
    line = int(repr(handle).rsplit(":", 1)[1].rstrip(">"))
    assert line == test_handle_repr_shows_where_it_was_created.__code__.co_firstlineno + 2
    handle.cancel()
    timer.cancel()
    loop.close()


def test_cancelled_handle_keeps_its_repr_in_debug_mode(loop):
    loop.set_debug(True)
    handle = loop.call_soon(noop)
    before = repr(handle)
    handle.cancel()
    assert repr(handle) == before.replace("<Handle ", "<Handle cancelled ", 1)
    loop.close()


def test_exception_context_has_source_traceback(loop, errors):
    loop.set_debug(True)

    def fail():
        raise ValueError

    loop.call_soon(fail)
    run_briefly(loop)
    context, = errors
    frames = context["source_traceback"]
    assert frames
    assert frames[-1][0] == __file__
    assert frames[-1][2] == "test_exception_context_has_source_traceback"
    errors.clear()
    loop.close()


def test_unretrieved_exception_report_shows_where_the_future_was_created(kind, loop, errors):
    loop.set_debug(True)
    fut = kind.Future(loop=loop)
    fut.set_exception(ValueError())
    del fut
    gc.collect()
    context, = errors
    assert context["message"] == "Future exception was never retrieved"
    frames = context["source_traceback"]
    assert frames[-1][0] == __file__
    assert frames[-1][2] == "test_unretrieved_exception_report_shows_where_the_future_was_created"
    errors.clear()
    loop.close()


def test_pending_task_report_shows_where_the_task_was_created(kind, loop, errors):
    loop.set_debug(True)

    async def forever():
        await loop.create_future()

    task = loop.create_task(forever())
    run_briefly(loop)
    del task
    loop.close()
    gc.collect()
    context, = errors
    assert context["message"] == "Task was destroyed but it is pending!"
    assert context["source_traceback"][-1][0] == __file__
    errors.clear()


def test_default_handler_shows_creation_site(kind, asyncio_log):
    loop = kind.new_loop(record_errors=False)
    loop.set_debug(True)

    def fail():
        raise ValueError

    loop.call_soon(fail)
    run_briefly(loop)
    record, = [r for r in asyncio_log.take() if r.levelno >= logging.ERROR]
    assert "Object created at (most recent call last):" in record.getMessage()
    assert __file__ in record.getMessage()
    loop.close()
