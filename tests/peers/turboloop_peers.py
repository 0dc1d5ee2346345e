"""pytest plugin: run a project's asyncio tests on turboloop too.

Loaded with ``-p turboloop_peers`` into another project's own test run, it
gives every test case the project runs on plain asyncio a twin on
turboloop:

- anyio: an ``asyncio+turboloop`` case next to each plain ``asyncio`` case of
  the ``anyio_backend`` fixture (and of tests that parametrize it
  themselves): asyncio's backend with the same options and turboloop's loop
  factory.
- uvloop: for each test class built on ``uvloop._testbase.AIOTestCase``
  (uvloop's suite runs each test mixin once on uvloop, once on asyncio), a
  ``<class>__turboloop`` class whose loops and policy are turboloop's.

With --peers-pair-only only the asyncio cases and their twins run;
--peers-report=FILE records each case's outcome, keyed by the asyncio case
it belongs to.
"""

import types
import warnings

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


# -- uvloop's suite: twins of the AIOTestCase classes ---------------------------------

UVLOOP_TWIN_SUFFIX = "__turboloop"


def _uvloop_aio_base():
    try:
        from uvloop._testbase import AIOTestCase
    except ImportError:
        return None
    return AIOTestCase


def _policy():
    with warnings.catch_warnings():
        # Deprecated on 3.14+, as asyncio's policies are; uvloop's test base
        # installs one in every setUp.
        warnings.simplefilter("ignore", DeprecationWarning)
        return turboloop.EventLoopPolicy()


def _uvloop_twin(name, obj):
    base = _uvloop_aio_base()
    if base is None or not isinstance(obj, type) or obj is base or not issubclass(obj, base):
        return None

    def body(ns):
        ns["new_loop"] = lambda self: turboloop.new_event_loop()
        ns["new_policy"] = lambda self: _policy()
        # The tests ask this to choose between asyncio's behaviour and
        # uvloop's: turboloop's is asyncio's.
        ns["is_asyncio_loop"] = lambda self: True
        ns["__module__"] = obj.__module__
        ns["_turboloop_twin_of"] = name

    twin = types.new_class(name + UVLOOP_TWIN_SUFFIX, (obj,), exec_body=body)
    twin.__qualname__ = twin.__name__
    return twin


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(collector, name, obj):
    result = yield
    twin = _uvloop_twin(name, obj) if result else None
    if twin is None:
        return result
    from _pytest.unittest import UnitTestCase
    # pytest finds a class by its name in the module: the twin goes there,
    # next to its original (in the imported module, not its file).
    setattr(collector.obj, twin.__name__, twin)
    items = result if isinstance(result, list) else [result]
    return items + [UnitTestCase.from_parent(collector, name=twin.__name__)]


def pytest_report_header(config):
    return f"turboloop {turboloop.__version__} from {turboloop.__file__}: adds asyncio{TURBOLOOP_ID_SUFFIX} cases"


# -- selecting and recording ------------------------------------------------------

def pytest_addoption(parser):
    group = parser.getgroup("turboloop peers")
    group.addoption("--peers-pair-only", action="store_true",
                    help="run only the asyncio cases and their turboloop twins")
    group.addoption("--peers-report", metavar="FILE",
                    help="write every case's outcome to FILE (JSON lines)")


def _case(item):
    """(backend, the id of the asyncio case it belongs to) of a test item;
    backend is "asyncio" or "turboloop" for the pairs, something else or
    None for the rest."""
    cls = getattr(item, "cls", None)
    aio = _uvloop_aio_base()
    if cls is not None and aio is not None and issubclass(cls, aio):
        twin_of = cls.__dict__.get("_turboloop_twin_of")
        if twin_of is None:
            return "asyncio", item.nodeid
        return "turboloop", item.nodeid.replace(cls.__name__, twin_of, 1)
    backend = _anyio_backend(item)
    if backend == "turboloop":
        return backend, item.nodeid.replace("asyncio" + TURBOLOOP_ID_SUFFIX, "asyncio")
    return backend, item.nodeid


def _anyio_backend(item):
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
        (keep if _case(item)[0] in ("asyncio", "turboloop") else drop).append(item)
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
    cases = {item.nodeid: _case(item) for item in session.items}
    with open(path, "w") as f:
        for nodeid, outcome in _reports.items():
            backend, case = cases.get(nodeid, (None, nodeid))
            f.write(json.dumps({"nodeid": nodeid, "backend": backend, "case": case,
                                "outcome": outcome, "detail": _details.get(nodeid)}) + "\n")
