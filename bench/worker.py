"""Entry point of the benchmark's child processes.

    python -m bench.worker micro NAME --loop LOOP [--ops N] [--warmup-ops N]
    python -m bench.worker proc NAME --loop LOOP [--ops N] [--warmup-ops N]
    python -m bench.worker echo-server --loop LOOP --mode MODE --transport tcp|unix [--path P]
    python -m bench.worker http-server --loop LOOP

Each child imports one event loop and does one thing, so a run never shares
allocator state, warmed caches or a crashed loop between measurements.  The
micro and proc modes print one JSON object on stdout.
"""

import argparse
import gc
import json
import os
import sys
import time

from . import loops, memory, micro, proc, scaling, servers

# Every timed workload the micro command runs, by name.
TIMED = {**micro.WORKLOADS, **scaling.WORKLOADS}

LOOP_UNAVAILABLE_EXIT = 4


async def _measure(fn, n, warmup_ops):
    if warmup_ops:
        # A short run first, so the adaptive interpreter has specialised the
        # hot code and the allocator has its arenas before timing starts.
        await fn(warmup_ops)
    gc.collect()
    # The workload may restart the clock after its set-up.
    micro.CLOCK.restart()
    ops = await fn(n)
    cpu1 = time.process_time_ns()
    wall1 = time.perf_counter_ns()
    return {"ops": ops, "wall_ns": wall1 - micro.CLOCK.wall0,
            "cpu_ns": cpu1 - micro.CLOCK.cpu0}


def _factory_or_exit(name):
    try:
        return loops.loop_factory(name)
    except Exception as exc:  # noqa: BLE001 - any import failure means n/a
        print(json.dumps({"unavailable": f"{type(exc).__name__}: {exc}"}), flush=True)
        sys.exit(LOOP_UNAVAILABLE_EXIT)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.worker")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("micro")
    p.add_argument("name", choices=sorted(TIMED))
    p.add_argument("--loop", required=True)
    p.add_argument("--ops", type=int)
    p.add_argument("--warmup-ops", type=int)
    p = sub.add_parser("proc")
    p.add_argument("name", choices=sorted(proc.WORKLOADS))
    p.add_argument("--loop", required=True)
    p.add_argument("--ops", type=int)
    p.add_argument("--warmup-ops", type=int)
    p = sub.add_parser("rss")
    p.add_argument("name", choices=sorted(memory.WORKLOADS))
    p.add_argument("--loop", required=True)
    p.add_argument("--count", type=int)
    p = sub.add_parser("rss-breakdown")
    p.add_argument("kind", choices=("protocol", "streams"))
    p.add_argument("--loop", required=True)
    p.add_argument("--count", type=int, default=5000)
    p = sub.add_parser("echo-server")
    p.add_argument("--loop", required=True)
    p.add_argument("--mode", required=True, choices=servers.MODES)
    p.add_argument("--transport", required=True, choices=("tcp", "unix"))
    p.add_argument("--path")
    p = sub.add_parser("http-server")
    p.add_argument("--loop", required=True)
    p = sub.add_parser("streams-http-server")
    p.add_argument("--loop", required=True)
    p = sub.add_parser("idle-server")
    p.add_argument("--loop", required=True)
    p.add_argument("--mode", required=True, choices=("protocol", "streams"))
    args = parser.parse_args(argv)

    factory = _factory_or_exit(args.loop)
    import asyncio

    if args.cmd in ("micro", "proc"):
        table = TIMED if args.cmd == "micro" else proc.WORKLOADS
        fn, default_ops, _ = table[args.name]
        n = args.ops or default_ops
        warmup = args.warmup_ops if args.warmup_ops is not None else max(1, n // 10)
        with asyncio.Runner(loop_factory=factory) as runner:
            result = runner.run(_measure(fn, n, warmup))
        print(json.dumps(result), flush=True)
        return 0

    if args.cmd == "rss":
        fn, default_count, _ = memory.WORKLOADS[args.name]
        count = args.count or default_count
        with asyncio.Runner(loop_factory=factory) as runner:
            before, after, *size = runner.run(fn(count))
        result = {"count": count, "rss_before": before, "rss_after": after,
                  "bytes_per_item": (after - before) / count}
        if size:
            result["sizeof"] = size[0]
        print(json.dumps(result), flush=True)
        os._exit(0)

    if args.cmd == "rss-breakdown":
        with asyncio.Runner(loop_factory=factory) as runner:
            result = runner.run(memory.breakdown(args.kind, args.count))
        print(json.dumps(result), flush=True)
        os._exit(0)

    if args.cmd == "echo-server":
        coro = servers.serve_echo(args.mode, args.transport, args.path)
    elif args.cmd == "idle-server":
        coro = servers.serve_idle(args.mode)
    elif args.cmd == "streams-http-server":
        coro = servers.serve_streams_http()
    else:
        coro = servers.serve_http()
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(coro)
    except (NotImplementedError, AttributeError) as exc:
        print(f"UNSUPPORTED {type(exc).__name__}: {exc}", flush=True)
        return servers.UNSUPPORTED_EXIT
    # Skip interpreter teardown: the server's work is done and the runner is
    # waiting for the process to go away.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
