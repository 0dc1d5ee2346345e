"""``python -m bench.docs``: measure everything and rewrite docs/performance.md.

    python -m bench.docs --also 3.12 --also 3.13     # the page as published
    python -m bench.docs --quick --out /tmp/perf.md  # check that it all runs

Runs every suite of ``python -m bench`` (micro, echo, http, scaling, memory,
syscalls) on asyncio, uvloop and turboloop with the interpreter running it,
the instruction counts of ``python -m bench.callgrind`` for every micro
workload, and, for each ``--also`` version, the workloads the targets are
stated for; then writes the page from those results only.  Every figure
and every "met" on the page comes from this one run.
"""

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from . import callgrind, micro, report, runner

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO_ROOT, "docs", "performance.md")

# The workloads measured again on every --also interpreter.
ALSO_FILTERS = ["micro/udp_pingpong", "http/streams-keepalive/*", "syscalls/*",
                "memory/idle_*"]
# Instruction counts of these loops (asyncio's are slow to collect and add
# little: its figures are in the timed tables).
CALLGRIND_LOOPS = ("uvloop", "turboloop")


# Sections after this line in the page are measured by other commands
# (each names its own) and kept as they are when the page is rewritten.
KEEP_MARKER = "<!-- Sections below are measured by the commands they name; bench.docs keeps them. -->"


def kept_sections(path):
    """The part of the page at `path` from KEEP_MARKER on, or ""."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return ""
    i = text.find(KEEP_MARKER)
    return "" if i < 0 else "\n" + text[i:]


def _progress(msg):
    print(msg, file=sys.stderr, flush=True)


def find_python(version):
    """The interpreter for "3.12": python3.12 on PATH if it runs, else the
    newest pyenv installation of 3.12; or a path as given."""
    if os.sep in version:
        return version
    candidates = []
    exe = shutil.which(f"python{version}")
    if exe:
        candidates.append(exe)
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    versions = os.path.join(root, "versions")
    if os.path.isdir(versions):
        for d in sorted(os.listdir(versions), reverse=True,
                        key=lambda d: [int(x) if x.isdigit() else -1 for x in d.split(".")]):
            if d == version or d.startswith(version + "."):
                candidates.append(os.path.join(versions, d, "bin", "python"))
    for exe in candidates:
        out = subprocess.run([exe, "-c", "import sys; print(sys.executable)"],
                             capture_output=True, text=True)
        if out.returncode == 0:
            return out.stdout.strip()
    raise SystemExit(f"no Python {version} found (python{version} on PATH, or pyenv)")


def python_version(python):
    out = subprocess.run([python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def runner_args(extra):
    return runner.parse_args(extra)


# -- formatting helpers ----------------------------------------------------------


def ratio_text(x):
    return "n/a" if x is None else f"{x:.2f}x"


def _ratio(run, case_id, key, base="uvloop"):
    tl = run.median(case_id, "turboloop", key)
    other = run.median(case_id, base, key)
    if tl is None or not other:
        return None
    return tl / other


class Target:
    def __init__(self, what, figure, limit, above=False):
        self.what = what
        self.figure = figure        # text saying which figure, which ratio
        self.limit = limit
        self.above = above          # the ratio must be at least the limit
        self.values = []            # (label, ratio or None)

    def add(self, label, value):
        self.values.append((label, value))

    def met(self):
        vals = [v for _, v in self.values]
        if not vals or any(v is None for v in vals):
            return "n/a"
        ok = all(v >= self.limit if self.above else v <= self.limit for v in vals)
        return "met" if ok else "not met"

    def _text(self, v):
        # Two decimals, or three where two would round onto the limit.
        if v is not None and round(v, 2) == self.limit and v != self.limit:
            return f"{v:.3f}x"
        return ratio_text(v)

    def row(self):
        values = ", ".join(f"{self._text(v)} ({label})" for label, v in self.values)
        bound = ("≥ " if self.above else "≤ ") + f"{self.limit:.2f}x"
        return [self.what, self.figure, values or "n/a", bound, self.met()]


def instr_ratio(counts, name):
    tl = counts.get((name, "turboloop"))
    uv = counts.get((name, "uvloop"))
    if isinstance(tl, float) and isinstance(uv, float) and uv:
        return tl / uv
    return None


def targets(main, also, counts, tls):
    """The targets, evaluated on this run's figures."""
    runs = [main] + also
    label = {id(r): r.version for r in runs}
    t = []

    x = Target("UDP: udp_pingpong", "process CPU per round trip, tl/uv", 0.80)
    for r in runs:
        x.add(label[id(r)], _ratio(r, "micro/udp_pingpong", "cpu_ns_per_op"))
    t.append(x)

    x = Target("Streams HTTP/1.1 keep-alive server", "server CPU per request, tl/uv", 0.85)
    for r in runs:
        for conns in (10, 64):
            x.add(f"{label[id(r)]}, c{conns}",
                  _ratio(r, f"http/streams-keepalive/c{conns}", "cpu_us_per_req"))
    t.append(x)

    for counter in ("strace", "perf"):
        x = Target("Streams HTTP/1.1 keep-alive server", "polls (epoll_wait) per request "
                   f"counted by {counter}, tl/uv", 1.00)
        for r in runs:
            x.add(label[id(r)], _ratio(r, f"syscalls/{counter}/streams-keepalive/c10", "poll"))
        t.append(x)

    x = Target("Idle server-side TCP connection", "resident bytes per connection, tl/uv", 1.00)
    for r in runs:
        for name, what in (("idle_conns", "Protocol"), ("idle_streams", "streams")):
            x.add(f"{label[id(r)]}, {what}", _ratio(r, f"memory/{name}", "bytes_per_item"))
    t.append(x)

    if tls is not None:
        x = Target("TLS echo over streams", "server CPU per message, tl/uv", 0.90)
        x.add(main.version, tls.get("cpu_ratio"))
        t.append(x)
        x = Target("TLS echo over streams", "instructions per message, tl/uv", 0.80)
        x.add(main.version, tls.get("instr_ratio"))
        t.append(x)
    else:
        x = Target("TLS echo over streams", "no TLS benchmark (bench/tls.py) in this tree", 0.90)
        x.add(main.version, None)
        t.append(x)

    x = Target("Echo servers", "server CPU per message, tl/uv, every row", 1.00)
    for case, _ in main.done:
        if case.kind == "echo":
            x.add(case.name, _ratio(main, case.id, "cpu_us_per_msg"))
    t.append(x)

    x = Target("aiohttp hello world under wrk", "requests/s, tl/uv", 1.00, above=True)
    x.add(main.version, _ratio(main, "http/aiohttp-hello/c64", "req_per_s"))
    t.append(x)

    x = Target("call_soon chain and timers", "process CPU per operation, tl/uv", 0.70)
    for name in ("call_soon_chain", "timers"):
        x.add(name, _ratio(main, f"micro/{name}", "cpu_ns_per_op"))
    t.append(x)

    x = Target("call_soon_threadsafe", "process CPU per call, tl/uv", 1.00)
    x.add("threadsafe", _ratio(main, "micro/threadsafe", "cpu_ns_per_op"))
    t.append(x)

    if counts:
        x = Target("Task work: create_task, wait_for, taskgroup", "instructions per "
                   "operation, tl/uv", 0.50)
        for name in ("create_task", "wait_for", "taskgroup"):
            x.add(name, instr_ratio(counts, name))
        t.append(x)
    return t


# -- the page ----------------------------------------------------------------------


def _table(title, headers, rows):
    t = report.Table(title, headers)
    for r in rows:
        t.add(r)
    return t.markdown()


def workload_list(registry):
    lines = ["| workload | one operation is |", "| --- | --- |"]
    for name, (_, _, what) in registry.items():
        lines.append(f"| `{name}` | {what} |")
    return "\n".join(lines)


def instr_tables(counts, splits, names):
    rows = []
    for name in names:
        uv, tl = counts.get((name, "uvloop")), counts.get((name, "turboloop"))
        fmt = (lambda v: f"{v:,.0f}" if isinstance(v, float) else str(v))
        rows.append([name, fmt(uv), fmt(tl), ratio_text(instr_ratio(counts, name))])
    out = [_table("Instructions per operation under callgrind (user space, lower is better)",
                  ["workload", "uvloop", "turboloop", "tl/uv"], rows)]
    if splits:
        rows = []
        for name in names:
            for loop in CALLGRIND_LOOPS:
                sp = splits.get((name, loop))
                if sp is None:
                    continue
                total = sum(sp.values())
                rows.append([name if loop == CALLGRIND_LOOPS[0] else "", loop]
                            + [f"{sp.get(k, 0):,.0f}" for k in callgrind.SPLIT_KINDS]
                            + [f"{total:,.0f}"])
        out.append(_table("Where the instructions ran, per operation: the interpreter "
                          "(libpython: Python code and the C API the loops call), the loop's "
                          "own extension (turboloop's _core, uvloop's loop module), _asyncio "
                          "(the C Future and Task uvloop uses), libc, other libraries",
                          ["workload", "loop", *callgrind.SPLIT_KINDS, "total"], rows))
    return "\n\n".join(out)


def http_instr_table(http_counts):
    counts, splits = http_counts
    rows = []
    for loop in CALLGRIND_LOOPS:
        c = counts.get(loop)
        if not isinstance(c, float):
            rows.append([loop, str(c)] + [""] * len(callgrind.SPLIT_KINDS))
            continue
        sp = splits.get(loop, {})
        rows.append([loop, f"{c:,.0f}"] + [f"{sp.get(k, 0):,.0f}" for k in callgrind.SPLIT_KINDS])
    tl, uv = counts.get("turboloop"), counts.get("uvloop")
    ratio = (f"  tl/uv: {tl / uv:.2f}x." if isinstance(tl, float) and isinstance(uv, float)
             else "")
    return (_table("Instructions per request under callgrind, streams-keepalive/c10 "
                   "(`callgrind.measure_http()`: the server answering 3N and N requests, "
                   "the difference divided by 2N)",
                   ["loop", "instructions", *callgrind.SPLIT_KINDS], rows) + "\n\n" + ratio.strip())


def memory_breakdown(kind, count):
    env = dict(os.environ, PYTHONHASHSEED="0",
               PYTHONPATH=os.pathsep.join([REPO_ROOT, os.path.join(REPO_ROOT, "python")]
                                          + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    proc = subprocess.run([sys.executable, "-m", "bench.worker", "rss-breakdown", kind,
                           "--loop", "turboloop", "--count", str(count)],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1]) | {"count": count}


def breakdown_tables(breakdown):
    out = []
    for kind, data in breakdown.items():
        if not data:
            continue
        rows = [[f"`{where}`", f"`{code[:70]}`", f"{size:,.0f}", f"{objs:.2f}"]
                for where, code, size, objs in data["rows"]]
        out.append(_table(f"turboloop, {kind} server, {data['count']:,} idle connections: "
                          f"{data['total']:,.0f} bytes per connection through the interpreter's "
                          "allocator, by the line that allocated them (largest first)",
                          ["where", "code", "bytes/conn", "objects/conn"], rows))
    return "\n\n".join(out)


def render(main, also, counts, splits, tls, command, started, elapsed, http_counts=None,
           breakdown=None):
    by_kind = {}
    for t in main.tables():
        by_kind.setdefault(t.title.split(":")[0], []).append(t)
    out = []
    w = out.append
    w("# Performance\n")
    w("This page is generated.  Every figure on it, and every \"met\", comes from one run of")
    w("this command, from the repository root:\n")
    w("```sh")
    w(command)
    w("```\n")
    w(f"It took {elapsed / 60:.0f} minutes here.  It needs the extension built for each "
      "interpreter (`python setup.py build_ext --inplace`), uvloop and aiohttp installed for "
      "each, a C compiler, `wrk`, `strace` (run as root, or with `kernel.yama.ptrace_scope=0`) "
      "and `valgrind`; what is missing shows as n/a.  `python -m bench.docs --quick --out "
      "/tmp/performance.md` checks that everything runs in a few minutes.  The suites can be "
      "run on their own with `python -m bench` (see `bench/README.md`).\n")
    w("Every workload runs on the three loops in the same run, each run in a fresh process, "
      "the loops interleaved and their order rotated between repetitions; each cell is the "
      "median of the repetitions, ± half their range.  The machine is a shared 2-core VM, so "
      "absolute figures move between runs: compare the ratios within a table.  **tl/uv** is "
      "turboloop's figure divided by uvloop's from the same run, **tl/aio** by asyncio's; "
      "below 1.00x turboloop is better, except for rates (requests or messages per second), "
      "where above 1.00x is better.\n")
    w(f"- date: {started}")
    for h in main.header():
        if not h.startswith("total time"):
            w(f"- {h}")
    for r in also:
        w(f"- also: Python {r.version} ({r.python})")
    w("")

    w("## Against the targets\n")
    rows = [t.row() for t in targets(main, also, counts, tls)]
    w(_table("Targets (turboloop / uvloop, same run)",
             ["workload", "figure", "measured", "target", "result"], rows))
    w("")
    w("The CPU-time figures of the HTTP and echo rows are the server process's user + "
      "system time (from /proc/PID/stat) over the measured window divided by the "
      "requests or messages served; the load generators are C programs on the other CPU.\n")

    w(f"## Micro benchmarks (Python {main.version})\n")
    w("One operation of each workload:\n")
    w(workload_list(micro.WORKLOADS))
    w("")
    for t in by_kind.get("Micro benchmarks", [])[::-1]:
        w(t.markdown())
        w("")
    if counts:
        w("## Instruction counts\n")
        w("CPU time on a shared machine is noisy; instruction counts are not.  Each count is "
          "`(instructions(2N) - instructions(N)) / N` of a micro workload under "
          "`valgrind --tool=callgrind` (`python -m bench.callgrind --by-object`), so start-up "
          "and warm-up cancel out; user-space instructions only, so kernel time (polls, "
          "socket calls, futex waits) is not in them.\n")
        w(instr_tables(counts, splits, list(micro.WORKLOADS)))
        w("")
        w("Most of the interpreter column is asyncio's own Python code (`asyncio.sleep()`, "
          "`gather()`'s callbacks, the queue, lock and timeout classes), which runs the same "
          "under every loop; a loop can only shrink what is around it.\n")

    w("## Echo servers\n")
    w("`bench/c/echo_client.c` keeps one message in flight on each connection; the servers "
      "are `create_server()` with a Protocol (`protocol`), a BufferedProtocol (`buffered`), "
      "`asyncio.start_server()` streams (`streams`) and `sock_recv`/`sock_sendall` "
      "(`sockets`); `c-epoll` is a plain C epoll echo server, the floor.  The figure of "
      "merit is the server's CPU per message.\n")
    for t in by_kind.get("Echo", []):
        w(t.markdown())
        w("")

    w("## HTTP servers\n")
    w("`streams-keepalive`: a minimal HTTP/1.1 keep-alive server on `asyncio.start_server()` "
      "(read the head with `readuntil()`, write a 13-byte response, `drain()`), loaded by "
      "`bench/c/http_client.c` with 10 or 64 connections, one request in flight on each.  "
      "`aiohttp-hello`: aiohttp's hello world under `wrk -t1 -c64`.\n")
    for t in by_kind.get("HTTP", []):
        w(t.markdown())
        w("")
    if http_counts:
        w("User-space instructions per request of the streams server, which do not move "
          "with the machine's load (the kernel's share of the CPU time above is not in "
          "them):\n")
        w(http_instr_table(http_counts))
        w("")

    w("## System calls per request\n")
    w("A counter attached to the streams keep-alive server (all its threads) for exactly "
      "the requests counted, after a warm-up: `strace -c -f`, which stops the server at "
      "every call (so each poll finds more requests ready than it would at full speed), "
      "and `perf stat` on the kernel's syscall tracepoints, which does not.  `poll` is "
      "epoll_wait (uvloop: epoll_pwait); `recv` and `send` count every read and write "
      "call.  turboloop polls before every batch of callbacks, as asyncio does: after a "
      "batch of I/O callbacks, once more with a zero timeout before the callbacks they "
      "queued, where libuv runs those at once.  Skipping that poll would halve the polls, "
      "and would change which callbacks run in which iteration (docs/design.md).\n")
    for t in by_kind.get("System calls per request", []):
        w(t.markdown())
        w("")

    w("## Memory\n")
    w("Resident memory (VmRSS) before and after making the items, after a warm-up and a "
      "garbage collection, divided by their number (`bench/memory.py`); it counts every "
      "allocator, libuv's included, which tracemalloc does not see.  The client ends of "
      "the idle connections are held by another process.\n")
    for t in by_kind.get("Memory", []):
        w(t.markdown())
        w("")
    if breakdown:
        w("Where an idle connection's memory goes, as tracemalloc sees it "
          "(`python -m bench.worker rss-breakdown KIND --loop turboloop`): every Python "
          "object and turboloop's C objects, not what the loop allocates with malloc (its fd "
          "table and its ready queue).  `SocketTransport` covers "
          "the transport and the copy of the context its callbacks run in; the socket "
          "object and the peer's address come from asyncio's accept code, and the weak "
          "references in `loop._transports` and (from 3.13) in the server's set of clients "
          "are the bookkeeping asyncio's selector loop does too.\n")
        w(breakdown_tables(breakdown))
        w("")

    w("## Scaling\n")
    w("The cost of one operation as what the loop holds grows (`bench/scaling.py`): a "
      "timer fired with N timers pending, and a round trip on one connection with N idle "
      "connections open.  The set-up (the pending timers, the idle connections) is not "
      "timed.\n")
    for t in by_kind.get("Scaling", []):
        w(t.markdown())
        w("")

    if also:
        w("## Other Python versions\n")
        w("The workloads the targets are stated for, on the other interpreters "
          "(`--also`).\n")
        for r in also:
            w(f"### Python {r.version}\n")
            for t in r.tables():
                w(t.markdown())
                w("")

    if tls is not None:
        w("## TLS echo over streams\n")
        w(tls["markdown"])
        w("")
    return "\n".join(out).rstrip() + "\n"


# -- TLS echo ---------------------------------------------------------------------

TLS_BENCH = os.path.join(REPO_ROOT, "bench", "tls.py")


def _tls_run(extra):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "tls.json")
        env = dict(os.environ, PYTHONHASHSEED="0")
        proc = subprocess.run([sys.executable, "-m", "bench.tls", *extra, "--json", out],
                              cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                              timeout=3600)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip().splitlines()[-1:] or ["failed"])
        with open(out) as f:
            return json.load(f)["result"], proc.stdout


def measure_tls(quick):
    """python -m bench.tls (TLS echo over streams): CPU per message, and
    with valgrind the instructions per message.  A dict with the ratios and
    the Markdown to show, or with the reason it could not run."""
    _progress("== TLS echo over streams (python -m bench.tls)")
    reps = ["--reps", "1", "--duration", "0.5"] if quick else ["--reps", "5"]
    out = {"markdown": ""}
    try:
        samples, text = _tls_run(reps)
    except (RuntimeError, OSError, ValueError, KeyError, subprocess.TimeoutExpired) as exc:
        out["markdown"] = f"`python -m bench.tls` did not run: {exc}"
        return out
    import statistics
    cpu = {lp: statistics.median(x["user"] + x["sys"] for x in s) for lp, s in samples.items() if s}
    rate = {lp: statistics.median(x["msgs_per_s"] for x in s) for lp, s in samples.items() if s}
    loops = [lp for lp in ("asyncio", "uvloop", "turboloop") if lp in cpu]
    rows = [["server CPU µs per message"] + [report.fmt_num(cpu[lp]) for lp in loops],
            ["messages per second"] + [report.fmt_num(rate[lp]) for lp in loops]]
    if "turboloop" in cpu and "uvloop" in cpu:
        out["cpu_ratio"] = cpu["turboloop"] / cpu["uvloop"]
    md = [_table(f"TLS echo over streams, `python -m bench.tls {' '.join(reps)}` "
                 "(median of the runs)", ["figure", *loops], rows)]
    if shutil.which("valgrind"):
        try:
            (counts, splits), _ = _tls_run(["--callgrind", "--loops", "uvloop,turboloop"]
                                           + (["--msgs", "50"] if quick else []))
            rows = [[lp, f"{counts[lp]:,.0f}"]
                    + [f"{splits[lp].get(k, 0):,.0f}" for k in callgrind.SPLIT_KINDS]
                    for lp in ("uvloop", "turboloop") if lp in counts]
            md.append(_table("TLS echo over streams: instructions per message under callgrind "
                             "(`python -m bench.tls --callgrind`)",
                             ["loop", "instructions", *callgrind.SPLIT_KINDS], rows))
            if counts.get("uvloop"):
                out["instr_ratio"] = counts["turboloop"] / counts["uvloop"]
        except (RuntimeError, OSError, ValueError, KeyError, TypeError,
                subprocess.TimeoutExpired) as exc:
            md.append(f"`python -m bench.tls --callgrind` did not run: {exc}")
    out["markdown"] = "\n\n".join(md)
    return out


# -- running ----------------------------------------------------------------------


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.docs", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=DEFAULT_OUT, help="the page to write (default: %(default)s)")
    p.add_argument("--also", action="append", default=[], metavar="VERSION",
                   help="another interpreter (3.12, or a path) for the targets' workloads; "
                        "repeatable")
    p.add_argument("--quick", action="store_true",
                   help="small counts and one repetition: checks that everything runs")
    p.add_argument("--no-callgrind", action="store_true", help="leave the instruction counts out")
    p.add_argument("--json", help="also write every result to this file")
    args = p.parse_args(argv)

    command = "python -m bench.docs" + "".join(f" --also {v}" for v in args.also)
    if args.quick:
        command += " --quick"
    if args.no_callgrind:
        command += " --no-callgrind"
    started = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    t0 = time.monotonic()
    # Five runs of everything: the echo, HTTP and memory figures move more
    # than the micro ones on a shared machine.
    common = ["--quick"] if args.quick else ["--reps", "5"]

    _progress("== every suite, " + sys.executable)
    main_run = runner.collect(runner_args(["--all", *common]))
    if main_run is None:
        return 130
    main_run.version = python_version(main_run.python)

    also = []
    for v in args.also:
        python = find_python(v)
        _progress(f"== targets' workloads, {python}")
        extra = ["--all", "--python", python, *common]
        for f in ALSO_FILTERS:
            extra += ["--filter", f]
        run = runner.collect(runner_args(extra))
        if run is None:
            return 130
        run.version = python_version(python)
        also.append(run)

    counts, splits, http_counts = {}, {}, None
    if not args.no_callgrind and shutil.which("valgrind"):
        _progress("== instruction counts")
        names = list(micro.WORKLOADS)
        ops = 1000 if args.quick else None
        counts, splits, _ = callgrind.measure(names, CALLGRIND_LOOPS, sys.executable, ops,
                                              by_object=True)
        _progress("== instruction counts, streams HTTP server")
        http_counts = callgrind.measure_http(CALLGRIND_LOOPS, sys.executable,
                                             requests=300 if args.quick else 2000)

    _progress("== where an idle connection's memory goes")
    breakdown = {kind: memory_breakdown(kind, 1000 if args.quick else 10_000)
                 for kind in ("protocol", "streams")}
    tls = measure_tls(args.quick) if os.path.exists(TLS_BENCH) else None
    elapsed = time.monotonic() - t0
    page = render(main_run, also, counts, splits, tls, command, started, elapsed, http_counts,
                  breakdown)
    page += kept_sections(args.out)
    with open(args.out, "w") as f:
        f.write(page)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"main": main_run.json(), "also": [r.json() for r in also],
                       "instructions": {f"{n}/{lp}": v for (n, lp), v in counts.items()},
                       "splits": {f"{n}/{lp}": v for (n, lp), v in splits.items()}}, f, indent=1)
    _progress(f"wrote {args.out} ({elapsed / 60:.0f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
