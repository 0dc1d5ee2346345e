"""Differential fuzzing: turboloop against stock asyncio.

hypothesis draws random programs; each program runs once on a fresh asyncio
loop and once on a fresh turboloop loop, and what each run observes is
recorded as a trace (see common.py).  The traces must be equal: the same
results and exception types and messages for every call, the same
callbacks in the same order, the same calls of the exception handler, the
same warnings, and no run of the loop frozen (every run_forever() is
bounded by an alarm).

Families:
  loop_programs       the loop API with numbers of every kind, fds of every
                      range, sockets closed and fd numbers reused, callbacks
                      that raise or re-enter the loop, stop/close anywhere
  transport_programs  a stream transport under a protocol (plain or
                      buffered) that pauses, resumes, writes, closes or
                      aborts from inside its callbacks, and a peer that
                      sends, shuts down, drains or closes

Where asyncio's own result is undefined (the order of timers with equal
deadlines, a NaN deadline in its heap) the programs avoid it or compare
against a stated model; each family's docstring says how.

Run: python -m tests.fuzz --minutes 30 (see __main__.py); the test suite
runs a few examples of each family (tests/test_fuzz.py).
"""
