/* poller.c -- chooses a multiplexer backend by name. */
#include <string.h>

#include "config.h"
#include "poller.h"

const tl_poller_ops *
tl_poller_find(const char *name)
{
    if (name == NULL || name[0] == '\0') {
#if TL_HAVE_EPOLL
        return &tl_poller_epoll_ops;
#else
        return &tl_poller_poll_ops;
#endif
    }
#if TL_HAVE_EPOLL
    if (strcmp(name, "epoll") == 0)
        return &tl_poller_epoll_ops;
#endif
    if (strcmp(name, "poll") == 0)
        return &tl_poller_poll_ops;
    return NULL;
}
