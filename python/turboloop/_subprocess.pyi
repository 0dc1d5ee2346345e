# Types of the child-process half of turboloop.Loop.  subprocess_exec() and
# subprocess_shell() are asyncio's own for the running Python (see
# _subprocess.py), with asyncio's signatures.

import asyncio
from collections.abc import Callable
from typing import IO, Any, Literal, TypeVar

__all__ = ("SubprocessMixin",)

_ProtocolT = TypeVar("_ProtocolT", bound=asyncio.BaseProtocol)

class SubprocessMixin:
    async def subprocess_exec(
        self,
        protocol_factory: Callable[[], _ProtocolT],
        program: Any,
        *args: Any,
        stdin: int | IO[Any] | None = -1,
        stdout: int | IO[Any] | None = -1,
        stderr: int | IO[Any] | None = -1,
        universal_newlines: Literal[False] = False,
        shell: Literal[False] = False,
        bufsize: Literal[0] = 0,
        encoding: None = None,
        errors: None = None,
        text: Literal[False] | None = None,
        **kwargs: Any,
    ) -> tuple[asyncio.SubprocessTransport, _ProtocolT]: ...
    async def subprocess_shell(
        self,
        protocol_factory: Callable[[], _ProtocolT],
        cmd: bytes | str,
        *,
        stdin: int | IO[Any] | None = -1,
        stdout: int | IO[Any] | None = -1,
        stderr: int | IO[Any] | None = -1,
        universal_newlines: Literal[False] = False,
        shell: Literal[True] = True,
        bufsize: Literal[0] = 0,
        encoding: None = None,
        errors: None = None,
        text: Literal[False] | None = None,
        **kwargs: Any,
    ) -> tuple[asyncio.SubprocessTransport, _ProtocolT]: ...
