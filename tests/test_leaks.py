"""Creating, completing and cancelling 100k tasks, futures and handles
leaves the number of live objects flat.

Each workload runs once to warm caches and free lists, then in full; the
counts of gc-tracked objects and of allocated memory blocks after the full
run must match those after the warm-up within a small tolerance.  Allocated
blocks catch leaks of objects the gc does not track.  A leak of one object per
item would show up as 100k.
"""

import asyncio
import contextvars
import gc
import sys
import weakref

import pytest

N = 100_000
BATCH = 1000

# Room for noise that does not scale with N: interned strings, a dict that
# resized, the cached state of the loop and of asyncio's module globals.
MAX_GC_OBJECTS_GROWTH = 100
MAX_BLOCKS_GROWTH = 1000


async def _ok():
    await asyncio.sleep(0)
    return 1


async def _fail():
    await asyncio.sleep(0)
    raise ValueError("boom")


async def _tasks_and_futures(kind, n):
    loop = asyncio.get_running_loop()

    async def forever():
        await loop.create_future()

    for _ in range(0, n, BATCH):
        quarter = BATCH // 4
        tasks = [loop.create_task(_ok()) for _ in range(quarter)]
        tasks += [kind.Task(_fail(), loop=loop) for _ in range(quarter)]
        sleepers = [loop.create_task(forever()) for _ in range(quarter)]
        futs = [kind.Future(loop=loop) for _ in range(quarter)]
        await asyncio.sleep(0)
        for t in sleepers:
            t.cancel("stop")
        for i, f in enumerate(futs):
            f.add_done_callback(_done_callback)
            if i % 3 == 0:
                f.set_result(i)
            elif i % 3 == 1:
                f.set_exception(KeyError(i))
            else:
                f.cancel("cancelled")
        await asyncio.gather(*tasks, *sleepers, *futs, return_exceptions=True)


def _done_callback(fut):
    pass


async def _asyncio_machinery(kind, n):
    # timeout(), wait_for(), TaskGroup and Queue each build their own
    # futures and handles; run them on the kind's tasks.
    queue = asyncio.Queue()
    for _ in range(n // 10):
        async with asyncio.timeout(3600):
            await _ok()
        await asyncio.wait_for(_ok(), 3600)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(_ok())
        queue.put_nowait(1)
        await queue.get()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.sleep(3600), 0)


def _callbacks_and_timers(loop, n):
    def noop(*args):
        pass

    for _ in range(0, n, BATCH):
        handles = [loop.call_soon(noop, i) for i in range(BATCH // 4)]
        handles += [loop.call_later(0, noop, i) for i in range(BATCH // 4)]
        handles += [loop.call_at(loop.time() + 3600, noop) for _ in range(BATCH // 4)]
        handles += [loop.call_soon_threadsafe(noop) for _ in range(BATCH // 4)]
        for h in handles[::3]:
            h.cancel()
        for h in handles[BATCH // 2: 3 * BATCH // 4]:
            h.cancel()
        loop.call_soon(loop.stop)
        loop.run_forever()


def _measure():
    gc.collect()
    gc.collect()
    return len(gc.get_objects()), sys.getallocatedblocks()


def _check_flat(run_workload):
    run_workload(N // 20)
    objects_before, blocks_before = _measure()
    run_workload(N)
    objects_after, blocks_after = _measure()
    grown_objects = objects_after - objects_before
    grown_blocks = blocks_after - blocks_before
    assert grown_objects <= MAX_GC_OBJECTS_GROWTH, f"{grown_objects} more gc-tracked objects after {N} items"
    assert grown_blocks <= MAX_BLOCKS_GROWTH, f"{grown_blocks} more allocated blocks after {N} items"


def test_tasks_and_futures_do_not_leak(kind, loop):
    _check_flat(lambda n: loop.run_until_complete(_tasks_and_futures(kind, n)))
    loop.close()


def test_asyncio_machinery_does_not_leak(kind, loop):
    _check_flat(lambda n: loop.run_until_complete(_asyncio_machinery(kind, n)))
    loop.close()


def test_callbacks_and_timers_do_not_leak(kind, loop):
    _check_flat(lambda n: _callbacks_and_timers(loop, n))
    loop.close()


def test_loops_do_not_leak(kind):
    def make_loops(n):
        for _ in range(n // 1000):
            loop = kind.new_event_loop()
            loop.call_soon(loop.stop)
            loop.run_forever()
            loop.close()

    _check_flat(make_loops)


# -- reference cycles ------------------------------------------------------------
#
# Objects that hold each other through a handle's arguments, a future's
# callbacks or a task's coroutine are freed by the cycle collector: the C
# types must report those references (tp_traverse) and drop them (tp_clear).


class Holder:
    """Something a weak reference can watch."""


def _collected(ref):
    gc.collect()
    return ref() is None


def test_weak_references(kind, loop):
    fut = kind.Future(loop=loop)
    task = kind.Task(_ok(), loop=loop)
    handle = loop.call_soon(print)
    timer = loop.call_later(3600, print)
    refs = [weakref.ref(obj) for obj in (fut, task, handle, timer)]
    assert [r() for r in refs] == [fut, task, handle, timer]
    loop.run_until_complete(task)
    handle.cancel()
    timer.cancel()
    # A cancelled timer may stay in the loop's heap until an iteration
    # drops it.
    loop.call_soon(loop.stop)
    loop.run_forever()
    del fut, task, handle, timer
    gc.collect()
    assert [r() for r in refs] == [None] * 4
    loop.close()


def test_cycle_through_handle_arguments(kind, loop):
    holder = Holder()
    holder.handle = loop.call_later(3600, print, holder)
    ref = weakref.ref(holder)
    holder.handle.cancel()
    del holder
    assert _collected(ref)
    loop.close()


def test_cycle_through_pending_timer_is_kept_while_scheduled(kind, loop):
    holder = Holder()
    holder.handle = loop.call_later(0.001, id, holder)
    ref = weakref.ref(holder)
    del holder
    # The loop still owns the timer, so the argument must stay alive.
    gc.collect()
    assert ref() is not None
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert _collected(ref)
    loop.close()


def test_cycle_through_done_callback(kind, loop):
    fut = kind.Future(loop=loop)
    holder = Holder()
    holder.fut = fut
    fut.add_done_callback(lambda f, h=holder: None)
    ref = weakref.ref(holder)
    del fut, holder
    assert _collected(ref)
    loop.close()


def test_cycle_through_result_and_exception(kind, loop):
    fut = kind.Future(loop=loop)
    fut.set_result(fut)
    ref = weakref.ref(fut)
    del fut
    assert _collected(ref)

    fut = kind.Future(loop=loop)
    exc = ValueError()
    exc.fut = fut
    fut.set_exception(exc)
    fut.exception()
    ref = weakref.ref(fut)
    del fut, exc
    assert _collected(ref)
    loop.close()


def test_cycle_through_task_coroutine(kind, loop):
    holder = Holder()

    async def keeps(h):
        await asyncio.sleep(0)
        return h

    holder.task = kind.Task(keeps(holder), loop=loop)
    loop.run_until_complete(holder.task)
    ref = weakref.ref(holder)
    del holder
    assert _collected(ref)
    loop.close()


def test_cycle_through_task_context(kind, loop):
    var = contextvars.ContextVar("cycle")
    ctx = contextvars.copy_context()
    holder = Holder()
    ctx.run(var.set, holder)
    holder.task = kind.Task(_ok(), loop=loop, context=ctx)
    loop.run_until_complete(holder.task)
    ref = weakref.ref(holder)
    del holder, ctx
    assert _collected(ref)
    loop.close()
