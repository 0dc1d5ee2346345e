"""Scaling curves: the cost of one operation as what the loop holds grows.

Each point is a micro workload (run by ``bench.worker micro``) whose set-up,
left out of the figures, puts P things in the loop first:

- ``timer_fire@P``: P timers an hour away are pending; one operation is a
  ``call_later(0, cb)`` whose callback schedules the next one, so every
  operation is a push onto and a pop off a heap of P timers, and one loop
  iteration.  P goes from 10 to 1,000,000.
- ``idle_conns@P``: P idle TCP connections are open to a server on the
  loop (the client ends are held by a helper process, so they cost this
  process nothing); one operation is one round trip of a 64-byte message
  over another connection, both of whose ends are transports of this loop.
  P goes from 10 to 10,000.

A loop whose per-iteration work grows with what it holds shows a rising
curve; epoll and a heap should keep both nearly flat.
"""

import asyncio
import resource
import socket
import subprocess
import sys

from .micro import CLOCK

TIMER_POINTS = (10, 100, 1_000, 10_000, 100_000, 1_000_000)
CONN_POINTS = (10, 100, 1_000, 10_000)


def _never():
    pass


def timer_fire(pending):
    async def workload(n):
        loop = asyncio.get_running_loop()
        far = [loop.call_later(3600, _never) for _ in range(pending)]
        done = loop.create_future()
        left = n

        def fire():
            nonlocal left
            left -= 1
            if left:
                loop.call_later(0, fire)
            else:
                done.set_result(None)

        # A short run first, so that the code is warm and the heap settled.
        left = min(1000, n)
        loop.call_later(0, fire)
        await done
        done = loop.create_future()
        left = n
        CLOCK.restart()
        loop.call_later(0, fire)
        await done
        for h in far:
            h.cancel()
        return n
    return workload


# The helper that holds the client ends of the idle connections: it
# connects, reports, and waits for its standard input to close.
_HOLDER = r"""
import socket, sys, time
port, count = int(sys.argv[1]), int(sys.argv[2])
socks = []
for i in range(count):
    if i % 100 == 99:
        time.sleep(0.005)   # a steady stream, not one burst
    for attempt in range(50):
        try:
            socks.append(socket.create_connection(("127.0.0.1", port)))
            break
        except OSError:
            time.sleep(0.02)
    else:
        raise SystemExit("cannot connect")
print("OK", flush=True)
sys.stdin.read()
"""


def raise_fd_limit(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed and (hard == resource.RLIM_INFINITY or hard >= needed):
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    elif soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class IdleServer:
    """A server on the running loop whose connections stay idle, with a
    helper process holding the client ends.  kind "protocol": a Protocol
    that keeps its transport; "streams": asyncio.start_server() with a
    handler waiting in reader.read()."""

    class Proto(asyncio.Protocol):
        def __init__(self, server):
            self.server = server

        def connection_made(self, transport):
            self.transport = transport
            self.server.count += 1

        def connection_lost(self, exc):
            self.server.count -= 1

    def __init__(self, kind="protocol"):
        self.kind = kind
        self.count = 0
        self.server = None
        self.holder = None

    async def _handler(self, reader, writer):
        self.count += 1
        try:
            await reader.read(1)
        except (asyncio.CancelledError, ConnectionError):
            pass
        finally:
            self.count -= 1
            writer.close()

    async def start(self, conns):
        loop = asyncio.get_running_loop()
        raise_fd_limit(conns + 1024)
        if self.kind == "protocol":
            self.server = await loop.create_server(lambda: self.Proto(self), "127.0.0.1", 0,
                                                   backlog=4096)
        else:
            self.server = await asyncio.start_server(self._handler, "127.0.0.1", 0,
                                                     backlog=4096)
        port = self.server.sockets[0].getsockname()[1]
        self.holder = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(port), str(conns)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        # Accept while the helper connects; its "OK" line arrives through a
        # thread so as not to depend on pipes in the loop.
        line = await loop.run_in_executor(None, self.holder.stdout.readline)
        if not line.startswith(b"OK"):
            raise RuntimeError("the idle connection helper failed")
        while self.count < conns:
            await asyncio.sleep(0.001)

    async def stop(self):
        if self.holder is not None:
            self.holder.stdin.close()
            await asyncio.get_running_loop().run_in_executor(None, self.holder.wait)
        if self.server is not None:
            self.server.close()


def idle_conns(idle):
    async def workload(n):
        loop = asyncio.get_running_loop()
        idle_server = IdleServer()
        await idle_server.start(idle)
        done = loop.create_future()
        left = n

        class Echo(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport = transport

            def data_received(self, data):
                self.transport.write(data)

        class Client(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport = transport

            def data_received(self, data):
                nonlocal left
                left -= 1
                if left:
                    self.transport.write(data)
                else:
                    done.set_result(None)

        server = await loop.create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, _ = await loop.create_connection(Client, "127.0.0.1", port)
        try:
            # A short run first, so that the code is warm.
            left = min(1000, n)
            transport.write(b"x" * 64)
            await done
            done = loop.create_future()
            left = n
            CLOCK.restart()
            transport.write(b"x" * 64)
            await done
        finally:
            transport.close()
            server.close()
            await idle_server.stop()
        return n
    return workload


def _points(prefix, points, make, ops, what):
    return {f"{prefix}@{p}": (make(p), ops, what.format(p=f"{p:,}")) for p in points}


WORKLOADS = {
    **_points("timer_fire", TIMER_POINTS, timer_fire, 50_000,
              "one call_later(0) fired, with {p} timers pending"),
    **_points("idle_conns", CONN_POINTS, idle_conns, 20_000,
              "one 64-byte round trip on loopback, with {p} idle connections open"),
}
