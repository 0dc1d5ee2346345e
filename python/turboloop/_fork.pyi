# Types of turboloop._fork: what a forked child does to inherited loops.

from typing import Any

__all__ = ("track",)

def track(loop: Any) -> None: ...
