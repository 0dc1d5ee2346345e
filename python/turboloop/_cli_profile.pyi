# Types of turboloop._cli_profile (the profiling options of python -m turboloop).

from typing import TextIO

from ._core import Profiler

OPTIONS_USAGE: str

class Options:
    profile: bool
    trace_path: str | None
    trace_events: int
    cpu: bool
    monitor: bool

def parse(args: list[str]) -> tuple[Options, list[str]]: ...

class Session:
    opts: Options
    stream: TextIO | None
    profilers: list[Profiler]
    def __init__(self, opts: Options, stream: TextIO | None = None) -> None: ...
    def __enter__(self) -> Session: ...
    def __exit__(self, *exc: object) -> bool: ...
