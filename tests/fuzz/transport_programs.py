"""Random protocol behaviour over a stream transport, compared with asyncio's.

A program connects one end of a Unix socket pair to a protocol through
loop.connect_accepted_socket(); the fuzzer drives the other end (the peer)
directly.  The protocol is a Protocol or a BufferedProtocol whose callbacks
(get_buffer, buffer_updated, data_received, eof_received, pause_writing,
resume_writing) follow a script: call the transport (pause_reading,
resume_reading, write, writelines, write_eof, close, abort, water marks,
queries), raise, return odd buffers or odd eof_received() results.  The
loop runs a fixed number of iterations (a call_soon chain); at chosen
iterations the peer sends, shuts down its writing side, drains what it
received or closes, and the program itself calls the transport.

Every step happens at a known iteration and the peer's data is in the
socket before the poll that reports it, so the trace (protocol calls with
their arguments, what every transport call returned or raised, what the
exception handler and the asyncio logger were given, what the peer
received) does not depend on timing.
"""

import asyncio
import logging
import socket
from array import array
from asyncio import selector_events

from hypothesis import assume

from turboloop import _network
from hypothesis import strategies as st

from .common import Boom, FrozenLoop, Recorder, describe_exception, normalize, outcome, time_limit

TICKS = 10

WRITE_DATA = {
    "b'abc'": lambda: b"abc",
    "b''": lambda: b"",
    "bytearray(5)": lambda: bytearray(b"12345"),
    "memoryview(b'xyz')": lambda: memoryview(b"xyz"),
    "memoryview strided": lambda: memoryview(b"abcdef")[::2],
    "array('i', [1, 2])": lambda: array("i", [1, 2]),
    "'text'": lambda: "text",
    "None": lambda: None,
    "64 KiB": lambda: b"w" * 65536,
    "1 MiB": lambda: b"W" * (1 << 20),
}

WATER_MARKS = [None, 0, 1, 3, 1000, 65536, 2**20, -1, 2**70, True, 1.5, float("nan"), float("inf"), "1"]

BUFFERS = {
    "bytearray(1)": lambda: bytearray(1),
    "bytearray(7)": lambda: bytearray(7),
    "bytearray(4096)": lambda: bytearray(4096),
    "memoryview(bytearray(5))": lambda: memoryview(bytearray(5)),
    "bytearray(0)": lambda: bytearray(0),
    "bytes(8)": lambda: bytes(8),
    "array('b', 3)": lambda: array("b", [0, 0, 0]),
    "strided": lambda: memoryview(bytearray(8))[::2],
    "None": lambda: None,
    "raise": None,
}

EOF_RESULTS = ["None", "True", "False", "0", "'yes'", "raise"]


# -- strategies ------------------------------------------------------------------------

_transport_calls = st.one_of(
    st.sampled_from([("pause_reading",), ("resume_reading",), ("close",), ("abort",),
                     ("write_eof",), ("is_closing",), ("is_reading",), ("can_write_eof",),
                     ("get_write_buffer_size",), ("get_write_buffer_limits",), ("raise",)]),
    st.tuples(st.just("write"), st.sampled_from(sorted(WRITE_DATA))),
    # Not an array of ints in writelines(): 3.12's counts the bytes it sent
    # against len() of its memoryviews, which counts items, and fails with
    # IndexError; turboloop counts bytes.
    st.tuples(st.just("writelines"),
              st.lists(st.sampled_from(sorted(set(WRITE_DATA) - {"array('i', [1, 2])"})),
                       max_size=3).map(tuple)),
    st.tuples(st.just("set_write_buffer_limits"), st.sampled_from(WATER_MARKS), st.sampled_from(WATER_MARKS)),
    st.tuples(st.just("set_write_buffer_limits_high"), st.sampled_from(WATER_MARKS)),
)

_peer_actions = st.one_of(
    st.tuples(st.just("send"), st.sampled_from([1, 5, 100, 5000, 300000])),
    st.sampled_from([("shutdown",), ("drain",), ("close",)]),
)

_reactions = st.lists(st.lists(_transport_calls, max_size=3).map(tuple), max_size=4).map(tuple)


def _writelines_pauses():
    """Whether asyncio's writelines() calls pause_writing() when it leaves
    more than the high-water mark queued.  3.11's writelines() is write()'s;
    the selector transport's own (3.12+) forgot it in some releases (3.12.1,
    3.13.0 and 3.14.10 among them), which turboloop does not copy: its
    writelines() keeps to the flow control write() has."""
    writelines = selector_events._SelectorSocketTransport.writelines
    code = getattr(writelines, "__code__", None)
    if code is None or "writelines" not in selector_events._SelectorSocketTransport.__dict__:
        return True
    return "_maybe_pause_protocol" in code.co_names


WRITELINES_PAUSES = _writelines_pauses()


def _writelines_checks_lost():
    """Whether asyncio's writelines() returns early on a lost connection.
    Some releases (3.12.1 among them) go on after close(): they queue the
    data of a closed transport and register its writer again, which then
    never leaves; turboloop counts the write as lost, as later releases
    and write() do.  The fuzzer does not call writelines() on a closing
    transport where asyncio lacks the check."""
    cls = selector_events._SelectorSocketTransport
    if "writelines" not in cls.__dict__:
        return True
    return "_conn_lost" in cls.writelines.__code__.co_names


WRITELINES_CHECKS_LOST = _writelines_checks_lost()


def _writelines_drops_empty():
    """Whether asyncio's writelines() leaves empty chunks out of its buffer
    (gh-155888).  Before that fix an empty chunk stays queued and never
    drains, so a later write() queues instead of sending; turboloop never
    queues an empty chunk.  The fuzzer writes no empty chunk with
    writelines() where asyncio lacks the fix."""
    result = _network._asyncio_writelines([b""])
    return result is None or result[1] == []


def _writelines_is_atomic():
    """Whether asyncio's writelines() queues nothing when one of its items
    is not bytes-like.  3.15's queues the items before the bad one and
    raises, leaving them queued with no writer to send them (close() then
    waits for them forever); turboloop checks every item first.  The
    fuzzer mixes no bad item with good ones where asyncio does that."""
    result = _network._asyncio_writelines([b"x", "bad"])
    return result is None or result[1] == []


WRITELINES_ATOMIC = _writelines_is_atomic()
BAD_WRITES = {"'text'", "None", "array('i', [1, 2])"}


WRITELINES_DROPS_EMPTY = _writelines_drops_empty()
EMPTY_WRITES = {"b''"}
BIG_WRITES = {"64 KiB", "1 MiB"}


def _walk(x):
    yield x
    if isinstance(x, (tuple, list)):
        for y in x:
            yield from _walk(y)
    elif isinstance(x, dict):
        for y in x.values():
            yield from _walk(y)


def _mentions(x, *names):
    if isinstance(x, (tuple, list)):
        return any(_mentions(y, *names) for y in x)
    if isinstance(x, dict):
        return any(_mentions(y, *names) for y in x.values())
    return x in names


@st.composite
def programs(draw):
    buffered = draw(st.booleans())
    script = {
        name: draw(_reactions)
        for name in ("data_received", "buffer_updated", "get_buffer", "eof_received",
                     "pause_writing", "resume_writing", "connection_made")
    }
    script["buffers"] = tuple(draw(st.lists(st.sampled_from(sorted(BUFFERS)), max_size=4)))
    script["eof_results"] = tuple(draw(st.lists(st.sampled_from(EOF_RESULTS), max_size=2)))
    steps = draw(st.lists(
        st.tuples(st.integers(1, TICKS),
                  st.one_of(st.tuples(st.just("peer"), _peer_actions),
                            st.tuples(st.just("call"), _transport_calls))),
        max_size=10))
    program = {"buffered": buffered, "script": script, "steps": sorted(steps, key=lambda s: s[0])}
    if not WRITELINES_PAUSES:
        # See _writelines_pauses(): only writelines() that cannot go past
        # the high-water mark.
        assume(not (_mentions(program, "writelines") and _mentions(program, *BIG_WRITES)))
    if not WRITELINES_ATOMIC:
        assume(not any(isinstance(x, tuple) and x and x[0] == "writelines"
                       and set(x[1]) & BAD_WRITES and set(x[1]) - BAD_WRITES
                       for x in _walk(program)))
    if not WRITELINES_DROPS_EMPTY:
        assume(not any(isinstance(x, tuple) and x and x[0] == "writelines" and "b''" in x[1]
                       for x in _walk(program)))
    return program


# -- running --------------------------------------------------------------------------


class _LogRecorder(logging.Handler):
    def __init__(self, trace):
        super().__init__(level=logging.DEBUG)
        self.trace = trace

    def emit(self, record):
        if record.levelno >= logging.WARNING:
            self.trace.append(("log", record.levelname, normalize(record.getMessage())))


class Run:
    def __init__(self, program, factory):
        self.program = program
        self.trace = []
        self.loop = factory()
        self.loop.set_exception_handler(Recorder(self.trace))
        self.transport = None
        self.calls = {}
        self.lost = False
        self.sock, self.peer = socket.socketpair()
        self.sock.setblocking(False)
        self.peer.setblocking(False)
        self.peer_closed = False
        self.received = 0

    # -- the transport

    def call(self, action, where):
        tr = self.transport
        kind = action[0]
        if kind == "raise":
            raise Boom(f"from {where}")
        if tr is None:
            return
        if kind == "write":
            result = outcome(tr.write, WRITE_DATA[action[1]]())
        elif kind == "writelines":
            if not WRITELINES_CHECKS_LOST and tr.is_closing():
                self.trace.append((where, kind, "skipped: closing"))
                return
            result = outcome(tr.writelines, [WRITE_DATA[x]() for x in action[1]])
        elif kind == "set_write_buffer_limits":
            result = outcome(tr.set_write_buffer_limits, high=action[1], low=action[2])
        elif kind == "set_write_buffer_limits_high":
            result = outcome(tr.set_write_buffer_limits, action[1])
        else:
            result = outcome(getattr(tr, kind))
        if result[0] == "ok" and not isinstance(result[1], (bool, int, float, type(None), tuple)):
            result = ("ok", type(result[1]).__name__)
        self.trace.append((where, kind) + result)

    def react(self, name):
        """Run the script's reactions for this call of protocol.<name>."""
        n = self.calls.get(name, 0)
        self.calls[name] = n + 1
        reactions = self.program["script"][name]
        if n < len(reactions):
            for action in reactions[n]:
                self.call(action, name)

    # -- the peer

    def peer_do(self, action):
        kind = action[0]
        if self.peer_closed:
            return
        if kind == "send":
            self.trace.append(("peer", "send") + outcome(self.peer.send, b"p" * action[1]))
        elif kind == "shutdown":
            self.trace.append(("peer", "shutdown") + outcome(self.peer.shutdown, socket.SHUT_WR))
        elif kind == "drain":
            self.trace.append(("peer", "drain", self.drain()))
        elif kind == "close":
            self.drain()
            self.peer.close()
            self.peer_closed = True
            self.trace.append(("peer", "closed", self.received))

    def drain(self):
        got = 0
        while True:
            try:
                data = self.peer.recv(1 << 20)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                return ("error",) + describe_exception(exc)
            if not data:
                got = ("eof", got)
                break
            got += len(data)
        self.received += got if isinstance(got, int) else got[1]
        return got

    # -- the run

    def tick(self, n):
        self.trace.append(("tick", n))
        for when, step in self.program["steps"]:
            if when != n:
                continue
            if step[0] == "peer":
                self.peer_do(step[1])
            else:
                try:
                    self.call(step[1], "program")
                except Boom:
                    self.trace.append(("program", "raise"))
        if n < TICKS:
            self.loop.call_soon(self.tick, n + 1)
        else:
            self.loop.stop()

    def run(self):
        loop = self.loop
        log = _LogRecorder(self.trace)
        logger = logging.getLogger("asyncio")
        logger.addHandler(log)
        try:
            proto = make_protocol(self)

            async def connect():
                return await loop.connect_accepted_socket(lambda: proto, self.sock)

            try:
                with time_limit():
                    loop.run_until_complete(connect())
            except Exception as exc:  # noqa: BLE001
                self.trace.append(("connect",) + describe_exception(exc))
            loop.call_soon(self.tick, 1)
            try:
                with time_limit():
                    loop.run_forever()
            except FrozenLoop:
                self.trace.append(("run", "frozen"))
            except Exception as exc:  # noqa: BLE001
                self.trace.append(("run", "raised") + describe_exception(exc))
            # Let what the last iteration scheduled (connection_lost) run.
            try:
                with time_limit():
                    loop.call_soon(loop.stop)
                    loop.run_forever()
            except FrozenLoop:
                self.trace.append(("run", "frozen"))
            if not self.peer_closed:
                self.trace.append(("peer", "final drain", self.drain()))
            if self.transport is not None:
                self.trace.append(("transport", "closing", self.transport.is_closing()))
                self.transport.abort()
                try:
                    with time_limit():
                        loop.call_soon(loop.stop)
                        loop.run_forever()
                except FrozenLoop:
                    self.trace.append(("run", "frozen"))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            logger.removeHandler(log)
            loop.close()
            self.sock.close()
            self.peer.close()
        return self.trace


def make_protocol(run):
    script = run.program["script"]
    trace = run.trace

    class Base:
        def connection_made(self, transport):
            run.transport = transport
            trace.append(("proto", "connection_made"))
            run.react("connection_made")

        def eof_received(self):
            n = run.calls.get("eof_results", 0)
            run.calls["eof_results"] = n + 1
            result = script["eof_results"][n] if n < len(script["eof_results"]) else "None"
            trace.append(("proto", "eof_received", result))
            run.react("eof_received")
            if result == "raise":
                raise Boom("from eof_received")
            return {"None": None, "True": True, "False": False, "0": 0, "'yes'": "yes"}[result]

        def pause_writing(self):
            trace.append(("proto", "pause_writing", run.transport.get_write_buffer_size()))
            run.react("pause_writing")

        def resume_writing(self):
            trace.append(("proto", "resume_writing", run.transport.get_write_buffer_size()))
            run.react("resume_writing")

        def connection_lost(self, exc):
            trace.append(("proto", "connection_lost", type(exc).__name__ if exc else None))
            run.lost = True

    if not run.program["buffered"]:
        class Proto(Base, asyncio.Protocol):
            def data_received(self, data):
                trace.append(("proto", "data_received", type(data).__name__, len(data)))
                run.react("data_received")
        return Proto()

    class Buffered(Base, asyncio.BufferedProtocol):
        def get_buffer(self, sizehint):
            n = run.calls.get("buffers", 0)
            run.calls["buffers"] = n + 1
            name = script["buffers"][n] if n < len(script["buffers"]) else "bytearray(4096)"
            trace.append(("proto", "get_buffer", sizehint, name))
            run.react("get_buffer")
            if name == "raise":
                raise Boom("from get_buffer")
            self.buf = BUFFERS[name]()
            return self.buf

        def buffer_updated(self, nbytes):
            trace.append(("proto", "buffer_updated", nbytes))
            run.react("buffer_updated")

    return Buffered()


def run_program(program, factory, name):
    return Run(program, factory).run()
