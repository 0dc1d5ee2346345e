"""asyncio's own machinery on top of each implementation: timeout(),
TaskGroup, gather, wait, wait_for, shield, as_completed, the synchronization
primitives, queues, threads; and each implementation's Future and Task on the
other implementation's loop."""

import asyncio
import concurrent.futures
import threading

import pytest

from support import PY, close_loop


async def forever():
    await asyncio.sleep(3600)


async def value_after(value, delay=0):
    await asyncio.sleep(delay)
    return value


async def fail_after(exc, delay=0):
    await asyncio.sleep(delay)
    raise exc


@pytest.fixture
def run(kind, loop):
    """Run a coroutine function's coroutine on the kind's loop inside one of
    the kind's tasks, and close the loop at the end of the test."""

    def runner(coro):
        task = loop.create_task(coro)
        assert type(task) is kind.Task
        return loop.run_until_complete(task)

    yield runner
    close_loop(loop)


# -- timeouts ----------------------------------------------------------------------


def test_timeout_expires(run):
    async def main():
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01) as cm:
                await forever()
        assert cm.expired()
        assert asyncio.current_task().cancelling() == 0
        return "after timeout"

    assert run(main()) == "after timeout"


def test_timeout_not_reached(run):
    async def main():
        async with asyncio.timeout(3600) as cm:
            result = await value_after("fast")
        assert not cm.expired()
        return result

    assert run(main()) == "fast"


def test_timeout_reschedule_and_none(run):
    async def main():
        async with asyncio.timeout(None) as cm:
            assert cm.when() is None
            cm.reschedule(asyncio.get_running_loop().time() + 0.01)
            await forever()
        return "unreachable"

    with pytest.raises(TimeoutError):
        run(main())


def test_nested_timeouts_inner_expires(run):
    async def main():
        async with asyncio.timeout(3600) as outer:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.01):
                    await forever()
            result = await value_after("outer still running")
        assert not outer.expired()
        return result

    assert run(main()) == "outer still running"


def test_timeout_at(run):
    async def main():
        loop = asyncio.get_running_loop()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout_at(loop.time() + 0.01):
                await forever()
        return True

    assert run(main())


def test_timeout_with_external_cancel_is_not_timeout(kind, loop):
    async def main():
        async with asyncio.timeout(3600):
            await forever()

    task = loop.create_task(main())
    loop.call_soon(task.cancel)
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)
    loop.close()


def test_wait_for_timeout(run):
    async def main():
        inner_cancelled = []

        async def slow():
            try:
                await forever()
            except asyncio.CancelledError:
                inner_cancelled.append(True)
                raise

        with pytest.raises(TimeoutError):
            await asyncio.wait_for(slow(), 0.01)
        assert inner_cancelled == [True]
        assert await asyncio.wait_for(value_after(3), 3600) == 3
        assert await asyncio.wait_for(value_after(4), None) == 4
        return "ok"

    assert run(main()) == "ok"


def test_wait_for_zero_timeout(run):
    async def main():
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(forever(), 0)
        return True

    assert run(main())


def test_sleep_result(run):
    async def main():
        return await asyncio.sleep(0, "zero"), await asyncio.sleep(0.001, "small")

    assert run(main()) == ("zero", "small")


# -- TaskGroup, gather, wait, shield, as_completed -----------------------------------


def test_task_group(kind, run):
    async def main():
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(value_after(i, 0.001 * (3 - i))) for i in range(3)]
            assert all(type(t) is kind.Task for t in tasks)
        return [t.result() for t in tasks]

    assert run(main()) == [0, 1, 2]


def test_task_group_failure_cancels_siblings(run):
    async def main():
        sibling_cancelled = []

        async def sibling():
            try:
                await forever()
            except asyncio.CancelledError:
                sibling_cancelled.append(True)
                raise

        with pytest.raises(ExceptionGroup) as info:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(sibling())
                tg.create_task(fail_after(ValueError("in group"), 0.001))
        assert sibling_cancelled == [True]
        assert [type(e) for e in info.value.exceptions] == [ValueError]
        if PY >= (3, 13):
            # Earlier versions leave the parent's cancel request counted.
            assert asyncio.current_task().cancelling() == 0
        return "handled"

    assert run(main()) == "handled"


def test_task_group_inside_timeout(run):
    async def main():
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(forever())
                    tg.create_task(forever())
        return "timed out cleanly"

    assert run(main()) == "timed out cleanly"


def test_gather(run):
    async def main():
        return await asyncio.gather(value_after(1, 0.002), value_after(2), value_after(3, 0.001))

    assert run(main()) == [1, 2, 3]


def test_gather_return_exceptions(run):
    async def main():
        results = await asyncio.gather(value_after(1), fail_after(KeyError("k")), return_exceptions=True)
        assert results[0] == 1
        assert isinstance(results[1], KeyError)
        return True

    assert run(main())


def test_gather_propagates_first_exception(run):
    async def main():
        with pytest.raises(ValueError):
            await asyncio.gather(value_after(1), fail_after(ValueError()))
        return True

    assert run(main())


def test_cancelling_gather_cancels_children(run):
    async def main():
        children = [asyncio.ensure_future(forever()) for _ in range(3)]
        gathered = asyncio.gather(*children)
        await asyncio.sleep(0)
        gathered.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gathered
        return [c.cancelled() for c in children]

    assert run(main()) == [True, True, True]


def test_wait_first_completed(run):
    async def main():
        fast = asyncio.ensure_future(value_after("fast"))
        slow = asyncio.ensure_future(forever())
        done, pending = await asyncio.wait({fast, slow}, return_when=asyncio.FIRST_COMPLETED)
        assert done == {fast} and pending == {slow}
        slow.cancel()
        await asyncio.wait({slow})
        return slow.cancelled()

    assert run(main())


def test_wait_first_exception(run):
    async def main():
        bad = asyncio.ensure_future(fail_after(ValueError(), 0.001))
        slow = asyncio.ensure_future(forever())
        done, pending = await asyncio.wait({bad, slow}, return_when=asyncio.FIRST_EXCEPTION)
        assert done == {bad}
        bad.exception()
        slow.cancel()
        return True

    assert run(main())


def test_wait_timeout(run):
    async def main():
        task = asyncio.ensure_future(forever())
        done, pending = await asyncio.wait({task}, timeout=0.01)
        assert done == set() and pending == {task}
        task.cancel()
        return True

    assert run(main())


def test_wait_all_completed(run):
    async def main():
        tasks = [asyncio.ensure_future(value_after(i, 0.001 * i)) for i in range(4)]
        done, pending = await asyncio.wait(tasks)
        assert pending == set()
        return sorted(t.result() for t in done)

    assert run(main()) == [0, 1, 2, 3]


def test_shield(run):
    async def main():
        inner = asyncio.ensure_future(value_after("inner result", 0.01))
        outer = asyncio.shield(inner)
        await asyncio.sleep(0)
        outer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await outer
        assert not inner.cancelled()
        return await inner

    assert run(main()) == "inner result"


def test_shield_when_awaiting_task_is_cancelled(run):
    async def main():
        inner = asyncio.ensure_future(value_after("survived", 0.01))

        async def waiter():
            return await asyncio.shield(inner)

        w = asyncio.ensure_future(waiter())
        await asyncio.sleep(0)
        w.cancel()
        with pytest.raises(asyncio.CancelledError):
            await w
        return await inner

    assert run(main()) == "survived"


def test_as_completed_order(run):
    async def main():
        coros = [value_after("slow", 0.02), value_after("fast", 0), value_after("medium", 0.01)]
        return [await f for f in asyncio.as_completed(coros)]

    assert run(main()) == ["fast", "medium", "slow"]


def test_as_completed_timeout(run):
    async def main():
        tasks = [asyncio.ensure_future(forever())]
        with pytest.raises(TimeoutError):
            for f in asyncio.as_completed(tasks, timeout=0.01):
                await f
        tasks[0].cancel()
        return True

    assert run(main())


# -- synchronization primitives ----------------------------------------------------


def test_lock(run):
    async def main():
        lock = asyncio.Lock()
        order = []

        async def worker(tag):
            async with lock:
                order.append(f"{tag} in")
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                order.append(f"{tag} out")

        await asyncio.gather(worker("a"), worker("b"), worker("c"))
        return order

    assert run(main()) == ["a in", "a out", "b in", "b out", "c in", "c out"]


def test_lock_waiter_cancelled(run):
    async def main():
        lock = asyncio.Lock()
        await lock.acquire()
        waiter = asyncio.ensure_future(lock.acquire())
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.sleep(0)
        lock.release()
        assert not lock.locked()
        async with lock:
            return waiter.cancelled()

    assert run(main())


def test_event(run):
    async def main():
        event = asyncio.Event()
        seen = []

        async def waiter(tag):
            await event.wait()
            seen.append(tag)

        tasks = [asyncio.ensure_future(waiter(i)) for i in range(3)]
        await asyncio.sleep(0)
        assert seen == []
        event.set()
        await asyncio.gather(*tasks)
        event.clear()
        assert not event.is_set()
        return sorted(seen)

    assert run(main()) == [0, 1, 2]


def test_condition(run):
    async def main():
        cond = asyncio.Condition()
        items = []
        consumed = []

        async def consumer():
            async with cond:
                await cond.wait_for(lambda: items)
                consumed.append(items.pop())

        tasks = [asyncio.ensure_future(consumer()) for _ in range(2)]
        await asyncio.sleep(0)
        for i in range(2):
            async with cond:
                items.append(i)
                cond.notify()
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
        return sorted(consumed)

    assert run(main()) == [0, 1]


def test_semaphore_limits_concurrency(run):
    async def main():
        sem = asyncio.Semaphore(2)
        active = 0
        peak = 0

        async def worker():
            nonlocal active, peak
            async with sem:
                active += 1
                peak = max(peak, active)
                await asyncio.sleep(0.001)
                active -= 1

        await asyncio.gather(*(worker() for _ in range(6)))
        return peak

    assert run(main()) == 2


def test_bounded_semaphore_over_release(run):
    async def main():
        sem = asyncio.BoundedSemaphore(1)
        with pytest.raises(ValueError):
            sem.release()
        return True

    assert run(main())


def test_barrier(run):
    async def main():
        barrier = asyncio.Barrier(3)
        order = []

        async def party(i):
            order.append(f"arrive {i}")
            await barrier.wait()
            order.append(f"leave {i}")

        await asyncio.gather(*(party(i) for i in range(3)))
        return order

    order = run(main())
    assert order[:3] == ["arrive 0", "arrive 1", "arrive 2"]
    assert sorted(order[3:]) == ["leave 0", "leave 1", "leave 2"]


def test_queue_producer_consumer(run):
    async def main():
        queue = asyncio.Queue(maxsize=2)
        received = []

        async def producer():
            for i in range(10):
                await queue.put(i)
            await queue.put(None)

        async def consumer():
            while (item := await queue.get()) is not None:
                received.append(item)
                queue.task_done()
            queue.task_done()

        await asyncio.gather(producer(), consumer())
        await queue.join()
        return received

    assert run(main()) == list(range(10))


def test_queue_nowait_and_priority(run):
    async def main():
        queue = asyncio.Queue()
        with pytest.raises(asyncio.QueueEmpty):
            queue.get_nowait()
        bounded = asyncio.Queue(1)
        bounded.put_nowait(1)
        with pytest.raises(asyncio.QueueFull):
            bounded.put_nowait(2)
        prio = asyncio.PriorityQueue()
        for item in (3, 1, 2):
            prio.put_nowait(item)
        lifo = asyncio.LifoQueue()
        for item in (1, 2, 3):
            lifo.put_nowait(item)
        return [prio.get_nowait() for _ in range(3)], [lifo.get_nowait() for _ in range(3)]

    assert run(main()) == ([1, 2, 3], [3, 2, 1])


def test_queue_get_cancelled(run):
    async def main():
        queue = asyncio.Queue()
        getter = asyncio.ensure_future(queue.get())
        await asyncio.sleep(0)
        getter.cancel()
        await asyncio.sleep(0)
        queue.put_nowait("kept")
        return getter.cancelled(), queue.get_nowait()

    assert run(main()) == (True, "kept")


# -- threads and foreign futures -----------------------------------------------------


def test_run_coroutine_threadsafe(kind, loop):
    results = []

    async def remote(x):
        await asyncio.sleep(0)
        return x * 2, type(asyncio.current_task())

    def worker():
        cf = asyncio.run_coroutine_threadsafe(remote(21), loop)
        results.append(cf.result(timeout=30))

    async def main():
        thread = threading.Thread(target=worker)
        thread.start()
        while thread.is_alive():
            await asyncio.sleep(0.001)
        thread.join()

    loop.run_until_complete(main())
    assert results == [(42, kind.Task)]
    close_loop(loop)


def test_run_coroutine_threadsafe_exception_and_cancel(loop):
    outcome = {}

    def worker():
        cf = asyncio.run_coroutine_threadsafe(fail_after(ValueError("remote")), loop)
        try:
            cf.result(timeout=30)
        except ValueError as exc:
            outcome["error"] = str(exc)
        cf2 = asyncio.run_coroutine_threadsafe(forever(), loop)
        cf2.cancel()
        try:
            cf2.result(timeout=30)
        except concurrent.futures.CancelledError:
            outcome["cancelled"] = True

    async def main():
        thread = threading.Thread(target=worker)
        thread.start()
        while thread.is_alive():
            await asyncio.sleep(0.001)
        # Let the cancellation reach the coroutine's task.
        await asyncio.sleep(0)

    loop.run_until_complete(main())
    assert outcome == {"error": "remote", "cancelled": True}
    close_loop(loop)


def test_wrap_future(kind, run):
    async def main():
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            cf = pool.submit(pow, 2, 10)
            wrapped = asyncio.wrap_future(cf)
            assert type(wrapped) is kind.Future
            return await wrapped

    assert run(main()) == 1024


def test_await_concurrent_future_via_wrap_future_exception(run):
    def fail():
        raise KeyError("from pool")

    async def main():
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            with pytest.raises(KeyError):
                await asyncio.wrap_future(pool.submit(fail))
        return True

    assert run(main())


def test_stock_future_awaited_inside_task(kind, loop):
    # A future that is not the loop's own type (here asyncio's pure Python
    # Future) is awaited through the generic _asyncio_future_blocking protocol.
    py_future_cls = asyncio.futures._PyFuture

    async def main():
        fut = py_future_cls(loop=loop)
        loop.call_soon(fut.set_result, "foreign result")
        return await fut

    assert loop.run_until_complete(loop.create_task(main())) == "foreign result"
    loop.close()


def test_to_thread(run):
    async def main():
        return await asyncio.to_thread(lambda: threading.current_thread() is threading.main_thread())

    assert run(main()) is False


def test_staggered_start(run):
    from asyncio import staggered

    async def attempt(i):
        if i == 0:
            await asyncio.sleep(0.01)
            raise OSError("first fails")
        return i

    async def main():
        winner, index, exceptions = await staggered.staggered_race(
            [lambda i=i: attempt(i) for i in range(2)], delay=0.001
        )
        return winner, index

    assert run(main()) == (1, 1)


# -- each implementation's types on the other's loop -------------------------------


def test_future_on_foreign_loop(pair):
    loop_kind, types_kind = pair
    loop = loop_kind.new_loop()
    fut = types_kind.Future(loop=loop)
    assert fut.get_loop() is loop
    calls = []
    fut.add_done_callback(calls.append)
    loop.call_soon(fut.set_result, "value")
    assert loop.run_until_complete(fut) == "value"
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert calls == [fut]
    loop.close()


def test_task_on_foreign_loop(pair):
    loop_kind, types_kind = pair
    loop = loop_kind.new_loop()

    async def coro():
        current = asyncio.current_task()
        assert current in asyncio.all_tasks()
        await asyncio.sleep(0)
        await asyncio.sleep(0.001)
        return current

    task = types_kind.Task(coro(), loop=loop)
    assert task in asyncio.all_tasks(loop)
    assert loop.run_until_complete(task) is task
    assert type(task) is types_kind.Task
    assert task not in asyncio.all_tasks(loop)
    loop.close()


def test_foreign_task_factory_with_asyncio_machinery(pair):
    loop_kind, types_kind = pair
    loop = loop_kind.new_loop()
    loop.set_task_factory(lambda lp, coro, **kw: types_kind.Task(coro, loop=lp, **kw))

    async def main():
        assert type(asyncio.current_task()) is types_kind.Task
        results = await asyncio.gather(value_after(1), value_after(2, 0.001))
        async with asyncio.TaskGroup() as tg:
            t = tg.create_task(value_after(3))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await forever()
        queue = asyncio.Queue()
        loop.call_soon(queue.put_nowait, 4)
        fut = types_kind.Future(loop=loop)
        loop.call_later(0.001, fut.set_result, 5)
        return results + [t.result(), await queue.get(), await fut]

    assert loop.run_until_complete(main()) == [1, 2, 3, 4, 5]
    close_loop(loop)


def test_foreign_task_cancel_and_awaiting_the_other_kinds_future(pair):
    loop_kind, types_kind = pair
    loop = loop_kind.new_loop()
    # The loop's own future type, awaited by the other implementation's task.
    native = loop.create_future()

    async def coro():
        try:
            await native
        except asyncio.CancelledError as exc:
            return exc.args

    task = types_kind.Task(coro(), loop=loop)
    loop.call_soon(task.cancel, "cross")
    assert loop.run_until_complete(task) == ("cross",)
    assert native.cancelled()
    loop.close()


@pytest.mark.skipif(PY < (3, 12), reason="eager tasks are new in 3.12")
def test_foreign_eager_task(pair):
    loop_kind, types_kind = pair
    loop = loop_kind.new_loop()

    async def main():
        t = types_kind.Task(value_after("eager"), loop=loop, eager_start=True)
        return await t

    assert loop.run_until_complete(main()) == "eager"
    loop.close()
