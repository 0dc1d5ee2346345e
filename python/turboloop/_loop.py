"""turboloop.Loop: the C core plus the parts of the loop that run once per
setup (executors, DNS, signal handlers, the exception handler, asyncgen
hooks).  Everything that runs once per event lives in ``_core``."""

import asyncio
import concurrent.futures
import errno
import ipaddress
import os
import signal
import socket
import sys
import threading
import time
import traceback
import warnings
import weakref

from asyncio import (base_events, coroutines, events, format_helpers, futures,
                     tasks)
from asyncio.log import logger

from . import _core
from ._network import NetworkMixin
from .profiling import ProfilingMixin

__all__ = ("Loop",)

_DEBUG_STACK_DEPTH = 10
# asyncio.iscoroutinefunction is deprecated from 3.14 on; asyncio itself uses
# the private twin that also recognises its legacy coroutine marker.
_iscoroutinefunction = getattr(coroutines, "_iscoroutinefunction",
                               coroutines.iscoroutinefunction)
_FORMAT_SOURCE_HAS_DEBUG = (
    format_helpers._format_callback_source.__code__.co_kwonlyargcount > 0)


def _format_callback_source(callback, args, debug):
    if _FORMAT_SOURCE_HAS_DEBUG:
        return format_helpers._format_callback_source(callback, args,
                                                      debug=debug)
    return format_helpers._format_callback_source(callback, args)


def _format_slow(what):
    # Slow callbacks are reported by the task they step, as asyncio does.
    if isinstance(what, (_core.Task, tasks.Task)):
        return repr(what)
    if isinstance(what, _core.Handle):
        owner = getattr(what._callback, "__self__", None)
        if isinstance(owner, (_core.Task, tasks.Task)):
            return repr(owner)
    return str(what)


def _profiler_installed():
    """Is a profiler watching Python calls: one installed with
    sys.setprofile() (pyinstrument, profile), or a sys.monitoring profiler
    tool (cProfile from 3.12 on)?"""
    if sys.getprofile() is not None:
        return True
    monitoring = getattr(sys, "monitoring", None)
    return monitoring is not None and monitoring.get_tool(monitoring.PROFILER_ID) is not None


# run_until_complete() stops the loop with asyncio's own callback, the very
# function object: libraries find the task a program was started with by
# looking for it among a task's done callbacks (anyio's find_root_task(),
# which keeps its worker threads for the life of that task).  It only calls
# the public Future API and loop.stop(), so it works on our loop unchanged.
_run_until_complete_cb = base_events._run_until_complete_cb


def _sighandler_noop(signum, frame):
    """The Python-level handler of signals the loop watches: the work is done
    by the wake-up fd, so Python's own handling has nothing to do."""


def _is_numeric_address(host, port):
    """True when getaddrinfo(host, port) cannot block: a literal IP address
    (or no host) and a numeric (or no) port."""
    if host is not None:
        if isinstance(host, bytes):
            try:
                host = host.decode("idna")
            except UnicodeError:
                return False
        if not isinstance(host, str):
            return False
        try:
            ipaddress.ip_address(host.partition("%")[0])
        except ValueError:
            return False
    if port is None or isinstance(port, int):
        return True
    if isinstance(port, (str, bytes)):
        return port.isdigit()
    return False


class Loop(_core.Loop, NetworkMixin, ProfilingMixin, asyncio.AbstractEventLoop):
    """An asyncio event loop whose scheduling, timers, I/O polling, futures
    and tasks are implemented in C."""

    def __init__(self):
        self._exception_handler = None
        self._default_executor = None
        self._executor_shutdown_called = False
        self._asyncgens = weakref.WeakSet()
        self._asyncgens_shutdown_called = False
        self._coroutine_origin_tracking_enabled = False
        self._coroutine_origin_tracking_saved_depth = None
        self._signal_handlers = {}
        self._ssock = self._csock = None
        self._current_handle = None
        self._init_network()
        # asyncio's loops expose the resolution of their clock; ours is the
        # same monotonic clock.
        self._clock_resolution = time.get_clock_info("monotonic").resolution
        self.set_debug(coroutines._is_debug_mode())
        self._init_profiling()

    def __repr__(self):
        return (f"<{self.__class__.__name__} running={self.is_running()} "
                f"closed={self.is_closed()} debug={self.get_debug()}>")

    def __del__(self, _warn=warnings.warn):
        if not self.is_closed():
            _warn(f"unclosed event loop {self!r}", ResourceWarning,
                  source=self)
            if not self.is_running():
                self.close()

    # -- running ---------------------------------------------------------

    def _check_running(self):
        if self.is_running():
            raise RuntimeError("This event loop is already running")
        if events._get_running_loop() is not None:
            raise RuntimeError(
                "Cannot run the event loop while another loop is running")

    def run_forever(self):
        """Run until stop() is called."""
        self._check_closed()
        self._check_running()
        self._set_coroutine_origin_tracking(self.get_debug())
        old_agen_hooks = sys.get_asyncgen_hooks()
        try:
            sys.set_asyncgen_hooks(firstiter=self._asyncgen_firstiter_hook,
                                   finalizer=self._asyncgen_finalizer_hook)
            events._set_running_loop(self)
            if _profiler_installed():
                self._run_profiled()
            else:
                self._run()
        finally:
            events._set_running_loop(None)
            self._set_coroutine_origin_tracking(False)
            sys.set_asyncgen_hooks(*old_agen_hooks)

    def _run_profiled(self):
        # run_forever() under a profiler (see _profiler_installed(): cProfile,
        # pyinstrument...): the iterations of _run(), driven from
        # here so that the wait for I/O and timers is a call of its own,
        # Loop._poll_wait, which such profilers see and time, instead of
        # being part of the time of the C function _run.
        self._set_running(True)
        try:
            while True:
                self._poll_wait()
                self._run_once()
                if self._stopping:
                    break
        finally:
            self._set_running(False)

    def run_until_complete(self, future):
        """Run until the future (or coroutine) is done; return its result."""
        self._check_closed()
        self._check_running()
        new_task = not futures.isfuture(future)
        future = tasks.ensure_future(future, loop=self)
        if new_task:
            # An exception in the task we made would be reported twice: once
            # here and once by the "never retrieved" log.
            future._log_destroy_pending = False
        future.add_done_callback(_run_until_complete_cb)
        try:
            self.run_forever()
        except:
            if new_task and future.done() and not future.cancelled():
                future.exception()
            raise
        finally:
            future.remove_done_callback(_run_until_complete_cb)
        if not future.done():
            raise RuntimeError("Event loop stopped before Future completed.")
        return future.result()

    def close(self):
        """Close the loop: drop pending callbacks, stop the executor.

        The loop must not be running.  Closing twice is harmless."""
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self.is_closed():
            return
        if self.get_debug():
            logger.debug("Close %r", self)
        if self._signal_handlers and not sys.is_finalizing():
            for sig in list(self._signal_handlers):
                self.remove_signal_handler(sig)
        self._close_signal_socket()
        self._close()
        # As asyncio's selector loops do: a pipe transport left open reads
        # this to tell a closed loop.
        self._selector = None
        self._executor_shutdown_called = True
        executor = self._default_executor
        if executor is not None:
            self._default_executor = None
            executor.shutdown(wait=False)

    # -- debug -------------------------------------------------------------

    def set_debug(self, enabled):
        self._debug = enabled
        if self.is_running():
            self.call_soon_threadsafe(self._set_coroutine_origin_tracking,
                                      enabled)

    def _set_coroutine_origin_tracking(self, enabled):
        if bool(enabled) == bool(self._coroutine_origin_tracking_enabled):
            return
        if enabled:
            self._coroutine_origin_tracking_saved_depth = (
                sys.get_coroutine_origin_tracking_depth())
            sys.set_coroutine_origin_tracking_depth(_DEBUG_STACK_DEPTH)
        else:
            sys.set_coroutine_origin_tracking_depth(
                self._coroutine_origin_tracking_saved_depth)
        self._coroutine_origin_tracking_enabled = enabled

    def _log_slow_callback(self, what, seconds):
        logger.warning("Executing %s took %.3f seconds", _format_slow(what),
                       seconds)

    # -- errors --------------------------------------------------------------

    def get_exception_handler(self):
        return self._exception_handler

    def set_exception_handler(self, handler):
        if handler is not None and not callable(handler):
            raise TypeError(f"A callable object or None is expected, "
                            f"got {handler!r}")
        self._exception_handler = handler

    def default_exception_handler(self, context):
        """Log the context: the message, the exception with its traceback,
        and every other key."""
        message = context.get("message") or "Unhandled exception in event loop"
        exception = context.get("exception")
        if exception is not None:
            exc_info = (type(exception), exception, exception.__traceback__)
        else:
            exc_info = False
        lines = [message]
        for key in sorted(context):
            if key in {"message", "exception"}:
                continue
            value = context[key]
            if key == "source_traceback":
                tb = "".join(traceback.format_list(value))
                value = "Object created at (most recent call last):\n"
                value += tb.rstrip()
            elif key == "handle_traceback":
                tb = "".join(traceback.format_list(value))
                value = "Handle created at (most recent call last):\n"
                value += tb.rstrip()
            else:
                value = repr(value)
            lines.append(f"{key}: {value}")
        logger.error("\n".join(lines), exc_info=exc_info)

    def call_exception_handler(self, context):
        if self._exception_handler is None:
            try:
                self.default_exception_handler(context)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error("Exception in default exception handler",
                             exc_info=True)
            return
        try:
            ctx = None
            if sys.version_info >= (3, 12):
                # The handler runs in the context of what failed.
                thing = context.get("task")
                if thing is None:
                    thing = context.get("future")
                if thing is None:
                    thing = context.get("handle")
                if thing is not None and hasattr(thing, "get_context"):
                    ctx = thing.get_context()
            if ctx is not None and hasattr(ctx, "run"):
                ctx.run(self._exception_handler, self, context)
            else:
                self._exception_handler(self, context)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            try:
                self.default_exception_handler({
                    "message": "Unhandled error in exception handler",
                    "exception": exc,
                    "context": context,
                })
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error("Exception in default exception handler while "
                             "handling an unexpected error in custom "
                             "exception handler", exc_info=True)

    def _callback_error(self, exc, handle, callback, args):
        # Called by the C core when a callback raised.
        if handle is None:
            handle = _core.Handle(callback, args if args is not None else (),
                                  self)
        cb = _format_callback_source(callback, args, self.get_debug())
        context = {
            "message": f"Exception in callback {cb}",
            "exception": exc,
            "handle": handle,
        }
        if handle._source_traceback:
            context["source_traceback"] = handle._source_traceback
        self.call_exception_handler(context)

    # -- asynchronous generators -------------------------------------------

    def _asyncgen_finalizer_hook(self, agen):
        self._asyncgens.discard(agen)
        if not self.is_closed():
            self.call_soon_threadsafe(self.create_task, agen.aclose())

    def _asyncgen_firstiter_hook(self, agen):
        if self._asyncgens_shutdown_called:
            warnings.warn(
                f"asynchronous generator {agen!r} was scheduled after "
                f"loop.shutdown_asyncgens() call",
                ResourceWarning, source=self)
        self._asyncgens.add(agen)

    async def shutdown_asyncgens(self):
        """Close every asynchronous generator still open."""
        self._asyncgens_shutdown_called = True
        if not len(self._asyncgens):
            return
        closing = list(self._asyncgens)
        self._asyncgens.clear()
        results = await tasks.gather(*[ag.aclose() for ag in closing],
                                     return_exceptions=True)
        for result, agen in zip(results, closing):
            if isinstance(result, Exception):
                self.call_exception_handler({
                    "message": f"an error occurred during closing of "
                               f"asynchronous generator {agen!r}",
                    "exception": result,
                    "asyncgen": agen,
                })

    # -- executors -------------------------------------------------------

    def _check_callback(self, callback, method):
        if (coroutines.iscoroutine(callback)
                or _iscoroutinefunction(callback)):
            raise TypeError(f"coroutines cannot be used with {method}()")
        if not callable(callback):
            raise TypeError(f"a callable object was expected by {method}(), "
                            f"got {callback!r}")

    def run_in_executor(self, executor, func, *args):
        self._check_closed()
        if self.get_debug():
            self._check_callback(func, "run_in_executor")
        if executor is None:
            executor = self._default_executor
            if self._executor_shutdown_called:
                raise RuntimeError("Executor shutdown has been called")
            if executor is None:
                executor = concurrent.futures.ThreadPoolExecutor(
                    thread_name_prefix="asyncio")
                self._default_executor = executor
        return futures.wrap_future(executor.submit(func, *args), loop=self)

    def set_default_executor(self, executor):
        if not isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            raise TypeError("executor must be ThreadPoolExecutor instance")
        self._default_executor = executor

    async def shutdown_default_executor(self, timeout=None):
        """Shut the default executor down and wait for its threads, at most
        `timeout` seconds (None: as long as it takes)."""
        self._executor_shutdown_called = True
        if self._default_executor is None:
            return
        future = self.create_future()
        thread = threading.Thread(target=self._do_shutdown, args=(future,))
        thread.start()
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            warnings.warn("The executor did not finishing joining "
                          f"its threads within {timeout} seconds.",
                          RuntimeWarning, stacklevel=2)
            self._default_executor.shutdown(wait=False)
        else:
            thread.join()

    def _do_shutdown(self, future):
        try:
            self._default_executor.shutdown(wait=True)
            if not self.is_closed():
                self.call_soon_threadsafe(futures._set_result_unless_cancelled,
                                          future, None)
        except Exception as ex:
            if not self.is_closed() and not future.cancelled():
                self.call_soon_threadsafe(future.set_exception, ex)

    # -- DNS -----------------------------------------------------------------

    async def getaddrinfo(self, host, port, *, family=0, type=0, proto=0,
                          flags=0):
        if _is_numeric_address(host, port):
            # Nothing to resolve: answer without a round trip to a thread
            # (but fail where the executor would).
            self._check_closed()
            if self._executor_shutdown_called:
                raise RuntimeError("Executor shutdown has been called")
            return socket.getaddrinfo(host, port, family, type, proto, flags)
        return await self.run_in_executor(None, socket.getaddrinfo, host,
                                          port, family, type, proto, flags)

    async def getnameinfo(self, sockaddr, flags=0):
        return await self.run_in_executor(None, socket.getnameinfo,
                                          sockaddr, flags)

    # -- signals -------------------------------------------------------------

    def _check_signal(self, sig):
        if not isinstance(sig, int):
            raise TypeError(f"sig must be an int, not {sig!r}")
        if sig not in signal.valid_signals():
            raise ValueError(f"invalid signal number {sig}")

    def _open_signal_socket(self):
        if self._ssock is not None:
            return
        self._ssock, self._csock = socket.socketpair()
        self._ssock.setblocking(False)
        self._csock.setblocking(False)
        self._add_reader(self._ssock.fileno(), self._read_signals)

    def _close_signal_socket(self):
        if self._ssock is None:
            return
        self._remove_reader(self._ssock.fileno())
        self._ssock.close()
        self._csock.close()
        self._ssock = self._csock = None

    def _read_signals(self):
        while True:
            try:
                data = self._ssock.recv(4096)
            except InterruptedError:
                continue
            except BlockingIOError:
                return
            if not data:
                return
            for signum in data:
                if not signum:
                    continue        # a plain wake-up byte
                handle = self._signal_handlers.get(signum)
                if handle is None:
                    continue
                if handle._cancelled:
                    self.remove_signal_handler(signum)
                else:
                    self.call_soon(handle._run)

    def add_signal_handler(self, sig, callback, *args):
        """Run callback(*args) in the loop when signal `sig` arrives."""
        if (coroutines.iscoroutine(callback)
                or _iscoroutinefunction(callback)):
            raise TypeError("coroutines cannot be used with "
                            "add_signal_handler()")
        self._check_signal(sig)
        self._check_closed()
        self._open_signal_socket()
        try:
            # Raises ValueError outside the main thread.
            signal.set_wakeup_fd(self._csock.fileno())
        except (ValueError, OSError) as exc:
            raise RuntimeError(str(exc))
        handle = _core.Handle(callback, args, self, None)
        self._signal_handlers[sig] = handle
        try:
            signal.signal(sig, _sighandler_noop)
            signal.siginterrupt(sig, False)
        except OSError as exc:
            del self._signal_handlers[sig]
            if not self._signal_handlers:
                try:
                    signal.set_wakeup_fd(-1)
                except (ValueError, OSError) as nexc:
                    logger.info("set_wakeup_fd(-1) failed: %s", nexc)
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig:d} cannot be caught")
            raise

    def remove_signal_handler(self, sig):
        """Remove the handler for `sig`; True if there was one."""
        self._check_signal(sig)
        try:
            del self._signal_handlers[sig]
        except KeyError:
            return False
        handler = (signal.default_int_handler if sig == signal.SIGINT
                   else signal.SIG_DFL)
        try:
            signal.signal(sig, handler)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig:d} cannot be caught")
            raise
        if not self._signal_handlers:
            try:
                signal.set_wakeup_fd(-1)
            except (ValueError, OSError) as exc:
                logger.info("set_wakeup_fd(-1) failed: %s", exc)
        return True
