/* timerheap.c -- see timerheap.h. */
#include <errno.h>
#include <stdlib.h>

#include "timerheap.h"

static inline int
timer_less(const tl_timer *a, const tl_timer *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void
timerheap_sift_up(tl_timerheap *h, size_t i)
{
    tl_timer t = h->items[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!timer_less(&t, &h->items[parent]))
            break;
        h->items[i] = h->items[parent];
        i = parent;
    }
    h->items[i] = t;
}

static void
timerheap_sift_down(tl_timerheap *h, size_t i)
{
    tl_timer t = h->items[i];
    size_t n = h->len;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n)
            break;
        if (child + 1 < n && timer_less(&h->items[child + 1], &h->items[child]))
            child++;
        if (!timer_less(&h->items[child], &t))
            break;
        h->items[i] = h->items[child];
        i = child;
    }
    h->items[i] = t;
}

void
tl_timerheap_init(tl_timerheap *h)
{
    h->items = NULL;
    h->len = h->cap = 0;
}

void
tl_timerheap_free(tl_timerheap *h)
{
    free(h->items);
    tl_timerheap_init(h);
}

int
tl_timerheap_push(tl_timerheap *h, double when, uint64_t seq, void *data)
{
    if (h->len == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        tl_timer *n = realloc(h->items, cap * sizeof(*n));
        if (n == NULL)
            return ENOMEM;
        h->items = n;
        h->cap = cap;
    }
    h->items[h->len].when = when;
    h->items[h->len].seq = seq;
    h->items[h->len].data = data;
    h->len++;
    timerheap_sift_up(h, h->len - 1);
    return 0;
}

int
tl_timerheap_pop(tl_timerheap *h, tl_timer *out)
{
    if (h->len == 0)
        return 0;
    *out = h->items[0];
    h->len--;
    if (h->len > 0) {
        h->items[0] = h->items[h->len];
        timerheap_sift_down(h, 0);
    }
    return 1;
}

void
tl_timerheap_filter(tl_timerheap *h, int (*keep)(void *data, void *arg),
                    void *arg)
{
    size_t j = 0;
    for (size_t i = 0; i < h->len; i++) {
        if (keep(h->items[i].data, arg))
            h->items[j++] = h->items[i];
    }
    h->len = j;
    /* Floyd's heap construction: sift down every inner node, last first. */
    for (size_t i = h->len / 2; i-- > 0;)
        timerheap_sift_down(h, i);
}
