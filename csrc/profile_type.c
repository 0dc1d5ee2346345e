/* profile_type.c -- turboloop._core.Profiler as Python sees it: making
 * one, attaching it to a loop, and snapshot(), which copies the tables of
 * profile.c out as plain objects (times in ns).  turboloop/profiling.py
 * turns those into the Profile the user gets.
 */
#include "profile_data.h"

#include <string.h>

/* ------------------------------------------------------------------ */
/* Making, attaching, clearing                                         */
/* ------------------------------------------------------------------ */

static PyObject *
prof_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"cpu", "trace_events", "max_tasks", "capture",
                             "skip_prefixes", "task_types", NULL};
    tl_state *st = tl_state_from_type(tp);
    int cpu = 0;
    Py_ssize_t trace = 0, max_tasks = PROF_MAX_TASKS;
    PyObject *capture = Py_None, *skip = NULL, *task_types = NULL;
    tl_prof *p;
    if (st == NULL)
        return NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$pnnOO!O!:Profiler",
                                     kwlist, &cpu, &trace, &max_tasks,
                                     &capture, &PyTuple_Type, &skip,
                                     &PyTuple_Type, &task_types))
        return NULL;
    if (trace < 0 || max_tasks < 0) {
        PyErr_SetString(PyExc_ValueError,
                        "trace_events and max_tasks must be >= 0");
        return NULL;
    }
    if (capture != Py_None && !PyCallable_Check(capture)) {
        PyErr_SetString(PyExc_TypeError, "capture must be callable or None");
        return NULL;
    }
    if (skip != NULL) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(skip); i++)
            if (!PyUnicode_Check(PyTuple_GET_ITEM(skip, i))) {
                PyErr_SetString(PyExc_TypeError,
                                "skip_prefixes must be a tuple of str");
                return NULL;
            }
    }
    p = (tl_prof *)tp->tp_alloc(tp, 0);
    if (p == NULL)
        return NULL;
    p->st = st;
    p->cpu = (char)cpu;
    p->max_tasks = (size_t)max_tasks;
    p->free_slot = -1;
    p->done_floor = -1;
    p->origin = prof_now();
    p->capture = capture == Py_None ? NULL : Py_NewRef(capture);
    p->skip_prefixes = Py_XNewRef(skip);
    if (task_types != NULL && PyTuple_GET_SIZE(task_types) > 0)
        p->task_types = Py_NewRef(task_types);
    p->skip_list = PyList_New(0);
    p->str_get_name = PyUnicode_InternFromString("get_name");
    p->str_done = PyUnicode_InternFromString("done");
    p->str_get_coro = PyUnicode_InternFromString("get_coro");
    p->cr_code = PyObject_GetAttrString((PyObject *)&PyCoro_Type, "cr_code");
    p->gi_code = PyObject_GetAttrString((PyObject *)&PyGen_Type, "gi_code");
    if (p->skip_list == NULL || p->str_get_name == NULL
        || p->str_done == NULL || p->str_get_coro == NULL
        || p->cr_code == NULL || p->gi_code == NULL) {
        Py_DECREF(p);
        return NULL;
    }
    if (Py_TYPE(p->cr_code)->tp_descr_get == NULL
        || Py_TYPE(p->gi_code)->tp_descr_get == NULL) {
        PyErr_SetString(PyExc_SystemError, "cr_code is not a descriptor");
        Py_DECREF(p);
        return NULL;
    }
    p->cr_code_offset = -1;
    if (Py_IS_TYPE(p->cr_code, &PyMemberDescr_Type)) {
        PyMemberDef *m = ((PyMemberDescrObject *)p->cr_code)->d_member;
        if (m->type == T_OBJECT || m->type == T_OBJECT_EX)
            p->cr_code_offset = m->offset;
    }
    if (trace > 0) {
        p->ring = PyMem_Calloc((size_t)trace, sizeof(prof_event));
        if (p->ring == NULL) {
            Py_DECREF(p);
            return PyErr_NoMemory();
        }
        p->ring_cap = (size_t)trace;
    }
    return (PyObject *)p;
}

static int
prof_traverse(tl_prof *p, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(p));
    Py_VISIT(p->capture);
    Py_VISIT(p->skip_prefixes);
    Py_VISIT(p->task_types);
    Py_VISIT(p->skip_list);
    for (size_t i = 0; i < p->ntasks; i++) {
        Py_VISIT(p->tasks[i].ref);
        Py_VISIT(p->tasks[i].created);
    }
    for (size_t i = 0; i < p->ndone; i++) {
        Py_VISIT(p->done[i].name);
        Py_VISIT(p->done[i].created);
    }
    for (size_t i = 0; i < p->nsites; i++)
        Py_VISIT(p->sites[i].what);
    for (int i = 0; i < p->nslow; i++)
        Py_VISIT(p->slow[i].stack);
    return 0;
}

/* Empty every table, dropping the references after the tables are
 * consistent (the decrefs may run code that looks at us). */
static void
prof_reset(tl_prof *p)
{
    prof_task *tasks = p->tasks, *done = p->done;
    prof_site *sites = p->sites;
    size_t ntasks = p->ntasks, ndone = p->ndone, nsites = p->nsites;
    PyObject *stacks[PROF_NSLOW];
    int nslow = p->nslow;
    for (int i = 0; i < nslow; i++)
        stacks[i] = p->slow[i].stack;
    p->tasks = p->done = NULL;
    p->sites = NULL;
    p->ntasks = p->tasks_cap = p->nsites = p->sites_cap = 0;
    p->ndone = p->done_cap = 0;
    p->free_slot = -1;
    p->done_floor = -1;
    p->last_code = NULL;
    p->last_site = -1;
    p->nslow = 0;
    p->slow_min = 0;
    map_free(&p->task_map);
    map_free(&p->site_map);
    for (size_t i = 0; i < ntasks; i++) {
        Py_XDECREF(tasks[i].ref);
        Py_XDECREF(tasks[i].created);
    }
    PyMem_Free(tasks);
    for (size_t i = 0; i < ndone; i++) {
        Py_XDECREF(done[i].name);
        Py_XDECREF(done[i].created);
    }
    PyMem_Free(done);
    for (size_t i = 0; i < nsites; i++)
        Py_XDECREF(sites[i].what);
    PyMem_Free(sites);
    for (int i = 0; i < nslow; i++)
        Py_XDECREF(stacks[i]);
}

static int
prof_clear(tl_prof *p)
{
    prof_reset(p);
    Py_CLEAR(p->capture);
    Py_CLEAR(p->skip_prefixes);
    Py_CLEAR(p->task_types);
    map_free(&p->skip_codes);
    Py_CLEAR(p->skip_list);
    Py_CLEAR(p->cr_code);
    Py_CLEAR(p->gi_code);
    Py_CLEAR(p->str_get_name);
    Py_CLEAR(p->str_done);
    Py_CLEAR(p->str_get_coro);
    return 0;
}

static void
prof_dealloc(tl_prof *p)
{
    PyTypeObject *tp = Py_TYPE(p);
    PyObject_GC_UnTrack(p);
    prof_clear(p);
    PyMem_Free(p->ring);
    tp->tp_free(p);
    Py_DECREF(tp);
}

static PyObject *
prof_attach(tl_prof *p, PyObject *loopobj)
{
    tl_loop *loop;
    if (!TL_LOOP_CHECK(p->st, loopobj)) {
        PyErr_SetString(PyExc_TypeError, "attach() takes a turboloop loop");
        return NULL;
    }
    loop = (tl_loop *)loopobj;
    if (loop->prof == p)
        Py_RETURN_NONE;
    if (loop->prof != NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "the loop has another profiler attached");
        return NULL;
    }
    if (p->loop != NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "the profiler is attached to another loop");
        return NULL;
    }
    p->loop = loop;
    loop->prof = (tl_prof *)Py_NewRef((PyObject *)p);
    if (loop->running)
        p->run_since = prof_now();
    tl_prof_clear_stamps(loop);
    Py_RETURN_NONE;
}

static PyObject *
prof_detach(tl_prof *p, PyObject *Py_UNUSED(ignored))
{
    if (p->loop != NULL && p->loop->prof == p)
        tl_prof_detach(p->loop);
    p->loop = NULL;
    Py_RETURN_NONE;
}

static PyObject *
prof_reset_py(tl_prof *p, PyObject *Py_UNUSED(ignored))
{
    int64_t now = prof_now();
    if (p->cur != NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot reset a profiler while it times a callback");
        return NULL;
    }
    prof_reset(p);
    p->origin = now;
    p->run_ns = 0;
    if (p->run_since)
        p->run_since = now;
    p->busy = p->busy_cpu = p->poll_ns = p->poll_idle_ns = 0;
    p->cpu_clock_ns = 0;
    p->polls = p->spans = p->dropped = 0;
    p->tasks_dropped = 0;
    memset(&p->timer_late, 0, sizeof(p->timer_late));
    memset(&p->ready_lag, 0, sizeof(p->ready_lag));
    p->ring_head = p->ring_len = 0;
    p->ring_total = 0;
    Py_RETURN_NONE;
}

static PyObject *
prof_hist_py(const prof_hist *h)
{
    PyObject *buckets = PyList_New(0), *r;
    if (buckets == NULL)
        return NULL;
    for (unsigned i = 0; i < PROF_HIST_N; i++) {
        PyObject *b;
        if (h->counts[i] == 0)
            continue;
        b = Py_BuildValue("(LLK)", (long long)hist_low(i),
                          (long long)hist_low(i + 1),
                          (unsigned long long)h->counts[i]);
        if (b == NULL || PyList_Append(buckets, b) < 0) {
            Py_XDECREF(b);
            Py_DECREF(buckets);
            return NULL;
        }
        Py_DECREF(b);
    }
    r = Py_BuildValue("{s:K,s:L,s:L,s:N}", "count", (unsigned long long)h->n,
                      "sum", (long long)h->sum, "max", (long long)h->max,
                      "buckets", buckets);
    return r;
}

/* A copy of the tables, taken before any Python object is made (making
 * them may run code, on this thread or another, that changes the tables). */
typedef struct {
    prof_task *tasks;
    size_t ntasks;
    prof_site *sites;
    size_t nsites;
    prof_slow slow[PROF_NSLOW];
    int nslow;
    prof_event *events;
    size_t nevents;
    prof_hist *hists;             /* timer_late, ready_lag */
} prof_copy;

static void
prof_copy_free(prof_copy *c)
{
    for (size_t i = 0; i < c->ntasks; i++) {
        Py_XDECREF(c->tasks[i].ref);
        Py_XDECREF(c->tasks[i].name);
        Py_XDECREF(c->tasks[i].created);
    }
    for (size_t i = 0; i < c->nsites; i++)
        Py_XDECREF(c->sites[i].what);
    for (int i = 0; i < c->nslow; i++)
        Py_XDECREF(c->slow[i].stack);
    PyMem_Free(c->tasks);
    PyMem_Free(c->sites);
    PyMem_Free(c->events);
    PyMem_Free(c->hists);
}

static int
prof_copy_take(tl_prof *p, prof_copy *c, int events, int finished)
{
    memset(c, 0, sizeof(*c));
    c->tasks = PyMem_Malloc((p->ntasks + p->ndone + 1) * sizeof(prof_task));
    c->sites = PyMem_Malloc((p->nsites + 1) * sizeof(prof_site));
    c->hists = PyMem_Malloc(2 * sizeof(prof_hist));
    if (events && p->ring_len)
        c->events = PyMem_Malloc(p->ring_len * sizeof(prof_event));
    if (c->tasks == NULL || c->sites == NULL || c->hists == NULL
        || (events && p->ring_len && c->events == NULL)) {
        prof_copy_free(c);
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < p->ntasks; i++)
        if (p->tasks[i].ref != NULL)
            c->tasks[c->ntasks++] = p->tasks[i];
    /* memcpy() from a NULL table is undefined even for 0 bytes. */
    if (finished && p->ndone > 0) {
        memcpy(c->tasks + c->ntasks, p->done, p->ndone * sizeof(prof_task));
        c->ntasks += p->ndone;
    }
    c->nsites = p->nsites;
    if (p->nsites > 0)
        memcpy(c->sites, p->sites, p->nsites * sizeof(prof_site));
    c->nslow = p->nslow;
    memcpy(c->slow, p->slow, sizeof(c->slow));
    c->hists[0] = p->timer_late;
    c->hists[1] = p->ready_lag;
    if (events) {
        c->nevents = p->ring_len;
        for (size_t i = 0; i < p->ring_len; i++)
            c->events[i] = p->ring[(p->ring_head + i) % p->ring_cap];
    }
    for (size_t i = 0; i < c->ntasks; i++) {
        Py_XINCREF(c->tasks[i].ref);
        Py_XINCREF(c->tasks[i].name);
        Py_XINCREF(c->tasks[i].created);
    }
    for (size_t i = 0; i < c->nsites; i++)
        Py_XINCREF(c->sites[i].what);
    for (int i = 0; i < c->nslow; i++)
        Py_XINCREF(c->slow[i].stack);
    return 0;
}

static PyObject *
prof_task_row(const prof_task *t)
{
    PyObject *task = t->ref ? prof_weak_get(t->ref) : NULL;
    PyObject *created;
    int line = -1;
    if (t->created != NULL)
        line = PyCode_Addr2Line((PyCodeObject *)t->created, t->created_lasti);
    created = t->created == NULL ? Py_NewRef(Py_None)
              : Py_BuildValue("(Oi)", t->created, line);
    if (created == NULL) {
        Py_XDECREF(task);
        return NULL;
    }
    PyObject *name = t->name == NULL ? Py_NewRef(Py_None)
                     : PyLong_Check(t->name) ? PyUnicode_FromFormat("Task-%S", t->name)
                     : Py_NewRef(t->name);
    if (name == NULL) {
        Py_XDECREF(task);
        Py_DECREF(created);
        return NULL;
    }
    return Py_BuildValue(
        "{s:K,s:N,s:N,s:N,s:i,s:s,s:K,s:L,s:L,s:L,s:L,s:L,s:L,s:L}",
        "id", (unsigned long long)t->id,
        "task", task ? task : Py_NewRef(Py_None),
        "name", name,
        "created", created,
        "site", (int)t->site,
        "state", t->done == 0 ? (task ? "pending" : "gone")
                 : t->done == 1 ? "done" : "gone",
        "steps", (unsigned long long)t->steps,
        "busy", (long long)t->busy, "max", (long long)t->max,
        "cpu", (long long)t->cpu, "wait", (long long)t->wait,
        "queued", (long long)t->queued, "born", (long long)t->born,
        "last", (long long)t->last_end);
}

static const char *
prof_kind_name(int kind)
{
    switch (kind) {
    case K_TASK: return "task";
    case K_SOON: return "call_soon";
    case K_TIMER: return "timer";
    case K_CALLBACK: return "callback";
    case K_IO: return "io";
    case K_PROTO: return "protocol";
    case K_POLL: return "poll";
    default: return "?";
    }
}

static PyObject *
prof_build(tl_prof *p, prof_copy *c, int64_t now)
{
    PyObject *tasks = NULL, *sites = NULL, *slow = NULL, *events = NULL;
    PyObject *timers = NULL, *ready = NULL, *cur = NULL;
    int64_t run = p->run_ns + (p->run_since ? now - p->run_since : 0);

    if ((tasks = PyList_New((Py_ssize_t)c->ntasks)) == NULL)
        goto error;
    for (size_t i = 0; i < c->ntasks; i++) {
        PyObject *row = prof_task_row(&c->tasks[i]);
        if (row == NULL)
            goto error;
        PyList_SET_ITEM(tasks, (Py_ssize_t)i, row);
    }
    if ((sites = PyList_New((Py_ssize_t)c->nsites)) == NULL)
        goto error;
    for (size_t i = 0; i < c->nsites; i++) {
        const prof_site *s = &c->sites[i];
        PyObject *row = Py_BuildValue(
            "{s:s,s:O,s:K,s:L,s:L,s:L,s:L}", "kind", prof_kind_name(s->kind),
            "what", s->what ? s->what : Py_None,
            "calls", (unsigned long long)s->calls, "busy", (long long)s->busy,
            "max", (long long)s->max, "cpu", (long long)s->cpu,
            "max_at", (long long)(s->max_t0 ? s->max_t0 - p->origin : 0));
        if (row == NULL)
            goto error;
        PyList_SET_ITEM(sites, (Py_ssize_t)i, row);
    }
    if ((slow = PyList_New(c->nslow)) == NULL)
        goto error;
    for (int i = 0; i < c->nslow; i++) {
        const prof_slow *s = &c->slow[i];
        PyObject *row = Py_BuildValue(
            "{s:L,s:L,s:L,s:K,s:i,s:s,s:O}", "dur", (long long)s->dur,
            "t0", (long long)(s->t0 - p->origin), "cpu", (long long)s->cpu,
            "task", (unsigned long long)s->task_id, "site", (int)s->site,
            "kind", prof_kind_name(s->kind),
            "stack", s->stack ? s->stack : Py_None);
        if (row == NULL)
            goto error;
        PyList_SET_ITEM(slow, i, row);
    }
    if (c->events != NULL || p->ring != NULL) {
        if ((events = PyList_New((Py_ssize_t)c->nevents)) == NULL)
            goto error;
        for (size_t i = 0; i < c->nevents; i++) {
            const prof_event *ev = &c->events[i];
            PyObject *row = Py_BuildValue(
                "(LLKis)", (long long)(ev->t0 - p->origin),
                (long long)ev->dur, (unsigned long long)ev->track,
                (int)ev->site, prof_kind_name(ev->kind));
            if (row == NULL)
                goto error;
            PyList_SET_ITEM(events, (Py_ssize_t)i, row);
        }
    }
    else
        events = Py_NewRef(Py_None);
    if ((timers = prof_hist_py(&c->hists[0])) == NULL
        || (ready = prof_hist_py(&c->hists[1])) == NULL)
        goto error;
    if (p->cur != NULL) {
        /* The outermost open span: what the loop is running now. */
        tl_prof_span *s = p->cur;
        while (s->parent != NULL)
            s = s->parent;
        cur = Py_BuildValue("{s:s,s:i,s:L,s:O}", "kind",
                            prof_kind_name(s->kind), "site", (int)s->site,
                            "elapsed", (long long)(now - s->t0), "object",
                            s->obj ? s->obj : Py_None);
        if (cur == NULL)
            goto error;
    }
    else
        cur = Py_NewRef(Py_None);
    return Py_BuildValue(
        "{s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:K,s:K,s:K,s:K,s:K,s:n,s:N,s:N,s:N,"
        "s:N,s:N,s:N,s:N,s:O,s:O}",
        "now", (long long)(now - p->origin),
        "run", (long long)run, "busy", (long long)p->busy,
        "busy_cpu", (long long)p->busy_cpu, "poll", (long long)p->poll_ns,
        "cpu_clock", (long long)p->cpu_clock_ns,
        "poll_idle", (long long)p->poll_idle_ns,
        "polls", (unsigned long long)p->polls,
        "spans", (unsigned long long)p->spans,
        "dropped", (unsigned long long)p->dropped,
        "tasks_dropped", (unsigned long long)p->tasks_dropped,
        "events_total", (unsigned long long)p->ring_total,
        "events_capacity", (Py_ssize_t)p->ring_cap,
        "tasks", tasks, "sites", sites, "slowest", slow, "trace", events,
        "timer_lateness", timers, "ready_lag", ready, "current", cur,
        "cpu_measured", p->cpu ? Py_True : Py_False,
        "attached", p->loop != NULL ? Py_True : Py_False);

error:
    Py_XDECREF(tasks);
    Py_XDECREF(sites);
    Py_XDECREF(slow);
    Py_XDECREF(events);
    Py_XDECREF(timers);
    Py_XDECREF(ready);
    Py_XDECREF(cur);
    return NULL;
}

static PyObject *
prof_snapshot(tl_prof *p, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"trace", "finished", NULL};
    int trace = 1, finished = 1;
    int64_t now = prof_now();
    prof_copy c;
    PyObject *r;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$pp:snapshot", kwlist,
                                     &trace, &finished))
        return NULL;
    if (prof_copy_take(p, &c, trace, finished) < 0)
        return NULL;
    r = prof_build(p, &c, now);
    prof_copy_free(&c);
    return r;
}

static PyObject *
prof_get_attached(tl_prof *p, void *Py_UNUSED(c))
{
    return PyBool_FromLong(p->loop != NULL);
}

static PyMethodDef prof_methods[] = {
    {"attach", (PyCFunction)prof_attach, METH_O,
     "attach(loop): start profiling the loop."},
    {"detach", (PyCFunction)prof_detach, METH_NOARGS,
     "Stop profiling; the data stays."},
    {"reset", (PyCFunction)prof_reset_py, METH_NOARGS,
     "Forget everything recorded so far."},
    {"snapshot", (PyCFunction)(void (*)(void))prof_snapshot,
     METH_VARARGS | METH_KEYWORDS,
     "snapshot(*, trace=True, finished=True): what was recorded, as plain "
     "objects (times in ns); without the trace events or finished tasks "
     "if those are False."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef prof_getset[] = {
    {"attached", (getter)prof_get_attached, NULL, NULL, NULL},
    {NULL},
};

static PyType_Slot prof_slots[] = {
    {Py_tp_new, prof_new},
    {Py_tp_dealloc, prof_dealloc},
    {Py_tp_traverse, prof_traverse},
    {Py_tp_clear, prof_clear},
    {Py_tp_methods, prof_methods},
    {Py_tp_getset, prof_getset},
    {Py_tp_doc, "The accounting of turboloop's profiler; see "
                "turboloop.profiling for the interface."},
    {0, NULL},
};

static PyType_Spec prof_spec = {
    "turboloop._core.Profiler", sizeof(tl_prof), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, prof_slots,
};

int
tl_profile_init_type(PyObject *mod, tl_state *st)
{
    return tl_add_type(mod, &prof_spec, NULL, &st->ProfilerType);
}
