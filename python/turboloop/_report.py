"""The profiler's outputs: the text report and the Chrome trace."""

# ---------------------------------------------------------------------------
# Numbers for people


def fmt_time(s, ascii=False):
    """A duration in the unit its magnitude calls for, 3 or 4 digits."""
    if s is None:
        return "-"
    if s < 0:
        s = 0.0
    us = "us" if ascii else "\u00b5s"
    if s == 0:
        return "0"
    if s < 1e-6:
        return f"{s * 1e9:.0f} ns"
    if s < 1e-5:
        return f"{s * 1e6:.1f} {us}"
    if s < 1e-3:
        return f"{s * 1e6:.0f} {us}"
    if s < 1e-2:
        return f"{s * 1e3:.2f} ms"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    if s < 60:
        return f"{s:.2f} s"
    if s < 3600:
        m, sec = divmod(s, 60)
        return f"{int(m)} min {sec:.0f} s"
    h, rest = divmod(s, 3600)
    return f"{int(h)} h {rest / 60:.0f} min"


def fmt_pct(x):
    return f"{x * 100:.1f}%"


def fmt_int(n):
    return f"{n:,}"


def _cut(text, n, ascii, left=False):
    if len(text) <= n:
        return text
    if n <= 1:
        return text[:n]
    dots = "~" if ascii else "\u2026"
    return dots + text[len(text) - n + 1:] if left else text[:n - 1] + dots


def table(headers, rows, *, right=(), flex=(), left_cut=(), width=100, indent=2,
          ascii=False, paths_first=True):
    """Rows of strings as aligned columns no wider than `width`.  To make
    them fit, the widest of the `flex` columns is narrowed, one character at
    a time (to no less than 8); cells too long for their column are cut at
    the end, or at the start for the columns in `left_cut` (file:line).
    The columns in `right` are right-aligned."""
    ncol = len(headers)
    widths = [max([len(headers[i])] + [len(r[i]) for r in rows]) for i in range(ncol)]
    total = indent + sum(widths) + 2 * (ncol - 1)
    floors = {i: max(len(headers[i]), 8) for i in flex}
    for i in left_cut if paths_first else ():
        # file:line cells first, to a length that still shows the file.
        if i in flex and total > width and widths[i] > 22:
            cut = min(total - width, widths[i] - 22)
            widths[i] -= cut
            total -= cut
    while total > width:
        cands = [i for i in flex if widths[i] > floors[i]]
        if not cands:
            break
        i = max(cands, key=lambda i: widths[i])
        widths[i] -= 1
        total -= 1
    lines = []
    for row in [headers] + rows:
        cells = []
        for i, cell in enumerate(row):
            cell = _cut(cell, widths[i], ascii, left=i in left_cut)
            cells.append(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]))
        lines.append((" " * indent + "  ".join(cells)).rstrip())
    return lines


# ---------------------------------------------------------------------------
# The report


def _stack_line(stack, ascii):
    """The await chain of a suspended task: its own frames with their
    lines, asyncio's (and ours) by name only."""
    from .profiling import _SKIP_PREFIXES, _where
    arrow = " > " if ascii else " \u203a "
    parts = []
    for fn, line, name in stack:
        if fn.startswith(_SKIP_PREFIXES):
            parts.append(name)
        else:
            parts.append(f"{name} ({_where(fn, line)})")
    return arrow.join(parts)


def format_report(p, *, top=10, width=100, ascii=False):
    t = lambda s: fmt_time(s, ascii)          # noqa: E731
    out = []
    wall = p.wall if p.wall > 0 else (p.busy + p.poll)
    idle = min(p.idle, wall)
    own = max(0.0, wall - p.busy - idle - p.cpu_clock)
    div = wall or 1.0
    out.append(f"turboloop profile: {t(wall)} in the event loop, "
               f"{fmt_int(p.iterations)} iterations, "
               f"{fmt_int(p.spans)} callbacks and task steps")
    cpu = f"   (CPU {t(p.busy_cpu)})" if p.busy_cpu is not None else ""
    out.extend(table(
        ["", "share", "time", ""],
        [["busy", fmt_pct(p.busy / div), t(p.busy), "running callbacks and task steps" + cpu],
         ["idle", fmt_pct(idle / div), t(idle), "waiting for I/O or timers (in poll)"],
         ["loop", fmt_pct(own / div), t(own),
          "the loop's own work: dispatch, timers, polls that did not wait"]]
        + ([["cpu", fmt_pct(p.cpu_clock / div), t(p.cpu_clock),
             "reading the CPU clock for --profile-cpu (system calls)"]] if p.cpu_measured else []),
        right=(1, 2), flex=(3,), width=width, ascii=ascii)[1:])

    stepped = [s for s in p.tasks if s.steps]
    if stepped:
        shown = stepped[:top]
        out.append("")
        out.append(f"Tasks by time in their steps ({len(shown)} of "
                   f"{fmt_int(len(stepped) + p.tasks_dropped)})")
        headers = ["task", "coroutine", "created at", "steps", "total", "max step",
                   "waiting", "share"]
        rows = [[s.name, s.coroutine, s.created_at or "-", fmt_int(s.steps), t(s.busy),
                 t(s.max_step), t(s.waiting), fmt_pct(s.share)] for s in shown]
        if p.cpu_measured:
            headers.insert(5, "cpu")
            for row, s in zip(rows, shown):
                row.insert(5, t(s.cpu))
        right = tuple(range(3, len(headers)))
        out.extend(table(headers, rows, right=right, flex=(0, 1, 2), left_cut=(2,),
                         width=width, ascii=ascii))
        if len(stepped) + p.tasks_dropped > top and p.coroutines:
            out.append("")
            out.append("Coroutines by time (all tasks of each)")
            rows = [[s.name, s.location or "-", fmt_int(s.calls), t(s.busy), t(s.max),
                     fmt_pct(s.share)] for s in p.coroutines[:top]]
            out.extend(table(["coroutine", "defined at", "steps", "total", "max step",
                              "share"], rows, right=(2, 3, 4, 5), flex=(0, 1),
                             left_cut=(1,), width=width, ascii=ascii))

    if p.callbacks:
        shown = p.callbacks[:top]
        out.append("")
        out.append(f"Callbacks by time ({len(shown)} of {len(p.callbacks)})")
        rows = [[s.name, s.kind, s.location or "-", fmt_int(s.calls), t(s.busy), t(s.max),
                 fmt_pct(s.share)] for s in shown]
        out.extend(table(["callback", "kind", "defined at", "calls", "total", "max",
                          "share"], rows, right=(3, 4, 5, 6), flex=(0, 2), left_cut=(2,),
                         width=width, ascii=ascii))

    out.append("")
    out.append("Lateness (how long after it was due each one started)")
    rows = []
    for label, lag in (("timers", p.timer_lateness), ("ready callbacks and steps", p.ready_lag)):
        if lag.count:
            rows.append([label, fmt_int(lag.count), t(lag.mean), t(lag.p50), t(lag.p90),
                         t(lag.p99), t(lag.max)])
        else:
            rows.append([label, "0", "-", "-", "-", "-", "-"])
    out.extend(table(["", "count", "mean", "p50", "p90", "p99", "max"], rows,
                     right=(1, 2, 3, 4, 5, 6), width=width, ascii=ascii))

    if p.slowest:
        out.append("")
        out.append("Slowest steps and callbacks, at most two of each (for a step: "
                   "where the task was suspended after it)")
        # At most two rows for one task or callback, so that one hungry task
        # does not hide the others.
        shown, count = [], {}
        for s in p.slowest:
            key = (s.kind, s.task or s.name)
            if count.get(key, 0) < 2:
                count[key] = count.get(key, 0) + 1
                shown.append(s)
            if len(shown) == top:
                break
        rows = []
        for s in shown:
            what = s.name if s.task is None else f"{s.task} ({s.name})"
            rows.append([t(s.duration), s.kind, what, s.location or "-", t(s.at)])
        lines = table(["time", "kind", "what", "where", "at"], rows,
                      right=(0, 4), flex=(2, 3), left_cut=(3,), width=width, ascii=ascii,
                      paths_first=False)
        out.append(lines[0])
        for s, line in zip(shown, lines[1:]):
            out.append(line)
            if len(s.stack) > 1:
                out.append(_cut("      in " + _stack_line(s.stack, ascii), width, ascii))
    if p.tasks_dropped:
        out.append("")
        out.append(f"({fmt_int(p.tasks_dropped)} finished tasks were dropped from the "
                   f"task table; their time is in the coroutine table)")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------
# Chrome trace-event format


def _us(ns):
    # Microseconds with nanosecond precision, as Chrome's format allows.
    return round(ns / 1000.0, 3)


def chrome_trace(p, *, pid, process_name):
    events = [
        {"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
         "args": {"name": process_name}},
        {"name": "thread_name", "ph": "M", "pid": pid, "tid": 0,
         "args": {"name": "event loop"}},
        {"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": 0,
         "args": {"sort_index": 0}},
    ]
    tracks = {}
    for t0, dur, track, site, kind in p.trace_events or ():
        if kind == "poll":
            ev = {"name": "poll (idle)", "cat": "idle", "ph": "X", "ts": _us(t0),
                  "dur": _us(dur), "pid": pid, "tid": 0, "cname": "grey"}
        else:
            s = p._site(site)
            ev = {"name": s.name if s else kind, "cat": kind, "ph": "X", "ts": _us(t0),
                  "dur": _us(dur), "pid": pid, "tid": track}
            if s is not None and s.location:
                ev["args"] = {"defined at": s.location}
        events.append(ev)
        if track and track not in tracks:
            task = p._task_names.get(track)
            tracks[track] = (f"{task.name} ({task.coroutine})" if task
                             else f"task #{track}")
    for track, name in sorted(tracks.items()):
        events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": track,
                       "args": {"name": name}})
        events.append({"name": "thread_sort_index", "ph": "M", "pid": pid,
                       "tid": track, "args": {"sort_index": track}})
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {
            "producer": "turboloop",
            "events_recorded": p.trace_total,
            "events_kept": len(p.trace_events or ()),
        },
    }

