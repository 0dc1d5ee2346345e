/* transport.c -- the stream socket transport (TCP and Unix sockets).
 *
 * SocketTransport is asyncio's selector socket transport with its per-event
 * work in C: the loop calls transport_read_ready / transport_write_ready
 * straight from its ready queue (no Handle, no bound method), data is read
 * with recv() into the loop's buffer, or into the buffer a BufferedProtocol
 * hands out, and written with send() when nothing is queued, otherwise
 * queued and flushed with sendmsg() (transport_write.c, which has the
 * write side and its flow control; transport.h has the layout).
 *
 * The type derives from asyncio.Transport, whose only slot (_extra, the
 * dict behind get_extra_info) is the first field of the layout in
 * transport.h.  Setup -- TCP_NODELAY, scheduling connection_made -- is done
 * by the Python side (turboloop/_network.py).  The extra info asyncio computes when it
 * makes a transport ("socket", "sockname", "peername") is computed when
 * first asked for, or just before the socket is closed: most connections
 * never ask, and an idle connection is smaller without it.
 */
#include "transport.h"
#include "profile.h"

#include <errno.h>
#include <limits.h>
#include <sys/socket.h>

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* Call protocol.<name>(arg) (no argument when arg is NULL); name is one of
 * the interned strings of the state.
 *
 * The contexts are asyncio's: what an I/O event triggers (data_received,
 * eof_received, get_buffer, buffer_updated, resume_writing, connection_lost
 * after a drained close) runs in the transport's context, so enter is 1 on
 * those paths, which the loop runs outside any context of ours.  What a call
 * into the transport triggers (pause_writing from write(), connection_lost
 * from the callback close() scheduled) runs in the context already current,
 * so enter is 0: entering a context that is current would fail. */
static PyObject *
transport_call_protocol(tl_transport *self, PyObject *name, PyObject *arg,
                        int enter)
{
    PyObject *r, *protocol = self->protocol, *argv[2];
    if (protocol == NULL)
        Py_RETURN_NONE;
    Py_INCREF(protocol);
    if (enter && PyContext_Enter(self->context) < 0) {
        Py_DECREF(protocol);
        return NULL;
    }
    argv[0] = protocol;
    argv[1] = arg;
    if (self->loop->prof == NULL)
        r = PyObject_VectorcallMethod(name, argv, (arg ? 2 : 1)
                                      | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    else {
        tl_prof_span span;
        tl_prof_proto_begin(self->loop, protocol, name, &span);
        r = PyObject_VectorcallMethod(name, argv, (arg ? 2 : 1)
                                      | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        tl_prof_span_end(&span);
    }
    if (enter && PyContext_Exit(self->context) < 0)
        Py_CLEAR(r);
    Py_DECREF(protocol);
    return r;
}

PyObject *
tl_transport_call_protocol(tl_transport *self, PyObject *name, PyObject *arg,
                           int enter)
{
    return transport_call_protocol(self, name, arg, enter);
}

static int transport_force_close(tl_transport *self, PyObject *exc);

/* asyncio's _fatal_error for the exception currently set: report it (the
 * Python side logs OSErrors in debug mode, passes anything else to the
 * exception handler) and close the transport.  Returns -1 only when the
 * exception must leave the loop. */
int
tl_transport_fatal(tl_transport *self, const char *message)
{
    PyObject *exc, *msg, *r;
    if (transport_exc_escapes())
        return -1;
    exc = tl_err_get_raised();
    msg = PyUnicode_FromString(message);
    if (msg == NULL) {
        Py_DECREF(exc);
        return -1;
    }
    r = PyObject_CallMethod((PyObject *)self->loop, "_transport_error",
                            "OOO", (PyObject *)self, exc, msg);
    Py_DECREF(msg);
    if (r == NULL) {
        Py_DECREF(exc);
        return -1;
    }
    Py_DECREF(r);
    r = NULL;
    if (transport_force_close(self, exc) < 0) {
        Py_DECREF(exc);
        return -1;
    }
    Py_DECREF(exc);
    return 0;
}

/* Schedule self._call_connection_lost(exc) with call_soon. */
static int
transport_schedule_lost(tl_transport *self, PyObject *exc)
{
    PyObject *fn, *ctx;
    int r = -1;
    /* Run in the context the transport was given, or else in a copy of the
     * current one, as asyncio's call_soon would; connection_lost() runs in
     * that context.  While an I/O event is dispatched, the current context
     * is, for asyncio, the one its reader or writer callback runs in: the
     * transport's. */
    if (self->given_context)
        ctx = Py_NewRef(self->context);
    else if (self->in_event)
        ctx = PyContext_Copy(self->context);
    else
        ctx = PyContext_CopyCurrent();
    if (ctx == NULL)
        return -1;
    fn = PyObject_GetAttrString((PyObject *)self, "_call_connection_lost");
    if (fn != NULL) {
        r = tl_call_soon(self->st, (PyObject *)self->loop, self->loop, fn,
                         exc ? exc : Py_None, ctx);
        Py_DECREF(fn);
    }
    Py_DECREF(ctx);
    return r;
}

static int
transport_force_close(tl_transport *self, PyObject *exc)
{
    if (self->conn_lost)
        return 0;
    if (self->wq.size > 0 || self->wq.len > 0) {
        tl_wq_clear(&self->wq);
        transport_unwatch(self, 1);
    }
    if (!self->closing) {
        self->closing = 1;
        transport_unwatch(self, 0);
    }
    self->conn_lost++;
    return transport_schedule_lost(self, exc);
}

static int
transport_set_protocol_impl(tl_transport *self, PyObject *protocol)
{
    int b = PyObject_IsInstance(protocol, self->st->BufferedProtocol);
    if (b < 0)
        return -1;
    Py_XSETREF(self->protocol, Py_NewRef(protocol));
    self->buffered = (char)b;
    self->tls = (char)(b && tl_sslproto_direct(self->st, protocol));
    self->protocol_connected = 1;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Reading                                                             */
/* ------------------------------------------------------------------ */

static int
transport_on_eof(tl_transport *self)
{
    PyObject *r;
    int keep_open;
    if (self->loop->debug) {
        r = PyObject_CallMethod((PyObject *)self->loop, "_transport_debug",
                                "Os", (PyObject *)self, "received EOF");
        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
    r = transport_call_protocol(self, self->st->str_eof_received, NULL, 1);
    if (r == NULL)
        return tl_transport_fatal(self,
                                  "Fatal error: protocol.eof_received() call failed.");
    keep_open = tl_truth_steal(r);
    if (keep_open < 0)
        return tl_transport_fatal(self,
                                  "Fatal error: protocol.eof_received() call failed.");
    if (keep_open) {
        /* The protocol may still write; nothing more can be read. */
        transport_unwatch(self, 0);
        return 0;
    }
    r = PyObject_CallMethod((PyObject *)self, "close", NULL);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* transport_read_buffered for turboloop's SSLProtocol: its get_buffer()
 * and buffer_updated() called as C functions (sslproto.c). */
static int
transport_read_tls(tl_transport *self)
{
    PyObject *protocol = self->protocol;
    Py_ssize_t len;
    ssize_t got;
    int r;
    char *buf = tl_sslproto_recv_buffer(protocol, &len);
    if (buf == NULL)
        return tl_transport_fatal(self,
                                  "Fatal error: protocol.get_buffer() call failed.");
    do {
        got = recv(self->fd, buf, (size_t)len, 0);
    } while (got < 0 && errno == EINTR);
    if (got < 0) {
        if (transport_would_block(errno))
            return 0;
        transport_set_oserror(errno);
        return tl_transport_fatal(self, "Fatal read error on socket transport");
    }
    if (got == 0)
        return transport_on_eof(self);
    Py_INCREF(protocol);
    r = PyContext_Enter(self->context);
    if (r == 0) {
        r = tl_sslproto_received(protocol, got);
        if (PyContext_Exit(self->context) < 0)
            r = -1;
    }
    Py_DECREF(protocol);
    if (r < 0)
        return tl_transport_fatal(self,
                                  "Fatal error: protocol.buffer_updated() call failed.");
    return 0;
}

static int
transport_read_buffered(tl_transport *self)
{
    PyObject *buf, *r, *n;
    Py_buffer view;
    ssize_t got;
    if (self->tls)
        return transport_read_tls(self);
    n = PyLong_FromLong(-1);
    if (n == NULL)
        return -1;
    buf = transport_call_protocol(self, self->st->str_get_buffer, n, 1);
    Py_DECREF(n);
    if (buf == NULL)
        return tl_transport_fatal(self,
                                  "Fatal error: protocol.get_buffer() call failed.");
    if (PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE) < 0) {
        /* asyncio takes len(buf) (an empty buffer is the protocol's error),
         * then hands buf to recv_into(), which wants a writable buffer. */
        Py_ssize_t len;
        PyErr_Clear();
        len = PyObject_Size(buf);
        if (len == 0)
            PyErr_SetString(PyExc_RuntimeError,
                            "get_buffer() returned an empty buffer");
        if (len <= 0) {
            Py_DECREF(buf);
            return tl_transport_fatal(
                self, "Fatal error: protocol.get_buffer() call failed.");
        }
        PyErr_Format(PyExc_TypeError,
                     "recv_into() argument 1 must be read-write bytes-like "
                     "object, not %.200s", Py_TYPE(buf)->tp_name);
        Py_DECREF(buf);
        return tl_transport_fatal(self, "Fatal read error on socket transport");
    }
    Py_DECREF(buf);
    if (view.len == 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_RuntimeError,
                        "get_buffer() returned an empty buffer");
        return tl_transport_fatal(self,
                                  "Fatal error: protocol.get_buffer() call failed.");
    }
    /* get_buffer() may have paused, closed or aborted the transport;
     * asyncio reads into the buffer anyway and reports what it got with
     * buffer_updated() (or eof_received()).  The socket itself is closed
     * only by connection_lost(), which cannot have run yet. */
    if (self->sock == NULL) {
        PyBuffer_Release(&view);
        return 0;
    }
    do {
        got = recv(self->fd, view.buf, (size_t)view.len, 0);
    } while (got < 0 && errno == EINTR);
    PyBuffer_Release(&view);
    if (got < 0) {
        if (transport_would_block(errno))
            return 0;
        transport_set_oserror(errno);
        return tl_transport_fatal(self, "Fatal read error on socket transport");
    }
    if (got == 0)
        return transport_on_eof(self);
    n = PyLong_FromSsize_t(got);
    if (n == NULL)
        return -1;
    r = transport_call_protocol(self, self->st->str_buffer_updated, n, 1);
    Py_DECREF(n);
    if (r == NULL)
        return tl_transport_fatal(self,
                                  "Fatal error: protocol.buffer_updated() call failed.");
    Py_DECREF(r);
    return 0;
}

static int
transport_read_ready(PyObject *obj)
{
    tl_transport *self = (tl_transport *)obj;
    PyObject *data, *r;
    ssize_t got;
    if (!self->rwatch || self->conn_lost)
        return 0;
    if (self->buffered)
        return transport_read_buffered(self);
    if (self->loop->rbuf == NULL) {
        self->loop->rbuf = malloc(TL_RBUF_SIZE);
        if (self->loop->rbuf == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    got = recv(self->fd, self->loop->rbuf, TL_RBUF_SIZE, 0);
    if (got < 0) {
        if (transport_would_block(errno))
            return 0;
        transport_set_oserror(errno);
        return tl_transport_fatal(self, "Fatal read error on socket transport");
    }
    if (got == 0)
        return transport_on_eof(self);
    data = PyBytes_FromStringAndSize(self->loop->rbuf, got);
    if (data == NULL)
        return -1;
    r = transport_call_protocol(self, self->st->str_data_received, data, 1);
    Py_DECREF(data);
    if (r == NULL)
        return tl_transport_fatal(self,
                                  "Fatal error: protocol.data_received() call failed.");
    Py_DECREF(r);
    return 0;
}

/* What the loop calls when fd is readable: the event path, marked so that
 * a close it causes schedules connection_lost() in the transport's
 * context.  (tl_transport_on_writable, in transport_write.c, is its
 * twin.) */
int
tl_transport_on_readable(PyObject *obj)
{
    tl_transport *self = (tl_transport *)obj;
    int r;
    self->in_event++;
    r = transport_read_ready(obj);
    self->in_event--;
    return r;
}

/* ------------------------------------------------------------------ */
/* Closing                                                             */
/* ------------------------------------------------------------------ */

static PyObject *
transport_close(tl_transport *self, PyObject *Py_UNUSED(ignored))
{
    if (self->closing)
        Py_RETURN_NONE;
    self->closing = 1;
    transport_unwatch(self, 0);
    if (self->wq.len == 0) {
        self->conn_lost++;
        transport_unwatch(self, 1);
        if (transport_schedule_lost(self, NULL) < 0)
            return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
transport_abort(tl_transport *self, PyObject *Py_UNUSED(ignored))
{
    if (transport_force_close(self, NULL) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
transport_force_close_py(tl_transport *self, PyObject *exc)
{
    if (transport_force_close(self, exc == Py_None ? NULL : exc) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* Make the extra dict asyncio makes when it creates a transport (the
 * Python side's Loop._transport_extra()); before the socket is closed, so
 * that get_extra_info() answers as asyncio's after close(). */
static int
transport_fill_extra(tl_transport *self)
{
    PyObject *r;
    if (self->extra_done || self->sock == NULL)
        return 0;
    self->extra_done = 1;
    r = PyObject_CallMethod((PyObject *)self->loop, "_transport_extra",
                            self->peername ? "OOO" : "OO", self->sock,
                            self->extra ? self->extra : Py_None,
                            self->peername);
    if (r == NULL)
        return -1;
    Py_XSETREF(self->extra, r);
    Py_CLEAR(self->peername);
    return 0;
}

static PyObject *
transport_get_extra_info(tl_transport *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"name", "default", NULL};
    PyObject *name, *dflt = Py_None, *v;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:get_extra_info", kwlist,
                                     &name, &dflt))
        return NULL;
    if (!self->extra_done && PyUnicode_Check(name)
        && (PyUnicode_CompareWithASCIIString(name, "socket") == 0
            || PyUnicode_CompareWithASCIIString(name, "sockname") == 0
            || PyUnicode_CompareWithASCIIString(name, "peername") == 0)
        && transport_fill_extra(self) < 0)
        return NULL;
    if (self->extra == NULL)
        return Py_NewRef(dflt);
    /* asyncio: self._extra.get(name, default) */
    v = PyDict_GetItemWithError(self->extra, name);
    if (v == NULL && PyErr_Occurred())
        return NULL;
    return Py_NewRef(v ? v : dflt);
}

static int
transport_detach_server(tl_transport *self)
{
    PyObject *server = self->server, *r;
    if (server == NULL)
        return 0;
    self->server = NULL;
    if (self->detach_with_arg)
        r = PyObject_CallMethod(server, "_detach", "O", (PyObject *)self);
    else
        r = PyObject_CallMethod(server, "_detach", NULL);
    Py_DECREF(server);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* Close the socket, forget the protocol, leave the server; keeps the
 * first error. */
static int
transport_release(tl_transport *self)
{
    PyObject *sock = self->sock, *r;
    int res = 0;
    transport_unwatch(self, 0);
    transport_unwatch(self, 1);
    if (transport_fill_extra(self) < 0)
        res = -1;
    self->sock = NULL;
    if (sock != NULL) {
        r = PyObject_CallMethod(sock, "close", NULL);
        if (r == NULL) {
            if (res < 0)
                PyErr_Clear();  /* keep the first error */
            res = -1;
        }
        Py_XDECREF(r);
        Py_DECREF(sock);
    }
    Py_CLEAR(self->protocol);
    if (res == 0)
        res = transport_detach_server(self);
    else {
        PyObject *exc = tl_err_get_raised();
        if (transport_detach_server(self) < 0)
            PyErr_Clear();
        tl_err_set_raised(exc);
    }
    return res;
}

PyObject *
tl_transport_call_connection_lost(tl_transport *self, PyObject *exc,
                                  int enter)
{
    PyObject *r, *err;
    if (self->sock == NULL)
        Py_RETURN_NONE;     /* already done */
    r = Py_NewRef(Py_None);
    if (self->protocol_connected && self->protocol != NULL) {
        Py_DECREF(r);
        r = transport_call_protocol(self, self->st->str_connection_lost, exc,
                                    enter);
    }
    if (r == NULL) {
        err = tl_err_get_raised();
        if (transport_release(self) < 0)
            PyErr_Clear();
        tl_err_set_raised(err);
    }
    else if (transport_release(self) < 0)
        Py_CLEAR(r);
    if (self->empty_waiter != NULL) {
        PyObject *cerr = PyObject_CallFunction(PyExc_ConnectionError, "s",
                                               "Connection is closed by peer");
        PyObject *saved = r == NULL ? tl_err_get_raised() : NULL;
        if (cerr == NULL || transport_set_waiter(self, cerr) < 0)
            PyErr_Clear();
        Py_XDECREF(cerr);
        if (saved != NULL)
            tl_err_set_raised(saved);
    }
    return r;
}

/* ------------------------------------------------------------------ */
/* Reading state and protocol                                          */
/* ------------------------------------------------------------------ */

static PyObject *
transport_is_closing(tl_transport *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->closing);
}

static PyObject *
transport_is_reading(tl_transport *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(!self->closing && !self->paused);
}

static PyObject *
transport_debug_log(tl_transport *self, const char *what)
{
    if (self->loop->debug)
        return PyObject_CallMethod((PyObject *)self->loop, "_transport_debug",
                                   "Os", (PyObject *)self, what);
    Py_RETURN_NONE;
}

static PyObject *
transport_pause_reading(tl_transport *self, PyObject *Py_UNUSED(ignored))
{
    if (self->closing || self->paused)
        Py_RETURN_NONE;
    self->paused = 1;
    transport_unwatch(self, 0);
    return transport_debug_log(self, "pauses reading");
}

static PyObject *
transport_resume_reading(tl_transport *self, PyObject *Py_UNUSED(ignored))
{
    if (self->closing || !self->paused)
        Py_RETURN_NONE;
    self->paused = 0;
    if (transport_watch(self, 0) < 0)
        return NULL;
    return transport_debug_log(self, "resumes reading");
}

/* Scheduled right after connection_made(). */
static PyObject *
transport_start_reading(tl_transport *self, PyObject *Py_UNUSED(ignored))
{
    if (self->closing || self->paused || self->sock == NULL)
        Py_RETURN_NONE;
    if (transport_watch(self, 0) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
transport_set_protocol(tl_transport *self, PyObject *protocol)
{
    if (transport_set_protocol_impl(self, protocol) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
transport_get_protocol(tl_transport *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self->protocol ? self->protocol : Py_None);
}

static PyObject *
transport_call_connection_lost_py(tl_transport *self, PyObject *exc)
{
    return tl_transport_call_connection_lost(self, exc, 0);
}

/* ------------------------------------------------------------------ */
/* Object lifecycle                                                    */
/* ------------------------------------------------------------------ */

/* SocketTransport(loop, sock, protocol, extra, server, detach_with_arg,
 *                 context=None): protocol callbacks run in context, or in a
 * copy of the current context when it is None.  extra is None or a dict
 * of extra info (asyncio's accept code gives {"peername": address}). */
static PyObject *
transport_tp_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    tl_state *st = tl_state_from_type(tp);
    PyObject *loop, *sock, *protocol, *extra, *server, *fdo;
    PyObject *context = Py_None;
    int detach_with_arg;
    long fd;
    tl_transport *self;
    if (st == NULL)
        return NULL;
    if (kwds != NULL && PyDict_GET_SIZE(kwds) > 0) {
        PyErr_SetString(PyExc_TypeError,
                        "SocketTransport() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O!OOOOp|O:SocketTransport", st->LoopType,
                          &loop, &sock, &protocol, &extra, &server,
                          &detach_with_arg, &context))
        return NULL;
    if (extra != Py_None && !PyDict_Check(extra)) {
        PyErr_Format(PyExc_TypeError, "extra must be a dict or None, not %.200s",
                     Py_TYPE(extra)->tp_name);
        return NULL;
    }
    if (context != Py_None && !PyContext_CheckExact(context)) {
        PyErr_Format(PyExc_TypeError,
                     "context must be a contextvars.Context, not %.200s",
                     Py_TYPE(context)->tp_name);
        return NULL;
    }
    fdo = PyObject_CallMethod(sock, "fileno", NULL);
    if (fdo == NULL)
        return NULL;
    fd = PyLong_AsLong(fdo);
    Py_DECREF(fdo);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    if (fd < 0 || fd > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "the socket is closed");
        return NULL;
    }
    self = (tl_transport *)tp->tp_alloc(tp, 0);
    if (self == NULL)
        return NULL;
    self->st = st;
    self->fd = (int)fd;
    if (extra != Py_None) {
        PyObject *peer;
        if (PyDict_GET_SIZE(extra) == 1
            && (peer = PyDict_GetItemString(extra, "peername")) != NULL)
            /* Only the peer's address: no dict until one is needed. */
            self->peername = Py_NewRef(peer);
        else
            self->extra = Py_NewRef(extra);
    }
    self->loop = (tl_loop *)Py_NewRef(loop);
    self->sock = Py_NewRef(sock);
    self->high = TRANSPORT_HIGH_WATER;
    self->low = TRANSPORT_HIGH_WATER / 4;
    self->detach_with_arg = (char)detach_with_arg;
    if (context != Py_None) {
        self->context = Py_NewRef(context);
        self->given_context = 1;
    }
    else
        self->context = PyContext_CopyCurrent();
    if (self->context == NULL
        || transport_set_protocol_impl(self, protocol) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    if (server != Py_None) {
        PyObject *r;
        self->server = Py_NewRef(server);
        if (detach_with_arg)
            r = PyObject_CallMethod(server, "_attach", "O", (PyObject *)self);
        else
            r = PyObject_CallMethod(server, "_attach", NULL);
        if (r == NULL) {
            Py_CLEAR(self->server);
            Py_DECREF(self);
            return NULL;
        }
        Py_DECREF(r);
    }
    return (PyObject *)self;
}

/* Everything happens in tp_new; this keeps asyncio's BaseTransport.__init__
 * from running on the arguments. */
static int
transport_tp_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    (void)self;
    (void)args;
    (void)kwds;
    return 0;
}

static int
transport_traverse(tl_transport *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->extra);
    Py_VISIT(self->peername);
    Py_VISIT(self->loop);
    Py_VISIT(self->sock);
    Py_VISIT(self->protocol);
    Py_VISIT(self->server);
    Py_VISIT(self->context);
    Py_VISIT(self->empty_waiter);
    Py_VISIT(self->dict);
    Py_VISIT(self->high_obj);
    Py_VISIT(self->low_obj);
    for (int k = 0; k < 4; k++)
        Py_VISIT(self->flow_slots[k]);
    return tl_wq_traverse(&self->wq, visit, arg);
}

static int
transport_clear(tl_transport *self)
{
    Py_CLEAR(self->extra);
    Py_CLEAR(self->peername);
    Py_CLEAR(self->protocol);
    Py_CLEAR(self->server);
    Py_CLEAR(self->context);
    Py_CLEAR(self->empty_waiter);
    Py_CLEAR(self->dict);
    Py_CLEAR(self->high_obj);
    Py_CLEAR(self->low_obj);
    for (int k = 0; k < 4; k++)
        Py_CLEAR(self->flow_slots[k]);
    tl_wq_clear(&self->wq);
    /* sock and loop stay until dealloc: the finalizer closes the socket. */
    return 0;
}

/* Like asyncio's __del__: an unclosed transport warns and closes its
 * socket. */
static void
transport_finalize(PyObject *obj)
{
    tl_transport *self = (tl_transport *)obj;
    PyObject *exc, *r;
    if (self->sock == NULL)
        return;
    exc = tl_err_get_raised();
    if (PyErr_ResourceWarning(obj, 1, "unclosed transport %R", obj) < 0)
        PyErr_WriteUnraisable(obj);
    if (transport_fill_extra(self) < 0)
        PyErr_WriteUnraisable(obj);
    r = PyObject_CallMethod(self->sock, "close", NULL);
    if (r == NULL)
        PyErr_WriteUnraisable(obj);
    Py_XDECREF(r);
    Py_CLEAR(self->sock);
    if (transport_detach_server(self) < 0)
        PyErr_WriteUnraisable(obj);
    if (exc != NULL)
        tl_err_set_raised(exc);
}

static void
transport_dealloc(tl_transport *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    /* The finalizer runs while the object is still tracked, so that a
     * resurrected object stays a proper GC object. */
    if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0)
        return;     /* resurrected */
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    transport_clear(self);
    Py_CLEAR(self->sock);
    Py_CLEAR(self->loop);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *
transport_repr(tl_transport *self)
{
    const char *state = self->sock == NULL ? "closed "
                        : self->closing ? "closing " : "";
    PyObject *name = PyType_GetName(Py_TYPE(self)), *r;
    if (name == NULL)
        return NULL;
    if (self->sock == NULL || self->loop->closed)
        r = PyUnicode_FromFormat("<%U %sfd=%d>", name, state, self->fd);
    else
        r = PyUnicode_FromFormat("<%U %sfd=%d read=%s write=<%s, bufsize=%zd>>",
                                 name, state, self->fd,
                                 self->rwatch ? "polling" : "idle",
                                 self->wwatch ? "polling" : "idle",
                                 self->wq.size);
    Py_DECREF(name);
    return r;
}

/* ------------------------------------------------------------------ */
/* Attributes                                                          */
/* ------------------------------------------------------------------ */

static PyObject *
transport_get_sock(tl_transport *self, void *Py_UNUSED(c))
{
    return Py_NewRef(self->sock ? self->sock : Py_None);
}

static PyObject *
transport_get_loop(tl_transport *self, void *Py_UNUSED(c))
{
    if (self->sock == NULL)
        Py_RETURN_NONE;
    return Py_NewRef((PyObject *)self->loop);
}

static PyObject *
transport_get_server(tl_transport *self, void *Py_UNUSED(c))
{
    return Py_NewRef(self->server ? self->server : Py_None);
}

static PyObject *
transport_get_empty_waiter(tl_transport *self, void *Py_UNUSED(c))
{
    return Py_NewRef(self->empty_waiter ? self->empty_waiter : Py_None);
}

/* BaseTransport's _extra slot, read through its own descriptor. */
static PyObject *
transport_get_extra_attr(tl_transport *self, void *Py_UNUSED(c))
{
    if (transport_fill_extra(self) < 0)
        return NULL;
    if (self->extra == NULL && (self->extra = PyDict_New()) == NULL)
        return NULL;
    return Py_NewRef(self->extra);
}

static PyObject *
transport_get_protocol_attr(tl_transport *self, void *Py_UNUSED(c))
{
    return Py_NewRef(self->protocol ? self->protocol : Py_None);
}

static PyMethodDef transport_methods[] = {
    {"write", (PyCFunction)tl_transport_write_py, METH_O,
     "Write bytes to the transport; never blocks."},
    {"writelines", (PyCFunction)tl_transport_writelines, METH_O,
     "Write a sequence of bytes-like objects."},
    {"write_eof", (PyCFunction)tl_transport_write_eof, METH_NOARGS,
     "Close the write end after flushing buffered data."},
    {"can_write_eof", (PyCFunction)tl_transport_can_write_eof, METH_NOARGS,
     NULL},
    {"close", (PyCFunction)transport_close, METH_NOARGS,
     "Close the transport once the write buffer is flushed."},
    {"abort", (PyCFunction)transport_abort, METH_NOARGS,
     "Close the transport now, dropping buffered data."},
    {"is_closing", (PyCFunction)transport_is_closing, METH_NOARGS, NULL},
    {"is_reading", (PyCFunction)transport_is_reading, METH_NOARGS, NULL},
    {"pause_reading", (PyCFunction)transport_pause_reading, METH_NOARGS, NULL},
    {"resume_reading", (PyCFunction)transport_resume_reading, METH_NOARGS,
     NULL},
    {"_set_write_buffer_limits",
     (PyCFunction)(void (*)(void))tl_transport_set_write_buffer_limits_priv,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"_maybe_pause_protocol",
     (PyCFunction)tl_transport_maybe_pause_protocol_py, METH_NOARGS, NULL},
    {"_maybe_resume_protocol",
     (PyCFunction)tl_transport_maybe_resume_protocol_py, METH_NOARGS, NULL},
    {"set_write_buffer_limits",
     (PyCFunction)(void (*)(void))tl_transport_set_write_buffer_limits,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"get_write_buffer_limits",
     (PyCFunction)tl_transport_get_write_buffer_limits, METH_NOARGS, NULL},
    {"get_write_buffer_size", (PyCFunction)tl_transport_get_write_buffer_size,
     METH_NOARGS, NULL},
    {"get_extra_info", (PyCFunction)(void (*)(void))transport_get_extra_info,
     METH_VARARGS | METH_KEYWORDS,
     "Get optional transport information."},
    {"set_protocol", (PyCFunction)transport_set_protocol, METH_O, NULL},
    {"get_protocol", (PyCFunction)transport_get_protocol, METH_NOARGS, NULL},
    {"_start_reading", (PyCFunction)transport_start_reading, METH_NOARGS,
     NULL},
    {"_call_connection_lost", (PyCFunction)transport_call_connection_lost_py,
     METH_O, NULL},
    {"_force_close", (PyCFunction)transport_force_close_py, METH_O, NULL},
    {"_make_empty_waiter", (PyCFunction)tl_transport_make_empty_waiter,
     METH_NOARGS, NULL},
    {"_reset_empty_waiter", (PyCFunction)tl_transport_reset_empty_waiter,
     METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef transport_getset[] = {
    {"_sock", (getter)transport_get_sock, NULL, NULL, NULL},
    {"_loop", (getter)transport_get_loop, NULL, NULL, NULL},
    {"_server", (getter)transport_get_server, NULL, NULL, NULL},
    {"_empty_waiter", (getter)transport_get_empty_waiter, NULL, NULL, NULL},
    {"_high_water", (getter)tl_transport_get_high_water, NULL, NULL, NULL},
    {"_low_water", (getter)tl_transport_get_low_water, NULL, NULL, NULL},
    {"_protocol", (getter)transport_get_protocol_attr, NULL, NULL, NULL},
    {"_extra", (getter)transport_get_extra_attr, NULL, NULL, NULL},
    {NULL},
};

static PyMemberDef transport_members[] = {
    {"_sock_fd", T_INT, offsetof(tl_transport, fd), READONLY, NULL},
    {"_closing", T_BOOL, offsetof(tl_transport, closing), READONLY, NULL},
    {"_eof", T_BOOL, offsetof(tl_transport, eof), READONLY, NULL},
    {"_paused", T_BOOL, offsetof(tl_transport, paused), READONLY, NULL},
    {"_protocol_paused", T_BOOL, offsetof(tl_transport, protocol_paused),
     READONLY, NULL},
    {"_conn_lost", T_PYSSIZET, offsetof(tl_transport, conn_lost), READONLY,
     NULL},
    {"__dictoffset__", T_PYSSIZET, offsetof(tl_transport, dict), READONLY,
     NULL},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(tl_transport, weakreflist),
     READONLY, NULL},
    {NULL},
};

static PyType_Slot transport_slots[] = {
    {Py_tp_new, transport_tp_new},
    {Py_tp_init, transport_tp_init},
    {Py_tp_dealloc, transport_dealloc},
    {Py_tp_finalize, transport_finalize},
    {Py_tp_traverse, transport_traverse},
    {Py_tp_clear, transport_clear},
    {Py_tp_repr, transport_repr},
    {Py_tp_methods, transport_methods},
    {Py_tp_getset, transport_getset},
    {Py_tp_members, transport_members},
    {Py_tp_doc, "A stream socket transport (TCP or Unix) driven by the loop."},
    {0, NULL},
};

static PyType_Spec transport_spec = {
    "turboloop._core.SocketTransport", sizeof(tl_transport), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    transport_slots,
};

int
tl_transport_init_type(PyObject *mod, tl_state *st)
{
    PyObject *mod_tr = PyImport_ImportModule("asyncio.transports"), *base;
    int r;
    if (mod_tr == NULL)
        return -1;
    /* asyncio's sendfile fallback accepts only _FlowControlMixin
     * transports, the base of its own socket transports. */
    base = PyObject_GetAttrString(mod_tr, "_FlowControlMixin");
    Py_DECREF(mod_tr);
    if (base == NULL)
        return -1;
    /* Our layout extends asyncio's: BaseTransport's slot, _extra, must sit
     * where our extra field is, and the mixin's four slots next. */
    if (((PyTypeObject *)base)->tp_basicsize
        != (Py_ssize_t)(offsetof(tl_transport, flow_slots)
                        + sizeof(((tl_transport *)0)->flow_slots))
        || offsetof(tl_transport, flow_slots)
           != offsetof(tl_transport, extra) + sizeof(PyObject *)) {
        Py_DECREF(base);
        PyErr_SetString(PyExc_ImportError,
                        "asyncio.transports._FlowControlMixin has an unexpected layout");
        return -1;
    }
    r = tl_add_type(mod, &transport_spec, base, &st->SocketTransportType);
    Py_DECREF(base);
    return r;
}
