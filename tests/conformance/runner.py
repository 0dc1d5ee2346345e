"""The parent process: lists the running Python's test.test_asyncio, runs one
child interpreter per (module, phase) job, two at a time by default, restarts
a child after a test hangs or crashes it (the hung test counts as failed),
then compares the outcome with the expected-failure list and reports."""

import argparse
import collections
import concurrent.futures
import json
import os
import pathlib
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from . import expected, tables, targets
from .child import LOG_MARKER

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHILD = [sys.executable, "-X", "faulthandler", "-m", "tests.conformance"]

FAIL_OUTCOMES = {"failed", "error", "timeout", "crash", "not_run", "unexpected_success"}
PASS_OUTCOMES = {"passed", "cpython_xfail"}
MAX_LISTED = 40


class Options:
    def __init__(self, args):
        self.target = args.target
        self.groups = set(args.group or tables.GROUPS)
        self.modules = {_module_name(m) for m in (args.module or [])}
        self.jobs = args.jobs
        self.test_timeout = args.test_timeout
        self.short_timeout = min(args.short_timeout, args.test_timeout)
        self.module_budget = args.module_budget
        self.verbose = args.verbose


def _module_name(name):
    name = name.rsplit(".", 1)[-1]
    return name if name.startswith("test_") else "test_" + name


class Job:
    def __init__(self, module, phase, groups):
        self.module = module
        self.phase = phase
        self.groups = groups
        self.plan = None          # {id: group}
        self.excluded = {}        # {id: reason}
        self.results = {}         # {id: record}
        self.skipped_module = None
        self.fatal = None
        self.elapsed = 0.0
        self.restarts = 0

    @property
    def name(self):
        return f"{self.module}[{self.phase}]"

    @property
    def primary_group(self):
        return "future-task" if self.phase == tables.TYPES else tables.loop_phase_group(self.module)


def _read_records(path, offset):
    """New complete JSON lines of `path` from `offset`: (records, offset)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    records = [json.loads(line) for line in data[:end].splitlines() if line.strip()]
    return records, offset + end + 1


def _kill(proc):
    # The child leads its own session, so this reaches what its tests
    # started too (servers in threads are in-process; subprocesses are not).
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _log_tail(path, start, lines=40):
    try:
        with open(path, "rb") as f:
            f.seek(start)
            text = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _test_output(path, test_id, lines=60):
    """What the child printed since it started `test_id`: the stacks
    faulthandler dumped for a hang or a crash end up there."""
    try:
        text = path.read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    marker = f"{LOG_MARKER}{test_id}\n"
    at = text.rfind(marker)
    if at >= 0:
        text = text[at + len(marker):]
    return "\n".join(text.rstrip().splitlines()[-lines:])


# Set when the run is interrupted: job threads then stop their children.
_STOP = threading.Event()


def run_job(job, opts, workdir, env):
    # CPython's tests create scratch files in the current directory, so each
    # child works in a directory of its own rather than in the repository.
    cwd = workdir / f"{job.module}-{job.phase}.cwd"
    cwd.mkdir(exist_ok=True)
    out = workdir / f"{job.module}-{job.phase}.jsonl"
    log = workdir / f"{job.module}-{job.phase}.log"
    skip = workdir / f"{job.module}-{job.phase}.skip"
    offset = 0
    timeout = opts.test_timeout
    timeouts = 0
    started = time.monotonic()
    out_of_budget = False
    while True:
        skip.write_text("".join(f"{i}\n" for i in job.results), encoding="utf-8")
        cmd = CHILD + ["--child", job.module, job.phase, "--target", opts.target, "--out", str(out),
                       "--skip", str(skip), "--groups", ",".join(sorted(job.groups)),
                       "--test-timeout", str(timeout)]
        with open(log, "ab") as logf:
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=logf,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        done_before = len(job.results)
        current = None            # (id, start time, log offset)
        finished_at = None
        hung = False
        while True:
            rc = proc.poll()
            records, offset = _read_records(out, offset)
            for rec in records:
                event = rec["event"]
                if event == "plan":
                    if job.plan is None:
                        job.plan = {i: g for i, g in rec["tests"]}
                        job.excluded = {i: r for i, r in rec.get("excluded", [])}
                        job.skipped_module = rec.get("skipped_module")
                elif event == "start":
                    current = (rec["id"], time.monotonic())
                elif event == "end":
                    job.results[rec["id"]] = rec
                    if current and current[0] == rec["id"]:
                        current = None
                elif event == "finished":
                    finished_at = time.monotonic()
                elif event == "fatal":
                    job.fatal = rec["detail"]
            if rc is not None:
                break
            if _STOP.is_set():
                _kill(proc)
                out_of_budget = True
                break
            now = time.monotonic()
            if current and now - current[1] > timeout:
                _kill(proc)
                hung = True
                timeouts += 1
                job.results[current[0]] = {
                    "id": current[0], "outcome": "timeout", "time": round(now - current[1], 1),
                    "detail": f"no result after {timeout:g} s; stacks at the time:\n"
                              + _test_output(log, current[0])}
                current = None
                if timeouts >= 2:
                    # A module that hangs twice will likely hang again; spend
                    # less on each further hang so the run stays bounded.
                    timeout = opts.short_timeout
                break
            if finished_at and now - finished_at > 10:
                _kill(proc)
                break
            if now - started > opts.module_budget:
                _kill(proc)
                out_of_budget = True
                if current:
                    job.results[current[0]] = {
                        "id": current[0], "outcome": "timeout", "time": round(now - current[1], 1),
                        "detail": "stopped: the module's time budget ran out during this test\n"
                                  + _test_output(log, current[0])}
                    current = None
                break
            time.sleep(0.05)
        records, offset = _read_records(out, offset)
        for rec in records:
            if rec["event"] == "end":
                job.results[rec["id"]] = rec
                if current and current[0] == rec["id"]:
                    current = None
            elif rec["event"] == "finished":
                finished_at = finished_at or time.monotonic()
            elif rec["event"] == "fatal":
                job.fatal = rec["detail"]
            elif rec["event"] == "plan" and job.plan is None:
                job.plan = {i: g for i, g in rec["tests"]}
                job.excluded = {i: r for i, r in rec.get("excluded", [])}
                job.skipped_module = rec.get("skipped_module")
        if current:
            how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}"
            job.results[current[0]] = {
                "id": current[0], "outcome": "crash", "time": round(time.monotonic() - current[1], 1),
                "detail": f"the interpreter died during this test ({how}):\n" + _test_output(log, current[0])}
        if out_of_budget or job.fatal or job.plan is None or finished_at:
            break
        remaining = set(job.plan) - set(job.results)
        if not remaining:
            break
        if len(job.results) == done_before and not hung:
            # Died between tests without progress (a fixture, most likely);
            # starting again would die the same way.
            break
        job.restarts += 1
    job.elapsed = time.monotonic() - started
    if job.fatal or job.plan is None:
        job.plan = job.plan or {}
        pseudo = f"{job.module}.<{job.phase}>"
        job.plan[pseudo] = job.primary_group
        job.results[pseudo] = {"id": pseudo, "outcome": "error",
                               "detail": job.fatal or ("the job produced no plan:\n" + _log_tail(log, 0, 60))}
    for test_id in job.plan:
        if test_id not in job.results:
            why = ("the module's time budget ran out first" if out_of_budget
                   else "the process running it stopped early (see the fixture errors of this module)")
            tail = "" if out_of_budget else "\n".join(
                line for line in _log_tail(log, 0, 40).splitlines() if not line.startswith(LOG_MARKER))
            job.results[test_id] = {"id": test_id, "outcome": "not_run", "detail": f"did not run: {why}\n" + tail}
    return job


def list_suite(opts, workdir, env):
    out = workdir / "listing.json"
    cmd = CHILD + ["--child-list", "--target", opts.target, "--out", str(out)]
    proc = subprocess.run(cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=300)
    if not out.exists():
        raise SystemExit(f"listing test.test_asyncio failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(out.read_text(encoding="utf-8"))


def plan_jobs(listing, opts):
    jobs = []
    for module, info in sorted(listing["modules"].items()):
        if opts.modules and module not in opts.modules:
            continue
        if info["skipped"] or info["import_error"]:
            if info["import_error"] and (tables.loop_phase_group(module) or info["pluggable"]):
                jobs.append(Job(module, tables.LOOPS, opts.groups))
            continue
        if info["pluggable"] and "future-task" in opts.groups:
            jobs.append(Job(module, tables.TYPES, {"future-task"}))
        group = tables.loop_phase_group(module)
        loop_groups = opts.groups & {"loop-generic", "network"}
        if group and loop_groups:
            # test_events holds loop-generic and network tests; the child
            # sorts them per test and runs those of the chosen groups.
            if group == "network" and "network" not in loop_groups:
                continue
            jobs.append(Job(module, tables.LOOPS, loop_groups))
    jobs.sort(key=lambda j: -tables.JOB_WEIGHTS.get((j.module, j.phase), 1))
    return jobs


def _cause(record):
    """A one-line summary of why a test failed, for grouping causes."""
    outcome = record["outcome"]
    if outcome == "timeout":
        return "timeout (hung)"
    if outcome == "crash":
        first = (record.get("detail") or "").splitlines()[:1]
        return "crash: " + (first[0] if first else "")
    if outcome == "not_run":
        return "not run"
    if outcome == "unexpected_success":
        return "unexpected success of a CPython expectedFailure"
    lines = [l for l in (record.get("detail") or "").splitlines() if l.strip()]
    last = ""
    for line in reversed(lines):
        if not line.startswith(" ") and re.match(r"^[\w.]+(Error|Exception|Exit|Warning|Interrupt|Failure)\b", line):
            last = line
            break
    last = last or (lines[-1] if lines else outcome)
    last = re.sub(r"0x[0-9a-fA-F]+", "0x…", last)
    last = re.sub(r"\d+(\.\d+)?", "N", last) if len(last) > 100 else last
    return last[:160]


def collect(jobs, exp, scope_groups):
    """Per-test rows: {id: row} with the status against the expected list."""
    rows = {}
    for job in jobs:
        for test_id, group in job.plan.items():
            rec = job.results[test_id]
            outcome = rec["outcome"]
            listed = test_id in exp
            if outcome in PASS_OUTCOMES:
                status = "xpass" if listed else "pass"
            elif outcome == "skipped":
                status = "skip"
            else:
                status = "xfail" if listed else "fail"
            rows[test_id] = {
                "id": test_id, "module": job.module, "phase": job.phase, "group": group,
                "outcome": outcome, "status": status, "time": rec.get("time"),
                "target_loops": rec.get("target_loops"), "stock_loops": rec.get("stock_loops"),
                "detail": rec.get("detail", "") if status in ("fail", "xfail", "skip") else "",
                "cause": _cause(rec) if status in ("fail", "xfail") else "",
                "reason": exp.get(test_id, ""),
            }
        # Fixture errors get ids that were not in the plan.
        for test_id, rec in job.results.items():
            if test_id in rows:
                continue
            group = next((g for i, g in job.plan.items() if i.startswith(test_id.rsplit(".", 1)[0] + ".")),
                         job.primary_group)
            status = "xfail" if test_id in exp else "fail"
            rows[test_id] = {"id": test_id, "module": job.module, "phase": job.phase, "group": group,
                             "outcome": rec["outcome"], "status": status, "time": 0,
                             "target_loops": 0, "stock_loops": 0, "detail": rec.get("detail", ""),
                             "cause": _cause(rec), "reason": exp.get(test_id, "")}
    return rows


def _counts(rows):
    c = collections.Counter(r["status"] for r in rows)
    passed = c["pass"] + c["xpass"]
    ran = passed + c["fail"] + c["xfail"]
    return {"pass": passed, "fail": c["fail"], "xfail": c["xfail"], "xpass": c["xpass"],
            "skip": c["skip"], "total": len(rows),
            "rate": round(100.0 * passed / ran, 1) if ran else None,
            "pass_without_target_loop": sum(1 for r in rows if r["status"] in ("pass", "xpass")
                                            and r["phase"] == tables.LOOPS and not r["target_loops"])}


def summarize(rows):
    by = collections.defaultdict(lambda: collections.defaultdict(list))
    for r in rows.values():
        by[r["group"]][r["module"]].append(r)
    summary = {}
    for group in tables.GROUPS:
        if group not in by:
            continue
        modules = {m: _counts(rs) for m, rs in sorted(by[group].items())}
        summary[group] = {"modules": modules, "total": _counts([r for rs in by[group].values() for r in rs])}
    return summary


def _fmt_rate(rate):
    return "   -  " if rate is None else f"{rate:5.1f}%"


def print_report(meta, summary, rows, jobs, listing, exp_path, out):
    w = out.write
    revision = f" at {meta['revision']}" if meta.get("revision") and meta["target"] == "turboloop" else ""
    w(f"\nCPython {meta['python']} test.test_asyncio against {meta['target']}"
      f"{' ' + meta['target_version'] if meta['target_version'] else ''}{revision}"
      f"  ({meta['elapsed']:.0f} s, expected failures: {meta['expected_file']})\n")
    head = f"  {'module':<26}{'pass':>6}{'fail':>6}{'xfail':>7}{'xpass':>7}{'skip':>6}{'total':>7}{'rate':>8}\n"
    for group, data in summary.items():
        w(f"\n[{group}]\n" + head)
        for module, c in data["modules"].items():
            w(f"  {module:<26}{c['pass']:>6}{c['fail']:>6}{c['xfail']:>7}{c['xpass']:>7}{c['skip']:>6}"
              f"{c['total']:>7}{_fmt_rate(c['rate']):>8}\n")
        c = data["total"]
        w(f"  {'TOTAL ' + group:<26}{c['pass']:>6}{c['fail']:>6}{c['xfail']:>7}{c['xpass']:>7}{c['skip']:>6}"
          f"{c['total']:>7}{_fmt_rate(c['rate']):>8}\n")
        if group != "future-task" and c["pass_without_target_loop"]:
            w(f"  ({c['pass_without_target_loop']} of the passes made no {meta['target']} loop: they test "
              "no loop at all, asyncio's test loop, or a stock loop the test builds itself)\n")
    c = _counts(list(rows.values()))
    w(f"\n  {'ALL GROUPS':<26}{c['pass']:>6}{c['fail']:>6}{c['xfail']:>7}{c['xpass']:>7}{c['skip']:>6}"
      f"{c['total']:>7}{_fmt_rate(c['rate']):>8}\n")
    rate_note = "rate = pass / (pass + fail + xfail); skips are left out"
    w(f"  {rate_note}\n")

    excluded = collections.Counter()
    for job in jobs:
        for reason in job.excluded.values():
            excluded[(job.module, reason)] += 1
    skipped_modules = {m: i for m, i in listing["modules"].items()
                       if i["status"] in ("excluded", "unclassified") and not i["pluggable"]}
    if excluded or skipped_modules:
        w("\nLeft out (see tests/conformance/tables.py):\n")
        for module, info in sorted(skipped_modules.items()):
            reason = tables.EXCLUDED_MODULES.get(module, "not classified in tables.py yet")
            w(f"  {module}: whole module: {reason}\n")
        for (module, reason), n in sorted(excluded.items()):
            w(f"  {module}: {n} test{'s' if n != 1 else ''}: {reason}\n")
    unclassified = [m for m, i in listing["modules"].items() if i["status"] == "unclassified"]
    if unclassified:
        w(f"\nModules of this Python's suite that tables.py does not classify: {', '.join(sorted(unclassified))}\n")

    fails = [r for r in rows.values() if r["status"] == "fail"]
    xpasses = [r for r in rows.values() if r["status"] == "xpass"]
    failing = [r for r in rows.values() if r["status"] in ("fail", "xfail")]
    if failing:
        causes = collections.Counter((r["cause"]) for r in failing)
        w("\nTop failure causes (listed and unlisted):\n")
        for cause, n in causes.most_common(15):
            groups = collections.Counter(r["group"] for r in failing if r["cause"] == cause)
            w(f"  {n:>5}  {cause}   [{', '.join(f'{g} {k}' for g, k in groups.most_common())}]\n")
    if xpasses:
        w(f"\nListed in {exp_path.name} but passed ({len(xpasses)}); take them off the list:\n")
        for r in sorted(xpasses, key=lambda r: r["id"]):
            w(f"  {r['id']}\n")
    if fails:
        w(f"\nFailures not listed in {exp_path.name} ({len(fails)}):\n")
        shown = sorted(fails, key=lambda r: r["id"])
        if not meta["verbose"]:
            shown = shown[:MAX_LISTED]
        for r in shown:
            w(f"  {r['id']}  [{r['outcome']}] {r['cause']}\n")
            if meta["verbose"]:
                w("    " + r["detail"].replace("\n", "\n    ") + "\n")
        if len(shown) < len(fails):
            w(f"  ... and {len(fails) - len(shown)} more (-v lists them all with tracebacks; --json has them too)\n")
    else:
        w(f"\nNo failures beyond those listed in {exp_path.name}.\n")


def update_expected(path, rows, exp, exp_groups, scope_modules, full_scope, meta):
    """Rewrite the expected-failure file from this run, within its scope."""
    new = {}
    groups = dict(exp_groups)
    for test_id, reason in exp.items():
        row = rows.get(test_id)
        if row is None:
            module = test_id.split(".", 1)[0]
            if full_scope and module in scope_modules:
                continue          # gone from this Python's suite
            new[test_id] = reason  # outside this run's scope
        elif row["status"] in ("xfail", "skip"):
            new[test_id] = reason
    for test_id, row in rows.items():
        groups[test_id] = row["group"]
        if row["status"] == "fail":
            new[test_id] = expected.UNCLASSIFIED
    expected.save(path, new, groups, meta["target"], meta["python"])
    return new


def _source_revision():
    """The commit under test, and whether the C core or the package differ
    from it (read-only git queries; None outside a checkout).  A wrapper that
    runs the harness where git is missing (sid.sh) passes it in instead."""
    if os.environ.get("TURBOLOOP_CONFORMANCE_REVISION"):
        return os.environ["TURBOLOOP_CONFORMANCE_REVISION"]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        # --no-optional-locks: a report must not touch the index.
        dirty = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain", "--",
                                "csrc", "python", "setup.py"],
                               cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (head + ("+local changes" if dirty else "")) if head else None


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="python -m tests.conformance",
        description="Run the running Python's CPython test.test_asyncio against turboloop.")
    p.add_argument("--group", action="append", choices=tables.GROUPS,
                   help="run only this group (repeatable)")
    p.add_argument("--module", action="append", metavar="M",
                   help="run only this test module, e.g. test_tasks or tasks (repeatable)")
    p.add_argument("--json", metavar="FILE", help="write per-test results and the summary as JSON")
    p.add_argument("--summary", metavar="FILE",
                   help="write a compact JSON summary (counts, failing ids and their causes, "
                        "no tracebacks), e.g. for docs/compatibility-data/")
    p.add_argument("--update-expected", action="store_true",
                   help="rewrite this Python's expected-failure file from this run")
    p.add_argument("--target", choices=targets.NAMES, default=targets.default_name(),
                   help=f"implementation under test (default: ${targets.ENV_VAR} or turboloop)")
    p.add_argument("-j", "--jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="child interpreters at a time (default: 2)")
    p.add_argument("--test-timeout", type=float, default=15.0,
                   help="seconds one test may take before it counts as hung (default: 15; "
                        "the slowest test on stock asyncio takes about 2.5)")
    p.add_argument("--short-timeout", type=float, default=5.0,
                   help="the per-test limit once a module has hung twice (default: 5)")
    p.add_argument("--module-budget", type=float, default=150.0,
                   help="seconds one module job may take in all (default: 150)")
    p.add_argument("--list", action="store_true", help="show how each module is treated, run nothing")
    p.add_argument("--keep-logs", action="store_true", help="keep the children's logs and print where")
    p.add_argument("-v", "--verbose", action="store_true", help="print the traceback of each new failure")
    return p.parse_args(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        from . import child
        return child.main(argv[1:])
    if argv[:1] == ["--child-list"]:
        from . import child
        return child.list_main(argv[1:])

    args = parse_args(argv)
    opts = Options(args)
    env = dict(os.environ)
    env[targets.ENV_VAR] = opts.target
    # Children run elsewhere: make PYTHONPATH absolute (PYTHONPATH=python is
    # the usual spelling) and put this repository on it for tests.conformance.
    paths = [os.path.abspath(p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + paths)
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="tl-conformance-"))
    started = time.monotonic()
    try:
        listing = list_suite(opts, workdir, env)
        if listing["target_error"]:
            print(f"cannot import the target {opts.target!r}:\n{listing['target_error']}", file=sys.stderr)
            print("Build it first (python setup.py build_ext --inplace) and put python/ on PYTHONPATH.",
                  file=sys.stderr)
            return 2
        if args.list:
            for module, info in sorted(listing["modules"].items()):
                phases = []
                if info["pluggable"]:
                    phases.append(f"types ({info['pluggable']} classes)")
                if tables.loop_phase_group(module):
                    phases.append(f"loops ({tables.loop_phase_group(module)})")
                note = info["skipped"] or (info["import_error"] or "").strip().splitlines()[-1:] or ""
                reason = tables.EXCLUDED_MODULES.get(module, "")
                print(f"{module:<28}{', '.join(phases) or '-':<40}{info['status']:<14}{reason or note}")
            return 0
        jobs = plan_jobs(listing, opts)
        if not jobs:
            print("nothing to run for that selection", file=sys.stderr)
            return 2
        lock = threading.Lock()

        def run(job):
            run_job(job, opts, workdir, env)
            with lock:
                n_fail = sum(1 for r in job.results.values() if r["outcome"] in FAIL_OUTCOMES)
                extra = f", {job.restarts} restarts" if job.restarts else ""
                print(f"  {job.name:<38} {len(job.plan):>5} tests {n_fail:>5} failing  "
                      f"{job.elapsed:6.1f} s{extra}", flush=True)
            return job

        print(f"Running {len(jobs)} jobs, {opts.jobs} at a time, on Python {listing['python']} "
              f"({opts.target})", flush=True)
        with concurrent.futures.ThreadPoolExecutor(opts.jobs) as pool:
            try:
                jobs = list(pool.map(run, jobs))
            except KeyboardInterrupt:
                _STOP.set()
                raise

        exp_path = expected.path_for(opts.target)
        exp, exp_groups = expected.load(exp_path)
        rows = collect(jobs, exp, opts.groups)
        summary = summarize(rows)
        meta = {"python": listing["python"], "implementation": platform.python_implementation(),
                "target": opts.target, "target_version": listing["target_version"],
                "expected_file": str(exp_path.relative_to(ROOT)), "elapsed": time.monotonic() - started,
                "groups": sorted(opts.groups), "modules": sorted(opts.modules), "verbose": args.verbose,
                "date": time.strftime("%Y-%m-%d"), "revision": _source_revision()}
        print_report(meta, summary, rows, jobs, listing, exp_path, sys.stdout)
        if args.json:
            excluded = {i: r for job in jobs for i, r in job.excluded.items()}
            data = {"meta": {k: v for k, v in meta.items() if k != "verbose"}, "summary": summary,
                    "tests": sorted(rows.values(), key=lambda r: r["id"]), "excluded_tests": excluded,
                    "excluded_modules": {m: tables.EXCLUDED_MODULES.get(m, "")
                                         for m, i in listing["modules"].items()
                                         if i["status"] in ("excluded", "unclassified")}}
            pathlib.Path(args.json).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        if args.summary:
            data = {"meta": {k: v for k, v in meta.items() if k not in ("verbose", "elapsed")},
                    "summary": summary,
                    "failing": [{k: r[k] for k in ("id", "group", "status", "outcome", "cause", "reason")}
                                for r in sorted(rows.values(), key=lambda r: r["id"])
                                if r["status"] in ("fail", "xfail")],
                    "listed_but_passing": sorted(r["id"] for r in rows.values() if r["status"] == "xpass"),
                    "excluded_tests": dict(collections.Counter(
                        f"{job.module}: {reason}" for job in jobs for reason in job.excluded.values())),
                    "excluded_modules": {m: tables.EXCLUDED_MODULES.get(m, "")
                                         for m, i in listing["modules"].items()
                                         if i["status"] in ("excluded", "unclassified") and not i["pluggable"]}}
            pathlib.Path(args.summary).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        if args.update_expected:
            full = opts.groups == set(tables.GROUPS)
            scope = {job.module for job in jobs}
            new = update_expected(exp_path, rows, exp, exp_groups, scope, full, meta)
            print(f"\nWrote {len(new)} entries to {exp_path.relative_to(ROOT)}")
        unexpected = sum(1 for r in rows.values() if r["status"] == "fail")
        return 1 if unexpected and not args.update_expected else 0
    finally:
        if args.keep_logs:
            print(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
