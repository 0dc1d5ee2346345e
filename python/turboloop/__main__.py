"""python -m turboloop: run an unchanged asyncio program on turboloop.

    python -m turboloop script.py [args...]
    python -m turboloop -m module [args...]
    python -m turboloop -c code [args...]

The program's asyncio.run(), asyncio.Runner() and asyncio.new_event_loop()
get turboloop loops (through the event loop policy); sys.argv, sys.path[0]
and __main__ are set as the interpreter itself would set them.
"""

import os
import runpy
import sys

USAGE = """\
usage: python -m turboloop [-h] (script.py | -m module | -c code) [args ...]

Run an asyncio program on the turboloop event loop.
"""


def _install_quietly():
    # Installing the policy is the mechanism here, not a user's choice, so
    # it must not print the deprecation warning that install() gives on 3.14+.
    from . import _EventLoopPolicy, _set_policy
    _set_policy(_EventLoopPolicy())


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0 if args else 2

    _install_quietly()
    first = args[0]
    if first == "-c":
        if len(args) < 2:
            sys.stderr.write("Argument expected for the -c option\n")
            return 2
        code = args[1]
        sys.argv = ["-c"] + args[2:]
        sys.path.insert(0, "")
        main_mod = sys.modules["__main__"]
        namespace = {"__name__": "__main__", "__builtins__": __builtins__,
                     "__doc__": None, "__spec__": None,
                     "__loader__": main_mod.__dict__.get("__loader__")}
        exec(compile(code, "<string>", "exec"), namespace)
        return 0
    if first == "-m":
        if len(args) < 2:
            sys.stderr.write("Argument expected for the -m option\n")
            return 2
        sys.argv = [args[1]] + args[2:]
        sys.path.insert(0, os.getcwd())
        runpy.run_module(args[1], run_name="__main__", alter_sys=True)
        return 0
    if first.startswith("-"):
        sys.stderr.write(f"unknown option {first}\n{USAGE}")
        return 2
    sys.argv = args
    # As for `python script.py`: the script's directory comes first.
    sys.path[0] = os.path.dirname(os.path.abspath(first))
    runpy.run_path(first, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
