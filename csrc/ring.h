/* ring.h -- the ready queue: a growable ring buffer of small entries.
 *
 * Plain C, no Python.h.  An entry is a kind tag and three pointers whose
 * meaning the kind defines (see loop.h); the ring neither owns nor inspects
 * them.  It also carries a 32-bit stamp that it does not set: a profiled
 * loop writes there when the entry was queued (see profile.c).  The loop
 * records the length at the start of its run phase and pops exactly that
 * many, so entries pushed while callbacks run wait for the next iteration,
 * as in asyncio's _run_once.
 */
#ifndef TL_RING_H
#define TL_RING_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct tl_entry {
    int kind;
    uint32_t stamp;   /* set by the loop's profiler only; fills padding */
    void *a, *b, *c;
} tl_entry;

typedef struct tl_ring {
    tl_entry *buf;
    size_t head;      /* index of the oldest entry */
    size_t len;
    size_t cap;       /* always a power of two, or 0 */
} tl_ring;

static inline void
tl_ring_init(tl_ring *r)
{
    r->buf = NULL;
    r->head = r->len = r->cap = 0;
}

static inline void
tl_ring_free(tl_ring *r)
{
    free(r->buf);
    tl_ring_init(r);
}

static inline int
tl_ring_grow(tl_ring *r)
{
    size_t cap = r->cap ? r->cap * 2 : 256;
    tl_entry *n = malloc(cap * sizeof(*n));
    if (n == NULL)
        return ENOMEM;
    /* Unwrap: copy the oldest part first so indices start at 0 again. */
    for (size_t i = 0; i < r->len; i++)
        n[i] = r->buf[(r->head + i) & (r->cap - 1)];
    free(r->buf);
    r->buf = n;
    r->head = 0;
    r->cap = cap;
    return 0;
}

/* Returns 0, or ENOMEM with the ring unchanged. */
static inline int
tl_ring_push(tl_ring *r, int kind, void *a, void *b, void *c)
{
    tl_entry *e;
    if (r->len == r->cap && tl_ring_grow(r) != 0)
        return ENOMEM;
    e = &r->buf[(r->head + r->len) & (r->cap - 1)];
    e->kind = kind;
    e->a = a;
    e->b = b;
    e->c = c;
    r->len++;
    return 0;
}

/* Returns 0 when empty. */
static inline int
tl_ring_pop(tl_ring *r, tl_entry *out)
{
    if (r->len == 0)
        return 0;
    *out = r->buf[r->head];
    r->head = (r->head + 1) & (r->cap - 1);
    r->len--;
    return 1;
}

static inline size_t tl_ring_len(const tl_ring *r) { return r->len; }

/* The i-th oldest entry, for traversal; i < len. */
static inline tl_entry *
tl_ring_at(tl_ring *r, size_t i)
{
    return &r->buf[(r->head + i) & (r->cap - 1)];
}

#endif /* TL_RING_H */
