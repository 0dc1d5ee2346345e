"""python -m tests.fuzz [--seconds N | --minutes N] [--family F] [--seed S]

Differential fuzzing of turboloop against asyncio: random programs run on
a fresh loop of each, and their traces must be equal (see
tests/fuzz/__init__.py).  Runs batches of examples, each batch with its own
seed (S, S+1, ...), alternating between the families, until the time is
up; prints every batch's seed and example count, and on a disagreement the
smallest program hypothesis found, with the seed to run it again:

    python -m tests.fuzz --family loop --seed 1234 --batches 1

The program being run is also written to a file (printed at the start), so
that a crash or a hang leaves its reproducer behind.
"""

import argparse
import faulthandler
import os
import random
import sys
import tempfile
import time


def _describe(exc):
    subs = getattr(exc, "exceptions", None)
    if subs:
        return "\n\n".join(f"--- failure {i + 1} of {len(subs)}:\n{_describe(e)}"
                            for i, e in enumerate(subs))
    return f"{type(exc).__name__}: {exc}"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.splitlines()[0])
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--seconds", type=float, help="time budget (default 60)")
    budget.add_argument("--minutes", type=float, help="time budget in minutes")
    parser.add_argument("--family", choices=["loop", "transport", "all"], default="all")
    parser.add_argument("--seed", type=int, help="first seed (default: random)")
    parser.add_argument("--batch", type=int, default=40, help="examples per batch (default 40)")
    parser.add_argument("--batches", type=int, help="stop after this many batches")
    args = parser.parse_args(argv)

    seconds = args.minutes * 60 if args.minutes is not None else (args.seconds or 60.0)
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    last = os.environ.get("TURBOLOOP_FUZZ_LAST") or os.path.join(
        tempfile.gettempdir(), f"turboloop-fuzz-{os.getpid()}.txt")
    os.environ["TURBOLOOP_FUZZ_LAST"] = last

    # Imported after TURBOLOOP_FUZZ_LAST is set: common.py reads it.
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    import turboloop

    from . import common, loop_programs, transport_programs

    families = {"loop": loop_programs, "transport": transport_programs}
    names = list(families) if args.family == "all" else [args.family]

    print(f"turboloop {turboloop.__version__} from {os.path.dirname(turboloop.__file__)}")
    print(f"Python {common.python_version()}; budget {seconds:.0f} s; first seed {seed}; "
          f"families {', '.join(names)}; program being run: {last}")
    sys.stdout.flush()
    # A hang inside C that the per-run alarm cannot interrupt: dump every
    # thread's stack and exit; the program is in the file above.
    faulthandler.dump_traceback_later(max(120.0, 4 * common.RUN_LIMIT * args.batch), exit=True)

    start = time.monotonic()
    totals = dict.fromkeys(names, 0)
    batches = []
    failed = None
    i = 0
    while time.monotonic() - start < seconds and (args.batches is None or i < args.batches):
        name = names[i % len(names)]
        module = families[name]
        batch_seed = seed + i
        count = [0]
        # Near the end of the budget, a smaller batch that fits in it.
        size = args.batch
        done = sum(totals.values())
        spent = time.monotonic() - start
        if done and spent > 0:
            size = max(5, min(size, int((seconds - spent) * done / spent)))

        @hseed(batch_seed)
        @settings(max_examples=size, deadline=None, database=None, derandomize=False,
                  phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck),
                  print_blob=False)
        @given(module.programs())
        def check(program):
            count[0] += 1
            common.check_same(program, common.run_both(program, module.run_program))

        t0 = time.monotonic()
        try:
            check()
        except Exception as exc:  # noqa: BLE001
            failed = (name, batch_seed, exc)
        faulthandler.cancel_dump_traceback_later()
        faulthandler.dump_traceback_later(max(120.0, 4 * common.RUN_LIMIT * args.batch), exit=True)
        totals[name] += count[0]
        batches.append((name, batch_seed, count[0], time.monotonic() - t0))
        print(f"  {name:9} seed {batch_seed}: {count[0]} examples, {time.monotonic() - t0:.1f} s"
              + ("  FAILED" if failed else ""))
        sys.stdout.flush()
        i += 1
        if failed:
            break
    faulthandler.cancel_dump_traceback_later()

    elapsed = time.monotonic() - start
    summary = ", ".join(f"{n}: {totals[n]}" for n in names)
    print(f"{len(batches)} batches in {elapsed:.0f} s, examples {summary}; "
          f"seeds {seed}..{seed + max(len(batches) - 1, 0)}")
    if failed:
        name, batch_seed, exc = failed
        print(f"\nDISAGREEMENT in family {name}, seed {batch_seed} "
              f"(again: python -m tests.fuzz --family {name} --seed {batch_seed} --batches 1 "
              f"--batch {args.batch}):\n")
        print(_describe(exc))
        return 1
    print("no disagreement")
    return 0


if __name__ == "__main__":
    sys.exit(main())
