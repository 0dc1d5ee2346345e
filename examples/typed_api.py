"""A small program using turboloop's API with full type annotations.

    python examples/typed_api.py
    python -m mypy --strict examples/typed_api.py

It runs like any example, and it is what CI type-checks against the stubs
the package ships (py.typed, turboloop/*.pyi).  The calls in rejected() are
mistakes the stubs must catch: each carries a `# type: ignore[code]`, and as
`--strict` warns about unused ignores, mypy fails if one of them stops being
an error.
"""

import asyncio
import sys
from typing import assert_type

import turboloop


class Echo(asyncio.Protocol):
    """Sends every byte back."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


async def main() -> str:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, turboloop.Loop)

    # Futures and tasks are generic, as asyncio's are.
    fut: turboloop.Future[int] = loop.create_future()
    loop.call_soon(fut.set_result, 20)
    assert_type(await fut, int)
    task = loop.create_task(double(1), name="double")
    assert_type(task, turboloop.Task[int])
    both = await asyncio.gather(task, double(fut.result()))
    assert_type(both, tuple[int, int])

    # Handles are turboloop's own types.
    timer = loop.call_later(60, print, "never printed")
    assert_type(timer, turboloop.TimerHandle)
    timer.cancel()

    # The network layer has asyncio's signatures.
    server = await loop.create_server(Echo, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"ping")
    echoed = await reader.readexactly(4)
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()

    # stats() is a TypedDict.
    stats = loop.stats()
    assert_type(stats["callbacks"], int)
    assert_type(stats["poll_time"], float)
    return f"{both[0] + both[1]} {echoed.decode()} on {stats['poller']}"


def rejected(loop: turboloop.Loop) -> None:
    """Never called: every statement is a type error."""
    # The callback takes an int.
    loop.call_soon(double, "1")  # type: ignore[arg-type]
    # main() returns a str.
    count: int = turboloop.run(main())  # type: ignore[assignment]
    # A TypedDict has no such key.
    loop.stats()["callback"]  # type: ignore[typeddict-item]
    # turboloop's TimerHandle is not asyncio's.
    timer: asyncio.TimerHandle = loop.call_later(1, print)  # type: ignore[assignment]
    # create_task() takes a coroutine, not a coroutine function.
    loop.create_task(double)  # type: ignore[arg-type]
    del count, timer


if __name__ == "__main__":
    print("turboloop", turboloop.__version__)
    print(turboloop.run(main()))
    if sys.version_info >= (3, 12):
        print(asyncio.run(main(), loop_factory=turboloop.new_event_loop))
    with asyncio.Runner(loop_factory=turboloop.new_event_loop) as runner:
        print(runner.run(main()))
