/* transport_write.c -- the write side of the stream socket transport:
 * write(), writelines(), write_eof(), the write queue and asyncio's write
 * flow control (pause_writing() and resume_writing() around the water
 * marks).  transport.c has the rest of SocketTransport and its type;
 * transport.h, what the two share.
 *
 * Data is written with send() when nothing is queued, otherwise queued
 * and flushed with sendmsg() over up to TRANSPORT_IOV chunks when the loop
 * reports the socket writable (transport_write_ready).
 */
#include "transport.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define TRANSPORT_IOV 64
/* asyncio.constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES */
#define TRANSPORT_LOST_WRITES_LOG 5

#ifndef MSG_NOSIGNAL
#  define MSG_NOSIGNAL 0
#endif

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* Append a chunk (steals the reference, also on failure). */
static int
transport_queue(tl_transport *self, PyObject *chunk)
{
    return tl_wq_push(&self->wq, chunk,
                      PyBytes_Check(chunk) ? PyBytes_GET_SIZE(chunk)
                                           : PyObject_Size(chunk));
}

/* Report a failing pause_writing()/resume_writing() to the handler. */
static int
transport_protocol_error(tl_transport *self, const char *message)
{
    PyObject *exc, *ctx;
    if (transport_exc_escapes())
        return -1;
    exc = tl_err_get_raised();
    ctx = Py_BuildValue("{s:s,s:O,s:O,s:O}", "message", message,
                        "exception", exc, "transport", (PyObject *)self,
                        "protocol",
                        self->protocol ? self->protocol : Py_None);
    Py_DECREF(exc);
    return tl_call_exception_handler(self->st, (PyObject *)self->loop, ctx);
}

static int
transport_maybe_pause_protocol(tl_transport *self)
{
    PyObject *r;
    if ((double)self->wq.size <= self->high || self->protocol_paused)
        return 0;
    self->protocol_paused = 1;
    r = tl_transport_call_protocol(self, self->st->str_pause_writing, NULL, 0);
    if (r == NULL)
        return transport_protocol_error(self, "protocol.pause_writing() failed");
    Py_DECREF(r);
    return 0;
}

static int
transport_maybe_resume_protocol(tl_transport *self, int enter)
{
    PyObject *r;
    if (!self->protocol_paused || !((double)self->wq.size <= self->low))
        return 0;
    self->protocol_paused = 0;
    r = tl_transport_call_protocol(self, self->st->str_resume_writing, NULL,
                                   enter);
    if (r == NULL)
        return transport_protocol_error(self,
                                        "protocol.resume_writing() failed");
    Py_DECREF(r);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */
/* ------------------------------------------------------------------ */

/* The queue drained: stop watching, and finish a close() or write_eof()
 * that waited for it. */
static int
transport_drained(tl_transport *self)
{
    transport_unwatch(self, 1);
    if (transport_set_waiter(self, NULL) < 0)
        return -1;
    if (self->closing) {
        PyObject *r = tl_transport_call_connection_lost(self, Py_None, 1);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
    else if (self->eof && self->sock != NULL) {
        if (shutdown(self->fd, SHUT_WR) < 0)
            return transport_set_oserror(errno);
    }
    return 0;
}

/* Sending queued data failed with the exception set: drop the queue and
 * fail the transport, as asyncio's _write_sendmsg() does. */
static int
transport_write_failed(tl_transport *self)
{
    PyObject *exc;
    transport_unwatch(self, 1);
    tl_wq_clear(&self->wq);
    exc = tl_err_get_raised();
    Py_INCREF(exc);
    tl_err_set_raised(exc);
    if (tl_transport_fatal(self,
                           "Fatal write error on socket transport") < 0) {
        Py_DECREF(exc);
        return -1;
    }
    if (transport_set_waiter(self, exc) < 0) {
        Py_DECREF(exc);
        return -1;
    }
    Py_DECREF(exc);
    return 0;
}

static int
transport_write_ready(PyObject *obj)
{
    tl_transport *self = (tl_transport *)obj;
    struct iovec iov[TRANSPORT_IOV];
    struct msghdr msg;
    Py_ssize_t n;
    size_t want;
    ssize_t sent;
    if (!self->wwatch || self->conn_lost)
        return 0;
    if (self->wq.len == 0)
        return transport_drained(self);
    n = tl_wq_iov(&self->wq, iov, TRANSPORT_IOV, &want);
    if (n < self->wq.len && n < TRANSPORT_IOV) {
        /* A non-contiguous memoryview: asyncio's sendmsg() raises
         * BufferError for the whole batch. */
        PyErr_SetString(PyExc_BufferError,
                        "memoryview: underlying buffer is not C-contiguous");
        return transport_write_failed(self);
    }
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = iov;
    msg.msg_iovlen = (size_t)n;
    do {
        sent = sendmsg(self->fd, &msg, MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    if (sent < 0) {
        int err = errno;
        if (transport_would_block(err))
            return 0;
        transport_set_oserror(err);
        return transport_write_failed(self);
    }
    tl_wq_consume(&self->wq, sent);
    /* resume_writing() may write more. */
    if (transport_maybe_resume_protocol(self, 1) < 0)
        return -1;
    if (self->wq.len == 0 && self->wwatch)
        return transport_drained(self);
    return 0;
}

/* What the loop calls when fd is writable: the event path, marked as
 * tl_transport_on_readable marks the read path. */
int
tl_transport_on_writable(PyObject *obj)
{
    tl_transport *self = (tl_transport *)obj;
    int r;
    self->in_event++;
    r = transport_write_ready(obj);
    self->in_event--;
    return r;
}

/* The bytes of a write() argument as a bytes object to queue, starting at
 * offset: the object itself when it is bytes and nothing was sent, a copy
 * otherwise (a bytearray may change after write() returns). */
static PyObject *
transport_chunk(PyObject *data, Py_buffer *view, Py_ssize_t offset)
{
    if (offset == 0 && PyBytes_CheckExact(data))
        return Py_NewRef(data);
    return PyBytes_FromStringAndSize((char *)view->buf + offset,
                                     view->len - offset);
}

static int
transport_check_data(tl_transport *self, PyObject *data)
{
    PyObject *name, *prefix;
    if (PyBytes_Check(data) || PyByteArray_Check(data)
        || PyMemoryView_Check(data))
        return 0;
    /* asyncio's words, which changed within 3.13 (turboloop._network
     * copies them from the running asyncio), and type(data).__name__. */
    prefix = PyObject_GetAttrString((PyObject *)Py_TYPE(self),
                                    "_write_type_error");
    if (prefix == NULL)
        return -1;
    name = PyType_GetName(Py_TYPE(data));
    if (name == NULL) {
        Py_DECREF(prefix);
        return -1;
    }
    PyErr_Format(PyExc_TypeError, "%S'%U'", prefix, name);
    Py_DECREF(prefix);
    Py_DECREF(name);
    return -1;
}

/* A write while the connection is lost: count it, warn past a threshold. */
static int
transport_lost_write(tl_transport *self)
{
    if (self->conn_lost >= TRANSPORT_LOST_WRITES_LOG) {
        PyObject *r = PyObject_CallMethod((PyObject *)self->loop,
                                          "_transport_lost_write", NULL);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
    self->conn_lost++;
    return 0;
}

static int
transport_check_writable(tl_transport *self, const char *what)
{
    if (self->eof) {
        PyErr_Format(PyExc_RuntimeError,
                     "Cannot call %s() after write_eof()", what);
        return -1;
    }
    if (self->empty_waiter != NULL) {
        PyErr_Format(PyExc_RuntimeError,
                     "unable to %s; sendfile is in progress", what);
        return -1;
    }
    return 0;
}

/* write() of a memoryview that is not contiguous.  asyncio hands it to
 * socket.send(), which refuses it: a fatal write error when nothing is
 * queued; behind queued data it is queued as it is (3.12+, and the next
 * sendmsg() fails) or refused by the bytearray that is the queue (3.11). */
static PyObject *
transport_write_strided(tl_transport *self, PyObject *data)
{
    PyObject *chunk, *exc;
    Py_ssize_t n;
    if (!PyMemoryView_Check(data) || !PyErr_ExceptionMatches(PyExc_BufferError))
        return NULL;
    exc = tl_err_get_raised();
    n = PyObject_Size(data);
    if (n <= 0 || self->conn_lost || self->wq.len == 0) {
        if (n < 0) {
            Py_DECREF(exc);
            return NULL;
        }
        if (n == 0) {
            Py_DECREF(exc);
            Py_RETURN_NONE;
        }
        if (self->conn_lost) {
            Py_DECREF(exc);
            if (transport_lost_write(self) < 0)
                return NULL;
            Py_RETURN_NONE;
        }
        tl_err_set_raised(exc);
        if (tl_transport_fatal(self,
                               "Fatal write error on socket transport") < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    Py_DECREF(exc);
#if PY_VERSION_HEX < 0x030C0000
    /* 3.11 queues into a bytearray, whose extend() refuses it. */
    (void)chunk;
    PyErr_SetString(PyExc_TypeError,
                    "can't set bytearray slice from memoryview");
    return NULL;
#else
    /* 3.12+ queues the memoryview, and its next sendmsg() fails. */
    chunk = Py_NewRef(data);
    if (transport_queue(self, chunk) < 0)
        return NULL;
#endif
    if (transport_maybe_pause_protocol(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

PyObject *
tl_transport_write_py(tl_transport *self, PyObject *data)
{
    Py_buffer view;
    ssize_t sent = 0;
    PyObject *chunk;
    if (transport_check_data(self, data) < 0
        || transport_check_writable(self, "write") < 0)
        return NULL;
    if (PyBytes_CheckExact(data)) {
        /* A bytes object's memory, read directly (PyBuffer_Release() does
         * nothing for a view without an object). */
        view.obj = NULL;
        view.buf = PyBytes_AS_STRING(data);
        view.len = PyBytes_GET_SIZE(data);
    }
    else if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return transport_write_strided(self, data);
    if (view.len == 0)
        goto done;
    if (self->conn_lost) {
        PyBuffer_Release(&view);
        if (transport_lost_write(self) < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    if (self->wq.len == 0) {
        /* Nothing queued: try to send it all now. */
        do {
            sent = send(self->fd, view.buf, (size_t)view.len, MSG_NOSIGNAL);
        } while (sent < 0 && errno == EINTR);
        if (sent < 0) {
            int err = errno;
            if (!transport_would_block(err)) {
                PyBuffer_Release(&view);
                transport_set_oserror(err);
                if (tl_transport_fatal(
                        self, "Fatal write error on socket transport") < 0)
                    return NULL;
                Py_RETURN_NONE;
            }
            sent = 0;
        }
        if (sent == view.len)
            goto done;
        if (transport_watch(self, 1) < 0) {
            PyBuffer_Release(&view);
            return NULL;
        }
    }
    if (sent > 0 && self->wq.len == 0 && PyBytes_CheckExact(data)) {
        /* The rest of a bytes object heads the queue: keep the object and
         * where the rest starts rather than copy the rest. */
        PyBuffer_Release(&view);
        if (tl_wq_push_rest(&self->wq, Py_NewRef(data), sent) < 0)
            return NULL;
    }
    else {
        chunk = transport_chunk(data, &view, sent);
        PyBuffer_Release(&view);
        if (chunk == NULL || transport_queue(self, chunk) < 0)
            return NULL;
    }
    if (transport_maybe_pause_protocol(self) < 0)
        return NULL;
    Py_RETURN_NONE;
done:
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

int
tl_transport_write(PyObject *transport, PyObject *data)
{
    PyObject *r = tl_transport_write_py((tl_transport *)transport, data);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

int
tl_transport_is_closing(PyObject *transport)
{
    return ((tl_transport *)transport)->closing;
}

PyObject *
tl_transport_writelines(tl_transport *self, PyObject *list)
{
    PyObject *seq;
    Py_ssize_t n;
#if PY_VERSION_HEX < 0x030C0000
    /* 3.11: WriteTransport.writelines() is write(b''.join(list_of_data)):
     * join's errors come first, then write()'s checks, and all of it is
     * one write (a lost connection counts it once). */
    Py_ssize_t total = 0;
    seq = PySequence_Fast(list, "can only join an iterable");
    if (seq == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *data = PySequence_Fast_GET_ITEM(seq, i);
        Py_buffer view;
        if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError,
                         "sequence item %zd: expected a bytes-like object, "
                         "%.80s found", i, Py_TYPE(data)->tp_name);
            goto error;
        }
        total += view.len;
        PyBuffer_Release(&view);
    }
    if (transport_check_writable(self, "write") < 0)
        goto error;
    if (total == 0 || self->conn_lost) {
        Py_DECREF(seq);
        if (total != 0 && transport_lost_write(self) < 0)
            return NULL;
        Py_RETURN_NONE;
    }
#else
    /* 3.12+: the selector transport's own writelines(). */
    int nonempty, skip_falsy;
    PyObject *flag;
    if (transport_check_writable(self, "writelines") < 0)
        return NULL;
    nonempty = PyObject_IsTrue(list);
    if (nonempty <= 0)
        return nonempty < 0 ? NULL : Py_NewRef(Py_None);
    if (self->conn_lost) {
        if (transport_lost_write(self) < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    /* Whether the running asyncio leaves false items out before making
     * memoryviews (see turboloop/_network.py). */
    flag = PyObject_GetAttrString((PyObject *)Py_TYPE(self),
                                  "_writelines_skips_falsy");
    skip_falsy = tl_truth_steal(flag);
    if (skip_falsy < 0)
        return NULL;
    seq = PySequence_Fast(list, "object is not iterable");
    if (seq == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *data = PySequence_Fast_GET_ITEM(seq, i);
        if (skip_falsy) {
            int truth = PyObject_IsTrue(data);
            if (truth < 0)
                goto error;
            if (!truth)
                continue;
        }
        if (!PyObject_CheckBuffer(data)) {
            PyErr_Format(PyExc_TypeError,
                         "memoryview: a bytes-like object is required, "
                         "not '%.100s'", Py_TYPE(data)->tp_name);
            goto error;
        }
    }
#endif
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *data = PySequence_Fast_GET_ITEM(seq, i), *chunk;
        Py_buffer view;
        if (!PyObject_CheckBuffer(data))
            continue;           /* a false non-buffer left out above */
        if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
#if PY_VERSION_HEX >= 0x030C0000
            /* Not contiguous: queued as it is, for sendmsg() to refuse. */
            if (PyErr_ExceptionMatches(PyExc_BufferError)) {
                PyErr_Clear();
                if (transport_queue(self, Py_NewRef(data)) < 0)
                    goto error;
                continue;
            }
#endif
            Py_DECREF(seq);
            return NULL;
        }
        if (view.len == 0) {
            PyBuffer_Release(&view);
            continue;
        }
        chunk = transport_chunk(data, &view, 0);
        PyBuffer_Release(&view);
        if (chunk == NULL || transport_queue(self, chunk) < 0) {
            Py_DECREF(seq);
            return NULL;
        }
    }
    Py_DECREF(seq);
    if (self->wq.len == 0 || self->conn_lost)
        Py_RETURN_NONE;
    /* One sendmsg() for all of it now; watch for the rest.  3.11 sends at
     * once only when nothing was queued before, as write() does; 3.12+
     * tries in any case. */
#if PY_VERSION_HEX < 0x030C0000
    if (!self->wwatch)
#endif
    {
        if (!self->wwatch && transport_watch(self, 1) < 0)
            return NULL;
        if (transport_write_ready((PyObject *)self) < 0)
            return NULL;
    }
    if (self->wq.len > 0 && !self->conn_lost
        && transport_maybe_pause_protocol(self) < 0)
        return NULL;
    Py_RETURN_NONE;
error:
    Py_DECREF(seq);
    return NULL;
}

PyObject *
tl_transport_write_eof(tl_transport *self, PyObject *Py_UNUSED(ignored))
{
    if (self->closing || self->eof)
        Py_RETURN_NONE;
    self->eof = 1;
    if (self->wq.len == 0 && self->sock != NULL) {
        if (shutdown(self->fd, SHUT_WR) < 0)
            return transport_set_oserror(errno), NULL;
    }
    Py_RETURN_NONE;
}

PyObject *
tl_transport_can_write_eof(tl_transport *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    Py_RETURN_TRUE;
}

/* ------------------------------------------------------------------ */
/* Flow control                                                        */
/* ------------------------------------------------------------------ */

/* asyncio's _FlowControlMixin._set_write_buffer_limits(high, low), with
 * Python's arithmetic and comparisons on whatever numbers it is given:
 *
 *     if high is None: high = 64 KiB if low is None else 4 * low
 *     if low is None: low = high // 4
 *     if not high >= low >= 0: raise ValueError(...)
 *
 * and the values kept both as objects and as doubles. */
static int
transport_set_limits(tl_transport *self, PyObject *args, PyObject *kwds,
                     const char *fmt)
{
    static char *kwlist[] = {"high", "low", NULL};
    PyObject *ho = Py_None, *lo = Py_None, *high = NULL, *low = NULL, *k;
    double hd, ld;
    int ok;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, fmt, kwlist, &ho, &lo))
        return -1;
    if (ho != Py_None)
        high = Py_NewRef(ho);
    else if (lo == Py_None)
        high = PyLong_FromLong(TRANSPORT_HIGH_WATER);
    else if ((k = PyLong_FromLong(4)) != NULL) {
        high = PyNumber_Multiply(k, lo);
        Py_DECREF(k);
    }
    if (high == NULL)
        return -1;
    if (lo != Py_None)
        low = Py_NewRef(lo);
    else if ((k = PyLong_FromLong(4)) != NULL) {
        low = PyNumber_FloorDivide(high, k);
        Py_DECREF(k);
    }
    if (low == NULL)
        goto error;
    ok = PyObject_RichCompareBool(high, low, Py_GE);
    if (ok > 0) {
        PyObject *zero = PyLong_FromLong(0);
        ok = zero ? PyObject_RichCompareBool(low, zero, Py_GE) : -1;
        Py_XDECREF(zero);
    }
    if (ok < 0)
        goto error;
    if (!ok) {
        PyErr_Format(PyExc_ValueError,
                     "high (%R) must be >= low (%R) must be >= 0", high, low);
        goto error;
    }
    hd = PyFloat_AsDouble(high);
    if (hd == -1.0 && PyErr_Occurred())
        goto error;
    ld = PyFloat_AsDouble(low);
    if (ld == -1.0 && PyErr_Occurred())
        goto error;
    Py_XSETREF(self->high_obj, high);
    Py_XSETREF(self->low_obj, low);
    self->high = hd;
    self->low = ld;
    return 0;
error:
    Py_DECREF(high);
    Py_XDECREF(low);
    return -1;
}

static PyObject *
transport_water_mark(PyObject *obj, double value)
{
    if (obj != NULL)
        return Py_NewRef(obj);
    return PyLong_FromDouble(value);
}

PyObject *
tl_transport_set_write_buffer_limits(tl_transport *self, PyObject *args,
                                     PyObject *kwds)
{
    if (transport_set_limits(self, args, kwds,
                             "|OO:set_write_buffer_limits") < 0)
        return NULL;
    if (transport_maybe_pause_protocol(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* _FlowControlMixin's private API, which asyncio's own code may call on
 * any of its socket transports. */
PyObject *
tl_transport_set_write_buffer_limits_priv(tl_transport *self,
                                          PyObject *args, PyObject *kwds)
{
    if (transport_set_limits(self, args, kwds,
                             "|OO:_set_write_buffer_limits") < 0)
        return NULL;
    Py_RETURN_NONE;
}

PyObject *
tl_transport_maybe_pause_protocol_py(tl_transport *self,
                                     PyObject *Py_UNUSED(ignored))
{
    if (transport_maybe_pause_protocol(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

PyObject *
tl_transport_maybe_resume_protocol_py(tl_transport *self,
                                      PyObject *Py_UNUSED(ignored))
{
    if (transport_maybe_resume_protocol(self, 0) < 0)
        return NULL;
    Py_RETURN_NONE;
}

PyObject *
tl_transport_get_write_buffer_limits(tl_transport *self,
                                     PyObject *Py_UNUSED(ignored))
{
    PyObject *low = transport_water_mark(self->low_obj, self->low);
    PyObject *high = low ? transport_water_mark(self->high_obj, self->high)
                         : NULL;
    PyObject *r = high ? PyTuple_Pack(2, low, high) : NULL;
    Py_XDECREF(low);
    Py_XDECREF(high);
    return r;
}

PyObject *
tl_transport_get_write_buffer_size(tl_transport *self,
                                   PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromSsize_t(self->wq.size);
}

/* The _high_water and _low_water attributes. */
PyObject *
tl_transport_get_high_water(tl_transport *self, void *Py_UNUSED(c))
{
    return transport_water_mark(self->high_obj, self->high);
}

PyObject *
tl_transport_get_low_water(tl_transport *self, void *Py_UNUSED(c))
{
    return transport_water_mark(self->low_obj, self->low);
}

/* sendfile's "buffer is empty" future (asyncio's _make_empty_waiter and
 * _reset_empty_waiter). */
PyObject *
tl_transport_make_empty_waiter(tl_transport *self,
                               PyObject *Py_UNUSED(ignored))
{
    PyObject *w;
    if (self->empty_waiter != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Empty waiter is already set");
        return NULL;
    }
    w = PyObject_CallMethod((PyObject *)self->loop, "create_future", NULL);
    if (w == NULL)
        return NULL;
    self->empty_waiter = w;
    if (self->wq.len == 0 && transport_set_waiter(self, NULL) < 0)
        return NULL;
    return Py_NewRef(w);
}

PyObject *
tl_transport_reset_empty_waiter(tl_transport *self,
                                PyObject *Py_UNUSED(ignored))
{
    Py_CLEAR(self->empty_waiter);
    Py_RETURN_NONE;
}
