"""Summaries and tables: plain text for the terminal, Markdown for docs/."""

import statistics

NA = "n/a"
ERR = "err"


def summarize(values):
    """Median and spread of a list of samples.

    The spread is half the range (max - min) as a percentage of the median:
    with a handful of runs it is the honest statement of how far apart they
    were, where a standard deviation would pretend to more precision.
    """
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    med = statistics.median(values)
    spread = (values[-1] - values[0]) / 2 / med * 100 if med else 0.0
    return {"median": med, "min": values[0], "max": values[-1],
            "spread_pct": spread, "n": len(values)}


def fmt_num(x):
    if x is None:
        return NA
    ax = abs(x)
    if ax >= 10_000:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def fmt_stat(stat, spread=True):
    if stat is None:
        return NA
    text = fmt_num(stat["median"])
    if spread and stat["n"] > 1:
        text += f" ±{stat['spread_pct']:.0f}%"
    return text


def ratio(a, b):
    """a/b of two summaries' medians, as text."""
    if a is None or b is None or not b["median"]:
        return NA
    return f"{a['median'] / b['median']:.2f}x"


class Table:
    """Rows of cells with a title and a note, rendered as aligned text or as
    a Markdown table."""

    def __init__(self, title, headers, notes=()):
        self.title = title
        self.headers = list(headers)
        self.rows = []
        self.notes = list(notes)

    def add(self, row):
        self.rows.append([str(c) for c in row])

    def text(self):
        widths = [max(len(h), *(len(r[i]) for r in self.rows)) if self.rows else len(h)
                  for i, h in enumerate(self.headers)]

        def line(cells):
            # Left-align the first column (names), right-align the numbers.
            out = [cells[0].ljust(widths[0])]
            out += [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
            return "  ".join(out).rstrip()

        parts = [self.title, line(self.headers),
                 "  ".join("-" * w for w in widths)]
        parts += [line(r) for r in self.rows]
        parts += [f"  {n}" for n in self.notes]
        return "\n".join(parts)

    def markdown(self):
        def esc(cell):
            return cell.replace("|", "\\|")

        parts = [f"**{self.title}**", "",
                 "| " + " | ".join(esc(h) for h in self.headers) + " |",
                 "|" + "|".join([":---"] + ["---:"] * (len(self.headers) - 1)) + "|"]
        parts += ["| " + " | ".join(esc(c) for c in r) + " |" for r in self.rows]
        if self.notes:
            parts.append("")
            parts += [f"- {n}" for n in self.notes]
        return "\n".join(parts)
