/* transport.h -- what the two files of the stream socket transport share:
 * transport.c (reading, closing, the object and its type) and
 * transport_write.c (writing, the write queue, write flow control).
 *
 * The layout of SocketTransport, the small helpers both files call, as
 * static inline functions so that each file's event paths keep direct
 * calls, and the functions one file defines for the other: the methods and
 * getters of transport_write.c that transport.c's tables list, and a few
 * helpers on paths that are not per read or per write.  Other files see
 * only what tl.h declares.
 */
#ifndef TL_TRANSPORT_H
#define TL_TRANSPORT_H

#include "tl.h"
#include "wqueue.h"

#include <errno.h>

#define TRANSPORT_HIGH_WATER (64 * 1024)

typedef struct {
    PyObject_HEAD
    PyObject *extra;            /* asyncio.BaseTransport._extra; keep first */
    /* asyncio.transports._FlowControlMixin's four slots.  This type keeps
     * that state in C fields and shadows the slots' descriptors, so these
     * stay NULL unless something writes through the base class's own
     * descriptors. */
    PyObject *flow_slots[4];
    tl_state *st;
    tl_loop *loop;
    PyObject *sock;             /* NULL once the connection is lost */
    PyObject *protocol;
    PyObject *server;
    PyObject *context;          /* protocol callbacks run in it */
    PyObject *empty_waiter;     /* sendfile's "buffer is empty" future */
    PyObject *dict;
    PyObject *weakreflist;
    /* What write() could not send at once (3.12+: also a non-contiguous
     * memoryview queued as it is, which asyncio's sendmsg() refuses when
     * it gets to it; see transport_write_ready()). */
    tl_wqueue wq;
    /* Water marks: the objects asyncio would keep (any numbers that pass
     * its checks: 2**70, 1.5, a Fraction...), NULL for the defaults, and
     * their values as doubles for the comparisons with wq.size. */
    PyObject *high_obj, *low_obj;
    double high, low;
    Py_ssize_t conn_lost;
    int fd;
    char closing;
    char eof;
    char paused;                /* pause_reading() */
    char protocol_paused;       /* pause_writing() was called */
    char protocol_connected;
    char buffered;              /* protocol is a BufferedProtocol */
    char rwatch;                /* the loop watches fd for us */
    char wwatch;
    char detach_with_arg;       /* Server._detach(transport), 3.13+ */
    char given_context;         /* context passed in: every callback runs in it */
    char in_event;              /* the loop is dispatching an I/O event to us */
    char tls;                   /* protocol is turboloop's SSLProtocol: see
                                   transport_read_tls */
    char extra_done;            /* extra has socket, sockname and peername */
    PyObject *peername;         /* the peer's address given at creation,
                                   until extra is made */
} tl_transport;

/* ------------------------------------------------------------------ */
/* Defined in one file, called from the other                          */
/* ------------------------------------------------------------------ */

/* transport.c */
/* What the loop calls when fd is readable (transport.c) or writable
 * (transport_write.c); see transport_watch. */
int tl_transport_on_readable(PyObject *obj);
/* asyncio's _fatal_error for the exception currently set; -1 only when
 * the exception must leave the loop. */
int tl_transport_fatal(tl_transport *self, const char *message);
/* protocol.<name>(arg), for flow control (the read path calls the static
 * transport_call_protocol of transport.c). */
PyObject *tl_transport_call_protocol(tl_transport *self, PyObject *name,
                                     PyObject *arg, int enter);
PyObject *tl_transport_call_connection_lost(tl_transport *self,
                                            PyObject *exc, int enter);

/* transport_write.c */
int tl_transport_on_writable(PyObject *obj);
/* The methods and getters behind the entries of the same names in
 * transport.c's tables. */
PyObject *tl_transport_write_py(tl_transport *self, PyObject *data);
PyObject *tl_transport_writelines(tl_transport *self, PyObject *list);
PyObject *tl_transport_write_eof(tl_transport *self, PyObject *ignored);
PyObject *tl_transport_can_write_eof(tl_transport *self, PyObject *ignored);
PyObject *tl_transport_set_write_buffer_limits(tl_transport *self,
                                               PyObject *args,
                                               PyObject *kwds);
PyObject *tl_transport_set_write_buffer_limits_priv(tl_transport *self,
                                                    PyObject *args,
                                                    PyObject *kwds);
PyObject *tl_transport_maybe_pause_protocol_py(tl_transport *self,
                                               PyObject *ignored);
PyObject *tl_transport_maybe_resume_protocol_py(tl_transport *self,
                                                PyObject *ignored);
PyObject *tl_transport_get_write_buffer_limits(tl_transport *self,
                                               PyObject *ignored);
PyObject *tl_transport_get_write_buffer_size(tl_transport *self,
                                             PyObject *ignored);
PyObject *tl_transport_make_empty_waiter(tl_transport *self,
                                         PyObject *ignored);
PyObject *tl_transport_reset_empty_waiter(tl_transport *self,
                                          PyObject *ignored);
PyObject *tl_transport_get_high_water(tl_transport *self, void *c);
PyObject *tl_transport_get_low_water(tl_transport *self, void *c);

/* ------------------------------------------------------------------ */
/* Helpers of both files                                               */
/* ------------------------------------------------------------------ */

static inline int
transport_watch(tl_transport *self, int writer)
{
    char *flag = writer ? &self->wwatch : &self->rwatch;
    if (*flag)
        return 0;
    if (tl_loop_watch(self->loop, self->fd, writer, (PyObject *)self,
                      writer ? tl_transport_on_writable
                             : tl_transport_on_readable) < 0)
        return -1;
    *flag = 1;
    return 0;
}

static inline void
transport_unwatch(tl_transport *self, int writer)
{
    char *flag = writer ? &self->wwatch : &self->rwatch;
    if (!*flag)
        return;
    *flag = 0;
    tl_loop_unwatch(self->loop, self->fd, writer, (PyObject *)self);
}

static inline int
transport_would_block(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

/* An exception is set: 1 if it must leave the loop (SystemExit,
 * KeyboardInterrupt), 0 if the transport deals with it. */
static inline int
transport_exc_escapes(void)
{
    return PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)
           || PyErr_ExceptionMatches(PyExc_SystemExit);
}

static inline int
transport_set_oserror(int err)
{
    errno = err;
    PyErr_SetFromErrno(PyExc_OSError);
    return -1;
}

/* Settle sendfile's empty waiter, if any: its result, or exc. */
static inline int
transport_set_waiter(tl_transport *self, PyObject *exc)
{
    PyObject *w = self->empty_waiter, *r;
    if (w == NULL)
        return 0;
    Py_INCREF(w);
    if (exc != NULL)
        r = PyObject_CallMethod(w, "set_exception", "O", exc);
    else
        r = PyObject_CallMethod(w, "set_result", "O", Py_None);
    Py_DECREF(w);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

#endif /* TL_TRANSPORT_H */
