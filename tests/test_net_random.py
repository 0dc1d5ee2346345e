"""Randomized stream transfers between two transports on one loop, over TCP
and Unix sockets, into a plain Protocol and a BufferedProtocol.  Each seed
fixes: the payload and its size (0 to a few MiB), the sizes of the writes
(1 byte to 256 KiB) and whether they go through write() or writelines(),
bytes/bytearray/memoryview arguments, the writer's water marks and whether it
stops writing on pause_writing(), the reader's random pause_reading()/
resume_reading() and BufferedProtocol buffer sizes, and how the writer ends
(close(), write_eof() with a reply from the reader, or write_eof() then
close()).

Every byte must arrive exactly once and in order, eof_received() and
connection_lost() must come exactly once on each side (nothing after them),
and a writer that respects pause_writing() must never have more than the
high-water mark plus one write buffered.  The seeds are a fixed list, so a
failure is repeatable: rerun the test id that failed."""

import asyncio
import random
import socket

import pytest
from support import tcp_pair

SEEDS = [1, 2, 3, 5, 8, 13, 21, 34, 55, 89]
MAX_CHUNK = 256 * 1024


def log_uniform(rng, lo, hi):
    """An int in [lo, hi], small values as likely as large magnitudes."""
    return min(hi, max(lo, int(round(2 ** rng.uniform(0, (hi).bit_length())))))


class Plan:
    """Everything a seed decides, drawn up front."""

    def __init__(self, seed, buffered):
        rng = random.Random(seed * 1000 + buffered)
        self.rng = rng
        size = rng.choices(
            [0, rng.randrange(1, 100), rng.randrange(100, 65536), rng.randrange(65536, 6 * 1024 * 1024)],
            weights=[1, 1, 2, 6])[0]
        self.payload = rng.randbytes(size)
        self.respect_pause = rng.random() < 0.7
        self.high = log_uniform(rng, 1, 512 * 1024)
        self.low = rng.randrange(0, self.high + 1)
        self.mode = rng.choice(["close", "eof", "eof_close"])
        self.pause_probability = rng.choice([0.0, 0.05, 0.3])
        self.use_writelines = not self.respect_pause and rng.random() < 0.5

    def chunk_size(self):
        return log_uniform(self.rng, 1, MAX_CHUNK)

    def as_arg(self, view):
        kind = self.rng.randrange(3)
        if kind == 0:
            return bytes(view)
        if kind == 1:
            return bytearray(view)
        return view


class Writer(asyncio.Protocol):
    def __init__(self, loop, plan):
        self.loop = loop
        self.plan = plan
        self.view = memoryview(plan.payload)
        self.sent = 0
        self.is_paused = False
        self.finished = False
        self.max_buffer = 0
        self.max_write = 0
        self.pauses = 0
        self.resumes = 0
        self.reply = bytearray()
        self.eof_calls = 0
        self.lost_calls = 0
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        transport.set_write_buffer_limits(high=self.plan.high, low=self.plan.low)
        assert transport.get_write_buffer_limits() == (self.plan.low, self.plan.high)
        self.produce()

    def produce(self, from_resume=False):
        plan = self.plan
        while self.sent < len(self.view) and not (plan.respect_pause and self.is_paused):
            if plan.use_writelines:
                pieces = []
                for _ in range(plan.rng.randrange(1, 6)):
                    n = min(plan.chunk_size(), len(self.view) - self.sent)
                    if n == 0:
                        break
                    pieces.append(plan.as_arg(self.view[self.sent:self.sent + n]))
                    self.sent += n
                self.transport.writelines(pieces)
                n = sum(len(p) for p in pieces)
            else:
                n = min(plan.chunk_size(), len(self.view) - self.sent)
                self.transport.write(plan.as_arg(self.view[self.sent:self.sent + n]))
                self.sent += n
            self.max_write = max(self.max_write, n)
            self.max_buffer = max(self.max_buffer, self.transport.get_write_buffer_size())
        if self.sent == len(self.view) and not self.finished:
            self.finished = True
            if from_resume:
                # asyncio's transports call connection_lost() twice when
                # close() empties the buffer from inside resume_writing():
                # finish from a callback of its own.
                self.loop.call_soon(self.finish)
            else:
                self.finish()

    def finish(self):
        if self.plan.mode == "close":
            self.transport.close()
        elif self.plan.mode == "eof":
            self.transport.write_eof()
        else:
            self.transport.write_eof()
            self.transport.close()

    def pause_writing(self):
        assert not self.is_paused
        self.pauses += 1
        self.is_paused = True

    def resume_writing(self):
        assert self.is_paused
        assert self.transport.get_write_buffer_size() <= self.plan.low
        self.resumes += 1
        self.is_paused = False
        if not self.transport.is_closing():
            self.produce(from_resume=True)

    def data_received(self, data):
        assert self.plan.mode == "eof"
        assert not self.eof_calls and not self.lost_calls
        self.reply += data

    def eof_received(self):
        assert not self.lost_calls
        self.eof_calls += 1

    def connection_lost(self, exc):
        self.lost_calls += 1
        self.lost.set_result(exc)


class ReaderMixin:
    def setup(self, loop, plan):
        self.loop = loop
        self.plan = plan
        self.rng = random.Random(plan.rng.random())
        self.data = bytearray()
        self.eof_calls = 0
        self.lost_calls = 0
        self.paused_times = 0
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        if self.rng.random() < self.plan.pause_probability:
            self.pause()

    def got(self, data):
        assert not self.eof_calls, "data after eof_received"
        assert not self.lost_calls, "data after connection_lost"
        assert self.transport.is_reading(), "data while paused"
        self.data += data
        if self.rng.random() < self.plan.pause_probability:
            self.pause()

    def pause(self):
        self.transport.pause_reading()
        self.paused_times += 1
        self.resume_after(self.rng.randrange(0, 6))

    def resume_after(self, k):
        if k == 0:
            self.transport.resume_reading()
        else:
            self.loop.call_soon(self.resume_after, k - 1)

    def eof_received(self):
        assert not self.lost_calls
        self.eof_calls += 1
        if self.plan.mode == "eof":
            # Half-closed: answer, then close.
            self.transport.write(b"ack")
            self.transport.close()
            return True
        return None

    def connection_lost(self, exc):
        self.lost_calls += 1
        self.lost.set_result(exc)


class PlainReader(ReaderMixin, asyncio.Protocol):
    def __init__(self, loop, plan):
        self.setup(loop, plan)

    def data_received(self, data):
        self.got(data)


class BufferedReader(ReaderMixin, asyncio.BufferedProtocol):
    def __init__(self, loop, plan):
        self.setup(loop, plan)
        self.buf = None

    def get_buffer(self, sizehint):
        assert sizehint == -1
        self.buf = bytearray(log_uniform(self.rng, 1, 64 * 1024))
        return self.buf

    def buffer_updated(self, nbytes):
        assert 0 < nbytes <= len(self.buf)
        self.got(bytes(self.buf[:nbytes]))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("family", ["tcp", "unix"])
@pytest.mark.parametrize("reader_style", ["plain", "buffered"])
def test_random_stream(loop, seed, family, reader_style):
    plan = Plan(seed, reader_style == "buffered")
    reader_cls = BufferedReader if reader_style == "buffered" else PlainReader

    async def main():
        a, b = tcp_pair() if family == "tcp" else socket.socketpair()
        try:
            rtransport, reader = await loop.connect_accepted_socket(lambda: reader_cls(loop, plan), b)
        except BaseException:
            a.close()
            b.close()
            raise
        wtransport, writer = await loop.connect_accepted_socket(lambda: Writer(loop, plan), a)
        await asyncio.wait_for(asyncio.gather(writer.lost, reader.lost), 60)
        for _ in range(3):
            await asyncio.sleep(0)
        return writer, reader, wtransport, rtransport

    writer, reader, wtransport, rtransport = loop.run_until_complete(main())
    assert len(reader.data) == len(plan.payload)
    assert reader.data == plan.payload
    assert reader.eof_calls == 1
    assert reader.lost_calls == 1 and reader.lost.result() is None
    assert writer.lost_calls == 1 and writer.lost.result() is None
    if plan.mode == "eof":
        assert bytes(writer.reply) == b"ack"
        assert writer.eof_calls == 1
    else:
        assert writer.eof_calls == 0
    if plan.respect_pause:
        assert writer.max_buffer <= plan.high + writer.max_write
    assert writer.pauses - writer.resumes in (0, 1)
    assert wtransport.is_closing() and rtransport.is_closing()
    assert wtransport.get_write_buffer_size() == 0
    loop.close()


def test_plans_cover_the_cases():
    """The fixed seeds exercise every mode and both writer behaviours."""
    plans = [Plan(s, b) for s in SEEDS for b in (0, 1)]
    assert {p.mode for p in plans} == {"close", "eof", "eof_close"}
    assert {p.respect_pause for p in plans} == {True, False}
    assert any(p.use_writelines for p in plans)
    assert any(len(p.payload) == 0 for p in plans)
    assert any(0 < len(p.payload) < 100 for p in plans)
    assert sum(len(p.payload) > 1024 * 1024 for p in plans) >= 5
    assert any(p.pause_probability > 0 for p in plans)
