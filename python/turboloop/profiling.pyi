# Types of turboloop.profiling.

import asyncio
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from typing_extensions import Self

__all__ = ("Profile", "TaskStats", "SiteStats", "Lag", "SlowStep", "profile", "ProfilingMixin")

DEFAULT_TRACE_EVENTS: int

@dataclass
class TaskStats:
    id: int
    name: str
    coroutine: str
    created_at: str | None
    state: str
    steps: int
    busy: float
    max_step: float
    cpu: float | None
    waiting: float
    queued: float
    share: float = 0.0

@dataclass
class SiteStats:
    kind: str
    name: str
    location: str | None
    calls: int
    busy: float
    max: float
    cpu: float | None
    share: float = 0.0

@dataclass
class Lag:
    count: int
    mean: float
    p50: float
    p90: float
    p99: float
    max: float
    histogram: list[tuple[float, float, int]] = ...
    @classmethod
    def from_raw(cls, raw: dict[str, Any]) -> Self: ...

@dataclass
class SlowStep:
    duration: float
    cpu: float | None
    kind: str
    name: str
    task: str | None
    location: str | None
    stack: list[tuple[str, int, str]]
    at: float

class Profile:
    raw: dict[str, Any]
    wall: float
    busy: float
    poll: float
    idle: float
    cpu_measured: bool
    busy_cpu: float | None
    cpu_clock: float
    iterations: int
    spans: int
    tasks_dropped: int
    since: float
    callbacks: list[SiteStats]
    coroutines: list[SiteStats]
    tasks: list[TaskStats]
    timer_lateness: Lag
    ready_lag: Lag
    slowest: list[SlowStep]
    trace_events: list[tuple[int, int, int, int, str]] | None
    trace_total: int
    def __init__(self, raw: dict[str, Any]) -> None: ...
    @property
    def other(self) -> float: ...
    def as_dict(self) -> dict[str, Any]: ...
    def report(self, *, top: int = 10, width: int = 100, ascii: bool = False) -> str: ...
    def chrome_trace(self, *, pid: int | None = None, process_name: str = "turboloop") -> dict[str, Any]: ...
    def write_trace(self, path: str) -> None: ...

class ProfilingMixin:
    def set_profiling(
        self, enabled: bool = True, *, cpu: bool = False, trace_events: int = 0, max_tasks: int = 1000
    ) -> None: ...
    def is_profiling(self) -> bool: ...
    def get_profile(self) -> Profile | None: ...

class profile:
    profile: Profile | None
    def __init__(
        self, loop: asyncio.AbstractEventLoop | None = None, *, cpu: bool = False, trace_events: int = 0
    ) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool: ...
    def snapshot(self) -> Profile: ...
    def __getattr__(self, name: str) -> Any: ...
