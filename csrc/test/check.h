/* check.h -- the smallest test harness: CHECK() records a failure and goes
 * on; each test file's main() ends with check_report(). */
#ifndef TL_CHECK_H
#define TL_CHECK_H

#include <stdio.h>

static int check_passed, check_failed;

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (cond)                                                          \
            check_passed++;                                                \
        else {                                                             \
            check_failed++;                                                \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__,         \
                    __LINE__, #cond);                                      \
        }                                                                  \
    } while (0)

static int
check_report(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, check_passed, check_failed);
    return check_failed != 0;
}

#endif
