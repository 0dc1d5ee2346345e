"""pytest plugin: run a project's asyncio-parametrized tests on turboloop too.

Loaded with ``-p turboloop_peers`` into another project's own test run.  For
anyio's suite it adds an ``asyncio+turboloop`` case to the project's
``anyio_backend`` fixture: asyncio's backend with turboloop's loop factory,
next to the project's own ``asyncio`` case, with the same options.
"""

import pytest

import turboloop

TURBOLOOP_ID_SUFFIX = "+turboloop"


def _turboloop_twin(param):
    """The turboloop twin of one of the fixture's plain asyncio cases, or None."""
    if isinstance(param, type(pytest.param(None))):
        values, marks, ident = param.values, param.marks, param.id
        value = values[0]
    else:
        value, marks, ident = param, (), None
    if isinstance(value, str):
        name, options = value, {}
    elif isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict):
        name, options = value
    else:
        return None
    if name != "asyncio" or "loop_factory" in options or options.get("use_uvloop"):
        return None
    options = dict(options, loop_factory=turboloop.new_event_loop)
    return pytest.param((name, options), marks=marks, id=(ident or name) + TURBOLOOP_ID_SUFFIX)


def _with_twins(cases):
    """The cases followed by the turboloop twins of their plain asyncio ones."""
    cases = list(cases)
    if any(getattr(c, "id", None) and c.id.endswith(TURBOLOOP_ID_SUFFIX) for c in cases):
        return cases
    return cases + [t for t in map(_turboloop_twin, cases) if t is not None]


def _is_backend_parametrize(mark):
    if mark.name != "parametrize" or not mark.args:
        return False
    names = mark.args[0]
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",")]
    return list(names) == ["anyio_backend"] and len(mark.args) > 1


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc):
    # Runs before pytest's own parametrization, which reads the test's
    # parametrize marks and the fixture definition's params: extend them there.
    #
    # Tests for asyncio only parametrize the fixture themselves,
    # @pytest.mark.parametrize("anyio_backend", [...]): give that mark the
    # twins too.
    for node, mark in list(metafunc.definition.iter_markers_with_node("parametrize")):
        if _is_backend_parametrize(mark):
            new = pytest.mark.parametrize(mark.args[0], _with_twins(mark.args[1]), *mark.args[2:],
                                          **mark.kwargs).mark
            node.own_markers[node.own_markers.index(mark)] = new
    # The fixture's own cases (its params): once per fixture definition.
    for fixturedef in metafunc._arg2fixturedefs.get("anyio_backend", ()):
        if fixturedef.params is None or getattr(fixturedef, "_turboloop_twins", False):
            continue
        params = list(fixturedef.params)
        if fixturedef.ids is not None and not callable(fixturedef.ids):
            # Positional ids: carry each in its case instead.
            params = [pytest.param(p, id=i) for p, i in zip(params, fixturedef.ids)]
            fixturedef.ids = None
        fixturedef.params = tuple(_with_twins(params))
        fixturedef._turboloop_twins = True


def pytest_report_header(config):
    return f"turboloop {turboloop.__version__} from {turboloop.__file__}: adds asyncio{TURBOLOOP_ID_SUFFIX} cases"


# -- selecting and recording ------------------------------------------------------

def pytest_addoption(parser):
    group = parser.getgroup("turboloop peers")
    group.addoption("--peers-pair-only", action="store_true",
                    help="run only the asyncio cases and their turboloop twins")
    group.addoption("--peers-report", metavar="FILE",
                    help="write every case's outcome to FILE (JSON lines)")


def _case_backend(item):
    callspec = getattr(item, "callspec", None)
    if callspec is None or "anyio_backend" not in callspec.params:
        return None
    value = callspec.params["anyio_backend"]
    name, options = (value, {}) if isinstance(value, str) else value
    factory = options.get("loop_factory")
    if name != "asyncio":
        return name
    if factory is None:
        return "asyncio+uvloop" if options.get("use_uvloop") else "asyncio"
    if factory is turboloop.new_event_loop:
        return "turboloop"
    return "asyncio+" + getattr(factory, "__module__", "?") + "." + getattr(factory, "__name__", "?")


def pytest_collection_modifyitems(config, items):
    if not config.getoption("peers_pair_only"):
        return
    keep, drop = [], []
    for item in items:
        (keep if _case_backend(item) in ("asyncio", "turboloop") else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


_reports = {}
_details = {}


def pytest_runtest_logreport(report):
    # One outcome per case: the first failing phase, else the call's outcome
    # (or the setup's, for a skip).
    if report.failed:
        outcome = "error" if report.when != "call" else "failed"
        if hasattr(report, "wasxfail"):
            outcome = "xpassed-strict"
    elif report.skipped:
        outcome = "xfailed" if hasattr(report, "wasxfail") else "skipped"
    elif report.when == "call":
        outcome = "xpassed" if hasattr(report, "wasxfail") else "passed"
    else:
        return
    _reports.setdefault(report.nodeid, outcome)
    if _reports[report.nodeid] == "passed" and outcome == "error":
        _reports[report.nodeid] = outcome   # an error at teardown
    if report.failed and report.nodeid not in _details:
        # The end of the traceback, for the report of an unexpected failure.
        _details[report.nodeid] = f"({report.when}) " + report.longreprtext[-4000:]


def pytest_sessionfinish(session):
    path = session.config.getoption("peers_report")
    if not path:
        return
    import json
    backends = {item.nodeid: _case_backend(item) for item in session.items}
    with open(path, "w") as f:
        for nodeid, outcome in _reports.items():
            f.write(json.dumps({"nodeid": nodeid, "backend": backends.get(nodeid),
                                "outcome": outcome, "detail": _details.get(nodeid)}) + "\n")
