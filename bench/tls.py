"""TLS echo over streams: server CPU time and instructions per message.

    python -m bench.tls [--loops asyncio,uvloop,turboloop] [--size 1024]
                        [--conns 10] [--reps 5] [--duration 2] [--tls12]
    python -m bench.tls --callgrind [--msgs 200]
    python -m bench.tls --strace --msgs 1000

The server is ``asyncio.start_server(..., ssl=context)`` on each loop, with
the echo handler of the streams echo benchmark (``reader.read(65536)``,
``writer.write()``, ``await writer.drain()``).  The load generator,
``bench/c/tls_echo_client.c`` (OpenSSL, epoll, one message in flight per
connection), connects CONNS clients over TCP to 127.0.0.1, does the
handshakes, warms up, then counts the messages echoed in the measured
window and reads the server's utime and stime from /proc/PID/stat at both
ends of it.  The table shows the server's CPU microseconds per message
(median of the repetitions, loops interleaved and their order rotated every
repetition, server and client pinned to different CPUs) and the ratios
turboloop/uvloop and turboloop/asyncio.

``--callgrind`` runs the server under ``valgrind --tool=callgrind`` twice
per loop, with every connection echoing N and then 2N messages, and reports
(instructions(2N) - instructions(N)) / (CONNS * N): the user-space
instructions per message, start-up and handshakes cancelled out, split by
where they ran (the interpreter, the loop's own extension, _asyncio, libc,
and other libraries, which is where OpenSSL's work shows).

``--strace`` counts the server's system calls with ``strace -f -c`` while
every connection echoes N messages, and divides by the messages.

Needs a C compiler, the OpenSSL headers and libraries (libssl-dev) and the
openssl command line tool (for a throwaway certificate); valgrind for
``--callgrind``, strace for ``--strace``.
"""

import argparse
import hashlib
import json
import os
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIENT_SRC = os.path.join(REPO_ROOT, "bench", "c", "tls_echo_client.c")
READ_SIZE = 64 * 1024
LOOPS = ("asyncio", "uvloop", "turboloop")


# -- the server (a child process) ----------------------------------------------------


def serve(loop_name, certfile, keyfile):
    import asyncio
    import ssl

    from bench.loops import loop_factory

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certfile, keyfile)

    async def echo(reader, writer):
        try:
            while True:
                data = await reader.read(READ_SIZE)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def main():
        loop = asyncio.get_running_loop()
        server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=ctx, backlog=1024)
        print("READY", server.sockets[0].getsockname()[1], flush=True)
        await loop.run_in_executor(None, sys.stdin.buffer.read)
        server.close()

    runner = asyncio.Runner(loop_factory=loop_factory(loop_name))
    with runner:
        runner.run(main())


# -- set-up -------------------------------------------------------------------------


def _cache_dir():
    from bench import cbuild
    return cbuild.cache_dir()


def build_client():
    """The compiled load generator (cached by a hash of its source)."""
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        raise SystemExit(f"no C compiler ({cc}) on PATH")
    flags = ["-O2", "-Wall", "-Wextra", "-std=gnu11"]
    with open(CLIENT_SRC, "rb") as f:
        digest = hashlib.sha256(f.read() + " ".join([cc] + flags).encode()).hexdigest()[:16]
    out = os.path.join(_cache_dir(), f"tls_echo_client-{digest}")
    if not os.path.exists(out):
        tmp = f"{out}.{os.getpid()}.tmp"
        proc = subprocess.run([cc, *flags, "-o", tmp, CLIENT_SRC, "-lssl", "-lcrypto"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"compiling {CLIENT_SRC} failed (libssl-dev installed?):\n"
                             f"{proc.stderr}")
        os.replace(tmp, out)
    return out


def make_cert(tmpdir):
    if shutil.which("openssl") is None:
        raise SystemExit("the openssl command line tool is needed for a test certificate")
    cert, key = os.path.join(tmpdir, "cert.pem"), os.path.join(tmpdir, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
    return cert, key


def child_env():
    env = dict(os.environ)
    parts = [REPO_ROOT, os.path.join(REPO_ROOT, "python")]
    parts += [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))
    env["PYTHONHASHSEED"] = "0"
    return env


class Server:
    def __init__(self, cmd, env, cpu=None):
        pre = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
        self.proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     preexec_fn=pre)
        deadline = time.monotonic() + 120
        while True:
            ready, _, _ = select.select([self.proc.stdout], [], [], 1)
            if ready:
                line = self.proc.stdout.readline().decode()
                if line.startswith("READY "):
                    self.port = int(line.split()[1])
                    return
                if not line:
                    raise RuntimeError(f"server exited: {self.stop()[-2000:]}")
            if time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError("server did not become ready")

    def stop(self):
        """Close stdin (the server exits), wait; returns its stderr."""
        try:
            _, err = self.proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err.decode(errors="replace")


def run_client(client, port, args, extra, cpu=None):
    cmd = [client, "--port", str(port), "--conns", str(args.conns), "--size", str(args.size),
           *extra]
    if args.tls12:
        cmd.append("--tls12")
    pre = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, preexec_fn=pre)
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    if "error" in data:
        raise RuntimeError(f"client: {data['error']}")
    return data


def available_loops(names, env, python):
    ok = []
    for name in names:
        proc = subprocess.run([python, "-c", "import sys; from bench.loops import loop_factory; "
                               "loop_factory(sys.argv[1])().close()", name],
                              cwd=REPO_ROOT, env=env, capture_output=True, text=True)
        if proc.returncode == 0:
            ok.append(name)
        else:
            print(f"  n/a {name}: {(proc.stderr.strip().splitlines() or [''])[-1]}")
    return ok


# -- CPU time ------------------------------------------------------------------------


def measure_cpu(args, loops, client, cert, key, env):
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu, client_cpu = (cpus[-1], cpus[0]) if len(cpus) > 1 and not args.no_pin else (None, None)
    samples = {lp: [] for lp in loops}
    for rep in range(args.reps):
        order = loops[rep % len(loops):] + loops[:rep % len(loops)]
        for lp in order:
            server = Server([args.python, "-m", "bench.tls", "--serve", lp, "--cert", cert,
                             "--key", key], env, server_cpu)
            try:
                data = run_client(client, server.port, args,
                                  ["--warmup", str(args.warmup), "--duration", str(args.duration),
                                   "--server-pid", str(server.proc.pid)], client_cpu)
            finally:
                server.stop()
            tick = 1e6 / data["clk_tck"]
            msgs = data["msgs"]
            samples[lp].append({
                "msgs_per_s": msgs / data["seconds"],
                "user": data["utime_ticks"] * tick / msgs,
                "sys": data["stime_ticks"] * tick / msgs,
            })
            print(f"  rep {rep + 1} {lp:9} {msgs / data['seconds']:9,.0f} msg/s  "
                  f"{(data['utime_ticks'] + data['stime_ticks']) * tick / msgs:6.2f} us CPU/msg",
                  file=sys.stderr)
    print(f"\nTLS echo over streams, {args.size} B messages, {args.conns} connections, "
          f"median of {args.reps} (Python {sys.version.split()[0]})")
    print(f"{'loop':10} {'msg/s':>10} {'user us':>8} {'sys us':>8} {'CPU us/msg':>11}")
    med = {}
    for lp in loops:
        s = samples[lp]
        total = statistics.median(x["user"] + x["sys"] for x in s)
        spread = (max(x["user"] + x["sys"] for x in s) - min(x["user"] + x["sys"] for x in s)) / 2
        med[lp] = total
        print(f"{lp:10} {statistics.median(x['msgs_per_s'] for x in s):10,.0f} "
              f"{statistics.median(x['user'] for x in s):8.2f} "
              f"{statistics.median(x['sys'] for x in s):8.2f} "
              f"{total:7.2f} ±{100 * spread / total:.0f}%")
    _ratios(med, "CPU time per message")
    return samples


def _ratios(values, what):
    tl = values.get("turboloop")
    for base in ("uvloop", "asyncio"):
        if tl and values.get(base):
            print(f"  {what}: turboloop/{base} = {tl / values[base]:.2f}x")


# -- instructions --------------------------------------------------------------------


def callgrind_count(args, loop, client, cert, key, env, msgs):
    from bench.callgrind import split_by_object
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        server = Server(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                         args.python, "-m", "bench.tls", "--serve", loop, "--cert", cert,
                         "--key", key], env)
        try:
            data = run_client(client, server.port, args, ["--msgs", str(msgs)])
        finally:
            err = server.stop()
        m = re.search(r"Collected\s*:\s*(\d+)", err)
        if not m:
            raise RuntimeError(f"no instruction count for {loop}: {err[-2000:]}")
        return int(m.group(1)), data["msgs"], split_by_object(out)


def measure_instructions(args, loops, client, cert, key, env):
    results, splits = {}, {}
    for lp in loops:
        small, n_small, s_small = callgrind_count(args, lp, client, cert, key, env, args.msgs)
        big, n_big, s_big = callgrind_count(args, lp, client, cert, key, env, 2 * args.msgs)
        per = n_big - n_small
        results[lp] = (big - small) / per
        splits[lp] = {k: (s_big.get(k, 0) - s_small.get(k, 0)) / per
                      for k in set(s_small) | set(s_big)}
        print(f"  {lp}: {results[lp]:,.0f} instructions/msg", file=sys.stderr)
    kinds = ("interpreter", "loop", "_asyncio", "libc", "other")
    print(f"\nInstructions per message under callgrind, TLS echo over streams, {args.size} B, "
          f"{args.conns} connections x {args.msgs}/{2 * args.msgs} messages "
          f"(Python {sys.version.split()[0]})")
    print(f"{'loop':10} {'instr/msg':>10} " + " ".join(f"{k:>11}" for k in kinds))
    for lp in loops:
        print(f"{lp:10} {results[lp]:10,.0f} "
              + " ".join(f"{splits[lp].get(k, 0):11,.0f}" for k in kinds))
    _ratios(results, "instructions per message")
    return results, splits


# -- system calls ------------------------------------------------------------------


def strace_counts(args, loop, client, cert, key, env):
    """System calls per message of the server, from `strace -f -c` while
    every connection echoes --msgs messages (start-up and handshakes
    included, which --msgs large enough makes negligible)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "strace.txt")
        server = Server(["strace", "-f", "-c", "-o", out, args.python, "-m", "bench.tls",
                         "--serve", loop, "--cert", cert, "--key", key], env)
        try:
            data = run_client(client, server.port, args, ["--msgs", str(args.msgs)])
        finally:
            server.stop()
        counts = {}
        with open(out) as f:
            for line in f:
                parts = line.split()
                # % time, seconds, usecs/call, calls, [errors,] syscall
                if len(parts) >= 5 and parts[3].isdigit() and parts[-1] != "total":
                    counts[parts[-1]] = int(parts[3])
        return {k: v / data["msgs"] for k, v in counts.items()}


def measure_syscalls(args, loops, client, cert, key, env):
    results = {lp: strace_counts(args, lp, client, cert, key, env) for lp in loops}
    names = sorted({k for r in results.values() for k, v in r.items() if v >= 0.05},
                   key=lambda k: -max(r.get(k, 0) for r in results.values()))
    print(f"\nSystem calls per message of the server (strace -f -c), TLS echo over streams, "
          f"{args.size} B, {args.conns} connections x {args.msgs} messages "
          f"(Python {sys.version.split()[0]}); calls under 0.05 per message left out")
    print(f"{'syscall':14}" + "".join(f"{lp:>11}" for lp in loops))
    for name in names:
        print(f"{name:14}" + "".join(f"{results[lp].get(name, 0):11.2f}" for lp in loops))
    return results


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.tls", description=__doc__.split("\n\n")[0])
    p.add_argument("--serve", metavar="LOOP", help=argparse.SUPPRESS)
    p.add_argument("--cert", help=argparse.SUPPRESS)
    p.add_argument("--key", help=argparse.SUPPRESS)
    p.add_argument("--loops", default=",".join(LOOPS))
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--conns", type=int, default=10)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--duration", type=float, default=2.0)
    p.add_argument("--tls12", action="store_true", help="TLS 1.2 instead of 1.3")
    p.add_argument("--no-pin", action="store_true")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--callgrind", action="store_true")
    p.add_argument("--strace", action="store_true",
                   help="system calls per message (strace -f -c), --msgs per connection")
    p.add_argument("--msgs", type=int, default=200,
                   help="messages per connection of the smaller --callgrind run")
    p.add_argument("--json", help="write the samples to this file")
    args = p.parse_args(argv)
    if args.serve:
        serve(args.serve, args.cert, args.key)
        return 0
    if args.callgrind and shutil.which("valgrind") is None:
        p.error("valgrind is not installed")
    if args.strace and shutil.which("strace") is None:
        p.error("strace is not installed")
    env = child_env()
    loops = available_loops([s for s in args.loops.split(",") if s], env, args.python)
    client = build_client()
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = make_cert(tmp)
        if args.callgrind:
            result = measure_instructions(args, loops, client, cert, key, env)
        elif args.strace:
            result = measure_syscalls(args, loops, client, cert, key, env)
        else:
            result = measure_cpu(args, loops, client, cert, key, env)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "result": result}, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
