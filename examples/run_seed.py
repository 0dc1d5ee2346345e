"""Run the seed examples on stock asyncio and on turboloop, and compare.

    python examples/run_seed.py [SCRIPT.py ...]

Each example (by default every examples/seed/ex*.py) runs twice, each time in
a fresh interpreter: once as `python FILE` (stock asyncio) and once as
`python -m turboloop FILE` (the same, unchanged script on turboloop).  The two
outputs are printed side by side with a "same output: yes/no" verdict per
example.  Exit status: 0 if every example printed the same (stdout, stderr and
exit status) both ways, 1 if any differed, 2 if there was nothing to run.

turboloop must be importable by this interpreter (`pip install .`).
"""

import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
SEED = HERE / "seed"
TIMEOUT = 120          # seconds; the examples sleep for at most two
COLUMN = 38            # width of the asyncio column


def start(args):
    # The children run in the examples directory, so that `-m turboloop`
    # imports the installed package and never a source tree on sys.path[0].
    return subprocess.Popen([sys.executable, *args], cwd=SEED, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc):
    """(exit status, stdout, stderr) of a started child."""
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        err += f"\n[killed after {TIMEOUT} s]\n"
    return proc.returncode, out, err


def describe(result):
    """The lines that show one run: stdout, then stderr and a non-zero exit
    status if there are any."""
    status, out, err = result
    lines = out.splitlines()
    lines += [f"stderr: {line}" for line in err.splitlines()]
    if status != 0:
        lines.append(f"[exit status {status}]")
    return lines or ["(no output)"]


def side_by_side(left, right):
    rows = [f"    {'asyncio':<{COLUMN}} | turboloop",
            f"    {'-' * COLUMN} | {'-' * COLUMN}"]
    for i in range(max(len(left), len(right))):
        a = left[i] if i < len(left) else ""
        b = right[i] if i < len(right) else ""
        rows.append(f"    {a:<{COLUMN}} | {b}".rstrip())
    return rows


def main(argv):
    paths = [pathlib.Path(p).resolve() for p in argv] or sorted(SEED.glob("ex*.py"))
    if not paths:
        print(f"no examples found in {SEED}", file=sys.stderr)
        return 2
    check = subprocess.run([sys.executable, "-c", "import turboloop"], cwd=SEED,
                           capture_output=True, text=True)
    if check.returncode != 0:
        print(f"turboloop does not import with {sys.executable}; install it first "
              f"with `pip install .` from the repository root:\n{check.stderr}", file=sys.stderr)
        return 1

    # The examples spend their time sleeping, so every run starts at once.
    started = [(path, start([str(path)]), start(["-m", "turboloop", str(path)]))
               for path in paths]
    differ = []
    for path, stock_proc, turbo_proc in started:
        stock, turbo = finish(stock_proc), finish(turbo_proc)
        same = stock == turbo
        if not same:
            differ.append(path.name)
        print(f"{path.name}: same output: {'yes' if same else 'no'}")
        print("\n".join(side_by_side(describe(stock), describe(turbo))))
        print()
    print(f"{len(paths) - len(differ)} of {len(paths)} examples print the same "
          f"on turboloop as on asyncio" + (f"; different: {', '.join(differ)}" if differ else ""))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
