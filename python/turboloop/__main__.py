"""python -m turboloop: run an unchanged asyncio program on turboloop.

    python -m turboloop script.py [args...]
    python -m turboloop -m module [args...]
    python -m turboloop -c code [args...]

The program's asyncio.run(), asyncio.Runner() and asyncio.new_event_loop()
get turboloop loops (through the event loop policy); sys.argv, sys.path[0]
and __main__ are set as the interpreter itself would set them.
"""

import builtins
import io
import os
import runpy
import sys
import types

from . import _cli_profile

USAGE = """\
usage: python -m turboloop [-h] [options] (script.py | -m module | -c code) [args ...]
       python -m turboloop top|ps PID

Run an asyncio program on the turboloop event loop.

options:
""" + _cli_profile.OPTIONS_USAGE + """
top PID, ps PID: the tasks of a running program started with --monitor (or
with TURBOLOOP_MONITOR=1), refreshed like top(1), or listed once.
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

    if args[0] in ("top", "ps") and not os.path.exists(args[0]):
        from . import _monitor
        return _monitor.client_main(args)
    try:
        opts, args = _cli_profile.parse(args)
    except ValueError as exc:
        sys.stderr.write(f"{exc}\n{USAGE}")
        return 2
    if not args:
        sys.stderr.write(USAGE)
        return 2

    _install_quietly()
    with _cli_profile.Session(opts):
        return _run(args)


def _run(args):
    first = args[0]
    if first == "-c":
        if len(args) < 2:
            sys.stderr.write("Argument expected for the -c option\n")
            return 2
        sys.path.insert(0, "")
        _run_as_main(compile(args[1], "<string>", "exec"), ["-c"] + args[2:],
                     None)
        return 0
    if first == "-m":
        if len(args) < 2:
            sys.stderr.write("Argument expected for the -m option\n")
            return 2
        # A server that picks its own loop (uvicorn) is told to use ours.
        from ._frameworks import adapt_argv
        sys.argv = [args[1]] + adapt_argv(args[1], args[2:])
        sys.path.insert(0, os.getcwd())
        runpy.run_module(args[1], run_name="__main__", alter_sys=True)
        return 0
    if first.startswith("-"):
        sys.stderr.write(f"unknown option {first}\n{USAGE}")
        return 2
    # As for `python script.py`: __file__ is absolute, sys.argv[0] is as
    # given, and the script's directory comes first on sys.path.
    path = os.path.abspath(first)
    with io.open_code(path) as f:
        source = f.read()
    sys.path[0] = os.path.dirname(path)
    _run_as_main(compile(source, path, "exec"), args, path)
    return 0


def _run_as_main(code, argv, filename):
    """Execute code in a fresh module installed as sys.modules['__main__'],
    so that pickle, multiprocessing and friends find what it defines."""
    main = types.ModuleType("__main__")
    main.__builtins__ = builtins
    main.__spec__ = None
    if filename is not None:
        main.__file__ = filename
    sys.modules["__main__"] = main
    sys.argv = argv
    exec(code, main.__dict__)

if __name__ == "__main__":
    sys.exit(main())
