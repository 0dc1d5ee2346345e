/* Poller backends: readiness, interest changes, hang-up, timeouts. */
#define _POSIX_C_SOURCE 200809L
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../poller.h"
#include "check.h"

static int64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void
exercise(const char *name)
{
    const tl_poller_ops *ops = tl_poller_find(name);
    tl_poller *p;
    tl_poll_event ev[8];
    int fds[2], n;
    int64_t t0;

    CHECK(ops != NULL);
    if (ops == NULL)
        return;
    CHECK(tl_poller_open(ops, &p) == 0);
    CHECK(pipe(fds) == 0);

    /* Nothing ready: a zero timeout returns at once, a short one waits. */
    CHECK(tl_poller_modify(p, fds[0], 0, TL_POLL_READ) == 0);
    CHECK(tl_poller_wait(p, ev, 8, 0) == 0);
    t0 = now_ns();
    CHECK(tl_poller_wait(p, ev, 8, 20 * 1000000LL) == 0);
    CHECK(now_ns() - t0 >= 19 * 1000000LL);

    /* Readable after a write. */
    CHECK(write(fds[1], "x", 1) == 1);
    n = tl_poller_wait(p, ev, 8, 1000000000LL);
    CHECK(n == 1 && ev[0].fd == fds[0] && (ev[0].mask & TL_POLL_READ));

    /* Writable interest on the other end. */
    CHECK(tl_poller_modify(p, fds[1], 0, TL_POLL_WRITE) == 0);
    n = tl_poller_wait(p, ev, 8, 0);
    CHECK(n == 2);

    /* Dropping interest silences the fd. */
    CHECK(tl_poller_modify(p, fds[0], TL_POLL_READ, 0) == 0);
    CHECK(tl_poller_modify(p, fds[1], TL_POLL_WRITE, 0) == 0);
    CHECK(tl_poller_wait(p, ev, 8, 0) == 0);

    /* A closed writer wakes the reader (hang-up folded into READ). */
    CHECK(tl_poller_modify(p, fds[0], 0, TL_POLL_READ) == 0);
    close(fds[1]);
    n = tl_poller_wait(p, ev, 8, 1000000000LL);
    CHECK(n == 1 && (ev[0].mask & TL_POLL_READ));
    CHECK(tl_poller_modify(p, fds[0], TL_POLL_READ, 0) == 0);
    close(fds[0]);

    /* Removing an fd that is already closed is not an error. */
    CHECK(pipe(fds) == 0);
    CHECK(tl_poller_modify(p, fds[0], 0, TL_POLL_READ) == 0);
    close(fds[0]);
    close(fds[1]);
    CHECK(tl_poller_modify(p, fds[0], TL_POLL_READ, 0) == 0);

    CHECK(tl_poller_reinit(p) == 0);
    tl_poller_close(p);
}

int
main(void)
{
    exercise(NULL);
    exercise("poll");
#ifdef __linux__
    exercise("epoll");
#endif
    CHECK(tl_poller_find("no-such-backend") == NULL);
    return check_report("poller");
}
