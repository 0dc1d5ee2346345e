"""A program to profile: two CPU-hungry tasks, one twice as hungry as the
other, a task doing network I/O, and a callback that blocks the loop for
50 ms.  docs/profiling.md runs it:

    python -m turboloop --profile=trace.json examples/profile_demo.py

With --truth FILE it also writes the wall-clock time each part spent
running, measured around every send() into the tasks' coroutines (so the
tasks' coroutine is then `timed`), which the profiler's test compares with
the report.  Runs on plain asyncio too (python examples/profile_demo.py).
"""

import asyncio
import json
import sys
import time

ROUNDS = 40                 # steps of each CPU-hungry task
UNIT = 30_000               # loop iterations in one unit of work

measured = {"light": 0.0, "heavy": 0.0, "echo-client": 0.0, "block_loop": 0.0}
TRUTH = "--truth" in sys.argv


def crunch(units):
    x = 0
    for i in range(units * UNIT):
        x += i * i
    return x


async def hungry(units):
    for _ in range(ROUNDS):
        crunch(units)
        await asyncio.sleep(0.002)


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def echo_client(port, stop):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while not stop.is_set():
        writer.write(b"x" * 1024)
        await reader.readexactly(1024)
        await asyncio.sleep(0.001)
    writer.close()
    await writer.wait_closed()


def block_loop():
    t0 = time.perf_counter()
    time.sleep(0.05)        # a blocking call: the whole loop waits
    measured["block_loop"] += time.perf_counter() - t0


class Timed:
    """Awaits a coroutine, adding the time of each send() into it (each of
    its task's steps, minus the task's own bookkeeping) to measured[name]."""

    def __init__(self, name, coro):
        self.name, self.coro = name, coro

    def __await__(self):
        value, exc = None, None
        while True:
            t0 = time.perf_counter()
            try:
                fut = self.coro.throw(exc) if exc else self.coro.send(value)
            except StopIteration as stop:
                measured[self.name] += time.perf_counter() - t0
                return stop.value
            measured[self.name] += time.perf_counter() - t0
            try:
                value, exc = (yield fut), None
            except BaseException as e:      # noqa: BLE001 - passed on
                value, exc = None, e


async def timed(name, coro):
    return await Timed(name, coro)


def measured_if_asked(name, coro):
    return timed(name, coro) if TRUTH else coro


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    client = asyncio.create_task(
        measured_if_asked("echo-client", echo_client(port, stop)), name="echo-client")
    loop.call_later(0.1, block_loop)
    light = asyncio.create_task(measured_if_asked("light", hungry(1)), name="light")
    heavy = asyncio.create_task(measured_if_asked("heavy", hungry(2)), name="heavy")
    await asyncio.gather(light, heavy)
    stop.set()
    await client
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())
    if TRUTH:
        with open(sys.argv[sys.argv.index("--truth") + 1], "w") as f:
            json.dump(measured, f)
