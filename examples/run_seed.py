"""Run the seed examples on stock asyncio and on turboloop and compare.

    python examples/run_seed.py

Each example runs twice in a fresh interpreter: `python FILE` (asyncio) and
`python -m turboloop FILE` (the same unchanged script on turboloop).  The
outputs are printed side by side; the exit status is 1 if any differs.
"""

import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent


def run(args):
    proc = subprocess.run([sys.executable, *args], capture_output=True,
                          text=True, timeout=120)
    return proc.returncode, proc.stdout


def main():
    examples = sorted((HERE / "seed").glob("ex*.py"))
    if not examples:
        print("no examples found", file=sys.stderr)
        return 1
    different = 0
    for path in examples:
        stock = run([str(path)])
        turbo = run(["-m", "turboloop", str(path)])
        same = stock == turbo
        different += not same
        print(f"--- {path.name}: {'same output' if same else 'DIFFERENT'}")
        for line in turbo[1].splitlines():
            print(f"    {line}")
        if not same:
            print(f"    asyncio   (exit {stock[0]}): {stock[1]!r}")
            print(f"    turboloop (exit {turbo[0]}): {turbo[1]!r}")
    print(f"{len(examples) - different} of {len(examples)} examples print "
          f"the same on turboloop as on asyncio")
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main())
