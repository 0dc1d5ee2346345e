/* poller_epoll.c -- the Linux epoll(7) backend.
 *
 * Quirks this file works around:
 *  a) epoll reports EPOLLHUP and EPOLLERR whether or not they were asked for;
 *     they are folded into the directions the caller registered, so a reader
 *     wakes up and sees EOF or the error from its own syscall.
 *  b) epoll_ctl(ADD) on a regular file fails with EPERM; the error is handed
 *     back so the loop raises it from add_reader(), as asyncio does.
 *  c) A file descriptor closed while still registered silently leaves the
 *     interest set; EPOLL_CTL_DEL then fails with EBADF or ENOENT, which is
 *     not an error for the caller, who wanted it gone anyway.  A change of
 *     interest for such an fd fails (EBADF, or ENOENT once its number went
 *     to another file) and the error is handed back, as Python's selectors
 *     do: retrying as an ADD would start watching whatever file reuses the
 *     number, on behalf of the old file's watchers.
 *  d) epoll_wait takes milliseconds; timeouts are rounded up so the loop
 *     never wakes before its next timer and spins.
 */
#include "config.h"

#if TL_HAVE_EPOLL

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "poller.h"

#define EPOLL_BATCH 256

typedef struct {
    tl_poller base;
    int epfd;
    struct epoll_event events[EPOLL_BATCH];
} epoll_state;

static int
epoll_open(tl_poller **out)
{
    epoll_state *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return ENOMEM;
    s->base.ops = &tl_poller_epoll_ops;
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0) {
        int err = errno;
        free(s);
        return err;
    }
    *out = &s->base;
    return 0;
}

static void
epoll_close(tl_poller *p)
{
    epoll_state *s = (epoll_state *)p;
    if (s->epfd >= 0)
        close(s->epfd);
    free(s);
}

static uint32_t
epoll_mask(unsigned mask)
{
    uint32_t ev = 0;
    if (mask & TL_POLL_READ)
        ev |= EPOLLIN;
    if (mask & TL_POLL_WRITE)
        ev |= EPOLLOUT;
    return ev;
}

static int
epoll_modify(tl_poller *p, int fd, unsigned old_mask, unsigned new_mask)
{
    epoll_state *s = (epoll_state *)p;
    struct epoll_event ev = {0};
    int op;

    if (old_mask == new_mask)
        return 0;
    if (new_mask == 0) {
        if (epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, &ev) < 0
            && errno != EBADF && errno != ENOENT)
            return errno;
        return 0;
    }
    ev.events = epoll_mask(new_mask);
    ev.data.fd = fd;
    op = old_mask == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (epoll_ctl(s->epfd, op, fd, &ev) < 0)
        return errno;           /* quirk c */
    return 0;
}

static int
epoll_wait_events(tl_poller *p, tl_poll_event *evs, int max_events,
                  int64_t timeout_ns)
{
    epoll_state *s = (epoll_state *)p;
    int timeout_ms, n, i;

    if (timeout_ns < 0)
        timeout_ms = -1;
    else if (timeout_ns > (int64_t)24 * 3600 * 1000000000LL)
        timeout_ms = 24 * 3600 * 1000;
    else
        timeout_ms = (int)((timeout_ns + 999999) / 1000000);   /* quirk d */
    if (max_events > EPOLL_BATCH)
        max_events = EPOLL_BATCH;
    n = epoll_wait(s->epfd, s->events, max_events, timeout_ms);
    if (n < 0)
        return -errno;
    for (i = 0; i < n; i++) {
        uint32_t e = s->events[i].events;
        unsigned mask = 0;
        /* Quirk a: anything but "only writable" wakes readers, anything but
         * "only readable" wakes writers. */
        if (e & ~(uint32_t)EPOLLOUT)
            mask |= TL_POLL_READ;
        if (e & ~(uint32_t)EPOLLIN)
            mask |= TL_POLL_WRITE;
        evs[i].fd = s->events[i].data.fd;
        evs[i].mask = mask;
    }
    return n;
}

static int
epoll_reinit(tl_poller *p)
{
    epoll_state *s = (epoll_state *)p;
    int fd = epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0)
        return errno;
    close(s->epfd);
    s->epfd = fd;
    return 0;
}

const tl_poller_ops tl_poller_epoll_ops = {
    "epoll", epoll_open, epoll_close, epoll_modify, epoll_wait_events,
    epoll_reinit,
};

#endif /* TL_HAVE_EPOLL */
