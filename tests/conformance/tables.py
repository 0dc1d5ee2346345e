"""What of CPython's test.test_asyncio the harness runs, in which group, and
what it leaves out, each with the reason.

Names here are module and class names of CPython's suite.  A name that does
not exist in the running version is simply not matched, so one table serves
every supported Python.
"""

import re

GROUPS = ("future-task", "loop-generic", "network")

# Phases.  A "types" job runs generated subclasses of CPython's
# Task/Future-parameterized test classes with the target's Task and Future
# plugged in, on whatever loop those tests make for themselves (mostly
# asyncio's own test loop): the C types must work on a stock loop too.  A
# "loops" job runs a module's loop-generic classes with every loop they create
# being a target loop.
TYPES = "types"
LOOPS = "loops"

# Modules whose loop-generic classes run in the "loops" phase, group
# loop-generic.  The value says what part of the module that is.
LOOP_GENERIC_MODULES = {
    "test_events": "EventLoopTestsMixin as TurboLoopEventLoopTests, handles, policies, get_event_loop",
    "test_taskgroups": "whole module",
    "test_timeouts": "whole module",
    "test_waitfor": "whole module",
    "test_locks": "whole module",
    "test_queues": "whole module",
    "test_pep492": "whole module",
    "test_context": "whole module",
    "test_runners": "whole module",
    "test_threads": "whole module",
    "test_staggered": "whole module",
    "test_base_events": "only the tests in SELECTIONS; the rest drives BaseEventLoop internals",
    "test_tasks": "classes not parameterized by Task/Future (gather, sleep, run_coroutine_threadsafe, ...)",
    "test_futures": "classes not parameterized by Future (duck-typed futures)",
    "test_futures2": "classes not parameterized by Task (reprs)",
    "test_eager_task_factory": "classes not parameterized by Task (default factory with eager_start)",
}

# Modules that need the transports (sockets, pipes, TLS, child processes):
# group network, kept apart so that missing I/O support does not drag the
# loop-generic rate.
NETWORK_MODULES = {
    "test_streams": "whole module",
    "test_sock_lowlevel": "BaseSockTestsMixin as TurboLoopEventLoopTests",
    "test_server": "BaseStartServer as TurboLoopStartServerTests, server objects",
    "test_server_context": "whole module",
    "test_sendfile": "SendfileTestsBase as TurboLoopEventLoopTests",
    "test_buffered_proto": "BaseTestBufferedProtocol as TurboLoopBufferedProtocolTests",
    "test_protocols": "whole module",
    "test_ssl": "whole module",
    "test_sslproto": "BaseStartTLS as TurboLoopStartTLSTests",
    "test_subprocess": "whole module (child processes and their pipes)",
}

# Modules the "loops" phase leaves out.  Their Task/Future-parameterized
# classes, if any, still run in the "types" phase.
EXCLUDED_MODULES = {
    "test_selector_events": "tests asyncio's selector loop and transports through their private attributes",
    "test_proactor_events": "Windows proactor loop internals, driven with mocks",
    "test_windows_events": "Windows only",
    "test_windows_utils": "Windows only",
    "test_unix_events": "selector loop internals: signal wake-up fd, pipe transport classes, child watchers, fork hooks",
    "test_transports": "asyncio's abstract transport base classes; no event loop involved",
    "test_tools": "formatting of `python -m asyncio ps/pstree`, which reads another process; no event loop involved",
    "test_graph": "Task/Future-parameterized only (runs in the types phase)",
    "test_free_threading": "Task/Future-parameterized only (runs in the types phase)",
}

# Mixins (by class name) of the Task/Future-parameterized families.  The
# "loops" phase skips every class with one of these in its MRO: the types
# phase covers them with the target's types, and CPython's own C and Python
# variants of them test asyncio's types on asyncio's test loop.
TYPE_FAMILIES = {
    "test_tasks": {"BaseTaskTests", "BaseTaskIntrospectionTests", "BaseCurrentLoopTests"},
    "test_futures": {"BaseFutureTests", "BaseFutureDoneCallbackTests", "BaseFutureInheritanceTests"},
    "test_futures2": {"FutureTests"},
    "test_eager_task_factory": {"EagerTaskFactoryLoopTests", "BaseTaskCountingTests"},
    "test_graph": {"CallStackTestBase"},
    "test_free_threading": {"TestFreeThreading"},
}

# Modules of which the "loops" phase runs only the listed classes ("Class")
# or tests ("Class.test_name").
SELECTIONS = {
    "test_base_events": {
        # These make their loops with asyncio.new_event_loop(); the rest of
        # the module pokes at BaseEventLoop's _selector, _ready and friends.
        "RunningLoopTests",
        "BaseEventLoopTests.test_create_task_error_closes_coro",
        "BaseEventLoopTests.test_create_named_task_with_default_factory",
        "BaseEventLoopTests.test_create_named_task_with_custom_factory",
    },
}

# Classes the "loops" phase leaves out, by (module, class name).
EXCLUDED_CLASSES = {}

# Classes that make asyncio.sslproto.SSLProtocol by hand (with mocked SSL
# objects and transports); the harness runs a TurboLoop subclass in which
# that name is the target's TLS protocol class.
REBIND_SSL_PROTOCOL = {
    ("test_sslproto", "SslProtoHandshakeTests"): "makes sslproto.SSLProtocol by hand",
}

# Loop-generic classes that hard-code asyncio.SelectorEventLoop where they
# make their loop; the harness runs a TurboLoop subclass in which that name
# is the target's loop class.
REBIND_STOCK_LOOP = {
    ("test_events", "UnixPipeObjectSupportTests"): "builds asyncio.SelectorEventLoop() in setUp",
}

# Single tests the "loops" phase leaves out, by (module, "Class.test_name").
EXCLUDED_TESTS = {
    ("test_ssl", "TestSSL.test_remote_shutdown_receives_trailing_data_on_slow_socket"):
        "fakes a full socket buffer by patching asyncio's _SelectorSocketTransport internals "
        "(reads _read_ready_cb, swaps the transport's _sock for a wrapper)",
    ("test_events", "TurboLoopEventLoopTests.test_timeout_rounding"):
        "counts calls of the loop's _run_once through the instance attribute; turboloop's run_forever "
        "iterates in C and never looks it up, so the count is 0 and a pass would mean nothing",
    ("test_runners", "RunTests.test_loop_factory_default_event_loop"):
        "asserts that asyncio.EventLoop is the stock selector loop, which the harness replaces",
}

# Tests left out by the mixin that defines them, by (module, mixin name).
EXCLUDED_MIXINS = {}

# Tests of a loop-generic module that belong to the network group, by
# (module, defining class name) -> pattern on the test name.
NETWORK_TESTS = {
    ("test_events", "EventLoopTestsMixin"): re.compile(
        r"connection|connect_accepted|server|ssl|datagram|pipe|pty|fifo|writelines|prompt_cancellation"),
    # Pipe transports over character devices and FIFOs (3.14+).
    ("test_events", "UnixPipeObjectSupportTests"): re.compile(r""),
    # Server objects, made with loop.create_server().
    ("test_events", "TestServer"): re.compile(r""),
    # Child processes and their pipes.
    ("test_events", "SubprocessTestsMixin"): re.compile(r""),
}

# Method names through which CPython's suite asks a test class for the loop
# implementation it is about, and the loop classes whose appearance in such a
# method marks the class as a per-implementation variant.  The harness
# replaces all such variants of one mixin combination by one TurboLoop class.
LOOP_METHODS = ("create_event_loop", "new_loop")
STOCK_LOOP_NAMES = frozenset({"SelectorEventLoop", "ProactorEventLoop", "_UnixSelectorEventLoop"})

# Words dropped from a variant class name to name its TurboLoop replacement
# (EPollEventLoopTests -> TurboLoopEventLoopTests).
LOOP_VARIANT_WORDS = re.compile(r"Selector|Select|EPoll|Epoll|Poll|Kqueue|Proactor")

# Relative cost of a job, to start the long ones first.
JOB_WEIGHTS = {
    ("test_tasks", TYPES): 12,
    ("test_events", LOOPS): 10,
    ("test_ssl", LOOPS): 9,
    ("test_subprocess", LOOPS): 8,
    ("test_taskgroups", LOOPS): 6,
    ("test_eager_task_factory", TYPES): 4,
    ("test_tasks", LOOPS): 4,
    ("test_futures", TYPES): 3,
    ("test_streams", LOOPS): 3,
    ("test_sendfile", LOOPS): 3,
    ("test_sock_lowlevel", LOOPS): 3,
    ("test_free_threading", TYPES): 3,
    ("test_graph", TYPES): 2,
}


def loop_phase_group(module):
    """The group of a module's "loops" phase, or None if it has none."""
    if module in NETWORK_MODULES:
        return "network"
    if module in LOOP_GENERIC_MODULES:
        return "loop-generic"
    return None


def module_status(module):
    """How the harness treats a module in the "loops" phase, for listings."""
    group = loop_phase_group(module)
    if group:
        return group
    if module in EXCLUDED_MODULES:
        return "excluded"
    return "unclassified"
