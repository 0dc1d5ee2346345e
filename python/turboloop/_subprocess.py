"""Child processes for turboloop's loop.

What runs once per process is asyncio's own code for the running Python:
subprocess_exec() and subprocess_shell() (argument checks, debug logging)
come from asyncio's BaseEventLoop, the transport is asyncio's
_UnixSubprocessTransport (subprocess.Popen, the pipe protocols,
SubprocessProtocol's callbacks in asyncio's order, _wait()), and
asyncio.subprocess.Process sits on top unchanged.  Its pipes are the C pipe
transports (csrc/pipe.c, through connect_read_pipe/connect_write_pipe).

What is turboloop's is how a child's exit is noticed: the loop's C core
watches a pidfd of the child in its poller (csrc/process.c), reaps the
child when it turns readable and calls back, without a SIGCHLD handler or a
thread.  Where pidfds are not available, asyncio's threaded child watcher
does it, as asyncio itself falls back.  The watcher is loop._watcher, chosen
when the loop is made, as asyncio 3.14+ does.

Up to Python 3.13 asyncio also lets a program choose a child watcher through
the event loop policy (asyncio.set_child_watcher(), deprecated in 3.12).
When one is set, turboloop uses it exactly as asyncio would (asyncio's own
_make_subprocess_transport of that version).  asyncio's default watchers,
which serve whatever loop is running (ThreadedChildWatcher, and from 3.12
PidfdChildWatcher), are taken as a request for the default and get the
loop's own.
"""

import os
import sys

from asyncio import base_events, events, unix_events

from . import _core

__all__ = ("SubprocessMixin",)

_PY314 = sys.version_info >= (3, 14)

# asyncio's functions this loop runs unchanged (no super() inside).
_BORROWED_BASE = ("subprocess_exec", "subprocess_shell", "_log_subprocess")
_BORROWED_UNIX = ("_child_watcher_callback",)


def _can_use_pidfd():
    """Whether this kernel gives out pidfds; asyncio's check where it has
    one (3.12+, looked up at call time so that a test can replace it)."""
    check = getattr(unix_events, "can_use_pidfd", None)
    if check is not None:
        return check()
    if not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid(), 0))
    except OSError:
        return False
    return True


_PidfdBase = unix_events._PidfdChildWatcher if _PY314 else object


class _PidfdChildWatcher(_PidfdBase):
    """asyncio's pidfd child watcher, with the watching done by the loop's
    C core: the pidfd sits in the loop's poller and the child is reaped and
    reported from C (no reader Handle, no Python callback in between)."""

    def add_child_handler(self, pid, callback, *args):
        loop = events.get_running_loop()
        _core.PidfdWatch(loop, pid, callback, args)


def _threaded_child_watcher():
    if _PY314:
        return unix_events._ThreadedChildWatcher()
    return unix_events.ThreadedChildWatcher()


def new_child_watcher():
    """The loop's child watcher: pidfds in the poller where the kernel has
    them, asyncio's threaded watcher otherwise."""
    if _can_use_pidfd():
        return _PidfdChildWatcher()
    return _threaded_child_watcher()


if not _PY314:
    _DefaultPolicy = unix_events._UnixDefaultEventLoopPolicy
    # asyncio's default watchers, which serve whatever loop is running (the
    # pidfd one only from 3.12; in 3.11 it is bound to one loop).
    _ANY_LOOP_WATCHERS = (unix_events.ThreadedChildWatcher,)
    if sys.version_info >= (3, 12):
        _ANY_LOOP_WATCHERS += (unix_events.PidfdChildWatcher,)

    def _policy_child_watcher():
        """The child watcher a program set in asyncio's event loop policy,
        or None.  asyncio's defaults, made by asyncio.get_child_watcher()
        for the first subprocess of a stock loop, work the same on any
        running loop: for this loop they mean its own watcher."""
        policy = events._event_loop_policy
        if not isinstance(policy, _DefaultPolicy):
            return None
        watcher = policy._watcher
        if watcher is None or type(watcher) in _ANY_LOOP_WATCHERS:
            return None
        return watcher


class SubprocessMixin:
    """The subprocess part of turboloop.Loop."""

    def _init_subprocess(self):
        self._watcher = new_child_watcher()

    if _PY314:
        # asyncio's own, which uses self._watcher; borrowed below.
        pass
    else:
        async def _make_subprocess_transport(self, protocol, args, shell,
                                             stdin, stdout, stderr, bufsize,
                                             extra=None, **kwargs):
            if _policy_child_watcher() is not None:
                return await self._policy_make_subprocess_transport(
                    protocol, args, shell, stdin, stdout, stderr, bufsize,
                    extra=extra, **kwargs)
            # What asyncio does with its default watcher, the loop's here.
            waiter = self.create_future()
            transp = unix_events._UnixSubprocessTransport(
                self, protocol, args, shell, stdin, stdout, stderr, bufsize,
                waiter=waiter, extra=extra, **kwargs)
            self._watcher.add_child_handler(
                transp.get_pid(), self._child_watcher_callback, transp)
            try:
                await waiter
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                transp.close()
                await transp._wait()
                raise
            return transp

    def _child_status_lost(self, pid):
        # Called by the C watcher when someone else reaped the child.
        from asyncio.log import logger
        logger.warning("child process pid %d exit status already read: "
                       " will report returncode 255", pid)


def _borrow():
    sources = ((base_events.BaseEventLoop, _BORROWED_BASE),
               (unix_events._UnixSelectorEventLoop, _BORROWED_UNIX))
    for cls, names in sources:
        for name in names:
            setattr(SubprocessMixin, name, cls.__dict__[name])
    make = unix_events._UnixSelectorEventLoop._make_subprocess_transport
    if _PY314:
        SubprocessMixin._make_subprocess_transport = make
    else:
        SubprocessMixin._policy_make_subprocess_transport = make


_borrow()
