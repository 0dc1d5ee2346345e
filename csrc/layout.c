/* layout.c -- making Future and Task subclasses of asyncio's C types.
 *
 * turboloop.Future derives from _asyncio.Future and turboloop.Task from
 * _asyncio.Task (and turboloop.Future), so isinstance() checks against
 * asyncio.Future / asyncio.Task hold.  A subclass instance reaches asyncio's
 * C code, which reads and writes the base struct directly (3.14+: the task
 * list, the awaited-by links, the out-of-process task reader), so our
 * objects do not extend the base with state of their own: they *are* the
 * base struct, declared in tl.h field for field for each minor version, and
 * every piece of state is kept where and how asyncio keeps it.
 *
 * That declaration is only right if the running interpreter's _asyncio was
 * built from the layout we expect.  Before the types are made, the layout is
 * checked twice over: the sizes and dict/weakref arrangement of the two base
 * types, then the fields themselves, by driving real _asyncio.Future and
 * _asyncio.Task objects through their Python API and reading each field
 * where tl.h says it is.  If anything differs (a patch release that changed
 * the private struct, an interpreter without _asyncio), the types are made
 * as plain types with the same fields instead, and a RuntimeWarning says
 * why; TURBOLOOP_ASYNCIO_BASE=0 asks for the plain types.
 */
#include "tl.h"

/* A stand-in loop and coroutine for the check, so that it depends on
 * nothing but _asyncio. */
static const char layout_probe_src[] =
    "class Loop:\n"
    "    def __init__(self):\n"
    "        self.calls = []\n"
    "    def get_debug(self):\n"
    "        return False\n"
    "    def is_running(self):\n"
    "        return False\n"
    "    def call_soon(self, callback, *args, context=None):\n"
    "        self.calls.append((callback, args, context))\n"
    "async def coro():\n"
    "    pass\n";

/* ------------------------------------------------------------------ */
/* The check                                                           */
/* ------------------------------------------------------------------ */

#define EXPECT(cond, what)                                                 \
    do {                                                                   \
        if (!(cond)) {                                                     \
            *why = (what);                                                 \
            goto mismatch;                                                 \
        }                                                                  \
    } while (0)

/* Call f(*args, **{kwname: kwvalue}); kwname may be NULL. */
static PyObject *
layout_call(PyObject *f, PyObject *arg, const char *kwname, PyObject *kwvalue)
{
    PyObject *argv[2], *kwnames = NULL, *r;
    Py_ssize_t n = 0;
    if (arg != NULL)
        argv[n++] = arg;
    if (kwname != NULL) {
        argv[n] = kwvalue;
        kwnames = Py_BuildValue("(s)", kwname);
        if (kwnames == NULL)
            return NULL;
    }
    r = PyObject_Vectorcall(f, argv, (size_t)n, kwnames);
    Py_XDECREF(kwnames);
    return r;
}

static int
layout_call_void(PyObject *obj, const char *meth, PyObject *arg)
{
    PyObject *r = arg ? PyObject_CallMethod(obj, meth, "O", arg)
                      : PyObject_CallMethod(obj, meth, NULL);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

/* The base types' shapes: sizes, and where dict and weakrefs live. */
static int
layout_check_shape(PyTypeObject *afut, PyTypeObject *atask, const char **why)
{
    EXPECT(PyType_GetFlags(afut) & Py_TPFLAGS_BASETYPE, "Future is final");
    EXPECT(PyType_GetFlags(atask) & Py_TPFLAGS_BASETYPE, "Task is final");
    EXPECT(atask->tp_base == afut, "Task's base");
    EXPECT(afut->tp_basicsize == (Py_ssize_t)sizeof(tl_future)
           && afut->tp_itemsize == 0, "Future's size");
    EXPECT(atask->tp_basicsize == (Py_ssize_t)TL_ASYNCIO_TASK_SIZE
           && atask->tp_itemsize == 0, "Task's size");
#if TL_LAYOUT_BITFIELDS
    EXPECT((PyType_GetFlags(afut) & Py_TPFLAGS_MANAGED_DICT)
           && (PyType_GetFlags(afut) & Py_TPFLAGS_MANAGED_WEAKREF),
           "Future's dict and weakrefs");
    EXPECT((PyType_GetFlags(atask) & Py_TPFLAGS_MANAGED_DICT)
           && (PyType_GetFlags(atask) & Py_TPFLAGS_MANAGED_WEAKREF),
           "Task's dict and weakrefs");
#else
    EXPECT(afut->tp_dictoffset == offsetof(tl_future, dict)
           && afut->tp_weaklistoffset == offsetof(tl_future, weakreflist),
           "Future's dict and weakrefs");
    EXPECT(atask->tp_dictoffset == offsetof(tl_task, dict)
           && atask->tp_weaklistoffset == offsetof(tl_task, weakreflist),
           "Task's dict and weakrefs");
#endif
    return 1;
mismatch:
    return 0;
}

/* Our own bit must be where the base never writes. */
#define OWN_BITS_CLEAR(f) (!(f)->own_loop)

static int
layout_check_future(PyTypeObject *afut, PyObject *loop, const char **why)
{
    PyObject *f = NULL, *g = NULL, *h = NULL, *exc = NULL, *msg = NULL;
    PyObject *value = NULL, *cb = (PyObject *)&PyLong_Type, *t;
    tl_future *F, *G, *H;
    int ok = 0;

    f = layout_call((PyObject *)afut, NULL, "loop", loop);
    g = layout_call((PyObject *)afut, NULL, "loop", loop);
    h = layout_call((PyObject *)afut, NULL, "loop", loop);
    msg = PyUnicode_FromString("turboloop layout check");
    value = PyLong_FromLong(1234567);
    exc = PyObject_CallNoArgs(PyExc_ValueError);
    if (f == NULL || g == NULL || h == NULL || msg == NULL || value == NULL
        || exc == NULL)
        goto error;
    F = (tl_future *)f;
    G = (tl_future *)g;
    H = (tl_future *)h;

    EXPECT(F->loop == loop, "Future.loop");
    EXPECT(F->state == TL_PENDING && !F->log_tb && !F->blocking
           && F->callback0 == NULL && F->callbacks == NULL
           && F->result == NULL && F->exception == NULL
           && OWN_BITS_CLEAR(F), "a new Future");
#if PY_VERSION_HEX >= 0x030E0000
    EXPECT(!F->is_task && F->awaited_by == NULL, "Future.is_task");
#endif
    if (PyObject_SetAttrString(f, "_asyncio_future_blocking", Py_True) < 0)
        goto error;
    EXPECT(F->blocking && !F->log_tb && OWN_BITS_CLEAR(F), "Future.blocking");
    if (PyObject_SetAttrString(f, "_asyncio_future_blocking", Py_False) < 0)
        goto error;
    EXPECT(!F->blocking, "Future.blocking");
    if (PyObject_SetAttrString(f, "_cancel_message", msg) < 0)
        goto error;
    EXPECT(F->cancel_msg == msg, "Future.cancel_msg");

    if (layout_call_void(f, "add_done_callback", cb) < 0)
        goto error;
    EXPECT(F->callback0 == cb && F->context0 != NULL
           && PyContext_CheckExact(F->context0) && F->callbacks == NULL,
           "Future.callback0");
    if (layout_call_void(f, "add_done_callback", cb) < 0)
        goto error;
    EXPECT(F->callbacks != NULL && PyList_CheckExact(F->callbacks)
           && PyList_GET_SIZE(F->callbacks) == 1, "Future.callbacks");
    t = PyList_GET_ITEM(F->callbacks, 0);
    EXPECT(PyTuple_CheckExact(t) && PyTuple_GET_SIZE(t) == 2
           && PyTuple_GET_ITEM(t, 0) == cb, "Future.callbacks");
    if (layout_call_void(f, "set_result", value) < 0)
        goto error;
    EXPECT(F->result == value && F->state == TL_FINISHED
           && F->callback0 == NULL && F->callbacks == NULL
           && OWN_BITS_CLEAR(F), "Future.result");

    if (layout_call_void(g, "set_exception", exc) < 0)
        goto error;
    EXPECT(G->exception == exc && G->state == TL_FINISHED && G->log_tb
           && !G->blocking && OWN_BITS_CLEAR(G), "Future.exception");
    if (layout_call_void(g, "exception", NULL) < 0)
        goto error;
    EXPECT(!G->log_tb, "Future.log_tb");

    if (layout_call_void(h, "cancel", NULL) < 0)
        goto error;
    EXPECT(H->state == TL_CANCELLED, "Future.state");
#if PY_VERSION_HEX >= 0x030E0000
    {
        PyObject *mod = PyImport_ImportModule("_asyncio"), *r;
        if (mod == NULL)
            goto error;
        r = PyObject_CallMethod(mod, "future_add_to_awaited_by", "OO", f, g);
        Py_XDECREF(r);
        if (r != NULL) {
            r = PyObject_CallMethod(mod, "future_add_to_awaited_by", "OO", f,
                                    h);
            Py_XDECREF(r);
        }
        Py_DECREF(mod);
        if (r == NULL)
            goto error;
        EXPECT(F->awaited_by_is_set && F->awaited_by != NULL
               && PySet_CheckExact(F->awaited_by)
               && PySet_GET_SIZE(F->awaited_by) == 2, "Future.awaited_by");
    }
#endif
    ok = 1;
    goto done;
mismatch:
    ok = 0;
    goto done;
error:
    ok = -1;
done:
    Py_XDECREF(f);
    Py_XDECREF(g);
    Py_XDECREF(h);
    Py_XDECREF(exc);
    Py_XDECREF(msg);
    Py_XDECREF(value);
    return ok;
}

static int
layout_check_task(PyTypeObject *atask, PyObject *loop, PyObject *coro_fn,
                  const char **why)
{
    PyObject *coro = NULL, *t = NULL, *name = NULL, *msg = NULL, *args = NULL;
    PyObject *kw = NULL, *ctx = NULL, *r;
    tl_task *T;
    int ok = 0;

    coro = PyObject_CallNoArgs(coro_fn);
    name = PyUnicode_FromString("turboloop-layout-check");
    msg = PyUnicode_FromString("turboloop layout check");
    if (coro == NULL || name == NULL || msg == NULL)
        goto error;
    args = PyTuple_Pack(1, coro);
    kw = Py_BuildValue("{sOsO}", "loop", loop, "name", name);
    if (args == NULL || kw == NULL)
        goto error;
    t = PyObject_Call((PyObject *)atask, args, kw);
    if (t == NULL)
        goto error;
    T = (tl_task *)t;
#if PY_VERSION_HEX >= 0x030C0000
    ctx = PyObject_CallMethod(t, "get_context", NULL);      /* 3.12+ */
    if (ctx == NULL)
        goto error;
#else
    ctx = PyContext_CopyCurrent();      /* only its type is compared */
    if (ctx == NULL)
        goto error;
#endif

    EXPECT(T->loop == loop && T->state == TL_PENDING, "Task.loop");
    EXPECT(T->coro == coro, "Task.coro");
    EXPECT(T->name != NULL && PyUnicode_Check(T->name)
           && PyUnicode_Compare(T->name, name) == 0, "Task.name");
#if PY_VERSION_HEX >= 0x030C0000
    EXPECT(T->context == ctx, "Task.context");
#else
    EXPECT(T->context != NULL && PyContext_CheckExact(T->context),
           "Task.context");
#endif
    EXPECT(T->fut_waiter == NULL && T->num_cancels_requested == 0
           && !T->must_cancel && T->log_destroy_pending && !T->log_tb
           && !T->blocking && OWN_BITS_CLEAR(T), "a new Task");
#if PY_VERSION_HEX >= 0x030E0000
    EXPECT(T->is_task == 1, "Task.is_task");
    EXPECT(T->node.next != NULL && T->node.prev != NULL
           && T->node.next->prev == &T->node, "Task.node");
#endif
    if (layout_call_void(t, "cancel", msg) < 0)
        goto error;
    EXPECT(T->must_cancel && T->num_cancels_requested == 1
           && T->cancel_msg == msg && T->log_destroy_pending
           && OWN_BITS_CLEAR(T), "Task.must_cancel");
    if (PyObject_SetAttrString(t, "_log_destroy_pending", Py_False) < 0)
        goto error;
    EXPECT(!T->log_destroy_pending && T->must_cancel && OWN_BITS_CLEAR(T),
           "Task.log_destroy_pending");
#if PY_VERSION_HEX >= 0x030E0000
    {
        PyObject *mod = PyImport_ImportModule("_asyncio");
        if (mod == NULL)
            goto error;
        r = PyObject_CallMethod(mod, "_unregister_task", "O", t);
        Py_DECREF(mod);
        Py_XDECREF(r);
        if (r == NULL)
            goto error;
        EXPECT(T->node.next == NULL && T->node.prev == NULL, "Task.node");
    }
#endif
    ok = 1;
    goto done;
mismatch:
    ok = 0;
    goto done;
error:
    ok = -1;
done:
    if (coro != NULL) {
        /* The task never ran: close the coroutine so that it does not
         * warn that it was never awaited. */
        PyObject *exc = tl_err_get_raised();
        r = PyObject_CallMethod(coro, "close", NULL);
        if (r == NULL) {
            if (exc == NULL)
                ok = -1;
            else
                PyErr_Clear();
        }
        Py_XDECREF(r);
        if (exc != NULL)
            tl_err_set_raised(exc);
    }
    Py_XDECREF(t);
    Py_XDECREF(ctx);
    Py_XDECREF(coro);
    Py_XDECREF(name);
    Py_XDECREF(msg);
    Py_XDECREF(args);
    Py_XDECREF(kw);
    return ok;
}

/* 1: the layout is ours; 0: it is not (*why says where); -1: error. */
static int
layout_check(PyTypeObject *afut, PyTypeObject *atask, const char **why)
{
    PyObject *code, *ns = NULL, *r, *loop_cls, *loop = NULL, *coro_fn;
    int ok;

    ok = layout_check_shape(afut, atask, why);
    if (ok <= 0)
        return ok;
    code = Py_CompileString(layout_probe_src, "<turboloop layout check>",
                            Py_file_input);
    if (code == NULL)
        return -1;
    ns = PyDict_New();
    if (ns == NULL
        || PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins()) < 0) {
        Py_DECREF(code);
        Py_XDECREF(ns);
        return -1;
    }
    r = PyEval_EvalCode(code, ns, ns);
    Py_DECREF(code);
    if (r == NULL)
        goto error;
    Py_DECREF(r);
    loop_cls = PyDict_GetItemString(ns, "Loop");             /* borrowed */
    coro_fn = PyDict_GetItemString(ns, "coro");               /* borrowed */
    if (loop_cls == NULL || coro_fn == NULL) {
        PyErr_SetString(PyExc_SystemError, "turboloop layout check");
        goto error;
    }
    loop = PyObject_CallNoArgs(loop_cls);
    if (loop == NULL)
        goto error;
    ok = layout_check_future(afut, loop, why);
    if (ok > 0)
        ok = layout_check_task(atask, loop, coro_fn, why);
    /* What the objects scheduled refers back to them: drop it now rather
     * than leave cycles for the collector. */
    if (ok >= 0) {
        r = PyObject_GetAttrString(loop, "calls");
        if (r == NULL || PyList_SetSlice(r, 0, PY_SSIZE_T_MAX, NULL) < 0)
            ok = -1;
        Py_XDECREF(r);
    }
    Py_DECREF(loop);
    Py_DECREF(ns);
    return ok;
error:
    Py_XDECREF(loop);
    Py_XDECREF(ns);
    return -1;
}

/* ------------------------------------------------------------------ */
/* Making the types                                                    */
/* ------------------------------------------------------------------ */

/* Find asyncio's C Future and Task and check them; on success they are in
 * st->AsyncioFutureType / AsyncioTaskType, else those stay NULL. */
static int
layout_find_bases(tl_state *st)
{
    const char *env = getenv("TURBOLOOP_ASYNCIO_BASE");
    const char *why = NULL;
    PyObject *mod, *afut = NULL, *atask = NULL;
    int ok;

    if (env != NULL && strcmp(env, "0") == 0)
        return 0;
    mod = PyImport_ImportModule("_asyncio");
    if (mod == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_ImportError))
            return -1;
        PyErr_Clear();
        why = "_asyncio cannot be imported";
        goto plain;
    }
    afut = PyObject_GetAttrString(mod, "Future");
    atask = afut ? PyObject_GetAttrString(mod, "Task") : NULL;
    Py_DECREF(mod);
    if (atask == NULL) {
        Py_XDECREF(afut);
        return -1;
    }
    if (!PyType_Check(afut) || !PyType_Check(atask)) {
        why = "_asyncio.Future or Task is not a type";
        ok = 0;
    }
    else
        ok = layout_check((PyTypeObject *)afut, (PyTypeObject *)atask, &why);
    if (ok < 0) {
        Py_DECREF(afut);
        Py_DECREF(atask);
        return -1;
    }
    if (ok) {
        st->AsyncioFutureType = (PyTypeObject *)afut;
        st->AsyncioTaskType = (PyTypeObject *)atask;
        return 0;
    }
    Py_DECREF(afut);
    Py_DECREF(atask);
plain:
    st->layout_problem = PyUnicode_FromString(why);
    if (st->layout_problem == NULL)
        return -1;
    return PyErr_WarnFormat(PyExc_RuntimeWarning, 1,
                            "turboloop: asyncio's C Future and Task do not "
                            "have the layout this build expects (%s); "
                            "turboloop.Future and turboloop.Task are not "
                            "subclasses of asyncio.Future and asyncio.Task",
                            why);
}

#if !TL_LAYOUT_BITFIELDS
static PyMemberDef layout_plain_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(tl_future, weakreflist),
     READONLY, NULL},
    {"__dictoffset__", T_PYSSIZET, offsetof(tl_future, dict), READONLY, NULL},
    {NULL},
};
#endif

/* A plain Future keeps its dict and weak references where the base would
 * have: managed by the interpreter (3.13+) or in the dict and weakreflist
 * fields.  The spec's slot list ends with a spare entry for that. */
static void
layout_make_plain(PyType_Spec *spec)
{
#if TL_LAYOUT_BITFIELDS
    spec->flags |= Py_TPFLAGS_MANAGED_DICT | Py_TPFLAGS_MANAGED_WEAKREF;
#else
    PyType_Slot *slot = spec->slots;
    while (slot->slot != 0)
        slot++;
    slot->slot = Py_tp_members;
    slot->pfunc = layout_plain_members;
#endif
}

int
tl_add_asyncio_subtype(PyObject *mod, tl_state *st, PyType_Spec *spec,
                       int is_task, PyTypeObject **out)
{
    PyObject *bases;
    int r;
    if (!is_task) {
        if (layout_find_bases(st) < 0)
            return -1;
        if (st->AsyncioFutureType != NULL)
            bases = PyTuple_Pack(1, (PyObject *)st->AsyncioFutureType);
        else {
            layout_make_plain(spec);
            bases = PyTuple_New(0);
        }
    }
    else if (st->AsyncioTaskType != NULL)
        bases = PyTuple_Pack(2, (PyObject *)st->FutureType,
                             (PyObject *)st->AsyncioTaskType);
    else
        bases = PyTuple_Pack(1, (PyObject *)st->FutureType);
    if (bases == NULL)
        return -1;
    r = tl_add_type(mod, spec, PyTuple_GET_SIZE(bases) ? bases : NULL, out);
    Py_DECREF(bases);
    if (r < 0)
        return -1;
    assert((*out)->tp_basicsize
           == (Py_ssize_t)(is_task ? sizeof(tl_task) : sizeof(tl_future)));
    if (!is_task)
        return PyModule_AddObjectRef(mod, "ASYNCIO_BASE",
                                     st->AsyncioFutureType ? Py_True
                                                           : Py_False);
    return 0;
}
