/* poller.h -- the contract every I/O multiplexer backend implements.
 *
 * This is plain C: it does not include Python.h, so the substrate can be
 * tested on its own (see csrc/test/).  A backend is a table of functions over
 * a private state; the loop sees only readiness masks.
 *
 * Masks: TL_POLL_READ and TL_POLL_WRITE.  A hang-up or error on a file
 * descriptor is reported as readiness for every direction that was asked
 * for, so the callback that next touches the fd sees the error, as with
 * asyncio's selectors.
 */
#ifndef TL_POLLER_H
#define TL_POLLER_H

#include <stdint.h>

#define TL_POLL_READ  1u
#define TL_POLL_WRITE 2u

typedef struct tl_poll_event {
    int fd;
    unsigned mask;
} tl_poll_event;

typedef struct tl_poller tl_poller;

typedef struct tl_poller_ops {
    const char *name;
    /* Each returns 0 on success or an errno value. */
    int (*open)(tl_poller **out);
    void (*close)(tl_poller *p);
    /* Change the interest for fd from old_mask to new_mask (either may be
     * 0, meaning "not registered"). */
    int (*modify)(tl_poller *p, int fd, unsigned old_mask, unsigned new_mask);
    /* Wait at most timeout_ns nanoseconds (-1: forever, 0: don't block).
     * Returns the number of events stored in evs, or -errno. */
    int (*wait)(tl_poller *p, tl_poll_event *evs, int max_events,
                int64_t timeout_ns);
    /* Re-create kernel state in a forked child.  Registrations are lost and
     * must be replayed by the caller. */
    int (*reinit)(tl_poller *p);
} tl_poller_ops;

/* The object every backend's private state begins with. */
struct tl_poller {
    const tl_poller_ops *ops;
};

extern const tl_poller_ops tl_poller_epoll_ops;
extern const tl_poller_ops tl_poller_poll_ops;

/* Pick a backend by name ("epoll", "poll"), or the platform's best when name
 * is NULL or empty.  Returns NULL for an unknown or unavailable name. */
const tl_poller_ops *tl_poller_find(const char *name);

static inline int tl_poller_open(const tl_poller_ops *ops, tl_poller **out)
{ return ops->open(out); }
static inline void tl_poller_close(tl_poller *p) { p->ops->close(p); }
static inline int tl_poller_modify(tl_poller *p, int fd, unsigned o, unsigned n)
{ return p->ops->modify(p, fd, o, n); }
static inline int tl_poller_wait(tl_poller *p, tl_poll_event *evs, int max,
                                 int64_t timeout_ns)
{ return p->ops->wait(p, evs, max, timeout_ns); }
static inline int tl_poller_reinit(tl_poller *p) { return p->ops->reinit(p); }
static inline const char *tl_poller_name(const tl_poller *p)
{ return p->ops->name; }

#endif /* TL_POLLER_H */
