"""Draw a Chrome trace written by `python -m turboloop --profile=trace.json`
as a PNG timeline: one lane per track (the event loop, then each task),
slices coloured by kind.  Used for the picture in docs/profiling.md:

    python docs/img/render_trace.py trace.json docs/img/profile_demo_trace.png

Needs matplotlib.
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

COLOURS = {"task": "#4c78a8", "timer": "#e45756", "call_soon": "#f58518",
           "callback": "#72b7b2", "io": "#54a24b", "protocol": "#b279a2",
           "idle": "#d0d0d0"}


def main(src, dst):
    with open(src) as f:
        events = json.load(f)["traceEvents"]
    names = {e["tid"]: e["args"]["name"] for e in events
             if e["ph"] == "M" and e["name"] == "thread_name"}
    slices = [e for e in events if e["ph"] == "X"]
    t0 = min(e["ts"] for e in slices)
    # Lanes: the loop first, then tasks by their first slice.
    first = {}
    for e in slices:
        first.setdefault(e["tid"], e["ts"])
    lanes = sorted(first, key=lambda tid: (tid != 0, first[tid]))
    fig, ax = plt.subplots(figsize=(12, 0.45 * len(lanes) + 1.4), dpi=110)
    for row, tid in enumerate(lanes):
        for cat in COLOURS:
            bars = [((e["ts"] - t0) / 1000, max(e["dur"] / 1000, 0.05))
                    for e in slices if e["tid"] == tid and e["cat"] == cat]
            if bars:
                ax.broken_barh(bars, (row - 0.4, 0.8), facecolors=COLOURS[cat],
                               edgecolors="none")
    total = max(e["ts"] + e["dur"] for e in slices) - t0
    for e in slices:
        if e["dur"] >= total / 25 and e["cat"] != "idle":  # label the wide ones
            row = lanes.index(e["tid"])
            ax.text((e["ts"] - t0 + e["dur"] / 2) / 1000, row, e["name"], ha="center",
                    va="center", fontsize=7, color="white", clip_on=True)
    ax.set_yticks(range(len(lanes)))
    ax.set_yticklabels([names.get(tid, str(tid)) for tid in lanes], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("time (ms)")
    ax.set_title("python -m turboloop --profile=trace.json examples/profile_demo.py",
                 fontsize=9)
    used = {e["cat"] for e in slices}
    ax.legend(handles=[Patch(color=c, label="poll (idle)" if k == "idle" else k)
                       for k, c in COLOURS.items() if k in used],
              loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=7, fontsize=8,
              frameon=False)
    ax.grid(axis="x", linewidth=0.3)
    fig.tight_layout()
    fig.savefig(dst)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
