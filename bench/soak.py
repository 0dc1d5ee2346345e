"""Soak test: a loop under steady mixed load for a long time, with its
memory, file descriptors and references sampled; flat is a pass.

    python -m bench.soak [--minutes N] [--loop turboloop|asyncio] [--interval S]

The load, all at once on one loop:
  * a TCP echo server and --clients clients doing request/response with
    messages of 1 byte to 64 KiB, half of them through streams
    (asyncio.open_connection), half through a Protocol; every client
    reconnects after a few hundred messages, so connections come and go;
  * timers: tasks sleeping random short times, and call_later() handles
    made and cancelled in bulk;
  * tasks: batches created, gathered, cancelled and timed out
    (asyncio.wait_for, asyncio.timeout), some failing;
  * thread-safe calls: --threads threads calling call_soon_threadsafe()
    without pause.

Every --interval seconds it prints the process's resident memory, open
file descriptors, gc-tracked objects, the total reference count (debug
interpreters) and how much work was done.  The first quarter of the run is
warm-up; after it, the samples must be flat: resident memory may not grow
by more than --rss-slack MiB between the first and the last measured
quarter, the fd count must come back to its level, and gc objects and the
reference count may not grow steadily (growth in every measured quarter).
Exit status 1 if any is not flat.
"""

import argparse
import asyncio
import gc
import os
import random
import socket
import sys
import threading
import time


def _rss_mib():
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


def _fds():
    return len(os.listdir("/proc/self/fd"))


class Counters:
    def __init__(self):
        self.messages = 0
        self.connections = 0
        self.timers = 0
        self.tasks = 0
        self.threadsafe = 0


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class ClientProtocol(asyncio.Protocol):
    def __init__(self, loop):
        self.loop = loop
        self.waiter = None
        self.want = 0
        self.got = 0
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.got += len(data)
        if self.waiter is not None and self.got >= self.want and not self.waiter.done():
            self.waiter.set_result(None)

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(None)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("lost"))

    async def request(self, data):
        self.want, self.got = len(data), 0
        self.waiter = self.loop.create_future()
        self.transport.write(data)
        await self.waiter


SIZES = [1, 10, 100, 1000, 4096, 16384, 65536]


async def stream_client(port, stop, counters):
    rng = random.Random()
    while not stop.is_set():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        counters.connections += 1
        for _ in range(rng.randrange(50, 400)):
            if stop.is_set():
                break
            data = os.urandom(rng.choice(SIZES))
            writer.write(data)
            await writer.drain()
            echoed = await reader.readexactly(len(data))
            assert echoed == data
            counters.messages += 1
        writer.close()
        await writer.wait_closed()


async def protocol_client(port, stop, counters):
    loop = asyncio.get_running_loop()
    rng = random.Random()
    while not stop.is_set():
        transport, proto = await loop.create_connection(lambda: ClientProtocol(loop), "127.0.0.1", port)
        counters.connections += 1
        for _ in range(rng.randrange(50, 400)):
            if stop.is_set():
                break
            await proto.request(b"x" * rng.choice(SIZES))
            counters.messages += 1
        transport.close()
        await proto.lost


async def timers(stop, counters):
    loop = asyncio.get_running_loop()
    rng = random.Random()
    while not stop.is_set():
        handles = [loop.call_later(rng.random(), counters.__setattr__, "timers", counters.timers + 1)
                   for _ in range(200)]
        await asyncio.sleep(rng.random() / 50)
        for h in handles[::2]:
            h.cancel()
        await asyncio.gather(*(asyncio.sleep(rng.random() / 100) for _ in range(50)))
        counters.timers += 50


async def tasks(stop, counters):
    rng = random.Random()

    async def work(i):
        await asyncio.sleep(0)
        if i % 7 == 0:
            raise ValueError(i)
        if i % 11 == 0:
            await asyncio.sleep(10)
        return i

    while not stop.is_set():
        batch = [asyncio.ensure_future(work(i)) for i in range(rng.randrange(10, 300))]
        await asyncio.sleep(0)
        for t in batch[::13]:
            t.cancel()
        try:
            await asyncio.wait_for(asyncio.gather(*batch, return_exceptions=True), 0.05)
        except TimeoutError:
            pass
        try:
            async with asyncio.timeout(0.001):
                await asyncio.sleep(1)
        except TimeoutError:
            pass
        async with asyncio.TaskGroup() as tg:
            for i in range(10):
                tg.create_task(asyncio.sleep(0))
        counters.tasks += len(batch) + 11


def threadsafe_caller(loop, stop, counters):
    def bump():
        counters.threadsafe += 1

    while not stop.is_set():
        try:
            loop.call_soon_threadsafe(bump)
        except RuntimeError:
            return
        time.sleep(0.0001)


def sample():
    gc.collect()
    return {
        "rss": _rss_mib(),
        "fds": _fds(),
        "objects": len(gc.get_objects()),
        "refs": sys.gettotalrefcount() if hasattr(sys, "gettotalrefcount") else None,
    }


async def main_async(args):
    loop = asyncio.get_running_loop()
    counters = Counters()
    stop = threading.Event()
    server = await loop.create_server(EchoProtocol, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    jobs = []
    for i in range(args.clients):
        jobs.append(asyncio.ensure_future((stream_client if i % 2 else protocol_client)(port, stop, counters)))
    jobs.append(asyncio.ensure_future(timers(stop, counters)))
    jobs.append(asyncio.ensure_future(tasks(stop, counters)))
    threads = [threading.Thread(target=threadsafe_caller, args=(loop, stop, counters), daemon=True)
               for _ in range(args.threads)]
    for t in threads:
        t.start()

    samples = []
    start = time.monotonic()
    duration = args.minutes * 60
    print(f"{'t (s)':>6} {'RSS MiB':>8} {'fds':>5} {'gc objects':>10} {'total refs':>11} "
          f"{'messages':>9} {'conns':>6} {'timers':>8} {'tasks':>8} {'threadsafe':>10}")
    while time.monotonic() - start < duration:
        await asyncio.sleep(args.interval)
        s = sample()
        s["t"] = time.monotonic() - start
        samples.append(s)
        refs = "-" if s["refs"] is None else str(s["refs"])
        print(f"{s['t']:6.0f} {s['rss']:8.1f} {s['fds']:5d} {s['objects']:10d} {refs:>11} "
              f"{counters.messages:9d} {counters.connections:6d} {counters.timers:8d} "
              f"{counters.tasks:8d} {counters.threadsafe:10d}")
        sys.stdout.flush()

    stop.set()
    for t in threads:
        t.join()
    await asyncio.wait(jobs, timeout=10)
    for j in jobs:
        j.cancel()
    await asyncio.gather(*jobs, return_exceptions=True)
    server.close()
    await server.wait_closed()
    return samples, counters


def verdict(samples, args):
    """Flat or not, per metric, over the samples after the warm-up."""
    measured = samples[len(samples) // 4:]
    if len(measured) < 4:
        return ["too few samples to judge; run longer"], False
    q = len(measured) // 4
    quarters = [measured[i * q:(i + 1) * q] for i in range(4)]

    def mean(key, part):
        return sum(s[key] for s in part) / len(part)

    lines, ok = [], True
    rss_growth = mean("rss", quarters[3]) - mean("rss", quarters[0])
    flat = rss_growth <= args.rss_slack
    ok &= flat
    lines.append(f"RSS: {mean('rss', quarters[0]):.1f} -> {mean('rss', quarters[3]):.1f} MiB "
                 f"(growth {rss_growth:+.1f}, allowed {args.rss_slack}): {'flat' if flat else 'GROWING'}")
    fds_first, fds_last = min(s["fds"] for s in quarters[0]), min(s["fds"] for s in quarters[3])
    flat = fds_last <= fds_first
    ok &= flat
    lines.append(f"fds (lowest per quarter): {[min(s['fds'] for s in part) for part in quarters]}: "
                 f"{'flat' if flat else 'GROWING'}")
    for key in ("objects", "refs"):
        if measured[0][key] is None:
            continue
        means = [mean(key, part) for part in quarters]
        steady = all(b > a * 1.002 + 50 for a, b in zip(means, means[1:]))
        ok &= not steady
        lines.append(f"{key} (mean per quarter): {[round(m) for m in means]}: "
                     f"{'GROWING' if steady else 'flat'}")
    return lines, ok


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--loop", choices=["turboloop", "asyncio"], default="turboloop")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rss-slack", type=float, default=8.0, help="MiB of RSS growth allowed")
    args = parser.parse_args(argv)
    if args.loop == "turboloop":
        try:
            import turboloop
        except ImportError:
            sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python"))
            import turboloop
        factory = turboloop.new_event_loop
        where = os.path.dirname(turboloop.__file__)
    else:
        factory, where = asyncio.new_event_loop, os.path.dirname(asyncio.__file__)
    print(f"soak: {args.loop} ({where}), Python {sys.version.split()[0]}, {args.minutes} min, "
          f"{args.clients} clients, {args.threads} threads")
    with asyncio.Runner(loop_factory=factory) as runner:
        samples, counters = runner.run(main_async(args))
    lines, ok = verdict(samples, args)
    print("\n".join(lines))
    print(f"work: {counters.messages} messages, {counters.connections} connections, "
          f"{counters.timers} timers, {counters.tasks} tasks, {counters.threadsafe} thread-safe calls")
    print("PASS: flat" if ok else "FAIL: not flat")
    return 0 if ok else 1


if __name__ == "__main__":
    socket.setdefaulttimeout(None)
    sys.exit(main())
