"""What a child made with os.fork() does to the turboloop loops it inherits.

A forked child shares its parent's open file descriptions, and with them
the kernel objects a loop is made of: the epoll instance, the wake-up
eventfd and the socket pair that signal.set_wakeup_fd() writes to.  Left
alone, the child's copy of a loop would act on the parent's: closing a
transport in the child would drop the parent's epoll registration, and a
signal delivered to the child would wake the parent's loop.

So, after a fork, in the child:

- every live loop gets a poller and a wake-up fd of its own, with the fds it
  watches registered again (Loop._reinit_after_fork, in C), and a signal
  socket pair of its own;
- no loop is running any more in this thread, and the signal wake-up fd is
  unset, as asyncio (3.12+) does in its own fork hook; the child can then
  create and run a new loop (asyncio.run() included).
"""

import os
import signal
import weakref

from asyncio import events

__all__ = ("track",)

_loops = weakref.WeakSet()


def track(loop):
    """Remember loop, to re-initialise it in a forked child."""
    _loops.add(loop)


def _after_fork_in_child():
    events._set_running_loop(None)
    mine = set()
    for loop in list(_loops):
        csock = getattr(loop, "_csock", None)
        if csock is not None:
            mine.add(csock.fileno())
        try:
            loop._after_fork()
        except Exception:
            # A loop that cannot be re-initialised is closed rather than
            # left sharing its parent's kernel objects.
            try:
                loop._close()
            except Exception:
                pass
    try:
        old = signal.set_wakeup_fd(-1)
    except (ValueError, OSError):
        return
    if old != -1 and old not in mine:
        # Not a turboloop loop's: leave it as it was.
        try:
            signal.set_wakeup_fd(old)
        except (ValueError, OSError):
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
