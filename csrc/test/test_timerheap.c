/* Timer heap: ordering by deadline, FIFO for equal deadlines, filtering. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "../timerheap.h"
#include "check.h"

static int
keep_odd(void *data, void *arg)
{
    (void)arg;
    return ((intptr_t)data & 1) != 0;
}

int
main(void)
{
    tl_timerheap h;
    tl_timer t;
    uint64_t seq = 0;
    double last;
    int ok;

    tl_timerheap_init(&h);
    CHECK(tl_timerheap_peek(&h) == NULL);
    CHECK(tl_timerheap_pop(&h, &t) == 0);

    /* Random deadlines come out sorted. */
    srand(42);
    for (intptr_t i = 0; i < 10000; i++)
        CHECK(tl_timerheap_push(&h, rand() % 1000, seq++, (void *)i) == 0);
    CHECK(tl_timerheap_len(&h) == 10000);
    last = -1;
    ok = 1;
    uint64_t last_seq = 0;
    while (tl_timerheap_pop(&h, &t)) {
        if (t.when < last || (t.when == last && t.seq < last_seq))
            ok = 0;
        last = t.when;
        last_seq = t.seq;
    }
    CHECK(ok);

    /* Equal deadlines pop in insertion order. */
    for (intptr_t i = 0; i < 100; i++)
        tl_timerheap_push(&h, 7, seq++, (void *)i);
    ok = 1;
    for (intptr_t i = 0; i < 100; i++) {
        tl_timerheap_pop(&h, &t);
        if ((intptr_t)t.data != i)
            ok = 0;
    }
    CHECK(ok);

    /* Filtering keeps the heap property and drops what it should. */
    for (intptr_t i = 0; i < 1000; i++)
        tl_timerheap_push(&h, 1000 - i, seq++, (void *)i);
    tl_timerheap_filter(&h, keep_odd, NULL);
    CHECK(tl_timerheap_len(&h) == 500);
    last = -1;
    ok = 1;
    while (tl_timerheap_pop(&h, &t)) {
        if (t.when < last || ((intptr_t)t.data & 1) == 0)
            ok = 0;
        last = t.when;
    }
    CHECK(ok);

    /* The last timer of the array can be dropped and the rest still pops
     * in order; one with the latest deadline so far is the last. */
    for (intptr_t i = 0; i < 100; i++) {
        tl_timerheap_push(&h, (double)((i * 37) % 101), seq++, (void *)i);
        if (i % 3 == 0)
            tl_timerheap_drop_last(&h);
    }
    tl_timerheap_push(&h, 1e9, seq++, (void *)1000);
    CHECK(tl_timerheap_last(&h) == (void *)1000);
    tl_timerheap_drop_last(&h);
    CHECK(tl_timerheap_len(&h) == 66);
    last = -1;
    ok = 1;
    while (tl_timerheap_pop(&h, &t)) {
        if (t.when < last)
            ok = 0;
        last = t.when;
    }
    CHECK(ok);
    CHECK(tl_timerheap_last(&h) == NULL);

    /* Deadlines at the ends of the double range keep their order: nothing
     * saturates to a shared value. */
    {
        static const double edge[] = {INFINITY, 1e300, 9.3e9, 0.5, -0.5,
                                      -9.3e9, -1e12, -1e300, -INFINITY};
        size_t n = sizeof(edge) / sizeof(edge[0]);
        for (size_t i = 0; i < n; i++)
            tl_timerheap_push(&h, edge[i], seq++, (void *)(intptr_t)i);
        ok = 1;
        for (size_t i = n; i-- > 0;) {
            tl_timerheap_pop(&h, &t);
            if ((intptr_t)t.data != (intptr_t)i || t.when != edge[i])
                ok = 0;
        }
        CHECK(ok);
    }
    tl_timerheap_free(&h);
    return check_report("timerheap");
}
