/* The waiting half of loop.sock_recv(), sock_recv_into() and sock_sendall().
 *
 * asyncio tries the socket call first and, when it would block, registers a
 * reader or writer Handle that retries it, plus a done callback that removes
 * the Handle.  The same steps here, with the retry registered as a C watcher
 * on the loop's fd table (tl_loop_watch), so a message costs no Python frame
 * beyond the caller's coroutine.  The socket calls themselves are the
 * socket object's methods, as in asyncio, so socket subclasses behave the
 * same on both loops.
 *
 * Loop._c_sock_recv(sock, n), _c_sock_recv_into(sock, buf) and
 * _c_sock_sendall(sock, data) return the result when the first attempt
 * completes, and otherwise a Future of the loop that the caller awaits.
 */

#include "tl.h"

enum { SOCKOP_RECV, SOCKOP_RECV_INTO, SOCKOP_SENDALL };

typedef struct {
    PyObject_HEAD
    tl_loop *loop;
    PyObject *fut;
    PyObject *sock;
    PyObject *arg;      /* recv: n as an int; recv_into: the buffer;
                           sendall: a memoryview of the data */
    Py_ssize_t pos;     /* sendall: bytes sent so far */
    Py_ssize_t len;     /* sendall: len(data) */
    int fd;
    int kind;
} tl_sockop;

static int
sockop_is_writer(tl_sockop *op)
{
    return op->kind == SOCKOP_SENDALL;
}

/* Whether the exception set means "try again when ready". */
static int
sockop_would_block(void)
{
    if (PyErr_ExceptionMatches(PyExc_BlockingIOError)
        || PyErr_ExceptionMatches(PyExc_InterruptedError)) {
        PyErr_Clear();
        return 1;
    }
    return 0;
}

/* One attempt.  Returns 1 with *out set when the operation completed, 0 if
 * it would block, -1 with an exception set if it failed. */
static int
sockop_attempt(tl_sockop *op, PyObject **out)
{
    tl_state *st = op->loop->st;
    PyObject *r;
    *out = NULL;
    switch (op->kind) {
    case SOCKOP_RECV:
        r = PyObject_CallMethodOneArg(op->sock, st->str_recv, op->arg);
        break;
    case SOCKOP_RECV_INTO:
        r = PyObject_CallMethodOneArg(op->sock, st->str_recv_into, op->arg);
        break;
    default: {
        PyObject *rest;
        Py_ssize_t n;
        if (op->pos == 0)
            rest = Py_NewRef(op->arg);
        else if ((rest = PySequence_GetSlice(op->arg, op->pos, op->len)) == NULL)
            return -1;
        r = PyObject_CallMethodOneArg(op->sock, st->str_send, rest);
        Py_DECREF(rest);
        if (r == NULL)
            break;
        n = PyNumber_AsSsize_t(r, PyExc_OverflowError);
        Py_DECREF(r);
        if (n == -1 && PyErr_Occurred())
            return -1;
        op->pos += n;
        if (op->pos < op->len)
            return 0;
        *out = Py_NewRef(Py_None);
        return 1;
    }
    }
    if (r == NULL)
        return sockop_would_block() ? 0 : -1;
    *out = r;
    return 1;
}

static void
sockop_unwatch(tl_sockop *op)
{
    tl_loop_unwatch(op->loop, op->fd, sockop_is_writer(op), (PyObject *)op);
}

/* Complete the future with what the attempt gave; an exception set on entry
 * goes to the future, except SystemExit and KeyboardInterrupt. */
static int
sockop_finish(tl_sockop *op, PyObject *result)
{
    PyObject *r;
    if (result == NULL) {
        PyObject *exc;
        if (PyErr_ExceptionMatches(PyExc_SystemExit)
            || PyErr_ExceptionMatches(PyExc_KeyboardInterrupt))
            return -1;
        exc = tl_err_get_raised();
        if (TL_FUTURE_CHECK_EXACT(op->loop->st, op->fut))
            r = tl_future_set_exception((tl_future *)op->fut, exc);
        else
            r = PyObject_CallMethodOneArg(op->fut, op->loop->st->str_set_exception,
                                          exc);
        Py_DECREF(exc);
    }
    else {
        if (TL_FUTURE_CHECK_EXACT(op->loop->st, op->fut))
            r = tl_future_set_result((tl_future *)op->fut, result);
        else
            r = PyObject_CallMethodOneArg(op->fut, op->loop->st->str_set_result,
                                          result);
        Py_DECREF(result);
    }
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static int
sockop_fut_done(tl_sockop *op)
{
    PyObject *r;
    int done;
    if (TL_FUTURE_CHECK_EXACT(op->loop->st, op->fut))
        return ((tl_future *)op->fut)->state != TL_PENDING;
    r = PyObject_CallMethod(op->fut, "done", NULL);
    if (r == NULL)
        return -1;
    done = PyObject_IsTrue(r);
    Py_DECREF(r);
    return done;
}

/* The fd is ready: retry. */
static int
sockop_ready(PyObject *obj)
{
    tl_sockop *op = (tl_sockop *)obj;
    PyObject *result;
    int done, r;
    Py_INCREF(op);
    done = sockop_fut_done(op);
    if (done != 0) {
        /* Cancelled (or failed to tell): the done callback unregisters. */
        Py_DECREF(op);
        return done < 0 ? -1 : 0;
    }
    r = sockop_attempt(op, &result);
    if (r == 0) {
        Py_DECREF(op);
        return 0;
    }
    sockop_unwatch(op);
    r = sockop_finish(op, result);
    Py_DECREF(op);
    return r;
}

/* The future's done callback: whatever completed it, stop watching, unless
 * another operation took the fd's slot since. */
static PyObject *
sockop_call(PyObject *self, PyObject *args, PyObject *kwds)
{
    (void)args;
    (void)kwds;
    sockop_unwatch((tl_sockop *)self);
    Py_RETURN_NONE;
}

static int
sockop_traverse(tl_sockop *op, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(op->loop);
    Py_VISIT(op->fut);
    Py_VISIT(op->sock);
    Py_VISIT(op->arg);
    return 0;
}

static int
sockop_clear(tl_sockop *op)
{
    Py_CLEAR(op->loop);
    Py_CLEAR(op->fut);
    Py_CLEAR(op->sock);
    Py_CLEAR(op->arg);
    return 0;
}

static void
sockop_dealloc(tl_sockop *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    sockop_clear(op);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyObject *
sockop_repr(tl_sockop *op)
{
    static const char *names[] = {"sock_recv", "sock_recv_into",
                                  "sock_sendall"};
    return PyUnicode_FromFormat("<%s fd=%d>", names[op->kind], op->fd);
}

static PyType_Slot sockop_slots[] = {
    {Py_tp_call, sockop_call},
    {Py_tp_traverse, sockop_traverse},
    {Py_tp_clear, sockop_clear},
    {Py_tp_dealloc, sockop_dealloc},
    {Py_tp_repr, sockop_repr},
    {0, NULL},
};

static PyType_Spec sockop_spec = {
    .name = "turboloop._core.SocketOperation",
    .basicsize = sizeof(tl_sockop),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = sockop_slots,
};

int
tl_sockop_init_type(PyObject *mod, tl_state *st)
{
    PyObject *be = PyImport_ImportModule("asyncio.base_events");
    if (be == NULL)
        return -1;
    /* asyncio's own reference to ssl: None where ssl is missing. */
    st->ssl_module = PyObject_GetAttrString(be, "ssl");
    Py_DECREF(be);
    if (st->ssl_module == NULL)
        return -1;
    return tl_add_type(mod, &sockop_spec, NULL, &st->SockOpType);
}

/* ------------------------------------------------------------------ */

/* asyncio's checks: not an SSLSocket, and in debug mode non-blocking. */
static int
sockop_check(tl_loop *loop, PyObject *sock)
{
    tl_state *st = loop->st;
    if (st->ssl_module != Py_None) {
        PyObject *cls = PyObject_GetAttrString(st->ssl_module, "SSLSocket");
        int is_ssl;
        if (cls == NULL)
            return -1;
        is_ssl = PyObject_IsInstance(sock, cls);
        Py_DECREF(cls);
        if (is_ssl < 0)
            return -1;
        if (is_ssl) {
            PyErr_SetString(PyExc_TypeError,
                            "Socket cannot be of type SSLSocket");
            return -1;
        }
    }
    if (loop->debug) {
        PyObject *t = PyObject_CallMethod(sock, "gettimeout", NULL), *zero;
        int nonzero;
        if (t == NULL)
            return -1;
        zero = PyLong_FromLong(0);
        nonzero = zero ? PyObject_RichCompareBool(t, zero, Py_NE) : -1;
        Py_XDECREF(zero);
        Py_DECREF(t);
        if (nonzero < 0)
            return -1;
        if (nonzero) {
            PyErr_SetString(PyExc_ValueError,
                            "the socket must be non-blocking");
            return -1;
        }
    }
    return 0;
}

/* Register op to retry when its fd is ready; returns the future. */
static PyObject *
sockop_wait(tl_sockop *op)
{
    tl_loop *loop = op->loop;
    PyObject *fdo, *r, *ctx;
    long fd;
    int rc;
    op->fut = PyObject_CallMethodNoArgs((PyObject *)loop,
                                        loop->st->str_create_future);
    if (op->fut == NULL)
        return NULL;
    fdo = PyObject_CallMethodNoArgs(op->sock, loop->st->str_fileno);
    if (fdo == NULL)
        return NULL;
    fd = PyLong_AsLong(fdo);
    if (fd == -1 && PyErr_Occurred()) {
        Py_DECREF(fdo);
        return NULL;
    }
    if (fd < 0 || fd > INT_MAX) {
        Py_DECREF(fdo);
        PyErr_Format(PyExc_ValueError, "Invalid file descriptor: %ld", fd);
        return NULL;
    }
    op->fd = (int)fd;
    r = PyObject_CallMethodOneArg((PyObject *)loop,
                                  loop->st->str_ensure_fd_no_transport, fdo);
    Py_DECREF(fdo);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    if (tl_loop_watch(loop, op->fd, sockop_is_writer(op), (PyObject *)op,
                      sockop_ready) < 0)
        return NULL;
    /* As asyncio's functools.partial callback: runs in a copy of the
     * current context, and removes the watcher however the future ends. */
    ctx = PyContext_CopyCurrent();
    if (ctx == NULL) {
        sockop_unwatch(op);
        return NULL;
    }
    if (TL_FUTURE_CHECK_EXACT(loop->st, op->fut))
        rc = tl_future_add_callback((tl_future *)op->fut, (PyObject *)op, ctx);
    else {
        PyObject *res = PyObject_CallMethodOneArg(
            op->fut, loop->st->str_add_done_callback, (PyObject *)op);
        rc = res == NULL ? -1 : 0;
        Py_XDECREF(res);
    }
    Py_DECREF(ctx);
    if (rc < 0) {
        sockop_unwatch(op);
        return NULL;
    }
    return Py_NewRef(op->fut);
}

static tl_sockop *
sockop_new(tl_loop *loop, PyObject *sock, int kind, PyObject *arg)
{
    tl_sockop *op = PyObject_GC_New(tl_sockop, loop->st->SockOpType);
    if (op == NULL)
        return NULL;
    op->loop = (tl_loop *)Py_NewRef(loop);
    op->fut = NULL;
    op->sock = Py_NewRef(sock);
    op->arg = arg;          /* stolen */
    op->pos = op->len = 0;
    op->fd = -1;
    op->kind = kind;
    PyObject_GC_Track(op);
    return op;
}

/* The common body: check, attempt once, else wait. */
static PyObject *
sockop_start(tl_loop *loop, PyObject *sock, int kind, PyObject *arg,
             Py_ssize_t len)
{
    tl_sockop *op;
    PyObject *result, *r;
    int rc;
    if (sockop_check(loop, sock) < 0) {
        Py_DECREF(arg);
        return NULL;
    }
    op = sockop_new(loop, sock, kind, arg);
    if (op == NULL) {
        Py_DECREF(arg);
        return NULL;
    }
    op->len = len;
    rc = sockop_attempt(op, &result);
    if (rc != 0) {
        Py_DECREF(op);
        return rc > 0 ? result : NULL;
    }
    r = sockop_wait(op);
    Py_DECREF(op);
    return r;
}

PyObject *
tl_sock_recv(tl_loop *loop, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "sock_recv() takes sock and n");
        return NULL;
    }
    return sockop_start(loop, args[0], SOCKOP_RECV, Py_NewRef(args[1]), 0);
}

PyObject *
tl_sock_recv_into(tl_loop *loop, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "sock_recv_into() takes sock and buf");
        return NULL;
    }
    return sockop_start(loop, args[0], SOCKOP_RECV_INTO, Py_NewRef(args[1]),
                        0);
}

PyObject *
tl_sock_sendall(tl_loop *loop, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *view;
    Py_ssize_t len;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "sock_sendall() takes sock and data");
        return NULL;
    }
    /* asyncio sends the object itself first and slices a memoryview of it
     * after a partial send; len() is the length it compares with. */
    len = PyObject_Size(args[1]);
    if (len < 0)
        return NULL;
    view = PyMemoryView_FromObject(args[1]);
    if (view == NULL)
        return NULL;
    return sockop_start(loop, args[0], SOCKOP_SENDALL, view, len);
}
