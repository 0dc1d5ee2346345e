/* handle.c -- Handle and TimerHandle, as returned by call_soon / call_later.
 *
 * They behave like asyncio.Handle and asyncio.TimerHandle: cancel(),
 * cancelled(), when(), get_context(), _run(), comparisons of TimerHandles by
 * deadline, and asyncio's reprs.  A TimerHandle shares the Handle layout; its
 * deadline is what the user asked for (when() returns that very object, as
 * asyncio's does), while the loop orders its heap by the matching
 * nanosecond deadline.
 *
 * From Python 3.14 on, a handle made by call_soon_threadsafe() carries a
 * reentrant lock, as asyncio's events._ThreadSafeHandle does: cancel() and
 * cancelled() take it, and so does running the handle, which checks for
 * cancellation again once it holds it.  Another thread's cancel() or
 * cancelled() thus waits for a callback that has started, a cancel() that
 * comes first keeps the callback from running, and the callback may use its
 * own handle.  Other handles, and every handle before 3.14, have no lock and
 * pay one pointer test for it.
 */
#include "tl.h"

#include <math.h>
#if TL_HANDLE_LOCKS
#include <pythread.h>
#endif

#if TL_HANDLE_LOCKS
/* ------------------------------------------------------------------ */
/* The lock of call_soon_threadsafe()'s handles                        */
/* ------------------------------------------------------------------ */

/* A reentrant lock over a PyThread lock.  owner and depth change only while
 * the GIL is held, by the thread that holds the lock, so a thread that sees
 * itself as the owner with depth > 0 does hold it.  The handle keeps it
 * from its creation to its dealloc. */
struct tl_handle_lock {
    PyThread_type_lock lock;
    unsigned long owner;
    unsigned long depth;
};

int
tl_handle_make_threadsafe(tl_handle *h)
{
    struct tl_handle_lock *l = PyMem_Malloc(sizeof(*l));
    if (l == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    l->lock = PyThread_allocate_lock();
    if (l->lock == NULL) {
        PyMem_Free(l);
        PyErr_NoMemory();
        return -1;
    }
    l->owner = 0;
    l->depth = 0;
    h->lock = l;
    return 0;
}

/* Take the handle's lock; -1 with the error set when a signal handler
 * raises while this thread waits (as threading.RLock's acquire() would).
 * The wait is done without the GIL, so that the holder can go on. */
static int
handle_lock(struct tl_handle_lock *l)
{
    unsigned long me = PyThread_get_thread_ident();
    if (l->depth > 0 && l->owner == me) {
        l->depth++;
        return 0;
    }
    if (!PyThread_acquire_lock(l->lock, NOWAIT_LOCK)) {
        PyLockStatus r;
        for (;;) {
            Py_BEGIN_ALLOW_THREADS
            r = PyThread_acquire_lock_timed(l->lock, -1, 1);
            Py_END_ALLOW_THREADS
            if (r == PY_LOCK_ACQUIRED)
                break;
            if (PyErr_CheckSignals() < 0)
                return -1;
        }
    }
    l->owner = me;
    l->depth = 1;
    return 0;
}

static void
handle_unlock(struct tl_handle_lock *l)
{
    if (--l->depth == 0)
        PyThread_release_lock(l->lock);
}

static void
handle_free_lock(tl_handle *h)
{
    /* Whoever holds the lock holds a reference to the handle too, so it is
     * free here. */
    if (h->lock != NULL) {
        PyThread_free_lock(h->lock->lock);
        PyMem_Free(h->lock);
        h->lock = NULL;
    }
}
#endif  /* TL_HANDLE_LOCKS */

static int
handle_traverse(tl_handle *h, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(h));
    Py_VISIT(h->callback);
    Py_VISIT(h->args);
    Py_VISIT(h->context);
    Py_VISIT(h->loop);
    Py_VISIT(h->source_traceback);
    Py_VISIT(h->repr);
    Py_VISIT(h->when_obj);
    return 0;
}

static int
handle_clear(tl_handle *h)
{
    Py_CLEAR(h->callback);
    Py_CLEAR(h->args);
    Py_CLEAR(h->context);
    Py_CLEAR(h->loop);
    Py_CLEAR(h->source_traceback);
    Py_CLEAR(h->repr);
    Py_CLEAR(h->when_obj);
    return 0;
}

static void
handle_dealloc(tl_handle *h)
{
    PyTypeObject *tp = Py_TYPE(h);
    PyObject_GC_UnTrack(h);
    if (h->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)h);
    handle_clear(h);
#if TL_HANDLE_LOCKS
    handle_free_lock(h);
#endif
    tp->tp_free(h);
    Py_DECREF(tp);
}

void
tl_handle_release(tl_handle *h)
{
    Py_CLEAR(h->callback);
    Py_CLEAR(h->args);
}

static int
handle_capture_traceback(tl_state *st, tl_handle *h)
{
    /* Debug mode only: where the handle was created, as asyncio records it
     * with format_helpers.extract_stack(sys._getframe(1)). */
    PyObject *frame = (PyObject *)PyEval_GetFrame();
    PyObject *tb;
    if (frame == NULL)
        return 0;
    tb = PyObject_CallOneArg(st->extract_stack, frame);
    if (tb == NULL)
        return -1;
    h->source_traceback = tb;
    return 0;
}

PyObject *
tl_handle_new(tl_state *st, PyTypeObject *tp, PyObject *callback,
              PyObject *args, PyObject *loop, PyObject *context, double when)
{
    tl_handle *h = PyObject_GC_New(tl_handle, tp);
    if (h == NULL)
        return NULL;
    h->callback = Py_NewRef(callback);
    h->args = Py_NewRef(args);
    h->loop = Py_NewRef(loop);
    h->source_traceback = NULL;
    h->repr = NULL;
    h->weakreflist = NULL;
    h->when = when;
    h->when_obj = NULL;
    h->cancelled = 0;
    h->scheduled = 0;
    h->own_loop = 0;
#if TL_HANDLE_LOCKS
    h->lock = NULL;
#endif
    if (context == NULL || context == Py_None) {
        h->context = PyContext_CopyCurrent();
        if (h->context == NULL) {
            h->callback = h->args = h->loop = NULL;
            Py_DECREF(callback);
            Py_DECREF(args);
            Py_DECREF(loop);
            PyObject_GC_Del(h);
            Py_DECREF(tp);      /* taken by PyObject_GC_New */
            return NULL;
        }
    }
    else {
        h->context = Py_NewRef(context);
    }
    PyObject_GC_Track(h);
    if (TL_LOOP_CHECK(st, loop) && ((tl_loop *)loop)->debug) {
        if (handle_capture_traceback(st, h) < 0) {
            Py_DECREF(h);
            return NULL;
        }
    }
    return (PyObject *)h;
}

static int
handle_call(tl_handle *h)
{
    PyObject *res, *cb, *args, *ctx;
    /* The callback may cancel this handle (dropping callback and args), so
     * hold our own references while it runs. */
    cb = Py_NewRef(h->callback);
    args = Py_NewRef(h->args);
    ctx = Py_NewRef(h->context);
    if (PyContext_Enter(ctx) < 0) {
        res = NULL;
    }
    else {
        res = PyObject_Vectorcall(cb, &PyTuple_GET_ITEM(args, 0),
                                  PyTuple_GET_SIZE(args), NULL);
        if (PyContext_Exit(ctx) < 0)
            Py_CLEAR(res);
    }
    Py_DECREF(cb);
    Py_DECREF(args);
    Py_DECREF(ctx);
    if (res == NULL)
        return -1;
    Py_DECREF(res);
    return 0;
}

#if TL_HANDLE_LOCKS
/* Run a call_soon_threadsafe() handle holding its lock: a cancel() from
 * another thread that got the lock first wins, and one that comes later
 * waits until the callback has returned.  The caller holds a reference to
 * the handle, so the lock outlives whatever the callback does (cancel its
 * handle, close the loop, raise). */
static int
handle_run_locked(tl_handle *h)
{
    int r = 0;
    if (handle_lock(h->lock) < 0)
        return -1;
    if (!h->cancelled && h->callback != NULL)
        r = handle_call(h);
    handle_unlock(h->lock);
    return r;
}
#endif

int
tl_handle_run(tl_handle *h)
{
    if (h->cancelled || h->callback == NULL)
        return 0;
#if TL_HANDLE_LOCKS
    if (h->lock != NULL)
        return handle_run_locked(h);
#endif
    return handle_call(h);
}

/* Handle(callback, args, loop, context=None) */
static PyObject *
handle_new_py(PyTypeObject *tp, PyObject *args, PyObject *kwds,
              int is_timer)
{
    static char *kwlist_h[] = {"callback", "args", "loop", "context", NULL};
    static char *kwlist_t[] = {"when", "callback", "args", "loop", "context",
                               NULL};
    PyObject *callback, *cargs, *loop, *context = Py_None, *whenobj = NULL;
    PyObject *when_obj = NULL;
    double when = 0.0;
    tl_state *st = tl_state_from_type(tp);
    tl_handle *h;
    if (st == NULL)
        return NULL;
    if (is_timer) {
        if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOO|O:TimerHandle",
                                         kwlist_t, &whenobj, &callback, &cargs,
                                         &loop, &context))
            return NULL;
        /* asyncio's TimerHandle keeps any object; only a loop's call_at()
         * insists on a number. */
        if (tl_timer_deadline(whenobj, &when, &when_obj) < 0) {
            PyErr_Clear();
            when = Py_NAN;
            when_obj = Py_NewRef(whenobj);
        }
    }
    else if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO|O:Handle",
                                          kwlist_h, &callback, &cargs, &loop,
                                          &context))
        return NULL;
    if (cargs == Py_None)
        cargs = PyTuple_New(0);
    else
        cargs = PySequence_Tuple(cargs);
    if (cargs == NULL) {
        Py_XDECREF(when_obj);
        return NULL;
    }
    h = (tl_handle *)tl_handle_new(st, tp, callback, cargs, loop, context,
                                   when);
    Py_DECREF(cargs);
    if (h == NULL)
        Py_XDECREF(when_obj);
    else
        h->when_obj = when_obj;
    return (PyObject *)h;
}

static PyObject *
handle_tp_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    return handle_new_py(tp, args, kwds, 0);
}

static PyObject *
timerhandle_tp_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    return handle_new_py(tp, args, kwds, 1);
}

static PyObject *handle_repr(tl_handle *h);

PyObject *
tl_format_callback_source(tl_state *st, PyObject *cb, PyObject *args,
                          int debug)
{
    PyObject *argv[3] = {cb, args ? args : Py_None, debug ? Py_True : Py_False};
    PyObject *kw = NULL, *r;
    if (!st->format_source_has_debug)
        return PyObject_Vectorcall(st->format_callback_source, argv, 2, NULL);
    kw = Py_BuildValue("(s)", "debug");
    if (kw == NULL)
        return NULL;
    r = PyObject_Vectorcall(st->format_callback_source, argv, 2, kw);
    Py_DECREF(kw);
    return r;
}

static int
handle_loop_debug(tl_handle *h)
{
    tl_state *st = tl_state_from_type(Py_TYPE(h));
    if (st == NULL || h->loop == NULL) {
        PyErr_Clear();
        return 0;
    }
    if (TL_LOOP_CHECK(st, h->loop))
        return ((tl_loop *)h->loop)->debug;
    return tl_truth_steal(PyObject_CallMethodNoArgs(h->loop, st->str_get_debug));
}

static PyObject *
handle_cancel_unlocked(tl_handle *h)
{
    int debug;
    if (h->cancelled)
        Py_RETURN_NONE;
    h->cancelled = 1;
    /* A TimerHandle still in its loop's heap: the heap drops it lazily and
     * compacts once most of it is cancelled; or at once when it is the last
     * of the heap's array, as a timeout cancelled before the next one is
     * armed is.  (The reference the heap held is dropped there: the caller
     * holds one.) */
    if (h->own_loop && h->loop != NULL) {
        tl_loop *loop = (tl_loop *)h->loop;
        if (h->scheduled) {
            if (tl_timerheap_last(&loop->timers) == h
                && !loop->timers_filtering) {
                tl_timerheap_drop_last(&loop->timers);
                h->scheduled = 0;
                Py_DECREF(h);
            }
            else
                loop->timer_cancelled++;
        }
        debug = loop->debug;
    }
    else {
        if (h->scheduled && h->loop != NULL) {
            tl_state *st = tl_state_from_type(Py_TYPE(h));
            if (st != NULL && TL_LOOP_CHECK(st, h->loop))
                ((tl_loop *)h->loop)->timer_cancelled++;
            else
                PyErr_Clear();
        }
        debug = handle_loop_debug(h);
        if (debug < 0)
            return NULL;
    }
    if (debug) {
        /* Keep a repr that still names the callback, for debugging. */
        PyObject *r = handle_repr(h);
        if (r == NULL)
            return NULL;
        Py_XSETREF(h->repr, r);
    }
    tl_handle_release(h);
    Py_RETURN_NONE;
}

static PyObject *
handle_cancel(tl_handle *h, PyObject *Py_UNUSED(ignored))
{
#if TL_HANDLE_LOCKS
    if (h->lock != NULL) {
        PyObject *r;
        if (handle_lock(h->lock) < 0)
            return NULL;
        r = handle_cancel_unlocked(h);
        handle_unlock(h->lock);
        return r;
    }
#endif
    return handle_cancel_unlocked(h);
}

static PyObject *
handle_cancelled(tl_handle *h, PyObject *Py_UNUSED(ignored))
{
#if TL_HANDLE_LOCKS
    if (h->lock != NULL) {
        int c;
        if (handle_lock(h->lock) < 0)
            return NULL;
        c = h->cancelled;
        handle_unlock(h->lock);
        return PyBool_FromLong(c);
    }
#endif
    return PyBool_FromLong(h->cancelled);
}

static PyObject *
handle_get_context(tl_handle *h, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(h->context ? h->context : Py_None);
}

/* The deadline as asyncio's TimerHandle keeps it: the object given. */
static PyObject *
handle_when_object(tl_handle *h)
{
    if (h->when_obj != NULL)
        return Py_NewRef(h->when_obj);
    return PyFloat_FromDouble(h->when);
}

static PyObject *
handle_when(tl_handle *h, PyObject *Py_UNUSED(ignored))
{
    return handle_when_object(h);
}

static PyObject *
handle_run_py(tl_handle *h, PyObject *Py_UNUSED(ignored))
{
    /* Handle._run(): errors go to the loop's exception handler, as when the
     * loop runs the handle itself. */
    tl_state *st = tl_state_from_type(Py_TYPE(h));
    PyObject *exc, *r;
    if (st == NULL)
        return NULL;
    if (tl_handle_run(h) == 0)
        Py_RETURN_NONE;
    if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)
        || PyErr_ExceptionMatches(PyExc_SystemExit))
        return NULL;
    exc = tl_err_get_raised();
    r = PyObject_CallMethodObjArgs(h->loop, st->str_callback_error, exc,
                                   (PyObject *)h, h->callback ? h->callback : Py_None,
                                   h->args ? h->args : Py_None, NULL);
    Py_DECREF(exc);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE;
}

static PyObject *
handle_repr_info(tl_handle *h)
{
    tl_state *st = tl_state_from_type(Py_TYPE(h));
    PyObject *info, *s;
    if (st == NULL)
        return NULL;
    info = PyList_New(0);
    if (info == NULL)
        return NULL;
    s = PyType_GetName(Py_TYPE(h));
    if (s == NULL || PyList_Append(info, s) < 0)
        goto error;
    Py_DECREF(s);
    if (h->cancelled) {
        s = PyUnicode_FromString("cancelled");
        if (s == NULL || PyList_Append(info, s) < 0)
            goto error;
        Py_DECREF(s);
    }
    if (PyObject_TypeCheck(h, st->TimerHandleType)) {
        /* f'when={self._when}', that is format(when, ''). */
        PyObject *w = handle_when_object(h), *f;
        if (w == NULL)
            goto error_nos;
        f = PyObject_Format(w, NULL);
        Py_DECREF(w);
        if (f == NULL)
            goto error_nos;
        s = PyUnicode_FromFormat("when=%U", f);
        Py_DECREF(f);
        if (s == NULL || PyList_Insert(info, h->cancelled ? 2 : 1, s) < 0)
            goto error;
        Py_DECREF(s);
    }
    if (h->callback != NULL) {
        s = tl_format_callback_source(st, h->callback, h->args,
                                      handle_loop_debug(h) > 0);
        if (s == NULL || PyList_Append(info, s) < 0)
            goto error;
        Py_DECREF(s);
    }
    if (h->source_traceback != NULL && PyList_Check(h->source_traceback)
        && PyList_GET_SIZE(h->source_traceback) > 0) {
        PyObject *frame = PyList_GET_ITEM(
            h->source_traceback, PyList_GET_SIZE(h->source_traceback) - 1);
        PyObject *fn = PySequence_GetItem(frame, 0);
        PyObject *ln = fn ? PySequence_GetItem(frame, 1) : NULL;
        if (ln == NULL) {
            Py_XDECREF(fn);
            goto error_nos;
        }
        s = PyUnicode_FromFormat("created at %S:%S", fn, ln);
        Py_DECREF(fn);
        Py_DECREF(ln);
        if (s == NULL || PyList_Append(info, s) < 0)
            goto error;
        Py_DECREF(s);
    }
    return info;
error:
    Py_XDECREF(s);
error_nos:
    Py_DECREF(info);
    return NULL;
}

static PyObject *
handle_repr(tl_handle *h)
{
    PyObject *info, *sep, *joined, *r;
    if (h->repr != NULL)
        return Py_NewRef(h->repr);
    info = handle_repr_info(h);
    if (info == NULL)
        return NULL;
    sep = PyUnicode_FromString(" ");
    joined = sep ? PyUnicode_Join(sep, info) : NULL;
    Py_XDECREF(sep);
    Py_DECREF(info);
    if (joined == NULL)
        return NULL;
    r = PyUnicode_FromFormat("<%U>", joined);
    Py_DECREF(joined);
    return r;
}

static PyObject *
handle_get_callback(tl_handle *h, void *Py_UNUSED(c))
{
    return Py_NewRef(h->callback ? h->callback : Py_None);
}

static PyObject *
handle_get_args(tl_handle *h, void *Py_UNUSED(c))
{
    return Py_NewRef(h->args ? h->args : Py_None);
}

static PyObject *
handle_get_loop(tl_handle *h, void *Py_UNUSED(c))
{
    return Py_NewRef(h->loop ? h->loop : Py_None);
}

static PyObject *
handle_get_cancelled_attr(tl_handle *h, void *Py_UNUSED(c))
{
    return PyBool_FromLong(h->cancelled);
}

static PyObject *
handle_get_scheduled(tl_handle *h, void *Py_UNUSED(c))
{
    return PyBool_FromLong(h->scheduled);
}

static PyObject *
handle_get_when_attr(tl_handle *h, void *Py_UNUSED(c))
{
    return handle_when_object(h);
}

static PyObject *
handle_get_source_traceback(tl_handle *h, void *Py_UNUSED(c))
{
    return Py_NewRef(h->source_traceback ? h->source_traceback : Py_None);
}

static int
handle_set_source_traceback(tl_handle *h, PyObject *v, void *Py_UNUSED(c))
{
    if (v == NULL || v == Py_None) {
        Py_CLEAR(h->source_traceback);
        return 0;
    }
    Py_XSETREF(h->source_traceback, Py_NewRef(v));
    return 0;
}

/* x == y as the == operator has it (no identity shortcut: a NaN deadline
 * is not equal to itself); -1 on error. */
static int
handle_equal(PyObject *x, PyObject *y)
{
    return tl_truth_steal(PyObject_RichCompare(x, y, Py_EQ));
}

/* asyncio's TimerHandle.__eq__ for two TimerHandles; -1 on error. */
static int
timerhandle_eq(tl_handle *a, tl_handle *b)
{
    PyObject *x, *y;
    int eq;
    if (a->when_obj == NULL && b->when_obj == NULL)
        eq = a->when == b->when;
    else {
        x = handle_when_object(a);
        y = x ? handle_when_object(b) : NULL;
        eq = y ? handle_equal(x, y) : -1;
        Py_XDECREF(x);
        Py_XDECREF(y);
    }
    if (eq <= 0)
        return eq;
    eq = handle_equal(a->callback ? a->callback : Py_None,
                      b->callback ? b->callback : Py_None);
    if (eq <= 0)
        return eq;
    eq = handle_equal(a->args ? a->args : Py_None,
                      b->args ? b->args : Py_None);
    if (eq <= 0)
        return eq;
    return a->cancelled == b->cancelled;
}

/* Deadlines compare as asyncio's do: `self._when < other._when`, whose
 * result is returned as it is; <= and >= are "< or ==" and "> or ==". */
static PyObject *
timerhandle_richcompare(tl_handle *a, PyObject *bo, int op)
{
    tl_handle *b;
    PyObject *r, *x, *y;
    int strict, eq;
    if (!PyObject_TypeCheck(bo, Py_TYPE(a)) && !PyObject_TypeCheck((PyObject *)a, Py_TYPE(bo)))
        Py_RETURN_NOTIMPLEMENTED;
    b = (tl_handle *)bo;
    if (op == Py_EQ || op == Py_NE) {
        eq = timerhandle_eq(a, b);
        if (eq < 0)
            return NULL;
        return PyBool_FromLong(op == Py_EQ ? eq : !eq);
    }
    strict = (op == Py_LT || op == Py_LE) ? Py_LT : Py_GT;
    if (a->when_obj == NULL && b->when_obj == NULL)
        r = PyBool_FromLong(strict == Py_LT ? a->when < b->when
                                            : a->when > b->when);
    else {
        x = handle_when_object(a);
        y = x ? handle_when_object(b) : NULL;
        r = y ? PyObject_RichCompare(x, y, strict) : NULL;
        Py_XDECREF(x);
        Py_XDECREF(y);
    }
    if (r == NULL || op == strict)
        return r;
    switch (PyObject_IsTrue(r)) {
    case 1:
        return r;
    case 0:
        Py_DECREF(r);
        eq = timerhandle_eq(a, b);
        return eq < 0 ? NULL : PyBool_FromLong(eq);
    default:
        Py_DECREF(r);
        return NULL;
    }
}

static Py_hash_t
timerhandle_hash(tl_handle *h)
{
    PyObject *w = handle_when_object(h);
    Py_hash_t r;
    if (w == NULL)
        return -1;
    r = PyObject_Hash(w);
    Py_DECREF(w);
    return r;
}

/* ------------------------------------------------------------------ */
/* Deadlines                                                           */
/* ------------------------------------------------------------------ */

int
tl_timer_deadline(PyObject *o, double *when, PyObject **obj)
{
    *obj = NULL;
    if (PyFloat_CheckExact(o)) {
        *when = PyFloat_AS_DOUBLE(o);
        return 0;
    }
    if (PyLong_Check(o)) {
        /* asyncio accepts any int (10**400 too) and does its arithmetic on
         * it when the timer is next; for ordering, one too large for a
         * double is as far as a double goes. */
        *when = PyLong_AsDouble(o);
        if (*when == -1.0 && PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_OverflowError))
                return -1;
            int overflow;
            PyErr_Clear();
            (void)PyLong_AsLongLongAndOverflow(o, &overflow);
            *when = overflow < 0 ? -Py_HUGE_VAL : Py_HUGE_VAL;
        }
    }
    else if (PyFloat_Check(o))
        *when = PyFloat_AS_DOUBLE(o);
    else {
        /* A Fraction, a Decimal, anything else.  asyncio keeps it too, and
         * what its own arithmetic on it raises (Decimal - float is a
         * TypeError) the loop raises at the same point; see
         * loop_timeout_slow() and loop_schedule_timer(). */
        *when = PyFloat_AsDouble(o);
        if (*when == -1.0 && PyErr_Occurred())
            return -1;
    }
    *obj = Py_NewRef(o);
    return 0;
}

static PyMethodDef handle_methods[] = {
    {"cancel", (PyCFunction)handle_cancel, METH_NOARGS, NULL},
    {"cancelled", (PyCFunction)handle_cancelled, METH_NOARGS, NULL},
    {"get_context", (PyCFunction)handle_get_context, METH_NOARGS, NULL},
    {"_run", (PyCFunction)handle_run_py, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef timerhandle_methods[] = {
    {"when", (PyCFunction)handle_when, METH_NOARGS,
     "Return the scheduled callback time as float seconds."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef handle_getset[] = {
    {"_callback", (getter)handle_get_callback, NULL, NULL, NULL},
    {"_args", (getter)handle_get_args, NULL, NULL, NULL},
    {"_loop", (getter)handle_get_loop, NULL, NULL, NULL},
    {"_cancelled", (getter)handle_get_cancelled_attr, NULL, NULL, NULL},
    {"_context", (getter)handle_get_context, NULL, NULL, NULL},
    {"_source_traceback", (getter)handle_get_source_traceback,
     (setter)handle_set_source_traceback, NULL, NULL},
    {NULL},
};

static PyGetSetDef timerhandle_getset[] = {
    {"_scheduled", (getter)handle_get_scheduled, NULL, NULL, NULL},
    {"_when", (getter)handle_get_when_attr, NULL, NULL, NULL},
    {NULL},
};

static PyMemberDef handle_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(tl_handle, weakreflist),
     READONLY, NULL},
    {NULL},
};

static PyType_Slot handle_slots[] = {
    {Py_tp_dealloc, handle_dealloc},
    {Py_tp_traverse, handle_traverse},
    {Py_tp_clear, handle_clear},
    {Py_tp_repr, handle_repr},
    {Py_tp_methods, handle_methods},
    {Py_tp_getset, handle_getset},
    {Py_tp_members, handle_members},
    {Py_tp_new, handle_tp_new},
    {Py_tp_doc, "Object returned by callback registration methods."},
    {0, NULL},
};

static PyType_Spec handle_spec = {
    "turboloop._core.Handle", sizeof(tl_handle), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    handle_slots,
};

static PyType_Slot timerhandle_slots[] = {
    {Py_tp_dealloc, handle_dealloc},
    {Py_tp_traverse, handle_traverse},
    {Py_tp_clear, handle_clear},
    {Py_tp_methods, timerhandle_methods},
    {Py_tp_getset, timerhandle_getset},
    {Py_tp_richcompare, timerhandle_richcompare},
    {Py_tp_hash, timerhandle_hash},
    {Py_tp_new, timerhandle_tp_new},
    {Py_tp_doc, "Object returned by timed callback registration methods."},
    {0, NULL},
};

static PyType_Spec timerhandle_spec = {
    "turboloop._core.TimerHandle", sizeof(tl_handle), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    timerhandle_slots,
};

int
tl_handle_init_types(PyObject *mod, tl_state *st)
{
    if (tl_add_type(mod, &handle_spec, NULL, &st->HandleType) < 0)
        return -1;
    return tl_add_type(mod, &timerhandle_spec, (PyObject *)st->HandleType,
                       &st->TimerHandleType);
}
