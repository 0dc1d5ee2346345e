# Types of `python -m turboloop`.

from collections.abc import Sequence

USAGE: str

def main(argv: Sequence[str] | None = None) -> int: ...
