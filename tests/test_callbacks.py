"""call_soon, call_later, call_at, call_soon_threadsafe: ordering, handles,
contexts and thread wake-ups."""

import asyncio
import contextvars
import functools
import random
import threading
import time

import pytest

from support import PY

# The multiplexer matters here: run on turboloop's poll(2) backend as well.
ALSO_POLL_BACKEND = True

var = contextvars.ContextVar("var", default="default")


def noop(*args):
    pass


def run_briefly(loop):
    """Run the loop until everything ready now (and what that schedules
    with call_soon) has run."""
    loop.call_soon(loop.stop)
    loop.run_forever()


# -- handle types ----------------------------------------------------------------


def test_call_soon_returns_handle(kind, loop):
    handle = loop.call_soon(noop)
    assert isinstance(handle, kind.Handle)
    assert not isinstance(handle, kind.TimerHandle)
    assert not handle.cancelled()
    loop.close()


@pytest.mark.parametrize("delay", [0, 0.0, -1, -0.5, 0.01, 3600])
def test_call_later_returns_timer_handle_for_every_delay(kind, loop, delay):
    before = loop.time()
    handle = loop.call_later(delay, noop)
    after = loop.time()
    assert isinstance(handle, kind.TimerHandle)
    assert isinstance(handle, kind.Handle)
    assert before + delay <= handle.when() <= after + delay
    handle.cancel()
    loop.close()


def test_call_at_returns_timer_handle_with_exact_when(kind, loop):
    when = loop.time() + 0.25
    handle = loop.call_at(when, noop)
    assert isinstance(handle, kind.TimerHandle)
    assert handle.when() == when
    assert isinstance(handle.when(), float)
    handle.cancel()
    past = loop.call_at(123.5, noop)
    assert past.when() == 123.5
    past.cancel()
    loop.close()


def test_call_later_and_call_at_reject_none(loop):
    with pytest.raises(TypeError):
        loop.call_later(None, noop)
    with pytest.raises(TypeError):
        loop.call_at(None, noop)
    loop.close()


def test_call_soon_threadsafe_returns_handle(kind, loop):
    handle = loop.call_soon_threadsafe(noop)
    assert isinstance(handle, kind.Handle)
    assert not isinstance(handle, kind.TimerHandle)
    loop.close()


def test_timer_handle_comparisons(loop):
    t = loop.time()
    early = loop.call_at(t + 10, noop)
    late = loop.call_at(t + 20, noop)
    assert early < late
    assert early <= late
    assert late > early
    assert late >= early
    assert early == early
    assert early != late
    assert sorted([late, early]) == [early, late]
    assert len({early, late}) == 2
    early.cancel()
    late.cancel()
    loop.close()


# -- reprs ---------------------------------------------------------------------
#
# The expected strings come from asyncio's own Handle classes built on the same
# loop, so the comparison holds for every Python version's format.


def _expected_handle_repr(loop, callback, args):
    return repr(asyncio.Handle(callback, args, loop))


def _expected_timer_repr(loop, when, callback, args):
    return repr(asyncio.TimerHandle(when, callback, args, loop))


@pytest.mark.parametrize(
    "callback, args",
    [
        (noop, ()),
        (noop, (1, "two", None)),
        (functools.partial(noop, 1), (2,)),
        (print, ()),
        (lambda: None, ()),
    ],
    ids=["function", "args", "partial", "builtin", "lambda"],
)
def test_handle_repr(loop, callback, args):
    handle = loop.call_soon(callback, *args)
    assert repr(handle) == _expected_handle_repr(loop, callback, args)
    timer = loop.call_at(1000.0, callback, *args)
    assert repr(timer) == _expected_timer_repr(loop, 1000.0, callback, args)
    handle.cancel()
    timer.cancel()
    loop.close()


def test_cancelled_handle_repr(loop):
    handle = loop.call_soon(noop)
    handle.cancel()
    assert repr(handle) == "<Handle cancelled>"
    timer = loop.call_at(1000.0, noop)
    timer.cancel()
    assert repr(timer) == "<TimerHandle cancelled when=1000.0>"
    loop.close()


# -- running and ordering ------------------------------------------------------


def test_call_soon_runs_in_fifo_order_with_args(loop):
    calls = []
    for i in range(100):
        loop.call_soon(calls.append, i)
    run_briefly(loop)
    assert calls == list(range(100))
    loop.close()


def test_call_soon_with_keyword_style_args_via_partial(loop):
    calls = []
    loop.call_soon(functools.partial(calls.append, "x"))
    run_briefly(loop)
    assert calls == ["x"]
    loop.close()


def test_callbacks_scheduled_while_running_run_next_iteration(loop):
    calls = []

    def a():
        calls.append("a")
        loop.call_soon(calls.append, "a2")

    loop.call_soon(a)
    loop.call_soon(calls.append, "b")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert calls == ["a", "b"]
    run_briefly(loop)
    assert calls == ["a", "b", "a2"]
    loop.close()


def test_due_timers_run_after_ready_callbacks_of_the_same_iteration(loop):
    # asyncio's _run_once appends due timers to the ready queue after the
    # callbacks already in it, then runs them all in one batch.
    calls = []
    loop.call_soon(calls.append, "soon 1")
    loop.call_later(0, calls.append, "later 0")
    loop.call_soon(calls.append, "soon 2")
    loop.call_later(-1, calls.append, "later -1")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert calls == ["soon 1", "soon 2", "later -1", "later 0"]
    loop.close()


def test_callback_scheduling_from_a_callback(loop):
    calls = []

    def first():
        calls.append("first")
        loop.call_later(0, calls.append, "later 0")
        loop.call_soon(calls.append, "soon")

    loop.call_soon(first)
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert calls == ["first", "soon", "later 0"]
    loop.close()


def _fifo_ties_promised(kind):
    # asyncio keeps timers in a heapq ordered by deadline alone, which does not
    # keep insertion order among equal deadlines.  turboloop orders its heap by
    # (deadline, sequence) and promises FIFO; on asyncio only the deadline
    # order is checked.
    return kind.is_turboloop


def test_equal_deadline_timers_fire_together(kind, loop):
    calls = []
    when = loop.time()
    for i in range(50):
        loop.call_at(when, calls.append, i)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert sorted(calls) == list(range(50))
    if _fifo_ties_promised(kind):
        assert calls == list(range(50))
    loop.close()


def test_equal_deadline_timers_fifo_with_call_later_zero(loop):
    calls = []
    for i in range(50):
        loop.call_later(0, calls.append, i)
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert calls == list(range(50))
    loop.close()


def test_timers_fire_in_deadline_order(loop):
    calls = []
    base = loop.time()
    for offset in [0.004, 0.001, 0.003, 0.002, 0.0]:
        loop.call_at(base + offset, calls.append, offset)
    loop.call_at(base + 0.01, loop.stop)
    loop.run_forever()
    assert calls == [0.0, 0.001, 0.002, 0.003, 0.004]
    loop.close()


def test_many_random_timers_fire_in_deadline_order(kind, loop):
    rng = random.Random(12345)
    base = loop.time()
    expected = []
    fired = []
    handles = []
    for seq in range(2000):
        # Few distinct deadlines, so that many timers tie.
        when = base + rng.randrange(20) * 0.0005
        handles.append(loop.call_at(when, fired.append, (when, seq)))
        expected.append((when, seq))
    # Cancel most of them, which asks a lazy-deletion heap to compact.
    for handle, key in zip(handles, list(expected)):
        if rng.random() < 0.7:
            handle.cancel()
            expected.remove(key)
    loop.call_at(base + 0.02, loop.stop)
    loop.run_forever()
    assert sorted(fired) == sorted(expected)
    assert [when for when, seq in fired] == sorted(when for when, seq in expected)
    if _fifo_ties_promised(kind):
        assert fired == sorted(expected)
    loop.close()


def test_timer_fires_after_sleeping(kind, loop):
    fut = kind.Future(loop=loop)
    loop.call_later(0.01, fut.set_result, "fired")
    assert loop.run_until_complete(fut) == "fired"
    loop.close()


def test_timer_scheduled_from_callback_wakes_sleeping_loop(kind, loop):
    fut = kind.Future(loop=loop)

    def schedule():
        loop.call_later(0.01, fut.set_result, "nested")

    loop.call_later(0.01, schedule)
    assert loop.run_until_complete(fut) == "nested"
    loop.close()


def test_earlier_timer_added_while_sleeping_for_later_one(kind, loop):
    # A timer added from a callback that is due before the one the loop was
    # going to sleep for must not wait for the later deadline.
    order = []
    fut = kind.Future(loop=loop)
    far = loop.call_later(3600, order.append, "far")

    def add_near():
        loop.call_later(0.01, fut.set_result, None)

    loop.call_soon(add_near)
    loop.run_until_complete(fut)
    assert order == []
    far.cancel()
    loop.close()


@pytest.mark.parametrize("delay", [1e10, 1e15, 1e300, float("inf")])
def test_huge_delays_do_not_overflow(kind, loop, delay):
    # A loop that keeps time in integer nanoseconds must not wrap these
    # around into the past (or crash); asyncio simply never reaches them.
    fired = []
    far = loop.call_later(delay, fired.append, "far")
    assert far.when() >= loop.time() + min(delay, 1e10) - 1
    near = loop.call_later(0.001, fired.append, "near")
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert fired == ["near"]
    far.cancel()
    near.cancel()
    loop.close()


@pytest.mark.parametrize("delay", [-1e10, -1e300, float("-inf")])
def test_huge_negative_delays_fire_at_once(loop, delay):
    fired = []
    loop.call_later(delay, fired.append, "past")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert fired == ["past"]
    loop.close()


def test_call_at_huge_and_far_past_deadlines(loop):
    fired = []
    far = loop.call_at(1e300, fired.append, "far")
    loop.call_at(-1e300, fired.append, "past")
    loop.call_at(0, fired.append, "zero")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert fired == ["past", "zero"]
    far.cancel()
    loop.close()


# -- cancel --------------------------------------------------------------------


def test_cancel_handle(loop):
    calls = []
    handle = loop.call_soon(calls.append, 1)
    loop.call_soon(calls.append, 2)
    handle.cancel()
    assert handle.cancelled()
    handle.cancel()
    assert handle.cancelled()
    run_briefly(loop)
    assert calls == [2]
    loop.close()


def test_cancel_timer_handle(loop):
    calls = []
    handle = loop.call_later(0, calls.append, 1)
    loop.call_later(0, calls.append, 2)
    handle.cancel()
    assert handle.cancelled()
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert calls == [2]
    loop.close()


def test_cancel_from_an_earlier_callback_of_the_same_batch(loop):
    calls = []
    later = None

    def first():
        calls.append("first")
        later.cancel()

    loop.call_soon(first)
    later = loop.call_soon(calls.append, "cancelled")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert calls == ["first"]
    loop.close()


def test_cancel_after_run_is_harmless(loop):
    calls = []
    handle = loop.call_soon(calls.append, 1)
    timer = loop.call_later(0, calls.append, 2)
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    handle.cancel()
    timer.cancel()
    assert handle.cancelled() and timer.cancelled()
    assert calls == [1, 2]
    loop.close()


def test_timer_cancelled_by_an_earlier_due_timer(loop):
    # Both timers are due in the same iteration and already moved to the
    # ready queue when the first one cancels the second.
    calls = []
    when = loop.time()
    second = None

    def first():
        calls.append("first")
        second.cancel()

    loop.call_at(when, first)
    second = loop.call_at(when + 1e-6, calls.append, "second")
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert calls == ["first"]
    loop.close()


def test_cancelling_most_timers_from_a_callback(loop):
    fired = []
    handles = [loop.call_later(0.005, fired.append, i) for i in range(1000)]

    def cancel_most():
        for h in handles[:-10]:
            h.cancel()

    loop.call_soon(cancel_most)
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert fired == list(range(990, 1000))
    loop.close()


def test_callback_that_reschedules_itself(loop):
    count = 0

    def again():
        nonlocal count
        count += 1
        if count < 100:
            loop.call_soon(again)
        else:
            loop.stop()

    loop.call_soon(again)
    loop.run_forever()
    assert count == 100
    loop.close()


# -- contexts ------------------------------------------------------------------


def _record_var(calls):
    calls.append(var.get())


@pytest.mark.parametrize("method", ["call_soon", "call_later", "call_at", "call_soon_threadsafe"])
def test_context_argument(loop, method):
    calls = []
    ctx = contextvars.copy_context()
    ctx.run(var.set, "in ctx")
    schedule = {
        "call_soon": lambda: loop.call_soon(_record_var, calls, context=ctx),
        "call_later": lambda: loop.call_later(0, _record_var, calls, context=ctx),
        "call_at": lambda: loop.call_at(loop.time(), _record_var, calls, context=ctx),
        "call_soon_threadsafe": lambda: loop.call_soon_threadsafe(_record_var, calls, context=ctx),
    }[method]
    handle = schedule()
    if PY >= (3, 12):
        assert handle.get_context() is ctx
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert calls == ["in ctx"]
    assert var.get() == "default"
    loop.close()


@pytest.mark.parametrize("method", ["call_soon", "call_later", "call_soon_threadsafe"])
def test_default_context_is_a_copy_taken_when_scheduling(loop, method):
    calls = []
    token = var.set("at schedule time")
    try:
        if method == "call_soon":
            handle = loop.call_soon(_record_var, calls)
        elif method == "call_later":
            handle = loop.call_later(0, _record_var, calls)
        else:
            handle = loop.call_soon_threadsafe(_record_var, calls)
        var.set("changed later")
    finally:
        var.reset(token)
    if PY >= (3, 12):
        ctx = handle.get_context()
        assert isinstance(ctx, contextvars.Context)
        assert ctx[var] == "at schedule time"
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert calls == ["at schedule time"]
    loop.close()


def test_changes_inside_a_callback_stay_in_its_context(loop):
    seen = []

    def setter():
        var.set("set by callback")
        seen.append(var.get())

    loop.call_soon(setter)
    loop.call_soon(_record_var, seen)
    run_briefly(loop)
    assert seen == ["set by callback", "default"]
    loop.close()


def test_shared_context_between_callbacks(loop):
    ctx = contextvars.copy_context()
    seen = []

    def setter():
        var.set("shared")

    loop.call_soon(setter, context=ctx)
    loop.call_soon(_record_var, seen, context=ctx)
    run_briefly(loop)
    assert seen == ["shared"]
    assert ctx[var] == "shared"
    loop.close()


# -- threads -------------------------------------------------------------------


def test_call_soon_threadsafe_wakes_a_sleeping_loop(kind, loop):
    fut = kind.Future(loop=loop)
    started = threading.Event()

    def worker():
        started.wait()
        # Give the loop time to go to sleep in its poll; correctness does not
        # depend on it, but this is the case worth exercising.
        time.sleep(0.01)
        loop.call_soon_threadsafe(fut.set_result, "from thread")

    thread = threading.Thread(target=worker)
    thread.start()
    loop.call_soon(started.set)
    # A far timer only so that a loop that never wakes fails instead of hanging.
    guard = loop.call_later(30, fut.set_result, "never woken")
    try:
        assert loop.run_until_complete(fut) == "from thread"
    finally:
        guard.cancel()
        thread.join()
    loop.close()


def test_call_soon_threadsafe_from_many_threads(kind, loop):
    n_threads, per_thread = 8, 200
    results = []
    done = kind.Future(loop=loop)
    start = threading.Barrier(n_threads)

    def record(tid, i):
        results.append((tid, i))
        if len(results) == n_threads * per_thread:
            done.set_result(None)

    def worker(tid):
        start.wait()
        for i in range(per_thread):
            loop.call_soon_threadsafe(record, tid, i)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    guard = loop.call_later(30, lambda: done.done() or done.set_result("timed out"))
    try:
        assert loop.run_until_complete(done) is None
    finally:
        guard.cancel()
        for t in threads:
            t.join()
    assert len(results) == n_threads * per_thread
    # Calls from one thread keep their order.
    for tid in range(n_threads):
        assert [i for t, i in results if t == tid] == list(range(per_thread))
    loop.close()


def test_call_soon_threadsafe_before_run(loop):
    calls = []
    thread = threading.Thread(target=lambda: loop.call_soon_threadsafe(calls.append, "x"))
    thread.start()
    thread.join()
    run_briefly(loop)
    assert calls == ["x"]
    loop.close()


def test_call_soon_threadsafe_from_a_callback(loop):
    calls = []

    def cb():
        loop.call_soon_threadsafe(calls.append, "threadsafe")
        loop.call_soon(calls.append, "soon")

    loop.call_soon(cb)
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert calls == ["threadsafe", "soon"]
    loop.close()


# -- the lock of call_soon_threadsafe() handles (3.14+) ---------------------------
#
# From 3.14 on, a handle made by call_soon_threadsafe() holds a reentrant lock
# across cancel(), cancelled() and its run: another thread's cancel() or
# cancelled() waits for a callback that has started, a cancel() that comes
# first keeps the callback from running, and the callback may use its own
# handle.  The helper threads record what they saw and always stop the loop,
# so that a failing check fails the test instead of hanging it.

needs_handle_lock = pytest.mark.skipif(
    PY < (3, 14), reason="call_soon_threadsafe() handles hold a lock from 3.14 on")


def _in_thread_then_stop(loop, target):
    """Run target() in a thread; whatever it raises is kept, and the loop is
    stopped in any case."""
    raised = []

    def run():
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - re-raised by the test
            raised.append(exc)
        finally:
            loop.call_soon_threadsafe(loop.stop)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, raised


def _slow_callback(results, started, finished):
    def callback(arg):
        started.set()
        results.append(arg)
        # Long enough for the other thread to reach cancel()/cancelled()
        # while this runs; the outcome does not depend on it.
        time.sleep(0.2)
        finished.set()
    return callback


@needs_handle_lock
def test_threadsafe_handle_cancelled_waits_for_running_callback(loop):
    results, seen = [], []
    started, finished = threading.Event(), threading.Event()
    callback = _slow_callback(results, started, finished)

    def other_thread():
        handle = loop.call_soon_threadsafe(callback, "hello")
        assert started.wait(30)
        seen.append(handle.cancelled())
        seen.append(finished.is_set())

    thread, raised = _in_thread_then_stop(loop, other_thread)
    loop.run_forever()
    thread.join()
    assert raised == []
    assert seen == [False, True]
    assert results == ["hello"]
    loop.close()


@needs_handle_lock
def test_threadsafe_handle_cancel_waits_for_running_callback(loop):
    results, seen = [], []
    started, finished = threading.Event(), threading.Event()
    callback = _slow_callback(results, started, finished)

    def other_thread():
        handle = loop.call_soon_threadsafe(callback, "hello")
        assert started.wait(30)
        handle.cancel()
        seen.append(finished.is_set())
        seen.append(handle.cancelled())

    thread, raised = _in_thread_then_stop(loop, other_thread)
    loop.run_forever()
    thread.join()
    assert raised == []
    assert seen == [True, True]
    assert results == ["hello"]
    loop.close()


@needs_handle_lock
def test_threadsafe_handle_cancelled_from_another_thread_before_it_runs(loop):
    results, seen = [], []
    release = threading.Event()

    def callback(arg):
        results.append(arg)

    def other_thread():
        try:
            handle = loop.call_soon_threadsafe(callback, "hello")
            handle.cancel()
            seen.append(handle.cancelled())
        finally:
            release.set()

    # The loop is held in a callback until the other thread has scheduled
    # and cancelled its handle.
    loop.call_soon(release.wait, 30)
    thread, raised = _in_thread_then_stop(loop, other_thread)
    loop.run_forever()
    thread.join()
    # The stop queued by the helper may come before the cancelled handle's
    # turn: one more iteration settles it.
    run_briefly(loop)
    assert raised == []
    assert seen == [True]
    assert results == []
    loop.close()


@needs_handle_lock
@pytest.mark.parametrize("debug", [False, True], ids=["nodebug", "debug"])
def test_threadsafe_handle_used_by_its_own_callback(loop, debug):
    # The lock is reentrant: the callback runs holding it and may ask for
    # and cancel its own handle; it runs to the end all the same.  (In debug
    # mode cancel() also keeps the handle's repr, under the lock.)
    loop.set_debug(debug)
    results, seen = [], []
    handles = []

    def callback(arg):
        handle = handles[0]
        seen.append(handle.cancelled())
        handle.cancel()
        seen.append(handle.cancelled())
        handle.cancel()
        results.append(arg)

    handle = loop.call_soon_threadsafe(callback, "hello")
    handles.append(handle)
    run_briefly(loop)
    assert seen == [False, True]
    assert results == ["hello"]
    assert handle.cancelled()

    # Another thread then sees the lock free.
    thread = threading.Thread(target=lambda: seen.append(handle.cancelled()))
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    assert seen == [False, True, True]
    loop.close()


@needs_handle_lock
def test_threadsafe_handle_lock_released_when_callback_raises(loop, errors):
    handles = []

    def callback():
        handles[0].cancel()
        raise ZeroDivisionError

    handles.append(loop.call_soon_threadsafe(callback))
    run_briefly(loop)
    assert [type(c.get("exception")) for c in errors] == [ZeroDivisionError]
    errors.clear()

    # Were the lock still held by the loop's thread, this would wait for ever.
    seen = []
    thread = threading.Thread(target=lambda: seen.append(handles[0].cancelled()))
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    assert seen == [True]
    loop.close()
