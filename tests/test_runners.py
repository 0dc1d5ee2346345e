"""turboloop.run / asyncio.run, asyncio.run(loop_factory=), asyncio.Runner,
the event loop policy and turboloop.install()."""

import asyncio
import contextvars
import threading
import time
import warnings

import pytest

from support import PY, quiet_deprecations

var = contextvars.ContextVar("var", default="default")

needs_loop_factory = pytest.mark.skipif(PY < (3, 12), reason="asyncio.run(loop_factory=) is new in 3.12")


async def running_loop():
    return asyncio.get_running_loop()


# -- run() ------------------------------------------------------------------------


def test_run_returns_result(kind):
    async def main(x):
        await asyncio.sleep(0)
        return x + 1

    assert kind.run(main(41)) == 42


def test_run_propagates_exception(kind):
    async def main():
        raise ValueError("from main")

    with pytest.raises(ValueError, match="from main"):
        kind.run(main())


def test_run_uses_a_new_loop_of_its_kind_and_closes_it(kind):
    async def main():
        return asyncio.get_running_loop(), type(asyncio.current_task())

    loop, task_type = kind.run(main())
    assert isinstance(loop, kind.Loop)
    assert task_type is kind.Task
    assert loop.is_closed()
    loop2, _ = kind.run(main())
    assert loop2 is not loop


def test_run_closes_loop_after_exception(kind):
    seen = []

    async def main():
        seen.append(asyncio.get_running_loop())
        raise KeyError

    with pytest.raises(KeyError):
        kind.run(main())
    assert seen[0].is_closed()


def test_run_cancels_leftover_tasks(kind):
    events = []

    async def background():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            events.append("background cancelled")
            raise

    async def main():
        asyncio.create_task(background())
        await asyncio.sleep(0)
        return "main done"

    assert kind.run(main()) == "main done"
    assert events == ["background cancelled"]


def test_run_reports_leftover_task_failing_on_cancel(kind, asyncio_log):
    async def background():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise ValueError("failed while cancelled")

    async def main():
        asyncio.create_task(background())
        await asyncio.sleep(0)

    kind.run(main())
    record, = asyncio_log.take()
    assert record.getMessage().startswith("unhandled exception during asyncio.run() shutdown")
    assert str(record.exc_info[1]) == "failed while cancelled"


def test_run_finalizes_async_generators(kind):
    events = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            await asyncio.sleep(0)
            events.append("agen closed")

    gens = []

    async def main():
        gen = agen()
        gens.append(gen)
        await gen.__anext__()

    kind.run(main())
    assert events == ["agen closed"]


def test_run_shuts_down_the_default_executor(kind):
    finished = []

    def work():
        time.sleep(0.01)
        finished.append(True)

    async def main():
        # Started but not awaited: run() must still wait for it.
        asyncio.get_running_loop().run_in_executor(None, work)
        await asyncio.sleep(0)

    kind.run(main())
    assert finished == [True]


@pytest.mark.parametrize("debug", [True, False])
def test_run_debug(kind, debug):
    async def main():
        return asyncio.get_running_loop().get_debug()

    assert kind.run(main(), debug=debug) is debug


def test_run_inside_a_running_loop_raises(kind, loop):
    async def outer():
        inner = running_loop()
        try:
            kind.run(inner)
        except RuntimeError as exc:
            return str(exc)
        finally:
            inner.close()

    message = loop.run_until_complete(outer())
    assert "cannot be called from a running event loop" in message
    loop.close()


@pytest.mark.skipif(PY >= (3, 14), reason="the check for a coroutine argument is for 3.11 to 3.13")
def test_run_requires_a_coroutine(kind):
    with pytest.raises(ValueError, match="a coroutine was expected"):
        kind.run(asyncio.sleep)


def test_run_in_a_thread_while_another_loop_runs(kind, loop):
    results = []

    async def in_thread():
        await asyncio.sleep(0.01)
        return "thread result"

    def worker():
        results.append(kind.run(in_thread()))

    async def main():
        thread = threading.Thread(target=worker)
        thread.start()
        while thread.is_alive():
            await asyncio.sleep(0.01)
        thread.join()

    loop.run_until_complete(main())
    assert results == ["thread result"]
    loop.close()


def test_run_copies_the_callers_context(kind):
    token = var.set("caller")
    try:
        async def main():
            value = var.get()
            var.set("changed in run")
            return value

        assert kind.run(main()) == "caller"
        assert var.get() == "caller"
    finally:
        var.reset(token)


# -- asyncio.run(loop_factory=) and asyncio.Runner -----------------------------


@needs_loop_factory
def test_asyncio_run_with_loop_factory(kind):
    async def main():
        return asyncio.get_running_loop(), type(asyncio.current_task())

    loop, task_type = asyncio.run(main(), loop_factory=kind.new_event_loop)
    assert isinstance(loop, kind.Loop)
    assert task_type is kind.Task
    assert loop.is_closed()


@needs_loop_factory
def test_asyncio_run_with_loop_factory_and_debug(kind):
    async def main():
        return asyncio.get_running_loop().get_debug()

    assert asyncio.run(main(), loop_factory=kind.new_event_loop, debug=True) is True


def test_runner_with_loop_factory(kind):
    with asyncio.Runner(loop_factory=kind.new_event_loop) as runner:
        loop = runner.get_loop()
        assert isinstance(loop, kind.Loop)
        assert runner.run(running_loop()) is loop
        # A second run reuses the loop.
        assert runner.run(running_loop()) is loop
    assert loop.is_closed()
    with pytest.raises(RuntimeError, match="Runner is closed"):
        runner.get_loop()


def test_runner_keeps_context_between_runs(kind):
    async def set_var():
        var.set("set in first run")

    async def get_var():
        return var.get()

    with asyncio.Runner(loop_factory=kind.new_event_loop) as runner:
        runner.run(set_var())
        assert runner.run(get_var()) == "set in first run"
        ctx = contextvars.Context()
        assert runner.run(get_var(), context=ctx) == "default"


def test_runner_debug(kind):
    async def main():
        return asyncio.get_running_loop().get_debug()

    with asyncio.Runner(debug=True, loop_factory=kind.new_event_loop) as runner:
        assert runner.run(main()) is True


def test_runner_cancels_leftover_tasks_on_close(kind):
    events = []

    async def background():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise

    async def main():
        asyncio.create_task(background())
        await asyncio.sleep(0)

    with asyncio.Runner(loop_factory=kind.new_event_loop) as runner:
        runner.run(main())
        assert events == []
    assert events == ["cancelled"]


# -- policies ---------------------------------------------------------------------


def test_policy_creates_loops_of_its_kind(kind, fresh_policy):
    with quiet_deprecations():
        policy = kind.EventLoopPolicy()
        assert isinstance(policy, asyncio.AbstractEventLoopPolicy)
    loop = policy.new_event_loop()
    try:
        assert isinstance(loop, kind.Loop)
    finally:
        loop.close()


def test_policy_set_and_get_event_loop(kind, fresh_policy):
    with quiet_deprecations():
        policy = kind.EventLoopPolicy()
    loop = policy.new_event_loop()
    try:
        policy.set_event_loop(loop)
        assert policy.get_event_loop() is loop
        policy.set_event_loop(None)
    finally:
        loop.close()


def test_installed_policy_drives_asyncio(kind, fresh_policy):
    with quiet_deprecations():
        asyncio.set_event_loop_policy(kind.EventLoopPolicy())
    loop = asyncio.new_event_loop()
    try:
        assert isinstance(loop, kind.Loop)
    finally:
        loop.close()

    async def main():
        return asyncio.get_running_loop(), type(asyncio.current_task())

    run_loop, task_type = asyncio.run(main())
    assert isinstance(run_loop, kind.Loop)
    assert task_type is kind.Task


def test_install(tl, fresh_policy):
    with quiet_deprecations():
        tl.install()
        policy = asyncio.get_event_loop_policy()
        assert isinstance(policy, tl.EventLoopPolicy)
    loop = asyncio.new_event_loop()
    try:
        assert isinstance(loop, tl.Loop)
    finally:
        loop.close()
    assert isinstance(asyncio.run(running_loop()), tl.Loop)


def _record_warnings(func):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        func()
    return caught


def test_install_warns_like_set_event_loop_policy(tl, fresh_policy):
    # install() is a policy call, so it warns exactly when asyncio's
    # set_event_loop_policy() does (3.14+), with the same category, and
    # attributes the warning to its caller.
    stock = _record_warnings(lambda: asyncio.set_event_loop_policy(None))
    ours = _record_warnings(tl.install)
    stock_deprecations = [w for w in stock if issubclass(w.category, DeprecationWarning)]
    our_deprecations = [w for w in ours if issubclass(w.category, DeprecationWarning)]
    if PY >= (3, 14):
        assert stock_deprecations, "asyncio.set_event_loop_policy no longer warns; revisit this test"
    assert [w.category for w in our_deprecations] == [w.category for w in stock_deprecations]
    for ours_w, stock_w in zip(our_deprecations, stock_deprecations):
        assert ours_w.filename == stock_w.filename == __file__


@pytest.mark.skipif(PY >= (3, 14), reason="the policy API is deprecated from 3.14")
def test_install_does_not_warn_before_3_14(tl, fresh_policy):
    caught = _record_warnings(tl.install)
    assert [w for w in caught if issubclass(w.category, DeprecationWarning)] == []
