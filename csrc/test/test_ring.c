/* Ready ring: FIFO order across growth and wrap-around. */
#include <stdint.h>

#include "../ring.h"
#include "check.h"

int
main(void)
{
    tl_ring r;
    tl_entry e;
    intptr_t next_out = 0, next_in = 0;
    int ok = 1;

    tl_ring_init(&r);
    CHECK(tl_ring_pop(&r, &e) == 0);
    /* Interleave pushes and pops so head wraps while the ring grows. */
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 300; i++) {
            CHECK(tl_ring_push(&r, 1, (void *)next_in, NULL, NULL) == 0);
            next_in++;
        }
        for (int i = 0; i < 250; i++) {
            if (!tl_ring_pop(&r, &e) || (intptr_t)e.a != next_out)
                ok = 0;
            next_out++;
        }
    }
    CHECK(ok);
    CHECK(tl_ring_len(&r) == (size_t)(next_in - next_out));
    for (size_t i = 0; i < tl_ring_len(&r); i++)
        if ((intptr_t)tl_ring_at(&r, i)->a != next_out + (intptr_t)i)
            ok = 0;
    CHECK(ok);
    while (tl_ring_pop(&r, &e))
        ;
    CHECK(tl_ring_len(&r) == 0);
    tl_ring_free(&r);
    return check_report("ring");
}
