"""System calls per request of the streams HTTP/1.1 keep-alive server.

The server (``bench.worker streams-http-server``) is warmed up by the load
generator, then ``strace -c -f -p PID`` attaches to all its threads, the
load generator makes exactly REQUESTS requests over CONNS keep-alive
connections (one in flight on each), and strace is detached; its summary,
divided by REQUESTS, gives the calls per request by name.  strace slows
every system call down, which changes how many requests one poll returns
on any loop, so compare the loops within a run rather than with a run
without strace.

Needs strace and the right to trace the server (root, or
kernel.yama.ptrace_scope = 0).
"""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

# How the calls are grouped in the table.
GROUPS = {
    "poll": ("epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "ppoll", "select",
             "pselect6", "io_uring_enter"),
    "recv": ("recvfrom", "recvmsg", "recv", "read", "readv"),
    "send": ("sendto", "sendmsg", "send", "write", "writev"),
    "epoll_ctl": ("epoll_ctl",),
}


class Unavailable(Exception):
    pass


def parse_summary(text):
    """{syscall: calls} from strace -c output."""
    calls = {}
    for line in text.splitlines():
        parts = line.split()
        # % time, seconds, usecs/call, calls, [errors,] syscall
        if len(parts) >= 5 and parts[-1] != "total" and re.fullmatch(r"[\d.]+", parts[0]):
            try:
                calls[parts[-1]] = calls.get(parts[-1], 0) + int(parts[3])
            except ValueError:
                continue
    return calls


def group(calls, requests):
    out = {}
    seen = set()
    for name, members in GROUPS.items():
        n = sum(calls.get(m, 0) for m in members)
        seen.update(members)
        out[name] = n / requests
    out["other"] = sum(v for k, v in calls.items() if k not in seen) / requests
    out["total"] = sum(calls.values()) / requests
    return out


def measure(server_pid, run_load, tmpdir):
    """Attach strace to server_pid, call run_load(), detach; the calls
    counted in between."""
    if shutil.which("strace") is None:
        raise Unavailable("strace is not installed (apt-get install strace)")
    fd, out = tempfile.mkstemp(prefix="strace-", dir=tmpdir)
    os.close(fd)
    st = subprocess.Popen(["strace", "-c", "-f", "-q", "-o", out, "-p", str(server_pid)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # strace has attached once the process shows a tracer.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(f"/proc/{server_pid}/status") as f:
            if any(line.startswith("TracerPid:") and line.split()[1] != "0" for line in f):
                break
        if st.poll() is not None:
            raise Unavailable("strace could not attach: "
                              + st.stderr.read().decode(errors="replace").strip()[-200:])
        time.sleep(0.01)
    else:
        st.kill()
        raise Unavailable("strace did not attach within 10 s")
    time.sleep(0.1)     # every thread attached
    try:
        result = run_load()
    finally:
        st.send_signal(signal.SIGINT)
        st.wait(timeout=30)
    with open(out) as f:
        text = f.read()
    os.unlink(out)
    return result, parse_summary(text)
