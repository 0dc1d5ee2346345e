"""Running, stopping and closing a loop; its clock; errors on a closed loop;
async generator bookkeeping."""

import asyncio
import gc
import re
import subprocess
import sys
import threading
import time

import pytest

from support import CHILD_TIMEOUT, PY, close_loop, script, subprocess_env

# The multiplexer matters here: run on turboloop's poll(2) backend as well.
ALSO_POLL_BACKEND = True


def test_is_an_abstract_event_loop(kind, loop):
    assert isinstance(loop, asyncio.AbstractEventLoop)
    assert isinstance(loop, kind.Loop)
    loop.close()


def test_loop_class_is_instantiable_and_subclassable(kind):
    class MyLoop(kind.Loop):
        pass

    loop = MyLoop()
    try:
        assert isinstance(loop, asyncio.AbstractEventLoop)
        assert loop.run_until_complete(asyncio.sleep(0, "ok")) == "ok"
    finally:
        loop.close()


def test_repr(loop):
    assert re.fullmatch(r"<\w+ running=False closed=False debug=False>", repr(loop))
    seen = []

    def cb():
        seen.append(repr(loop))

    loop.call_soon(cb)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert re.fullmatch(r"<\w+ running=True closed=False debug=False>", seen[0])
    loop.close()
    assert re.fullmatch(r"<\w+ running=False closed=True debug=False>", repr(loop))


# -- run_until_complete ------------------------------------------------------


def test_run_until_complete_coroutine(loop):
    async def coro(x):
        await asyncio.sleep(0)
        return x * 2

    assert loop.run_until_complete(coro(21)) == 42
    loop.close()


def test_run_until_complete_future(kind, loop):
    fut = kind.Future(loop=loop)
    loop.call_soon(fut.set_result, "done")
    assert loop.run_until_complete(fut) == "done"
    loop.close()


def test_run_until_complete_task(kind, loop):
    async def coro():
        return 7

    task = kind.Task(coro(), loop=loop)
    assert loop.run_until_complete(task) == 7
    loop.close()


def test_run_until_complete_awaitable_object(loop):
    class Awaitable:
        def __await__(self):
            yield from asyncio.sleep(0).__await__()
            return "awaited"

    assert loop.run_until_complete(Awaitable()) == "awaited"
    loop.close()


def test_run_until_complete_raises_exception(loop):
    async def coro():
        await asyncio.sleep(0)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        loop.run_until_complete(coro())
    loop.close()


def test_run_until_complete_not_awaitable(loop):
    with pytest.raises(TypeError):
        loop.run_until_complete(42)
    loop.close()


def test_run_until_complete_future_of_another_loop(kind, loop):
    other = kind.new_loop()
    fut = kind.Future(loop=other)
    with pytest.raises(ValueError):
        loop.run_until_complete(fut)
    other.close()
    loop.close()


def test_run_until_complete_stopped_early(kind, loop):
    fut = kind.Future(loop=loop)
    loop.call_soon(loop.stop)
    with pytest.raises(RuntimeError, match="Event loop stopped before Future completed."):
        loop.run_until_complete(fut)
    assert not loop.is_running()
    loop.close()


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exception_in_task_escapes_run_until_complete(loop, exc_type):
    async def coro():
        await asyncio.sleep(0)
        raise exc_type()

    with pytest.raises(exc_type):
        loop.run_until_complete(coro())
    assert not loop.is_running()
    # The loop stays usable.
    assert loop.run_until_complete(asyncio.sleep(0, "again")) == "again"
    loop.close()


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exception_in_callback_escapes_run_forever(loop, exc_type):
    ran = []

    def cb():
        raise exc_type()

    loop.call_soon(cb)
    loop.call_soon(ran.append, "later")
    with pytest.raises(exc_type):
        loop.run_forever()
    assert not loop.is_running()
    # The callback scheduled after the raising one is still pending and runs
    # on the next run.
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert ran == ["later"]
    loop.close()


# -- run_forever and stop ----------------------------------------------------


def test_run_forever_until_stop(loop):
    calls = []
    loop.call_soon(calls.append, 1)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert calls == [1]
    assert not loop.is_running()
    loop.close()


def test_stop_before_run_forever_runs_one_iteration(loop):
    calls = []

    def first():
        calls.append("first")
        loop.call_soon(calls.append, "scheduled by first")

    loop.call_soon(first)
    loop.stop()
    loop.run_forever()
    assert calls == ["first"]
    # The callback scheduled during the stopped iteration waits for the next run.
    loop.stop()
    loop.run_forever()
    assert calls == ["first", "scheduled by first"]
    loop.close()


def test_stop_finishes_the_current_batch(loop):
    calls = []

    def a():
        calls.append("a")
        loop.call_soon(calls.append, "c")

    loop.call_soon(a)
    loop.call_soon(loop.stop)
    loop.call_soon(calls.append, "b")
    loop.run_forever()
    assert calls == ["a", "b"]
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert calls == ["a", "b", "c"]
    loop.close()


def test_stop_twice_is_one_stop(loop):
    calls = []
    loop.call_soon(loop.stop)
    loop.call_soon(loop.stop)
    loop.run_forever()
    loop.call_soon(calls.append, 1)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert calls == [1]
    loop.close()


def test_stop_with_pending_timer_does_not_wait_for_it(loop):
    calls = []
    handle = loop.call_later(3600, calls.append, "never")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert calls == []
    handle.cancel()
    loop.close()


def test_is_running(loop):
    seen = []
    assert not loop.is_running()
    loop.call_soon(lambda: seen.append(loop.is_running()))
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == [True]
    assert not loop.is_running()
    loop.close()


def test_running_loop_is_visible_to_asyncio(loop):
    seen = []

    def cb():
        seen.append(asyncio.get_running_loop())
        seen.append(asyncio.get_event_loop())
        seen.append(asyncio._get_running_loop())

    loop.call_soon(cb)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == [loop, loop, loop]
    assert asyncio._get_running_loop() is None
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    loop.close()


@pytest.mark.parametrize("method", ["run_forever", "run_until_complete"])
def test_run_while_running(kind, loop, method):
    raised = []

    def cb():
        # Each nested call gets its own test: on some Python versions a failed
        # nested run_forever() resets the outer loop's running state.
        try:
            if method == "run_forever":
                loop.run_forever()
            else:
                loop.run_until_complete(kind.Future(loop=loop))
        except RuntimeError as exc:
            raised.append(str(exc))
        loop.stop()

    loop.call_soon(cb)
    loop.run_forever()
    assert raised == ["This event loop is already running"]
    loop.close()


def test_run_while_another_loop_runs_in_this_thread(kind, loop):
    other = kind.new_loop()
    raised = []

    def cb():
        try:
            other.run_forever()
        except RuntimeError as exc:
            raised.append(str(exc))
        loop.stop()

    loop.call_soon(cb)
    loop.run_forever()
    assert raised == ["Cannot run the event loop while another loop is running"]
    assert not other.is_running()
    other.close()
    loop.close()


def test_loops_in_two_threads(kind, loop):
    results = {}

    def worker():
        other = kind.new_event_loop()
        try:
            results["thread"] = other.run_until_complete(asyncio.sleep(0.01, "thread"))
        finally:
            other.close()

    thread = threading.Thread(target=worker)
    thread.start()
    results["main"] = loop.run_until_complete(asyncio.sleep(0.01, "main"))
    thread.join()
    assert results == {"thread": "thread", "main": "main"}
    loop.close()


def test_run_forever_after_exception_in_previous_run(loop):
    async def fail():
        raise ValueError

    with pytest.raises(ValueError):
        loop.run_until_complete(fail())
    assert loop.run_until_complete(asyncio.sleep(0, 5)) == 5
    loop.close()


# -- fork ------------------------------------------------------------------------
#
# Checked in a child process, so that forking never involves the test runner.


def _run_script(kind, code):
    proc = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True,
                          timeout=CHILD_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_new_loop_in_forked_child(kind):
    out = _run_script(kind, script(f"""
        {kind.import_line}
        import os, sys
        loop = {kind.factory_expr}()
        print(loop.run_until_complete(asyncio.sleep(0.001, "parent before")), flush=True)
        pid = os.fork()
        if pid == 0:
            child = {kind.factory_expr}()
            child.call_later(0.001, lambda: print("child timer", flush=True))
            child.run_until_complete(asyncio.sleep(0.01))
            child.close()
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print("child exit", os.waitstatus_to_exitcode(status), flush=True)
        print(loop.run_until_complete(asyncio.sleep(0.001, "parent after")))
        loop.close()
    """))
    assert out == "parent before\nchild timer\nchild exit 0\nparent after\n"


@pytest.mark.skipif(PY < (3, 12), reason="asyncio resets the running loop in a forked child from 3.12")
def test_fork_from_a_running_loop(kind):
    out = _run_script(kind, script(f"""
        {kind.import_line}
        import os

        async def main():
            pid = os.fork()
            if pid == 0:
                # The parent's loop is not running here.
                print("child running loop:", asyncio._get_running_loop(), flush=True)
                child = {kind.factory_expr}()
                print(child.run_until_complete(asyncio.sleep(0.001, "child ran")), flush=True)
                child.close()
                os._exit(0)
            loop = asyncio.get_running_loop()
            status = await loop.run_in_executor(None, os.waitpid, pid, 0)
            return os.waitstatus_to_exitcode(status[1])

        print("child exit", {kind.run_func}(main()))
    """))
    assert out == "child running loop: None\nchild ran\nchild exit 0\n"


@pytest.mark.parametrize(
    "attempt, message",
    [("run_forever", "This event loop is already running"), ("close", "Cannot close a running event loop")],
)
def test_run_or_close_from_another_thread_while_running(kind, loop, attempt, message):
    # One attempt per test: on some Python versions a failed nested
    # run_forever() resets the running loop's state.
    raised = []
    done = kind.Future(loop=loop)

    def worker():
        try:
            getattr(loop, attempt)()
        except RuntimeError as exc:
            raised.append(str(exc))
        loop.call_soon_threadsafe(done.set_result, None)

    thread = threading.Thread(target=worker)
    loop.call_soon(thread.start)
    loop.run_until_complete(done)
    thread.join()
    assert raised == [message]
    loop.close()


def test_unclosed_loop_warns_and_releases_its_fds(kind):
    # Not tracked by the fixture, so the loop can be garbage collected; the
    # fixture still checks that its descriptors went with it.
    loop = kind.new_event_loop()
    loop.run_until_complete(asyncio.sleep(0))
    with pytest.warns(ResourceWarning, match="unclosed event loop"):
        del loop
        gc.collect()


# -- close ---------------------------------------------------------------------


def test_close(loop):
    assert not loop.is_closed()
    loop.close()
    assert loop.is_closed()
    # Closing twice is a no-op.
    loop.close()
    assert loop.is_closed()


def test_close_running_loop_raises(loop):
    raised = []

    def cb():
        try:
            loop.close()
        except RuntimeError as exc:
            raised.append(str(exc))
        loop.stop()

    loop.call_soon(cb)
    loop.run_forever()
    assert raised == ["Cannot close a running event loop"]
    assert not loop.is_closed()
    loop.close()


def test_close_discards_pending_callbacks(loop):
    calls = []
    loop.call_soon(calls.append, 1)
    loop.call_later(0, calls.append, 2)
    loop.close()
    assert calls == []


async def _noop_coro():
    pass


def _closed_loop_operations(kind):
    """Operations that must raise RuntimeError('Event loop is closed')."""
    return {
        "run_forever": lambda loop: loop.run_forever(),
        "run_until_complete": lambda loop: loop.run_until_complete(kind.Future(loop=loop)),
        "call_soon": lambda loop: loop.call_soon(print),
        "call_later": lambda loop: loop.call_later(0, print),
        "call_at": lambda loop: loop.call_at(loop.time(), print),
        "call_soon_threadsafe": lambda loop: loop.call_soon_threadsafe(print),
        "run_in_executor": lambda loop: loop.run_in_executor(None, print),
        "add_reader": lambda loop: loop.add_reader(0, print),
        "add_writer": lambda loop: loop.add_writer(1, print),
    }


CLOSED_LOOP_OPERATIONS = [
    "run_forever",
    "run_until_complete",
    "call_soon",
    "call_later",
    "call_at",
    "call_soon_threadsafe",
    "run_in_executor",
    "add_reader",
    "add_writer",
]


@pytest.mark.parametrize("operation", CLOSED_LOOP_OPERATIONS)
def test_closed_loop_raises(kind, operation):
    loop = kind.new_loop()
    op = _closed_loop_operations(kind)[operation]
    loop.close()
    with pytest.raises(RuntimeError, match="^Event loop is closed$"):
        op(loop)


def test_closed_loop_create_task_raises(loop):
    loop.close()
    coro = _noop_coro()
    with pytest.raises(RuntimeError, match="^Event loop is closed$"):
        loop.create_task(coro)
    coro.close()


def test_closed_loop_run_until_complete_coroutine_raises(loop):
    loop.close()
    coro = _noop_coro()
    with pytest.raises(RuntimeError, match="^Event loop is closed$"):
        loop.run_until_complete(coro)
    coro.close()


def test_closed_loop_remove_watchers_returns_false(loop):
    loop.close()
    assert loop.remove_reader(0) is False
    assert loop.remove_writer(1) is False


def test_closed_loop_still_answers_questions(loop):
    loop.close()
    assert loop.is_closed()
    assert not loop.is_running()
    assert loop.get_debug() is False
    assert isinstance(loop.time(), float)
    loop.stop()


# -- time ----------------------------------------------------------------------


def test_time_is_the_monotonic_clock(loop):
    before = time.monotonic()
    now = loop.time()
    after = time.monotonic()
    assert isinstance(now, float)
    assert before <= now <= after
    loop.close()


def test_time_does_not_go_backwards(loop):
    samples = [loop.time() for _ in range(1000)]
    assert samples == sorted(samples)
    loop.close()


def test_time_inside_the_loop(loop):
    seen = []

    def cb():
        before = time.monotonic()
        seen.append((before, loop.time(), time.monotonic()))
        loop.stop()

    loop.call_soon(cb)
    loop.run_forever()
    (before, now, after), = seen
    assert before <= now <= after
    loop.close()


def test_timer_does_not_fire_before_its_deadline(loop):
    # Only a lower bound: a timer may fire late but never early (beyond the
    # clock's resolution, which asyncio allows for).
    fired = []
    resolution = time.get_clock_info("monotonic").resolution
    handle = loop.call_later(0.01, lambda: fired.append(loop.time()))
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert len(fired) == 1
    assert fired[0] >= handle.when() - resolution
    loop.close()


# -- event loop slots and policies -------------------------------------------


def test_set_event_loop(loop, fresh_policy):
    asyncio.set_event_loop(loop)
    try:
        assert asyncio.get_event_loop() is loop
    finally:
        asyncio.set_event_loop(None)
    loop.close()


# -- async generators ----------------------------------------------------------


def test_asyncgen_hooks_installed_while_running(loop):
    before = sys.get_asyncgen_hooks()
    seen = []

    def cb():
        seen.append(sys.get_asyncgen_hooks())
        loop.stop()

    loop.call_soon(cb)
    loop.run_forever()
    hooks, = seen
    assert hooks.firstiter is not None
    assert hooks.finalizer is not None
    assert sys.get_asyncgen_hooks() == before
    loop.close()


def test_asyncgen_hooks_restored_after_exception(loop):
    before = sys.get_asyncgen_hooks()

    async def fail():
        raise ValueError

    with pytest.raises(ValueError):
        loop.run_until_complete(fail())
    assert sys.get_asyncgen_hooks() == before
    loop.close()


def test_shutdown_asyncgens_closes_suspended_generators(loop):
    events = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            events.append("finalized")
            await asyncio.sleep(0)
            events.append("finalized after await")

    gen = agen()

    async def consume():
        return await gen.__anext__()

    assert loop.run_until_complete(consume()) == 1
    assert events == []
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert events == ["finalized", "finalized after await"]
    loop.close()


def test_shutdown_asyncgens_reports_errors(loop, errors):
    async def agen():
        try:
            yield 1
        finally:
            raise ValueError("in finally")

    gen = agen()

    async def consume():
        # The first __anext__() must happen while the loop runs, so that the
        # loop's firstiter hook registers the generator.
        await gen.__anext__()

    loop.run_until_complete(consume())
    loop.run_until_complete(loop.shutdown_asyncgens())
    context, = errors
    assert "an error occurred during closing of asynchronous generator" in context["message"]
    assert isinstance(context["exception"], ValueError)
    assert context["asyncgen"] is gen
    errors.clear()
    loop.close()


def test_shutdown_asyncgens_without_generators(loop):
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


def test_asyncgen_finalized_by_the_loop_when_dropped(loop):
    events = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            # Awaiting here requires the loop to run aclose() as a task.
            await asyncio.sleep(0)
            events.append("closed")

    async def main():
        gen = agen()
        await gen.__anext__()
        del gen
        for _ in range(5):
            await asyncio.sleep(0)

    loop.run_until_complete(main())
    assert events == ["closed"]
    loop.close()


def test_close_loop_helper_is_like_asyncio_run(loop):
    # close_loop() is used across the suite; check it on both kinds.
    loop.run_until_complete(loop.run_in_executor(None, lambda: None))
    close_loop(loop)
    assert loop.is_closed()
