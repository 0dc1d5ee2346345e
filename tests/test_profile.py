"""turboloop's profiler: what it attributes to which task, callback and
site, the report of `python -m turboloop --profile`, and the Chrome trace.

The profiler is turboloop's own (asyncio has none), so these tests run on
turboloop only.  They assert attribution (names, counts, which is the
larger, where a step ended), never how fast anything ran.
"""

import asyncio
import gc
import json
import os
import re
import signal
import subprocess
import sys
import time
import weakref

import pytest

from support import CHILD_TIMEOUT, PY, subprocess_env

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, "examples", "profile_demo.py")
HERE = os.path.abspath(__file__)


def run_profiled(tl, coro_fn, **options):
    """Run coro_fn() on a new turboloop loop with profiling on for the whole
    run; return (its result, the Profile)."""
    loop = tl.new_event_loop()
    try:
        loop.set_profiling(True, **options)
        result = loop.run_until_complete(coro_fn())
        loop.set_profiling(False)
        return result, loop.get_profile()
    finally:
        loop.close()


def line_of(fn, text):
    """The line number of the line of fn's source file that contains text."""
    import inspect
    lines, first = inspect.getsourcelines(fn)
    for i, line in enumerate(lines):
        if text in line:
            return first + i
    raise AssertionError(f"{text!r} not in {fn}")


def task_named(profile, name):
    [t] = [t for t in profile.tasks if t.name == name]
    return t


def site_named(profile, name, kind=None):
    rows = [s for s in profile.callbacks + profile.coroutines
            if s.name == name and (kind is None or s.kind == kind)]
    assert len(rows) == 1, (name, kind, rows)
    return rows[0]


# ---------------------------------------------------------------------------
# What is attributed to what


async def _three_sleeps():
    for _ in range(3):
        await asyncio.sleep(0)
    return "done"


def test_task_steps_and_creation_site(tl):
    async def main():
        t = asyncio.get_running_loop().create_task(_three_sleeps(), name="sleeper")  # created here
        return await t

    result, prof = run_profiled(tl, main)
    assert result == "done"
    t = task_named(prof, "sleeper")
    assert t.steps == 4                 # the first step and one per sleep(0)
    assert t.state == "done"
    assert t.coroutine == "_three_sleeps"
    assert t.created_at.endswith(f"test_profile.py:{line_of(main, 'created here')}")
    assert 0 < t.max_step <= t.busy
    assert t.waiting > 0 and t.queued > 0
    coro = site_named(prof, "_three_sleeps", "task")
    assert coro.calls == 4


def test_callback_kinds(tl):
    def soon():
        pass

    def later():
        pass

    def done_cb(fut):
        pass

    async def main():
        loop = asyncio.get_running_loop()
        loop.call_soon(soon)
        loop.call_later(0.001, later)
        fut = loop.create_future()
        fut.add_done_callback(done_cb)
        fut.set_result(None)
        await asyncio.sleep(0.01)

    _, prof = run_profiled(tl, main)
    assert site_named(prof, "test_callback_kinds.<locals>.soon").kind == "call_soon"
    assert site_named(prof, "test_callback_kinds.<locals>.later").kind == "timer"
    cb = site_named(prof, "test_callback_kinds.<locals>.done_cb")
    assert (cb.kind, cb.calls) == ("callback", 1)
    assert cb.location.endswith(f"test_profile.py:{line_of(test_callback_kinds, 'def done_cb')}")
    # Two timers ran (later, and sleep's own), each counted as late or not.
    assert prof.timer_lateness.count == 2
    assert prof.timer_lateness.max >= prof.timer_lateness.p50 >= 0
    assert prof.ready_lag.count >= 3


def test_methods_of_all_instances_are_one_site(tl):
    class C:
        def tick(self):
            pass

    async def main():
        loop = asyncio.get_running_loop()
        for _ in range(5):
            loop.call_soon(C().tick)
        await asyncio.sleep(0)

    _, prof = run_profiled(tl, main)
    assert site_named(prof, "test_methods_of_all_instances_are_one_site.<locals>.C.tick").calls == 5


def test_wakeup_through_a_foreign_future_counts_as_the_task(tl):
    # gather() returns asyncio's own Future: the task's wake-up reaches the
    # loop as a plain callback, and is still the task's step.
    async def main():
        await asyncio.gather(asyncio.sleep(0), asyncio.sleep(0))
        return asyncio.current_task().get_name()

    loop = tl.new_event_loop()
    try:
        loop.set_profiling(True)
        task = loop.create_task(main(), name="gatherer")
        loop.run_until_complete(task)
        prof = loop.get_profile()
    finally:
        loop.close()
    t = task_named(prof, "gatherer")
    assert t.steps == 2
    assert not [s for s in prof.callbacks if "wakeup" in s.name]


def test_slowest_step_has_the_stack_where_it_suspended(tl):
    async def inner():
        time.sleep(0.03)                # blocks the loop
        await asyncio.sleep(0)          # suspended here

    async def outer():
        await inner()                   # inside this

    async def main():
        await asyncio.get_running_loop().create_task(outer(), name="blocker")

    _, prof = run_profiled(tl, main)
    slow = prof.slowest[0]
    assert (slow.kind, slow.task) == ("task", "blocker")
    assert slow.name.endswith(".outer")
    assert slow.duration >= 0.03
    suspended = line_of(inner, "suspended here")
    assert slow.location.endswith(f"test_profile.py:{suspended}")
    mine = [(os.path.basename(f), line, name) for f, line, name in slow.stack
            if f == HERE]
    assert mine == [("test_profile.py", line_of(outer, "inside this"),
                     "test_slowest_step_has_the_stack_where_it_suspended.<locals>.outer"),
                    ("test_profile.py", suspended,
                     "test_slowest_step_has_the_stack_where_it_suspended.<locals>.inner")]


def test_protocol_callbacks_are_sites(tl):
    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.transport.write(data)

    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(3):
            writer.write(b"ping")
            await reader.readexactly(4)
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

    _, prof = run_profiled(tl, main)
    echo = site_named(prof, "test_protocol_callbacks_are_sites.<locals>.Echo.data_received")
    assert echo.kind == "protocol" and echo.calls == 3
    assert echo.location.endswith(f"test_profile.py:{line_of(Echo, 'def data_received')}")
    assert site_named(prof, "StreamReaderProtocol.data_received").calls >= 3
    io = [s for s in prof.callbacks if s.kind == "io"]
    assert io and io[0].name.endswith("(I/O)")


@pytest.mark.skipif(PY < (3, 12), reason="eager tasks are 3.12+")
def test_eager_first_step_is_the_new_tasks(tl):
    async def child():
        await asyncio.sleep(0)

    async def main():
        # Task() takes eager_start= from 3.12 on (create_task() from 3.14).
        t = tl.Task(child(), loop=asyncio.get_running_loop(), name="eager", eager_start=True)
        await t

    _, prof = run_profiled(tl, main)
    t = task_named(prof, "eager")
    assert t.steps == 2
    assert t.created_at.endswith(f"test_profile.py:{line_of(main, 'eager_start=True')}")


def test_tasks_of_asyncio_task_class(tl):
    # A task factory making asyncio's own Task: its steps come as callbacks.
    async def work():
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    loop = tl.new_event_loop()
    try:
        loop.set_task_factory(lambda loop, coro, **kw: asyncio.Task(coro, loop=loop, **kw))
        loop.set_profiling(True)
        loop.run_until_complete(loop.create_task(work(), name="stdlib-task"))
        prof = loop.get_profile()
    finally:
        loop.close()
    t = task_named(prof, "stdlib-task")
    assert t.steps == 3 and t.coroutine.endswith("work") and t.state == "done"


def test_finished_tasks_beyond_max_tasks_are_folded(tl):
    async def main():
        loop = asyncio.get_running_loop()
        for _ in range(50):
            await loop.create_task(asyncio.sleep(0))
        await asyncio.sleep(0)

    _, prof = run_profiled(tl, main, max_tasks=10)
    assert prof.tasks_dropped > 0
    assert len(prof.tasks) + prof.tasks_dropped == 51
    assert site_named(prof, "sleep", "task").calls == 100


def test_profiling_holds_no_task(tl):
    refs = []

    async def child():
        await asyncio.sleep(0)

    async def main():
        refs.append(weakref.ref(asyncio.get_running_loop().create_task(child())))
        await asyncio.sleep(0.001)
        await asyncio.sleep(0)

    loop = tl.new_event_loop()
    try:
        loop.set_profiling(True)
        loop.run_until_complete(main())
        gc.collect()
        assert refs[0]() is None
        prof = loop.get_profile()
        assert [t.state for t in prof.tasks if t.coroutine.endswith("child")] == ["done"]
    finally:
        loop.close()


def test_switching_off_keeps_the_data_and_stops_counting(tl):
    def cb():
        pass

    loop = tl.new_event_loop()
    try:
        assert not loop.is_profiling() and loop.get_profile() is None
        loop.set_profiling(True)
        assert loop.is_profiling()
        loop.call_soon(cb)
        loop.run_until_complete(asyncio.sleep(0))
        loop.set_profiling(False)
        loop.call_soon(cb)
        loop.run_until_complete(asyncio.sleep(0))
        assert site_named(loop.get_profile(), "test_switching_off_keeps_the_data_and_stops_counting.<locals>.cb").calls == 1
        loop.set_profiling(True)            # a new profile
        assert loop.get_profile().callbacks == []
    finally:
        loop.close()
    with pytest.raises(RuntimeError):
        loop.set_profiling(True)


def test_profile_context_manager(tl):
    async def main():
        with tl.profile(trace_events=100) as p:
            await asyncio.sleep(0)
            assert p.snapshot().spans >= 0
        return p

    loop = tl.new_event_loop()
    try:
        p = loop.run_until_complete(main())
        assert not loop.is_profiling()
    finally:
        loop.close()
    assert p.profile.wall > 0
    assert "Lateness" in p.report()           # the Profile's methods, on p
    assert p.chrome_trace()["traceEvents"]


def test_profile_needs_a_turboloop_loop(tl):
    async def main():
        with tl.profile():
            pass

    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(TypeError, match="turboloop loop"):
            loop.run_until_complete(main())
    finally:
        loop.close()


def test_profiler_arguments(tl):
    from turboloop import _core
    with pytest.raises(ValueError):
        _core.Profiler(trace_events=-1)
    with pytest.raises(TypeError):
        _core.Profiler(capture=3)
    with pytest.raises(TypeError):
        _core.Profiler(skip_prefixes=(1,))
    prof = _core.Profiler()
    with pytest.raises(TypeError):
        prof.attach(object())
    loop, other = tl.new_event_loop(), tl.new_event_loop()
    try:
        prof.attach(loop)
        prof.attach(loop)                   # again: nothing happens
        with pytest.raises(RuntimeError, match="another loop"):
            prof.attach(other)
        with pytest.raises(RuntimeError, match="another profiler"):
            _core.Profiler().attach(loop)
        prof.detach()
        prof.reset()
        assert prof.snapshot()["tasks"] == []
    finally:
        loop.close()
        other.close()


def test_exception_leaving_the_loop_is_kept(tl):
    # A profiled entry that raises KeyboardInterrupt still stops the loop
    # with that exception.
    def interrupt():
        raise KeyboardInterrupt

    loop = tl.new_event_loop()
    try:
        loop.set_profiling(True)
        loop.call_soon(interrupt)
        with pytest.raises(KeyboardInterrupt):
            loop.run_forever()
        assert site_named(loop.get_profile(), "test_exception_leaving_the_loop_is_kept.<locals>.interrupt").calls == 1
    finally:
        loop.close()


# ---------------------------------------------------------------------------
# The report and the trace of `python -m turboloop --profile`


def _table(report, title):
    """The rows of the report's table under the line starting with title,
    as lists of cells."""
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    rows = []
    for line in lines[start + 2:]:
        if not line.strip():
            break
        rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


_UNITS = {"ns": 1e-9, "\u00b5s": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def _seconds(text):
    if text == "0":
        return 0.0
    value, unit = text.split()
    return float(value) * _UNITS[unit]


def _pct(text):
    return float(text.rstrip("%")) / 100


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    trace = tmp / "trace.json"
    truth = tmp / "truth.json"
    proc = subprocess.run(
        [sys.executable, "-m", "turboloop", f"--profile={trace}", "--profile-cpu",
         DEMO, "--truth", str(truth)],
        cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
        encoding="utf-8", timeout=CHILD_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr, json.loads(trace.read_text()), json.loads(truth.read_text())


def test_report_attributes_the_demo(tl, demo_run):
    report, _, truth = demo_run
    busy = _seconds(re.search(r"busy\s+\S+\s+(\S+ \S+)", report).group(1))
    tasks = {row[0]: row for row in _table(report, "Tasks by time")}
    callbacks = {row[0]: row for row in _table(report, "Callbacks by time")}
    header = report.splitlines()[
        next(i for i, l in enumerate(report.splitlines()) if l.startswith("Tasks by time")) + 1]
    cols = re.split(r"\s{2,}", header.strip())
    share = {name: _pct(tasks[name][cols.index("share")])
             for name in ("light", "heavy", "echo-client")}
    share["block_loop"] = _pct(callbacks["block_loop"][-1])
    assert callbacks["block_loop"][1] == "timer"
    # Each share within 10% of the truth: what each part measured of its own
    # running time.  A single context switch of a loaded machine inside a
    # step, outside what the program can measure, adds ~20 ms to a step,
    # so the small shares get 3 points of slack.
    for name, got in share.items():
        want = truth[name] / busy
        assert abs(got - want) <= max(0.10 * want, 0.03), (name, got, want, report)
    # The heavy task does twice the work of the light one: its CPU time
    # (unaffected by preemption) says so, give or take what a cache emptied
    # by other processes costs on a loaded machine.
    cpu = {name: _seconds(tasks[name][cols.index("cpu")]) for name in ("light", "heavy")}
    assert 1.6 <= cpu["heavy"] / cpu["light"] <= 2.5, (cpu, report)


def test_report_shows_the_50ms_block_with_its_line(tl, demo_run):
    report, _, _ = demo_run
    rows = _table(report, "Slowest steps and callbacks")
    slow = [r for r in rows if r[0] and r[0][0].isdigit()]
    [block] = [r for r in slow if r[2] == "block_loop"]
    assert block[1] == "timer"
    assert _seconds(block[0]) >= 0.05
    sys.path.insert(0, os.path.dirname(DEMO))
    try:
        import profile_demo
    finally:
        sys.path.pop(0)
    assert block[3] == f"examples/profile_demo.py:{line_of(profile_demo.block_loop, 'def block_loop')}"


def test_report_fits_100_columns(tl, demo_run):
    report, _, _ = demo_run
    assert [line for line in report.splitlines()
            if len(line) > 100 and not line.startswith("turboloop: trace written to ")] == []
    for section in ("Tasks by time", "Callbacks by time", "Lateness", "Slowest steps"):
        assert section in report


def test_trace_is_chrome_trace_events(tl, demo_run):
    _, trace, _ = demo_run
    events = trace["traceEvents"]
    complete = [e for e in events if e["ph"] == "X"]
    meta = [e for e in events if e["ph"] == "M"]
    assert complete and len(complete) + len(meta) == len(events)
    for e in complete:
        assert set(e) >= {"name", "cat", "ph", "ts", "dur", "pid", "tid"}
        assert isinstance(e["ts"], (int, float)) and isinstance(e["dur"], (int, float))
        assert e["ts"] >= 0 and e["dur"] >= 0
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int)
    # One track per task, named after it; the loop's own track is tid 0.
    names = {e["tid"]: e["args"]["name"] for e in meta if e["name"] == "thread_name"}
    assert names[0] == "event loop"
    by_name = {v.split(" (")[0]: k for k, v in names.items()}
    for task in ("light", "heavy", "echo-client"):
        tid = by_name[task]
        steps = [e for e in complete if e["tid"] == tid]
        assert steps and {e["cat"] for e in steps} == {"task"}
    # Polls are idle slices on the loop's track; the block is a 50 ms slice.
    polls = [e for e in complete if e["cat"] == "idle"]
    assert polls and {e["tid"] for e in polls} == {0}
    [block] = [e for e in complete if e["name"] == "block_loop"]
    assert block["tid"] == 0 and block["dur"] >= 50_000
    # Events on one track do not overlap, except nested ones (a protocol
    # method inside its transport's I/O).
    for tid in names:
        spans = sorted((e["ts"], e["ts"] + e["dur"]) for e in complete if e["tid"] == tid)
        for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
            assert b0 >= a1 - 0.002 or b1 <= a1 + 0.002


def _cli(tmp_path, source, *args):
    path = tmp_path / "prog.py"
    path.write_text(source)
    return subprocess.run([sys.executable, "-m", "turboloop", "--profile", *args, str(path)],
                          cwd=tmp_path, env=subprocess_env(), capture_output=True,
                          text=True, encoding="utf-8", timeout=CHILD_TIMEOUT)


def test_report_after_an_exception(tl, tmp_path):
    proc = _cli(tmp_path, "import asyncio\n"
                          "async def main():\n"
                          "    await asyncio.sleep(0)\n"
                          "    raise ValueError('boom')\n"
                          "asyncio.run(main())\n")
    assert proc.returncode == 1
    assert "ValueError: boom" in proc.stderr
    assert "Tasks by time" in proc.stderr and "main" in proc.stderr


def test_report_after_ctrl_c(tl, tmp_path):
    path = tmp_path / "forever.py"
    path.write_text("import asyncio\n"
                    "async def main():\n"
                    "    print('ready', flush=True)\n"
                    "    while True:\n"
                    "        await asyncio.sleep(0.01)\n"
                    "asyncio.run(main())\n")
    proc = subprocess.Popen([sys.executable, "-m", "turboloop", "--profile", str(path)],
                            cwd=tmp_path, env=subprocess_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, encoding="utf-8")
    try:
        assert proc.stdout.readline() == "ready\n"
        time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            # Seen once on 3.15 on a very loaded machine: the program kept
            # running after the first Ctrl-C.  A second one, as a user
            # would press, must still end it with the report.
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=CHILD_TIMEOUT)
    finally:
        proc.kill()
        proc.wait()
    assert "KeyboardInterrupt" in err
    assert "Tasks by time" in err and "main" in err


def test_cli_options(tl, tmp_path):
    proc = _cli(tmp_path, "pass\n", "--trace-events=x")
    assert proc.returncode == 2 and "--trace-events" in proc.stderr
    proc = _cli(tmp_path, "pass\n")
    assert proc.returncode == 0 and "no turboloop event loop ran" in proc.stderr


# ---------------------------------------------------------------------------
# Outside profilers


def test_cprofile_charges_the_wait_to_poll_wait(tl):
    # Under a profiler (cProfile: sys.monitoring on 3.12+), run_forever drives
    # the iterations from Python: the wait is Loop._poll_wait's, not the
    # loop's.  (No other thread here: sys.monitoring's hooks see them all.)
    import cProfile
    import pstats

    async def main():
        assert asyncio.get_running_loop().is_running()
        await asyncio.sleep(0.03)
        return 8

    prof = cProfile.Profile()
    prof.enable()
    try:
        result = tl.run(main())
    finally:
        prof.disable()
    assert result == 8
    stats = {name: row for (_, _, name), row in pstats.Stats(prof).stats.items()}
    wait = next(row for name, row in stats.items() if "_poll_wait" in name)
    assert wait[2] >= 0.03                     # its own time holds the sleep
    assert any("_run_once" in name for name in stats)
    assert not any(name.endswith("'_run' of 'turboloop._core.Loop' objects}") for name in stats)


def test_profiled_run_wakes_for_other_threads(tl):
    # The loop driven from Python still wakes up for call_soon_threadsafe().
    import sys
    import threading

    async def main():
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        threading.Timer(0.02, loop.call_soon_threadsafe, (fut.set_result, 7)).start()
        return await fut + await loop.create_task(asyncio.sleep(0, 1))

    calls = []
    sys.setprofile(lambda frame, event, arg: calls.append(event) if event == "c_call" else None)
    try:
        result = tl.run(main())
    finally:
        sys.setprofile(None)
    assert result == 8 and calls
