"""What a loop could not save: instructions per operation outside the loop.

    python -m bench.floor --workload wait_for,taskgroup [--python PY]

Runs a micro workload under callgrind on uvloop and turboloop, N and 2N
operations as ``python -m bench.callgrind`` does, and splits each
difference by who the instructions worked for.  The loop's share is
everything its own extension executes plus the C API calls it makes
(allocation, dict and context operations, deallocations, and collections
they trigger), except the calls through which it runs Python callables and
coroutines (a task step sending into its coroutine, a done callback): those
are the program's and asyncio's, and the loop functions they call in turn
are counted again as the loop's.  The rest, asyncio's Python code and
everything it calls besides the loop, is what any loop would still execute:
as a ratio to uvloop's total it is the lowest tl/uv any loop can reach.

The loop's share is an upper bound (a C API call that ends in one of the
loop's own functions, a deallocation of a loop object for instance, is
counted twice), so the rest is a lower bound.  For uvloop the loop is its
extension and _asyncio (its Future and Task); Cython reaches Python through
more entry points than the loop's C does, so uvloop's split is the rougher
one and is shown as a cross-check.
"""

import argparse
import collections
import concurrent.futures
import json
import os
import re
import subprocess
import sys
import tempfile

from . import micro
from .callgrind import REPO_ROOT, _env, _importable

# Callees through which a loop runs Python callables: their cost is the
# callable's, not the loop's.
_RUNS_PYTHON = re.compile(
    r"^(PyIter_Send|PyObject_Call\w*|PyObject_Vectorcall\w*|_PyObject_Call\w*"
    r"|_PyObject_Vectorcall\w*|_PyObject_MakeTpCall|PyEval_\w+|_PyFunction_Vectorcall"
    r"|PyGen_am_send|gen_send\w*|PyContext_Run|context_run|_PyEval_EvalFrame\w*"
    r"|cfunction_\w+|method_vectorcall\w*|PyCFunction_\w+|_Py_CheckFunctionResult"
    r"|partial_call|partial_vectorcall|PyVectorcall_Call|_PyVectorcall_Call"
    r"|slot_tp_call|__Pyx_PyObject_Call\w*|__Pyx_PyObject_FastCall\w*)$")

LOOP_OBJECTS = {"turboloop": ("_core.",), "uvloop": ("loop.", "_asyncio.")}


def _is_loop(obj, loop):
    base = os.path.basename(obj)
    if loop == "uvloop":
        return ("uvloop" in obj and base.startswith("loop.")) or base.startswith("_asyncio.")
    return base.startswith(LOOP_OBJECTS[loop])


def parse(path):
    """Self cost per (object, function), and inclusive cost per call arc
    ((object, function) -> (object, function)), from a callgrind file."""
    names = {"ob": {}, "fn": {}}
    selfc = collections.Counter()
    arcs = collections.Counter()
    ob = fn = cob = cfn = None
    pending = None

    def name(kind, text):
        m = re.match(r"\((\d+)\)(?:\s*(.*))?", text)
        if not m:
            return text
        if m.group(2):
            names[kind][m.group(1)] = m.group(2)
        return names[kind].get(m.group(1), "?")

    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if pending is not None:
                parts = line.split()
                if len(parts) >= 2 and parts[-1].isdigit():
                    arcs[pending] += int(parts[-1])
                pending = None
            elif line.startswith("ob="):
                ob, cob = name("ob", line[3:]), None
            elif line.startswith("fn="):
                fn, cob, cfn = name("fn", line[3:]), None, None
            elif line.startswith("cob="):
                cob = name("ob", line[4:])
            elif line.startswith("cfn="):
                cfn = name("fn", line[4:])
            elif line.startswith("calls="):
                pending = ((ob, fn), (cob or ob, cfn))
                cob = None
            elif line[:1].isdigit() or line[:1] in "+-*":
                parts = line.split()
                if len(parts) >= 2 and parts[-1].isdigit():
                    selfc[ob, fn] += int(parts[-1])
    return selfc, arcs


def split(path, loop):
    """(total, loop's share) of one callgrind file."""
    selfc, arcs = parse(path)
    total = sum(selfc.values())
    share = sum(c for (o, _), c in selfc.items() if _is_loop(o, loop))
    for ((o, f), (co, cf)), c in arcs.items():
        if not _is_loop(o, loop) or _is_loop(co, loop) or (o, f) == (co, cf):
            continue
        if not _RUNS_PYTHON.match((cf or "").split("'")[0]):
            share += c
    return total, share


def _run(python, env, workload, loop, ops, warmup):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", python,
             "-m", "bench.worker", "micro", workload, "--loop", loop, "--ops", str(ops),
             "--warmup-ops", str(warmup)],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{loop}/{workload}: exit {proc.returncode}")
        done = json.loads(proc.stdout.strip().splitlines()[-1])["ops"]
        return done, split(out, loop)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.floor",
                                description=__doc__.split("\n\n")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", default="wait_for,taskgroup")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--ops", type=int)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = p.parse_args(argv)
    names = args.workload.split(",")
    env = _env([os.path.join(REPO_ROOT, "python")])
    for loop in ("uvloop", "turboloop"):
        ok, why = _importable(args.python, env, loop)
        if not ok:
            print(f"{loop} is not importable: {why}", file=sys.stderr)
            return 2
    jobs = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for name in names:
            n = args.ops or max(1000, micro.WORKLOADS[name][1] // 20)
            for loop in ("uvloop", "turboloop"):
                for k in (n, 2 * n):
                    jobs[name, loop, k] = pool.submit(_run, args.python, env, name, loop,
                                                      k, max(1, n // 10))
        rows = []
        for name in names:
            n = args.ops or max(1000, micro.WORKLOADS[name][1] // 20)
            per = {}
            for loop in ("uvloop", "turboloop"):
                (d1, (t1, s1)), (d2, (t2, s2)) = (jobs[name, loop, n].result(),
                                                  jobs[name, loop, 2 * n].result())
                per[loop] = ((t2 - t1) / (d2 - d1), (s2 - s1) / (d2 - d1))
            uv_total, uv_loop = per["uvloop"]
            tl_total, tl_loop = per["turboloop"]
            rows.append([name, f"{uv_total:,.0f}", f"{tl_total:,.0f}", f"{tl_total / uv_total:.3f}x",
                         f"{tl_loop:,.0f}", f"{tl_total - tl_loop:,.0f}",
                         f"{(tl_total - tl_loop) / uv_total:.3f}x",
                         f"{uv_loop:,.0f}", f"{uv_total - uv_loop:,.0f}"])
    header = ["workload", "uvloop", "turboloop", "tl/uv", "tl: loop", "tl: outside",
              "floor/uv", "uv: loop", "uv: outside"]
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    print("Instructions per operation: the loop's share and what is outside it "
          "(floor/uv: the outside of turboloop's run over uvloop's total)")
    for r in [header, ["-" * w for w in widths]] + rows:
        print("  ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
