"""A live view of a running program's event loops from another terminal.

A program opts in with ``python -m turboloop --monitor ...`` or by setting
``TURBOLOOP_MONITOR=1``.  Then

    python -m turboloop ps PID      its tasks and where each one waits, once
    python -m turboloop top PID     a table of tasks refreshed every second

How: the program listens on a Unix socket, ``<dir>/<pid>.sock``, where
<dir> is ``$TURBOLOOP_MONITOR_DIR``, else ``$XDG_RUNTIME_DIR/turboloop``, else
``/tmp/turboloop-<uid>``: a directory of mode 0700 that the user owns (the
server refuses to use one that is not), holding a socket of mode 0600.  A
thread blocked in accept() serves it, so nothing happens in the program
until someone connects; the loop itself is never touched.  The server also
checks the peer's user id (SO_PEERCRED) and answers only its own user.

While a ``top`` is connected the loops are profiled (unless they already
are), so that it can show each task's share of the loop; profiling stops
when it disconnects.
"""

import asyncio
import json
import os
import socket
import stat
import struct
import sys
import threading
import time
import weakref

from . import profiling
from ._report import fmt_int, fmt_pct, fmt_time, table

_loops = weakref.WeakSet()          # every turboloop loop made since start()
_lock = threading.Lock()
_server = None                      # (pid, socket, path), once started
_MAX_REQUEST = 4096


# ---------------------------------------------------------------------------
# Where the socket is


def socket_dir():
    d = os.environ.get("TURBOLOOP_MONITOR_DIR")
    if d:
        return d
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return os.path.join(runtime, "turboloop")
    return os.path.join("/tmp", f"turboloop-{os.getuid()}")


def socket_path(pid):
    return os.path.join(socket_dir(), f"{int(pid)}.sock")


def _private_dir(path):
    """Create path (mode 0700) or check that it is a directory of ours that
    nobody else can enter; raise OSError otherwise."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise OSError(f"{path} is not a directory")
    if st.st_uid != os.getuid():
        raise OSError(f"{path} belongs to uid {st.st_uid}, not to us")
    if st.st_mode & 0o077:
        raise OSError(f"{path} is open to other users (mode {st.st_mode & 0o777:o})")


# ---------------------------------------------------------------------------
# The server, in the monitored program


def start():
    """Serve the monitor socket for this process (once per process; again in
    a child after fork).  Failing to (a directory that is not private, a
    path too long) only prints a warning."""
    global _server
    with _lock:
        if _server is not None and _server[0] == os.getpid():
            return
        path = socket_path(os.getpid())
        try:
            _private_dir(os.path.dirname(path))
            sock = _listen(path)
        except OSError as exc:
            print(f"turboloop: no monitor socket: {exc}", file=sys.stderr)
            _server = (os.getpid(), None, None)
            return
        _server = (os.getpid(), sock, path)
        if _register_loop not in profiling.ProfilingMixin._new_loop_hooks:
            profiling.ProfilingMixin._new_loop_hooks.append(_register_loop)
        threading.Thread(target=_serve, args=(sock,), name="turboloop-monitor",
                         daemon=True).start()
        import atexit
        atexit.register(_stop, os.getpid(), sock, path)


def _listen(path):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        # Left by an earlier process with the same pid.
        if stat.S_ISSOCK(st.st_mode) and st.st_uid == os.getuid():
            os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old = os.umask(0o177)
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        sock.listen(8)
    except OSError:
        sock.close()
        raise
    return sock


def _stop(pid, sock, path):
    if os.getpid() != pid:
        return
    try:
        # Wakes the thread blocked in accept().
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
    try:
        os.unlink(path)
    except OSError:
        pass


def _register_loop(loop):
    _loops.add(loop)


def _serve(sock):
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return                      # closed at exit
        threading.Thread(target=_session, args=(conn,), name="turboloop-monitor-client",
                         daemon=True).start()


def _peer_uid(conn):
    if not hasattr(socket, "SO_PEERCRED"):
        return os.getuid()              # the directory's mode is the check
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def _session(conn):
    profiled = []                       # loops this session switched profiling on for
    try:
        with conn, conn.makefile("rwb") as f:
            if _peer_uid(conn) != os.getuid():
                f.write(b'{"error": "permission denied: not the same user"}\n')
                f.flush()
                # Let the client send its request (unread) rather than find
                # the connection gone before it reads the answer.
                conn.shutdown(socket.SHUT_WR)
                conn.settimeout(2)
                conn.recv(_MAX_REQUEST)
                return
            for line in f:
                if len(line) > _MAX_REQUEST:
                    return
                try:
                    request = json.loads(line)
                except ValueError:
                    return
                if request.get("profile"):
                    for loop in list(_loops):
                        if not loop.is_closed() and not loop.is_profiling():
                            loop.set_profiling(True)
                            profiled.append(loop)
                reply = snapshot(stacks=bool(request.get("stacks")))
                f.write(json.dumps(reply, default=str).encode() + b"\n")
                f.flush()
    except (OSError, ValueError):
        pass
    finally:
        for loop in profiled:
            if not loop.is_closed():
                loop.set_profiling(False)


def _task_row(task, loop, current, stats, stacks):
    coro = task.get_coro()
    stack = profiling._coro_stack(coro) if coro is not None else ()
    mine = [fr for fr in stack if not fr[0].startswith(profiling._SKIP_PREFIXES)]
    at = mine[-1] if mine else (stack[-1] if stack else None)
    waiter = getattr(task, "_fut_waiter", None)
    if stack and stack[-1][0].startswith(profiling._SKIP_PREFIXES):
        awaiting = stack[-1][2]         # asyncio.sleep, Queue.get, ...
    elif waiter is not None:
        awaiting = type(waiter).__name__
    else:
        awaiting = ""
    row = {
        "name": task.get_name(),
        "coroutine": getattr(coro, "__qualname__", type(coro).__name__),
        "state": "running" if task is current else "waiting",
        "at": profiling._where(at[0], at[1]) if at else None,
        "awaiting": awaiting,
    }
    if stacks:
        row["stack"] = [[profiling._where(fn, line), name] for fn, line, name in stack]
    s = stats.get(id(task))
    if s is not None:
        row.update(steps=s["steps"], busy=s["busy"] * 1e-9, max=s["max"] * 1e-9,
                   wait=s["wait"] * 1e-9)
    return row


def _loop_row(loop, stacks):
    row = {"loop": f"0x{id(loop):x}", "running": loop.is_running(),
           "closed": loop.is_closed()}
    if loop.is_closed():
        return row
    row["stats"] = loop.stats()
    stats = {}
    prof = loop._profiler
    if prof is not None and prof.attached:
        raw = prof.snapshot(trace=False, finished=False)
        for t in raw["tasks"]:
            if t["task"] is not None:
                stats[id(t["task"])] = t
        cur = raw["current"]
        row["profile"] = {"run": raw["run"] * 1e-9, "busy": raw["busy"] * 1e-9,
                          "poll_idle": raw["poll_idle"] * 1e-9, "spans": raw["spans"],
                          "ready_p99": profiling.Lag.from_raw(raw["ready_lag"]).p99,
                          "timer_p99": profiling.Lag.from_raw(raw["timer_lateness"]).p99}
        if cur is not None:
            site = raw["sites"][cur["site"]] if 0 <= cur["site"] < len(raw["sites"]) else None
            name = profiling._site_label(cur["kind"], site["what"])[0] if site else cur["kind"]
            row["running_now"] = {"kind": cur["kind"], "name": name,
                                  "for": cur["elapsed"] * 1e-9}
    # Where the loop's thread is right now (a blocking callback shows here);
    # not when it is in the loop itself (polling, or between callbacks).
    tid = loop._thread_id
    frame = sys._current_frames().get(tid) if tid is not None else None
    if frame is not None and not (frame.f_code is _RUN_FOREVER_CODE):
        where = []
        while frame is not None and len(where) < 8:
            code = frame.f_code
            where.append([profiling._where(code.co_filename, frame.f_lineno),
                          getattr(code, "co_qualname", code.co_name)])
            frame = frame.f_back
        row["thread_at"] = where
    current = asyncio.current_task(loop) if loop.is_running() else None
    tasks = []
    for task in asyncio.all_tasks(loop):
        try:
            tasks.append(_task_row(task, loop, current, stats, stacks))
        except Exception as exc:    # noqa: BLE001 - one odd task must not hide the rest
            tasks.append({"name": repr(task), "error": repr(exc)})
    tasks.sort(key=lambda t: (-t.get("busy", 0.0), t["name"]))
    row["tasks"] = tasks
    return row


_RUN_FOREVER_CODE = None


def snapshot(stacks=False):
    """What ps and top show, as plain data."""
    global _RUN_FOREVER_CODE
    if _RUN_FOREVER_CODE is None:
        from ._loop import Loop
        _RUN_FOREVER_CODE = Loop.run_forever.__code__
    return {"pid": os.getpid(), "argv": sys.argv, "time": time.monotonic(),
            "loops": [_loop_row(loop, stacks) for loop in list(_loops)]}


# ---------------------------------------------------------------------------
# The client: python -m turboloop ps|top PID

CLIENT_USAGE = """\
usage: python -m turboloop ps PID [--stacks] [--socket PATH]
       python -m turboloop top PID [-d SECONDS] [-n COUNT] [--socket PATH]

ps shows the tasks of a program started with `python -m turboloop --monitor`
(or with TURBOLOOP_MONITOR=1) and where each one waits; top refreshes a
table of them every SECONDS (default 1) until Ctrl-C, or COUNT times.
"""


class MonitorError(Exception):
    pass


class Connection:
    def __init__(self, pid, path=None):
        self.path = path or socket_path(pid)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        try:
            self.sock.connect(self.path)
        except FileNotFoundError:
            self.sock.close()
            raise MonitorError(
                f"no monitor socket for process {pid} ({self.path}); start the program "
                f"with `python -m turboloop --monitor ...` or TURBOLOOP_MONITOR=1") from None
        except ConnectionRefusedError:
            self.sock.close()
            raise MonitorError(f"process {pid} is not listening on {self.path} "
                               f"(it has exited?)") from None
        except PermissionError:
            self.sock.close()
            raise MonitorError(f"permission denied: {self.path} belongs to "
                               f"another user") from None
        self.file = self.sock.makefile("rwb")

    def request(self, **req):
        try:
            try:
                self.file.write(json.dumps(req).encode() + b"\n")
                self.file.flush()
            except BrokenPipeError:
                pass                    # the program may have said why first
            line = self.file.readline()
        except socket.timeout:
            raise MonitorError("no answer within 10 s (is the program's main thread "
                               "holding the GIL in C code?)") from None
        except OSError as exc:
            raise MonitorError(f"connection lost: {exc}") from None
        if not line:
            raise MonitorError("the program closed the connection")
        reply = json.loads(line)
        if "error" in reply:
            raise MonitorError(reply["error"])
        return reply

    def close(self):
        try:
            self.file.close()
        except OSError:
            pass
        finally:
            self.sock.close()


def _header(snap):
    argv = " ".join(snap["argv"])
    n = len(snap["loops"])
    return f"process {snap['pid']}: {argv}   ({n} event loop{'s' if n != 1 else ''})"


def _thread_line(loop):
    at = loop.get("thread_at") or []
    if not at:
        return None
    return "  the loop's thread is in: " + " < ".join(f"{name} ({where})" for where, name in at[:4])


def format_ps(snap, width=100, stacks=False):
    out = [_header(snap)]
    for i, loop in enumerate(snap["loops"]):
        state = "closed" if loop["closed"] else "running" if loop["running"] else "not running"
        out.append("")
        if loop["closed"]:
            out.append(f"loop {i + 1}: closed")
            continue
        st = loop["stats"]
        out.append(f"loop {i + 1}: {state}, {fmt_int(st['iterations'])} iterations, "
                   f"{fmt_int(st['callbacks'])} callbacks, {fmt_int(len(loop['tasks']))} tasks")
        line = _thread_line(loop)
        if line and loop["running"]:
            out.append(line)
        rows = [[t["name"], t.get("coroutine", "?"), t.get("state", "?"),
                 t.get("awaiting") or "-", t.get("at") or "-"] for t in loop["tasks"]]
        out.extend(table(["task", "coroutine", "state", "awaiting", "at"], rows,
                         flex=(0, 1, 3, 4), left_cut=(4,), width=width))
        if stacks:
            for t in loop["tasks"]:
                if t.get("stack"):
                    out.append(f"  {t['name']}:")
                    out.extend(f"      {name} ({where})" for where, name in t["stack"])
    return "\n".join(out) + "\n"


def format_top(snap, prev, width=100):
    out = [_header(snap) + time.strftime("   %H:%M:%S")]
    prev_loops = {lp["loop"]: lp for lp in prev["loops"]} if prev else {}
    for i, loop in enumerate(snap["loops"]):
        out.append("")
        if loop["closed"]:
            out.append(f"loop {i + 1}: closed")
            continue
        before = prev_loops.get(loop["loop"])
        prof, pprof = loop.get("profile"), (before or {}).get("profile")
        st = loop["stats"]
        head = f"loop {i + 1}: {fmt_int(st['iterations'])} iterations"
        if prof and pprof and prof["run"] > pprof["run"]:
            dt = prof["run"] - pprof["run"]
            busy = (prof["busy"] - pprof["busy"]) / dt
            idle = (prof["poll_idle"] - pprof["poll_idle"]) / dt
            its = (st["iterations"] - before["stats"]["iterations"]) / dt
            head += (f"   busy {fmt_pct(busy)}  idle {fmt_pct(idle)}   "
                     f"{fmt_int(round(its))} iterations/s")
        if prof:
            head += f"   lag p99: timers {fmt_time(prof['timer_p99'])}, ready {fmt_time(prof['ready_p99'])}"
        out.append(head)
        now = loop.get("running_now")
        if now and now["for"] > 0.1:
            out.append(f"  running now: {now['name']} ({now['kind']}) for {fmt_time(now['for'])}")
            line = _thread_line(loop)
            if line:
                out.append(line)
        old = {t["name"]: t for t in (before or {}).get("tasks", ())}
        dt = (prof["run"] - pprof["run"]) if (prof and pprof) else 0
        rows = []
        for t in loop["tasks"]:
            # A task without figures before had not run since profiling began.
            o = old.get(t["name"]) or {}
            if dt > 0 and "busy" in t:
                share = fmt_pct(max(0.0, t["busy"] - o.get("busy", 0.0)) / dt)
                rate = fmt_int(round(max(0, t["steps"] - o.get("steps", 0)) / dt))
            else:
                share = rate = "-"
            rows.append([t["name"], t.get("coroutine", "?"), share, rate,
                         fmt_time(t["busy"]) if "busy" in t else "-",
                         fmt_time(t["max"]) if "max" in t else "-",
                         t.get("awaiting") or "-", t.get("at") or "-"])
        rows.sort(key=lambda r: -float(r[2].rstrip("%")) if r[2] != "-" else 0.0)
        out.extend(table(["task", "coroutine", "busy%", "steps/s", "total", "max step",
                          "awaiting", "at"], rows, right=(2, 3, 4, 5),
                         flex=(0, 1, 6, 7), left_cut=(7,), width=width))
    return "\n".join(out) + "\n"


def client_main(args):
    cmd, rest = args[0], args[1:]
    pid = path = None
    interval, count, stacks = 1.0, None, False
    try:
        while rest:
            a = rest.pop(0)
            if a in ("-h", "--help"):
                sys.stdout.write(CLIENT_USAGE)
                return 0
            if a == "--socket":
                path = rest.pop(0)
            elif a == "-d" and cmd == "top":
                interval = float(rest.pop(0))
            elif a == "-n" and cmd == "top":
                count = int(rest.pop(0))
            elif a == "--stacks" and cmd == "ps":
                stacks = True
            elif pid is None and a.isdigit():
                pid = int(a)
            else:
                raise ValueError(f"unexpected argument {a!r}")
        if pid is None and path is None:
            raise ValueError("a process id is needed")
        if interval <= 0 or (count is not None and count <= 0):
            raise ValueError("-d and -n take positive numbers")
    except (ValueError, IndexError) as exc:
        sys.stderr.write(f"{exc}\n{CLIENT_USAGE}")
        return 2
    try:
        conn = Connection(pid, path)
    except MonitorError as exc:
        print(f"turboloop {cmd}: {exc}", file=sys.stderr)
        return 1
    try:
        if cmd == "ps":
            sys.stdout.write(format_ps(conn.request(stacks=stacks), stacks=stacks))
            return 0
        return _top(conn, interval, count)
    except MonitorError as exc:
        print(f"turboloop {cmd}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        conn.close()


def _top(conn, interval, count):
    tty = sys.stdout.isatty()
    prev = conn.request(profile=True)
    shown = 0
    while count is None or shown < count:
        time.sleep(interval)
        snap = conn.request(profile=True)
        text = format_top(snap, prev)
        if tty:
            sys.stdout.write("\x1b[H\x1b[2J" + text)
        else:
            sys.stdout.write(text + "\n")
        sys.stdout.flush()
        prev = snap
        shown += 1
    return 0
