"""Run a script (or -m module) under yappi and print the functions with the
most time of their own:

    python examples/profile_tools/yappi_run.py wall|cpu script.py
    python examples/profile_tools/yappi_run.py wall|cpu -m turboloop script.py

(docs/profiling.md)"""

import runpy
import sys

import yappi
yappi.set_clock_type(sys.argv[1])
sys.argv = sys.argv[2:]
yappi.start()
try:
    if sys.argv[0] == "-m":
        sys.argv = sys.argv[1:]
        runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
    else:
        runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit:
    pass
finally:
    yappi.stop()
stats = yappi.get_func_stats()
rows = sorted(stats, key=lambda s: -s.tsub)[:8]
for s in rows:
    print(f"{s.tsub:8.3f} {s.ttot:8.3f} {s.ncall:6d}  {s.module.split('/')[-1]}:{s.lineno} {s.name}")
