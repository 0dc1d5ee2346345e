/* loop_task.c -- the loop's create_future(), create_task() and its task
 * factory (set_task_factory(), get_task_factory()).  The Future and Task
 * types themselves are future.c's and task.c's.
 */
#include "loop.h"
#include "profile.h"

PyObject *
tl_loop_create_future(tl_loop *self, PyObject *Py_UNUSED(ignored))
{
    PyTypeObject *tp = self->st->FutureType;
    tl_future *fut = (tl_future *)tp->tp_alloc(tp, 0);
    if (fut == NULL)
        return NULL;
    if (tl_future_init_fresh(self->st, fut, self) < 0) {
        Py_DECREF(fut);
        return NULL;
    }
    return (PyObject *)fut;
}

PyObject *
tl_loop_create_task(tl_loop *self, PyObject *const *args, size_t nargsf,
                 PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    PyObject *coro, *name = Py_None, *context = Py_None, *task, *r;
    int eager = 0;

    if (nargs != 1) {
        PyErr_Format(PyExc_TypeError,
                     "create_task() takes exactly one positional argument "
                     "(%zd given)", nargs);
        return NULL;
    }
    coro = args[0];
    if (loop_check_closed(self) < 0)
        return NULL;
#if PY_VERSION_HEX >= 0x030E0000
    if (self->task_factory != NULL) {
        /* 3.14+: every keyword goes to the factory unchanged. */
        PyObject **argv = PyMem_Malloc((size_t)(2 + nkw) * sizeof(PyObject *));
        PyObject *t;
        if (argv == NULL)
            return PyErr_NoMemory();
        argv[0] = (PyObject *)self;
        for (Py_ssize_t i = 0; i < 1 + nkw; i++)
            argv[1 + i] = args[i];
        t = PyObject_Vectorcall(self->task_factory, argv, 2, kwnames);
        PyMem_Free(argv);
        return t;
    }
#endif
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, i);
        PyObject *v = args[nargs + i];
        if (PyUnicode_CompareWithASCIIString(k, "name") == 0)
            name = v;
        else if (PyUnicode_CompareWithASCIIString(k, "context") == 0)
            context = v;
#if PY_VERSION_HEX >= 0x030E0000
        else if (PyUnicode_CompareWithASCIIString(k, "eager_start") == 0) {
            eager = PyObject_IsTrue(v);
            if (eager < 0)
                return NULL;
        }
#endif
        else {
            PyErr_Format(PyExc_TypeError,
                         "create_task() got an unexpected keyword argument "
                         "'%S'", k);
            return NULL;
        }
    }
    if (self->task_factory == NULL) {
        task = tl_task_create(self->st, coro, self, name, context, eager);
        if (task != NULL && self->prof != NULL)
            tl_prof_task_created(self, task);   /* where it was created */
        return task;
    }
    /* Before 3.14 the factory is called without name= (the name is set
     * afterwards) and without context= unless one was given. */
    if (context == Py_None)
        task = PyObject_CallFunctionObjArgs(self->task_factory, self, coro,
                                            NULL);
    else {
        PyObject *argv[3] = {(PyObject *)self, coro, context};
        task = PyObject_Vectorcall(self->task_factory, argv, 2,
                                   self->st->kw_context);
    }
    if (task == NULL || name == Py_None)
        return task;
    r = PyObject_CallMethod(task, "set_name", "O", name);
    if (r == NULL) {
        Py_DECREF(task);
        return NULL;
    }
    Py_DECREF(r);
    return task;
}

PyObject *
tl_loop_set_task_factory(tl_loop *self, PyObject *factory)
{
    if (factory != Py_None && !PyCallable_Check(factory)) {
        PyErr_SetString(PyExc_TypeError,
                        "task factory must be a callable or None");
        return NULL;
    }
    Py_XSETREF(self->task_factory,
               factory == Py_None ? NULL : Py_NewRef(factory));
    Py_RETURN_NONE;
}

PyObject *
tl_loop_get_task_factory(tl_loop *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self->task_factory ? self->task_factory : Py_None);
}
