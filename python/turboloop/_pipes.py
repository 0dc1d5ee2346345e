"""Pipe transports for turboloop's loop: the set-up half.

connect_read_pipe() and connect_write_pipe() are asyncio's own coroutines
(borrowed in _network.py); they call _make_read_pipe_transport() and
_make_write_pipe_transport(), which here build the C transports of
csrc/pipe.c after the checks asyncio's _UnixReadPipeTransport and
_UnixWritePipeTransport make in their __init__.  Subprocess pipes come
through the same two methods.
"""

import os
import stat
import sys

from asyncio import futures
from asyncio.log import logger

from . import _core

__all__ = ("PipeMixin",)

# As asyncio: on AIX the write end's reader trick works for sockets only.
_WATCH_FIFO_CLOSE = not sys.platform.startswith("aix")


class PipeMixin:
    """The pipe part of turboloop.Loop."""

    def _make_read_pipe_transport(self, pipe, protocol, waiter=None,
                                  extra=None):
        fd = pipe.fileno()
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)
                or stat.S_ISCHR(mode)):
            raise ValueError("Pipe transport is for pipes/sockets only.")
        os.set_blocking(fd, False)
        info = extra if extra is not None else {}
        info["pipe"] = pipe
        transport = _core.ReadPipeTransport(self, pipe, fd, protocol, info)
        self.call_soon(protocol.connection_made, transport)
        # Reading starts once connection_made() has run.
        self.call_soon(transport._start_reading)
        if waiter is not None:
            self.call_soon(futures._set_result_unless_cancelled, waiter, None)
        return transport

    def _make_write_pipe_transport(self, pipe, protocol, waiter=None,
                                   extra=None):
        fd = pipe.fileno()
        st = os.fstat(fd)
        is_fifo = stat.S_ISFIFO(st.st_mode)
        is_socket = stat.S_ISSOCK(st.st_mode)
        if not (stat.S_ISCHR(st.st_mode) or is_fifo or is_socket):
            raise ValueError("Pipe transport is only for "
                             "pipes, sockets and character devices")
        os.set_blocking(fd, False)
        info = extra if extra is not None else {}
        info["pipe"] = pipe
        # The write end of a pipe or a socket turns readable when the
        # reader goes away: watching that is how a closed reader is seen.
        watch_close = is_socket or (is_fifo and _WATCH_FIFO_CLOSE
                                    and not _named_fifo_without_close(st))
        transport = _core.WritePipeTransport(self, pipe, fd, protocol, info,
                                             watch_close)
        self.call_soon(protocol.connection_made, transport)
        self.call_soon(transport._start_reading)
        if waiter is not None:
            self.call_soon(futures._set_result_unless_cancelled, waiter, None)
        return transport

    # Called by the C transports.

    def _pipe_log(self, level, transport, what):
        log = getattr(logger, level)
        if transport is None:
            log(what)
        else:
            log("%r %s", transport, what)

    def _pipe_log_exc(self, transport, message, exc):
        logger.debug("%r: %s", transport, message, exc_info=exc)


def _named_fifo_without_close(st):
    # macOS and Solaris report no event on a named FIFO's write end when its
    # reader closes, and a false one while data sits unread (CPython
    # gh-145030); pipes from os.pipe() have no links.
    return (sys.platform in {"darwin", "ios", "tvos", "watchos", "sunos5"}
            and st.st_nlink > 0)
