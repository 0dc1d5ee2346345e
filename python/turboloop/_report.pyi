# Types of turboloop._report (the profiler's report and trace).

from typing import Any

from .profiling import Profile

def fmt_time(s: float | None, ascii: bool = False) -> str: ...
def fmt_pct(x: float) -> str: ...
def fmt_int(n: int) -> str: ...
def table(
    headers: list[str],
    rows: list[list[str]],
    *,
    right: tuple[int, ...] = (),
    flex: tuple[int, ...] = (),
    left_cut: tuple[int, ...] = (),
    width: int = 100,
    indent: int = 2,
    ascii: bool = False,
    paths_first: bool = True,
) -> list[str]: ...
def format_report(p: Profile, *, top: int = 10, width: int = 100, ascii: bool = False) -> str: ...
def chrome_trace(p: Profile, *, pid: int, process_name: str) -> dict[str, Any]: ...
