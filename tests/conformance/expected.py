"""The expected-failure lists: one file per target and Python version,
tests/conformance/expected/<target>-<major>.<minor>.txt.

Each entry is a test id, whitespace, and the reason it fails.  Blank lines
and lines starting with "#" are ignored.  --update-expected rewrites the file
from a run: entries that still fail keep their reasons, new failures come in
as "unclassified", and entries whose tests now pass (or are gone) leave.
"""

import pathlib
import sys

DIR = pathlib.Path(__file__).resolve().parent / "expected"
UNCLASSIFIED = "unclassified"


def path_for(target, version=None):
    version = version or sys.version_info
    return DIR / f"{target}-{version[0]}.{version[1]}.txt"


def load(path):
    """({test id: reason}, {test id: group of the section it is in})."""
    entries, groups = {}, {}
    if not path.exists():
        return entries, groups
    section = "other"
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("# == ") and line.endswith("=="):
            section = line[5:].split(" (")[0].strip(" =")
            continue
        if not line or line.startswith("#"):
            continue
        test_id, _, reason = line.partition(" ")
        entries[test_id] = reason.strip() or UNCLASSIFIED
        groups[test_id] = section
    return entries, groups


def save(path, entries, groups, target, python):
    """Write {test id: reason}; `groups` maps ids to their group, to section
    the file."""
    header = [
        f"# Expected failures of CPython {python}'s test_asyncio on {target}.",
        "# One test id per line, then why it fails.  Tests listed here may fail",
        "# without failing the run; a listed test that passes is reported so the",
        "# entry can go.  `python -m tests.conformance --update-expected` rewrites",
        "# this file from a run, keeping the reasons of entries that still fail and",
        f"# adding new failures with the reason \"{UNCLASSIFIED}\": replace that with the cause.",
    ]
    order = {"future-task": 0, "loop-generic": 1, "network": 2}
    by_group = {}
    for test_id in entries:
        by_group.setdefault(groups.get(test_id, "other"), []).append(test_id)
    lines = header
    for group in sorted(by_group, key=lambda g: (order.get(g, 9), g)):
        ids = sorted(by_group[group])
        width = min(max(len(i) for i in ids), 100)
        lines += ["", f"# == {group} ({len(ids)}) =="]
        lines += [f"{i.ljust(width)}  {entries[i]}" for i in ids]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
