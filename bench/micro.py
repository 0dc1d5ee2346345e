"""Micro workloads: each one drives a single kind of event-loop operation.

Every workload is a coroutine function taking N, the number of operations to
perform, and returning how many it performed (rounding may change it a
little).  The runner divides the elapsed time by that count, so every result
is a cost per operation.  What one operation is, for each workload, is in
``WORKLOADS`` and in bench/README.md.
"""

import asyncio
import threading
import time


class Clock:
    """Where the measured part of a workload starts.  The worker starts it
    before calling the workload; a workload with set-up to leave out of the
    figures (a heap of pending timers, idle connections) restarts it once
    that set-up is done."""

    def __init__(self):
        self.restart()

    def restart(self):
        self.wall0 = time.perf_counter_ns()
        self.cpu0 = time.process_time_ns()


CLOCK = Clock()


async def _noop():
    pass


async def call_soon_chain(n):
    # One callback scheduling the next: a single chain means each callback
    # is its own loop iteration, so this measures the cost of an iteration
    # (the zero-timeout poll included) plus one callback.
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    remaining = n

    def step():
        nonlocal remaining
        remaining -= 1
        if remaining:
            loop.call_soon(step)
        else:
            done.set_result(None)

    loop.call_soon(step)
    await done
    return n


async def call_soon_many(n):
    # A hundred interleaved chains keep a hundred callbacks ready at once, so
    # the per-iteration cost is shared and the callback dispatch dominates.
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    chains = 100
    per_chain = max(1, n // chains)
    remaining = chains * per_chain

    def step(left):
        nonlocal remaining
        remaining -= 1
        if left > 1:
            loop.call_soon(step, left - 1)
        elif remaining == 0:
            done.set_result(None)

    for _ in range(chains):
        loop.call_soon(step, per_chain)
    await done
    return chains * per_chain


async def sleep0(n):
    per_task = 200
    ntasks = max(1, n // per_task)

    async def worker():
        for _ in range(per_task):
            await asyncio.sleep(0)

    await asyncio.gather(*[worker() for _ in range(ntasks)])
    return ntasks * per_task


async def gather(n):
    await asyncio.gather(*[_noop() for _ in range(n)])
    return n


async def create_task(n):
    loop = asyncio.get_running_loop()
    for _ in range(n):
        await loop.create_task(_noop())
    return n


async def future_pingpong(n):
    # Two tasks hand a ball back and forth through futures: each hand-off is
    # one set_result, one done callback and one task wake-up.
    loop = asyncio.get_running_loop()
    rounds = max(1, n // 2)
    box = [loop.create_future(), loop.create_future()]

    async def player(me, other):
        for _ in range(rounds):
            await box[me]
            box[me] = loop.create_future()
            box[other].set_result(None)

    box[0].set_result(None)
    await asyncio.gather(player(0, 1), player(1, 0))
    return rounds * 2


async def timers(n):
    # Deadlines are spread over 10 ms so the heap sees many distinct values;
    # cancelling every other timer exercises lazy removal of cancelled
    # entries.  One operation is one call_later, fired or cancelled.
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    target = n // 2
    fired = 0

    def on_timer():
        nonlocal fired
        fired += 1
        if fired == target:
            done.set_result(None)

    handles = [loop.call_later((i % 100) * 1e-4, on_timer) for i in range(n)]
    for h in handles[::2]:
        h.cancel()
    if target:
        await done
    return n


async def queue(n):
    # maxsize=1 makes every put wait for the matching get, so each item costs
    # two task switches through the loop rather than a list append.
    q = asyncio.Queue(maxsize=1)

    async def producer():
        for i in range(n):
            await q.put(i)

    async def consumer():
        for _ in range(n):
            await q.get()

    await asyncio.gather(producer(), consumer())
    return n


async def threadsafe(n):
    # A second thread submits callbacks as fast as it can; the loop runs them.
    # Process CPU time includes the submitting thread.
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    count = 0

    def callback():
        nonlocal count
        count += 1
        if count == n:
            done.set_result(None)

    def submit():
        for _ in range(n):
            loop.call_soon_threadsafe(callback)

    thread = threading.Thread(target=submit)
    thread.start()
    await done
    thread.join()
    return n


async def wait_for(n):
    for _ in range(n):
        await asyncio.wait_for(_noop(), 10)
    return n


async def taskgroup(n):
    # A timeout scope around a TaskGroup fanning out to 100 children, the
    # structured-concurrency pattern of 3.11+.  One operation is one child.
    fan_out = 100
    rounds = max(1, n // fan_out)
    for _ in range(rounds):
        async with asyncio.timeout(10):
            async with asyncio.TaskGroup() as tg:
                for _ in range(fan_out):
                    tg.create_task(_noop())
    return rounds * fan_out


async def udp_pingpong(n):
    # Two datagram endpoints on loopback bounce one datagram back and forth:
    # each operation is one sendto() and one datagram_received() on each side.
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            self.transport.sendto(data, addr)

    class Client(asyncio.DatagramProtocol):
        count = 0

        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            self.count += 1
            if self.count == n:
                done.set_result(None)
            else:
                self.transport.sendto(data)

    server, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    client, _ = await loop.create_datagram_endpoint(
        Client, remote_addr=server.get_extra_info("sockname"))
    try:
        client.sendto(b"x" * 64)
        await done
    finally:
        client.close()
        server.close()
    return n


async def lock_contention(n):
    # 1,000 tasks take turns holding one asyncio.Lock across a suspension,
    # so every acquire but the first waits: one operation is one acquire
    # (a waiter future, a wake-up) and one release.
    lock = asyncio.Lock()
    ntasks = 1000
    per_task = max(1, n // ntasks)

    async def worker():
        for _ in range(per_task):
            async with lock:
                await asyncio.sleep(0)

    await asyncio.gather(*[worker() for _ in range(ntasks)])
    return ntasks * per_task


async def event_wakeup(n):
    # 1,000 tasks wait on an Event; it is set, they all wake and wait on the
    # next one.  One operation is one waiter woken.
    ntasks = 1000
    rounds = max(1, n // ntasks)
    events = [asyncio.Event() for _ in range(rounds)]

    async def waiter():
        for ev in events:
            await ev.wait()

    tasks = [asyncio.ensure_future(waiter()) for _ in range(ntasks)]
    for ev in events:
        await asyncio.sleep(0)      # the waiters reach ev.wait()
        ev.set()
    await asyncio.gather(*tasks)
    return ntasks * rounds


async def condition_notify(n):
    # 1,000 tasks wait on a Condition; notify_all() wakes them and each
    # takes the condition's lock in turn.  One operation is one waiter woken
    # and through the lock.
    ntasks = 1000
    rounds = max(1, n // ntasks)
    cond = asyncio.Condition()
    state = {"round": 0}

    async def waiter():
        for r in range(1, rounds + 1):
            async with cond:
                while state["round"] < r:
                    await cond.wait()

    tasks = [asyncio.ensure_future(waiter()) for _ in range(ntasks)]
    for r in range(1, rounds + 1):
        # Every waiter is back in cond.wait() once the lock is free again
        # and a pass of the loop has run.
        await asyncio.sleep(0)
        async with cond:
            state["round"] = r
            cond.notify_all()
    await asyncio.gather(*tasks)
    return ntasks * rounds


def _never():
    pass


async def timer_rearm(n):
    # Keep-alive timers as servers keep them: 10,000 connections each with a
    # timeout a minute away, and every request on a connection cancels its
    # timer and arms a new one.  One operation is one cancel() and one
    # call_later(); the loop runs an iteration every 100 operations, so
    # cancelled timers are dropped as they would be in a server.
    loop = asyncio.get_running_loop()
    conns = 10_000
    handles = [loop.call_later(60, _never) for _ in range(conns)]
    CLOCK.restart()
    for i in range(n):
        j = i % conns
        handles[j].cancel()
        handles[j] = loop.call_later(60, _never)
        if i % 100 == 99:
            await asyncio.sleep(0)
    for h in handles:
        h.cancel()
    return n


async def timeout_fast(n):
    # asyncio.timeout() around an await that finishes at once: a timer armed
    # and cancelled, and the task's cancellation bookkeeping, per operation.
    for _ in range(n):
        async with asyncio.timeout(10):
            await asyncio.sleep(0)
    return n


async def taskgroup_100k(n):
    # One TaskGroup with all N children (100,000 by default) at once.
    async with asyncio.TaskGroup() as tg:
        for _ in range(n):
            tg.create_task(_noop())
    return n


async def executor_roundtrip(n):
    # await loop.run_in_executor(None, f) for a function that returns at
    # once: the hand-off to the default executor's thread and back through
    # call_soon_threadsafe.  CPU time includes the worker thread.
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, int)   # start the executor's thread
    CLOCK.restart()
    for _ in range(n):
        await loop.run_in_executor(None, int)
    return n


async def threadsafe_4threads(n):
    # Four threads submit callbacks with call_soon_threadsafe() at once.
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    nthreads = 4
    per_thread = max(1, n // nthreads)
    total = per_thread * nthreads
    count = 0

    def callback():
        nonlocal count
        count += 1
        if count == total:
            done.set_result(None)

    def submit():
        for _ in range(per_thread):
            loop.call_soon_threadsafe(callback)

    threads = [threading.Thread(target=submit) for _ in range(nthreads)]
    for t in threads:
        t.start()
    await done
    for t in threads:
        t.join()
    return total


# name -> (coroutine function, default N, what one operation is)
WORKLOADS = {
    "call_soon_chain": (call_soon_chain, 200_000,
                        "one callback in a single call_soon chain (one loop iteration each)"),
    "call_soon_many": (call_soon_many, 500_000,
                       "one callback, 100 chains interleaved"),
    "sleep0": (sleep0, 200_000,
               "one `await asyncio.sleep(0)`, 1,000 tasks x 200"),
    "gather": (gather, 100_000,
               "one trivial coroutine in a single gather()"),
    "create_task": (create_task, 100_000,
                    "create a task for a trivial coroutine and await it"),
    "future_pingpong": (future_pingpong, 200_000,
                        "one hand-off of a future between two tasks"),
    "timers": (timers, 100_000,
               "one call_later (half cancelled, half fired)"),
    "queue": (queue, 50_000,
              "one item through Queue(maxsize=1), producer and consumer tasks"),
    "threadsafe": (threadsafe, 100_000,
                   "one call_soon_threadsafe from a second thread"),
    "wait_for": (wait_for, 100_000,
                 "one wait_for(coroutine that returns at once, 10)"),
    "taskgroup": (taskgroup, 100_000,
                  "one child task of a TaskGroup (fan-out 100) in asyncio.timeout()"),
    "udp_pingpong": (udp_pingpong, 20_000,
                     "one round trip of a 64-byte datagram between two endpoints on loopback"),
    "lock_contention": (lock_contention, 100_000,
                        "one acquire and release of a Lock 1,000 tasks contend for"),
    "event_wakeup": (event_wakeup, 200_000,
                     "one of 1,000 tasks waiting on an Event woken by set()"),
    "condition_notify": (condition_notify, 100_000,
                         "one of 1,000 tasks waiting on a Condition woken by notify_all()"),
    "timer_rearm": (timer_rearm, 200_000,
                    "one keep-alive timer re-armed (cancel + call_later) among 10,000"),
    "timeout_fast": (timeout_fast, 100_000,
                     "one `async with asyncio.timeout(10): await asyncio.sleep(0)`"),
    "taskgroup_100k": (taskgroup_100k, 100_000,
                       "one child of a single TaskGroup of 100,000"),
    "executor_roundtrip": (executor_roundtrip, 20_000,
                           "one `await loop.run_in_executor(None, f)` round trip"),
    "threadsafe_4threads": (threadsafe_4threads, 100_000,
                            "one call_soon_threadsafe from one of 4 threads"),
}
