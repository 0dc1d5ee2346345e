"""Rewrite the conformance section of docs/compatibility.md from the
summaries in docs/compatibility-data/ (written by `--summary`):

    python -m tests.conformance.docs

The section runs from the rate table to the line before "## The project's
own suite"; the prose around it is left alone.
"""

import collections
import json
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "compatibility.md"
DATA = ROOT / "docs" / "compatibility-data"
GROUPS = ("future-task", "loop-generic", "network")
START = "| Python | future-task | loop-generic | network |"
END = "## The project's own suite"


def _version_key(path):
    return tuple(int(x) for x in re.findall(r"\d+", path.stem.rsplit("-", 1)[1]))


def _cell(total):
    ran = total["pass"] + total["fail"] + total["xfail"]
    return f"{total['pass']} / {ran} ({total['rate']:.1f}%)"


def render():
    files = sorted(DATA.glob("conformance-turboloop-3.*.json"), key=_version_key)
    rows, lists = [START, "| --- | ---: | ---: | ---: |"], []
    for path in files:
        data = json.loads(path.read_text(encoding="utf-8"))
        summary = data["summary"]
        cells = [_cell(summary[g]["total"]) if g in summary else "-" for g in GROUPS]
        rows.append(f"| {data['meta']['python']} | " + " | ".join(cells) + " |")
        failing = [f for f in data["failing"] if f["status"] in ("xfail", "fail")]
        by_reason = collections.defaultdict(list)
        for f in failing:
            by_reason[f["reason"] or f["cause"] or "unclassified"].append(f["id"])
        short = data["meta"]["python"].rsplit(".", 1)[0]
        lists.append(f"#### Python {short} ({len(failing)})")
        lists.append("")
        if not by_reason:
            lists.append("None.")
        for reason, ids in sorted(by_reason.items()):
            lists.append(f"- {reason} ({len(ids)}): " + ", ".join(f"`{i}`" for i in sorted(ids)))
        lists.append("")
    body = rows + ["", "### Expected failures", "",
                   "Every expected failure, with its reason, per Python version.  The lists live",
                   "in `tests/conformance/expected/turboloop-3.X.txt`; an entry that starts",
                   "passing is reported by the harness and removed, so they only shrink.", ""]
    return "\n".join(body + lists) + "\n"


def main():
    text = DOC.read_text(encoding="utf-8")
    start, end = text.index(START), text.index(END)
    DOC.write_text(text[:start] + render() + text[end:], encoding="utf-8")
    print(f"rewrote the conformance section of {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
