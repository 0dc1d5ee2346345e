"""Leak check: create, complete and cancel many tasks and futures on a
turboloop loop, run child processes through their pipes and a pipe pair,
and check that nothing accumulates.

Run it directly (not collected by pytest):

    python tests/leakcheck.py [ROUNDS]

It compares the number of gc-tracked objects, and on a debug interpreter
(one with sys.gettotalrefcount, e.g. Debian's python3.X-dbg) the total
reference count, between a warm-up round and the last round.  Exit status 1
on growth.
"""

import asyncio
import gc
import os
import sys

import turboloop

N = 100_000
PROCS = 40


async def _work(n):
    loop = asyncio.get_running_loop()

    async def ok():
        await asyncio.sleep(0)
        return 1

    async def fail():
        await asyncio.sleep(0)
        raise ValueError("boom")

    async def forever():
        await loop.create_future()

    batch = 1000
    for start in range(0, n, batch):
        tasks = [loop.create_task(ok()) for _ in range(batch // 4)]
        tasks += [loop.create_task(fail()) for _ in range(batch // 4)]
        sleepers = [loop.create_task(forever()) for _ in range(batch // 4)]
        futs = [loop.create_future() for _ in range(batch // 4)]
        await asyncio.sleep(0)
        for t in sleepers:
            t.cancel("stop")
        for i, f in enumerate(futs):
            if i % 3 == 0:
                f.set_result(i)
            elif i % 3 == 1:
                f.set_exception(KeyError(i))
                f.exception()
            else:
                f.cancel()
        await asyncio.gather(*tasks, *sleepers, *futs, return_exceptions=True)
        await asyncio.wait_for(ok(), 1)
        async with asyncio.timeout(1):
            await ok()


async def _processes(n):
    # Children with all three pipes, one killed; a pipe pair both ways.
    loop = asyncio.get_running_loop()
    for i in range(n):
        proc = await asyncio.create_subprocess_exec(
            "cat", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        if i % 5 == 0:
            proc.kill()
        await proc.communicate(b"x" * 100_000)
    r, w = os.pipe()
    with os.fdopen(r, "rb", 0) as rf, os.fdopen(w, "wb", 0) as wf:
        reader = asyncio.StreamReader()
        rt, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), rf)
        wt, wp = await loop.connect_write_pipe(asyncio.Protocol, wf)
        wt.write(b"y" * 1_000_000)
        wt.close()
        assert len(await reader.read()) == 1_000_000
        rt.close()
        await asyncio.sleep(0)


def _round(n):
    loop = turboloop.new_event_loop()
    try:
        loop.run_until_complete(_work(n))
        # As many children in the warm-up round as in the others: caches
        # that child processes fill (subprocess, asyncio) settle there.
        loop.run_until_complete(_processes(PROCS))
    finally:
        loop.close()


def _measure():
    gc.collect()
    gc.collect()
    total = sys.gettotalrefcount() if hasattr(sys, "gettotalrefcount") else None
    return len(gc.get_objects()), total


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    _round(N // 10)                      # warm caches, freelists, imports
    objs0, refs0 = _measure()
    for _ in range(rounds):
        _round(N)
    objs1, refs1 = _measure()
    print(f"gc objects: {objs0} -> {objs1} ({objs1 - objs0:+d})")
    failed = objs1 - objs0 > 100
    if refs0 is not None:
        print(f"total refcount: {refs0} -> {refs1} ({refs1 - refs0:+d})")
        failed = failed or refs1 - refs0 > 1000
    print("leakcheck:", "FAILED" if failed else "ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
