"""Run other projects' own test suites on asyncio and on turboloop.

    python -m tests.peers [--python PY] [--work DIR] [--keep] [PROJECT ...]

For each project (default: those of PROJECTS marked default): make a venv
with PY, install turboloop from this source tree and the project's pinned
version and test requirements, download the project's source distribution
(its tests are in it), and run its test suite with the turboloop_peers
plugin, which adds a turboloop twin to every case the project runs on plain
asyncio.  Then pair each asyncio case with its twin and compare with
tests/peers/expected/.

Exit status: 0 when every case that fails on turboloop is either failing on
asyncio too or listed as a known turboloop failure; 1 otherwise, or when the
run itself broke.  Cases listed as failing that now pass are reported, so
the lists can shrink.
"""

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


class Project:
    def __init__(self, name, version, requirements, pytest_args=(), timeout=900,
                 shadowing=(), default=True, build_isolation=True):
        self.name = name
        self.version = version
        # The project's own test requirements, pinned, minus what only its
        # other backends (trio, uvloop) or coverage need.
        self.requirements = list(requirements)
        self.pytest_args = list(pytest_args)
        self.timeout = timeout
        # Directories of the unpacked sources that would shadow the
        # installed package (an extension module's uncompiled sources).
        self.shadowing = list(shadowing)
        # Run when no project is named on the command line.
        self.default = default
        # False: the sdist's metadata is read with the venv's setuptools
        # rather than in an isolated build environment, which would install
        # the project's whole build system (Cython, for uvloop) only to read
        # its name and version.
        self.build_isolation = build_isolation

    @property
    def expected_file(self):
        return os.path.join(HERE, "expected", f"{self.name}.txt")


PROJECTS = {
    "anyio": Project(
        "anyio", "4.16.0",
        # Not run: the IPv6 cases, because "localhost" does not resolve to
        # ::1 on the machines CI runs on (no "::1 localhost" in /etc/hosts),
        # so they fail on asyncio too, and the sockets they leak raise
        # ResourceWarnings in whichever later test collects them; the UDP
        # back-pressure cases, which wait out a 5 s deadline on both loops
        # (tests/peers/README.md).
        pytest_args=["-k", "not ipv6 and not TestUDPSocketBackpressure"],
        requirements=["blockbuster==1.5.29", "hypothesis==6.170.17", "psutil==7.2.2",
                      "pytest==9.2.0", "pytest-mock==3.17.0", "pytest-timeout==2.4.0",
                      "trustme==1.2.1", "truststore==0.10.5"],
    ),
    # uvloop's suite runs each test mixin on uvloop (Test_UV_*) and on asyncio
    # (Test_AIO_*); the asyncio classes get turboloop twins.  Not run by
    # default (python -m tests.peers uvloop): see tests/peers/README.md.
    "uvloop": Project(
        "uvloop", "0.23.0",
        # test_sourcecode.py lints uvloop's own sources (flake8, mypy).
        pytest_args=["--ignore=tests/test_sourcecode.py", "-p", "no:warnings"],
        requirements=["aiohttp==3.14.5", "psutil==7.2.2", "pyOpenSSL==26.4.0", "pytest==9.2.0"],
        shadowing=["uvloop"],
        default=False,
        build_isolation=False,
    ),
}

FAILED = {"failed", "error", "xpassed-strict"}


# -- the expected-failure lists ------------------------------------------------------

class Expected:
    """tests/peers/expected/NAME.txt: sections headed ``[category] reason``,
    each followed by node-id patterns of the plain asyncio cases (``*`` is the
    only wildcard).  Category ``both`` lists cases that fail on stock asyncio
    too in this environment; ``flaky`` lists cases whose outcome varies from
    run to run on either loop; any other category lists cases known to fail
    on turboloop only, with the reason."""

    def __init__(self, path):
        self.sections = []      # (category, reason, [(pattern, regex)])
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                m = re.fullmatch(r"\[([\w-]+)\]\s*(.*)", line)
                if m:
                    self.sections.append((m.group(1), m.group(2), []))
                    continue
                if not self.sections:
                    raise ValueError(f"{path}:{lineno}: pattern before any [category] line")
                regex = re.compile(".*".join(map(re.escape, line.split("*"))))
                self.sections[-1][2].append((line, regex))

    def match(self, case_id):
        """(category, reason, pattern) of the first section listing case_id, or None."""
        for category, reason, patterns in self.sections:
            for pattern, regex in patterns:
                if regex.fullmatch(case_id):
                    return category, reason, pattern
        return None


# -- running -----------------------------------------------------------------------------

def run(cmd, **kwargs):
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kwargs)


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONDEVMODE",
                        "PYTHONASYNCIODEBUG", "PYTHONWARNINGS", "PYTEST_ADDOPTS")}
    env.update(extra)
    return env


def prepare(project, python, work, reuse):
    """The venv and the unpacked sdist; returns (venv python, source dir)."""
    venv = os.path.join(work, "venv")
    vpy = os.path.join(venv, "bin", "python")
    src = os.path.join(work, f"{project.name}-{project.version}")
    if reuse and os.path.exists(vpy) and os.path.isdir(src):
        return vpy, src
    env = clean_env(PIP_DISABLE_PIP_VERSION_CHECK="1")
    has_ensurepip = subprocess.run([python, "-c", "import ensurepip"], env=env,
                                   capture_output=True).returncode == 0
    if has_ensurepip:
        run([python, "-m", "venv", "--clear", venv], env=env)
    else:
        # Debian's interpreters without python3.X-venv: a venv that uses the
        # system's pip (what it installs still goes into the venv).
        run([python, "-m", "venv", "--clear", "--without-pip", "--system-site-packages", venv], env=env)
    isolation = [] if project.build_isolation else ["setuptools"]
    run([vpy, "-m", "pip", "install", "-qq", ROOT, f"{project.name}=={project.version}",
         *isolation, *project.requirements], env=env)
    dl = os.path.join(work, "sdist")
    isolation = [] if project.build_isolation else ["--no-build-isolation"]
    run([vpy, "-m", "pip", "download", "-qq", "--no-deps", "--no-binary", ":all:", *isolation,
         "-d", dl, f"{project.name}=={project.version}"], env=env)
    (archive,) = [os.path.join(dl, f) for f in os.listdir(dl) if f.endswith(".tar.gz")]
    shutil.rmtree(src, ignore_errors=True)
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(work, filter="data")
        else:
            tar.extractall(work)
    if not os.path.isdir(src):
        raise SystemExit(f"{archive} did not unpack to {src}")
    for name in project.shadowing:
        shutil.rmtree(os.path.join(src, name))
    return vpy, src


def run_suite(project, vpy, src, work, extra_args):
    """Run the project's suite; returns (pytest exit status, [outcome records])."""
    report = os.path.join(work, "outcomes.jsonl")
    if os.path.exists(report):
        os.remove(report)
    # The ini file and root are named explicitly: pytest would otherwise
    # derive them from every path-like argument.
    cmd = [vpy, "-m", "pytest", "-p", "turboloop_peers", "--peers-pair-only",
           f"--peers-report={report}", f"--rootdir={src}", "-c", os.path.join(src, "pyproject.toml"),
           "-p", "no:cacheprovider", "-q", "--no-header", "-rN",
           *project.pytest_args, *extra_args]
    log = os.path.join(work, "pytest.log")
    print("+ cd", src, "&&", " ".join(cmd), ">", log, flush=True)
    env = clean_env(PYTHONPATH=HERE, PYTHONDONTWRITEBYTECODE="1")
    with open(log, "w") as out:
        try:
            rc = subprocess.run(cmd, cwd=src, env=env, stdout=out, stderr=subprocess.STDOUT,
                                timeout=project.timeout).returncode
        except subprocess.TimeoutExpired:
            print(f"!! {project.name}: the test suite did not finish in {project.timeout}s")
            rc = -1
    with open(log, encoding="utf-8", errors="replace") as f:
        tail = f.read().splitlines()[-(1 if rc in (0, 1) else 40):]
    print("\n".join(tail))
    records = []
    if os.path.exists(report):
        with open(report, encoding="utf-8") as f:
            records = [json.loads(line) for line in f]
    return rc, records


# -- comparing -----------------------------------------------------------------------------

def pair_cases(records):
    """{asyncio case id: {"asyncio": outcome, "turboloop": outcome}}"""
    cases = collections.defaultdict(dict)
    for r in records:
        if r["backend"] not in ("asyncio", "turboloop"):
            continue
        case = r["case"]
        cases[case][r["backend"]] = r["outcome"]
        if r.get("detail"):
            cases[case][r["backend"] + "-detail"] = r["detail"]
    return cases


def compare(project, cases, expected, python_version):
    """Print the comparison; return (as expected?, number of pairs not as expected)."""
    ok = True
    counts = {k: collections.Counter(c.get(k, "missing") for c in cases.values())
              for k in ("asyncio", "turboloop")}
    columns = ["passed", "failed", "error", "skipped", "xfailed", "xpassed", "xpassed-strict", "missing"]
    columns = [c for c in columns if counts["asyncio"][c] or counts["turboloop"][c]]
    print(f"\n== {project.name} {project.version} on Python {python_version}: "
          f"{len(cases)} test cases, each on asyncio and on turboloop")
    print(f"   {'':10}" + "".join(f"{c:>9}" for c in columns))
    for k in ("asyncio", "turboloop"):
        print(f"   {k:10}" + "".join(f"{counts[k][c]:>9}" for c in columns))

    listed = collections.defaultdict(list)      # (category, reason) -> cases
    unlisted_tl, unlisted_both, wrong, asyncio_only = [], [], [], []
    used = set()                                # patterns that matched a failing case
    for case, outcome in sorted(cases.items()):
        a, t = outcome.get("asyncio"), outcome.get("turboloop")
        if a is None or t is None:
            # The adapter makes a twin for every asyncio case.
            wrong.append(f"{case}: no {'turboloop' if t is None else 'asyncio'} case")
            continue
        hit = expected.match(case)
        a_failed, t_failed = a in FAILED, t in FAILED
        if hit and hit[0] == "flaky":
            # Either outcome on either loop; counted when it failed.
            used.add(hit[2])
            if a_failed or t_failed:
                listed[hit[:2]].append(case)
            continue
        if a_failed and not t_failed:
            asyncio_only.append(case)
        if t_failed and not a_failed:
            if hit and hit[0] != "both":
                listed[hit[:2]].append(case)
                used.add(hit[2])
            else:
                unlisted_tl.append(f"{case}: {a} on asyncio, {t} on turboloop\n"
                                   + textwrap.indent(outcome.get("turboloop-detail") or "", " " * 10))
        elif t_failed and a_failed:
            if hit and hit[0] == "both":
                listed[hit[:2]].append(case)
                used.add(hit[2])
            else:
                unlisted_both.append(case)

    # A pattern may name cases that pass (a wildcard over parameters), but
    # one that matches no failing case at all is out of date.
    stale = [f"[{category}] {pattern}" for category, _, patterns in expected.sections
             for pattern, _ in patterns if pattern not in used]
    if listed:
        print("   failing as listed in", os.path.relpath(project.expected_file, ROOT) + ":")
        for (category, reason), items in listed.items():
            print(f"     {len(items):4}  [{category}] {reason}")
    for title, items in (
            ("FAIL ON TURBOLOOP ONLY, NOT LISTED", unlisted_tl),
            ("PAIRING PROBLEMS", wrong),
            ("fail on asyncio too, not listed (environment?)", unlisted_both),
            ("fail on asyncio only", asyncio_only),
            ("listed, but matching no failing case (remove from the list?)", stale)):
        if items:
            print(f"   {title}: {len(items)}")
            for item in items:
                print("     ", item)
    if unlisted_tl or wrong:
        ok = False
    return ok, len(unlisted_tl) + len(wrong)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.peers", description=__doc__.split("\n\n")[0])
    parser.add_argument("projects", nargs="*", metavar="PROJECT",
                        help=f"one of {', '.join(sorted(PROJECTS))} (default: "
                             f"{', '.join(sorted(p.name for p in PROJECTS.values() if p.default))})")
    parser.add_argument("--python", default=sys.executable, help="the interpreter to test with")
    parser.add_argument("--work", help="working directory (default: a temporary one, removed afterwards)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the venv and sources already in --work (no reinstall)")
    parser.add_argument("--pytest-arg", action="append", default=[], metavar="ARG",
                        help="an extra argument for pytest (repeatable), e.g. --pytest-arg=-x")
    parser.add_argument("--json", metavar="FILE", help="write every case's outcomes to FILE")
    args = parser.parse_args(argv)
    names = args.projects or sorted(p.name for p in PROJECTS.values() if p.default)
    for name in names:
        if name not in PROJECTS:
            parser.error(f"unknown project {name!r} (choose from {', '.join(sorted(PROJECTS))})")

    work = args.work or tempfile.mkdtemp(prefix="turboloop-peers.")
    os.makedirs(work, exist_ok=True)
    all_ok = True
    results = {}
    totals = [0, 0]     # case pairs as expected, not as expected
    try:
        for name in names:
            project = PROJECTS[name]
            pwork = os.path.join(work, name)
            os.makedirs(pwork, exist_ok=True)
            started = time.monotonic()
            expected = Expected(project.expected_file)
            vpy, src = prepare(project, args.python, pwork, args.reuse)
            version, where = subprocess.run(
                [vpy, "-c", "import sys, turboloop; print(sys.version.split()[0], turboloop.__file__)"],
                capture_output=True, text=True, check=True, cwd=src, env=clean_env()).stdout.split()
            print(f"== Python {version}; turboloop from {where}")
            rc, records = run_suite(project, vpy, src, pwork, args.pytest_arg)
            cases = pair_cases(records)
            ok, unexpected = compare(project, cases, expected, version)
            totals[0] += len(cases) - unexpected
            totals[1] += unexpected
            if rc not in (0, 1) or not cases:
                # A crash (a negative status is a signal) or a run that
                # stopped early counts as one failure of its own.
                print(f"!! {name}: pytest exited with status {rc} after {len(records)} outcomes")
                ok = False
                totals[1] += 1
            print(f"== {name}: {'as expected' if ok else 'NOT as expected'} "
                  f"({time.monotonic() - started:.0f}s)")
            all_ok &= ok
            results[name] = {"python": version, "cases": {
                case: {k: v for k, v in o.items() if not k.endswith("-detail")}
                for case, o in cases.items()}}
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1, sort_keys=True)
        # One closing line: a pair "passed" when its outcome is the one the
        # lists expect (passing on both, or a listed failure).
        print(f"peers: {totals[0]} passed, {totals[1]} failed")
    finally:
        if args.work is None and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        elif args.keep or args.work:
            print("working directory:", work)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
