"""A FastAPI `def` endpoint under uvicorn, on asyncio, uvloop and turboloop.

    python -m bench.fastapi_def [--loops asyncio,uvloop,turboloop] [--duration 10]
                                [--conns 32] [--runs 3]

Starlette runs a `def` endpoint in a worker thread through anyio's
to_thread.run_sync(), so this measures the loop together with anyio's
thread hand-off: anyio keeps its idle worker threads for the life of the
root task it finds, and starts a thread per request when it cannot find it.

For each loop: uvicorn (one process, `--loop asyncio|uvloop|
turboloop:new_event_loop`) on 127.0.0.1, wrk -t1 for --duration seconds after
a 2 s warm-up, --runs times.  Reported: requests/s, the server process's CPU
time per request (user + system, all threads, from /proc), and how many
distinct threads ran the endpoint during the measured run.  Needs fastapi,
uvicorn, wrk (apt-get install wrk) and, for its column, uvloop.
"""

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request

APP = textwrap.dedent("""
    import threading
    from fastapi import FastAPI

    app = FastAPI()
    _local = threading.local()
    _threads = 0
    _lock = threading.Lock()

    @app.get("/")
    def hello():
        global _threads
        if not hasattr(_local, "seen"):
            _local.seen = True
            with _lock:
                _threads += 1
        return {"hello": "world"}

    @app.get("/threads")
    async def threads():
        return {"threads": _threads}
""")

LOOP_OPTION = {
    "asyncio": "asyncio",
    "uvloop": "uvloop",
    "turboloop": "turboloop:new_event_loop",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """User + system CPU time of a process, all its threads, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def get_json(url):
    import json
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def wrk(url, seconds, conns):
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", url],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"^\s*(\d+) requests in", out, re.M)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    if errors:
        raise SystemExit(f"wrk reported errors:\n{out}")
    return int(m.group(1))


def run_one(python, loop, duration, conns, workdir):
    port = free_port()
    cmd = [python, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port),
           "--loop", LOOP_OPTION[loop], "--log-level", "warning", "--no-access-log"]
    # The server runs in workdir: PYTHONPATH entries relative to here must
    # still find turboloop.
    env = dict(os.environ)
    if env.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p) for p in env["PYTHONPATH"].split(os.pathsep))
    server = subprocess.Popen(cmd, cwd=workdir, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                get_json(base + "/threads")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the server did not start: {' '.join(cmd)}")
                time.sleep(0.1)
        wrk(base + "/", 2, conns)                     # warm-up
        threads0 = get_json(base + "/threads")["threads"]
        cpu0 = cpu_seconds(server.pid)
        t0 = time.monotonic()
        requests = wrk(base + "/", duration, conns)
        elapsed = time.monotonic() - t0
        cpu = cpu_seconds(server.pid) - cpu0
        threads = get_json(base + "/threads")["threads"] - threads0
    finally:
        server.terminate()
        server.wait(30)
    return {"rps": requests / elapsed, "cpu_us": cpu / requests * 1e6, "threads": threads,
            "requests": requests}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.fastapi_def", description=__doc__.split("\n\n")[0])
    p.add_argument("--loops", default="asyncio,uvloop,turboloop")
    p.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    p.add_argument("--conns", type=int, default=32)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--python", default=sys.executable)
    args = p.parse_args(argv)
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    loops = args.loops.split(",")
    versions = subprocess.run(
        [args.python, "-c", "import sys; from importlib.metadata import version as v; "
         "print(sys.version.split()[0], v('fastapi'), v('uvicorn'), v('anyio'))"],
        capture_output=True, text=True, check=True).stdout.split()
    print(f"Python {versions[0]}, fastapi {versions[1]}, uvicorn {versions[2]}, anyio {versions[3]}; "
          f"wrk -t1 -c{args.conns} -d{args.duration}s, {args.runs} runs per loop (median)")
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        with open(os.path.join(workdir, "app.py"), "w") as f:
            f.write(APP)
        # Interleaved, so that a slow phase of a shared machine hits every loop.
        for _ in range(args.runs):
            for loop in loops:
                results.setdefault(loop, []).append(
                    run_one(args.python, loop, args.duration, args.conns, workdir))
    print(f"| loop | requests/s | CPU µs/request | threads that ran the endpoint |")
    print(f"| --- | ---: | ---: | ---: |")
    for loop in loops:
        rs = results[loop]
        rps = statistics.median(r["rps"] for r in rs)
        cpu = statistics.median(r["cpu_us"] for r in rs)
        threads = statistics.median(r["threads"] for r in rs)
        print(f"| {loop} | {rps:,.0f} | {cpu:.0f} | {threads:g} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
