/* task.c -- turboloop.Task: a coroutine driven by the loop.
 *
 * The step logic follows asyncio.Task.__step of the running Python version.
 * On a turboloop loop a step or a wake-up is a ring entry (TL_EV_TASK_STEP,
 * TL_EV_TASK_WAKEUP) that the loop runs inside the task's context; on any
 * other loop it goes through loop.call_soon with a bound builtin method.
 *
 * asyncio sees these tasks through its own hooks (see INTEROP notes in the
 * design docs): _register_task when created, _enter_task/_leave_task around
 * each step (current_task(), timeout(), TaskGroup rely on it), and the eager
 * variants around an eager first step.
 *
 * Re-entrancy: sending into the coroutine, calling a foreign future's
 * methods and the asyncio hooks all run arbitrary code that may cancel this
 * task or close the loop; the code re-reads task state after each of them
 * and holds its own references to what it works on.
 */
#include "tl.h"
#include "profile.h"

static PyMethodDef task_step_def;
static PyMethodDef task_wakeup_def;

/* ------------------------------------------------------------------ */
/* Scheduling                                                          */
/* ------------------------------------------------------------------ */

PyObject *
tl_task_wakeup_callable(tl_task *task)
{
    return PyCFunction_New(&task_wakeup_def, (PyObject *)task);
}

/* Queue a step, optionally throwing exc (borrowed) into the coroutine. */
static int
task_schedule_step(tl_task *task, PyObject *exc)
{
    tl_loop *tloop = TL_FUT_TLOOP(task);
    tl_state *st;
    PyObject *cb, *argv[3], *r;
    if (tloop != NULL) {
        if (tloop->debug && tl_loop_check_thread(tloop) < 0)
            return -1;
        return tl_loop_push(tloop, TL_EV_TASK_STEP,
                            Py_NewRef((PyObject *)task), Py_XNewRef(exc),
                            NULL);
    }
    st = tl_future_state(task);
    cb = PyCFunction_New(&task_step_def, (PyObject *)task);
    if (cb == NULL)
        return -1;
    argv[0] = task->loop;
    argv[1] = cb;
    if (exc == NULL) {
        argv[2] = task->context;
        r = PyObject_VectorcallMethod(st->str_call_soon, argv,
                                      2 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                      st->kw_context);
    }
    else {
        PyObject *argv4[4] = {task->loop, cb, exc, task->context};
        r = PyObject_VectorcallMethod(st->str_call_soon, argv4,
                                      3 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                      st->kw_context);
    }
    Py_DECREF(cb);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* Schedule a step that throws RuntimeError(msg) into the coroutine. */
static int
task_schedule_error(tl_task *task, PyObject *msg)
{
    PyObject *exc;
    int r;
    if (msg == NULL)
        return -1;
    exc = PyObject_CallOneArg(PyExc_RuntimeError, msg);
    Py_DECREF(msg);
    if (exc == NULL)
        return -1;
    r = task_schedule_step(task, exc);
    Py_DECREF(exc);
    return r;
}

static PyObject *
task_call_hook(PyObject *hook, PyObject *a, PyObject *b)
{
    PyObject *argv[2] = {a, b};
    return PyObject_Vectorcall(hook, argv, b ? 2 : 1, NULL);
}

static int
task_call_hook_void(PyObject *hook, PyObject *a, PyObject *b)
{
    PyObject *r = task_call_hook(hook, a, b);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* asyncio's _enter_task(loop, task): with _asyncio's dict at hand, what
 * that function does, without the call. */
static int
task_enter(tl_state *st, PyObject *loop, PyObject *task)
{
    PyObject *cur;
    if (st->current_tasks == NULL)
        return task_call_hook_void(st->enter_task, loop, task);
    cur = PyDict_SetDefault(st->current_tasks, loop, task);   /* borrowed */
    if (cur == NULL)
        return -1;
    if (cur != task) {
        Py_INCREF(cur);     /* the repr of either may change the dict */
        PyErr_Format(PyExc_RuntimeError,
                     "Cannot enter into task %R while another task %R "
                     "is being executed.", task, cur);
        Py_DECREF(cur);
        return -1;
    }
    return 0;
}

/* asyncio's _leave_task(loop, task), likewise. */
static int
task_leave(tl_state *st, PyObject *loop, PyObject *task)
{
    PyObject *cur;              /* the current task, a new reference */
    if (st->current_tasks == NULL)
        return task_call_hook_void(st->leave_task, loop, task);
#if PY_VERSION_HEX >= 0x030D0000
    /* One lookup: take the entry out, put it back if it is not ours. */
    switch (PyDict_Pop(st->current_tasks, loop, &cur)) {
    case -1:
        return -1;
    case 0:
        cur = Py_NewRef(Py_None);
        break;
    default:
        if (cur == task) {
            Py_DECREF(cur);
            return 0;
        }
        if (PyDict_SetItem(st->current_tasks, loop, cur) < 0) {
            Py_DECREF(cur);
            return -1;
        }
    }
#else
    {
        /* The dict usually holds this loop's entry alone: then the first
         * entry PyDict_Next() finds is it, without hashing or a lookup.
         * Nothing runs between that and the deletion. */
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        if (PyDict_Next(st->current_tasks, &pos, &key, &value) && key == loop)
            cur = value;                                        /* borrowed */
        else
            cur = PyDict_GetItemWithError(st->current_tasks, loop);
    }
    if (cur == task)
        return PyDict_DelItem(st->current_tasks, loop);
    if (cur == NULL && PyErr_Occurred())
        return -1;
    cur = Py_NewRef(cur ? cur : Py_None);
#endif
    PyErr_Format(PyExc_RuntimeError,
                 "Leaving task %R does not match the current task %R.",
                 task, cur);
    Py_DECREF(cur);
    return -1;
}

/* asyncio's _register_task(task): task_registry.c up to 3.13, the hook on
 * 3.14+ (which links the task into asyncio's list itself). */
static int
task_register(tl_state *st, tl_task *task)
{
#if PY_VERSION_HEX < 0x030E0000
    return tl_task_registry_add(st, task);
#else
    return task_call_hook_void(st->register_task, (PyObject *)task, NULL);
#endif
}

void
tl_task_unlink(tl_task *task)
{
#if PY_VERSION_HEX >= 0x030E0000
    /* asyncio's list of tasks is intrusive, circular and doubly linked, and
     * holds borrowed references: a task leaves it when it is done or
     * destroyed, as asyncio's own do.  The module keeps the GIL, so no other
     * thread walks the list meanwhile. */
    struct tl_llist_node *n = &task->node;
    if (n->next == NULL)
        return;
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = NULL;
#else
    (void)task;
#endif
}

/* Cancel the future a task waits on; 1 if it agreed, 0 if not, -1 error. */
static int
task_cancel_waiter(tl_state *st, PyObject *fut, PyObject *msg)
{
    PyObject *argv[2];
    if (Py_IS_TYPE(fut, st->FutureType))
        return tl_future_cancel((tl_future *)fut, msg);
    argv[0] = fut;
    argv[1] = msg ? msg : Py_None;
    /* fut.cancel(msg=msg): one positional (self), one keyword. */
    return tl_truth_steal(PyObject_VectorcallMethod(st->str_cancel, argv,
                                  1 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                  st->kw_msg));
}

/* ------------------------------------------------------------------ */
/* Stepping                                                            */
/* ------------------------------------------------------------------ */

/* Handle what the coroutine yielded; steals result. */
static int
task_handle_yield(tl_state *st, tl_task *task, PyObject *result)
{
    PyObject *blocking = NULL, *floop = NULL;
    int r, is_blocking;

    if (result == Py_None) {
        /* A bare yield (asyncio.sleep(0)): run again next iteration. */
        Py_DECREF(result);
        return task_schedule_step(task, NULL);
    }

    if (TL_FUTURE_CHECK_EXACT(st, result)) {
        /* Fast path: one of our futures (or tasks). */
        tl_future *fut = (tl_future *)result;
        if (fut->loop != task->loop) {
            r = task_schedule_error(task, PyUnicode_FromFormat(
                "Task %R got Future %R attached to a different loop",
                (PyObject *)task, result));
            Py_DECREF(result);
            return r;
        }
        if (!fut->blocking) {
            r = task_schedule_error(task, PyUnicode_FromFormat(
                "yield was used instead of yield from in task %R with %R",
                (PyObject *)task, result));
            Py_DECREF(result);
            return r;
        }
        if (result == (PyObject *)task) {
            r = task_schedule_error(task, PyUnicode_FromFormat(
                "Task cannot await on itself: %R", (PyObject *)task));
            Py_DECREF(result);
            return r;
        }
        if (tl_awaited_by_add(st, result, (PyObject *)task) < 0) {
            Py_DECREF(result);
            return -1;
        }
        fut->blocking = 0;
        if (tl_future_add_callback(fut, (PyObject *)task, NULL) < 0) {
            Py_DECREF(result);
            return -1;
        }
        Py_XSETREF(task->fut_waiter, result);
        if (task->must_cancel) {
            r = task_cancel_waiter(st, result, task->cancel_msg);
            if (r < 0)
                return -1;
            if (r)
                task->must_cancel = 0;
        }
        return 0;
    }

    r = tl_getattr_opt(result, st->str_blocking, &blocking);
    if (r < 0) {
        Py_DECREF(result);
        return -1;
    }
    if (r == 1 && blocking != Py_None) {
        /* A foreign future that follows the protocol. */
        PyObject *wake, *argv[3];
        r = tl_getattr_opt(result, st->str_get_loop, &floop);
        if (r == 1) {
            PyObject *l = PyObject_CallNoArgs(floop);
            Py_SETREF(floop, l);
        }
        else if (r == 0) {
            floop = PyObject_GetAttr(result, st->str_loop);
        }
        if (floop == NULL)
            goto error;
        if (floop != task->loop) {
            Py_DECREF(floop);
            Py_DECREF(blocking);
            r = task_schedule_error(task, PyUnicode_FromFormat(
                "Task %R got Future %R attached to a different loop",
                (PyObject *)task, result));
            Py_DECREF(result);
            return r;
        }
        Py_CLEAR(floop);
        is_blocking = PyObject_IsTrue(blocking);
        Py_CLEAR(blocking);
        if (is_blocking < 0)
            goto error;
        if (!is_blocking) {
            r = task_schedule_error(task, PyUnicode_FromFormat(
                "yield was used instead of yield from in task %R with %R",
                (PyObject *)task, result));
            Py_DECREF(result);
            return r;
        }
        if (result == (PyObject *)task) {
            r = task_schedule_error(task, PyUnicode_FromFormat(
                "Task cannot await on itself: %R", (PyObject *)task));
            Py_DECREF(result);
            return r;
        }
        if (tl_awaited_by_add(st, result, (PyObject *)task) < 0)
            goto error;
        if (PyObject_SetAttr(result, st->str_blocking, Py_False) < 0)
            goto error;
        wake = tl_task_wakeup_callable(task);
        if (wake == NULL)
            goto error;
        argv[0] = result;
        argv[1] = wake;
        argv[2] = task->context;
        {
            PyObject *res = PyObject_VectorcallMethod(
                st->str_add_done_callback, argv,
                2 | PY_VECTORCALL_ARGUMENTS_OFFSET, st->kw_context);
            Py_DECREF(wake);
            if (res == NULL)
                goto error;
            Py_DECREF(res);
        }
        Py_XSETREF(task->fut_waiter, result);
        if (task->must_cancel) {
            r = task_cancel_waiter(st, result, task->cancel_msg);
            if (r < 0)
                return -1;
            if (r)
                task->must_cancel = 0;
        }
        return 0;
    }
    Py_XDECREF(blocking);

    if (PyGen_Check(result))
        r = task_schedule_error(task, PyUnicode_FromFormat(
            "yield was used instead of yield from for generator in task %R "
            "with %R", (PyObject *)task, result));
    else
        r = task_schedule_error(task, PyUnicode_FromFormat(
            "Task got bad yield: %R", result));
    Py_DECREF(result);
    return r;

error:
    Py_XDECREF(blocking);
    Py_XDECREF(floop);
    Py_DECREF(result);
    return -1;
}

/* Send into (or throw into) the coroutine and act on the outcome; steals
 * exc.  This is asyncio's __step_run_and_handle_result. */
static int
task_step_run(tl_state *st, tl_task *task, PyObject *exc)
{
    PyObject *coro = task->coro, *result = NULL, *r;
    PySendResult sr;

    if (coro == NULL) {
        Py_XDECREF(exc);
        PyErr_SetString(PyExc_RuntimeError, "Task has no coroutine");
        return -1;
    }
    Py_INCREF(coro);
    if (exc == NULL) {
        sr = PyIter_Send(coro, Py_None, &result);
    }
    else {
        result = PyObject_CallMethodOneArg(coro, st->str_throw, exc);
        Py_DECREF(exc);
        if (result != NULL)
            sr = PYGEN_NEXT;
        else if (PyErr_ExceptionMatches(PyExc_StopIteration)) {
            PyObject *e = tl_err_get_raised();
            result = PyObject_GetAttrString(e, "value");
            Py_DECREF(e);
            if (result == NULL) {
                Py_DECREF(coro);
                return -1;
            }
            sr = PYGEN_RETURN;
        }
        else
            sr = PYGEN_ERROR;
    }
    Py_DECREF(coro);

    switch (sr) {
    case PYGEN_RETURN:
        if (task->must_cancel) {
            /* Cancelled right before the coroutine returned. */
            task->must_cancel = 0;
            Py_DECREF(result);
            return tl_future_cancel((tl_future *)task, task->cancel_msg) < 0
                   ? -1 : 0;
        }
        r = tl_future_set_result((tl_future *)task, result);
        Py_DECREF(result);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
        return 0;

    case PYGEN_ERROR: {
        PyObject *e;
        if (PyErr_ExceptionMatches(st->CancelledError)) {
            /* Keep the original so the cancellation chain survives. */
            e = tl_err_get_raised();
            Py_XSETREF(task->cancelled_exc, e);
            return tl_future_cancel((tl_future *)task, NULL) < 0 ? -1 : 0;
        }
        e = tl_err_get_raised();
        if (e == NULL)
            return -1;
        r = tl_future_set_exception((tl_future *)task, e);
        if (r == NULL) {
            Py_DECREF(e);
            return -1;
        }
        Py_DECREF(r);
        if (PyErr_GivenExceptionMatches(e, PyExc_KeyboardInterrupt)
            || PyErr_GivenExceptionMatches(e, PyExc_SystemExit)) {
            /* Recorded on the task and raised out of the loop, too. */
            tl_err_set_raised(e);
            return -1;
        }
        Py_DECREF(e);
        return 0;
    }

    default:
        return task_handle_yield(st, task, result);
    }
}

int
tl_task_step(tl_task *task, PyObject *exc)
{
    tl_state *st = tl_future_state(task);
    PyObject *loop;
    int r;

    if (task->state != TL_PENDING) {
        PyErr_Format(st->InvalidStateError, "_step(): already done: %R, %R",
                     (PyObject *)task, exc ? exc : Py_None);
        return -1;
    }
    Py_XINCREF(exc);
    if (task->must_cancel) {
        if (exc == NULL || !PyErr_GivenExceptionMatches(exc, st->CancelledError)) {
            Py_XDECREF(exc);
            exc = tl_future_make_cancelled_error(st, (tl_future *)task);
            if (exc == NULL)
                return -1;
        }
        task->must_cancel = 0;
    }
    Py_CLEAR(task->fut_waiter);

    Py_INCREF(task);
    loop = Py_NewRef(task->loop);
    if (task_enter(st, loop, (PyObject *)task) < 0) {
        Py_XDECREF(exc);
        Py_DECREF(loop);
        Py_DECREF(task);
        return -1;
    }
    r = task_step_run(st, task, exc);
    if (r < 0) {
        PyObject *err = tl_err_get_raised();
        if (task_leave(st, loop, (PyObject *)task) < 0) {
            /* Report the leave failure chained to what was raised. */
            PyObject *err2 = tl_err_get_raised();
            PyException_SetContext(err2, err);
            err = err2;
        }
        tl_err_set_raised(err);
    }
    else {
        r = task_leave(st, loop, (PyObject *)task);
    }
    Py_DECREF(loop);
    Py_DECREF(task);
    return r;
}

int
tl_task_wakeup(tl_task *task, PyObject *fut)
{
    tl_state *st = tl_future_state(task);
    PyObject *res;
    int r;

    if (tl_awaited_by_discard(st, fut, (PyObject *)task) < 0)
        return -1;
    if (TL_FUTURE_CHECK_EXACT(st, fut)) {
        r = tl_future_get_result(st, (tl_future *)fut, &res);
        if (r < 0) {
            res = tl_err_get_raised();
            r = 0;
        }
    }
    else {
        res = PyObject_CallMethodNoArgs(fut, st->str_result);
        if (res == NULL) {
            res = tl_err_get_raised();
            r = 0;
        }
        else
            r = 1;
    }
    if (r == 1) {
        Py_DECREF(res);
        return tl_task_step(task, NULL);
    }
    r = tl_task_step(task, res);
    Py_DECREF(res);
    return r;
}

/* ------------------------------------------------------------------ */
/* Creation                                                            */
/* ------------------------------------------------------------------ */

static int
task_eager_start(tl_state *st, tl_task *task)
{
    PyObject *prev, *cur, *err = NULL;
    int r;

    prev = task_call_hook(st->swap_current_task, task->loop, (PyObject *)task);
    if (prev == NULL)
        return -1;
    r = task_call_hook_void(st->register_eager_task, (PyObject *)task, NULL);
    if (r == 0) {
        PyObject *ctx = Py_NewRef(task->context);
        tl_prof_span span = {0};
        tl_loop *tloop = TL_FUT_TLOOP(task);
        if (tloop != NULL && tloop->prof != NULL)
            tl_prof_task_begin(tloop, (PyObject *)task, &span);
        if (PyContext_Enter(ctx) < 0)
            r = -1;
        else {
            r = task_step_run(st, task, NULL);
            if (PyContext_Exit(ctx) < 0)
                r = -1;
        }
        tl_prof_span_end(&span);
        Py_DECREF(ctx);
        if (r < 0)
            err = tl_err_get_raised();
        if (task_call_hook_void(st->unregister_eager_task, (PyObject *)task,
                                NULL) < 0) {
            Py_XDECREF(err);
            err = tl_err_get_raised();
        }
    }
    else
        err = tl_err_get_raised();
    cur = task_call_hook(st->swap_current_task, task->loop, prev);
    Py_DECREF(prev);
    if (cur == NULL) {
        Py_XDECREF(err);
        return -1;
    }
    Py_DECREF(cur);
    if (err != NULL) {
        tl_err_set_raised(err);
        return -1;
    }
    if (task->state != TL_PENDING) {
        Py_CLEAR(task->coro);
        return 0;
    }
    return task_register(st, task);
}

static int
task_is_coroutine(tl_state *st, PyObject *coro)
{
    if (PyCoro_CheckExact(coro))
        return 1;
    return tl_truth_steal(PyObject_CallOneArg(st->iscoroutine, coro));
}

static int
task_loop_is_running(tl_task *task)
{
    if (task->own_loop)
        return TL_FUT_TLOOP(task)->running;
    return tl_truth_steal(PyObject_CallMethod(task->loop, "is_running", NULL));
}

/* fresh: the task was just allocated for that loop, one of ours (loop is
 * then a tl_loop). */
static int
task_init(tl_state *st, tl_task *task, PyObject *coro, PyObject *loop,
          PyObject *name, PyObject *context, int eager_start, int fresh)
{
    int r;

    if (st == NULL && (st = tl_state_from_type(Py_TYPE(task))) == NULL)
        return -1;
    r = fresh ? tl_future_init_fresh(st, (tl_future *)task, (tl_loop *)loop)
              : tl_future_init(st, (tl_future *)task, loop);
    if (r < 0)
        return -1;
#if PY_VERSION_HEX >= 0x030E0000
    task->is_task = 1;
#endif
    task->log_destroy_pending = 1;
    r = task_is_coroutine(st, coro);
    if (r <= 0) {
        /* Nothing was started: don't complain about it when destroyed. */
        task->log_destroy_pending = 0;
        if (r == 0)
            PyErr_Format(PyExc_TypeError, "a coroutine was expected, got %R",
                         coro);
        return -1;
    }
    if (context == NULL || context == Py_None) {
        context = PyContext_CopyCurrent();
        if (context == NULL)
            return -1;
    }
    else if (!PyContext_CheckExact(context)) {
        task->log_destroy_pending = 0;
        PyErr_Format(PyExc_TypeError,
                     "a contextvars.Context was expected, got %s",
                     Py_TYPE(context)->tp_name);
        return -1;
    }
    else {
        Py_INCREF(context);
    }
    Py_XSETREF(task->context, context);
    Py_XSETREF(task->coro, Py_NewRef(coro));
    task->must_cancel = 0;
    task->num_cancels_requested = 0;
    Py_CLEAR(task->fut_waiter);
    if (name == NULL || name == Py_None) {
        /* As asyncio 3.13+: the number now, "Task-N" when someone asks.
         * On 3.11 and 3.12 nothing outside this file reads the field, and
         * the number stays a C integer until then, while it fits. */
        unsigned long long n = ++st->task_name_counter;
#ifdef TL_TASK_NAME_NUM
        if (n <= UINT_MAX) {
            Py_CLEAR(task->name);
            task->name_num = (unsigned int)n;
            name = NULL;
        }
        else
#endif
        if ((name = PyLong_FromUnsignedLongLong(n)) == NULL)
            return -1;
    }
    else {
        name = PyUnicode_CheckExact(name) ? Py_NewRef(name)
                                          : PyObject_Str(name);
        if (name == NULL)
            return -1;
    }
    if (name != NULL) {
        Py_XSETREF(task->name, name);
#ifdef TL_TASK_NAME_NUM
        task->name_num = 0;
#endif
    }

    if (eager_start) {
        r = task_loop_is_running(task);
        if (r < 0)
            return -1;
        if (r) {
            if (task_eager_start(st, task) < 0) {
                task->log_destroy_pending = 0;
                return -1;
            }
            return 0;
        }
    }
    if (task_schedule_step(task, NULL) < 0)
        return -1;
    return task_register(st, task);
}

PyObject *
tl_task_create(tl_state *st, PyObject *coro, tl_loop *loop, PyObject *name,
               PyObject *context, int eager_start)
{
    PyTypeObject *tp = st->TaskType;
    tl_task *task = (tl_task *)tp->tp_alloc(tp, 0);
    if (task == NULL)
        return NULL;
    if (task_init(st, task, coro, (PyObject *)loop, name, context,
                  eager_start, 1) < 0) {
        Py_DECREF(task);
        return NULL;
    }
    return (PyObject *)task;
}

static int
task_tp_init(tl_task *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"coro", "loop", "name", "context", "eager_start",
                             NULL};
    PyObject *coro, *loop = Py_None, *name = Py_None, *context = Py_None;
    int eager = 0;
#if PY_VERSION_HEX >= 0x030C0000
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|$OOOp:Task", kwlist,
                                     &coro, &loop, &name, &context, &eager))
        return -1;
#else
    kwlist[4] = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|$OOO:Task", kwlist,
                                     &coro, &loop, &name, &context))
        return -1;
#endif
    return task_init(NULL, self, coro, loop, name, context, eager, 0);
}

/* ------------------------------------------------------------------ */
/* Python methods                                                      */
/* ------------------------------------------------------------------ */

static PyObject *
task_cancel(tl_task *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"msg", NULL};
    PyObject *msg = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:cancel", kwlist, &msg))
        return NULL;
    self->log_tb = 0;
    if (self->state != TL_PENDING)
        Py_RETURN_FALSE;
    self->num_cancels_requested++;
    if (self->fut_waiter != NULL) {
        PyObject *waiter = Py_NewRef(self->fut_waiter);
        int r = task_cancel_waiter(tl_future_state(self), waiter, msg);
        Py_DECREF(waiter);
        if (r < 0)
            return NULL;
        if (r)
            Py_RETURN_TRUE;
    }
    self->must_cancel = 1;
    Py_XSETREF(self->cancel_msg, Py_NewRef(msg));
    Py_RETURN_TRUE;
}

static PyObject *
task_cancelling(tl_task *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLong(self->num_cancels_requested);
}

static PyObject *
task_uncancel(tl_task *self, PyObject *Py_UNUSED(ignored))
{
    if (self->num_cancels_requested > 0) {
        self->num_cancels_requested--;
#if PY_VERSION_HEX >= 0x030D0000
        if (self->num_cancels_requested == 0)
            self->must_cancel = 0;
#endif
    }
    return PyLong_FromLong(self->num_cancels_requested);
}

static PyObject *
task_get_coro(tl_task *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self->coro ? self->coro : Py_None);
}

static PyObject *
task_get_context(tl_task *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self->context ? self->context : Py_None);
}

PyObject *
tl_task_name_ref(tl_task *task)
{
#ifdef TL_TASK_NAME_NUM
    if (task->name == NULL && task->name_num != 0)
        return PyLong_FromUnsignedLong(task->name_num);
#endif
    return Py_XNewRef(task->name);
}

static PyObject *
task_get_name(tl_task *self, PyObject *Py_UNUSED(ignored))
{
#ifdef TL_TASK_NAME_NUM
    if (self->name == NULL && self->name_num != 0) {
        self->name = PyUnicode_FromFormat("Task-%u", self->name_num);
        if (self->name == NULL)
            return NULL;
        self->name_num = 0;
    }
#endif
    if (self->name == NULL)
        Py_RETURN_NONE;
    if (PyLong_CheckExact(self->name)) {
        /* The default name is formatted only when someone asks. */
        PyObject *s = PyUnicode_FromFormat("Task-%S", self->name);
        if (s == NULL)
            return NULL;
        Py_SETREF(self->name, s);
    }
    return Py_NewRef(self->name);
}

static PyObject *
task_set_name(tl_task *self, PyObject *value)
{
    PyObject *s = PyUnicode_CheckExact(value) ? Py_NewRef(value)
                                              : PyObject_Str(value);
    if (s == NULL)
        return NULL;
    Py_XSETREF(self->name, s);
#ifdef TL_TASK_NAME_NUM
    self->name_num = 0;
#endif
    Py_RETURN_NONE;
}

static PyObject *
task_set_result(tl_task *self, PyObject *Py_UNUSED(arg))
{
    (void)self;
    PyErr_SetString(PyExc_RuntimeError,
                    "Task does not support set_result operation");
    return NULL;
}

static PyObject *
task_set_exception(tl_task *self, PyObject *Py_UNUSED(arg))
{
    (void)self;
    PyErr_SetString(PyExc_RuntimeError,
                    "Task does not support set_exception operation");
    return NULL;
}

static PyObject *
task_get_stack(tl_task *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"limit", NULL};
    PyObject *limit = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$O:get_stack", kwlist,
                                     &limit))
        return NULL;
    return PyObject_CallFunctionObjArgs(tl_future_state(self)->task_get_stack,
                                        self, limit, NULL);
}

static PyObject *
task_print_stack(tl_task *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"limit", "file", NULL};
    PyObject *limit = Py_None, *file = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$OO:print_stack", kwlist,
                                     &limit, &file))
        return NULL;
    return PyObject_CallFunctionObjArgs(tl_future_state(self)->task_print_stack,
                                        self, limit, file, NULL);
}

/* The callables used on foreign loops: _step(exc=None) and _wakeup(fut). */
static PyObject *
task_step_py(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *exc = nargs > 0 && args[0] != Py_None ? args[0] : NULL;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "_step() takes at most 1 argument");
        return NULL;
    }
    if (tl_task_step((tl_task *)self, exc) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
task_wakeup_py(PyObject *self, PyObject *fut)
{
    if (tl_task_wakeup((tl_task *)self, fut) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef task_step_def = {
    "_step", (PyCFunction)(void (*)(void))task_step_py, METH_FASTCALL, NULL};
static PyMethodDef task_wakeup_def = {
    "task_wakeup", (PyCFunction)task_wakeup_py, METH_O, NULL};

static PyObject *
task_repr(tl_task *self)
{
    PyObject *r;
    if (self->loop == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Future object is not initialized.");
        return NULL;
    }
    r = PyObject_CallOneArg(tl_future_state(self)->task_repr, (PyObject *)self);
#if PY_VERSION_HEX < 0x030C0000
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
/* Attributes                                                          */
/* ------------------------------------------------------------------ */

static PyObject *
task_get_log_destroy_pending(tl_task *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(self->log_destroy_pending);
}

static int
task_set_log_destroy_pending(tl_task *self, PyObject *v, void *Py_UNUSED(c))
{
    int b = tl_setter_bool(v);
    if (b < 0)
        return -1;
    self->log_destroy_pending = (unsigned char)b;
    return 0;
}

static PyObject *
task_get_must_cancel(tl_task *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(self->must_cancel);
}

static PyObject *
task_get_coro_attr(tl_task *self, void *Py_UNUSED(c))
{
    return task_get_coro(self, NULL);
}

static PyObject *
task_get_fut_waiter(tl_task *self, void *Py_UNUSED(c))
{
    return Py_NewRef(self->fut_waiter ? self->fut_waiter : Py_None);
}

static PyObject *
task_get_num_cancels(tl_task *self, void *Py_UNUSED(c))
{
    return PyLong_FromLong(self->num_cancels_requested);
}

static PyObject *
task_get_context_attr(tl_task *self, void *Py_UNUSED(c))
{
    return task_get_context(self, NULL);
}

/* ------------------------------------------------------------------ */
/* Lifecycle                                                           */
/* ------------------------------------------------------------------ */

static int
task_traverse(tl_task *self, visitproc visit, void *arg)
{
    Py_VISIT(self->coro);
    Py_VISIT(self->context);
    Py_VISIT(self->fut_waiter);
    Py_VISIT(self->name);
    return tl_future_traverse((tl_future *)self, visit, arg);
}

static int
task_clear(tl_task *self)
{
    tl_task_unlink(self);
#if PY_VERSION_HEX < 0x030E0000
    /* While the loop (and through it the module state) is still at hand. */
    tl_task_registry_remove(self);
#endif
    Py_CLEAR(self->coro);
    Py_CLEAR(self->context);
    Py_CLEAR(self->fut_waiter);
    Py_CLEAR(self->name);
    tl_future_clear((tl_future *)self);
    return 0;
}

static void
task_finalize(PyObject *self)
{
    tl_task *task = (tl_task *)self;
    if (task->state == TL_PENDING && task->log_destroy_pending
        && task->loop != NULL) {
        PyObject *exc = tl_err_get_raised();
        PyObject *context = PyDict_New();
        PyObject *msg = PyUnicode_FromString(
            "Task was destroyed but it is pending!");
        task->log_destroy_pending = 0;
        if (context != NULL && msg != NULL
            && PyDict_SetItemString(context, "task", self) == 0
            && PyDict_SetItemString(context, "message", msg) == 0
            && (task->source_tb == NULL
                || PyDict_SetItemString(context, "source_traceback",
                                        task->source_tb) == 0)) {
            if (tl_call_exception_handler(tl_future_state(task), task->loop,
                                          context) < 0)
                PyErr_WriteUnraisable(self);
        }
        else {
            Py_XDECREF(context);
            PyErr_WriteUnraisable(self);
        }
        Py_XDECREF(msg);
        if (exc != NULL)
            tl_err_set_raised(exc);
    }
    tl_future_finalize(self);
}

static void
task_dealloc(tl_task *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    /* Off asyncio's list first, as asyncio does (3.14+): the list must
     * never show a task whose finaliser is running or has run. */
    tl_task_unlink(self);
    /* Our finaliser logs a task destroyed pending, or an exception never
     * retrieved: without either, there is nothing to call (a subclass's
     * __del__ has run in its own dealloc already). */
    if ((tp->tp_finalize != task_finalize
         || (self->loop != NULL
             && ((self->state == TL_PENDING && self->log_destroy_pending)
                 || self->log_tb)))
        && PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0)
        return;     /* resurrected */
    PyObject_GC_UnTrack(self);
    tl_future_clear_weakrefs((tl_future *)self);
    task_clear(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef task_methods[] = {
    {"cancel", (PyCFunction)(void (*)(void))task_cancel,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"cancelling", (PyCFunction)task_cancelling, METH_NOARGS, NULL},
    {"uncancel", (PyCFunction)task_uncancel, METH_NOARGS, NULL},
    {"get_coro", (PyCFunction)task_get_coro, METH_NOARGS, NULL},
    {"get_context", (PyCFunction)task_get_context, METH_NOARGS, NULL},
    {"get_name", (PyCFunction)task_get_name, METH_NOARGS, NULL},
    {"set_name", (PyCFunction)task_set_name, METH_O, NULL},
    {"set_result", (PyCFunction)task_set_result, METH_O, NULL},
    {"set_exception", (PyCFunction)task_set_exception, METH_O, NULL},
    {"get_stack", (PyCFunction)(void (*)(void))task_get_stack,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"print_stack", (PyCFunction)(void (*)(void))task_print_stack,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef task_getset[] = {
    {"_log_destroy_pending", (getter)task_get_log_destroy_pending,
     (setter)task_set_log_destroy_pending, NULL, NULL},
    {"_must_cancel", (getter)task_get_must_cancel, NULL, NULL, NULL},
    {"_coro", (getter)task_get_coro_attr, NULL, NULL, NULL},
    {"_fut_waiter", (getter)task_get_fut_waiter, NULL, NULL, NULL},
    {"_num_cancels_requested", (getter)task_get_num_cancels, NULL, NULL, NULL},
    {"_context", (getter)task_get_context_attr, NULL, NULL, NULL},
    {NULL},
};

static PyType_Slot task_slots[] = {
    {Py_tp_init, task_tp_init},
    {Py_tp_dealloc, task_dealloc},
    {Py_tp_traverse, task_traverse},
    {Py_tp_clear, task_clear},
    {Py_tp_finalize, task_finalize},
    {Py_tp_repr, task_repr},
    {Py_tp_methods, task_methods},
    {Py_tp_getset, task_getset},
    {Py_tp_doc, "A coroutine wrapped in a Future."},
    {0, NULL},
};

static PyType_Spec task_spec = {
    "turboloop._core.Task", sizeof(tl_task), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    task_slots,
};

int
tl_task_init_type(PyObject *mod, tl_state *st)
{
    return tl_add_asyncio_subtype(mod, st, &task_spec, 1, &st->TaskType);
}
