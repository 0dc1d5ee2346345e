"""Child-process workloads: spawning and waiting, and a pipe's throughput.

Each is a coroutine function taking N, the number of operations, and
returning how many it performed, like the micro workloads; the worker
measures the benchmark process's own wall-clock and CPU time around it
(the children's CPU time is theirs, not the loop's).
"""

import asyncio

CONCURRENCY = 200
CHUNK = 256 * 1024
MIB = 1 << 20


async def spawn_true(n):
    # n children running `true`, at most CONCURRENCY alive at once; each is
    # spawned with asyncio.create_subprocess_exec() and waited for.
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one():
        async with sem:
            proc = await asyncio.create_subprocess_exec("true")
            if await proc.wait() != 0:
                raise RuntimeError("true failed")

    await asyncio.gather(*(one() for _ in range(n)))
    return n


async def cat_pipe(n):
    # n MiB through `cat`: written to its stdin in 256 KiB chunks with
    # drain(), read back from its stdout with read(1 MiB), concurrently.
    proc = await asyncio.create_subprocess_exec(
        "cat", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    total = n * MIB
    chunk = b"x" * CHUNK

    async def feed():
        left = total
        while left > 0:
            proc.stdin.write(chunk)
            await proc.stdin.drain()
            left -= CHUNK
        proc.stdin.close()

    feeder = asyncio.ensure_future(feed())
    got = 0
    while True:
        data = await proc.stdout.read(MIB)
        if not data:
            break
        got += len(data)
    await feeder
    if await proc.wait() != 0 or got != total:
        raise RuntimeError(f"cat returned {proc.returncode}, {got} of {total} bytes")
    return n


# name: (coroutine function, default N, what one operation is)
WORKLOADS = {
    "spawn_true": (spawn_true, 1000,
                   "one `true` child spawned with create_subprocess_exec() and waited "
                   f"for, {CONCURRENCY} at a time"),
    "cat_pipe": (cat_pipe, 1024,
                 "one MiB through `cat` (written to its stdin with drain(), read from "
                 "its stdout), 1 GiB in all"),
}
