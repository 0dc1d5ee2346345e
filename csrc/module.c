/* module.c -- turboloop._core: module state, type registration, imports.
 *
 * Multi-phase initialisation; every type is a heap type created from a spec
 * and held in the module state, and so are the asyncio objects the core
 * calls (looked up once, when the module is executed).
 */
#include "tl.h"
#include "profile.h"

static int
module_traverse(PyObject *mod, visitproc visit, void *arg)
{
    tl_state *st = PyModule_GetState(mod);
    Py_VISIT(st->LoopType);
    Py_VISIT(st->HandleType);
    Py_VISIT(st->TimerHandleType);
    Py_VISIT(st->FutureType);
    Py_VISIT(st->FutureIterType);
    Py_VISIT(st->TaskType);
    Py_VISIT(st->AsyncioFutureType);
    Py_VISIT(st->AsyncioTaskType);
    Py_VISIT(st->layout_problem);
    Py_VISIT(st->CancelledError);
    Py_VISIT(st->InvalidStateError);
    Py_VISIT(st->get_event_loop);
    Py_VISIT(st->get_running_loop);
    Py_VISIT(st->iscoroutine);
    Py_VISIT(st->enter_task);
    Py_VISIT(st->leave_task);
    Py_VISIT(st->current_tasks);
    for (int i = 0; i < TL_DGRAM_NSTR; i++)
        Py_VISIT(st->dgram_str[i]);
    Py_VISIT(st->tasks_data);
    Py_VISIT(st->tasks_iterating);
    Py_VISIT(st->tasks_pending);
    Py_VISIT(st->tasks_weakset);
    Py_VISIT(st->register_task);
    Py_VISIT(st->unregister_task);
    Py_VISIT(st->register_eager_task);
    Py_VISIT(st->unregister_eager_task);
    Py_VISIT(st->swap_current_task);
    Py_VISIT(st->future_repr);
    Py_VISIT(st->task_repr);
    Py_VISIT(st->task_get_stack);
    Py_VISIT(st->task_print_stack);
    Py_VISIT(st->extract_stack);
    Py_VISIT(st->format_callback_source);
    Py_VISIT(st->add_to_awaited_by);
    Py_VISIT(st->discard_from_awaited_by);
    Py_VISIT(st->BufferedProtocol);
    Py_VISIT(st->SocketTransportType);
    Py_VISIT(st->SockOpType);
    Py_VISIT(st->ssl_module);
    Py_VISIT(st->ProfilerType);
    Py_VISIT(st->ReadPipeTransportType);
    Py_VISIT(st->WritePipeTransportType);
    Py_VISIT(st->PidfdWatchType);
    for (int i = 0; i < TL_SSL_NOBJ; i++)
        Py_VISIT(st->ssl_obj[i]);
    Py_VISIT(st->DatagramTransportType);
    Py_VISIT(st->tasks_set_type);
    return 0;
}

static int
module_clear(PyObject *mod)
{
    tl_state *st = PyModule_GetState(mod);
    Py_CLEAR(st->LoopType);
    Py_CLEAR(st->HandleType);
    Py_CLEAR(st->TimerHandleType);
    Py_CLEAR(st->FutureType);
    Py_CLEAR(st->FutureIterType);
    Py_CLEAR(st->TaskType);
    Py_CLEAR(st->AsyncioFutureType);
    Py_CLEAR(st->AsyncioTaskType);
    Py_CLEAR(st->layout_problem);
    Py_CLEAR(st->CancelledError);
    Py_CLEAR(st->InvalidStateError);
    Py_CLEAR(st->get_event_loop);
    Py_CLEAR(st->get_running_loop);
    Py_CLEAR(st->iscoroutine);
    Py_CLEAR(st->enter_task);
    Py_CLEAR(st->leave_task);
    Py_CLEAR(st->current_tasks);
    for (int i = 0; i < TL_DGRAM_NSTR; i++)
        Py_CLEAR(st->dgram_str[i]);
    Py_CLEAR(st->tasks_data);
    Py_CLEAR(st->tasks_iterating);
    Py_CLEAR(st->tasks_pending);
    Py_CLEAR(st->tasks_weakset);
    Py_CLEAR(st->register_task);
    Py_CLEAR(st->unregister_task);
    Py_CLEAR(st->register_eager_task);
    Py_CLEAR(st->unregister_eager_task);
    Py_CLEAR(st->swap_current_task);
    Py_CLEAR(st->future_repr);
    Py_CLEAR(st->task_repr);
    Py_CLEAR(st->task_get_stack);
    Py_CLEAR(st->task_print_stack);
    Py_CLEAR(st->extract_stack);
    Py_CLEAR(st->format_callback_source);
    Py_CLEAR(st->add_to_awaited_by);
    Py_CLEAR(st->discard_from_awaited_by);
    Py_CLEAR(st->str_throw);
    Py_CLEAR(st->str_add_done_callback);
    Py_CLEAR(st->str_cancel);
    Py_CLEAR(st->str_call_soon);
    Py_CLEAR(st->str_call_exception_handler);
    Py_CLEAR(st->str_callback_error);
    Py_CLEAR(st->str_log_slow_callback);
    Py_CLEAR(st->str_blocking);
    Py_CLEAR(st->str_get_loop);
    Py_CLEAR(st->str_loop);
    Py_CLEAR(st->str_result);
    Py_CLEAR(st->str_get_debug);
    Py_CLEAR(st->str_context);
    Py_CLEAR(st->str_msg);
    Py_CLEAR(st->str_data_received);
    Py_CLEAR(st->str_buffer_updated);
    Py_CLEAR(st->str_get_buffer);
    Py_CLEAR(st->str_eof_received);
    Py_CLEAR(st->str_connection_lost);
    Py_CLEAR(st->str_pause_writing);
    Py_CLEAR(st->str_resume_writing);
    Py_CLEAR(st->str_recv);
    Py_CLEAR(st->str_recv_into);
    Py_CLEAR(st->str_send);
    Py_CLEAR(st->str_fileno);
    Py_CLEAR(st->str_set_result);
    Py_CLEAR(st->str_set_exception);
    Py_CLEAR(st->str_create_future);
    Py_CLEAR(st->str_ensure_fd_no_transport);
    Py_CLEAR(st->BufferedProtocol);
    Py_CLEAR(st->SocketTransportType);
    Py_CLEAR(st->SockOpType);
    Py_CLEAR(st->ssl_module);
    Py_CLEAR(st->ProfilerType);
    Py_CLEAR(st->kw_context);
    Py_CLEAR(st->kw_msg);
    Py_CLEAR(st->ReadPipeTransportType);
    Py_CLEAR(st->WritePipeTransportType);
    Py_CLEAR(st->PidfdWatchType);
    for (int i = 0; i < TL_SSL_NOBJ; i++)
        Py_CLEAR(st->ssl_obj[i]);
    Py_CLEAR(st->DatagramTransportType);
    Py_CLEAR(st->tasks_set_type);
    return 0;
}

static void
module_free(void *mod)
{
    tl_state *st = PyModule_GetState((PyObject *)mod);
    module_clear((PyObject *)mod);
    if (st != NULL) {
        /* Empty: every task in it holds the module through its type. */
        PyMem_Free(st->tasks_unregistered);
        st->tasks_unregistered = NULL;
        st->tasks_unregistered_n = st->tasks_unregistered_cap = 0;
    }
}

int
tl_add_type(PyObject *mod, PyType_Spec *spec, PyObject *base,
            PyTypeObject **out)
{
    PyTypeObject *tp = (PyTypeObject *)PyType_FromModuleAndSpec(mod, spec,
                                                                base);
    if (tp == NULL)
        return -1;
    if (PyModule_AddType(mod, tp) < 0) {
        Py_DECREF(tp);
        return -1;
    }
    *out = tp;
    return 0;
}

static PyObject *
module_import_attr(const char *modname, const char *attr, int optional)
{
    PyObject *m = PyImport_ImportModule(modname), *r;
    if (m == NULL)
        return NULL;
    r = PyObject_GetAttrString(m, attr);
    Py_DECREF(m);
    if (r == NULL && optional && PyErr_ExceptionMatches(PyExc_AttributeError)) {
        PyErr_Clear();
        return Py_NewRef(Py_None);
    }
    return r;
}

#define IMPORT(field, mod, name)                                           \
    do {                                                                   \
        if ((st->field = module_import_attr(mod, name, 0)) == NULL)        \
            return -1;                                                     \
    } while (0)
#define INTERN(field, s)                                                   \
    do {                                                                   \
        if ((st->field = PyUnicode_InternFromString(s)) == NULL)           \
            return -1;                                                     \
    } while (0)

#if PY_VERSION_HEX < 0x030E0000
/* 1 if mod.<name> is expected, 0 if not (or missing), -1 on error. */
static int
module_attr_is(PyObject *mod, const char *name, PyObject *expected)
{
    PyObject *v = PyObject_GetAttrString(mod, name);
    if (v == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return -1;
        PyErr_Clear();
        return 0;
    }
    int same = v == expected;
    Py_DECREF(v);
    return same;
}

/* Up to 3.13, _asyncio's _enter_task/_leave_task keep the current task of
 * each loop in a dict, asyncio.tasks._current_tasks.  When the hooks asyncio
 * uses are those, a task step updates the dict itself, exactly as they would,
 * and saves two calls per step.  Otherwise the step calls the hooks. */
static int
module_find_current_tasks(tl_state *st, PyObject *asyncio_c)
{
    PyObject *tasks;
    int r = module_attr_is(asyncio_c, "_enter_task", st->enter_task);
    if (r > 0)
        r = module_attr_is(asyncio_c, "_leave_task", st->leave_task);
    if (r <= 0)
        return r;
    tasks = module_import_attr("asyncio.tasks", "_current_tasks", 1);
    if (tasks == NULL)
        return -1;
    r = module_attr_is(asyncio_c, "_current_tasks", tasks);
    if (r > 0 && PyDict_CheckExact(tasks))
        st->current_tasks = Py_NewRef(tasks);
    Py_DECREF(tasks);
    return r < 0 ? -1 : 0;
}

/* Up to 3.13, _asyncio's _register_task(task) is all_tasks.add(task) on a
 * weakref.WeakSet (_asyncio._all_tasks on 3.11, _scheduled_tasks on 3.12
 * and 3.13).  When the hooks asyncio uses are those, task_register() adds a
 * weakref to the set's data itself and task_dealloc() takes it out, as
 * WeakSet.add() and its removal callback would, without running either in
 * the interpreter.  WeakSet never rebinds data, _iterating or
 * _pending_removals after __init__, so they are looked up once. */
static int
module_find_task_set(tl_state *st, PyObject *asyncio_c)
{
    PyObject *ws, *wstype, *data = NULL, *iterating = NULL, *pending = NULL;
    int r = module_attr_is(asyncio_c, "_register_task", st->register_task);
    if (r > 0)
        r = module_attr_is(asyncio_c, "_unregister_task", st->unregister_task);
    if (r <= 0)
        return r;
#if PY_VERSION_HEX >= 0x030C0000
    ws = module_import_attr("_asyncio", "_scheduled_tasks", 1);
#else
    ws = module_import_attr("_asyncio", "_all_tasks", 1);
#endif
    if (ws == NULL)
        return -1;
    wstype = module_import_attr("weakref", "WeakSet", 0);
    if (wstype == NULL) {
        Py_DECREF(ws);
        return -1;
    }
    if ((PyObject *)Py_TYPE(ws) == wstype) {
        data = PyObject_GetAttrString(ws, "data");
        iterating = PyObject_GetAttrString(ws, "_iterating");
        pending = PyObject_GetAttrString(ws, "_pending_removals");
        if (data == NULL || iterating == NULL || pending == NULL)
            /* Not the layout expected: keep calling the hooks. */
            PyErr_Clear();
        else if (PySet_CheckExact(data) && PySet_CheckExact(iterating)
                 && PyList_CheckExact(pending)) {
            st->tasks_data = Py_NewRef(data);
            st->tasks_iterating = Py_NewRef(iterating);
            st->tasks_pending = Py_NewRef(pending);
            st->tasks_weakset = Py_NewRef(ws);
        }
    }
    Py_XDECREF(data);
    Py_XDECREF(iterating);
    Py_XDECREF(pending);
    Py_DECREF(wstype);
    Py_DECREF(ws);
    return 0;
}
#endif

/* The state of _asyncio the fast paths above use, when it has it. */
static int
module_find_asyncio_state(tl_state *st)
{
#if PY_VERSION_HEX < 0x030E0000
    int r;
    PyObject *asyncio_c = PyImport_ImportModule("_asyncio");
    if (asyncio_c == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_ImportError))
            return -1;
        PyErr_Clear();
        return 0;
    }
    r = module_find_current_tasks(st, asyncio_c);
    if (r == 0)
        r = module_find_task_set(st, asyncio_c);
    Py_DECREF(asyncio_c);
    return r;
#else
    (void)st;
    return 0;
#endif
}

static int
module_exec(PyObject *mod)
{
    tl_state *st = PyModule_GetState(mod);
    PyObject *code, *n;

    IMPORT(CancelledError, "asyncio.exceptions", "CancelledError");
    IMPORT(InvalidStateError, "asyncio.exceptions", "InvalidStateError");
    IMPORT(get_event_loop, "asyncio.events", "get_event_loop");
    IMPORT(get_running_loop, "asyncio.events", "_get_running_loop");
    IMPORT(iscoroutine, "asyncio.coroutines", "iscoroutine");
    IMPORT(enter_task, "asyncio.tasks", "_enter_task");
    IMPORT(leave_task, "asyncio.tasks", "_leave_task");
    IMPORT(register_task, "asyncio.tasks", "_register_task");
    IMPORT(unregister_task, "asyncio.tasks", "_unregister_task");
    if (module_find_asyncio_state(st) < 0)
        return -1;
#if PY_VERSION_HEX >= 0x030C0000
    IMPORT(register_eager_task, "asyncio.tasks", "_register_eager_task");
    IMPORT(unregister_eager_task, "asyncio.tasks", "_unregister_eager_task");
    IMPORT(swap_current_task, "asyncio.tasks", "_swap_current_task");
    IMPORT(future_repr, "asyncio.base_futures", "_future_repr");
    IMPORT(task_repr, "asyncio.base_tasks", "_task_repr");
#else
    IMPORT(future_repr, "asyncio.base_futures", "_future_repr_info");
    IMPORT(task_repr, "asyncio.base_tasks", "_task_repr_info");
#endif
#if PY_VERSION_HEX >= 0x030E0000
    IMPORT(add_to_awaited_by, "asyncio.futures", "future_add_to_awaited_by");
    IMPORT(discard_from_awaited_by, "asyncio.futures",
           "future_discard_from_awaited_by");
#endif
    IMPORT(BufferedProtocol, "asyncio.protocols", "BufferedProtocol");
    IMPORT(task_get_stack, "asyncio.base_tasks", "_task_get_stack");
    IMPORT(task_print_stack, "asyncio.base_tasks", "_task_print_stack");
    IMPORT(extract_stack, "asyncio.format_helpers", "extract_stack");
    IMPORT(format_callback_source, "asyncio.format_helpers",
           "_format_callback_source");

    /* 3.13 added a debug= keyword to _format_callback_source. */
    code = PyObject_GetAttrString(st->format_callback_source, "__code__");
    if (code == NULL)
        return -1;
    n = PyObject_GetAttrString(code, "co_kwonlyargcount");
    Py_DECREF(code);
    if (n == NULL)
        return -1;
    st->format_source_has_debug = PyLong_AsLong(n) > 0;
    Py_DECREF(n);

    INTERN(str_throw, "throw");
    INTERN(str_add_done_callback, "add_done_callback");
    INTERN(str_cancel, "cancel");
    INTERN(str_call_soon, "call_soon");
    INTERN(str_call_exception_handler, "call_exception_handler");
    INTERN(str_callback_error, "_callback_error");
    INTERN(str_log_slow_callback, "_log_slow_callback");
    INTERN(str_blocking, "_asyncio_future_blocking");
    INTERN(str_get_loop, "get_loop");
    INTERN(str_loop, "_loop");
    INTERN(str_result, "result");
    INTERN(str_get_debug, "get_debug");
    INTERN(str_context, "context");
    INTERN(str_msg, "msg");
    INTERN(str_data_received, "data_received");
    INTERN(str_buffer_updated, "buffer_updated");
    INTERN(str_get_buffer, "get_buffer");
    INTERN(str_eof_received, "eof_received");
    INTERN(str_connection_lost, "connection_lost");
    INTERN(str_pause_writing, "pause_writing");
    INTERN(str_resume_writing, "resume_writing");
    INTERN(str_recv, "recv");
    INTERN(str_recv_into, "recv_into");
    INTERN(str_send, "send");
    INTERN(str_fileno, "fileno");
    INTERN(str_set_result, "set_result");
    INTERN(str_set_exception, "set_exception");
    INTERN(str_create_future, "create_future");
    INTERN(str_ensure_fd_no_transport, "_ensure_fd_no_transport");

    if ((st->kw_context = PyTuple_Pack(1, st->str_context)) == NULL)
        return -1;
    if ((st->kw_msg = PyTuple_Pack(1, st->str_msg)) == NULL)
        return -1;

    if (tl_handle_init_types(mod, st) < 0
        || tl_loop_init_type(mod, st) < 0
        || tl_future_init_types(mod, st) < 0
        || tl_task_init_type(mod, st) < 0
        || tl_transport_init_type(mod, st) < 0
        || tl_sockop_init_type(mod, st) < 0
        || tl_datagram_init(mod, st) < 0
        || tl_pipe_init_types(mod, st) < 0
        || tl_process_init_type(mod, st) < 0
        || tl_profile_init_type(mod, st) < 0
        || tl_sslproto_init(mod, st) < 0
        || tl_task_registry_init(mod, st) < 0)
        return -1;
    return 0;
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
#if PY_VERSION_HEX >= 0x030C0000
    /* The module state holds the types, so sub-interpreters are fine; the
     * ready queue relies on the GIL, so it is not declared free-threading
     * safe (the interpreter keeps the GIL on for it). */
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, NULL},
};

PyModuleDef tl_module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "turboloop._core",
    .m_doc = "The C core of turboloop: event loop, Handle, Future and Task.",
    .m_size = sizeof(tl_state),
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC
PyInit__core(void)
{
    return PyModuleDef_Init(&tl_module_def);
}
