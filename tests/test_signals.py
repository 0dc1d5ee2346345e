"""add_signal_handler / remove_signal_handler, and Ctrl-C under the runners
(checked in child processes that send themselves SIGINT)."""

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from support import CHILD_TIMEOUT, PY, script, subprocess_env

# The multiplexer matters here: run on turboloop's poll(2) backend as well.
ALSO_POLL_BACKEND = True


@pytest.fixture(autouse=True)
def restore_signal_state():
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)
    signal.set_wakeup_fd(-1)


def test_signal_handler_runs_as_a_loop_callback(kind, loop):
    fut = kind.Future(loop=loop)
    main_thread = threading.get_ident()

    def on_signal(tag):
        # Runs from the loop, not inside the C-level signal handler, so it may
        # do anything a callback may.
        fut.set_result((tag, threading.get_ident(), asyncio.get_running_loop()))

    loop.add_signal_handler(signal.SIGUSR1, on_signal, "usr1")
    assert signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, signal.SIG_IGN, None)
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
    assert loop.run_until_complete(fut) == ("usr1", main_thread, loop)
    assert loop.remove_signal_handler(signal.SIGUSR1) is True
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    loop.close()


def test_signal_wakes_a_sleeping_loop(kind, loop):
    fut = kind.Future(loop=loop)
    loop.add_signal_handler(signal.SIGUSR1, lambda: fut.set_result("woken"))

    def send_later():
        time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGUSR1)

    thread = threading.Thread(target=send_later)
    thread.start()
    guard = loop.call_later(30, lambda: fut.done() or fut.set_result("never woken"))
    try:
        assert loop.run_until_complete(fut) == "woken"
    finally:
        guard.cancel()
        thread.join()
    loop.remove_signal_handler(signal.SIGUSR1)
    loop.close()


def test_signal_received_before_the_loop_runs(kind, loop):
    got = []
    loop.add_signal_handler(signal.SIGUSR1, got.append, "early")
    os.kill(os.getpid(), signal.SIGUSR1)
    assert got == []
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert got == ["early"]
    loop.close()


def test_signal_handler_removed_before_delivery_is_not_called(kind, loop):
    got = []
    loop.add_signal_handler(signal.SIGUSR1, got.append, "removed")
    loop.add_signal_handler(signal.SIGUSR2, got.append, "kept")
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        loop.remove_signal_handler(signal.SIGUSR1)
        # Ignore it at the OS level so that unblocking does not kill us.
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
    os.kill(os.getpid(), signal.SIGUSR2)
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert got == ["kept"]
    loop.close()


def test_two_signals(kind, loop):
    got = []
    done = kind.Future(loop=loop)

    def on_signal(name):
        got.append(name)
        if len(got) == 2:
            done.set_result(None)

    loop.add_signal_handler(signal.SIGUSR1, on_signal, "usr1")
    loop.add_signal_handler(signal.SIGUSR2, on_signal, "usr2")
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR2)
    loop.run_until_complete(done)
    assert sorted(got) == ["usr1", "usr2"]
    loop.close()


def test_adding_again_replaces_the_handler(kind, loop):
    got = []
    fut = kind.Future(loop=loop)
    loop.add_signal_handler(signal.SIGUSR1, got.append, "first")
    loop.add_signal_handler(signal.SIGUSR1, lambda: (got.append("second"), fut.set_result(None)))
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
    loop.run_until_complete(fut)
    assert got == ["second"]
    loop.close()


def test_remove_signal_handler_return_value(loop):
    assert loop.remove_signal_handler(signal.SIGUSR1) is False
    loop.add_signal_handler(signal.SIGUSR1, print)
    assert loop.remove_signal_handler(signal.SIGUSR1) is True
    assert loop.remove_signal_handler(signal.SIGUSR1) is False
    loop.close()


def test_removing_sigint_restores_keyboard_interrupt(loop):
    loop.add_signal_handler(signal.SIGINT, print)
    assert loop.remove_signal_handler(signal.SIGINT) is True
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    loop.close()


def test_close_removes_signal_handlers(loop):
    loop.add_signal_handler(signal.SIGUSR1, print)
    loop.add_signal_handler(signal.SIGUSR2, print)
    loop.close()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL
    # The wake-up fd went back to "none" with the last handler.
    assert signal.set_wakeup_fd(-1) == -1


def test_removing_the_last_handler_resets_the_wakeup_fd(loop):
    loop.add_signal_handler(signal.SIGUSR1, print)
    assert loop.remove_signal_handler(signal.SIGUSR1) is True
    assert signal.set_wakeup_fd(-1) == -1
    loop.close()


def test_exception_in_signal_handler_goes_to_handler(kind, loop, errors):
    fut = kind.Future(loop=loop)

    def on_signal():
        loop.call_soon(fut.set_result, None)
        raise ValueError("in signal handler")

    loop.add_signal_handler(signal.SIGUSR1, on_signal)
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
    loop.run_until_complete(fut)
    context, = errors
    assert isinstance(context["exception"], ValueError)
    errors.clear()
    loop.close()


# -- invalid requests ------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP])
def test_uncatchable_signals(loop, sig):
    with pytest.raises(RuntimeError, match=f"sig {int(sig)} cannot be caught"):
        loop.add_signal_handler(sig, print)
    # Nothing was left registered by the failed attempt.
    assert loop.remove_signal_handler(signal.SIGUSR1) is False
    assert signal.set_wakeup_fd(-1) == -1
    loop.close()


@pytest.mark.parametrize("sig", [0, -1, 1000])
@pytest.mark.parametrize("method", ["add_signal_handler", "remove_signal_handler"])
def test_invalid_signal_numbers(loop, sig, method):
    args = (print,) if method == "add_signal_handler" else ()
    with pytest.raises(ValueError, match=f"invalid signal number {sig}"):
        getattr(loop, method)(sig, *args)
    loop.close()


@pytest.mark.parametrize("method", ["add_signal_handler", "remove_signal_handler"])
def test_signal_must_be_an_int(loop, method):
    args = (print,) if method == "add_signal_handler" else ()
    with pytest.raises(TypeError, match="sig must be an int, not '10'"):
        getattr(loop, method)("10", *args)
    loop.close()


def test_coroutines_are_rejected(loop):
    async def coro_func():
        pass

    with pytest.raises(TypeError, match=r"coroutines cannot be used with add_signal_handler\(\)"):
        loop.add_signal_handler(signal.SIGUSR1, coro_func)
    coro = coro_func()
    with pytest.raises(TypeError, match=r"coroutines cannot be used with add_signal_handler\(\)"):
        loop.add_signal_handler(signal.SIGUSR1, coro)
    coro.close()
    loop.close()


def test_add_signal_handler_from_another_thread(loop):
    raised = []

    def worker():
        try:
            loop.add_signal_handler(signal.SIGUSR1, print)
        except RuntimeError as exc:
            raised.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert len(raised) == 1
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    loop.close()


def test_add_signal_handler_on_closed_loop(loop):
    loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.add_signal_handler(signal.SIGUSR1, print)


# -- Ctrl-C ----------------------------------------------------------------------


def _runners(kind):
    runners = {"run": f"{kind.run_func}(main())"}
    runners["Runner"] = script(f"""
        with asyncio.Runner(loop_factory={kind.factory_expr}) as runner:
            runner.run(main())
    """)
    if PY >= (3, 12):
        runners["asyncio.run(loop_factory)"] = f"asyncio.run(main(), loop_factory={kind.factory_expr})"
    return runners


RUNNERS = ["run", "Runner", "asyncio.run(loop_factory)"]


def _run_child(code):
    return subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True,
                          timeout=CHILD_TIMEOUT)


@pytest.mark.parametrize("runner", RUNNERS)
def test_ctrl_c_cancels_main_task_and_raises_keyboard_interrupt(kind, runner):
    runners = _runners(kind)
    if runner not in runners:
        pytest.skip("asyncio.run(loop_factory=) is new in 3.12")
    code = script(f"""
        {kind.import_line}
        import os, signal

        async def main():
            loop = asyncio.get_running_loop()
            loop.call_later(0.01, os.kill, os.getpid(), signal.SIGINT)
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                print("main cancelled", flush=True)
                raise
            print("not interrupted")

        try:
        {{runner}}
        except KeyboardInterrupt:
            print("KeyboardInterrupt")
        print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    """).replace("{runner}", _indent(runners[runner]))
    proc = _run_child(code)
    assert proc.stdout == "main cancelled\nKeyboardInterrupt\nTrue\n", proc.stderr
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("runner", RUNNERS)
def test_ctrl_c_while_main_task_is_busy_in_callbacks(kind, runner):
    # The signal arrives while the loop keeps running ready callbacks and never
    # sleeps in its poll.
    runners = _runners(kind)
    if runner not in runners:
        pytest.skip("asyncio.run(loop_factory=) is new in 3.12")
    code = script(f"""
        {kind.import_line}
        import os, signal

        async def main():
            os.kill(os.getpid(), signal.SIGINT)
            try:
                while True:
                    await asyncio.sleep(0)
            except asyncio.CancelledError:
                print("main cancelled", flush=True)
                raise

        try:
        {{runner}}
        except KeyboardInterrupt:
            print("KeyboardInterrupt")
    """).replace("{runner}", _indent(runners[runner]))
    proc = _run_child(code)
    assert proc.stdout == "main cancelled\nKeyboardInterrupt\n", proc.stderr
    assert proc.returncode == 0, proc.stderr


def test_uncaught_ctrl_c_kills_the_process_with_sigint(kind):
    code = script(f"""
        {kind.import_line}
        import os, signal

        async def main():
            asyncio.get_running_loop().call_later(0.01, os.kill, os.getpid(), signal.SIGINT)
            await asyncio.sleep(30)

        {kind.run_func}(main())
    """)
    proc = _run_child(code)
    assert proc.returncode == -signal.SIGINT, proc.stderr
    assert "KeyboardInterrupt" in proc.stderr


def test_ctrl_c_that_main_swallows(kind):
    # If the main task swallows the cancellation and returns, the runner
    # returns its result instead of raising KeyboardInterrupt.
    code = script(f"""
        {kind.import_line}
        import os, signal

        async def main():
            asyncio.get_running_loop().call_later(0.01, os.kill, os.getpid(), signal.SIGINT)
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                print("swallowed")
            return "returned"

        try:
            print({kind.run_func}(main()))
        except KeyboardInterrupt:
            print("KeyboardInterrupt")
    """)
    proc = _run_child(code)
    assert proc.stdout == "swallowed\nreturned\n", proc.stderr
    assert proc.returncode == 0, proc.stderr


def test_ctrl_c_during_run_forever_without_runner(kind):
    code = script(f"""
        {kind.import_line}
        import os, signal

        loop = {kind.factory_expr}()
        loop.call_later(0.01, os.kill, os.getpid(), signal.SIGINT)
        try:
            loop.run_forever()
        except KeyboardInterrupt:
            print("KeyboardInterrupt")
        print(loop.is_running())
        loop.close()
    """)
    proc = _run_child(code)
    assert proc.stdout == "KeyboardInterrupt\nFalse\n", proc.stderr
    assert proc.returncode == 0, proc.stderr


def test_ctrl_c_with_user_sigint_handler(kind):
    # A SIGINT handler installed with add_signal_handler() replaces the
    # KeyboardInterrupt behaviour.
    code = script(f"""
        {kind.import_line}
        import os, signal

        async def main():
            loop = asyncio.get_running_loop()
            got = loop.create_future()
            loop.add_signal_handler(signal.SIGINT, got.set_result, "handled")
            loop.call_later(0.01, os.kill, os.getpid(), signal.SIGINT)
            print(await got)

        {kind.run_func}(main())
    """)
    proc = _run_child(code)
    assert proc.stdout == "handled\n", proc.stderr
    assert proc.returncode == 0, proc.stderr


def _indent(text):
    return "\n".join("    " + line for line in text.strip().splitlines())
