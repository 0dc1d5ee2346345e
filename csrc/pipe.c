/* pipe.c -- the pipe transports of connect_read_pipe() and
 * connect_write_pipe(), which subprocess pipes use too.
 *
 * ReadPipeTransport and WritePipeTransport are asyncio's
 * _UnixReadPipeTransport and _UnixWritePipeTransport with their per-event
 * work in C, laid out like the socket transport (transport.c): the loop
 * calls pipe_on_readable / pipe_on_writable straight from its ready queue,
 * reads go through the loop's receive buffer, and write() writes at once when
 * nothing is queued, queueing only the rest, which goes out with writev()
 * when the pipe is writable.  Water marks drive pause_writing() and
 * resume_writing() as asyncio's _FlowControlMixin does.
 *
 * Set-up (the fstat() check, non-blocking mode, scheduling
 * connection_made) is Python, in turboloop/_pipes.py.
 *
 * Contexts are asyncio's.  asyncio's pipe transports register bound methods
 * with the selector, and a Handle runs in a copy of the context current when
 * it was made: the reader's when reading starts (again at resume_reading()),
 * the writer's when write() first has to queue.  An I/O event here enters
 * that context for its whole run, as Handle._run does, so the protocol
 * callbacks it makes and the call_soon()s it schedules see what they would
 * see under asyncio.
 */
#include "tl.h"
#include "wqueue.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#if TL_HAVE_FIONREAD
#  include <sys/ioctl.h>
#endif

/* asyncio's _UnixReadPipeTransport.max_size */
#define PIPE_MAX_READ (256 * 1024)
#define PIPE_IOV 64
/* asyncio.constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES */
#define PIPE_LOST_WRITES_LOG 5
#define PIPE_HIGH_WATER (64 * 1024)

_Static_assert(PIPE_MAX_READ <= TL_RBUF_SIZE, "reads go to the loop's buffer");

typedef struct {
    PyObject_HEAD
    PyObject *extra;            /* asyncio.BaseTransport._extra; keep first */
    /* asyncio.transports._FlowControlMixin's four slots (write pipes); see
     * transport.h.  The state lives in the C fields below. */
    PyObject *flow_slots[4];
    tl_state *st;
    tl_loop *loop;
    PyObject *pipe;             /* the pipe object; NULL once closed */
    PyObject *protocol;         /* NULL once connection_lost() ran */
    PyObject *rctx;             /* the reader callback's context */
    PyObject *wctx;             /* the writer callback's context */
    PyObject *dict;
    PyObject *weakreflist;
    tl_wqueue wq;               /* what write() could not write at once */
    Py_ssize_t high, low;       /* water marks */
    Py_ssize_t conn_lost;
    int fd;
    char writer;                /* a WritePipeTransport */
    char closing;
    char paused;                /* pause_reading() */
    char protocol_paused;       /* pause_writing() was called */
    char watch_close;           /* write pipe: watch it to see the reader go */
    char rwatch;                /* the loop watches fd for us */
    char wwatch;
    char lost;                  /* connection_lost() ran (asyncio's _loop is
                                   None from then on) */
} tl_pipe;

static int pipe_on_readable(PyObject *obj);
static int pipe_on_writable(PyObject *obj);

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* Start watching one direction.  The callback's context is a copy of the
 * current one, as a Handle made by _add_reader()/_add_writer() would get. */
static int
pipe_watch(tl_pipe *self, int writer)
{
    char *flag = writer ? &self->wwatch : &self->rwatch;
    PyObject **ctx = writer ? &self->wctx : &self->rctx;
    PyObject *c;
    if (*flag)
        return 0;
    c = PyContext_CopyCurrent();
    if (c == NULL)
        return -1;
    if (tl_loop_watch(self->loop, self->fd, writer, (PyObject *)self,
                      writer ? pipe_on_writable : pipe_on_readable) < 0) {
        Py_DECREF(c);
        return -1;
    }
    Py_XSETREF(*ctx, c);
    *flag = 1;
    return 0;
}

static void
pipe_unwatch(tl_pipe *self, int writer)
{
    char *flag = writer ? &self->wwatch : &self->rwatch;
    if (!*flag)
        return;
    *flag = 0;
    tl_loop_unwatch(self->loop, self->fd, writer, (PyObject *)self);
}

static int
pipe_would_block(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

static int
pipe_exc_escapes(void)
{
    return PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)
           || PyErr_ExceptionMatches(PyExc_SystemExit);
}

static PyObject *
pipe_call_protocol(tl_pipe *self, PyObject *name, PyObject *arg)
{
    PyObject *r, *protocol = self->protocol, *argv[2];
    if (protocol == NULL)
        Py_RETURN_NONE;
    Py_INCREF(protocol);
    argv[0] = protocol;
    argv[1] = arg;
    r = PyObject_VectorcallMethod(
        name, argv, (arg ? 2 : 1) | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(protocol);
    return r;
}

/* loop.call_soon(fn, *args) with a Handle, as asyncio's transports do for
 * their one-off callbacks (eof_received). */
static int
pipe_call_soon_handle(tl_pipe *self, PyObject *fn)
{
    PyObject *argv[2] = {(PyObject *)self->loop, fn};
    PyObject *r = PyObject_VectorcallMethod(
        self->st->str_call_soon, argv, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET,
        NULL);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* call_soon(self._call_connection_lost, exc) in a copy of the current
 * context. */
static int
pipe_schedule_lost(tl_pipe *self, PyObject *exc)
{
    PyObject *fn, *ctx;
    int r = -1;
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

/* A log line through the Python side (cold): "%r <what>" about the
 * transport, or just what when about is NULL. */
static int
pipe_log(tl_pipe *self, const char *level, PyObject *about, const char *what)
{
    PyObject *r = PyObject_CallMethod((PyObject *)self->loop, "_pipe_log",
                                      "sOs", level, about ? about : Py_None,
                                      what);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* The transport's _close(exc): stop everything, drop the queue, schedule
 * connection_lost(). */
static int
pipe_close_impl(tl_pipe *self, PyObject *exc)
{
    self->closing = 1;
    if (self->wq.len > 0)
        pipe_unwatch(self, 1);
    tl_wq_clear(&self->wq);
    pipe_unwatch(self, 0);
    return pipe_schedule_lost(self, exc);
}

/* 1 if exc is an OSError asyncio only logs in debug mode: for a read pipe
 * EIO (a pty whose other side closed), for a write pipe any; 0 if not, -1
 * on error. */
static int
pipe_quiet_error(tl_pipe *self, PyObject *exc)
{
    PyObject *no;
    long e;
    if (!PyErr_GivenExceptionMatches(exc, PyExc_OSError))
        return 0;
    if (self->writer)
        return 1;
    no = PyObject_GetAttrString(exc, "errno");
    if (no == NULL)
        return -1;
    e = PyLong_Check(no) ? PyLong_AsLong(no) : -1;
    Py_DECREF(no);
    if (e == -1 && PyErr_Occurred())
        return -1;
    return e == EIO;
}

/* asyncio's _fatal_error(exc, message) for the exception currently set.
 * Returns -1 only when the exception must leave the loop. */
static int
pipe_fatal(tl_pipe *self, const char *message)
{
    PyObject *exc, *r;
    int quiet, res;
    if (pipe_exc_escapes())
        return -1;
    exc = tl_err_get_raised();
    quiet = pipe_quiet_error(self, exc);
    if (quiet < 0) {
        Py_DECREF(exc);
        return -1;
    }
    if (quiet) {
        if (self->loop->debug) {
            r = PyObject_CallMethod((PyObject *)self->loop, "_pipe_log_exc",
                                    "OsO", (PyObject *)self, message, exc);
            if (r == NULL) {
                Py_DECREF(exc);
                return -1;
            }
            Py_DECREF(r);
        }
    }
    else {
        PyObject *ctx = Py_BuildValue(
            "{s:s,s:O,s:O,s:O}", "message", message, "exception", exc,
            "transport", (PyObject *)self, "protocol",
            self->protocol ? self->protocol : Py_None);
        if (tl_call_exception_handler(self->st, (PyObject *)self->loop,
                                      ctx) < 0) {
            Py_DECREF(exc);
            return -1;
        }
    }
    res = pipe_close_impl(self, exc);
    Py_DECREF(exc);
    return res;
}

static int
pipe_set_oserror(int err)
{
    errno = err;
    PyErr_SetFromErrno(PyExc_OSError);
    return -1;
}

/* An exception escaped a protocol callback run by an I/O event: asyncio's
 * Handle reports it as "Exception in callback <transport>.<method>()". */
static int
pipe_report_callback_error(tl_pipe *self, const char *method)
{
    PyObject *exc, *fn, *r, *args;
    if (pipe_exc_escapes())
        return -1;
    exc = tl_err_get_raised();
    fn = PyObject_GetAttrString((PyObject *)self, method);
    args = PyTuple_New(0);
    if (fn == NULL || args == NULL) {
        Py_XDECREF(fn);
        Py_XDECREF(args);
        Py_DECREF(exc);
        return -1;
    }
    r = PyObject_CallMethod((PyObject *)self->loop, "_callback_error", "OOOO",
                            exc, Py_None, fn, args);
    Py_DECREF(fn);
    Py_DECREF(args);
    Py_DECREF(exc);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* Flow control, as asyncio's _FlowControlMixin. */
static int
pipe_protocol_error(tl_pipe *self, const char *message)
{
    PyObject *exc, *ctx;
    if (pipe_exc_escapes())
        return -1;
    exc = tl_err_get_raised();
    ctx = Py_BuildValue("{s:s,s:O,s:O,s:O}", "message", message,
                        "exception", exc, "transport", (PyObject *)self,
                        "protocol", self->protocol ? self->protocol : Py_None);
    Py_DECREF(exc);
    return tl_call_exception_handler(self->st, (PyObject *)self->loop, ctx);
}

static int
pipe_maybe_pause_protocol(tl_pipe *self)
{
    PyObject *r;
    if (self->wq.size <= self->high || self->protocol_paused)
        return 0;
    self->protocol_paused = 1;
    r = pipe_call_protocol(self, self->st->str_pause_writing, NULL);
    if (r == NULL)
        return pipe_protocol_error(self, "protocol.pause_writing() failed");
    Py_DECREF(r);
    return 0;
}

static int
pipe_maybe_resume_protocol(tl_pipe *self)
{
    PyObject *r;
    if (!self->protocol_paused || self->wq.size > self->low)
        return 0;
    self->protocol_paused = 0;
    r = pipe_call_protocol(self, self->st->str_resume_writing, NULL);
    if (r == NULL)
        return pipe_protocol_error(self, "protocol.resume_writing() failed");
    Py_DECREF(r);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Reading (ReadPipeTransport)                                         */
/* ------------------------------------------------------------------ */

/* Read what is there into a new bytes object: NULL with an exception, or
 * None (a new reference) when nothing was read; *got is the byte count, 0
 * at end of file.
 *
 * When the kernel says how much is waiting (FIONREAD), the bytes object is
 * made that size first and read into directly, which saves copying every
 * chunk out of the loop's buffer; otherwise the read goes through that
 * buffer. */
static PyObject *
pipe_read_chunk(tl_pipe *self, ssize_t *got)
{
    PyObject *data;
#if TL_HAVE_FIONREAD
    int avail = 0;
    if (ioctl(self->fd, FIONREAD, &avail) == 0 && avail > 0) {
        ssize_t want = avail < PIPE_MAX_READ ? avail : PIPE_MAX_READ;
        data = PyBytes_FromStringAndSize(NULL, want);
        if (data == NULL)
            return NULL;
        do {
            *got = read(self->fd, PyBytes_AS_STRING(data), (size_t)want);
        } while (*got < 0 && errno == EINTR);
        if (*got == want)
            return data;
        if (*got > 0) {
            /* Less than announced (someone else read too): a bytes object
             * of the right size. */
            PyObject *part = PyBytes_FromStringAndSize(PyBytes_AS_STRING(data),
                                                       *got);
            Py_DECREF(data);
            return part;
        }
        Py_DECREF(data);
        if (*got == 0)
            return Py_NewRef(Py_None);
        if (pipe_would_block(errno)) {
            *got = -1;
            return Py_NewRef(Py_None);
        }
        return PyErr_SetFromErrno(PyExc_OSError);
    }
#endif
    if (self->loop->rbuf == NULL) {
        self->loop->rbuf = malloc(TL_RBUF_SIZE);
        if (self->loop->rbuf == NULL)
            return PyErr_NoMemory();
    }
    do {
        *got = read(self->fd, self->loop->rbuf, PIPE_MAX_READ);
    } while (*got < 0 && errno == EINTR);
    if (*got > 0)
        return PyBytes_FromStringAndSize(self->loop->rbuf, *got);
    if (*got < 0 && !pipe_would_block(errno))
        return PyErr_SetFromErrno(PyExc_OSError);
    return Py_NewRef(Py_None);
}

static int
pipe_read_ready(tl_pipe *self)
{
    PyObject *data, *r, *fn;
    ssize_t got = 0;
    data = pipe_read_chunk(self, &got);
    if (data == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_OSError))
            return -1;
        return pipe_fatal(self, "Fatal read error on pipe transport");
    }
    if (data == Py_None) {
        Py_DECREF(data);
        if (got < 0)
            return 0;       /* nothing after all */
    }
    else {
        r = pipe_call_protocol(self, self->st->str_data_received, data);
        Py_DECREF(data);
        if (r == NULL)
            return pipe_report_callback_error(self, "_read_ready");
        Py_DECREF(r);
        return 0;
    }
    /* End of file: the other side closed. */
    if (self->loop->debug
        && pipe_log(self, "info", (PyObject *)self, "was closed by peer") < 0)
        return -1;
    self->closing = 1;
    pipe_unwatch(self, 0);
    if (self->protocol != NULL) {
        fn = PyObject_GetAttr(self->protocol, self->st->str_eof_received);
        if (fn == NULL)
            return pipe_report_callback_error(self, "_read_ready");
        r = pipe_call_soon_handle(self, fn) < 0 ? NULL : Py_None;
        Py_DECREF(fn);
        if (r == NULL)
            return -1;
    }
    return pipe_schedule_lost(self, NULL);
}

/* ------------------------------------------------------------------ */
/* Writing (WritePipeTransport)                                        */
/* ------------------------------------------------------------------ */

static PyObject *pipe_call_connection_lost(tl_pipe *self, PyObject *exc);

/* The fd of a write pipe turned readable: the reading side went away. */
static int
pipe_peer_closed(tl_pipe *self)
{
    PyObject *exc = NULL;
    int r;
    if (self->loop->debug
        && pipe_log(self, "info", (PyObject *)self, "was closed by peer") < 0)
        return -1;
    if (self->wq.len > 0) {
        exc = PyObject_CallNoArgs(PyExc_BrokenPipeError);
        if (exc == NULL)
            return -1;
    }
    r = pipe_close_impl(self, exc);
    Py_XDECREF(exc);
    return r;
}

/* Write what is queued, as long as the pipe takes it all.  Returns 0 with
 * *err 0 when done or blocked, 0 with *err set for a write error, -1 for a
 * Python error. */
static void
pipe_flush(tl_pipe *self, int *err)
{
    struct iovec iov[PIPE_IOV];
    *err = 0;
    while (self->wq.len > 0) {
        size_t want;
        Py_ssize_t n = tl_wq_iov(&self->wq, iov, PIPE_IOV, &want);
        ssize_t sent;
        do {
            sent = writev(self->fd, iov, (int)n);
        } while (sent < 0 && errno == EINTR);
        if (sent < 0) {
            if (!pipe_would_block(errno))
                *err = errno;
            return;
        }
        tl_wq_consume(&self->wq, sent);
        if ((size_t)sent < want)
            return;
    }
}

static int
pipe_write_ready(tl_pipe *self)
{
    int err;
    if (self->wq.len == 0)
        return 0;
    pipe_flush(self, &err);
    if (err != 0) {
        tl_wq_clear(&self->wq);
        self->conn_lost++;
        /* The writer goes here: _fatal_error() finds the queue empty. */
        pipe_unwatch(self, 1);
        pipe_set_oserror(err);
        return pipe_fatal(self, "Fatal write error on pipe transport");
    }
    if (self->wq.len > 0)
        return 0;
    /* All written.  resume_writing() may write again. */
    pipe_unwatch(self, 1);
    if (pipe_maybe_resume_protocol(self) < 0)
        return -1;
    if (self->closing) {
        PyObject *r;
        pipe_unwatch(self, 0);
        r = pipe_call_connection_lost(self, Py_None);
        if (r == NULL)
            return pipe_report_callback_error(self, "_write_ready");
        Py_DECREF(r);
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Events                                                              */
/* ------------------------------------------------------------------ */

/* What the loop calls when the fd is readable or writable.  The event runs
 * in the context of the callback asyncio would have registered; the
 * reference is held since a callback may replace it (resume_reading()). */
static int
pipe_on_readable(PyObject *obj)
{
    tl_pipe *self = (tl_pipe *)obj;
    PyObject *ctx;
    int r;
    if (!self->rwatch)
        return 0;       /* unwatched after the event was queued */
    ctx = Py_NewRef(self->rctx);
    if (PyContext_Enter(ctx) < 0) {
        Py_DECREF(ctx);
        return -1;
    }
    r = self->writer ? pipe_peer_closed(self) : pipe_read_ready(self);
    if (PyContext_Exit(ctx) < 0)
        r = -1;
    Py_DECREF(ctx);
    return r;
}

static int
pipe_on_writable(PyObject *obj)
{
    tl_pipe *self = (tl_pipe *)obj;
    PyObject *ctx;
    int r;
    if (!self->wwatch)
        return 0;
    ctx = Py_NewRef(self->wctx);
    if (PyContext_Enter(ctx) < 0) {
        Py_DECREF(ctx);
        return -1;
    }
    r = pipe_write_ready(self);
    if (PyContext_Exit(ctx) < 0)
        r = -1;
    Py_DECREF(ctx);
    return r;
}

/* _read_ready() and _write_ready(), callable from Python as asyncio's. */
static PyObject *
pipe_read_ready_py(tl_pipe *self, PyObject *Py_UNUSED(ignored))
{
    int r;
    if (self->lost)
        Py_RETURN_NONE;
    r = self->writer ? pipe_peer_closed(self) : pipe_read_ready(self);
    if (r < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
pipe_write_ready_py(tl_pipe *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->lost && pipe_write_ready(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ */
/* Write API                                                           */
/* ------------------------------------------------------------------ */

/* write() while the pipe is closing or lost: count it, warn past a
 * threshold. */
static int
pipe_lost_write(tl_pipe *self)
{
    if (self->conn_lost >= PIPE_LOST_WRITES_LOG
        && pipe_log(self, "warning", NULL,
                    "pipe closed by peer or os.write(pipe, data) raised "
                    "exception.") < 0)
        return -1;
    self->conn_lost++;
    return 0;
}

static PyObject *
pipe_write(tl_pipe *self, PyObject *data)
{
    Py_buffer view;
    ssize_t sent = 0;
    PyObject *chunk;
    if (!PyBytes_Check(data) && !PyByteArray_Check(data)
        && !PyMemoryView_Check(data)) {
        /* asyncio asserts the type. */
        PyObject *r = PyObject_Repr(data);
        if (r != NULL) {
            PyErr_SetObject(PyExc_AssertionError, r);
            Py_DECREF(r);
        }
        return NULL;
    }
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        /* A memoryview that is not contiguous: asyncio's os.write() fails
         * on it when nothing is queued (a fatal error), its buffer's +=
         * otherwise (the error leaves write()). */
        Py_ssize_t n;
        PyObject *exc;
        if (!PyErr_ExceptionMatches(PyExc_BufferError))
            return NULL;
        exc = tl_err_get_raised();
        n = PyObject_Size(data);
        if (n <= 0 || self->conn_lost || self->closing) {
            Py_DECREF(exc);
            if (n <= 0)
                return n < 0 ? NULL : Py_NewRef(Py_None);
            return pipe_lost_write(self) < 0 ? NULL : Py_NewRef(Py_None);
        }
        tl_err_set_raised(exc);
        if (self->wq.len > 0)
            return NULL;
        self->conn_lost++;
        if (pipe_fatal(self, "Fatal write error on pipe transport") < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    if (view.len == 0)
        goto done;
    if (self->conn_lost || self->closing) {
        PyBuffer_Release(&view);
        if (pipe_lost_write(self) < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    if (self->wq.len == 0) {
        /* Nothing queued: try to write it all now. */
        do {
            sent = write(self->fd, view.buf, (size_t)view.len);
        } while (sent < 0 && errno == EINTR);
        if (sent < 0) {
            int err = errno;
            if (!pipe_would_block(err)) {
                PyBuffer_Release(&view);
                self->conn_lost++;
                pipe_set_oserror(err);
                if (pipe_fatal(self,
                               "Fatal write error on pipe transport") < 0)
                    return NULL;
                Py_RETURN_NONE;
            }
            sent = 0;
        }
        if (sent == view.len)
            goto done;
        if (pipe_watch(self, 1) < 0) {
            PyBuffer_Release(&view);
            return NULL;
        }
    }
    /* Queue the rest.  A bytes object is immutable: queue it as it is,
     * with what was written skipped; anything else is copied, since it may
     * change after write() returns. */
    if (PyBytes_CheckExact(data)) {
        chunk = Py_NewRef(data);
    }
    else {
        chunk = PyBytes_FromStringAndSize((char *)view.buf + sent,
                                          view.len - sent);
        sent = 0;
    }
    PyBuffer_Release(&view);
    if (chunk == NULL || tl_wq_push_rest(&self->wq, chunk, sent) < 0)
        return NULL;
    if (pipe_maybe_pause_protocol(self) < 0)
        return NULL;
    Py_RETURN_NONE;
done:
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyObject *
pipe_write_eof(tl_pipe *self, PyObject *Py_UNUSED(ignored))
{
    if (self->closing || self->lost)
        Py_RETURN_NONE;
    self->closing = 1;
    if (self->wq.len == 0) {
        pipe_unwatch(self, 0);
        if (pipe_schedule_lost(self, NULL) < 0)
            return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
pipe_can_write_eof(tl_pipe *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    Py_RETURN_TRUE;
}

static PyObject *
pipe_abort(tl_pipe *self, PyObject *Py_UNUSED(ignored))
{
    if (self->lost)
        Py_RETURN_NONE;
    if (pipe_close_impl(self, NULL) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ */
/* Closing                                                             */
/* ------------------------------------------------------------------ */

static PyObject *
pipe_close(tl_pipe *self, PyObject *Py_UNUSED(ignored))
{
    if (self->writer) {
        /* write_eof() is all a write pipe needs to close. */
        if (self->pipe != NULL && !self->closing)
            return pipe_write_eof(self, NULL);
        Py_RETURN_NONE;
    }
    if (self->closing || self->lost)
        Py_RETURN_NONE;
    if (pipe_close_impl(self, NULL) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* protocol.connection_lost(exc), then close the pipe and forget the
 * protocol, as asyncio's _call_connection_lost. */
static PyObject *
pipe_call_connection_lost(tl_pipe *self, PyObject *exc)
{
    PyObject *r, *pipe, *err;
    if (self->lost)
        Py_RETURN_NONE;
    r = pipe_call_protocol(self, self->st->str_connection_lost, exc);
    err = r == NULL ? tl_err_get_raised() : NULL;
    self->lost = 1;
    pipe_unwatch(self, 0);
    pipe_unwatch(self, 1);
    pipe = self->pipe;
    self->pipe = NULL;
    if (pipe != NULL) {
        PyObject *c = PyObject_CallMethod(pipe, "close", NULL);
        Py_DECREF(pipe);
        if (c == NULL) {
            if (err == NULL)
                err = tl_err_get_raised();
            else
                PyErr_Clear();
        }
        Py_XDECREF(c);
    }
    Py_CLEAR(self->protocol);
    if (err != NULL) {
        Py_XDECREF(r);
        tl_err_set_raised(err);
        return NULL;
    }
    return r;
}

/* ------------------------------------------------------------------ */
/* Reading state                                                       */
/* ------------------------------------------------------------------ */

static PyObject *
pipe_is_closing(tl_pipe *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->closing);
}

static PyObject *
pipe_is_reading(tl_pipe *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(!self->paused && !self->closing);
}

static PyObject *
pipe_pause_reading(tl_pipe *self, PyObject *Py_UNUSED(ignored))
{
    if (self->paused || self->closing)
        Py_RETURN_NONE;
    self->paused = 1;
    pipe_unwatch(self, 0);
    if (self->loop->debug
        && pipe_log(self, "debug", (PyObject *)self, "pauses reading") < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
pipe_resume_reading(tl_pipe *self, PyObject *Py_UNUSED(ignored))
{
    if (self->closing || !self->paused)
        Py_RETURN_NONE;
    self->paused = 0;
    if (pipe_watch(self, 0) < 0)
        return NULL;
    if (self->loop->debug
        && pipe_log(self, "debug", (PyObject *)self, "resumes reading") < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* Scheduled right after connection_made(): a read pipe starts reading, a
 * write pipe of a FIFO or a socket starts watching for the reader to go. */
static PyObject *
pipe_start_reading(tl_pipe *self, PyObject *Py_UNUSED(ignored))
{
    if (self->lost || self->pipe == NULL)
        Py_RETURN_NONE;
    if (self->writer) {
        if (!self->watch_close || self->closing)
            Py_RETURN_NONE;
    }
    else if (self->paused || self->closing)
        Py_RETURN_NONE;
    if (pipe_watch(self, 0) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ */
/* Flow control                                                        */
/* ------------------------------------------------------------------ */

static int
pipe_size_arg(PyObject *o, Py_ssize_t *out, int *given)
{
    if (o == NULL || o == Py_None) {
        *given = 0;
        return 0;
    }
    *given = 1;
    *out = PyNumber_AsSsize_t(o, PyExc_OverflowError);
    if (*out == -1 && PyErr_Occurred())
        return -1;
    return 0;
}

/* (high=None, low=None) into water marks, as _FlowControlMixin. */
static int
pipe_parse_limits(tl_pipe *self, PyObject *args, PyObject *kwds,
                  const char *fmt)
{
    static char *kwlist[] = {"high", "low", NULL};
    PyObject *ho = Py_None, *lo = Py_None;
    Py_ssize_t high = 0, low = 0;
    int hg, lg;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, fmt, kwlist, &ho, &lo))
        return -1;
    if (pipe_size_arg(ho, &high, &hg) < 0 || pipe_size_arg(lo, &low, &lg) < 0)
        return -1;
    if (!hg)
        high = lg ? 4 * low : PIPE_HIGH_WATER;
    if (!lg)
        low = high / 4;
    if (!(high >= low && low >= 0)) {
        PyErr_Format(PyExc_ValueError,
                     "high (%zd) must be >= low (%zd) must be >= 0",
                     high, low);
        return -1;
    }
    self->high = high;
    self->low = low;
    return 0;
}

static PyObject *
pipe_set_write_buffer_limits(tl_pipe *self, PyObject *args, PyObject *kwds)
{
    if (pipe_parse_limits(self, args, kwds, "|OO:set_write_buffer_limits") < 0
        || pipe_maybe_pause_protocol(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
pipe_set_write_buffer_limits_priv(tl_pipe *self, PyObject *args,
                                  PyObject *kwds)
{
    if (pipe_parse_limits(self, args, kwds,
                          "|OO:_set_write_buffer_limits") < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
pipe_get_write_buffer_limits(tl_pipe *self, PyObject *Py_UNUSED(ignored))
{
    return Py_BuildValue("(nn)", self->low, self->high);
}

static PyObject *
pipe_get_write_buffer_size(tl_pipe *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromSsize_t(self->wq.size);
}

static PyObject *
pipe_maybe_pause_protocol_py(tl_pipe *self, PyObject *Py_UNUSED(ignored))
{
    if (pipe_maybe_pause_protocol(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
pipe_maybe_resume_protocol_py(tl_pipe *self, PyObject *Py_UNUSED(ignored))
{
    if (pipe_maybe_resume_protocol(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ */
/* Protocol and private API                                            */
/* ------------------------------------------------------------------ */

static PyObject *
pipe_set_protocol(tl_pipe *self, PyObject *protocol)
{
    Py_XSETREF(self->protocol, Py_NewRef(protocol));
    Py_RETURN_NONE;
}

static PyObject *
pipe_get_protocol(tl_pipe *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self->protocol ? self->protocol : Py_None);
}

static PyObject *
pipe_call_connection_lost_py(tl_pipe *self, PyObject *exc)
{
    return pipe_call_connection_lost(self, exc);
}

static PyObject *
pipe_close_py(tl_pipe *self, PyObject *const *args, Py_ssize_t nargs)
{
    /* _close(exc=None) */
    PyObject *exc = nargs > 0 ? args[0] : Py_None;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "_close() takes at most 1 argument");
        return NULL;
    }
    if (self->lost)
        Py_RETURN_NONE;
    if (pipe_close_impl(self, exc == Py_None ? NULL : exc) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
pipe_fatal_error_py(tl_pipe *self, PyObject *const *args, Py_ssize_t nargs)
{
    /* _fatal_error(exc, message='Fatal error on pipe transport') */
    const char *m = "Fatal error on pipe transport";
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError,
                        "_fatal_error() takes exc and an optional message");
        return NULL;
    }
    if (nargs == 2) {
        m = PyUnicode_AsUTF8(args[1]);
        if (m == NULL)
            return NULL;
    }
    if (!PyExceptionInstance_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "_fatal_error() needs an exception");
        return NULL;
    }
    if (self->lost)
        Py_RETURN_NONE;
    tl_err_set_raised(Py_NewRef(args[0]));
    if (pipe_fatal(self, m) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ */
/* Object lifecycle                                                    */
/* ------------------------------------------------------------------ */

/* ReadPipeTransport(loop, pipe, fd, protocol, extra) and
 * WritePipeTransport(loop, pipe, fd, protocol, extra, watch_close): the
 * caller has checked the fd and made it non-blocking. */
static PyObject *
pipe_tp_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    tl_state *st = tl_state_from_type(tp);
    PyObject *loop, *pipe, *protocol, *extra;
    int fd, watch_close = 0;
    tl_pipe *self;
    if (st == NULL)
        return NULL;
    if (kwds != NULL && PyDict_GET_SIZE(kwds) > 0) {
        PyErr_SetString(PyExc_TypeError,
                        "pipe transports take no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O!OiOO!|p:PipeTransport", st->LoopType,
                          &loop, &pipe, &fd, &protocol, &PyDict_Type, &extra,
                          &watch_close))
        return NULL;
    if (fd < 0) {
        PyErr_SetString(PyExc_ValueError, "the pipe is closed");
        return NULL;
    }
    self = (tl_pipe *)tp->tp_alloc(tp, 0);
    if (self == NULL)
        return NULL;
    self->st = st;
    self->fd = fd;
    self->writer = (char)PyType_IsSubtype(tp, st->WritePipeTransportType);
    self->watch_close = (char)watch_close;
    self->extra = Py_NewRef(extra);
    self->loop = (tl_loop *)Py_NewRef(loop);
    self->pipe = Py_NewRef(pipe);
    self->protocol = Py_NewRef(protocol);
    self->high = PIPE_HIGH_WATER;
    self->low = PIPE_HIGH_WATER / 4;
    return (PyObject *)self;
}

/* Everything happens in tp_new; this keeps asyncio's BaseTransport.__init__
 * from running on the arguments. */
static int
pipe_tp_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    (void)self;
    (void)args;
    (void)kwds;
    return 0;
}

static int
pipe_traverse(tl_pipe *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->extra);
    Py_VISIT(self->loop);
    Py_VISIT(self->pipe);
    Py_VISIT(self->protocol);
    Py_VISIT(self->rctx);
    Py_VISIT(self->wctx);
    Py_VISIT(self->dict);
    for (int k = 0; k < 4; k++)
        Py_VISIT(self->flow_slots[k]);
    return tl_wq_traverse(&self->wq, visit, arg);
}

static int
pipe_clear(tl_pipe *self)
{
    Py_CLEAR(self->extra);
    Py_CLEAR(self->protocol);
    Py_CLEAR(self->rctx);
    Py_CLEAR(self->wctx);
    Py_CLEAR(self->dict);
    for (int k = 0; k < 4; k++)
        Py_CLEAR(self->flow_slots[k]);
    tl_wq_clear(&self->wq);
    /* pipe and loop stay until dealloc: the finalizer closes the pipe. */
    return 0;
}

/* Like asyncio's __del__: an unclosed transport warns and closes its
 * pipe. */
static void
pipe_finalize(PyObject *obj)
{
    tl_pipe *self = (tl_pipe *)obj;
    PyObject *exc, *r;
    if (self->pipe == NULL)
        return;
    exc = tl_err_get_raised();
    if (PyErr_ResourceWarning(obj, 1, "unclosed transport %R", obj) < 0)
        PyErr_WriteUnraisable(obj);
    r = PyObject_CallMethod(self->pipe, "close", NULL);
    if (r == NULL)
        PyErr_WriteUnraisable(obj);
    Py_XDECREF(r);
    Py_CLEAR(self->pipe);
    if (exc != NULL)
        tl_err_set_raised(exc);
}

static void
pipe_dealloc(tl_pipe *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    /* The finalizer runs while the object is still tracked, so that a
     * resurrected object stays a proper GC object. */
    if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0)
        return;     /* resurrected */
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    pipe_clear(self);
    Py_CLEAR(self->pipe);
    Py_CLEAR(self->loop);
    tp->tp_free(self);
    Py_DECREF(tp);
}

/* asyncio's repr: "<Name [closed|closing] fd=N polling|idle [bufsize=N]>",
 * "open" when the loop is closed, "closed" once the pipe is. */
static PyObject *
pipe_repr(tl_pipe *self)
{
    PyObject *name = PyType_GetName(Py_TYPE(self)), *r;
    const char *state = self->pipe == NULL ? " closed"
                        : self->closing ? " closing" : "";
    if (name == NULL)
        return NULL;
    if (self->pipe == NULL)
        r = PyUnicode_FromFormat("<%U%s fd=%d closed>", name, state, self->fd);
    else if (self->loop->closed)
        r = PyUnicode_FromFormat("<%U%s fd=%d open>", name, state, self->fd);
    else if (self->writer)
        r = PyUnicode_FromFormat("<%U%s fd=%d %s bufsize=%zd>", name, state,
                                 self->fd, self->wwatch ? "polling" : "idle",
                                 self->wq.size);
    else
        r = PyUnicode_FromFormat("<%U%s fd=%d %s>", name, state, self->fd,
                                 self->rwatch ? "polling" : "idle");
    Py_DECREF(name);
    return r;
}

/* ------------------------------------------------------------------ */
/* Attributes                                                          */
/* ------------------------------------------------------------------ */

static PyObject *
pipe_get_pipe(tl_pipe *self, void *Py_UNUSED(c))
{
    return Py_NewRef(self->pipe ? self->pipe : Py_None);
}

/* asyncio's tests forget a pipe they closed themselves by setting _pipe to
 * None, which also silences the finalizer's warning. */
static int
pipe_set_pipe(tl_pipe *self, PyObject *v, void *Py_UNUSED(c))
{
    if (v == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete _pipe");
        return -1;
    }
    Py_XSETREF(self->pipe, v == Py_None ? NULL : Py_NewRef(v));
    return 0;
}

static PyObject *
pipe_get_loop(tl_pipe *self, void *Py_UNUSED(c))
{
    if (self->lost)
        Py_RETURN_NONE;
    return Py_NewRef((PyObject *)self->loop);
}

static PyObject *
pipe_get_protocol_attr(tl_pipe *self, void *Py_UNUSED(c))
{
    return Py_NewRef(self->protocol ? self->protocol : Py_None);
}

static PyObject *
pipe_get_buffer(tl_pipe *self, void *Py_UNUSED(c))
{
    /* asyncio keeps a bytearray; this is a copy of what is queued. */
    PyObject *b = PyByteArray_FromStringAndSize(NULL, self->wq.size);
    if (b == NULL)
        return NULL;
    tl_wq_copy(&self->wq, PyByteArray_AS_STRING(b));
    return b;
}

#define PIPE_COMMON_METHODS                                                \
    {"is_closing", (PyCFunction)pipe_is_closing, METH_NOARGS, NULL},      \
    {"close", (PyCFunction)pipe_close, METH_NOARGS,                       \
     "Close the transport."},                                             \
    {"set_protocol", (PyCFunction)pipe_set_protocol, METH_O, NULL},       \
    {"get_protocol", (PyCFunction)pipe_get_protocol, METH_NOARGS, NULL},  \
    {"_start_reading", (PyCFunction)pipe_start_reading, METH_NOARGS,      \
     NULL},                                                               \
    {"_read_ready", (PyCFunction)pipe_read_ready_py, METH_NOARGS, NULL},  \
    {"_call_connection_lost",                                             \
     (PyCFunction)pipe_call_connection_lost_py, METH_O, NULL},            \
    {"_close", (PyCFunction)(void (*)(void))pipe_close_py,                \
     METH_FASTCALL, NULL},                                                \
    {"_fatal_error", (PyCFunction)(void (*)(void))pipe_fatal_error_py,    \
     METH_FASTCALL, NULL}

static PyMethodDef pipe_read_methods[] = {
    PIPE_COMMON_METHODS,
    {"pause_reading", (PyCFunction)pipe_pause_reading, METH_NOARGS, NULL},
    {"resume_reading", (PyCFunction)pipe_resume_reading, METH_NOARGS, NULL},
    {"is_reading", (PyCFunction)pipe_is_reading, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef pipe_write_methods[] = {
    PIPE_COMMON_METHODS,
    {"write", (PyCFunction)pipe_write, METH_O,
     "Write bytes to the pipe; never blocks."},
    {"write_eof", (PyCFunction)pipe_write_eof, METH_NOARGS,
     "Close the pipe once the buffered data is written."},
    {"can_write_eof", (PyCFunction)pipe_can_write_eof, METH_NOARGS, NULL},
    {"abort", (PyCFunction)pipe_abort, METH_NOARGS,
     "Close the transport now, dropping buffered data."},
    {"_write_ready", (PyCFunction)pipe_write_ready_py, METH_NOARGS, NULL},
    {"set_write_buffer_limits",
     (PyCFunction)(void (*)(void))pipe_set_write_buffer_limits,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"_set_write_buffer_limits",
     (PyCFunction)(void (*)(void))pipe_set_write_buffer_limits_priv,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"get_write_buffer_limits", (PyCFunction)pipe_get_write_buffer_limits,
     METH_NOARGS, NULL},
    {"get_write_buffer_size", (PyCFunction)pipe_get_write_buffer_size,
     METH_NOARGS, NULL},
    {"_maybe_pause_protocol", (PyCFunction)pipe_maybe_pause_protocol_py,
     METH_NOARGS, NULL},
    {"_maybe_resume_protocol", (PyCFunction)pipe_maybe_resume_protocol_py,
     METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef pipe_getset[] = {
    {"_pipe", (getter)pipe_get_pipe, (setter)pipe_set_pipe, NULL, NULL},
    {"_loop", (getter)pipe_get_loop, NULL, NULL, NULL},
    {"_protocol", (getter)pipe_get_protocol_attr, NULL, NULL, NULL},
    {"_buffer", (getter)pipe_get_buffer, NULL, NULL, NULL},
    {NULL},
};

static PyMemberDef pipe_members[] = {
    {"_fileno", T_INT, offsetof(tl_pipe, fd), READONLY, NULL},
    {"_closing", T_BOOL, offsetof(tl_pipe, closing), READONLY, NULL},
    {"_paused", T_BOOL, offsetof(tl_pipe, paused), READONLY, NULL},
    {"_protocol_paused", T_BOOL, offsetof(tl_pipe, protocol_paused),
     READONLY, NULL},
    {"_conn_lost", T_PYSSIZET, offsetof(tl_pipe, conn_lost), READONLY, NULL},
    {"_high_water", T_PYSSIZET, offsetof(tl_pipe, high), READONLY, NULL},
    {"_low_water", T_PYSSIZET, offsetof(tl_pipe, low), READONLY, NULL},
    {"__dictoffset__", T_PYSSIZET, offsetof(tl_pipe, dict), READONLY, NULL},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(tl_pipe, weakreflist),
     READONLY, NULL},
    {NULL},
};

#define PIPE_SLOTS(methods, doc)                                           \
    {                                                                      \
        {Py_tp_new, pipe_tp_new},                                          \
        {Py_tp_init, pipe_tp_init},                                        \
        {Py_tp_dealloc, pipe_dealloc},                                     \
        {Py_tp_finalize, pipe_finalize},                                   \
        {Py_tp_traverse, pipe_traverse},                                   \
        {Py_tp_clear, pipe_clear},                                         \
        {Py_tp_repr, pipe_repr},                                           \
        {Py_tp_methods, methods},                                          \
        {Py_tp_getset, pipe_getset},                                       \
        {Py_tp_members, pipe_members},                                     \
        {Py_tp_doc, doc},                                                  \
        {0, NULL},                                                         \
    }

static PyType_Slot pipe_read_slots[] = PIPE_SLOTS(
    pipe_read_methods, "The read end of a pipe, driven by the loop.");
static PyType_Slot pipe_write_slots[] = PIPE_SLOTS(
    pipe_write_methods, "The write end of a pipe, driven by the loop.");

static PyType_Spec pipe_read_spec = {
    "turboloop._core.ReadPipeTransport", sizeof(tl_pipe), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    pipe_read_slots,
};

static PyType_Spec pipe_write_spec = {
    "turboloop._core.WritePipeTransport", sizeof(tl_pipe), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    pipe_write_slots,
};

static PyObject *
pipe_asyncio_class(const char *name)
{
    PyObject *mod = PyImport_ImportModule("asyncio.transports"), *cls;
    if (mod == NULL)
        return NULL;
    cls = PyObject_GetAttrString(mod, name);
    Py_DECREF(mod);
    return cls;
}

int
tl_pipe_init_types(PyObject *mod, tl_state *st)
{
    PyObject *rbase, *wbase;
    int r;
    /* asyncio's read pipe is a ReadTransport; its write pipe a
     * _FlowControlMixin (a Transport) and a WriteTransport.  Our layout
     * extends either: the _extra slot first, then the mixin's four. */
    rbase = pipe_asyncio_class("ReadTransport");
    if (rbase == NULL)
        return -1;
    wbase = pipe_asyncio_class("_FlowControlMixin");
    if (wbase == NULL) {
        Py_DECREF(rbase);
        return -1;
    }
    if (((PyTypeObject *)rbase)->tp_basicsize
            != (Py_ssize_t)(offsetof(tl_pipe, extra) + sizeof(PyObject *))
        || ((PyTypeObject *)wbase)->tp_basicsize
            != (Py_ssize_t)(offsetof(tl_pipe, flow_slots)
                            + sizeof(((tl_pipe *)0)->flow_slots))) {
        Py_DECREF(rbase);
        Py_DECREF(wbase);
        PyErr_SetString(PyExc_ImportError,
                        "asyncio's transport classes have an unexpected "
                        "layout");
        return -1;
    }
    r = tl_add_type(mod, &pipe_read_spec, rbase, &st->ReadPipeTransportType);
    if (r == 0)
        r = tl_add_type(mod, &pipe_write_spec, wbase,
                        &st->WritePipeTransportType);
    Py_DECREF(rbase);
    Py_DECREF(wbase);
    return r;
}
