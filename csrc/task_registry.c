/* task_registry.c -- our tasks in asyncio's task WeakSet (3.11-3.13).
 *
 * Up to 3.13 asyncio keeps every task in a WeakSet (tasks._all_tasks, from
 * 3.12 _scheduled_tasks), which all_tasks() reads.  When _register_task is
 * _asyncio's, turboloop does its work itself (module_find_task_set): a
 * weakref to the task in the WeakSet's data, taken out again at dealloc.
 * That is a weakref, a set insertion and a set removal per task, about 600
 * instructions, a tenth of what a short-lived task costs in all.
 *
 * So a new task goes into an array in the module state instead (borrowed:
 * the array keeps nothing alive; the task keeps its index, and leaves by
 * taking the last entry's place), and enters the set only when the set is
 * read.  Every method of WeakSet, and so every reader
 * (all_tasks(), len(), iteration, `in`), goes through the instance
 * attribute `data`.  At the first task, the WeakSet's class is changed to a
 * subclass in which `data` is a property: it moves the listed tasks into
 * the set, then returns the set.  A task created and destroyed between two
 * reads never touches the set, and what the readers see is what they see
 * on asyncio.  A process that makes no turboloop task keeps the WeakSet as
 * it was.
 *
 * Re-entrancy: making a weakref and adding it to the set can run Python
 * code (a task subclass's __hash__, a garbage collection and its
 * finalisers), which can create or destroy tasks and read the set again.
 * The flush takes one task off the end of the array at a time, so a nested
 * flush or a task destroyed meanwhile finds the array consistent.
 *
 * 3.14 keeps its own intrusive list of tasks (task.c links into it), and
 * none of this is compiled.
 */
#include "tl.h"

#if PY_VERSION_HEX < 0x030E0000

#define REGISTRY_IS_INDEX(r) (((r) & 1) != 0)
#define REGISTRY_REF(t) ((PyObject *)(t)->registry)

/* Into the array; 0, or -1 (no memory, no exception set). */
static int
registry_append(tl_state *st, tl_task *task)
{
    Py_ssize_t n = st->tasks_unregistered_n;
    if (n == st->tasks_unregistered_cap) {
        Py_ssize_t cap = n < 64 ? 64 : n * 2;
        tl_task **a = PyMem_Realloc(st->tasks_unregistered,
                                    (size_t)cap * sizeof(tl_task *));
        if (a == NULL)
            return -1;
        st->tasks_unregistered = a;
        st->tasks_unregistered_cap = cap;
    }
    st->tasks_unregistered[n] = task;
    st->tasks_unregistered_n = n + 1;
    task->registry = ((uintptr_t)n << 1) | 1;
    return 0;
}

/* Out of the array: the last entry takes its place. */
static void
registry_take_out(tl_state *st, tl_task *task)
{
    Py_ssize_t i = (Py_ssize_t)(task->registry >> 1);
    Py_ssize_t last = --st->tasks_unregistered_n;
    if (i != last) {
        tl_task *moved = st->tasks_unregistered[last];
        st->tasks_unregistered[i] = moved;
        moved->registry = ((uintptr_t)i << 1) | 1;
    }
    task->registry = 0;
}

/* What WeakSet.add() does, with a weakref that has no callback (dealloc
 * does the callback's work).  commit: first commit the set's pending
 * removals, as add() does; the flush does not, since it runs inside
 * readers, some of them iterating the set. */
static int
registry_add_now(tl_state *st, tl_task *task, int commit)
{
    PyObject *ref;
    if (commit && PyList_GET_SIZE(st->tasks_pending) > 0) {
        PyObject *c = PyObject_CallMethod(st->tasks_weakset,
                                          "_commit_removals", NULL);
        if (c == NULL)
            return -1;
        Py_DECREF(c);
    }
    ref = PyWeakref_NewRef((PyObject *)task, NULL);
    if (ref == NULL)
        return -1;
    /* Making the weakref may have run a collection: is the set still
     * known (module cleared) and the task still unregistered? */
    if (st->tasks_data == NULL || task->registry != 0) {
        Py_DECREF(ref);
        return 0;
    }
    if (PySet_Add(st->tasks_data, ref) < 0) {
        Py_DECREF(ref);
        return -1;
    }
    task->registry = (uintptr_t)ref;
    return 0;
}

/* Put every task of the array in the set. */
static int
registry_flush(tl_state *st)
{
    while (st->tasks_unregistered_n > 0) {
        tl_task *task = st->tasks_unregistered[st->tasks_unregistered_n - 1];
        int r;
        registry_take_out(st, task);
        if (st->tasks_data == NULL)
            continue;
        Py_INCREF(task);
        r = registry_add_now(st, task, 0);
        if (r < 0 && task->registry == 0 && registry_append(st, task) < 0)
            PyErr_WriteUnraisable((PyObject *)task);    /* lost: no memory */
        Py_DECREF(task);
        if (r < 0)
            return -1;
    }
    return 0;
}

/* Change the WeakSet's class to ours; 1 if done, 0 if it cannot be. */
static int
registry_start_deferring(tl_state *st)
{
    if (st->tasks_set_type == NULL || st->tasks_weakset == NULL)
        return 0;
    if (PyObject_SetAttrString(st->tasks_weakset, "__class__",
                               st->tasks_set_type) < 0) {
        /* Someone else's class (a layout we cannot take over): stay
         * with adding at once. */
        PyErr_Clear();
        Py_CLEAR(st->tasks_set_type);
        return 0;
    }
    st->tasks_deferring = 1;
    return 1;
}

int
tl_task_registry_add(tl_state *st, tl_task *task)
{
    PyObject *argv[1] = {(PyObject *)task}, *r;
    if (st->tasks_data != NULL) {
        if (task->registry != 0)
            return 0;       /* __init__ again: registered already */
        /* Deferred only on our loops, through which the state is found
         * at dealloc whatever the interpreter has finalised already. */
        if (task->own_loop
            && (st->tasks_deferring || registry_start_deferring(st))
            && registry_append(st, task) == 0)
            return 0;
        return registry_add_now(st, task, 1);
    }
    r = PyObject_Vectorcall(st->register_task, argv, 1, NULL);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* The task is being destroyed: out of the array; or its weakref out of the
 * set, or, while the set is being iterated, left for the set to remove
 * afterwards, as WeakSet's own removal callback does. */
void
tl_task_registry_remove(tl_task *task)
{
    tl_state *st;
    PyObject *ref, *exc;
    int r;
    if (task->registry == 0)
        return;
    if (REGISTRY_IS_INDEX(task->registry)) {
        /* Only tasks of our loops are deferred, and the task's loop is
         * cleared after this. */
        registry_take_out(TL_FUT_TLOOP(task)->st, task);
        return;
    }
    st = tl_future_state(task);
    ref = REGISTRY_REF(task);
    task->registry = 0;
    if (st == NULL || st->tasks_data == NULL) {
        PyErr_Clear();
        Py_DECREF(ref);
        return;
    }
    exc = tl_err_get_raised();
    if (PySet_GET_SIZE(st->tasks_iterating) > 0)
        r = PyList_Append(st->tasks_pending, ref);
    else
        r = PySet_Discard(st->tasks_data, ref);
    if (r < 0)
        PyErr_WriteUnraisable((PyObject *)task);
    if (exc != NULL)
        tl_err_set_raised(exc);
    Py_DECREF(ref);
}

/* ------------------------------------------------------------------ */
/* The WeakSet subclass                                                */
/* ------------------------------------------------------------------ */

/* The `data` property's getter: the listed tasks into the set, then the
 * instance's own `data`. */
static PyObject *
registry_data_get(PyObject *mod, PyObject *ws)
{
    tl_state *st = PyModule_GetState(mod);
    PyObject *dict, *data;
    if (ws == st->tasks_weakset && registry_flush(st) < 0)
        return NULL;
    dict = PyObject_GenericGetDict(ws, NULL);
    if (dict == NULL)
        return NULL;
    data = PyDict_GetItemString(dict, "data");
    if (data == NULL)
        PyErr_SetString(PyExc_AttributeError, "data");
    Py_XINCREF(data);
    Py_DECREF(dict);
    return data;
}

/* The setter (WeakSet.__init__ is the only writer): the listed tasks into
 * the old set, then the new value in the instance dict, which becomes the
 * set our tasks go to if it is a set. */
static PyObject *
registry_data_set(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    tl_state *st = PyModule_GetState(mod);
    PyObject *dict;
    int r;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "expected an object and a value");
        return NULL;
    }
    if (args[0] == st->tasks_weakset && registry_flush(st) < 0)
        return NULL;
    dict = PyObject_GenericGetDict(args[0], NULL);
    if (dict == NULL)
        return NULL;
    r = PyDict_SetItemString(dict, "data", args[1]);
    Py_DECREF(dict);
    if (r < 0)
        return NULL;
    if (args[0] == st->tasks_weakset) {
        if (PySet_CheckExact(args[1]))
            Py_XSETREF(st->tasks_data, Py_NewRef(args[1]));
        else
            Py_CLEAR(st->tasks_data);   /* asyncio's hooks from now on */
    }
    Py_RETURN_NONE;
}

static PyMethodDef registry_data_get_def = {
    "_tasks_data_get", (PyCFunction)registry_data_get, METH_O, NULL};
static PyMethodDef registry_data_set_def = {
    "_tasks_data_set", (PyCFunction)(void (*)(void))registry_data_set,
    METH_FASTCALL, NULL};

/* Make the WeakSet subclass, when the fast path found the WeakSet
 * (module_find_task_set); its class is changed at the first task. */
int
tl_task_registry_init(PyObject *mod, tl_state *st)
{
    PyObject *fget = NULL, *fset = NULL, *prop = NULL, *ns = NULL;
    int r = -1;
    if (st->tasks_weakset == NULL)
        return 0;
    fget = PyCFunction_NewEx(&registry_data_get_def, mod, NULL);
    fset = PyCFunction_NewEx(&registry_data_set_def, mod, NULL);
    if (fget == NULL || fset == NULL)
        goto done;
    prop = PyObject_CallFunctionObjArgs((PyObject *)&PyProperty_Type,
                                        fget, fset, NULL);
    if (prop == NULL)
        goto done;
    ns = Py_BuildValue("{s:O,s:(),s:s,s:s}", "data", prop, "__slots__",
                       "__module__", "turboloop._core", "__doc__",
                       "asyncio's task WeakSet, which turboloop's tasks "
                       "enter when it is read.");
    if (ns == NULL)
        goto done;
    st->tasks_set_type = PyObject_CallFunction(
        (PyObject *)&PyType_Type, "s(O)O", "TaskWeakSet",
        (PyObject *)Py_TYPE(st->tasks_weakset), ns);
    if (st->tasks_set_type == NULL)
        goto done;
    r = 0;
done:
    Py_XDECREF(fget);
    Py_XDECREF(fset);
    Py_XDECREF(prop);
    Py_XDECREF(ns);
    return r;
}

#else /* 3.14+ */

int
tl_task_registry_init(PyObject *mod, tl_state *st)
{
    (void)mod;
    (void)st;
    return 0;
}

#endif
