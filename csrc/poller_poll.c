/* poller_poll.c -- the portable poll(2) backend.
 *
 * Selected with TURBOLOOP_POLLER=poll so the portable path is exercised on
 * Linux too.  Quirks this file works around:
 *  a) poll() reports POLLNVAL for a closed descriptor; it is reported as
 *     readiness in the registered directions so the owner finds out from its
 *     own syscall (and removes it), instead of the loop spinning silently.
 *  b) POLLHUP/POLLERR come without being asked for; they are folded into the
 *     registered directions as in the epoll backend.
 *  c) The pollfd array is kept dense: a slot index per fd allows O(1)
 *     modification, and removal moves the last slot into the hole.
 *  d) poll() accepts any number and reports POLLNVAL later; registering
 *     checks with fcntl() that the fd is open, so a bad fd fails with EBADF
 *     at once, as with epoll, and no table grows for it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "poller.h"

typedef struct {
    tl_poller base;
    struct pollfd *fds;     /* dense array of registered descriptors */
    int nfds, cap;
    int *slot;              /* fd -> index in fds, or -1 */
    int slot_cap;
} poll_state;

static int
poll_open(tl_poller **out)
{
    poll_state *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return ENOMEM;
    s->base.ops = &tl_poller_poll_ops;
    *out = &s->base;
    return 0;
}

static void
poll_close(tl_poller *p)
{
    poll_state *s = (poll_state *)p;
    free(s->fds);
    free(s->slot);
    free(s);
}

static int
poll_grow_slots(poll_state *s, int fd)
{
    /* Powers of two from 64, computed in size_t so that no fd can make the
     * doubling wrap. */
    size_t cap = s->slot_cap ? (size_t)s->slot_cap : 64;
    int *n;
    while (cap <= (size_t)fd)
        cap *= 2;
    if (cap > (size_t)INT_MAX)
        cap = (size_t)INT_MAX;
    if (cap > SIZE_MAX / sizeof(int))
        return ENOMEM;
    n = realloc(s->slot, cap * sizeof(int));
    if (n == NULL)
        return ENOMEM;
    for (size_t i = (size_t)s->slot_cap; i < cap; i++)
        n[i] = -1;
    s->slot = n;
    s->slot_cap = (int)cap;
    return 0;
}

static int
poll_modify(tl_poller *p, int fd, unsigned old_mask, unsigned new_mask)
{
    poll_state *s = (poll_state *)p;
    short events = 0;
    int idx;
    (void)old_mask;

    if (fd < 0)
        return EBADF;
    if (new_mask != 0 && fcntl(fd, F_GETFD) < 0)
        return errno;                                     /* quirk d */
    if (fd >= s->slot_cap) {
        if (new_mask == 0)
            return 0;
        if (poll_grow_slots(s, fd) != 0)
            return ENOMEM;
    }
    idx = s->slot[fd];
    if (new_mask & TL_POLL_READ)
        events |= POLLIN;
    if (new_mask & TL_POLL_WRITE)
        events |= POLLOUT;
    if (new_mask == 0) {
        if (idx >= 0) {                                   /* quirk c */
            int last = --s->nfds;
            if (idx != last) {
                s->fds[idx] = s->fds[last];
                s->slot[s->fds[idx].fd] = idx;
            }
            s->slot[fd] = -1;
        }
        return 0;
    }
    if (idx < 0) {
        if (s->nfds == s->cap) {
            int cap = s->cap ? s->cap * 2 : 64;
            struct pollfd *n = realloc(s->fds, (size_t)cap * sizeof(*n));
            if (n == NULL)
                return ENOMEM;
            s->fds = n;
            s->cap = cap;
        }
        idx = s->nfds++;
        s->fds[idx].fd = fd;
        s->slot[fd] = idx;
    }
    s->fds[idx].events = events;
    s->fds[idx].revents = 0;
    return 0;
}

static int
poll_wait_events(tl_poller *p, tl_poll_event *evs, int max_events,
                 int64_t timeout_ns)
{
    poll_state *s = (poll_state *)p;
    int timeout_ms, n, i, out = 0;

    if (timeout_ns < 0)
        timeout_ms = -1;
    else if (timeout_ns > (int64_t)24 * 3600 * 1000000000LL)
        timeout_ms = 24 * 3600 * 1000;
    else
        timeout_ms = (int)((timeout_ns + 999999) / 1000000);
    n = poll(s->fds, (nfds_t)s->nfds, timeout_ms);
    if (n < 0)
        return -errno;
    for (i = 0; i < s->nfds && out < max_events && n > 0; i++) {
        short re = s->fds[i].revents;
        short want = s->fds[i].events;
        unsigned mask = 0;
        if (re == 0)
            continue;
        n--;
        if (re & (POLLIN | POLLHUP | POLLERR | POLLNVAL))       /* a, b */
            mask |= (want & POLLIN) ? TL_POLL_READ : 0;
        if (re & (POLLOUT | POLLHUP | POLLERR | POLLNVAL))
            mask |= (want & POLLOUT) ? TL_POLL_WRITE : 0;
        if (mask == 0)
            continue;
        evs[out].fd = s->fds[i].fd;
        evs[out].mask = mask;
        out++;
    }
    return out;
}

static int
poll_reinit(tl_poller *p)
{
    /* poll() keeps no kernel state, so a forked child can keep using the
     * array; the caller's replay is harmless. */
    (void)p;
    return 0;
}

const tl_poller_ops tl_poller_poll_ops = {
    "poll", poll_open, poll_close, poll_modify, poll_wait_events, poll_reinit,
};
