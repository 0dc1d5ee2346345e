/* timerheap.h -- a binary min-heap of timers ordered by (deadline, sequence).
 *
 * Plain C, no Python.h.  The sequence number is a counter the caller bumps
 * for every timer it adds, so timers with equal deadlines pop in the order
 * they were added, as asyncio's heapq of TimerHandles does.  The heap does
 * not own the data pointers; compaction hands each dropped pointer back to
 * the caller.
 */
#ifndef TL_TIMERHEAP_H
#define TL_TIMERHEAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct tl_timer {
    double when;       /* deadline, seconds on the caller's clock; never NaN */
    uint64_t seq;      /* tie-breaker: insertion order */
    void *data;
} tl_timer;

typedef struct tl_timerheap {
    tl_timer *items;
    size_t len, cap;
} tl_timerheap;

void tl_timerheap_init(tl_timerheap *h);
void tl_timerheap_free(tl_timerheap *h);
/* Returns 0, or ENOMEM (the heap is unchanged then). */
int tl_timerheap_push(tl_timerheap *h, double when, uint64_t seq, void *data);
/* Remove the earliest timer into *out; returns 0 when the heap is empty. */
int tl_timerheap_pop(tl_timerheap *h, tl_timer *out);
/* Keep the timers for which keep(data, arg) returns non-zero and restore the
 * heap order; keep() may release the data of the ones it drops.  O(n). */
void tl_timerheap_filter(tl_timerheap *h, int (*keep)(void *data, void *arg),
                         void *arg);

/* The data of the last timer of the heap's array, NULL when it is empty.
 * That timer can be dropped at once: the rest is still a heap.  A timer
 * pushed with the latest deadline so far stays there, so a timeout armed
 * and cancelled before the next one is armed leaves no trace. */
static inline void *tl_timerheap_last(const tl_timerheap *h)
{ return h->len ? h->items[h->len - 1].data : NULL; }
static inline void tl_timerheap_drop_last(tl_timerheap *h)
{ if (h->len) h->len--; }

static inline size_t tl_timerheap_len(const tl_timerheap *h) { return h->len; }
static inline const tl_timer *tl_timerheap_peek(const tl_timerheap *h)
{ return h->len ? &h->items[0] : NULL; }

#endif /* TL_TIMERHEAP_H */
