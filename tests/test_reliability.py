"""Inputs that used to freeze the loop, cross wires between sockets or get an
answer other than asyncio's: timers with deadlines at the edges of (or
outside) the float range, file descriptors out of range, the registration
of a socket closed before it was removed, odd numeric types, and a
BufferedProtocol that pauses or aborts its transport in get_buffer().

Every test runs on asyncio and on turboloop and expects asyncio's result
for the running Python version."""

import asyncio
import contextlib
import math
import os
import resource
import socket
import threading
import warnings
from decimal import Decimal
from fractions import Fraction

import pytest

from support import PY

ALSO_POLL_BACKEND = True


@contextlib.contextmanager
def watchdog(loop, seconds=10.0):
    """Stop the loop from another thread after `seconds`, so that a loop
    frozen in its poll fails the test instead of hanging it."""
    fired = []

    def wake():
        fired.append(True)
        loop.call_soon_threadsafe(loop.stop)

    timer = threading.Timer(seconds, wake)
    timer.start()
    try:
        yield fired
    finally:
        timer.cancel()
        timer.join()


def run_until_called(loop, schedule):
    """Schedule a callback with schedule(cb) and run the loop with nothing
    else to do until the callback has run: a loop that computes a long
    timeout from the deadline sleeps instead."""
    fut = loop.create_future()
    handle = schedule(lambda: fut.set_result("called"))
    with watchdog(loop) as fired:
        loop.run_until_complete(fut)
    assert not fired, "the loop slept through a due timer"
    return handle


def noop(*args):
    pass


class Index:
    def __index__(self):
        return 1


class Float:
    def __float__(self):
        return 0.01


# -- 1. timers that froze the loop -----------------------------------------------


def test_call_later_minus_inf_runs_on_next_iteration(loop):
    h = run_until_called(loop, lambda cb: loop.call_later(-math.inf, cb))
    assert h.when() == -math.inf
    loop.close()


@pytest.mark.parametrize("when", [-1e12, -1e300, -math.inf, -9.3e9])
def test_call_at_far_past_runs_on_next_iteration(loop, when):
    h = run_until_called(loop, lambda cb: loop.call_at(when, cb))
    assert h.when() == when
    loop.close()


def test_call_at_far_past_does_not_delay_other_timers(loop):
    # The far-past timer must not make the loop sleep past a near one.
    order = []
    loop.call_at(-1e12, order.append, "past")
    loop.call_later(0.01, order.append, "near")
    loop.call_later(0.02, loop.stop)
    with watchdog(loop) as fired:
        loop.run_forever()
    assert not fired
    assert order == ["past", "near"]
    loop.close()


def test_far_past_deadlines_keep_their_order(loop):
    # Deadlines beyond what a nanosecond count holds must not collapse into
    # one value and fire in insertion order: asyncio compares the floats.
    order = []
    for when in (-1e12, -1e300, -math.inf, -9.3e9):
        loop.call_at(when, order.append, when)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert order == [-math.inf, -1e300, -1e12, -9.3e9]
    loop.close()


def test_deadlines_closer_than_a_nanosecond_keep_their_order(loop):
    t = loop.time() - 1
    order = []
    loop.call_at(math.nextafter(t, math.inf), order.append, "later")
    loop.call_at(t, order.append, "earlier")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert order == ["earlier", "later"]
    loop.close()


def test_call_at_nan_runs_at_once(loop):
    # asyncio moves a NaN deadline to the ready queue when it is at the head
    # of the heap (NaN >= now is false).  Until 3.12 the timeout computed
    # from it is 0; from 3.13 on the selector's math.ceil(NaN) raises when
    # the loop has nothing else to do.
    fired = []
    h = loop.call_at(math.nan, fired.append, "nan")
    assert math.isnan(h.when())
    if PY >= (3, 13):
        with watchdog(loop), pytest.raises(ValueError, match="cannot convert float NaN to integer"):
            loop.run_forever()
        assert fired == []
        # With something ready the timeout is 0 and the timer is due.
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert fired == ["nan"]
    else:
        run_until_called(loop, lambda cb: loop.call_at(math.nan, cb))
        assert fired == ["nan"]
    loop.close()


def test_call_later_nan_runs_with_ready_work(loop):
    fired = []
    loop.call_later(math.nan, fired.append, "nan")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert fired == ["nan"]
    loop.close()


@pytest.mark.parametrize("delay", [math.inf, 1e300, 10**300])
def test_call_later_far_future_sleeps_but_wakes_for_others(loop, delay):
    fired = []
    far = loop.call_later(delay, fired.append, "far")
    loop.call_later(0.01, loop.stop)
    with watchdog(loop) as woke:
        loop.run_forever()
    assert not woke
    assert fired == []
    far.cancel()
    loop.close()


def test_call_at_10_pow_400_is_accepted(loop):
    # asyncio keeps the int; it only fails if the loop ever computes a
    # timeout from it (see the next test).
    fired = []
    h = loop.call_at(10**400, fired.append, "never")
    assert h.when() == 10**400
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert fired == []
    h.cancel()
    loop.close()


@pytest.mark.parametrize("when", [10**400, -(10**400)])
def test_call_at_huge_int_alone_raises_overflow_from_run(loop, when):
    # At the head of the heap with nothing else to do, asyncio computes
    # `when - self.time()`, which overflows.
    h = loop.call_at(when, noop)
    with watchdog(loop), pytest.raises(OverflowError, match="int too large to convert to float"):
        loop.run_forever()
    h.cancel()
    loop.close()


def test_call_later_10_pow_400_raises_overflow(loop):
    with pytest.raises(OverflowError, match="int too large to convert to float"):
        loop.call_later(10**400, noop)
    loop.close()


DEADLINES = {
    "float": lambda t: t - 5,
    "int": lambda t: int(t) - 5,
    "Fraction": lambda t: Fraction(int(t)) - 5,
    "bool": lambda t: True,
}


@pytest.mark.parametrize("make", sorted(DEADLINES))
def test_call_at_keeps_the_deadline_object(loop, make):
    when = DEADLINES[make](loop.time())
    h = loop.call_at(when, noop)
    assert h.when() == when
    assert type(h.when()) is type(when)
    assert f"when={when}" in repr(h)
    run_until_called(loop, lambda cb: loop.call_at(when, cb))
    loop.close()


def test_timer_handles_compare_their_deadline_objects(kind, loop):
    a = loop.call_at(Fraction(1, 3), noop)
    b = loop.call_at(1 / 3, noop)
    c = loop.call_at(1, noop)
    # 1/3 as a float is a little less than 1/3, exactly.
    assert b < a < c
    assert a <= a and not (a < a)
    assert (a == b) is False
    assert hash(c) == hash(1)
    for h in (a, b, c):
        h.cancel()
    loop.close()


# -- 2. file descriptors out of range ----------------------------------------------


@pytest.mark.parametrize("method", ["add_reader", "add_writer"])
@pytest.mark.parametrize("fd", [2**30, 2**31 - 1])
def test_add_watcher_fd_2_pow_30_raises_ebadf(loop, method, fd):
    with pytest.raises(OSError) as info:
        getattr(loop, method)(fd, noop)
    assert info.value.errno == 9
    loop.close()


@pytest.mark.parametrize("method", ["add_reader", "add_writer"])
@pytest.mark.parametrize("fd", [2**31, 2**40, 10**30])
def test_add_watcher_fd_2_pow_40_raises_overflow(loop, method, fd):
    with pytest.raises(OverflowError, match="Python int too large to convert to C int"):
        getattr(loop, method)(fd, noop)
    loop.close()


@pytest.mark.parametrize("method", ["remove_reader", "remove_writer"])
@pytest.mark.parametrize("fd", [2**24, 2**30, 2**31, 2**40, 10**30])
def test_remove_watcher_of_unregistered_huge_fd_returns_false(loop, method, fd):
    assert getattr(loop, method)(fd) is False
    loop.close()


@pytest.mark.parametrize("fd", [-1, -(2**70)])
def test_negative_fd_raises_value_error(loop, fd):
    for method in ("add_reader", "add_writer"):
        with pytest.raises(ValueError, match=f"Invalid file descriptor: {fd}$"):
            getattr(loop, method)(fd, noop)
    for method in ("remove_reader", "remove_writer"):
        with pytest.raises(ValueError, match=f"Invalid file descriptor: {fd}$"):
            getattr(loop, method)(fd)
    loop.close()


def test_failed_add_reader_does_not_grow_the_fd_table(loop):
    # 2**24 is not open: the registration fails, and must cost nothing.
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for fd in (2**24, 2**25, 2**26):
        with pytest.raises(OSError):
            loop.add_reader(fd, noop)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 64 * 1024
    loop.close()


def test_loop_keeps_working_after_rejected_fds(loop):
    a, b = socket.socketpair()
    try:
        for fd in (2**30, 2**31, -1):
            with pytest.raises((OSError, OverflowError, ValueError)):
                loop.add_reader(fd, noop)
        got = loop.create_future()
        loop.add_reader(a, lambda: got.set_result(a.recv(10)))
        b.send(b"ok")
        assert loop.run_until_complete(got) == b"ok"
        assert loop.remove_reader(a) is True
    finally:
        a.close()
        b.close()
    loop.close()


# -- 3. the registration of a closed socket ----------------------------------------


@pytest.mark.parametrize("method", ["reader", "writer"])
def test_remove_watcher_of_closed_socket_returns_true(loop, method):
    a, b = socket.socketpair()
    getattr(loop, f"add_{method}")(a, noop)
    a.close()
    assert getattr(loop, f"remove_{method}")(a) is True
    # Gone now: the closed socket has no fd and no registration to find.
    with pytest.raises(ValueError, match="Invalid file descriptor: -1"):
        getattr(loop, f"remove_{method}")(a)
    b.close()
    loop.close()


def test_remove_reader_of_closed_socket_cancels_its_handle(loop):
    a, b = socket.socketpair()
    loop.add_reader(a, noop)
    handle = loop._selector.get_key(a).data[0] if not hasattr(loop, "_get_reader") else loop._get_reader(a.fileno())
    a.close()
    assert loop.remove_reader(a) is True
    assert handle.cancelled()
    b.close()
    loop.close()


def test_remove_reader_of_closed_socket_also_watched_for_writing(loop):
    # asyncio's selector changes the fd's interest to "write only", which
    # the kernel refuses for a closed fd: the error is raised and the whole
    # registration dropped.
    a, b = socket.socketpair()
    loop.add_reader(a, noop)
    loop.add_writer(a, noop)
    a.close()
    with pytest.raises(OSError) as info:
        loop.remove_reader(a)
    assert info.value.errno == 9
    with pytest.raises(ValueError, match="Invalid file descriptor: -1"):
        loop.remove_writer(a)
    b.close()
    loop.close()


def test_closed_socket_reader_does_not_fire_for_the_next_socket(kind, loop):
    # A reader left on a closed socket; the next socket gets the same fd
    # number and receives data.  The old callback must not see it.
    if kind.poller == "poll":
        pytest.skip("poll(2) keeps no registration that could die with the file")
    fired = []
    old, old_peer = socket.socketpair()
    loop.add_reader(old, fired.append, "old")
    fd = old.fileno()
    old.close()
    old_peer.close()
    new, peer = socket.socketpair()
    try:
        if new.fileno() != fd:
            os.dup2(new.fileno(), fd)
            new.close()
            new = socket.socket(fileno=fd)
        peer.send(b"for the new socket")
        # Watching the new socket for writing changes the interest of the
        # fd: asyncio's selector finds the stale registration and fails.
        with pytest.raises(FileNotFoundError):
            loop.add_writer(new, fired.append, "new-writer")
        loop.call_later(0.02, loop.stop)
        loop.run_forever()
        assert fired == []
        # The stale registration is gone: the new socket can be watched.
        got = loop.create_future()
        loop.add_reader(new, lambda: got.done() or got.set_result(new.recv(100)))
        assert loop.run_until_complete(got) == b"for the new socket"
        assert loop.remove_reader(new) is True
    finally:
        new.close()
        peer.close()
    loop.close()


def test_closed_socket_removed_then_fd_reused(loop):
    # The anyio pattern: close the socket, then remove its reader; the next
    # socket with that number works normally.
    a, b = socket.socketpair()
    loop.add_reader(a, noop)
    fd = a.fileno()
    a.close()
    b.close()
    assert loop.remove_reader(a) is True
    c, d = socket.socketpair()
    try:
        got = loop.create_future()
        loop.add_reader(c, lambda: got.done() or got.set_result((c.fileno(), c.recv(10))))
        d.send(b"hi")
        cfd, data = loop.run_until_complete(got)
        assert data == b"hi"
        assert loop.remove_reader(c) is True
        del fd, cfd
    finally:
        c.close()
        d.close()
    loop.close()


# -- 4. smaller differences ----------------------------------------------------------


@pytest.mark.parametrize(
    "delay, message",
    [
        (Decimal("0.01"), "unsupported operand type(s) for +: 'float' and 'decimal.Decimal'"),
        (Index(), "unsupported operand type(s) for +: 'float' and 'Index'"),
        (Float(), "unsupported operand type(s) for +: 'float' and 'Float'"),
        ("1", "unsupported operand type(s) for +: 'float' and 'str'"),
    ],
)
def test_call_later_decimal_and_index_raise_type_error(loop, delay, message):
    with pytest.raises(TypeError) as info:
        loop.call_later(delay, noop)
    assert str(info.value) == message
    loop.close()


def test_call_later_fraction_and_bool(loop):
    h = loop.call_later(Fraction(-1, 2), noop)
    assert type(h.when()) is float
    h.cancel()
    h = loop.call_later(True, noop)
    assert type(h.when()) is float
    h.cancel()
    loop.close()


def test_call_at_decimal_raises_type_error_from_run(loop):
    # asyncio accepts it and fails computing `when - self.time()`.
    h = loop.call_at(Decimal("0.01"), noop)
    assert h.when() == Decimal("0.01")
    with watchdog(loop), pytest.raises(TypeError, match=r"unsupported operand type\(s\) for -: 'decimal.Decimal' and 'float'"):
        loop.run_forever()
    h.cancel()
    loop.close()


def test_call_later_and_call_at_none_messages(loop):
    with pytest.raises(TypeError, match="^delay must not be None$"):
        loop.call_later(None, noop)
    with pytest.raises(TypeError, match="^when cannot be None$"):
        loop.call_at(None, noop)
    loop.close()


def test_call_at_on_closed_loop_checks_closed_first(loop):
    loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.call_at(Decimal(1), noop)
    with pytest.raises(TypeError):
        loop.call_later(Decimal(1), noop)


class _GetBufferActs(asyncio.BufferedProtocol):
    def __init__(self, loop, action):
        self.loop = loop
        self.action = action
        self.events = []
        self.buf = bytearray(64)
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport

    def get_buffer(self, sizehint):
        self.events.append("get_buffer")
        if self.action == "pause":
            self.transport.pause_reading()
        elif self.action == "abort":
            self.transport.abort()
        elif self.action == "close":
            self.transport.close()
        return self.buf

    def buffer_updated(self, nbytes):
        self.events.append(("buffer_updated", bytes(self.buf[:nbytes])))

    def eof_received(self):
        self.events.append("eof")

    def connection_lost(self, exc):
        self.events.append(("lost", exc))
        if not self.lost.done():
            self.lost.set_result(None)


@pytest.mark.parametrize("action", ["pause", "abort", "close"])
def test_buffered_protocol_get_buffer_pause_or_abort_still_gets_buffer_updated(loop, action):
    a, b = socket.socketpair()
    proto = _GetBufferActs(loop, action)

    async def main():
        tr, _ = await loop.connect_accepted_socket(lambda: proto, a)
        b.send(b"hello")
        if action == "pause":
            for _ in range(20):
                await asyncio.sleep(0)
            tr.close()
        await proto.lost

    try:
        loop.run_until_complete(main())
    finally:
        b.close()
    assert proto.events == ["get_buffer", ("buffer_updated", b"hello"), ("lost", None)]
    loop.close()


def test_add_reader_bool_fd_warns_from_3_13(loop):
    a, b = socket.socketpair()
    try:
        # Every epoll call with the bool warns: registering, and removing
        # when registering worked (fd 1 may be a file, which epoll refuses).
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            calls = 1
            try:
                loop.add_reader(True, noop)
            except OSError:
                pass
            else:
                calls += 1
                assert loop.remove_reader(1) is True
        messages = [str(w.message) for w in caught if w.category is RuntimeWarning]
        assert messages == (["bool is used as a file descriptor"] * calls if PY >= (3, 13) else [])
    finally:
        a.close()
        b.close()
    loop.close()


@pytest.mark.skipif(PY < (3, 13), reason="the bool fd warning is 3.13+")
def test_warning_handler_closing_the_loop_during_add_reader(loop):
    # The warning runs Python code in the middle of a registration: a
    # handler that closes the loop must leave an error (asyncio's is a
    # KeyError from its selector), not a crash.
    def close_loop(*args, **kwargs):
        loop.close()

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = close_loop
        with pytest.raises(Exception):
            loop.add_reader(True, noop)
    assert loop.is_closed()


def test_profiled_loop_with_deadlines_at_the_ends_of_the_range(kind):
    # The profiler's timer lateness is worked out from the deadline: a
    # deadline of -inf or -1e300 must saturate, not wrap.
    if not kind.is_turboloop:
        pytest.skip("the profiler is turboloop's")
    loop = kind.new_loop()
    try:
        loop.set_profiling(True)
        fired = []
        for when in (-math.inf, -1e300, math.nan):
            loop.call_at(when, fired.append, when)
        loop.call_soon(loop.stop)
        loop.run_forever()
        loop.set_profiling(False)
        late = loop.get_profile().timer_lateness
        assert len(fired) == 3
        assert late.count == 3
        assert late.max >= late.p50 >= 0
    finally:
        loop.close()
