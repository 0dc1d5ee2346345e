"""The implementation under test: turboloop, or asyncio's own C Task/Future
and default loop as a self-check of the harness's plumbing (which should then
pass about everything CPython's own run passes)."""

import os

ENV_VAR = "TURBOLOOP_CONFORMANCE_TARGET"
NAMES = ("turboloop", "asyncio")


def default_name():
    return os.environ.get(ENV_VAR, "turboloop") or "turboloop"


class Target:
    """Task and Future types, a loop factory, the loop class and the event
    loop policy class (which the harness subclasses to count the loops it
    makes)."""

    def __init__(self, name, Task, Future, new_loop, loop_class, policy_class, version="",
                 ssl_protocol=None):
        self.name = name
        self.Task = Task
        self.Future = Future
        self.new_loop = new_loop
        self.loop_class = loop_class
        self.policy_class = policy_class
        self.version = version
        # The TLS protocol class the loop uses (asyncio.sslproto.SSLProtocol
        # for asyncio's loops).
        if ssl_protocol is None:
            from asyncio import sslproto
            ssl_protocol = sslproto.SSLProtocol
        self.ssl_protocol = ssl_protocol


def load(name):
    """Import the target named `name`; raises ImportError if it is missing."""
    if name == "turboloop":
        import warnings

        import turboloop

        with warnings.catch_warnings():
            # turboloop.EventLoopPolicy is deprecated on 3.14+, as asyncio's
            # policies are; the suite still goes through it there.
            warnings.simplefilter("ignore", DeprecationWarning)
            policy_class = turboloop.EventLoopPolicy
        from turboloop import _sslproto

        return Target("turboloop", turboloop.Task, turboloop.Future,
                      turboloop.new_event_loop, turboloop.Loop, policy_class,
                      getattr(turboloop, "__version__", ""), _sslproto.SSLProtocol)
    if name == "asyncio":
        import asyncio
        from asyncio import futures, tasks

        # The platform's default loop class, as asyncio.new_event_loop() makes
        # it under the default policy (asyncio.EventLoop exists from 3.13 on).
        from asyncio import unix_events

        loop_class = getattr(asyncio, "EventLoop", None) or asyncio.SelectorEventLoop
        return Target("asyncio", tasks._CTask, futures._CFuture, loop_class, loop_class,
                      unix_events._UnixDefaultEventLoopPolicy)
    raise ValueError(f"unknown target {name!r}; choose one of {', '.join(NAMES)}")

