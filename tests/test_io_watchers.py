"""add_reader / add_writer / remove_reader / remove_writer on sockets and
pipes, and the errors bad file descriptors give."""

import contextlib
import os
import socket
import tempfile

import pytest

# The multiplexer matters here: run on turboloop's poll(2) backend as well.
ALSO_POLL_BACKEND = True


@pytest.fixture
def socks():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def pipe():
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    yield r, w
    for fd in (r, w):
        with contextlib.suppress(OSError):
            os.close(fd)


def test_reader_called_with_args_when_readable(kind, loop, socks):
    a, b = socks
    fut = kind.Future(loop=loop)

    def on_readable(sock, tag):
        fut.set_result((tag, sock.recv(100)))
        loop.remove_reader(sock)

    loop.add_reader(a, on_readable, a, "tag")
    loop.call_soon(b.send, b"hello")
    assert loop.run_until_complete(fut) == ("tag", b"hello")
    loop.close()


def test_reader_accepts_fd_number(kind, loop, socks):
    a, b = socks
    fut = kind.Future(loop=loop)

    def on_readable():
        loop.remove_reader(a.fileno())
        fut.set_result(a.recv(100))

    loop.add_reader(a.fileno(), on_readable)
    b.send(b"x")
    assert loop.run_until_complete(fut) == b"x"
    loop.close()


def test_remove_reader_return_value(loop, socks):
    a, _ = socks
    assert loop.remove_reader(a) is False
    loop.add_reader(a, print)
    assert loop.remove_reader(a) is True
    assert loop.remove_reader(a) is False
    assert loop.remove_reader(a.fileno()) is False
    loop.close()


def test_remove_writer_return_value(loop, socks):
    a, _ = socks
    assert loop.remove_writer(a) is False
    loop.add_writer(a, print)
    assert loop.remove_writer(a.fileno()) is True
    assert loop.remove_writer(a) is False
    loop.close()


def test_writer_called_when_writable(kind, loop, socks):
    a, b = socks
    fut = kind.Future(loop=loop)

    def on_writable(arg):
        loop.remove_writer(a)
        a.send(b"written")
        fut.set_result(arg)

    loop.add_writer(a, on_writable, 42)
    assert loop.run_until_complete(fut) == 42
    assert b.recv(100) == b"written"
    loop.close()


def test_reader_is_level_triggered(kind, loop, socks):
    # The callback does not read, so the fd stays readable and the reader is
    # called again on each iteration until it is removed.
    a, b = socks
    calls = []
    fut = kind.Future(loop=loop)

    def on_readable():
        calls.append(1)
        if len(calls) == 3:
            loop.remove_reader(a)
            fut.set_result(None)

    loop.add_reader(a, on_readable)
    b.send(b"data")
    loop.run_until_complete(fut)
    assert len(calls) == 3
    assert a.recv(100) == b"data"
    loop.close()


def test_removed_reader_is_not_called(loop, socks):
    a, b = socks
    calls = []
    loop.add_reader(a, calls.append, "reader")
    b.send(b"data")
    loop.remove_reader(a)
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert calls == []
    loop.close()


def test_reader_removed_by_earlier_callback_in_same_iteration(loop, socks):
    a, b = socks
    calls = []
    b.send(b"data")

    def first():
        calls.append("first")
        loop.remove_reader(a)

    loop.add_reader(a, calls.append, "reader")
    # Runs before the poll that sees the data, so the reader never fires.
    loop.call_soon(first)
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert calls == ["first"]
    loop.close()


def test_add_reader_replaces_previous_callback(kind, loop, socks):
    a, b = socks
    calls = []
    fut = kind.Future(loop=loop)

    def second():
        calls.append("second")
        loop.remove_reader(a)
        fut.set_result(None)

    loop.add_reader(a, calls.append, "first")
    loop.add_reader(a, second)
    b.send(b"x")
    loop.run_until_complete(fut)
    assert calls == ["second"]
    loop.close()


def test_reader_and_writer_on_one_fd_are_independent(kind, loop, socks):
    a, b = socks
    events = []
    done = kind.Future(loop=loop)

    def on_writable():
        events.append("w")
        loop.remove_writer(a)
        b.send(b"ping")

    def on_readable():
        events.append("r")
        a.recv(100)
        loop.remove_reader(a)
        done.set_result(None)

    loop.add_reader(a, on_readable)
    loop.add_writer(a, on_writable)
    loop.run_until_complete(done)
    assert events == ["w", "r"]
    assert loop.remove_reader(a) is False
    assert loop.remove_writer(a) is False
    loop.close()


def test_remove_reader_keeps_writer(kind, loop, socks):
    a, _ = socks
    fut = kind.Future(loop=loop)
    loop.add_reader(a, print)
    loop.add_writer(a, lambda: fut.done() or fut.set_result("writer"))
    assert loop.remove_reader(a) is True
    assert loop.run_until_complete(fut) == "writer"
    assert loop.remove_writer(a) is True
    loop.close()


def test_remove_writer_keeps_reader(kind, loop, socks):
    a, b = socks
    fut = kind.Future(loop=loop)
    loop.add_writer(a, print)
    loop.add_reader(a, lambda: fut.done() or fut.set_result(a.recv(10)))
    assert loop.remove_writer(a) is True
    b.send(b"r")
    assert loop.run_until_complete(fut) == b"r"
    assert loop.remove_reader(a) is True
    loop.close()


def test_pipe_reader_and_writer(kind, loop, pipe):
    r, w = pipe
    got = kind.Future(loop=loop)

    def on_writable():
        loop.remove_writer(w)
        os.write(w, b"through the pipe")

    def on_readable():
        loop.remove_reader(r)
        got.set_result(os.read(r, 100))

    loop.add_reader(r, on_readable)
    loop.add_writer(w, on_writable)
    assert loop.run_until_complete(got) == b"through the pipe"
    loop.close()


def test_reader_sees_eof(kind, loop, socks):
    a, b = socks
    fut = kind.Future(loop=loop)

    def on_readable():
        loop.remove_reader(a)
        fut.set_result(a.recv(100))

    loop.add_reader(a, on_readable)
    b.close()
    assert loop.run_until_complete(fut) == b""
    loop.close()


def test_pipe_reader_sees_hangup(kind, loop, pipe):
    r, w = pipe
    fut = kind.Future(loop=loop)

    def on_readable():
        loop.remove_reader(r)
        fut.set_result(os.read(r, 100))

    loop.add_reader(r, on_readable)
    os.close(w)
    assert loop.run_until_complete(fut) == b""
    loop.close()


def test_many_fds(kind, loop):
    pairs = [socket.socketpair() for _ in range(64)]
    try:
        pending = set(range(len(pairs)))
        done = kind.Future(loop=loop)

        def on_readable(i):
            a = pairs[i][0]
            assert a.recv(10) == str(i).encode()
            loop.remove_reader(a)
            pending.discard(i)
            if not pending:
                done.set_result(None)

        for i, (a, b) in enumerate(pairs):
            a.setblocking(False)
            loop.add_reader(a, on_readable, i)
        for i, (a, b) in reversed(list(enumerate(pairs))):
            b.send(str(i).encode())
        loop.run_until_complete(done)
        assert not pending
    finally:
        for a, b in pairs:
            a.close()
            b.close()
    loop.close()


def test_watcher_added_from_a_callback_while_polling(kind, loop, socks):
    a, b = socks
    fut = kind.Future(loop=loop)

    def arm():
        loop.add_reader(a, lambda: fut.done() or fut.set_result(a.recv(10)))
        loop.call_later(0.01, b.send, b"late")

    loop.call_later(0.01, arm)
    assert loop.run_until_complete(fut) == b"late"
    loop.remove_reader(a)
    loop.close()


def test_exception_in_reader_goes_to_handler(kind, loop, errors, socks):
    a, b = socks
    fut = kind.Future(loop=loop)

    def on_readable():
        loop.remove_reader(a)
        loop.call_soon(fut.set_result, None)
        raise ZeroDivisionError("in reader")

    loop.add_reader(a, on_readable)
    b.send(b"x")
    loop.run_until_complete(fut)
    context, = errors
    assert isinstance(context["exception"], ZeroDivisionError)
    assert context["message"].startswith("Exception in callback ")
    assert isinstance(context["handle"], kind.Handle)
    errors.clear()
    loop.close()


def test_closing_the_loop_leaves_user_fds_open(loop, socks):
    a, b = socks
    loop.add_reader(a, print)
    loop.add_writer(b, print)
    loop.close()
    b.send(b"still open")
    assert a.recv(100) == b"still open"


@pytest.mark.parametrize("method", ["reader", "writer"])
def test_remove_watcher_after_fd_was_closed(loop, method):
    # Closing a socket before removing its watcher is a common slip; removing
    # the last watcher of a closed fd must not raise.
    a, b = socket.socketpair()
    fd = a.fileno()
    getattr(loop, f"add_{method}")(fd, print)
    a.close()
    b.close()
    assert getattr(loop, f"remove_{method}")(fd) is True
    loop.close()


def test_fd_number_reused_after_close(kind, loop):
    # A watcher is removed, its socket closed, and the same fd number comes
    # back as a different socket: the new registration must take effect.
    # A poller that caches interest per fd number must not mistake it for
    # the old one.
    a, b = socket.socketpair()
    fd = a.fileno()
    loop.add_reader(fd, print)
    loop.add_writer(fd, print)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert loop.remove_reader(fd) is True
    assert loop.remove_writer(fd) is True
    # Made before the close, so that its own fds are not the freed number.
    c, d = socket.socketpair()
    a.close()
    b.close()
    try:
        os.dup2(c.fileno(), fd)
        got = kind.Future(loop=loop)

        def on_readable():
            loop.remove_reader(fd)
            got.set_result(os.read(fd, 100))

        loop.add_reader(fd, on_readable)
        d.send(b"new socket")
        assert loop.run_until_complete(got) == b"new socket"
    finally:
        os.close(fd)
        c.close()
        d.close()
    loop.close()


def test_high_fd_number(kind, loop):
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1100:
        pytest.skip(f"RLIMIT_NOFILE is {soft}")
    # Above select()'s FD_SETSIZE and well above anything else in use, so a
    # registry indexed by fd has to grow.
    high = min(soft - 1, 60000)
    a, b = socket.socketpair()
    try:
        os.dup2(a.fileno(), high)
        got = kind.Future(loop=loop)

        def on_readable():
            loop.remove_reader(high)
            got.set_result(os.read(high, 100))

        loop.add_reader(high, on_readable)
        b.send(b"high")
        assert loop.run_until_complete(got) == b"high"
    finally:
        os.close(high)
        a.close()
        b.close()
    loop.close()


def test_add_remove_add_in_one_iteration(kind, loop, socks):
    # Interest changes made between two polls are all applied, in order.
    a, b = socks
    calls = []
    got = kind.Future(loop=loop)

    def final(tag):
        calls.append(tag)
        loop.remove_reader(a)
        loop.remove_writer(a)
        got.set_result(None)

    def churn():
        for _ in range(10):
            loop.add_reader(a, calls.append, "stale reader")
            loop.remove_reader(a)
            loop.add_writer(a, calls.append, "stale writer")
            loop.remove_writer(a)
        loop.add_reader(a, final, "reader")

    b.send(b"x")
    loop.call_soon(churn)
    loop.run_until_complete(got)
    assert calls == ["reader"]
    loop.close()


def test_writer_fires_when_the_pipe_reader_is_gone(kind, loop, pipe):
    # The error condition (EPOLLERR / POLLERR) counts as writable, so the
    # writer runs and learns of the broken pipe from its write.
    r, w = pipe
    os.close(r)
    got = kind.Future(loop=loop)

    def on_writable():
        loop.remove_writer(w)
        try:
            os.write(w, b"x")
        except BrokenPipeError:
            got.set_result("broken pipe")

    loop.add_writer(w, on_writable)
    assert loop.run_until_complete(got) == "broken pipe"
    loop.close()


def test_watcher_callback_closes_the_loop_later(kind, loop, socks):
    # A reader that stops the loop and a loop closed right after, with the
    # watcher still registered.
    a, b = socks
    loop.add_reader(a, loop.stop)
    b.send(b"x")
    loop.run_forever()
    loop.close()
    assert loop.remove_reader(a) is False


# -- bad file descriptors ------------------------------------------------------


@pytest.mark.parametrize("method", ["add_reader", "add_writer"])
def test_negative_fd(loop, method):
    with pytest.raises(ValueError, match="Invalid file descriptor: -1"):
        getattr(loop, method)(-1, print)
    loop.close()


@pytest.mark.parametrize("method", ["add_reader", "add_writer", "remove_reader", "remove_writer"])
def test_not_a_file_object(loop, method):
    args = (print,) if method.startswith("add") else ()
    with pytest.raises(ValueError, match="Invalid file object"):
        getattr(loop, method)("not a file", *args)
    loop.close()


@pytest.mark.parametrize("method", ["add_reader", "add_writer"])
def test_fileno_method_returning_garbage(loop, method):
    class Bad:
        def fileno(self):
            return "nope"

    with pytest.raises(ValueError, match="Invalid file object"):
        getattr(loop, method)(Bad(), print)
    loop.close()


def _skip_unless_epoll(kind):
    # epoll_ctl() checks the fd when it is registered; poll(2) only reports
    # POLLNVAL later, and asyncio's own PollSelector accepts such fds too.
    if kind.poller == "poll":
        pytest.skip("poll(2) accepts any fd number at registration, as asyncio's PollSelector does")


@pytest.mark.parametrize("method", ["add_reader", "add_writer"])
def test_closed_fd_is_rejected_when_added(kind, loop, method):
    _skip_unless_epoll(kind)
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    # The error is raised by add_reader()/add_writer() itself, not later by
    # the poll, so the caller learns which fd was bad.
    with pytest.raises(OSError):
        getattr(loop, method)(r, print)
    assert loop.remove_reader(r) is False
    assert loop.remove_writer(r) is False
    # The loop still works after the failed registration.
    loop.call_soon(loop.stop)
    loop.run_forever()
    loop.close()


@pytest.mark.parametrize("method", ["add_reader", "add_writer"])
def test_regular_file_is_rejected(kind, loop, method):
    _skip_unless_epoll(kind)
    # epoll refuses regular files (EPERM); asyncio surfaces that at add time.
    with tempfile.TemporaryFile() as f:
        with pytest.raises(PermissionError):
            getattr(loop, method)(f.fileno(), print)
    loop.call_soon(loop.stop)
    loop.run_forever()
    loop.close()


def test_io_is_not_starved_by_callbacks_that_reschedule(kind, loop, socks):
    # Callbacks that keep scheduling more callbacks, some of them from an I/O
    # callback, must not keep a ready fd waiting: the loop polls at least
    # every other batch of callbacks.
    a, b = socks
    ticks = []
    got = []

    def spin():
        ticks.append(None)
        if len(got) < 2:
            if len(ticks) < 1000:
                loop.call_soon(spin)
            else:
                loop.stop()

    def on_readable():
        got.append((len(ticks), a.recv(100)))
        if len(got) == 1:
            # Queue more work from the I/O callback, then make the fd
            # readable again at once.
            loop.call_soon(spin)
            b.send(b"second")
        else:
            loop.stop()

    loop.add_reader(a, on_readable)
    loop.call_soon(spin)
    b.send(b"first")
    loop.run_forever()
    loop.remove_reader(a)
    assert [data for _, data in got] == [b"first", b"second"]
    # Each read comes within a few batches of callbacks.
    assert got[0][0] <= 3
    assert got[1][0] - got[0][0] <= 4
    loop.close()


def test_order_of_callbacks_queued_by_an_io_callback(kind, loop, socks):
    # What a reader callback queues runs in the order asyncio gives it: the
    # call_soon()s in order, then a timer due by then, then what those
    # callbacks queue in turn.
    a, b = socks
    order = []

    def record(name, then=None):
        def cb():
            order.append(name)
            if then is not None:
                loop.call_soon(then)
        return cb

    def on_readable():
        a.recv(100)
        order.append("reader")
        loop.remove_reader(a)
        loop.call_soon(record("soon-1", then=record("from-soon-1")))
        loop.call_later(0, record("timer-0"))
        loop.call_soon(record("soon-2", then=loop.stop))

    loop.add_reader(a, on_readable)
    b.send(b"x")
    loop.run_forever()
    assert order == ["reader", "soon-1", "soon-2", "timer-0", "from-soon-1"]
    loop.close()
