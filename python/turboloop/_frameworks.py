"""What `python -m turboloop -m MODULE` adapts for servers that choose their
event loop themselves, or start processes that do not inherit the policy,
instead of asking asyncio's policy.

uvicorn is one: with its default `--loop auto` it makes a uvloop loop when
uvloop is installed (asyncio's loop otherwise), whatever the policy says.

- uvicorn 0.36 and later take a loop factory as an import string,
  `--loop turboloop:new_event_loop`, and hand it to asyncio.run(loop_factory=)
  in the main process and in every worker or reloader process (the option
  travels with the configuration).  When the command line does not choose a
  loop, that option is added.
- uvicorn up to 0.35 has no such option; its `--loop asyncio` leaves the
  policy alone, which `python -m turboloop` has set, so that is added instead.
  Worker processes (`--workers`, `--reload`) do not inherit the policy and
  run on asyncio's loop: one line on stderr says so.
- A loop the command line chose (`--loop uvloop`, the UVICORN_LOOP variable)
  is left alone, with one line on stderr saying how to get turboloop.

hypercorn is another: see _hypercorn().
"""

import os
import sys

LOOP_FACTORY = "turboloop:new_event_loop"


def _note(text):
    sys.stderr.write(f"turboloop: {text}\n")


def _option_value(argv, *names):
    """The value of the option spelled any of `names` in argv (the last one
    wins), or None; stops at `--`.  Long options take `--name value` and
    `--name=value`, short ones `-n value` and `-nvalue`."""
    value = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            break
        for name in names:
            if arg == name and i + 1 < len(argv):
                value = argv[i + 1]
                i += 1
            elif name.startswith("--") and arg.startswith(name + "="):
                value = arg[len(name) + 1:]
            elif not name.startswith("--") and arg.startswith(name) and arg != name:
                value = arg[len(name):]
            else:
                continue
            break
        i += 1
    return value


def _has_flag(argv, *names):
    for arg in argv:
        if arg == "--":
            break
        if arg in names or any(arg.startswith(n + "=") for n in names):
            return True
    return False


def _uvicorn(argv):
    """argv (without the program name) for `uvicorn`, adapted as described
    in the module docstring."""
    if _has_flag(argv, "--help", "--version"):
        return argv
    chosen = _option_value(argv, "--loop")
    if chosen is None:
        chosen = os.environ.get("UVICORN_LOOP") or None
    try:
        from uvicorn import config
    except ImportError:
        return argv         # uvicorn itself will report what is wrong
    factories = getattr(config, "LOOP_FACTORIES", None)
    if chosen is not None:
        if not chosen.startswith("turboloop") and chosen != "none":
            spelling = (f"--loop {LOOP_FACTORY}" if factories is not None
                        else "--loop asyncio (uvicorn < 0.36)")
            _note(f"uvicorn's --loop {chosen} chooses the event loop, not turboloop; "
                  f"for turboloop use {spelling}")
        return argv
    if factories is not None:
        return ["--loop", LOOP_FACTORY, *argv]
    if _has_flag(argv, "--reload", "--workers") or os.environ.get("WEB_CONCURRENCY"):
        _note("uvicorn < 0.36 starts its worker processes on asyncio's loop; "
              "uvicorn 0.36+ runs them on turboloop with --loop " + LOOP_FACTORY)
    return ["--loop", "asyncio", *argv]


def _hypercorn(argv):
    """hypercorn takes no loop factory on its command line.  It serves from
    worker processes (one by default), started afresh, so on asyncio's loop;
    with `--workers 0` it serves in this process, where the policy gives
    turboloop.  Nothing is changed: one line says so."""
    if _has_flag(argv, "--help", "-h", "--version"):
        return argv
    worker_class = _option_value(argv, "--worker-class", "-k")
    if worker_class not in (None, "asyncio"):
        _note(f"hypercorn's --worker-class {worker_class} chooses the event loop, not turboloop")
    elif (_option_value(argv, "--workers", "-w") != "0"
          and _option_value(argv, "--config", "-c") is None):
        _note("hypercorn serves from worker processes, which run on asyncio's loop; "
              "with --workers 0 it serves from this process, on turboloop")
    return argv


ADAPTERS = {
    "uvicorn": _uvicorn,
    "hypercorn": _hypercorn,
}


def adapt_argv(module, argv):
    """The arguments to run `module` with under `python -m turboloop`."""
    adapter = ADAPTERS.get(module)
    return adapter(argv) if adapter is not None else argv
