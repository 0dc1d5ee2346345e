/* future.c -- turboloop.Future and its await iterator.
 *
 * Semantics follow asyncio.Future of the running Python version.  Callbacks
 * live in a small array whose first slot is inline (most futures have one
 * callback: the task waiting on them).  A callback with a NULL context is a
 * Task's internal wake-up: on a turboloop loop it becomes a TL_EV_TASK_WAKEUP
 * entry in the ready ring, without a Handle or a bound method.
 *
 * Re-entrancy: scheduling callbacks on a foreign loop calls loop.call_soon,
 * which can run arbitrary code, so the callback array is detached from the
 * future before the first call.
 */
#include "tl.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static const char *
future_state_name(int state)
{
    switch (state) {
    case TL_PENDING: return "PENDING";
    case TL_CANCELLED: return "CANCELLED";
    default: return "FINISHED";
    }
}

static int
future_ensure_alive(tl_future *fut)
{
    if (fut->loop == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Future object is not initialized.");
        return -1;
    }
    return 0;
}

static PyObject *
future_invalid_state(tl_future *fut)
{
    PyErr_Format(fut->st->InvalidStateError, "%s: %R",
                 future_state_name(fut->state), (PyObject *)fut);
    return NULL;
}

int
tl_future_init(tl_future *fut, PyObject *loop)
{
    tl_state *st = tl_state_from_type(Py_TYPE(fut));
    PyObject *debug;
    int is_debug;
    if (st == NULL)
        return -1;
#if PY_VERSION_HEX >= 0x030F0000
    /* 3.15 forbids initialising a future (or task) twice. */
    if (fut->loop != NULL) {
        PyErr_Format(PyExc_RuntimeError, "%s object is already initialized",
                     _PyType_Name(Py_TYPE(fut)));
        return -1;
    }
#endif
    fut->st = st;
    /* Re-initialisation starts from a clean slate, except for the instance
     * dict: a subclass's __init__ may have set attributes before calling
     * ours. */
    {
        PyObject *dict = fut->dict;
        fut->dict = NULL;
        tl_future_clear(fut);
        fut->dict = dict;
    }
    fut->state = TL_PENDING;
    fut->log_tb = 0;
    fut->blocking = 0;
    if (loop == NULL || loop == Py_None) {
        loop = PyObject_CallNoArgs(st->get_event_loop);
        if (loop == NULL)
            return -1;
    }
    else {
        Py_INCREF(loop);
    }
    fut->loop = loop;
    fut->tloop = TL_LOOP_CHECK(st, loop) ? (tl_loop *)loop : NULL;
    if (fut->tloop != NULL) {
        is_debug = fut->tloop->debug;
    }
    else {
        debug = PyObject_CallMethodNoArgs(loop, st->str_get_debug);
        if (debug == NULL)
            return -1;
        is_debug = PyObject_IsTrue(debug);
        Py_DECREF(debug);
        if (is_debug < 0)
            return -1;
    }
    if (is_debug) {
        PyObject *frame = (PyObject *)PyEval_GetFrame();
        if (frame != NULL) {
            fut->source_traceback = PyObject_CallOneArg(st->extract_stack,
                                                        frame);
            if (fut->source_traceback == NULL)
                return -1;
        }
    }
    return 0;
}

static void
future_release_callbacks(tl_callback c0, tl_callback *cbs, Py_ssize_t n)
{
    Py_XDECREF(c0.fn);
    Py_XDECREF(c0.ctx);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_XDECREF(cbs[i].fn);
        Py_XDECREF(cbs[i].ctx);
    }
    PyMem_Free(cbs);
}

/* Schedule one callback; steals nothing.  A NULL ctx marks a task. */
static int
future_schedule_one(tl_future *fut, PyObject *fn, PyObject *ctx)
{
    tl_state *st = fut->st;
    if (ctx == NULL) {
        tl_task *task = (tl_task *)fn;
        PyObject *wake;
        int r;
        if (fut->tloop != NULL)
            return tl_loop_push(fut->tloop, TL_EV_TASK_WAKEUP, Py_NewRef(fn),
                                Py_NewRef((PyObject *)fut), NULL);
        wake = tl_task_wakeup_callable(task);
        if (wake == NULL)
            return -1;
        r = tl_call_soon(st, fut->loop, NULL, wake, (PyObject *)fut,
                         task->context);
        Py_DECREF(wake);
        return r;
    }
    return tl_call_soon(st, fut->loop, fut->tloop, fn, (PyObject *)fut, ctx);
}

int
tl_future_schedule_callbacks(tl_future *fut)
{
    tl_callback c0 = fut->cb0, *cbs = fut->cbs;
    Py_ssize_t n = fut->ncbs;
    int r = 0;

    if (c0.fn == NULL)
        return 0;
    fut->cb0.fn = fut->cb0.ctx = NULL;
    fut->cbs = NULL;
    fut->ncbs = fut->cbs_cap = 0;

    if (future_schedule_one(fut, c0.fn, c0.ctx) < 0)
        r = -1;
    for (Py_ssize_t i = 0; i < n && r == 0; i++) {
        if (future_schedule_one(fut, cbs[i].fn, cbs[i].ctx) < 0)
            r = -1;
    }
    future_release_callbacks(c0, cbs, n);
    return r;
}

/* Append a callback; steals fn and ctx. */
static int
future_append_callback(tl_future *fut, PyObject *fn, PyObject *ctx)
{
    if (fut->cb0.fn == NULL) {
        fut->cb0.fn = fn;
        fut->cb0.ctx = ctx;
        return 0;
    }
    if (fut->ncbs == fut->cbs_cap) {
        Py_ssize_t cap = fut->cbs_cap ? fut->cbs_cap * 2 : 4;
        tl_callback *n = PyMem_Realloc(fut->cbs, (size_t)cap * sizeof(*n));
        if (n == NULL) {
            Py_DECREF(fn);
            Py_XDECREF(ctx);
            PyErr_NoMemory();
            return -1;
        }
        fut->cbs = n;
        fut->cbs_cap = cap;
    }
    fut->cbs[fut->ncbs].fn = fn;
    fut->cbs[fut->ncbs].ctx = ctx;
    fut->ncbs++;
    return 0;
}

int
tl_future_add_callback(tl_future *fut, PyObject *fn, PyObject *ctx)
{
    if (fut->state != TL_PENDING)
        return future_schedule_one(fut, fn, ctx);
    return future_append_callback(fut, Py_NewRef(fn), Py_XNewRef(ctx));
}

PyObject *
tl_future_make_cancelled_error(tl_future *fut)
{
    PyObject *exc;
    if (fut->cancelled_exc != NULL) {
        exc = fut->cancelled_exc;
        fut->cancelled_exc = NULL;
        return exc;
    }
    if (fut->cancel_msg == NULL || fut->cancel_msg == Py_None)
        return PyObject_CallNoArgs(fut->st->CancelledError);
    return PyObject_CallOneArg(fut->st->CancelledError, fut->cancel_msg);
}

int
tl_future_get_result(tl_future *fut, PyObject **res)
{
    if (fut->loop == NULL) {
        PyErr_SetString(fut->st->InvalidStateError,
                        "Future object is not initialized.");
        return -1;
    }
    if (fut->state == TL_CANCELLED) {
        *res = tl_future_make_cancelled_error(fut);
        return *res ? 0 : -1;
    }
    if (fut->state != TL_FINISHED) {
        PyErr_SetString(fut->st->InvalidStateError, "Result is not set.");
        return -1;
    }
    fut->log_tb = 0;
    if (fut->exception != NULL) {
        if (PyException_SetTraceback(
                fut->exception,
                fut->exception_tb ? fut->exception_tb : Py_None) < 0)
            return -1;
        *res = Py_NewRef(fut->exception);
        return 0;
    }
    *res = Py_NewRef(fut->result);
    return 1;
}

PyObject *
tl_future_set_result(tl_future *fut, PyObject *res)
{
    if (future_ensure_alive(fut) < 0)
        return NULL;
    if (fut->state != TL_PENDING)
        return future_invalid_state(fut);
    Py_XSETREF(fut->result, Py_NewRef(res));
    fut->state = TL_FINISHED;
    if (tl_future_schedule_callbacks(fut) < 0)
        return NULL;
    Py_RETURN_NONE;
}

PyObject *
tl_future_set_exception(tl_future *fut, PyObject *exc)
{
    PyObject *exc_val;
    if (future_ensure_alive(fut) < 0)
        return NULL;
    if (fut->state != TL_PENDING)
        return future_invalid_state(fut);
    if (PyType_Check(exc)) {
        exc_val = PyObject_CallNoArgs(exc);
        if (exc_val == NULL)
            return NULL;
        /* Instantiating can run code that completes the future. */
        if (fut->state != TL_PENDING) {
            Py_DECREF(exc_val);
            return future_invalid_state(fut);
        }
    }
    else {
        exc_val = Py_NewRef(exc);
    }
    if (!PyExceptionInstance_Check(exc_val)) {
        Py_DECREF(exc_val);
        PyErr_SetString(PyExc_TypeError, "invalid exception object");
        return NULL;
    }
    if (PyErr_GivenExceptionMatches(exc_val, PyExc_StopIteration)) {
#if PY_VERSION_HEX >= 0x030D0000
        /* 3.13+: wrap it, as a generator would. */
        PyObject *text = PyUnicode_FromString(
            "StopIteration interacts badly with generators and cannot be "
            "raised into a Future");
        PyObject *wrapped = text ? PyObject_CallOneArg(PyExc_RuntimeError,
                                                       text) : NULL;
        Py_XDECREF(text);
        if (wrapped == NULL) {
            Py_DECREF(exc_val);
            return NULL;
        }
        PyException_SetCause(wrapped, Py_NewRef(exc_val));
        PyException_SetContext(wrapped, exc_val);
        exc_val = wrapped;
#else
        if (Py_IS_TYPE(exc_val, (PyTypeObject *)PyExc_StopIteration)) {
            Py_DECREF(exc_val);
            PyErr_SetString(PyExc_TypeError,
                            "StopIteration interacts badly with generators "
                            "and cannot be raised into a Future");
            return NULL;
        }
#endif
    }
    Py_XSETREF(fut->exception, exc_val);
    Py_XSETREF(fut->exception_tb, PyException_GetTraceback(exc_val));
    fut->state = TL_FINISHED;
    if (tl_future_schedule_callbacks(fut) < 0)
        return NULL;
    fut->log_tb = 1;
    Py_RETURN_NONE;
}

int
tl_future_cancel(tl_future *fut, PyObject *msg)
{
    fut->log_tb = 0;
    if (fut->state != TL_PENDING)
        return 0;
    fut->state = TL_CANCELLED;
    Py_XSETREF(fut->cancel_msg, Py_XNewRef(msg));
    if (tl_future_schedule_callbacks(fut) < 0)
        return -1;
    return 1;
}

/* ------------------------------------------------------------------ */
/* Call graph bookkeeping (3.14+)                                      */
/* ------------------------------------------------------------------ */

int
tl_awaited_by_add(tl_state *st, PyObject *futo, PyObject *waiter)
{
#if PY_VERSION_HEX >= 0x030E0000
    tl_future *fut;
    if (!TL_FUTURE_CHECK(st, futo) || !TL_FUTURE_CHECK(st, waiter)) {
        PyObject *r = PyObject_CallFunctionObjArgs(st->add_to_awaited_by,
                                                   futo, waiter, NULL);
        Py_XDECREF(r);
        return r ? 0 : -1;
    }
    fut = (tl_future *)futo;
    /* One waiter is the common case: keep it without a set. */
    if (fut->awaited_by == NULL) {
        fut->awaited_by = Py_NewRef(waiter);
        return 0;
    }
    if (!PySet_CheckExact(fut->awaited_by)) {
        PyObject *set = PySet_New(NULL);
        if (set == NULL || PySet_Add(set, fut->awaited_by) < 0) {
            Py_XDECREF(set);
            return -1;
        }
        Py_SETREF(fut->awaited_by, set);
    }
    return PySet_Add(fut->awaited_by, waiter);
#else
    (void)st; (void)futo; (void)waiter;
    return 0;
#endif
}

int
tl_awaited_by_discard(tl_state *st, PyObject *futo, PyObject *waiter)
{
#if PY_VERSION_HEX >= 0x030E0000
    tl_future *fut;
    if (!TL_FUTURE_CHECK(st, futo) || !TL_FUTURE_CHECK(st, waiter)) {
        PyObject *r = PyObject_CallFunctionObjArgs(st->discard_from_awaited_by,
                                                   futo, waiter, NULL);
        Py_XDECREF(r);
        return r ? 0 : -1;
    }
    fut = (tl_future *)futo;
    if (fut->awaited_by == NULL)
        return 0;
    if (fut->awaited_by == waiter) {
        Py_CLEAR(fut->awaited_by);
        return 0;
    }
    if (PySet_CheckExact(fut->awaited_by))
        return PySet_Discard(fut->awaited_by, waiter) < 0 ? -1 : 0;
    return 0;
#else
    (void)st; (void)futo; (void)waiter;
    return 0;
#endif
}

/* ------------------------------------------------------------------ */
/* Python methods                                                      */
/* ------------------------------------------------------------------ */

static PyObject *
future_tp_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    tl_state *st = tl_state_from_type(tp);
    tl_future *fut;
    (void)args;
    (void)kwds;
    if (st == NULL)
        return NULL;
    fut = (tl_future *)tp->tp_alloc(tp, 0);
    if (fut != NULL)
        fut->st = st;
    return (PyObject *)fut;
}

static int
future_tp_init(tl_future *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"loop", NULL};
    PyObject *loop = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$O:Future", kwlist, &loop))
        return -1;
    return tl_future_init(self, loop);
}

static PyObject *
future_result(tl_future *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *res;
    int r;
    /* No liveness check: an uninitialised future is simply not done. */
    r = tl_future_get_result(self, &res);
    if (r < 0)
        return NULL;
    if (r == 0) {
        tl_err_set_raised(res);
        return NULL;
    }
    return res;
}

static PyObject *
future_exception(tl_future *self, PyObject *Py_UNUSED(ignored))
{
    if (self->loop == NULL) {
        PyErr_SetString(self->st->InvalidStateError,
                        "Future object is not initialized.");
        return NULL;
    }
    if (self->state == TL_CANCELLED) {
        PyObject *exc = tl_future_make_cancelled_error(self);
        if (exc != NULL)
            tl_err_set_raised(exc);
        return NULL;
    }
    if (self->state != TL_FINISHED) {
        PyErr_SetString(self->st->InvalidStateError, "Exception is not set.");
        return NULL;
    }
    self->log_tb = 0;
    return Py_NewRef(self->exception ? self->exception : Py_None);
}

static PyObject *
future_set_result_py(tl_future *self, PyObject *res)
{
    return tl_future_set_result(self, res);
}

static PyObject *
future_set_exception_py(tl_future *self, PyObject *exc)
{
    return tl_future_set_exception(self, exc);
}

static PyObject *
future_cancel_py(tl_future *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"msg", NULL};
    PyObject *msg = Py_None;
    int r;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:cancel", kwlist, &msg))
        return NULL;
    if (future_ensure_alive(self) < 0)
        return NULL;
    r = tl_future_cancel(self, msg);
    if (r < 0)
        return NULL;
    return PyBool_FromLong(r);
}

static PyObject *
future_cancelled(tl_future *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->state == TL_CANCELLED);
}

static PyObject *
future_done(tl_future *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->state != TL_PENDING);
}

static PyObject *
future_get_loop_py(tl_future *self, PyObject *Py_UNUSED(ignored))
{
    if (future_ensure_alive(self) < 0)
        return NULL;
    return Py_NewRef(self->loop);
}

static PyObject *
future_add_done_callback(tl_future *self, PyObject *const *args,
                         Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *fn, *ctx = Py_None;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    int r;
    if (nargs != 1) {
        PyErr_Format(PyExc_TypeError,
                     "add_done_callback() takes exactly 1 positional "
                     "argument (%zd given)", nargs);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, i);
        if (PyUnicode_Compare(k, self->st->str_context) != 0) {
            PyErr_Format(PyExc_TypeError,
                         "add_done_callback() got an unexpected keyword "
                         "argument '%S'", k);
            return NULL;
        }
        ctx = args[nargs + i];
    }
    fn = args[0];
    if (future_ensure_alive(self) < 0)
        return NULL;
    if (ctx == Py_None) {
        ctx = PyContext_CopyCurrent();
        if (ctx == NULL)
            return NULL;
    }
    else {
        Py_INCREF(ctx);
    }
    if (self->state != TL_PENDING)
        r = future_schedule_one(self, fn, ctx);
    else {
        r = future_append_callback(self, Py_NewRef(fn), ctx);
        ctx = NULL;     /* stolen */
    }
    Py_XDECREF(ctx);
    if (r < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
future_remove_done_callback(tl_future *self, PyObject *fn)
{
    tl_callback *snap;
    Py_ssize_t n = 0, kept = 0, total;
    tl_callback c0 = {NULL, NULL};
    if (future_ensure_alive(self) < 0)
        return NULL;
    total = (self->cb0.fn ? 1 : 0) + self->ncbs;
    if (total == 0)
        return PyLong_FromLong(0);
    /* Comparisons run arbitrary code that may add or remove callbacks, so
     * work on a snapshot that owns its references. */
    snap = PyMem_Malloc((size_t)total * sizeof(*snap));
    if (snap == NULL)
        return PyErr_NoMemory();
    if (self->cb0.fn != NULL)
        snap[n++] = self->cb0;
    for (Py_ssize_t i = 0; i < self->ncbs; i++)
        snap[n++] = self->cbs[i];
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_INCREF(snap[i].fn);
        Py_XINCREF(snap[i].ctx);
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        int eq = 0;
        if (snap[i].ctx != NULL) {     /* a task's wake-up never matches */
            eq = PyObject_RichCompareBool(snap[i].fn, fn, Py_EQ);
            if (eq < 0) {
                future_release_callbacks(c0, snap, n);
                return NULL;
            }
        }
        if (eq) {
            Py_DECREF(snap[i].fn);
            Py_XDECREF(snap[i].ctx);
        }
        else {
            snap[kept++] = snap[i];
        }
    }
    if (kept == n) {
        future_release_callbacks(c0, snap, n);
        return PyLong_FromLong(0);
    }
    /* Install the filtered list in place of whatever is there now. */
    {
        tl_callback old0 = self->cb0, *old = self->cbs;
        Py_ssize_t oldn = self->ncbs;
        self->cb0.fn = self->cb0.ctx = NULL;
        self->cbs = NULL;
        self->ncbs = self->cbs_cap = 0;
        for (Py_ssize_t i = 0; i < kept; i++) {
            if (future_append_callback(self, snap[i].fn, snap[i].ctx) < 0) {
                for (Py_ssize_t j = i + 1; j < kept; j++) {
                    Py_DECREF(snap[j].fn);
                    Py_XDECREF(snap[j].ctx);
                }
                PyMem_Free(snap);
                future_release_callbacks(old0, old, oldn);
                return NULL;
            }
        }
        PyMem_Free(snap);
        future_release_callbacks(old0, old, oldn);
    }
    return PyLong_FromSsize_t(n - kept);
}

static PyObject *
future_make_cancelled_error_py(tl_future *self, PyObject *Py_UNUSED(ignored))
{
    return tl_future_make_cancelled_error(self);
}

/* ------------------------------------------------------------------ */
/* Await iterator                                                      */
/* ------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    tl_future *fut;
} tl_futureiter;

static PyObject *
future_await(tl_future *self)
{
    tl_futureiter *it;
    if (future_ensure_alive(self) < 0)
        return NULL;
    it = PyObject_GC_New(tl_futureiter, self->st->FutureIterType);
    if (it == NULL)
        return NULL;
    it->fut = (tl_future *)Py_NewRef(self);
    PyObject_GC_Track(it);
    return (PyObject *)it;
}

static PySendResult
futureiter_am_send(tl_futureiter *it, PyObject *Py_UNUSED(arg),
                   PyObject **result)
{
    tl_future *fut = it->fut;
    PyObject *res;
    int r;
    if (fut == NULL) {
        /* Exhausted (or closed): like a finished generator. */
        *result = Py_NewRef(Py_None);
        return PYGEN_RETURN;
    }
    if (fut->state == TL_PENDING) {
        if (!fut->blocking) {
            fut->blocking = 1;
            *result = Py_NewRef((PyObject *)fut);
            return PYGEN_NEXT;
        }
        PyErr_SetString(PyExc_RuntimeError, "await wasn't used with future");
        *result = NULL;
        return PYGEN_ERROR;
    }
    it->fut = NULL;
    r = tl_future_get_result(fut, &res);
    Py_DECREF(fut);
    if (r < 0) {
        *result = NULL;
        return PYGEN_ERROR;
    }
    if (r == 0) {
        tl_err_set_raised(res);
        *result = NULL;
        return PYGEN_ERROR;
    }
    *result = res;
    return PYGEN_RETURN;
}

static PyObject *
futureiter_iternext(tl_futureiter *it)
{
    PyObject *res;
    switch (futureiter_am_send(it, Py_None, &res)) {
    case PYGEN_NEXT:
        return res;
    case PYGEN_RETURN:
        /* StopIteration(value), built so a tuple or exception value is not
         * unpacked. */
        if (res == Py_None)
            PyErr_SetNone(PyExc_StopIteration);
        else {
            PyObject *e = PyObject_CallOneArg(PyExc_StopIteration, res);
            if (e != NULL) {
                PyErr_SetObject(PyExc_StopIteration, e);
                Py_DECREF(e);
            }
        }
        Py_DECREF(res);
        return NULL;
    default:
        return NULL;
    }
}

static PyObject *
futureiter_send(tl_futureiter *it, PyObject *arg)
{
    if (arg != Py_None) {
        PyErr_Format(PyExc_TypeError,
                     "can't send non-None value to a FutureIter");
        return NULL;
    }
    return futureiter_iternext(it);
}

static PyObject *
futureiter_throw(tl_futureiter *it, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *type, *val = NULL, *tb = NULL;
    if (nargs < 1 || nargs > 3) {
        PyErr_Format(PyExc_TypeError, "throw expected 1 to 3 arguments, got %zd",
                     nargs);
        return NULL;
    }
    type = args[0];
#if PY_VERSION_HEX >= 0x030C0000
    if (nargs > 1 && PyErr_WarnEx(PyExc_DeprecationWarning,
                                  "the (type, exc, tb) signature of throw() "
                                  "is deprecated, use the single-arg "
                                  "signature instead.", 1) < 0)
        return NULL;
#endif
    if (nargs >= 2)
        val = args[1];
    if (nargs == 3)
        tb = args[2];
    if (val == Py_None)
        val = NULL;
    if (tb == Py_None)
        tb = NULL;
    else if (tb != NULL && !PyTraceBack_Check(tb)) {
        PyErr_SetString(PyExc_TypeError, "throw() third argument must be a "
                                         "traceback");
        return NULL;
    }
    Py_CLEAR(it->fut);
    if (PyExceptionClass_Check(type)) {
        PyObject *exc;
        if (val != NULL && PyExceptionInstance_Check(val)
            && PyObject_TypeCheck(val, (PyTypeObject *)type))
            exc = Py_NewRef(val);
        else if (val == NULL)
            exc = PyObject_CallNoArgs(type);
        else if (PyTuple_Check(val))
            exc = PyObject_Call(type, val, NULL);
        else
            exc = PyObject_CallOneArg(type, val);
        if (exc == NULL)
            return NULL;
        if (!PyExceptionInstance_Check(exc)) {
            Py_DECREF(exc);
            PyErr_Format(PyExc_TypeError,
                         "calling %R should have returned an instance of "
                         "BaseException, not %s", type, Py_TYPE(exc)->tp_name);
            return NULL;
        }
        if (tb != NULL)
            PyException_SetTraceback(exc, tb);
        tl_err_set_raised(exc);
        return NULL;
    }
    if (PyExceptionInstance_Check(type)) {
        if (val != NULL) {
            PyErr_SetString(PyExc_TypeError,
                            "instance exception may not have a separate value");
            return NULL;
        }
        if (tb != NULL)
            PyException_SetTraceback(type, tb);
        tl_err_set_raised(Py_NewRef(type));
        return NULL;
    }
    PyErr_Format(PyExc_TypeError,
                 "exceptions must be classes deriving BaseException or "
                 "instances of such a class, not %s", Py_TYPE(type)->tp_name);
    return NULL;
}

static PyObject *
futureiter_close(tl_futureiter *it, PyObject *Py_UNUSED(ignored))
{
    Py_CLEAR(it->fut);
    Py_RETURN_NONE;
}

static int
futureiter_traverse(tl_futureiter *it, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(it));
    Py_VISIT(it->fut);
    return 0;
}

static int
futureiter_clear(tl_futureiter *it)
{
    Py_CLEAR(it->fut);
    return 0;
}

static void
futureiter_dealloc(tl_futureiter *it)
{
    PyTypeObject *tp = Py_TYPE(it);
    PyObject_GC_UnTrack(it);
    Py_CLEAR(it->fut);
    PyObject_GC_Del(it);
    Py_DECREF(tp);
}

static PyMethodDef futureiter_methods[] = {
    {"send", (PyCFunction)futureiter_send, METH_O, NULL},
    {"throw", (PyCFunction)(void (*)(void))futureiter_throw, METH_FASTCALL,
     NULL},
    {"close", (PyCFunction)futureiter_close, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot futureiter_slots[] = {
    {Py_tp_dealloc, futureiter_dealloc},
    {Py_tp_traverse, futureiter_traverse},
    {Py_tp_clear, futureiter_clear},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, futureiter_iternext},
    {Py_tp_methods, futureiter_methods},
    {Py_am_send, futureiter_am_send},
    {0, NULL},
};

static PyType_Spec futureiter_spec = {
    "turboloop._core.FutureIter", sizeof(tl_futureiter), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    futureiter_slots,
};

/* ------------------------------------------------------------------ */
/* Attributes                                                          */
/* ------------------------------------------------------------------ */

static PyObject *
future_get_state(tl_future *self, void *Py_UNUSED(c))
{
    if (self->loop == NULL)
        Py_RETURN_NONE;
    return PyUnicode_FromString(future_state_name(self->state));
}

static PyObject *
future_get_blocking(tl_future *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(self->blocking);
}

static int
future_set_blocking(tl_future *self, PyObject *v, void *Py_UNUSED(c))
{
    int b = tl_setter_bool(v);
    if (b < 0)
        return -1;
    self->blocking = (unsigned char)b;
    return 0;
}

static PyObject *
future_get_log_traceback(tl_future *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(self->log_tb);
}

static int
future_set_log_traceback(tl_future *self, PyObject *v, void *Py_UNUSED(c))
{
    int b = tl_setter_bool(v);
    if (b < 0)
        return -1;
    if (b) {
        PyErr_SetString(PyExc_ValueError,
                        "_log_traceback can only be set to False");
        return -1;
    }
    self->log_tb = 0;
    return 0;
}

static PyObject *
future_get_loop_attr(tl_future *self, void *Py_UNUSED(c))
{
    return Py_NewRef(self->loop ? self->loop : Py_None);
}

static PyObject *
future_get_callbacks(tl_future *self, void *Py_UNUSED(c))
{
    PyObject *list;
    Py_ssize_t n = (self->cb0.fn ? 1 : 0) + self->ncbs;
    if (n == 0)
        Py_RETURN_NONE;
    list = PyList_New(0);
    if (list == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        tl_callback *cb = i == 0 ? &self->cb0 : &self->cbs[i - 1];
        PyObject *fn, *ctx, *t;
        if (i >= (self->cb0.fn ? 1 : 0) + self->ncbs)
            break;      /* changed under us by the code below */
        if (cb->ctx == NULL) {
            fn = tl_task_wakeup_callable((tl_task *)cb->fn);
            ctx = Py_NewRef(((tl_task *)cb->fn)->context);
        }
        else {
            fn = Py_NewRef(cb->fn);
            ctx = Py_NewRef(cb->ctx);
        }
        t = fn ? PyTuple_Pack(2, fn, ctx) : NULL;
        Py_XDECREF(fn);
        Py_DECREF(ctx);
        if (t == NULL || PyList_Append(list, t) < 0) {
            Py_XDECREF(t);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(t);
    }
    return list;
}

static PyObject *
future_get_result_attr(tl_future *self, void *Py_UNUSED(c))
{
    return Py_NewRef(self->result ? self->result : Py_None);
}

static PyObject *
future_get_exception_attr(tl_future *self, void *Py_UNUSED(c))
{
    return Py_NewRef(self->exception ? self->exception : Py_None);
}

static PyObject *
future_get_source_traceback(tl_future *self, void *Py_UNUSED(c))
{
    return Py_NewRef(self->source_traceback ? self->source_traceback : Py_None);
}

static PyObject *
future_get_cancel_message(tl_future *self, void *Py_UNUSED(c))
{
    return Py_NewRef(self->cancel_msg ? self->cancel_msg : Py_None);
}

static int
future_set_cancel_message(tl_future *self, PyObject *v, void *Py_UNUSED(c))
{
    if (v == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete attribute");
        return -1;
    }
    Py_XSETREF(self->cancel_msg, Py_NewRef(v));
    return 0;
}

#if PY_VERSION_HEX >= 0x030E0000
static PyObject *
future_get_awaited_by(tl_future *self, void *Py_UNUSED(c))
{
    if (self->awaited_by == NULL)
        Py_RETURN_NONE;
    if (PySet_CheckExact(self->awaited_by))
        return PyFrozenSet_New(self->awaited_by);
    {
        PyObject *t = PyTuple_Pack(1, self->awaited_by);
        PyObject *fs = t ? PyFrozenSet_New(t) : NULL;
        Py_XDECREF(t);
        return fs;
    }
}
#endif

static PyObject *
future_repr(tl_future *self)
{
    PyObject *r;
    if (future_ensure_alive(self) < 0)
        return NULL;
    r = PyObject_CallOneArg(self->st->future_repr, (PyObject *)self);
#if PY_VERSION_HEX < 0x030C0000
    /* 3.11's helper returns the list of parts. */
    if (r != NULL && PyList_Check(r)) {
        PyObject *sep = PyUnicode_FromString(" ");
        PyObject *j = sep ? PyUnicode_Join(sep, r) : NULL;
        Py_XDECREF(sep);
        Py_DECREF(r);
        if (j == NULL)
            return NULL;
        r = PyUnicode_FromFormat("<%s %U>", _PyType_Name(Py_TYPE(self)), j);
        Py_DECREF(j);
    }
#endif
    return r;
}

/* ------------------------------------------------------------------ */
/* Lifecycle                                                           */
/* ------------------------------------------------------------------ */

int
tl_future_traverse(tl_future *fut, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(fut));
    Py_VISIT(fut->loop);
    Py_VISIT(fut->result);
    Py_VISIT(fut->exception);
    Py_VISIT(fut->exception_tb);
    Py_VISIT(fut->cancel_msg);
    Py_VISIT(fut->cancelled_exc);
    Py_VISIT(fut->source_traceback);
    Py_VISIT(fut->awaited_by);
    Py_VISIT(fut->cb0.fn);
    Py_VISIT(fut->cb0.ctx);
    for (Py_ssize_t i = 0; i < fut->ncbs; i++) {
        Py_VISIT(fut->cbs[i].fn);
        Py_VISIT(fut->cbs[i].ctx);
    }
    Py_VISIT(fut->dict);
    return 0;
}

void
tl_future_clear(tl_future *fut)
{
    tl_callback c0 = fut->cb0, *cbs = fut->cbs;
    Py_ssize_t n = fut->ncbs;
    fut->cb0.fn = fut->cb0.ctx = NULL;
    fut->cbs = NULL;
    fut->ncbs = fut->cbs_cap = 0;
    fut->tloop = NULL;
    Py_CLEAR(fut->loop);
    Py_CLEAR(fut->result);
    Py_CLEAR(fut->exception);
    Py_CLEAR(fut->exception_tb);
    Py_CLEAR(fut->cancel_msg);
    Py_CLEAR(fut->cancelled_exc);
    Py_CLEAR(fut->source_traceback);
    Py_CLEAR(fut->awaited_by);
    Py_CLEAR(fut->dict);
    future_release_callbacks(c0, cbs, n);
}

static int
future_traverse(tl_future *fut, visitproc visit, void *arg)
{
    return tl_future_traverse(fut, visit, arg);
}

static int
future_clear(tl_future *fut)
{
    tl_future_clear(fut);
    return 0;
}

/* "exception was never retrieved", from tp_finalize (PEP 442), so the
 * handler may safely look at (and even resurrect) the future. */
void
tl_future_finalize(PyObject *self)
{
    tl_future *fut = (tl_future *)self;
    PyObject *exc, *context = NULL, *msg = NULL;
    if (!fut->log_tb || fut->loop == NULL)
        return;
    fut->log_tb = 0;
    exc = tl_err_get_raised();
    context = PyDict_New();
    if (context == NULL)
        goto done;
    msg = PyUnicode_FromFormat("%s exception was never retrieved",
                               _PyType_Name(Py_TYPE(self)));
    if (msg == NULL
        || PyDict_SetItemString(context, "message", msg) < 0
        || PyDict_SetItemString(context, "exception", fut->exception) < 0
        || PyDict_SetItemString(context, "future", self) < 0)
        goto done;
    if (fut->source_traceback != NULL
        && PyDict_SetItemString(context, "source_traceback",
                                fut->source_traceback) < 0)
        goto done;
    if (tl_call_exception_handler(fut->st, fut->loop, context) < 0)
        PyErr_WriteUnraisable(self);
    context = NULL;
done:
    if (PyErr_Occurred())
        PyErr_WriteUnraisable(self);
    Py_XDECREF(context);
    Py_XDECREF(msg);
    if (exc != NULL)
        tl_err_set_raised(exc);
}

static void
future_dealloc(tl_future *fut)
{
    PyTypeObject *tp = Py_TYPE(fut);
    if (PyObject_CallFinalizerFromDealloc((PyObject *)fut) < 0)
        return;     /* resurrected */
    PyObject_GC_UnTrack(fut);
    if (fut->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)fut);
    tl_future_clear(fut);
    tp->tp_free(fut);
    Py_DECREF(tp);
}

static PyMethodDef future_methods[] = {
    {"result", (PyCFunction)future_result, METH_NOARGS, NULL},
    {"exception", (PyCFunction)future_exception, METH_NOARGS, NULL},
    {"set_result", (PyCFunction)future_set_result_py, METH_O, NULL},
    {"set_exception", (PyCFunction)future_set_exception_py, METH_O, NULL},
    {"cancel", (PyCFunction)(void (*)(void))future_cancel_py,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"cancelled", (PyCFunction)future_cancelled, METH_NOARGS, NULL},
    {"done", (PyCFunction)future_done, METH_NOARGS, NULL},
    {"get_loop", (PyCFunction)future_get_loop_py, METH_NOARGS, NULL},
    {"add_done_callback", (PyCFunction)(void (*)(void))future_add_done_callback,
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {"remove_done_callback", (PyCFunction)future_remove_done_callback, METH_O,
     NULL},
    {"_make_cancelled_error", (PyCFunction)future_make_cancelled_error_py,
     METH_NOARGS, NULL},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef future_getset[] = {
    {"_state", (getter)future_get_state, NULL, NULL, NULL},
    {"_asyncio_future_blocking", (getter)future_get_blocking,
     (setter)future_set_blocking, NULL, NULL},
    {"_log_traceback", (getter)future_get_log_traceback,
     (setter)future_set_log_traceback, NULL, NULL},
    {"_loop", (getter)future_get_loop_attr, NULL, NULL, NULL},
    {"_callbacks", (getter)future_get_callbacks, NULL, NULL, NULL},
    {"_result", (getter)future_get_result_attr, NULL, NULL, NULL},
    {"_exception", (getter)future_get_exception_attr, NULL, NULL, NULL},
    {"_source_traceback", (getter)future_get_source_traceback, NULL, NULL,
     NULL},
    {"_cancel_message", (getter)future_get_cancel_message,
     (setter)future_set_cancel_message, NULL, NULL},
#if PY_VERSION_HEX >= 0x030E0000
    {"_asyncio_awaited_by", (getter)future_get_awaited_by, NULL, NULL, NULL},
#endif
    {NULL},
};

static PyMemberDef future_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(tl_future, weakreflist),
     READONLY, NULL},
    {"__dictoffset__", T_PYSSIZET, offsetof(tl_future, dict), READONLY, NULL},
    {NULL},
};

static PyType_Slot future_slots[] = {
    {Py_tp_dealloc, future_dealloc},
    {Py_tp_traverse, future_traverse},
    {Py_tp_clear, future_clear},
    {Py_tp_finalize, tl_future_finalize},
    {Py_tp_repr, future_repr},
    {Py_tp_init, future_tp_init},
    {Py_tp_new, future_tp_new},
    {Py_tp_methods, future_methods},
    {Py_tp_getset, future_getset},
    {Py_tp_members, future_members},
    {Py_tp_iter, future_await},
    {Py_am_await, future_await},
    {Py_tp_doc, "This class is *almost* compatible with "
                "concurrent.futures.Future."},
    {0, NULL},
};

static PyType_Spec future_spec = {
    "turboloop._core.Future", sizeof(tl_future), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    future_slots,
};

int
tl_future_init_types(PyObject *mod, tl_state *st)
{
    if (tl_add_type(mod, &future_spec, NULL, &st->FutureType) < 0)
        return -1;
    return tl_add_type(mod, &futureiter_spec, NULL, &st->FutureIterType);
}
