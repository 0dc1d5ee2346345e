/* future.c -- turboloop.Future and its await iterator.
 *
 * Semantics follow asyncio.Future of the running Python version, and so does
 * the state: the object has asyncio's C Future layout (see tl.h and
 * layout.c).  A done callback with a NULL context is a Task's internal
 * wake-up: on a turboloop loop it becomes a TL_EV_TASK_WAKEUP entry in the
 * ready ring, without a Handle or a bound method.
 *
 * Re-entrancy: scheduling callbacks on a foreign loop calls loop.call_soon,
 * and comparing callbacks calls __eq__; both can run arbitrary code, so the
 * callbacks are detached from the future before they are scheduled, and
 * removal re-reads the list after every comparison.
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
future_invalid_state(tl_state *st, tl_future *fut)
{
    PyErr_Format(st->InvalidStateError, "%s: %R",
                 future_state_name(fut->state), (PyObject *)fut);
    return NULL;
}

/* Drop everything but the instance dict (a subclass's __init__ may have set
 * attributes before calling ours) and, on 3.14+, the task-list link. */
static void
future_clear_state(tl_future *fut)
{
    fut->own_loop = 0;
    Py_CLEAR(fut->loop);
    Py_CLEAR(fut->callback0);
    Py_CLEAR(fut->context0);
    Py_CLEAR(fut->callbacks);
    Py_CLEAR(fut->result);
    Py_CLEAR(fut->exception);
    Py_CLEAR(fut->exception_tb);
    Py_CLEAR(fut->source_tb);
    Py_CLEAR(fut->cancel_msg);
    Py_CLEAR(fut->cancelled_exc);
#if PY_VERSION_HEX >= 0x030E0000
    Py_CLEAR(fut->awaited_by);
    fut->awaited_by_is_set = 0;
#endif
}

/* A debug loop's future keeps the stack it was created from. */
static int
future_capture_source_tb(tl_state *st, tl_future *fut)
{
    PyObject *frame = (PyObject *)PyEval_GetFrame();
    if (frame == NULL)
        return 0;
    fut->source_tb = PyObject_CallOneArg(st->extract_stack, frame);
    return fut->source_tb == NULL ? -1 : 0;
}

int
tl_future_init(tl_state *st, tl_future *fut, PyObject *loop)
{
    int is_debug;
    if (st == NULL && (st = tl_state_from_type(Py_TYPE(fut))) == NULL)
        return -1;
#if PY_VERSION_HEX >= 0x030F0000
    /* 3.15 forbids initialising a future (or task) twice. */
    if (fut->loop != NULL) {
        PyErr_Format(PyExc_RuntimeError, "%s object is already initialized",
                     _PyType_Name(Py_TYPE(fut)));
        return -1;
    }
#endif
    future_clear_state(fut);
    fut->state = TL_PENDING;
    fut->log_tb = 0;
    fut->blocking = 0;
#if PY_VERSION_HEX >= 0x030E0000
    fut->is_task = 0;
#endif
    if (loop == NULL || loop == Py_None) {
        loop = PyObject_CallNoArgs(st->get_event_loop);
        if (loop == NULL)
            return -1;
    }
    else {
        Py_INCREF(loop);
    }
    fut->loop = loop;
    if (TL_LOOP_CHECK(st, loop)) {
        fut->own_loop = 1;
        is_debug = ((tl_loop *)loop)->debug;
    }
    else {
        is_debug = tl_truth_steal(PyObject_CallMethodNoArgs(loop,
                                                            st->str_get_debug));
        if (is_debug < 0)
            return -1;
    }
    return is_debug ? future_capture_source_tb(st, fut) : 0;
}

/* tl_future_init() of an object just allocated, every field zero, for one
 * of our loops: nothing to clear and no type check to make. */
int
tl_future_init_fresh(tl_state *st, tl_future *fut, tl_loop *loop)
{
    fut->loop = Py_NewRef((PyObject *)loop);
    fut->own_loop = 1;
    return loop->debug ? future_capture_source_tb(st, fut) : 0;
}

/* callback0's context, or NULL when callback0 is a task's compact wake-up
 * (stored with None as its context, which no callback added through the
 * API can have: add_done_callback() turns None into a copy of the current
 * context). */
static inline PyObject *
future_context0(tl_state *st, tl_future *fut)
{
    if (fut->context0 == Py_None && TL_TASK_CHECK(st, fut->callback0))
        return NULL;
    return fut->context0;
}

/* The callable a task's compact wake-up entry stands for, and its context:
 * what asyncio stores in the same place. */
static int
future_materialize(PyObject *fn, PyObject *ctx, PyObject **fn_out,
                   PyObject **ctx_out)
{
    if (ctx != NULL) {
        *fn_out = Py_NewRef(fn);
        *ctx_out = Py_NewRef(ctx);
        return 0;
    }
    *fn_out = tl_task_wakeup_callable((tl_task *)fn);
    if (*fn_out == NULL)
        return -1;
    *ctx_out = Py_NewRef(((tl_task *)fn)->context);
    return 0;
}

/* Schedule one callback (borrowed); a NULL ctx marks a task's wake-up. */
static int
future_schedule_one(tl_state *st, tl_future *fut, PyObject *fn, PyObject *ctx)
{
    tl_loop *tloop = TL_FUT_TLOOP(fut);
    PyObject *wake;
    int r;
    if (ctx != NULL)
        return tl_call_soon(st, fut->loop, tloop, fn, (PyObject *)fut, ctx);
    if (tloop != NULL)
        return tl_loop_push(tloop, TL_EV_TASK_WAKEUP, Py_NewRef(fn),
                            Py_NewRef((PyObject *)fut), NULL);
    if (future_materialize(fn, NULL, &wake, &ctx) < 0)
        return -1;
    r = tl_call_soon(st, fut->loop, NULL, wake, (PyObject *)fut, ctx);
    Py_DECREF(wake);
    Py_DECREF(ctx);
    return r;
}

int
tl_future_schedule_callbacks(tl_future *fut)
{
    /* Take the callbacks off the future first: scheduling on a foreign loop
     * runs its call_soon, which may add or remove callbacks. */
    PyObject *cb0 = fut->callback0, *owned_ctx0 = fut->context0, *ctx0;
    PyObject *list = fut->callbacks;
    tl_state *st;
    int r = 0;

#if PY_VERSION_HEX >= 0x030E0000
    if (fut->is_task)
        tl_task_unlink((tl_task *)fut);     /* done: off asyncio's list */
#endif
    if (cb0 == NULL && list == NULL)
        return 0;
    st = tl_future_state(fut);
    ctx0 = cb0 != NULL ? future_context0(st, fut) : NULL;
    fut->callback0 = fut->context0 = fut->callbacks = NULL;
    if (cb0 != NULL)
        r = future_schedule_one(st, fut, cb0, ctx0);
    if (list != NULL) {
        for (Py_ssize_t i = 0; r == 0 && i < PyList_GET_SIZE(list); i++) {
            PyObject *t = PyList_GET_ITEM(list, i);
            r = future_schedule_one(st, fut, PyTuple_GET_ITEM(t, 0),
                                    PyTuple_GET_ITEM(t, 1));
        }
    }
    Py_XDECREF(cb0);
    Py_XDECREF(owned_ctx0);
    Py_XDECREF(list);
    return r;
}

/* Add a callback to a pending future; a NULL ctx adds task fn's wake-up.
 * As asyncio: the first goes to callback0 while no list exists, the others
 * to the list, where a wake-up takes the form of a real callable. */
static int
future_append_callback(tl_future *fut, PyObject *fn, PyObject *ctx)
{
    PyObject *t, *f, *c;
    if (fut->callback0 == NULL && fut->callbacks == NULL) {
        fut->callback0 = Py_NewRef(fn);
        fut->context0 = Py_NewRef(ctx ? ctx : Py_None);
        return 0;
    }
    if (future_materialize(fn, ctx, &f, &c) < 0)
        return -1;
    t = PyTuple_New(2);
    if (t == NULL) {
        Py_DECREF(f);
        Py_DECREF(c);
        return -1;
    }
    PyTuple_SET_ITEM(t, 0, f);
    PyTuple_SET_ITEM(t, 1, c);
    if (fut->callbacks == NULL) {
        fut->callbacks = PyList_New(1);
        if (fut->callbacks == NULL) {
            Py_DECREF(t);
            return -1;
        }
        PyList_SET_ITEM(fut->callbacks, 0, t);
        return 0;
    }
    if (PyList_Append(fut->callbacks, t) < 0) {
        Py_DECREF(t);
        return -1;
    }
    Py_DECREF(t);
    return 0;
}

int
tl_future_add_callback(tl_future *fut, PyObject *fn, PyObject *ctx)
{
    if (fut->state != TL_PENDING)
        return future_schedule_one(tl_future_state(fut), fut, fn, ctx);
    return future_append_callback(fut, fn, ctx);
}

PyObject *
tl_future_make_cancelled_error(tl_state *st, tl_future *fut)
{
    PyObject *exc;
    if (fut->cancelled_exc != NULL) {
        exc = fut->cancelled_exc;
        fut->cancelled_exc = NULL;
        return exc;
    }
    if (fut->cancel_msg == NULL || fut->cancel_msg == Py_None)
        return PyObject_CallNoArgs(st->CancelledError);
    return PyObject_CallOneArg(st->CancelledError, fut->cancel_msg);
}

int
tl_future_get_result(tl_state *st, tl_future *fut, PyObject **res)
{
    if (fut->loop == NULL) {
        PyErr_SetString(st->InvalidStateError,
                        "Future object is not initialized.");
        return -1;
    }
    if (fut->state == TL_CANCELLED) {
        *res = tl_future_make_cancelled_error(st, fut);
        return *res ? 0 : -1;
    }
    if (fut->state != TL_FINISHED) {
        PyErr_SetString(st->InvalidStateError, "Result is not set.");
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
        return future_invalid_state(tl_future_state(fut), fut);
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
    tl_state *st;
    if (future_ensure_alive(fut) < 0)
        return NULL;
    st = tl_future_state(fut);
    if (fut->state != TL_PENDING)
        return future_invalid_state(st, fut);
    if (PyType_Check(exc)) {
        exc_val = PyObject_CallNoArgs(exc);
        if (exc_val == NULL)
            return NULL;
        /* Instantiating can run code that completes the future. */
        if (fut->state != TL_PENDING) {
            Py_DECREF(exc_val);
            return future_invalid_state(st, fut);
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

/* asyncio's _asyncio.future_add_to_awaited_by / discard, done in place when
 * both are ours (the common case) and through those functions otherwise:
 * they write the same fields of any asyncio future or task, ours included,
 * and ignore other objects. */
int
tl_awaited_by_add(tl_state *st, PyObject *futo, PyObject *waiter)
{
#if PY_VERSION_HEX >= 0x030E0000
    tl_future *fut = (tl_future *)futo;
    PyObject *set;
    if (!TL_FUTURE_CHECK(st, futo) || !TL_FUTURE_CHECK(st, waiter)) {
        PyObject *argv[2] = {futo, waiter};
        PyObject *r = PyObject_Vectorcall(st->add_to_awaited_by, argv, 2,
                                          NULL);
        Py_XDECREF(r);
        return r ? 0 : -1;
    }
    /* One waiter is the common case: keep it without a set. */
    if (fut->awaited_by == NULL) {
        fut->awaited_by = Py_NewRef(waiter);
        return 0;
    }
    if (fut->awaited_by_is_set)
        return PySet_Add(fut->awaited_by, waiter);
    set = PySet_New(NULL);
    if (set == NULL || PySet_Add(set, waiter) < 0
        || PySet_Add(set, fut->awaited_by) < 0) {
        Py_XDECREF(set);
        return -1;
    }
    Py_SETREF(fut->awaited_by, set);
    fut->awaited_by_is_set = 1;
    return 0;
#else
    (void)st; (void)futo; (void)waiter;
    return 0;
#endif
}

int
tl_awaited_by_discard(tl_state *st, PyObject *futo, PyObject *waiter)
{
#if PY_VERSION_HEX >= 0x030E0000
    tl_future *fut = (tl_future *)futo;
    if (!TL_FUTURE_CHECK(st, futo) || !TL_FUTURE_CHECK(st, waiter)) {
        PyObject *argv[2] = {futo, waiter};
        PyObject *r = PyObject_Vectorcall(st->discard_from_awaited_by, argv,
                                          2, NULL);
        Py_XDECREF(r);
        return r ? 0 : -1;
    }
    if (fut->awaited_by == NULL)
        return 0;
    if (fut->awaited_by == waiter) {
        Py_CLEAR(fut->awaited_by);
        return 0;
    }
    if (fut->awaited_by_is_set)
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
    (void)args;
    (void)kwds;
    return tp->tp_alloc(tp, 0);
}

static int
future_tp_init(tl_future *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"loop", NULL};
    PyObject *loop = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$O:Future", kwlist, &loop))
        return -1;
    return tl_future_init(NULL, self, loop);
}

static PyObject *
future_result(tl_future *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *res;
    /* No liveness check: an uninitialised future is simply not done. */
    int r = tl_future_get_result(tl_future_state(self), self, &res);
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
    tl_state *st = tl_future_state(self);
    if (self->loop == NULL) {
        PyErr_SetString(st->InvalidStateError,
                        "Future object is not initialized.");
        return NULL;
    }
    if (self->state == TL_CANCELLED) {
        PyObject *exc = tl_future_make_cancelled_error(st, self);
        if (exc != NULL)
            tl_err_set_raised(exc);
        return NULL;
    }
    if (self->state != TL_FINISHED) {
        PyErr_SetString(st->InvalidStateError, "Exception is not set.");
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
    return PyBool_FromLong(self->loop != NULL && self->state == TL_CANCELLED);
}

static PyObject *
future_done(tl_future *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->loop != NULL && self->state != TL_PENDING);
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
        if (!PyUnicode_Check(k)
            || PyUnicode_CompareWithASCIIString(k, "context") != 0) {
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
    r = tl_future_add_callback(self, fn, ctx);
    Py_DECREF(ctx);
    if (r < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* callback0, as asyncio would hold it, equals fn: 1, 0, or -1. */
static int
future_callback0_matches(tl_future *self, PyObject *fn)
{
    PyObject *cb, *ctx;
    int eq;
    if (future_materialize(self->callback0,
                           future_context0(tl_future_state(self), self),
                           &cb, &ctx) < 0)
        return -1;
    Py_DECREF(ctx);
    eq = PyObject_RichCompareBool(cb, fn, Py_EQ);
    Py_DECREF(cb);
    return eq;
}

/* As asyncio's: remove every callback equal to fn, return how many.  The
 * comparisons run arbitrary code that may add or remove callbacks. */
static PyObject *
future_remove_done_callback(tl_future *self, PyObject *fn)
{
    PyObject *kept;
    Py_ssize_t removed = 0, n, i;
    if (future_ensure_alive(self) < 0)
        return NULL;
    if (self->callback0 != NULL) {
        PyObject *cb0 = Py_NewRef(self->callback0);
        int eq = future_callback0_matches(self, fn);
        if (eq < 0) {
            Py_DECREF(cb0);
            return NULL;
        }
        if (eq && self->callback0 == cb0) {
            Py_CLEAR(self->callback0);
            Py_CLEAR(self->context0);
            removed = 1;
        }
        Py_DECREF(cb0);
    }
    if (self->callbacks == NULL)
        return PyLong_FromSsize_t(removed);
    n = PyList_GET_SIZE(self->callbacks);
    kept = PyList_New(0);
    if (kept == NULL)
        return NULL;
    for (i = 0; self->callbacks != NULL
                && i < PyList_GET_SIZE(self->callbacks); i++) {
        PyObject *item = Py_NewRef(PyList_GET_ITEM(self->callbacks, i));
        int eq = PyObject_RichCompareBool(PyTuple_GET_ITEM(item, 0), fn,
                                          Py_EQ);
        if (eq == 0 && PyList_Append(kept, item) < 0)
            eq = -1;
        Py_DECREF(item);
        if (eq < 0) {
            Py_DECREF(kept);
            return NULL;
        }
    }
    if (self->callbacks == NULL) {
        /* Cleared under us (the future completed): count them all. */
        Py_DECREF(kept);
        return PyLong_FromSsize_t(removed + n);
    }
    n = PyList_GET_SIZE(self->callbacks);
    removed += n - PyList_GET_SIZE(kept);
    if (PyList_GET_SIZE(kept) == 0)
        Py_CLEAR(self->callbacks);
    else if (PyList_GET_SIZE(kept) != n
             && PyList_SetSlice(self->callbacks, 0, n, kept) < 0) {
        Py_DECREF(kept);
        return NULL;
    }
    Py_DECREF(kept);
    return PyLong_FromSsize_t(removed);
}

static PyObject *
future_make_cancelled_error_py(tl_future *self, PyObject *Py_UNUSED(ignored))
{
    return tl_future_make_cancelled_error(tl_future_state(self), self);
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
    it = PyObject_GC_New(tl_futureiter, tl_future_state(self)->FutureIterType);
    if (it == NULL)
        return NULL;
    it->fut = (tl_future *)Py_NewRef(self);
    PyObject_GC_Track(it);
    return (PyObject *)it;
}

/* The value sent in is ignored, as asyncio's iterator ignores it: the
 * result is always the future's. */
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
    r = tl_future_get_result(tl_future_state(fut), fut, &res);
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
futureiter_send(tl_futureiter *it, PyObject *Py_UNUSED(arg))
{
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
    self->blocking = (unsigned)b;
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
    PyObject *list, *t, *fn, *ctx;
    if (self->callback0 == NULL && self->callbacks == NULL)
        Py_RETURN_NONE;
    list = self->callbacks ? PyList_GetSlice(self->callbacks, 0,
                                             PY_SSIZE_T_MAX)
                           : PyList_New(0);
    if (list == NULL || self->callback0 == NULL)
        return list;
    if (future_materialize(self->callback0,
                           future_context0(tl_future_state(self), self),
                           &fn, &ctx) < 0) {
        Py_DECREF(list);
        return NULL;
    }
    t = PyTuple_New(2);
    if (t == NULL) {
        Py_DECREF(fn);
        Py_DECREF(ctx);
        Py_DECREF(list);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, fn);
    PyTuple_SET_ITEM(t, 1, ctx);
    if (PyList_Insert(list, 0, t) < 0)
        Py_CLEAR(list);
    Py_DECREF(t);
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
    return Py_NewRef(self->source_tb ? self->source_tb : Py_None);
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
    PyObject *t, *fs;
    if (self->awaited_by == NULL)
        Py_RETURN_NONE;
    if (self->awaited_by_is_set)
        return PyFrozenSet_New(self->awaited_by);
    t = PyTuple_Pack(1, self->awaited_by);
    fs = t ? PyFrozenSet_New(t) : NULL;
    Py_XDECREF(t);
    return fs;
}
#endif

static PyObject *
future_repr(tl_future *self)
{
    PyObject *r;
    if (future_ensure_alive(self) < 0)
        return NULL;
    r = PyObject_CallOneArg(tl_future_state(self)->future_repr,
                            (PyObject *)self);
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
    Py_VISIT(fut->callback0);
    Py_VISIT(fut->context0);
    Py_VISIT(fut->callbacks);
    Py_VISIT(fut->result);
    Py_VISIT(fut->exception);
    Py_VISIT(fut->exception_tb);
    Py_VISIT(fut->source_tb);
    Py_VISIT(fut->cancel_msg);
    Py_VISIT(fut->cancelled_exc);
#if PY_VERSION_HEX >= 0x030E0000
    Py_VISIT(fut->awaited_by);
#endif
#if TL_LAYOUT_BITFIELDS
    return PyObject_VisitManagedDict((PyObject *)fut, visit, arg);
#else
    Py_VISIT(fut->dict);
    return 0;
#endif
}

void
tl_future_clear(tl_future *fut)
{
    future_clear_state(fut);
#if TL_LAYOUT_BITFIELDS
    PyObject_ClearManagedDict((PyObject *)fut);
#else
    Py_CLEAR(fut->dict);
#endif
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
    if (fut->source_tb != NULL
        && PyDict_SetItemString(context, "source_traceback",
                                fut->source_tb) < 0)
        goto done;
    if (tl_call_exception_handler(tl_future_state(fut), fut->loop,
                                  context) < 0)
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

/* Weak references go before the fields they might see are cleared. */
void
tl_future_clear_weakrefs(tl_future *fut)
{
#if TL_LAYOUT_BITFIELDS
    PyObject_ClearWeakRefs((PyObject *)fut);
#else
    if (fut->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)fut);
#endif
}

static void
future_dealloc(tl_future *fut)
{
    PyTypeObject *tp = Py_TYPE(fut);
    /* Our finaliser only logs an exception never retrieved: without one
     * to log, there is nothing to call (a subclass's __del__ has run in
     * its own dealloc already). */
    if ((tp->tp_finalize != tl_future_finalize
         || (fut->log_tb && fut->loop != NULL))
        && PyObject_CallFinalizerFromDealloc((PyObject *)fut) < 0)
        return;     /* resurrected */
    PyObject_GC_UnTrack(fut);
    tl_future_clear_weakrefs(fut);
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
    {Py_tp_iter, future_await},
    {Py_am_await, future_await},
    {Py_tp_doc, "This class is *almost* compatible with "
                "concurrent.futures.Future."},
    {0, NULL},    /* room for the members of the plain layout (layout.c) */
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
    if (tl_add_type(mod, &futureiter_spec, NULL, &st->FutureIterType) < 0)
        return -1;
    return tl_add_asyncio_subtype(mod, st, &future_spec, 0, &st->FutureType);
}
