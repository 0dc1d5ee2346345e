"""Resident memory per object the loop's users keep: futures, tasks, idle
connections.

    python -m bench.worker rss NAME --loop LOOP

Each workload reads the process's resident set size (VmRSS) after a warm-up
and a garbage collection, makes COUNT objects and keeps them, collects
again and reads VmRSS once more; the figure is the difference divided by
COUNT.  Resident memory is what the machine pays, wherever it was
allocated: the interpreter's allocator, the loop's own C structures, libuv's
(which tracemalloc does not see), the fd table.  The kernel's socket
buffers are not in it.

- ``futures``: 100,000 ``loop.create_future()``, pending (and
  ``sys.getsizeof()`` of one).
- ``tasks``: 100,000 tasks, each suspended in ``await`` on one shared future
  (and ``sys.getsizeof()`` of one).
- ``idle_conns``: 10,000 accepted TCP connections of a ``create_server()``
  with a Protocol that keeps its transport (the client ends are held by a
  helper process).
- ``idle_streams``: 10,000 accepted connections of ``asyncio.start_server()``,
  each handler task waiting in ``reader.read()``: transport, protocol,
  StreamReader, StreamWriter, task and coroutine.
"""

import asyncio
import gc
import sys

from .scaling import IdleServer


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def _settle():
    for _ in range(5):
        await asyncio.sleep(0)
    gc.collect()


async def futures(count):
    loop = asyncio.get_running_loop()
    warm = [loop.create_future() for _ in range(1000)]
    del warm
    await _settle()
    before = rss_bytes()
    keep = [loop.create_future() for _ in range(count)]
    await _settle()
    after = rss_bytes()
    size = sys.getsizeof(keep[0])
    for f in keep:
        f.cancel()
    return before, after, size


async def tasks(count):
    loop = asyncio.get_running_loop()
    gate = loop.create_future()

    async def waiter():
        await gate

    warm = [loop.create_task(waiter()) for _ in range(1000)]
    await _settle()
    before_gate = gate
    gate = loop.create_future()
    before_gate.set_result(None)
    await asyncio.gather(*warm)
    del warm
    await _settle()
    before = rss_bytes()
    keep = [loop.create_task(waiter()) for _ in range(count)]
    await _settle()         # every task has started and is suspended
    after = rss_bytes()
    size = sys.getsizeof(keep[0])
    gate.set_result(None)
    await asyncio.gather(*keep)
    return before, after, size


async def _idle(kind, count):
    # A first, smaller batch warms the accept path and sizes what grows
    # once (the fd table, the loop's buffers); it stays open.
    warm = IdleServer(kind)
    await warm.start(200)
    await _settle()
    before = rss_bytes()
    server = IdleServer(kind)
    await server.start(count)
    await _settle()
    after = rss_bytes()
    await server.stop()
    await warm.stop()
    return before, after


async def idle_conns(count):
    return await _idle("protocol", count)


async def idle_streams(count):
    return await _idle("streams", count)


async def breakdown(kind, count, top=12):
    """Where the memory of idle connections goes, as tracemalloc sees it:
    (bytes, objects) per connection by the line that allocated them, most
    first.  tracemalloc sees the interpreter's allocator (every Python
    object, turboloop's C objects included) but not plain malloc (libuv's
    handles, the loop's fd table and ready queue)."""
    import linecache
    import tracemalloc
    warm = IdleServer(kind)
    await warm.start(200)
    await _settle()
    tracemalloc.start(1)
    before = tracemalloc.take_snapshot()
    server = IdleServer(kind)
    await server.start(count)
    await _settle()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    await server.stop()
    await warm.stop()
    rows = []
    for stat in after.compare_to(before, "lineno"):
        if stat.size_diff <= 0:
            continue
        frame = stat.traceback[0]
        where = f"{_short(frame.filename)}:{frame.lineno}"
        code = linecache.getline(frame.filename, frame.lineno).strip()
        rows.append((where, code, stat.size_diff / count, stat.count_diff / count))
    rows.sort(key=lambda r: -r[2])
    total = sum(r[2] for r in rows)
    return {"total": total, "rows": rows[:top]}


def _short(path):
    for marker in ("/asyncio/", "/turboloop/", "/bench/"):
        if marker in path:
            return marker.strip("/") + "/" + path.split(marker, 1)[1]
    return path.rsplit("/", 1)[-1]


# name -> (coroutine function, count, what one item is)
WORKLOADS = {
    "futures": (futures, 100_000, "a pending Future"),
    "tasks": (tasks, 100_000, "a Task suspended in await"),
    "idle_conns": (idle_conns, 10_000, "an idle server-side TCP connection, Protocol"),
    "idle_streams": (idle_streams, 10_000,
                     "an idle server-side TCP connection, streams handler waiting in read()"),
}
