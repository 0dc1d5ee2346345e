"""python -m turboloop top|ps PID: a live view of a program started with
--monitor, from another process, and only for the same user.

turboloop only (asyncio has no such thing); nothing here is timed.
"""

import contextlib
import os
import re
import subprocess
import shutil
import sys
import tempfile
import textwrap
import warnings

import pytest

from support import CHILD_TIMEOUT, subprocess_env

LIVE = textwrap.dedent("""\
    import asyncio, time

    async def spinner():
        while True:
            t = time.perf_counter()
            while time.perf_counter() - t < 0.002:
                pass
            await asyncio.sleep(0.001)          # spinner waits here

    async def sleeper():
        while True:
            await asyncio.sleep(0.5)            # sleeper waits here

    async def main():
        tasks = [asyncio.create_task(spinner(), name="spinner"),
                 asyncio.create_task(sleeper(), name="sleeper")]
        await asyncio.sleep(0)
        print("ready", flush=True)
        await asyncio.gather(*tasks)

    asyncio.run(main())
""")


def _line(text):
    return next(i + 1 for i, line in enumerate(LIVE.splitlines()) if text in line)


@contextlib.contextmanager
def running_live(tmp_path, mondir):
    """A monitored program running LIVE: (pid, socket dir, env, script)."""
    script = tmp_path / "live.py"
    script.write_text(LIVE)
    env = subprocess_env(TURBOLOOP_MONITOR_DIR=str(mondir))
    proc = subprocess.Popen([sys.executable, "-m", "turboloop", "--monitor", str(script)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n", proc.stderr.read()
        yield proc.pid, mondir, env, script
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()


@pytest.fixture
def live(tl, tmp_path):
    with running_live(tmp_path, tmp_path / "monitor") as info:
        yield info


def _client(env, cwd, *args):
    return subprocess.run([sys.executable, "-m", "turboloop", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=CHILD_TIMEOUT)


def test_ps_shows_the_tasks_and_where_they_wait(live, tmp_path):
    pid, mondir, env, script = live
    assert oct(os.stat(mondir).st_mode & 0o777) == "0o700"
    assert oct(os.stat(mondir / f"{pid}.sock").st_mode & 0o777) == "0o600"
    proc = _client(env, tmp_path, "ps", str(pid))
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()
            if line.startswith("  ") and line.split()[0] in ("spinner", "sleeper", "Task-1")}
    assert rows["spinner"][1:4] == ["spinner", "waiting", "sleep"]
    assert rows["spinner"][4].endswith(f"live.py:{_line('spinner waits here')}")
    assert rows["sleeper"][4].endswith(f"live.py:{_line('sleeper waits here')}")
    assert rows["Task-1"][1] == "main"


def test_top_shows_each_tasks_share(live, tmp_path):
    pid, _, env, _ = live
    proc = _client(env, tmp_path, "top", str(pid), "-n", "2", "-d", "0.3")
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.split("process ")[-1]
    assert re.search(r"busy \d+\.\d%", last)
    rows = {line.split()[0]: line.split() for line in last.splitlines()
            if line.startswith("  ") and line.split()[0] in ("spinner", "sleeper")}
    spinner, sleeper = rows["spinner"], rows["sleeper"]
    # busy% of the spinner, which does nothing but spin, beats the sleeper's.
    assert float(spinner[2].rstrip("%")) > float(sleeper[2].rstrip("%"))
    assert int(spinner[3].replace(",", "")) > 0


def test_no_monitor(tl, tmp_path):
    env = subprocess_env(TURBOLOOP_MONITOR_DIR=str(tmp_path / "none"))
    proc = _client(env, tmp_path, "ps", str(os.getpid()))
    assert proc.returncode == 1 and "no monitor socket" in proc.stderr
    proc = _client(env, tmp_path, "top", "x")
    assert proc.returncode == 2


def test_opt_in_by_environment(tl, tmp_path):
    mondir = tmp_path / "monitor"
    env = subprocess_env(TURBOLOOP_MONITOR_DIR=str(mondir), TURBOLOOP_MONITOR="1")
    code = ("import os, turboloop\n"
            "async def main():\n"
            "    print(os.path.exists(os.path.join(os.environ['TURBOLOOP_MONITOR_DIR'],"
            " f'{os.getpid()}.sock')))\n"
            "turboloop.run(main())\n")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=CHILD_TIMEOUT)
    assert proc.stdout == "True\n", proc.stderr


def test_refuses_a_directory_others_can_enter(tl, tmp_path):
    mondir = tmp_path / "open"
    mondir.mkdir(mode=0o755)
    os.chmod(mondir, 0o755)
    env = subprocess_env(TURBOLOOP_MONITOR_DIR=str(mondir))
    proc = subprocess.run([sys.executable, "-m", "turboloop", "--monitor", "-c", "pass"],
                          env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    assert proc.returncode == 0
    assert "open to other users" in proc.stderr
    assert os.listdir(mondir) == []


def _as_other_user(fn):
    """Run fn() in a forked child switched to user nobody; its exit status
    and what it printed."""
    r, w = os.pipe()
    with warnings.catch_warnings():
        # 3.12+ warns about forking with threads (pytest's watchdog): the
        # child only makes a connection and exits.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:                        # the child: never returns
        status = 99
        try:
            os.close(r)
            sys.stdout = sys.stderr = os.fdopen(w, "w", buffering=1)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            status = fn()
        except BaseException as exc:    # noqa: BLE001 - reported through the pipe
            print(repr(exc))
        finally:
            sys.stdout.flush()
            os._exit(status)
    os.close(w)
    with os.fdopen(r, errors="replace") as f:
        out = f.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out


@pytest.mark.skipif(not hasattr(os, "fork") or os.geteuid() != 0,
                    reason="needs root, to act as another user")
def test_another_user_cannot_connect(tl, tmp_path):
    # Under /tmp itself, so that only the directories made here can stop
    # the other user on the way to the socket.
    base = tempfile.mkdtemp(prefix="tl-monitor-", dir="/tmp")
    try:
        os.chmod(base, 0o711)
        mondir = os.path.join(base, "monitor")
        with running_live(tmp_path, mondir) as (pid, _, _, _):
            path = os.path.join(mondir, f"{pid}.sock")
            from turboloop import _monitor

            def ps():
                return _monitor.client_main(["ps", str(pid), "--socket", path])

            # The directory (0700) keeps other users out...
            status, out = _as_other_user(ps)
            assert status == 1 and "permission denied" in out, out
            # ...and were it open, the program itself would refuse them.
            os.chmod(mondir, 0o711)
            os.chmod(path, 0o666)
            try:
                status, out = _as_other_user(ps)
            finally:
                os.chmod(path, 0o600)
                os.chmod(mondir, 0o700)
            assert status == 1 and "not the same user" in out, out
            # The owner still gets the tasks.
            assert ps() == 0
    finally:
        shutil.rmtree(base, ignore_errors=True)
