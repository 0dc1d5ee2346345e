/* config.h -- the one place that decides what the platform offers.
 *
 * The rest of the core includes this file instead of testing the operating
 * system itself, so no other file carries an OS #ifdef.
 */
#ifndef TL_CONFIG_H
#define TL_CONFIG_H

#if defined(__linux__)
#  define TL_HAVE_EPOLL 1
#  define TL_HAVE_EVENTFD 1
#  define TL_HAVE_PIDFD 1     /* pidfd_open(2); the kernel may still lack it */
#  define TL_HAVE_FIONREAD 1  /* ioctl(FIONREAD) on pipes, sockets and ttys */
/* Unix socket addresses starting with a NUL byte name the abstract
 * namespace (the socket module gives them as bytes). */
#  define TL_HAVE_ABSTRACT_UNIX 1
#else
#  define TL_HAVE_EPOLL 0
#  define TL_HAVE_EVENTFD 0
#  define TL_HAVE_PIDFD 0
#  define TL_HAVE_FIONREAD 0
#  define TL_HAVE_ABSTRACT_UNIX 0
#endif

/* poll(2) is available on every POSIX system we build on. */
#define TL_HAVE_POLL 1

#endif /* TL_CONFIG_H */
