"""Micro workloads: each one drives a single kind of event-loop operation.

Every workload is a coroutine function taking N, the number of operations to
perform, and returning how many it performed (rounding may change it a
little).  The runner divides the elapsed time by that count, so every result
is a cost per operation.  What one operation is, for each workload, is in
``WORKLOADS`` and in bench/README.md.
"""

import asyncio
import threading


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
}
