"""Instruction counts per operation under callgrind.

    python -m bench.callgrind [--workload sleep0] [--loops asyncio,uvloop,turboloop]
    python -m bench.callgrind --workload sleep0,create_task --loops turboloop,turboloop-prof

Timings on a busy shared machine move by several percent from run to run;
instruction counts do not.  This runs a micro workload under ``valgrind
--tool=callgrind`` twice per loop, with N and 2N operations, and reports
(instructions(2N) - instructions(N)) / N.  The difference cancels everything
that does not depend on N: interpreter start-up, imports, loop creation and
the warm-up pass (which is the same size in both runs).  Hash randomisation
is off, so the same build gives the same count to within a few instructions.

The counts are user-space instructions only: time spent in the kernel (in
epoll_wait, for instance) is not counted, and neither are cache misses.
"""

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

from . import micro, scaling

TIMED = {**micro.WORKLOADS, **scaling.WORKLOADS}
from .loops import LOOPS

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(python_path_extra):
    env = dict(os.environ)
    parts = [REPO_ROOT, *python_path_extra]
    parts += [os.path.abspath(p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))
    env["PYTHONHASHSEED"] = "0"
    return env


def _importable(python, env, loop):
    proc = subprocess.run([python, "-c", "import sys; from bench import loops; "
                           "loops.loop_factory(sys.argv[1])().close()", loop],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    return proc.returncode == 0, (proc.stderr.strip().splitlines() or [""])[-1]


def _object_kind(path):
    """Which part of the process an object file is, for --by-object."""
    name = os.path.basename(path)
    if "libpython" in name or re.fullmatch(r"python3?(\.\d+)?d?", name):
        return "interpreter"
    if name.startswith("_core.") or "uvloop" in path:
        return "loop"
    if name.startswith("_asyncio."):
        return "_asyncio"
    if name.startswith(("libc.", "libc-", "ld-linux", "libm.")):
        return "libc"
    return "other"


def split_by_object(path):
    """Exclusive instruction counts of a callgrind output file, summed per
    kind of object file (see _object_kind)."""
    names = {}
    totals = {}
    kind = "other"
    skip_next = False
    with open(path, errors="replace") as f:
        for line in f:
            if skip_next:
                # The cost line after calls= is the call's inclusive cost.
                skip_next = False
                continue
            if line.startswith(("ob=", "cob=")):
                # Names are compressed: "(n) path" the first time, in either
                # kind of line, then "(n)".
                m = re.match(r"c?ob=(?:\((\d+)\))?\s*(.*)", line.rstrip("\n"))
                ident, obj = m.group(1), m.group(2)
                if ident is not None and obj:
                    names[ident] = obj
                if line.startswith("ob="):
                    kind = _object_kind(obj or names.get(ident, ""))
            elif line.startswith("calls="):
                skip_next = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                parts = line.split()
                if len(parts) >= 2 and parts[-1].isdigit():
                    totals[kind] = totals.get(kind, 0) + int(parts[-1])
    return totals


def count(python, env, workload, loop, ops, warmup_ops, by_object=False):
    """Instructions executed by one worker run under callgrind, and the
    number of operations the workload reports it performed (and, with
    by_object, the split of split_by_object)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
               python, "-m", "bench.worker", "micro", workload, "--loop", loop,
               "--ops", str(ops), "--warmup-ops", str(warmup_ops)]
        proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{loop}/{workload}: exit {proc.returncode}: "
                               f"{proc.stderr.strip().splitlines()[-3:]}")
        m = re.search(r"Collected\s*:\s*(\d+)", proc.stderr)
        if not m:
            raise RuntimeError(f"no instruction count in callgrind output for {loop}/{workload}")
        done = json.loads(proc.stdout.strip().splitlines()[-1])["ops"]
        if by_object:
            return int(m.group(1)), done, split_by_object(out)
        return int(m.group(1)), done


def measure(names, loops, python=sys.executable, ops=None, by_object=False, jobs=None):
    """Instructions per operation of each workload on each loop.

    Returns (results, splits, available): results[name, loop] is a float,
    "n/a" or "err"; splits[name, loop] the split by object (by_object);
    available[loop] is None or why the loop cannot be imported."""
    jobs_n = jobs or os.cpu_count() or 1
    env = _env([])
    available = {}
    for loop in loops:
        ok, why = _importable(python, env, loop)
        if not ok and loop.startswith("turboloop"):
            in_tree = _env([os.path.join(REPO_ROOT, "python")])
            ok, why2 = _importable(python, in_tree, loop)
            if ok:
                env = in_tree
            why = why2 or why
        available[loop] = None if ok else why

    pending = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs_n)) as pool:
        for name in names:
            n = ops or max(1000, TIMED[name][1] // 20)
            warmup = max(1, n // 10)
            for loop in loops:
                if available[loop] is None:
                    for count_ops in (n, 2 * n):
                        pending[name, loop, count_ops] = pool.submit(count, python, env, name,
                                                            loop, count_ops, warmup, by_object)
        results = {}
        splits = {}
        for name in names:
            n = ops or max(1000, TIMED[name][1] // 20)
            for loop in loops:
                if available[loop] is not None:
                    results[name, loop] = "n/a"
                    continue
                try:
                    small, small_ops, *small_split = pending[name, loop, n].result()
                    big, big_ops, *big_split = pending[name, loop, 2 * n].result()
                except (RuntimeError, ValueError, KeyError) as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    results[name, loop] = "err"
                    continue
                # Divide by the operations the workload actually ran: some
                # round N (sleep0 runs whole tasks of 200 sleeps).
                results[name, loop] = (big - small) / (big_ops - small_ops)
                if by_object:
                    kinds = set(small_split[0]) | set(big_split[0])
                    splits[name, loop] = {
                        k: (big_split[0].get(k, 0) - small_split[0].get(k, 0))
                        / (big_ops - small_ops) for k in kinds}

    return results, splits, available


def _server_count(python, env, loop, client, conns, requests):
    """Instructions of the streams HTTP server answering `requests`
    requests under callgrind, and their split."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        srv = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                                python, "-m", "bench.worker", "streams-http-server",
                                "--loop", loop],
                               cwd=REPO_ROOT, env=env, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            line = srv.stdout.readline().decode()
            if not line.startswith("READY "):
                raise RuntimeError(f"{loop} HTTP server did not start under valgrind")
            proc = subprocess.run([client, "--tcp", f"127.0.0.1:{line.split()[1]}",
                                   "--conns", str(conns), "--warmup", "0", "--duration", "600",
                                   "--max-reqs", str(requests)],
                                  capture_output=True, text=True, timeout=900)
            done = json.loads(proc.stdout.strip().splitlines()[-1]).get("requests")
        finally:
            _, err = srv.communicate(b"", timeout=900)
        m = re.search(r"Collected\s*:\s*(\d+)", err.decode(errors="replace"))
        if not m or done != requests:
            raise RuntimeError(f"{loop}: no instruction count for the HTTP server")
        return int(m.group(1)), split_by_object(out)


def measure_http(loops, python=sys.executable, conns=10, requests=2000):
    """Instructions per request of the streams HTTP/1.1 keep-alive server
    (bench/servers.py) on each loop: (counts(3N) - counts(N)) / 2N, so
    start-up cancels out.  Returns ({loop: count}, {loop: split})."""
    from . import cbuild
    client = cbuild.build("http_client")
    env = _env([os.path.join(REPO_ROOT, "python")])
    counts, splits = {}, {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        jobs = {(lp, n): pool.submit(_server_count, python, env, lp, client, conns, n)
                for lp in loops for n in (requests, 3 * requests)}
        for lp in loops:
            try:
                small, s_small = jobs[lp, requests].result()
                big, s_big = jobs[lp, 3 * requests].result()
            except (RuntimeError, ValueError, OSError, subprocess.TimeoutExpired) as exc:
                print(f"error: {exc}", file=sys.stderr)
                counts[lp] = "err"
                continue
            counts[lp] = (big - small) / (2 * requests)
            splits[lp] = {k: (s_big.get(k, 0) - s_small.get(k, 0)) / (2 * requests)
                          for k in set(s_small) | set(s_big)}
    return counts, splits


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.callgrind", description=__doc__.split("\n\n")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", default="sleep0",
                   help="comma-separated micro workloads, or 'all' (default: %(default)s); "
                        f"choose from {', '.join(micro.WORKLOADS)}")
    p.add_argument("--loops", default=",".join(LOOPS))
    p.add_argument("--ops", type=int,
                   help="N, the smaller operation count (default: a twentieth of the "
                        "timed benchmark's count)")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--by-object", action="store_true",
                   help="also split each count by where the instructions ran: the "
                        "interpreter (libpython), the loop's own extension (turboloop's "
                        "_core, uvloop's loop module), _asyncio (the C Future and Task "
                        "uvloop and asyncio use), libc, other")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="valgrind processes at once (counts do not depend on it)")
    args = p.parse_args(argv)

    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    names = list(micro.WORKLOADS) if args.workload == "all" else args.workload.split(",")
    for name in names:
        if name not in TIMED:
            p.error(f"unknown workload {name!r}")
    loops = [s for s in args.loops.split(",") if s]

    results, splits, available = measure(names, loops, args.python, args.ops,
                                         args.by_object, args.jobs)
    # turboloop against uvloop first, as in python -m bench's tables; and
    # what turboloop's profiler costs, when turboloop-prof is measured too.
    bases = [(b, label) for b, label in (("uvloop", "tl/uv"), ("asyncio", "tl/aio"))
             if b in loops and "turboloop" in loops]
    header = ["workload"] + [f"{lp} instr/op" for lp in loops] + [label for _, label in bases]
    if "turboloop" in loops and "turboloop-prof" in loops:
        header.append("prof/tl")
    rows = []
    for name in names:
        row = [name]
        for lp in loops:
            v = results[name, lp]
            row.append(f"{v:,.0f}" if isinstance(v, float) else v)
        for base, _ in bases:
            tl, other = results[name, "turboloop"], results[name, base]
            ok = isinstance(tl, float) and isinstance(other, float) and other
            row.append(f"{tl / other:.2f}x" if ok else "n/a")
        if "turboloop" in loops and "turboloop-prof" in loops:
            tl, prof = results[name, "turboloop"], results[name, "turboloop-prof"]
            ok = isinstance(tl, float) and isinstance(prof, float) and tl
            row.append(f"{prof / tl - 1:+.1%}" if ok else "n/a")
        rows.append(row)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    print("Instructions per operation under callgrind (user space, lower is better)")
    for r in [header, ["-" * w for w in widths]] + rows:
        print("  ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]))
    for loop, why in available.items():
        if why is not None:
            print(f"  n/a {loop}: not importable: {why}")
    if splits:
        _print_splits(names, loops, splits)
    return 0


SPLIT_KINDS = ("interpreter", "loop", "_asyncio", "libc", "other")


def _print_splits(names, loops, splits):
    header = ["workload", "loop"] + list(SPLIT_KINDS)
    rows = []
    for name in names:
        for lp in loops:
            split = splits.get((name, lp))
            if split is not None:
                rows.append([name, lp] + [f"{split.get(k, 0):,.0f}" for k in SPLIT_KINDS])
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    print()
    print("Instructions per operation by where they ran (interpreter: libpython; "
          "loop: the loop's own extension module)")
    for r in [header, ["-" * w for w in widths]] + rows:
        print("  ".join([r[0].ljust(widths[0]), r[1].ljust(widths[1])]
                        + [c.rjust(w) for c, w in zip(r[2:], widths[2:])]))


if __name__ == "__main__":
    sys.exit(main())
