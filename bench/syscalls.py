"""System calls per request of the streams HTTP/1.1 keep-alive server.

The server (``bench.worker streams-http-server``) is warmed up by the load
generator, then a counter attaches to all its threads, the load generator
makes exactly REQUESTS requests over CONNS keep-alive connections (one in
flight on each), and the counter is detached; its counts divided by
REQUESTS are the calls per request.  Two counters:

- ``strace -c -f -p PID``.  strace stops the server at every system call,
  which makes each call cost tens of microseconds, so a server turns its
  requests around more slowly and finds more of them ready at each poll
  than it would untraced; compare the loops within a run.
- ``perf stat -e syscalls:sys_enter_...`` (kernel tracepoints), which
  counts without stopping the server, so the counts are those of a server
  at full speed.

Both need the right to trace the server (root, or kernel.yama.ptrace_scope
= 0 for strace and a low enough kernel.perf_event_paranoid for perf).
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


# Not a system call: polls that returned no event (perf only).
EMPTY_POLL = "(empty polls)"


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
    seen = {EMPTY_POLL}
    for name, members in GROUPS.items():
        n = sum(calls.get(m, 0) for m in members)
        seen.update(members)
        out[name] = n / requests
    out["other"] = sum(v for k, v in calls.items() if k not in seen) / requests
    out["total"] = sum(v for k, v in calls.items() if k != EMPTY_POLL) / requests
    if EMPTY_POLL in calls:
        out["empty poll"] = calls[EMPTY_POLL] / requests
    return out


def _attached(proc, pid, what):
    """Wait until proc (a tracer of pid) is attached."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Unavailable(f"{what} could not attach: "
                              + proc.stderr.read().decode(errors="replace").strip()[-300:])
        if what != "strace":
            time.sleep(0.5)     # perf prints nothing when it is ready
            return
        with open(f"/proc/{pid}/status") as f:
            if any(line.startswith("TracerPid:") and line.split()[1] != "0" for line in f):
                time.sleep(0.1)     # every thread attached
                return
        time.sleep(0.01)
    proc.kill()
    raise Unavailable(f"{what} did not attach within 10 s")


# The system calls perf counts by name: every one the loops' servers make
# per request (GROUPS), plus the total of all calls.
PERF_CALLS = sorted({c for members in GROUPS.values() for c in members} | {"futex"})
TRACEFS = ("/sys/kernel/tracing/events/syscalls", "/sys/kernel/debug/tracing/events/syscalls")


def measure_perf(server_pid, run_load):
    """Like measure(), counting with perf's syscall tracepoints."""
    if shutil.which("perf") is None:
        raise Unavailable("perf is not installed (apt-get install linux-perf)")
    tracefs = next((d for d in TRACEFS if os.path.isdir(d)), None)
    if tracefs is None:
        raise Unavailable("no syscall tracepoints (tracefs is not mounted)")
    names = [c for c in PERF_CALLS if os.path.isdir(os.path.join(tracefs, f"sys_enter_{c}"))]
    events = ",".join(["raw_syscalls:sys_enter"] + [f"syscalls:sys_enter_{c}" for c in names])
    cmd = ["perf", "stat", "-x,", "-e", events]
    # Polls that returned no event: the ones a loop could have done without.
    for c in ("epoll_wait", "epoll_pwait"):
        if os.path.isdir(os.path.join(tracefs, f"sys_exit_{c}")):
            cmd += ["-e", f"syscalls:sys_exit_{c}", "--filter", "ret == 0"]
    pf = subprocess.Popen(cmd + ["-p", str(server_pid)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _attached(pf, server_pid, "perf")
    try:
        result = run_load()
    finally:
        pf.send_signal(signal.SIGINT)
        _, err = pf.communicate(timeout=30)
    calls = {}
    total = empty = None
    for line in err.decode(errors="replace").splitlines():
        parts = line.split(",")
        if len(parts) < 3 or not parts[0].isdigit():
            continue
        if parts[2] == "raw_syscalls:sys_enter":
            total = int(parts[0])
        elif parts[2].startswith("syscalls:sys_enter_"):
            calls[parts[2][len("syscalls:sys_enter_"):]] = int(parts[0])
        elif parts[2].startswith("syscalls:sys_exit_"):
            empty = (empty or 0) + int(parts[0])
    if total is None:
        raise Unavailable("perf counted nothing: " + err.decode(errors="replace")[-300:])
    calls["(others)"] = total - sum(calls.values())
    if empty is not None:
        calls[EMPTY_POLL] = empty
    return result, calls


def measure(server_pid, run_load, tmpdir):
    """Attach strace to server_pid, call run_load(), detach; the calls
    counted in between."""
    if shutil.which("strace") is None:
        raise Unavailable("strace is not installed (apt-get install strace)")
    fd, out = tempfile.mkstemp(prefix="strace-", dir=tmpdir)
    os.close(fd)
    st = subprocess.Popen(["strace", "-c", "-f", "-q", "-o", out, "-p", str(server_pid)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _attached(st, server_pid, "strace")
    try:
        result = run_load()
    finally:
        st.send_signal(signal.SIGINT)
        st.wait(timeout=30)
    with open(out) as f:
        text = f.read()
    os.unlink(out)
    return result, parse_summary(text)
