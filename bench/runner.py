"""``python -m bench``: run every workload on every loop and compare.

Each measurement runs in a fresh child process that imports one loop.  For a
given workload the loops take turns (asyncio, uvloop, turboloop, then the same
rotated by one, ...), so a slow patch on a shared machine spreads over all of
them instead of landing on one.  The tables show the median of the
repetitions and the spread (half the range, as a percentage of the median).
"""

import argparse
import datetime
import fnmatch
import json
import os
import platform
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from . import cbuild, memory, micro, proc, report, scaling, syscalls
from .loops import LOOPS
from .servers import MODES, UNSUPPORTED_EXIT
from .worker import LOOP_UNAVAILABLE_EXIT

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
C_FLOOR = "c-epoll"

SIZES = {1024: "1KiB", 10 * 1024: "10KiB", 100 * 1024: "100KiB"}

# The default echo matrix covers every mode on both transports at 1 KiB, then
# varies one thing at a time (message size, connection count) on the modes
# where it tells something new.  --echo-matrix full runs the cross product.
ECHO_DEFAULT = (
    [(mode, tr, 1024, 10) for mode in MODES for tr in ("tcp", "unix")]
    + [("protocol", "tcp", 10 * 1024, 10), ("protocol", "tcp", 100 * 1024, 10),
       ("streams", "tcp", 100 * 1024, 10),
       ("protocol", "tcp", 1024, 100), ("streams", "tcp", 1024, 100)]
)
ECHO_QUICK = [("protocol", "tcp", 1024, 10), ("buffered", "unix", 1024, 10),
              ("streams", "tcp", 10 * 1024, 10), ("sockets", "unix", 1024, 100)]
ECHO_FULL = [(mode, tr, size, conns) for mode in MODES for tr in ("tcp", "unix")
             for size in SIZES for conns in (10, 100)]


class NotAvailable(Exception):
    """The loop cannot run this workload (not importable, or the feature is
    missing): reported as n/a."""


class RunError(Exception):
    """The run failed: reported as err, with the reason under the table."""


class Case:
    def __init__(self, kind, name, params, loops):
        self.kind = kind
        self.name = name
        self.id = f"{kind}/{name}"
        self.params = params
        self.loops = loops


def _tail(text, lines=6):
    text = (text or "").strip()
    return " | ".join(text.splitlines()[-lines:]) or "(no output)"


class Context:
    """What every run needs: interpreter, environment, options, binaries."""

    def __init__(self, args):
        self.args = args
        self.python = args.python or sys.executable
        self.env = self._child_env()
        self.loop_info = {}
        self.unavailable = {}
        self.tmpdir = tempfile.mkdtemp(prefix="turboloop-bench-")
        self.cpus = sorted(os.sched_getaffinity(0))
        self._binaries = {}

    def _child_env(self, extra=()):
        env = dict(os.environ)
        parts = [REPO_ROOT, *extra]
        parts += [os.path.abspath(p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))
        # Hash randomisation changes dict layouts and with them timings and
        # instruction counts from run to run.
        env["PYTHONHASHSEED"] = "0"
        return env

    def probe_loops(self, names):
        code = ("import sys; from bench import loops; f = loops.loop_factory(sys.argv[1]); "
                "f().close(); print(loops.describe(sys.argv[1]))")
        for name in names:
            proc = self._probe(code, name)
            if proc.returncode != 0 and name == "turboloop":
                # Running from a source checkout without PYTHONPATH=python:
                # use the in-tree package if it has been built.
                in_tree = os.path.join(REPO_ROOT, "python")
                if os.path.isdir(os.path.join(in_tree, "turboloop")):
                    env = self._child_env([in_tree])
                    retry = self._probe(code, name, env)
                    if retry.returncode == 0:
                        self.env, proc = env, retry
            if proc.returncode == 0:
                self.loop_info[name] = proc.stdout.strip().splitlines()[-1]
            else:
                self.unavailable[name] = "not importable: " + _tail(proc.stderr, 1)

    def _probe(self, code, name, env=None):
        try:
            return subprocess.run([self.python, "-c", code, name], cwd=REPO_ROOT,
                                  env=env or self.env, capture_output=True, text=True,
                                  timeout=60)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess([], 1, "", "import timed out")

    def binary(self, name):
        if name not in self._binaries:
            try:
                self._binaries[name] = cbuild.build(name)
            except cbuild.BuildError as exc:
                self._binaries[name] = exc
        b = self._binaries[name]
        if isinstance(b, Exception):
            raise NotAvailable(str(b).splitlines()[0])
        return b

    def pin(self, which):
        """preexec_fn pinning a child to one CPU, so the load generator and
        the server do not take turns on the same core; None when pinning is
        off or there is a single CPU."""
        if self.args.no_pin or len(self.cpus) < 2:
            return None
        cpu = self.cpus[-1] if which == "server" else self.cpus[0]
        return lambda: os.sched_setaffinity(0, {cpu})


# -- micro -----------------------------------------------------------------

def run_micro(ctx, case, loop):
    kind = "proc" if case.kind == "proc" else "micro"
    cmd = [ctx.python, "-m", "bench.worker", kind, case.params["workload"],
           "--loop", loop, "--ops", str(case.params["ops"])]
    if "warmup_ops" in case.params:
        cmd += ["--warmup-ops", str(case.params["warmup_ops"])]
    try:
        proc = subprocess.run(cmd, cwd=REPO_ROOT, env=ctx.env, capture_output=True,
                              text=True, timeout=300)
    except subprocess.TimeoutExpired:
        raise RunError("timed out after 300 s") from None
    if proc.returncode == LOOP_UNAVAILABLE_EXIT:
        raise NotAvailable(_tail(proc.stdout, 1))
    if proc.returncode != 0:
        raise RunError(f"exit {proc.returncode}: {_tail(proc.stderr)}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    ops = data["ops"]
    return {"wall_ns_per_op": data["wall_ns"] / ops, "cpu_ns_per_op": data["cpu_ns"] / ops,
            "ops": ops}


# -- servers shared by echo and http -----------------------------------------

class Server:
    """A server child process: started, waited for until READY, killed."""

    def __init__(self, ctx, cmd, label):
        self.label = label
        self.errfile = tempfile.TemporaryFile(dir=ctx.tmpdir)
        self.proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=ctx.env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.errfile,
                                     preexec_fn=ctx.pin("server"))
        self.address = self._wait_ready(timeout=30)

    def _stderr(self):
        self.errfile.seek(0)
        return self.errfile.read().decode(errors="replace")

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        out = self.proc.stdout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop()
                raise RunError(f"{self.label} did not become ready in {timeout} s")
            ready, _, _ = select.select([out], [], [], left)
            if not ready:
                continue
            line = out.readline().decode(errors="replace").strip()
            if line.startswith("READY "):
                return line[6:]
            if line.startswith("UNSUPPORTED"):
                self.stop()
                raise NotAvailable(line[len("UNSUPPORTED "):])
            if not line:
                code = self.proc.wait()
                err = self._stderr()
                self.stop()
                if code == UNSUPPORTED_EXIT:
                    raise NotAvailable(_tail(err, 1))
                if code == LOOP_UNAVAILABLE_EXIT:
                    raise NotAvailable("loop not importable")
                raise RunError(f"{self.label} exited with {code}: {_tail(err)}")

    def check_alive(self):
        if self.proc.poll() is not None:
            raise RunError(f"{self.label} died with {self.proc.returncode}: "
                           f"{_tail(self._stderr())}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            if f:
                f.close()
        self.errfile.close()


def cpu_ticks(pid):
    """User and system CPU ticks of a process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the command name, field 3 (state) is index 0: utime is field 14.
    return int(fields[11]), int(fields[12])


# -- echo ------------------------------------------------------------------

def run_echo(ctx, case, loop):
    p = case.params
    client = ctx.binary("echo_client")
    path = None
    if p["transport"] == "unix":
        path = os.path.join(ctx.tmpdir, f"echo-{os.getpid()}-{time.monotonic_ns()}.sock")
    if loop == C_FLOOR:
        addr = "127.0.0.1:0" if p["transport"] == "tcp" else path
        cmd = [ctx.binary("echo_server"), f"--{p['transport']}", addr]
    else:
        cmd = [ctx.python, "-m", "bench.worker", "echo-server", "--loop", loop,
               "--mode", p["mode"], "--transport", p["transport"]]
        if path:
            cmd += ["--path", path]
    server = Server(ctx, cmd, f"{loop} echo server")
    try:
        target = (["--tcp", f"127.0.0.1:{server.address}"] if p["transport"] == "tcp"
                  else ["--unix", server.address])
        ccmd = [client, *target, "--conns", str(p["conns"]), "--size", str(p["size"]),
                "--warmup", str(ctx.args.warmup), "--duration", str(ctx.args.duration),
                "--max-msgs", str(ctx.args.max_msgs), "--server-pid", str(server.proc.pid)]
        limit = ctx.args.warmup + ctx.args.duration + 30
        try:
            proc = subprocess.run(ccmd, capture_output=True, text=True, timeout=limit,
                                  preexec_fn=ctx.pin("client"))
        except subprocess.TimeoutExpired:
            raise RunError(f"echo client timed out after {limit:.0f} s") from None
        server.check_alive()
        try:
            data = json.loads(proc.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise RunError(f"echo client: exit {proc.returncode}: "
                           f"{_tail(proc.stdout + proc.stderr)}") from None
        if "error" in data:
            raise RunError(f"echo client: {data['error']}")
    finally:
        server.stop()
        if path and os.path.exists(path):
            os.unlink(path)
    msgs = data["messages"]
    if not msgs:
        raise RunError("no message was echoed")
    result = {"msgs_per_s": data["msgs_per_s"], "p50_us": data["p50_us"],
              "p99_us": data["p99_us"], "messages": msgs}
    if "clk_tck" in data:
        tick_us = 1e6 / data["clk_tck"]
        user = data["server_utime_ticks"] * tick_us / msgs
        system = data["server_stime_ticks"] * tick_us / msgs
        result.update(cpu_us_per_msg=user + system, user_us_per_msg=user,
                      sys_us_per_msg=system)
    return result


# -- http ------------------------------------------------------------------

def _parse_wrk(out):
    res = {}
    for line in out.splitlines():
        s = line.split()
        if line.startswith("Requests/sec:"):
            res["req_per_s"] = float(s[1])
        elif len(s) == 2 and s[0] in ("50%", "99%"):
            res["p" + s[0][:-1] + "_ms"] = _wrk_ms(s[1])
        elif "Non-2xx" in line or "Socket errors" in line:
            res["errors"] = line.strip()
    return res


def _wrk_ms(text):
    for unit, scale in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if text.endswith(unit):
            return float(text[:-len(unit)]) * scale
    return float(text)


def run_streams_http(ctx, case, loop):
    """The streams HTTP/1.1 keep-alive server under bench/c/http_client.c:
    requests per second, latency, and the server's CPU per request."""
    client = ctx.binary("http_client")
    cmd = [ctx.python, "-m", "bench.worker", "streams-http-server", "--loop", loop]
    server = Server(ctx, cmd, f"{loop} streams HTTP server")
    try:
        ccmd = [client, "--tcp", f"127.0.0.1:{server.address}",
                "--conns", str(case.params["conns"]), "--warmup", str(ctx.args.warmup),
                "--duration", str(ctx.args.http_duration), "--max-reqs", str(ctx.args.max_msgs),
                "--server-pid", str(server.proc.pid)]
        limit = ctx.args.warmup + ctx.args.http_duration + 30
        try:
            proc = subprocess.run(ccmd, capture_output=True, text=True, timeout=limit,
                                  preexec_fn=ctx.pin("client"))
        except subprocess.TimeoutExpired:
            raise RunError(f"http client timed out after {limit:.0f} s") from None
        server.check_alive()
        try:
            data = json.loads(proc.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise RunError(f"http client: exit {proc.returncode}: "
                           f"{_tail(proc.stdout + proc.stderr)}") from None
        if "error" in data:
            raise RunError(f"http client: {data['error']}")
    finally:
        server.stop()
    reqs = data["requests"]
    if not reqs:
        raise RunError("no request was answered")
    res = {"req_per_s": data["req_per_s"], "p50_ms": data["p50_us"] / 1e3,
           "p99_ms": data["p99_us"] / 1e3}
    if "clk_tck" in data:
        ticks = data["server_utime_ticks"] + data["server_stime_ticks"]
        res["cpu_us_per_req"] = ticks * 1e6 / data["clk_tck"] / reqs
    return res


def run_http(ctx, case, loop):
    if case.params.get("server") == "streams":
        return run_streams_http(ctx, case, loop)
    wrk = shutil.which("wrk")
    if not wrk:
        raise NotAvailable("wrk is not installed (apt-get install wrk)")
    cmd = [ctx.python, "-m", "bench.worker", "http-server", "--loop", loop]
    server = Server(ctx, cmd, f"{loop} aiohttp server")
    url = f"http://127.0.0.1:{server.address}/"
    conns = str(case.params["conns"])

    def wrk_run(seconds):
        wcmd = [wrk, "-t1", "-c", conns, "-d", f"{seconds}s", "--latency", url]
        try:
            return subprocess.run(wcmd, capture_output=True, text=True, timeout=seconds + 30,
                                  preexec_fn=ctx.pin("client"))
        except subprocess.TimeoutExpired:
            raise RunError("wrk timed out") from None

    try:
        if ctx.args.warmup > 0:
            wrk_run(max(1, round(ctx.args.warmup)))
        u0, s0 = cpu_ticks(server.proc.pid)
        seconds = max(1, round(ctx.args.http_duration))
        proc = wrk_run(seconds)
        u1, s1 = cpu_ticks(server.proc.pid)
        server.check_alive()
    finally:
        server.stop()
    res = _parse_wrk(proc.stdout)
    if "req_per_s" not in res:
        raise RunError(f"wrk: exit {proc.returncode}: {_tail(proc.stdout + proc.stderr)}")
    if "errors" in res:
        raise RunError(f"wrk reported {res['errors']}")
    requests = res["req_per_s"] * seconds
    tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
    res["cpu_us_per_req"] = (u1 - u0 + s1 - s0) * tick_us / requests if requests else None
    return res


# -- memory ------------------------------------------------------------------

def run_memory(ctx, case, loop):
    cmd = [ctx.python, "-m", "bench.worker", "rss", case.params["workload"], "--loop", loop]
    if case.params.get("count"):
        cmd += ["--count", str(case.params["count"])]
    try:
        proc = subprocess.run(cmd, cwd=REPO_ROOT, env=ctx.env, capture_output=True,
                              text=True, timeout=300)
    except subprocess.TimeoutExpired:
        raise RunError("timed out after 300 s") from None
    if proc.returncode == LOOP_UNAVAILABLE_EXIT:
        raise NotAvailable(_tail(proc.stdout, 1))
    if proc.returncode != 0:
        raise RunError(f"exit {proc.returncode}: {_tail(proc.stderr)}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    out = {"bytes_per_item": data["bytes_per_item"], "count": data["count"]}
    if "sizeof" in data:
        out["sizeof"] = data["sizeof"]
    return out


# -- system calls ----------------------------------------------------------------

def run_syscalls(ctx, case, loop):
    client = ctx.binary("http_client")
    cmd = [ctx.python, "-m", "bench.worker", "streams-http-server", "--loop", loop]
    server = Server(ctx, cmd, f"{loop} streams HTTP server")
    requests = case.params["requests"]
    conns = str(case.params["conns"])
    target = f"127.0.0.1:{server.address}"

    def load(count=None, seconds=0.3):
        ccmd = [client, "--tcp", target, "--conns", conns, "--warmup", "0"]
        ccmd += (["--duration", "600", "--max-reqs", str(count)] if count
                 else ["--duration", str(seconds)])
        proc = subprocess.run(ccmd, capture_output=True, text=True, timeout=660,
                              preexec_fn=ctx.pin("client"))
        data = json.loads(proc.stdout.strip().splitlines()[-1])
        if "error" in data:
            raise RunError(f"http client: {data['error']}")
        return data

    try:
        load()      # warm-up, with connections of its own
        try:
            if case.params["counter"] == "perf":
                data, calls = syscalls.measure_perf(server.proc.pid, lambda: load(requests))
            else:
                data, calls = syscalls.measure(server.proc.pid, lambda: load(requests),
                                               ctx.tmpdir)
        except syscalls.Unavailable as exc:
            raise NotAvailable(str(exc)) from None
        server.check_alive()
    finally:
        server.stop()
    if data["requests"] != requests:
        raise RunError(f"{data['requests']} requests answered instead of {requests}")
    return syscalls.group(calls, requests)


RUNNERS = {"micro": run_micro, "echo": run_echo, "http": run_http,
           # scaling and child processes: the same worker protocol as micro
           "scaling": run_micro, "proc": run_micro,
           "memory": run_memory, "syscalls": run_syscalls}
SUITES = ("micro", "echo", "http", "scaling", "memory", "syscalls", "proc")


# -- planning and running ----------------------------------------------------

def build_cases(args, loops):
    cases = []
    if "micro" in args.suites:
        scale = 0.1 if args.quick else args.scale
        for name, (_, default_ops, _) in micro.WORKLOADS.items():
            ops = max(1000, int(default_ops * scale))
            cases.append(Case("micro", name, {"workload": name, "ops": ops}, loops))
    if "echo" in args.suites:
        matrix = (ECHO_QUICK if args.quick and args.echo_matrix == "default"
                  else ECHO_FULL if args.echo_matrix == "full" else ECHO_DEFAULT)
        for mode, tr, size, conns in matrix:
            name = f"{mode}/{tr}/{SIZES[size]}/c{conns}"
            cases.append(Case("echo", name, {"mode": mode, "transport": tr, "size": size,
                                              "conns": conns}, loops + [C_FLOOR]))
    if "http" in args.suites:
        for conns in (10, 64):
            cases.append(Case("http", f"streams-keepalive/c{conns}",
                              {"server": "streams", "conns": conns}, loops))
        cases.append(Case("http", "aiohttp-hello/c64", {"conns": 64}, loops))
    if "proc" in args.suites:
        for name, (_, default_ops, _) in proc.WORKLOADS.items():
            ops = max(10, int(default_ops * (0.1 if args.quick else 1)))
            cases.append(Case("proc", name, {"workload": name, "ops": ops}, loops))
    if "scaling" in args.suites:
        for name, (_, default_ops, _) in scaling.WORKLOADS.items():
            ops = max(1000, int(default_ops * (0.1 if args.quick else 1)))
            cases.append(Case("scaling", name, {"workload": name, "ops": ops,
                                                "warmup_ops": 0}, loops))
    if "memory" in args.suites:
        for name, (_, count, _) in memory.WORKLOADS.items():
            cases.append(Case("memory", name, {"workload": name,
                                               "count": count // 10 if args.quick else count},
                              loops))
    if "syscalls" in args.suites:
        for counter, requests in (("strace", 20_000), ("perf", 100_000)):
            cases.append(Case("syscalls", f"{counter}/streams-keepalive/c10",
                              {"conns": 10, "counter": counter,
                               "requests": requests // 10 if args.quick else requests},
                              loops))
    if args.filter:
        def wanted(case):
            for pat in args.filter:
                if any(ch in pat for ch in "*?["):
                    if fnmatch.fnmatch(case.id, pat) or fnmatch.fnmatch(case.name, pat):
                        return True
                elif pat in case.id:
                    return True
            return False
        cases = [c for c in cases if wanted(c)]
    return cases


def _progress(msg):
    print(msg, file=sys.stderr, flush=True)


def _headline(case, sample):
    if case.kind == "proc":
        return _proc_headline(case.name, sample)
    if case.kind == "micro":
        return f"{sample['wall_ns_per_op']:.0f} ns/op"
    if case.kind == "scaling":
        return f"{sample['cpu_ns_per_op']:.0f} ns cpu/op"
    if case.kind == "memory":
        return f"{sample['bytes_per_item']:,.0f} bytes/item"
    if case.kind == "syscalls":
        return f"{sample['poll']:.3f} polls/req, {sample['total']:.2f} calls/req"
    if case.kind == "echo":
        cpu = sample.get("cpu_us_per_msg")
        cpu_text = f", {cpu:.1f} us cpu/msg" if cpu is not None else ""
        return f"{sample['msgs_per_s']:,.0f} msg/s{cpu_text}"
    return f"{sample['req_per_s']:,.0f} req/s"


def run_case(ctx, case, reps):
    results = {loop: {"status": "ok", "samples": []} for loop in case.loops}
    for loop in case.loops:
        if loop in ctx.unavailable:
            results[loop].update(status=report.NA, reason=ctx.unavailable[loop])
    for rep in range(reps):
        shift = rep % len(case.loops)
        order = case.loops[shift:] + case.loops[:shift]
        for loop in order:
            r = results[loop]
            if r["status"] != "ok":
                continue
            try:
                sample = RUNNERS[case.kind](ctx, case, loop)
            except NotAvailable as exc:
                r.update(status=report.NA, reason=str(exc))
                continue
            except RunError as exc:
                r.update(status=report.ERR, reason=str(exc))
                _progress(f"  {case.id} {loop}: error: {exc}")
                continue
            r["samples"].append(sample)
    for loop, r in results.items():
        if r["status"] == "ok" and r["samples"]:
            keys = [k for k, v in r["samples"][0].items() if isinstance(v, (int, float))]
            r["summary"] = {k: report.summarize([s.get(k) for s in r["samples"]])
                            for k in keys}
    parts = []
    for loop in case.loops:
        r = results[loop]
        parts.append(f"{loop} " + (_headline(case, {k: v["median"] for k, v in
                                                    r["summary"].items()})
                                   if "summary" in r else r["status"]))
    _progress(f"{case.id:<34} " + "  |  ".join(parts))
    return results


# -- tables ------------------------------------------------------------------

def _stat(results, loop, key):
    r = results.get(loop)
    if not r or "summary" not in r:
        return None
    return r["summary"].get(key)


def _cell(results, loop, key, spread=True):
    r = results.get(loop)
    if r is None:
        return ""
    if r["status"] != "ok" or "summary" not in r:
        return r["status"] if r["status"] != "ok" else report.NA
    return report.fmt_stat(r["summary"].get(key), spread)


# turboloop is compared with uvloop first: it is the loop to beat.
RATIO_BASES = (("uvloop", "tl/uv"), ("asyncio", "tl/aio"))


def _ratio_headers(loops):
    if "turboloop" not in loops:
        return []
    return [label for base, label in RATIO_BASES if base in loops]


def _ratio_cells(results, loops, key):
    if "turboloop" not in loops:
        return []
    tl = _stat(results, "turboloop", key)
    return [report.ratio(tl, _stat(results, base, key)) for base, _ in RATIO_BASES
            if base in loops]


def _notes(done, kind):
    """One line per distinct (loop, reason), so a feature a loop lacks
    everywhere is explained once, not once per row."""
    seen = {}
    for case, results in done:
        if case.kind != kind:
            continue
        for loop, r in results.items():
            if r["status"] != "ok" and r.get("reason"):
                seen.setdefault((loop, r["status"], r["reason"]), []).append(case.name)
    lines = []
    for (loop, status, reason), names in seen.items():
        where = names[0] if len(names) == 1 else f"{len(names)} rows"
        lines.append(f"{status} {loop} ({where}): {reason}")
    return lines


def _proc_headline(name, sample):
    if name == "cat_pipe":
        return (f"{1e9 / sample['wall_ns_per_op']:,.0f} MiB/s, "
                f"{sample['cpu_ns_per_op'] * 1024 / 1e6:,.0f} ms cpu/GiB")
    return (f"{sample['cpu_ns_per_op'] / 1e3:,.0f} us cpu/child, "
            f"{sample['wall_ns_per_op'] / 1e3:,.0f} us wall/child")


def _proc_table(done, loops, reps_text):
    """Child processes: CPU per child and per GiB (the benchmark process's
    own, lower is better) and the pipe's throughput (higher is better)."""
    rows = [(c, r) for c, r in done if c.kind == "proc"]
    if not rows:
        return []
    ratio_h = _ratio_headers(loops)
    t = report.Table(f"Child processes ({reps_text('proc')}); ratios are turboloop's figure "
                     "over the other loop's", ["workload", *loops, *ratio_h])
    metrics = {
        "spawn_true": (("CPU µs per child", "cpu_ns_per_op", 1e-3),
                       ("wall µs per child", "wall_ns_per_op", 1e-3)),
        "cat_pipe": (("CPU ms per GiB", "cpu_ns_per_op", 1024 / 1e6),
                     ("MiB/s (higher is better)", "wall_ns_per_op", None)),
    }
    for case, results in rows:
        for label, key, scale in metrics.get(case.name, ()):
            cells, values = [], {}
            for lp in loops:
                st = _stat(results, lp, key)
                if st is None:
                    cells.append(_cell(results, lp, key))
                    continue
                med = st["median"]
                value = 1e9 / med if scale is None else med * scale
                values[lp] = value
                spread = f" ±{st['spread_pct']:.0f}%" if st["n"] > 1 else ""
                cells.append(f"{report.fmt_num(value)}{spread}")
            ratios = []
            if "turboloop" in loops:
                for base, _ in RATIO_BASES:
                    if base in loops:
                        tl, other = values.get("turboloop"), values.get(base)
                        ratios.append(f"{tl / other:.2f}x" if tl and other else "")
            t.add([f"{case.name}: {label}", *cells, *ratios])
    t.notes = _notes(done, "proc")
    return [t]


def build_tables(done, loops, reps_text):
    """Tables for the finished cases; reps_text(kind) describes how many
    runs each figure summarises."""
    tables = []
    micro_rows = [(c, r) for c, r in done if c.kind == "micro"]
    ratio_h = _ratio_headers(loops)
    if micro_rows:
        for key, what in (("wall_ns_per_op", "wall-clock"), ("cpu_ns_per_op", "process CPU")):
            t = report.Table(f"Micro benchmarks: {what} ns per operation, lower is better "
                             f"({reps_text('micro')})", ["workload", *loops, *ratio_h])
            for case, results in micro_rows:
                t.add([case.name] + [_cell(results, lp, key) for lp in loops]
                      + _ratio_cells(results, loops, key))
            tables.append(t)
        notes = _notes(done, "micro")
        tables[-1].notes = notes
    echo_rows = [(c, r) for c, r in done if c.kind == "echo"]
    if echo_rows:
        cols = loops + [C_FLOOR]
        t = report.Table(f"Echo: messages per second, higher is better ({reps_text('echo')})",
                         ["mode/transport/size/conns", *cols, *ratio_h])
        for case, results in echo_rows:
            t.add([case.name] + [_cell(results, lp, "msgs_per_s") for lp in cols]
                  + _ratio_cells(results, loops, "msgs_per_s"))
        tables.append(t)
        t = report.Table("Echo: server CPU time per message in µs, user+system "
                         "(user/system), lower is better",
                         ["mode/transport/size/conns", *cols, *ratio_h])
        for case, results in echo_rows:
            cells = []
            for lp in cols:
                cell = _cell(results, lp, "cpu_us_per_msg")
                u, s = _stat(results, lp, "user_us_per_msg"), _stat(results, lp, "sys_us_per_msg")
                if u and s:
                    cell += f" ({report.fmt_num(u['median'])}/{report.fmt_num(s['median'])})"
                cells.append(cell)
            t.add([case.name] + cells + _ratio_cells(results, loops, "cpu_us_per_msg"))
        tables.append(t)
        t = report.Table("Echo: round-trip latency p50 / p99 in µs",
                         ["mode/transport/size/conns", *cols])
        for case, results in echo_rows:
            cells = []
            for lp in cols:
                p50, p99 = _stat(results, lp, "p50_us"), _stat(results, lp, "p99_us")
                cells.append(f"{report.fmt_num(p50['median'])} / {report.fmt_num(p99['median'])}"
                             if p50 and p99 else _cell(results, lp, "p50_us"))
            t.add([case.name] + cells)
        notes = _notes(done, "echo")
        t.notes = notes
        tables.append(t)
    tables += _proc_table(done, loops, reps_text)
    http_rows = [(c, r) for c, r in done if c.kind == "http"]
    if http_rows:
        t = report.Table("HTTP: the streams keep-alive server under bench/c/http_client "
                         "(streams-keepalive), aiohttp hello world under wrk (aiohttp-hello) "
                         f"({reps_text('http')})",
                         ["metric", *loops, *ratio_h])
        for case, results in http_rows:
            t.add([f"{case.name} requests/s"] + [_cell(results, lp, "req_per_s") for lp in loops]
                  + _ratio_cells(results, loops, "req_per_s"))
            t.add([f"{case.name} CPU µs/request"]
                  + [_cell(results, lp, "cpu_us_per_req") for lp in loops]
                  + _ratio_cells(results, loops, "cpu_us_per_req"))
            t.add([f"{case.name} p50 / p99 ms"]
                  + [f"{report.fmt_num(_stat(results, lp, 'p50_ms')['median'])} / "
                     f"{report.fmt_num(_stat(results, lp, 'p99_ms')['median'])}"
                     if _stat(results, lp, "p50_ms") and _stat(results, lp, "p99_ms")
                     else _cell(results, lp, "p50_ms") for lp in loops]
                  + [""] * len(ratio_h))
        notes = _notes(done, "http")
        t.notes = notes
        tables.append(t)
    tables += _scaling_tables(done, loops, reps_text)
    tables += _memory_tables(done, loops, reps_text)
    tables += _syscall_tables(done, loops, reps_text)
    return tables


SCALING_TITLES = {
    "timer_fire": ("Scaling: process CPU ns per timer fired (call_later(0)) with N timers "
                   "pending", "pending timers"),
    "idle_conns": ("Scaling: process CPU ns per 64-byte round trip with N idle connections "
                   "open", "idle connections"),
}


def _scaling_tables(done, loops, reps_text):
    ratio_h = _ratio_headers(loops)
    tables = []
    for prefix, (title, what) in SCALING_TITLES.items():
        rows = [(c, r) for c, r in done if c.kind == "scaling"
                and c.name.startswith(prefix + "@")]
        if not rows:
            continue
        t = report.Table(f"{title} ({reps_text('scaling')})", [what, *loops, *ratio_h])
        for case, results in rows:
            t.add([f"{int(case.name.split('@')[1]):,}"]
                  + [_cell(results, lp, "cpu_ns_per_op") for lp in loops]
                  + _ratio_cells(results, loops, "cpu_ns_per_op"))
        t.notes = _notes([(c, r) for c, r in rows], "scaling")
        tables.append(t)
    return tables


def _memory_tables(done, loops, reps_text):
    rows = [(c, r) for c, r in done if c.kind == "memory"]
    if not rows:
        return []
    t = report.Table(f"Memory: resident bytes per item, lower is better ({reps_text('memory')})",
                     ["item (count)", *loops, *_ratio_headers(loops)])
    for case, results in rows:
        _, count, what = memory.WORKLOADS[case.params["workload"]]
        count = case.params.get("count") or count
        t.add([f"{case.name}: {what} ({count:,})"]
              + [_cell(results, lp, "bytes_per_item") for lp in loops]
              + _ratio_cells(results, loops, "bytes_per_item"))
        if any(_stat(results, lp, "sizeof") for lp in loops):
            t.add([f"{case.name}: sys.getsizeof() of one"]
                  + [_cell(results, lp, "sizeof", spread=False) for lp in loops]
                  + _ratio_cells(results, loops, "sizeof"))
    t.notes = _notes(rows, "memory")
    return [t]


def _syscall_tables(done, loops, reps_text):
    tables = []
    for case, results in done:
        if case.kind != "syscalls":
            continue
        counter = {"strace": "strace -c -f",
                   "perf": "perf stat (syscall tracepoints)"}[case.params["counter"]]
        t = report.Table(f"System calls per request: {case.name.split('/', 1)[1]}, "
                         f"{case.params['requests']:,} requests counted by {counter} "
                         f"({reps_text('syscalls')})",
                         ["calls per request", *loops, *_ratio_headers(loops)])
        for key in (*syscalls.GROUPS, "other", "total", "empty poll"):
            if not any(_stat(results, lp, key) for lp in loops):
                continue
            label = "polls that returned nothing" if key == "empty poll" else key
            t.add([label] + [_cell(results, lp, key) for lp in loops]
                  + _ratio_cells(results, loops, key))
        t.notes = _notes([(case, results)], "syscalls")
        tables.append(t)
    return tables


def _machine():
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"


def _git_revision():
    try:
        out = subprocess.run(["git", "-C", REPO_ROOT, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


# -- command line ----------------------------------------------------------

def _reps(args, kind):
    if args.reps:
        return args.reps
    if kind == "micro":
        return 2 if args.quick else 5
    return 1 if args.quick else 3     # echo, http, proc


def _reps_text(n):
    return "one run" if n == 1 else f"median of {n} runs, ± is half the range"


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run the same workloads on asyncio, uvloop and turboloop and compare.")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run of well under a minute: small counts, short echo runs, "
                        "fewer repetitions")
    p.add_argument("--filter", action="append", metavar="NAME",
                   help="only workloads whose id contains NAME (or matches it, with * ? []); "
                        "repeatable; see --list")
    p.add_argument("--json", metavar="FILE", help="also write every sample and summary to FILE")
    p.add_argument("--markdown", action="store_true",
                   help="print Markdown tables for docs/performance.md")
    p.add_argument("--http", action="store_true",
                   help="also run the aiohttp server under wrk (needs aiohttp and wrk)")
    p.add_argument("--list", action="store_true", help="list the workload ids and exit")
    p.add_argument("--loops", default=",".join(LOOPS),
                   help="comma-separated loops to compare (default: %(default)s)")
    p.add_argument("--suites", default="micro,echo",
                   help="comma-separated suites: " + ", ".join(SUITES)
                        + " (default: %(default)s; --http adds http, --proc adds proc; "
                          "--all runs every one)")
    p.add_argument("--all", action="store_true", help="run every suite")
    p.add_argument("--proc", action="store_true",
                   help="also run the child-process workloads (spawn 1,000 children; "
                        "1 GiB through cat), about 2 minutes")
    p.add_argument("--python", help="interpreter for the benchmark processes "
                                    "(default: the one running this)")
    p.add_argument("--reps", type=int, help="repetitions per loop and workload "
                                            "(default: 5 micro, 3 echo/http; --quick: 2 / 1)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply the micro workloads' operation counts")
    p.add_argument("--echo-matrix", choices=("default", "full"), default="default",
                   help="'full' runs every mode x transport x size x connection count "
                        "(48 rows, about 20 minutes)")
    p.add_argument("--duration", type=float, help="measured seconds per echo run "
                                                  "(default 1.0; --quick 0.3)")
    p.add_argument("--warmup", type=float, help="unmeasured seconds before each echo/http run "
                                                "(default 0.3; --quick 0.1)")
    p.add_argument("--http-duration", type=float, default=3.0,
                   help="measured seconds per wrk run (default %(default)s)")
    p.add_argument("--max-msgs", type=int, default=2_000_000,
                   help="upper bound on messages per echo run (default %(default)s)")
    p.add_argument("--no-pin", action="store_true",
                   help="do not pin the echo server and load generator to separate CPUs")
    args = p.parse_args(argv)
    args.suites = [s.strip() for s in args.suites.split(",") if s.strip()]
    if args.all:
        args.suites = list(SUITES)
    if args.http and "http" not in args.suites:
        args.suites.append("http")
    if args.proc and "proc" not in args.suites:
        args.suites.append("proc")
    for s in args.suites:
        if s not in RUNNERS:
            p.error(f"unknown suite {s!r}")
    args.loops = [s.strip() for s in args.loops.split(",") if s.strip()]
    for lp in args.loops:
        if lp not in LOOPS:
            p.error(f"unknown loop {lp!r}; choose from {', '.join(LOOPS)}")
    if args.duration is None:
        args.duration = 0.3 if args.quick else 1.0
    if args.warmup is None:
        args.warmup = 0.1 if args.quick else 0.3
    if args.quick:
        args.http_duration = min(args.http_duration, 1.0)
    return args


class Run:
    """What collect() measured: the cases with their results, and where."""

    def __init__(self, args, ctx, done, elapsed):
        self.args = args
        self.loops = args.loops
        self.python = ctx.python
        self.loop_info = ctx.loop_info
        self.unavailable = ctx.unavailable
        self.done = done
        self.elapsed = elapsed

    def reps_text(self, kind):
        return _reps_text(_reps(self.args, kind))

    def tables(self):
        return build_tables(self.done, self.loops, self.reps_text)

    def header(self):
        header = [f"machine: {_machine()}", f"python: {self.python}"]
        for name in self.loops:
            header.append(f"{name}: {self.loop_info.get(name) or 'n/a - ' + self.unavailable[name]}")
        rev = _git_revision()
        if rev:
            header.append(f"revision: {rev}")
        header.append(f"total time: {self.elapsed:.0f} s")
        return header

    def result(self, case_id):
        """{loop: results} of the case with this id, or None."""
        for case, results in self.done:
            if case.id == case_id:
                return results
        return None

    def median(self, case_id, loop, key):
        results = self.result(case_id)
        stat = _stat(results, loop, key) if results else None
        return stat["median"] if stat else None

    def json(self):
        return {
            "meta": {"date": datetime.datetime.now().isoformat(timespec="seconds"),
                     "machine": _machine(), "python": self.python, "loops": self.loop_info,
                     "unavailable": self.unavailable, "revision": _git_revision(),
                     "args": vars(self.args), "elapsed_s": self.elapsed},
            "results": [{"id": c.id, "kind": c.kind, "params": c.params, "loops": r}
                        for c, r in self.done],
        }


def collect(args, cases=None):
    """Run the cases args select (or the given ones); a Run, or None when
    interrupted."""
    cases = build_cases(args, args.loops) if cases is None else cases
    ctx = Context(args)
    started = time.monotonic()
    try:
        ctx.probe_loops(args.loops)
        for name in args.loops:
            _progress(f"{name}: {ctx.loop_info.get(name) or ctx.unavailable.get(name)}")
        done = []
        for case in cases:
            done.append((case, run_case(ctx, case, _reps(args, case.kind))))
    except KeyboardInterrupt:
        _progress("interrupted")
        return None
    finally:
        shutil.rmtree(ctx.tmpdir, ignore_errors=True)
    return Run(args, ctx, done, time.monotonic() - started)


def main(argv=None):
    args = parse_args(argv)
    cases = build_cases(args, args.loops)
    if args.list:
        for c in cases:
            print(c.id)
        return 0
    if not cases:
        print("no workload matches the filter; see --list", file=sys.stderr)
        return 2
    # A run interrupted by Ctrl-C or a terminal hang-up still kills its
    # servers: Popen children are killed in Server.stop() via finally blocks.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    run = collect(args, cases)
    if run is None:
        return 130
    tables = run.tables()
    header = run.header()
    if args.markdown:
        date = datetime.date.today().isoformat()
        print(f"Measured on {date} with `python -m bench"
              f"{' ' + ' '.join(argv if argv is not None else sys.argv[1:])}`.\n")
        print("\n".join(f"- {h}" for h in header))
        for t in tables:
            print()
            print(t.markdown())
    else:
        print("\n".join(header))
        for t in tables:
            print()
            print(t.text())
    if args.json:
        with open(args.json, "w") as f:
            json.dump(run.json(), f, indent=1)
    return 0
