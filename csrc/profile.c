/* profile.c -- the accounting of turboloop's task-level profiler.
 *
 * A Profiler is attached to one loop at a time (tl_loop.prof) and, while
 * attached, accounts for everything the loop runs:
 *
 *   - per task: steps, time in steps (total, longest, thread CPU time), time
 *     suspended, time queued while ready, where the task was created;
 *   - per site, i.e. per piece of code the loop calls: the function of a
 *     call_soon() or timer Handle, a future's done callback, a C fd watcher,
 *     a protocol method, a coroutine (the sum of its tasks' steps);
 *   - lateness histograms: timers (deadline to start) and ready entries
 *     (queued to start);
 *   - time in poll, time in callbacks, time inside the loop's _run();
 *   - the slowest spans, with the suspended coroutine's stack for steps;
 *   - optionally the most recent trace events, in a ring of fixed size.
 *
 * The hooks (profile.h) run on the loop's thread with the GIL held.  They
 * keep their tables consistent before anything that may run Python code (a
 * decref, a call), because another thread (the live monitor) can take the
 * GIL there and read them through snapshot().  Records are reclaimed only
 * between iterations (tl_prof_polled), when no span is open.
 *
 * Time is CLOCK_MONOTONIC in nanoseconds; CPU time CLOCK_THREAD_CPUTIME_ID,
 * read only when the profiler was made with cpu=True (it is a system call).
 * The tables are in profile_data.h; the Python type in profile_type.c.
 */
#include "profile_data.h"

#include <string.h>

/* ------------------------------------------------------------------ */
/* Maps and histograms                                                 */
/* ------------------------------------------------------------------ */

static inline size_t
prof_hash(uintptr_t a, uintptr_t b)
{
    uint64_t h = (uint64_t)a * 0x9E3779B97F4A7C15ull
                 ^ ((uint64_t)b + 0x632BE59BD9B4E019ull) * 0xC2B2AE3D27D4EB4Full;
    return (size_t)(h ^ (h >> 31));
}

static int32_t
map_get(const prof_map *m, uintptr_t a, uintptr_t b)
{
    size_t mask, i;
    if (m->cap == 0)
        return SLOT_EMPTY;
    mask = m->cap - 1;
    for (i = prof_hash(a, b) & mask;; i = (i + 1) & mask) {
        const prof_slot *s = &m->slots[i];
        if (s->val == SLOT_EMPTY)
            return SLOT_EMPTY;
        if (s->val >= 0 && s->k1 == a && s->k2 == b)
            return s->val;
    }
}

static int
map_resize(prof_map *m, size_t cap)
{
    prof_slot *old = m->slots;
    size_t oldcap = m->cap;
    prof_slot *n = PyMem_Malloc(cap * sizeof(*n));
    if (n == NULL)
        return -1;
    for (size_t i = 0; i < cap; i++)
        n[i].val = SLOT_EMPTY;
    m->slots = n;
    m->cap = cap;
    m->used = m->live = 0;
    for (size_t i = 0; i < oldcap; i++) {
        if (old[i].val >= 0) {
            size_t j = prof_hash(old[i].k1, old[i].k2) & (cap - 1);
            while (n[j].val != SLOT_EMPTY)
                j = (j + 1) & (cap - 1);
            n[j] = old[i];
            m->used++;
            m->live++;
        }
    }
    PyMem_Free(old);
    return 0;
}

/* Insert a key that is not in the map; 0, or -1 when out of memory. */
static int
map_put(prof_map *m, uintptr_t a, uintptr_t b, int32_t val)
{
    size_t mask, i;
    if ((m->used + 1) * 2 > m->cap) {
        /* Full of live entries: grow; full of deleted ones: just rehash. */
        size_t cap = m->cap == 0 ? 64 : (m->live + 1) * 4 > m->cap
                     ? m->cap * 2 : m->cap;
        if (map_resize(m, cap) < 0)
            return -1;
    }
    mask = m->cap - 1;
    for (i = prof_hash(a, b) & mask;; i = (i + 1) & mask) {
        prof_slot *s = &m->slots[i];
        if (s->val < 0) {
            if (s->val == SLOT_EMPTY)
                m->used++;
            m->live++;
            s->k1 = a;
            s->k2 = b;
            s->val = val;
            return 0;
        }
    }
}

static void
map_del(prof_map *m, uintptr_t a, uintptr_t b)
{
    size_t mask, i;
    if (m->cap == 0)
        return;
    mask = m->cap - 1;
    for (i = prof_hash(a, b) & mask;; i = (i + 1) & mask) {
        prof_slot *s = &m->slots[i];
        if (s->val == SLOT_EMPTY)
            return;
        if (s->val >= 0 && s->k1 == a && s->k2 == b) {
            s->val = SLOT_DELETED;
            m->live--;
            return;
        }
    }
}


static void
hist_add(prof_hist *h, int64_t v)
{
    unsigned idx;
    if (v < 0)
        v = 0;
    if (v < PROF_HIST_SUB)
        idx = (unsigned)v;
    else {
        int e = 63 - __builtin_clzll((unsigned long long)v);
        idx = (unsigned)((e - 2) * PROF_HIST_SUB
                         + (int)((v >> (e - 3)) & (PROF_HIST_SUB - 1)));
    }
    h->counts[idx]++;
    h->n++;
    /* Saturating: a timer due at -inf is as late as an int64 goes. */
    h->sum = v > INT64_MAX - h->sum ? INT64_MAX : h->sum + v;
    if (v > h->max)
        h->max = v;
}


/* ------------------------------------------------------------------ */
/* Sites                                                               */
/* ------------------------------------------------------------------ */

/* The site of (kind, k1, k2), made with label what (borrowed) when new;
 * -1 when out of memory. */
static int32_t
prof_site_get(tl_prof *p, int kind, uintptr_t k1, uintptr_t k2,
              PyObject *what)
{
    int32_t i = map_get(&p->site_map, k1 ^ (uintptr_t)kind, k2);
    prof_site *s;
    if (i >= 0)
        return i;
    if (p->nsites == p->sites_cap) {
        size_t cap = p->sites_cap ? p->sites_cap * 2 : 64;
        prof_site *n = PyMem_Realloc(p->sites, cap * sizeof(*n));
        if (n == NULL)
            return -1;
        p->sites = n;
        p->sites_cap = cap;
    }
    i = (int32_t)p->nsites;
    if (map_put(&p->site_map, k1 ^ (uintptr_t)kind, k2, i) < 0)
        return -1;
    s = &p->sites[p->nsites++];
    memset(s, 0, sizeof(*s));
    s->kind = kind;
    s->what = Py_XNewRef(what);
    return i;
}

/* The site of a callable: its code for Python functions and methods (so
 * the methods of all instances are one site), its C function for builtins,
 * its type for anything else. */
static int32_t
prof_site_of_callable(tl_prof *p, int kind, PyObject *fn)
{
    PyObject *f = fn;
    int32_t r;
    if (PyMethod_Check(f))
        f = PyMethod_GET_FUNCTION(f);
    if (!PyFunction_Check(f)
        && strcmp(Py_TYPE(f)->tp_name, "functools.partial") == 0) {
        /* The function the partial calls; the partial holds it. */
        PyObject *inner = PyObject_GetAttrString(f, "func");
        if (inner == NULL) {
            PyErr_Clear();
        }
        else {
            f = inner;
            Py_DECREF(inner);
            if (PyMethod_Check(f))
                f = PyMethod_GET_FUNCTION(f);
        }
    }
    if (PyFunction_Check(f)) {
        PyObject *code = PyFunction_GET_CODE(f);
        return prof_site_get(p, kind, (uintptr_t)code, 0, code);
    }
    if (PyCFunction_Check(f)) {
        uintptr_t key = (uintptr_t)(void *)PyCFunction_GET_FUNCTION(f);
        PyObject *name;
        r = map_get(&p->site_map, key ^ (uintptr_t)kind, 1);
        if (r >= 0)
            return r;
        name = PyObject_GetAttrString(f, "__qualname__");
        if (name == NULL) {
            PyErr_Clear();
            name = PyUnicode_FromString(((PyCFunctionObject *)f)->m_ml->ml_name);
            if (name == NULL) {
                PyErr_Clear();
                return -1;
            }
        }
        r = prof_site_get(p, kind, key, 1, name);
        Py_DECREF(name);
        return r;
    }
    return prof_site_get(p, kind, (uintptr_t)Py_TYPE(f), 2,
                         (PyObject *)Py_TYPE(f));
}

/* ------------------------------------------------------------------ */
/* Task records                                                        */
/* ------------------------------------------------------------------ */

/* What the profiler reads from a task: ours directly (these two are the
 * only places that know tl_task's layout), others through their methods. */
static int
prof_task_done(tl_prof *p, PyObject *task)
{
    if (TL_TASK_CHECK(p->st, task))
        return ((tl_future *)task)->state != TL_PENDING;
    return tl_truth_steal(PyObject_CallMethodNoArgs(task, p->str_done)) == 1;
}

static PyObject *
prof_task_coro(tl_prof *p, PyObject *task)
{
    if (TL_TASK_CHECK(p->st, task))
        return Py_XNewRef(((tl_task *)task)->coro);
    return PyObject_CallMethodNoArgs(task, p->str_get_coro);
}

/* A finished task's name: ours without formatting a default name (the
 * int N of "Task-N", which the snapshot formats), others' through
 * get_name(). */
static PyObject *
prof_task_name(tl_prof *p, PyObject *task)
{
    PyObject *name;
    if (TL_TASK_CHECK(p->st, task)) {
        name = tl_task_name_ref((tl_task *)task);
        if (name == NULL)
            PyErr_Clear();
        return name;
    }
    name = PyObject_CallMethodNoArgs(task, p->str_get_name);
    if (name == NULL)
        PyErr_Clear();
    return name;
}

/* The task a callback steps or wakes up, when it is one of a task's bound
 * methods (tasks of other classes, and any task waiting on a foreign
 * future, are run through such callbacks): a new reference, or NULL. */
static PyObject *
prof_task_of_callback(tl_prof *p, PyObject *cb)
{
    PyObject *self = NULL;
    if (PyCFunction_Check(cb))
        self = Py_XNewRef(PyCFunction_GET_SELF(cb));
    else if (PyMethod_Check(cb))
        self = Py_NewRef(PyMethod_GET_SELF(cb));
    else if (p->task_types != NULL && !PyFunction_Check(cb)
             && strstr(Py_TYPE(cb)->tp_name, "TaskStepMethWrapper") != NULL) {
        /* _asyncio's wrapper of a C Task's step. */
        self = PyObject_GetAttrString(cb, "__self__");
        if (self == NULL)
            PyErr_Clear();
    }
    if (self == NULL)
        return NULL;
    if (TL_TASK_CHECK(p->st, self))
        return self;
    if (p->task_types != NULL && !PyModule_Check(self)) {
        int r = PyObject_IsInstance(self, p->task_types);
        if (r == 1)
            return self;
        if (r < 0)
            PyErr_Clear();
    }
    Py_DECREF(self);
    return NULL;
}


/* Is code (a code object) one of the files we skip, e.g. asyncio's? */
static int
prof_code_skipped(tl_prof *p, PyObject *code)
{
    int32_t v;
    PyObject *fn, *pair;
    int skip = 0;
    if (code == p->last_skip_code)
        return p->last_skip;
    v = map_get(&p->skip_codes, (uintptr_t)code, 0);
    if (v >= 0) {
        /* Known codes are held by skip_list: the cache cannot dangle. */
        p->last_skip_code = code;
        p->last_skip = v;
        return v;
    }
    fn = ((PyCodeObject *)code)->co_filename;
    if (p->skip_prefixes != NULL && PyUnicode_Check(fn)) {
        Py_ssize_t n = PyTuple_GET_SIZE(p->skip_prefixes);
        for (Py_ssize_t i = 0; i < n && !skip; i++) {
            Py_ssize_t r = PyUnicode_Tailmatch(
                fn, PyTuple_GET_ITEM(p->skip_prefixes, i), 0, PY_SSIZE_T_MAX,
                -1);
            if (r < 0) {
                PyErr_Clear();
                r = 0;
            }
            skip = r > 0;
        }
    }
    /* The map does not own the code object; the list does, so that its
     * address cannot be reused by another while it is in the map. */
    pair = Py_BuildValue("(Oi)", code, skip);
    if (pair == NULL || PyList_Append(p->skip_list, pair) < 0
        || map_put(&p->skip_codes, (uintptr_t)code, 0, skip) < 0)
        PyErr_Clear();
    Py_XDECREF(pair);
    return skip;
}

/* Where the current Python code creates a task: the innermost frame that
 * is not in a skipped file, as (code, lasti); code NULL if none. */
static void
prof_creation_site(tl_prof *p, PyObject **code_out, int *lasti)
{
    PyFrameObject *f = PyEval_GetFrame();
    int depth = 0;
    Py_XINCREF(f);
    while (f != NULL && depth++ < 16) {
        PyCodeObject *code = PyFrame_GetCode(f);
        PyFrameObject *back;
        if (!prof_code_skipped(p, (PyObject *)code)) {
            *code_out = (PyObject *)code;
            *lasti = PyFrame_GetLasti(f);
            Py_DECREF(f);
            return;
        }
        Py_DECREF(code);
        back = PyFrame_GetBack(f);
        Py_DECREF(f);
        f = back;
    }
    Py_XDECREF(f);
}

/* The site of a task's coroutine (by its code object). */
static int32_t
prof_coro_site(tl_prof *p, PyObject *task)
{
    PyObject *coro = prof_task_coro(p, task), *code = NULL;
    int32_t r;
    if (coro == NULL) {
        PyErr_Clear();
        return -1;
    }
    /* For exactly a coroutine (generator), the attribute is the type's
     * descriptor: call it without the generic lookup, or where it is a
     * plain object member (3.11), read it. */
    if (PyCoro_CheckExact(coro)) {
        if (p->cr_code_offset >= 0)
            code = Py_XNewRef(*(PyObject **)((char *)coro + p->cr_code_offset));
        else
            code = Py_TYPE(p->cr_code)->tp_descr_get(p->cr_code, coro,
                                                     (PyObject *)&PyCoro_Type);
    }
    else if (PyGen_CheckExact(coro))
        code = Py_TYPE(p->gi_code)->tp_descr_get(p->gi_code, coro,
                                                 (PyObject *)&PyGen_Type);
    if (code == NULL) {
        PyErr_Clear();
        r = prof_site_get(p, K_TASK, (uintptr_t)Py_TYPE(coro), 2,
                          (PyObject *)Py_TYPE(coro));
    }
    else if (code == p->last_code) {
        /* The site holds the code, so the cached pointer cannot be reused
         * by another object. */
        r = p->last_site;
        Py_DECREF(code);
    }
    else {
        r = prof_site_get(p, K_TASK, (uintptr_t)code, 0, code);
        if (r >= 0) {
            p->last_code = code;
            p->last_site = r;
        }
        Py_DECREF(code);
    }
    Py_DECREF(coro);
    return r;
}

/* Take a pending record out of its slot into the finished ones (state 1,
 * with its name) or the gone ones (state 2: the task died pending), and
 * free the slot.  key is the address the slot is indexed under. */
static void
prof_task_retire(tl_prof *p, int32_t i, int state, PyObject *key)
{
    PyObject *ref = p->tasks[i].ref, *name = NULL;
    if (p->tasks[i].busy <= p->done_floor) {
        /* Cheaper than those kept: drop it now (its time stays in its
         * coroutine's site). */
        PyObject *created = p->tasks[i].created;
        p->tasks_dropped++;
        map_del(&p->task_map, (uintptr_t)key, 0);
        p->tasks[i].ref = NULL;
        p->tasks[i].created = NULL;
        p->tasks[i].next_free = p->free_slot;
        p->free_slot = i;
        Py_DECREF(ref);
        Py_XDECREF(created);
        return;
    }
    if (state == 1) {
        name = prof_task_name(p, key);
        if (p->tasks[i].ref != ref) {
            /* get_name() of some subclass did something to the table. */
            Py_XDECREF(name);
            return;
        }
    }
    if (p->ndone == p->done_cap) {
        size_t cap = p->done_cap ? p->done_cap * 2 : 64;
        prof_task *n = PyMem_Realloc(p->done, cap * sizeof(*n));
        if (n != NULL) {
            p->done = n;
            p->done_cap = cap;
        }
    }
    if (p->ndone < p->done_cap) {
        prof_task *d = &p->done[p->ndone++];
        *d = p->tasks[i];
        d->ref = NULL;
        d->done = (char)state;
        d->name = name;
    }
    else {
        /* No memory to keep it: its time stays in its coroutine's site. */
        p->tasks_dropped++;
        Py_XDECREF(name);
        Py_XDECREF(p->tasks[i].created);
    }
    map_del(&p->task_map, (uintptr_t)key, 0);
    p->tasks[i].ref = NULL;
    p->tasks[i].created = NULL;
    p->tasks[i].next_free = p->free_slot;
    p->free_slot = i;
    /* The weakref of a finished task just goes away; a dead one's runs no
     * code either. */
    Py_DECREF(ref);
}

/* The pending record of task, made if there is none (with where it is
 * being created when `creating`); -1 when out of memory. */
static int32_t
prof_task_get(tl_prof *p, PyObject *task, int64_t now, int creating)
{
    int32_t i = map_get(&p->task_map, (uintptr_t)task, 0), site;
    PyObject *ref, *created = NULL;
    int lasti = 0;
    uint64_t made = p->made;
    prof_task *t;
    if (i >= 0) {
        PyObject *o = prof_weak_get(p->tasks[i].ref);
        Py_XDECREF(o);                  /* only compared, never used */
        if (o == task)
            return i;
        /* The task of that record died pending and this one took its
         * address. */
        prof_task_retire(p, i, 2, task);
    }
    /* What may allocate objects (and so run a collection, and so any code)
     * comes first; the table is touched after. */
    ref = PyWeakref_NewRef(task, NULL);
    if (ref == NULL) {
        PyErr_Clear();
        return -1;
    }
    if (creating)
        prof_creation_site(p, &created, &lasti);
    site = prof_coro_site(p, task);
    if (p->made != made && map_get(&p->task_map, (uintptr_t)task, 0) >= 0)
        goto fail;                      /* made meanwhile: give up this one */
    if (p->free_slot >= 0) {
        i = p->free_slot;
        p->free_slot = p->tasks[i].next_free;
    }
    else {
        if (p->ntasks == p->tasks_cap) {
            size_t cap = p->tasks_cap ? p->tasks_cap * 2 : 64;
            prof_task *n = PyMem_Realloc(p->tasks, cap * sizeof(*n));
            if (n == NULL)
                goto fail;
            p->tasks = n;
            p->tasks_cap = cap;
        }
        i = (int32_t)p->ntasks++;
    }
    if (map_put(&p->task_map, (uintptr_t)task, 0, i) < 0) {
        p->tasks[i].ref = NULL;
        p->tasks[i].created = NULL;
        p->tasks[i].next_free = p->free_slot;
        p->free_slot = i;
        goto fail;
    }
    p->made++;
    t = &p->tasks[i];
    *t = (prof_task){0};
    t->ref = ref;
    t->created = created;
    t->created_lasti = lasti;
    t->site = site;
    t->id = ++p->next_task_id;
    t->born = t->last_end = now;
    t->next_free = -1;
    return i;

fail:
    Py_XDECREF(created);
    Py_DECREF(ref);
    return -1;
}

/* Partially order v[lo..hi] (inclusive) so that the k largest come first
 * (quickselect over the finished records' busy times). */
typedef struct {
    int64_t busy;
    size_t index;
} prof_rank;

static void
prof_select(prof_rank *v, size_t lo, size_t hi, size_t k)
{
    while (lo < hi) {
        int64_t pivot = v[lo + (hi - lo) / 2].busy;
        size_t i = lo, j = hi;
        while (i <= j) {
            while (v[i].busy > pivot)
                i++;
            while (v[j].busy < pivot)
                j--;
            if (i <= j) {
                prof_rank t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return;
    }
}

/* Keep at most max_tasks finished records: drop the cheapest half (their
 * time stays in their coroutine's site).  The finished records are not
 * held by any span, so this may run whenever the table is consistent. */
static void
prof_reclaim_tasks(tl_prof *p)
{
    size_t keep = p->max_tasks / 2, n = p->ndone, j = 0, ndrop = 0;
    prof_rank *ranks;
    PyObject **drop;
    if (n <= p->max_tasks)
        return;
    ranks = PyMem_Malloc(n * sizeof(*ranks));
    drop = PyMem_Malloc((n - keep) * 2 * sizeof(PyObject *));
    if (ranks == NULL || drop == NULL) {
        PyMem_Free(ranks);
        PyMem_Free(drop);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        ranks[i].busy = p->done[i].busy;
        ranks[i].index = i;
    }
    prof_select(ranks, 0, n - 1, keep);
    for (size_t i = keep; i < n; i++)
        p->done[ranks[i].index].done = 0;       /* marks it for dropping */
    /* From now on, a task no busier than the busiest dropped is dropped
     * when it finishes. */
    for (size_t i = keep; i < n; i++)
        if (ranks[i].busy > p->done_floor)
            p->done_floor = ranks[i].busy;
    PyMem_Free(ranks);
    for (size_t i = 0; i < n; i++) {
        if (p->done[i].done == 0) {
            drop[ndrop++] = p->done[i].name;
            drop[ndrop++] = p->done[i].created;
            p->tasks_dropped++;
        }
        else
            p->done[j++] = p->done[i];
    }
    p->ndone = j;
    /* The table is consistent: now the decrefs may run what they like. */
    for (size_t i = 0; i < ndrop; i++)
        Py_XDECREF(drop[i]);
    PyMem_Free(drop);
}

/* ------------------------------------------------------------------ */
/* Spans                                                               */
/* ------------------------------------------------------------------ */

static void
prof_span_open(tl_prof *p, tl_prof_span *s, int kind, PyObject *obj)
{
    s->prof = (tl_prof *)Py_NewRef((PyObject *)p);
    s->parent = p->cur;
    s->child_ns = s->child_cpu = 0;
    s->obj = Py_XNewRef(obj);
    s->site = s->task = -1;
    s->kind = kind;
    p->cur = s;
    s->clock_ns = 0;
    if (p->cpu) {
        /* The CPU clock is a system call, where a busy machine may well
         * switch to another process: its time is timed on its own, and is
         * the profiler's, neither the span's nor the loop's. */
        int64_t before = prof_now();
        s->cpu0 = prof_cpu_now();
        s->t0 = prof_now();
        s->clock_ns = s->t0 - before;
    }
    else
        s->t0 = prof_now();
}

/* How late (ns) a timer starting at t0 (ns, the loop's clock) is for its
 * deadline (seconds, as the loop's heap keeps it).  Worked out in doubles
 * and saturated, so that no deadline (-inf, -1e300, NaN) can wrap. */
static int64_t
prof_lateness_ns(int64_t t0, double when)
{
    double late = (double)t0 - when * 1e9;
    if (!(late > 0))
        return 0;
    if (late >= 9.2e18)
        return INT64_MAX;
    return (int64_t)late;
}

void
tl_prof_entry_begin(tl_loop *loop, const tl_entry *e, tl_prof_span *s)
{
    tl_prof *p = loop->prof;
    int kind;
    int64_t lag = -1;

    /* The loop runs an entry with no exception set, and what is called
     * here clears any error it makes. */
    switch (e->kind) {
    case TL_EV_TASK_STEP:
    case TL_EV_TASK_WAKEUP:
        kind = K_TASK;
        break;
    case TL_EV_HANDLE:
        kind = Py_IS_TYPE((PyObject *)e->a, p->st->TimerHandleType)
               ? K_TIMER : K_SOON;
        break;
    case TL_EV_CALLBACK:
        kind = K_CALLBACK;
        break;
    default:
        kind = K_IO;
    }
    prof_span_open(p, s, kind, (PyObject *)e->a);
    p->spans++;

    /* How late it starts. */
    if (kind == K_TIMER) {
        tl_handle *h = (tl_handle *)e->a;
        if (!h->cancelled)
            hist_add(&p->timer_late, prof_lateness_ns(s->t0, h->when));
    }
    else if (kind == K_IO) {
        if (p->last_poll_end)
            lag = s->t0 - p->last_poll_end;
    }
    else if (e->stamp != 0) {
        lag = (int64_t)((uint32_t)(prof_stamp(s->t0) - e->stamp)) << 10;
    }
    if (lag >= 0)
        hist_add(&p->ready_lag, lag);

    /* What it is.  A callback that is a task's step or wake-up counts as
     * that task's step. */
    if (kind == K_SOON || kind == K_TIMER || kind == K_CALLBACK) {
        PyObject *cb = kind == K_CALLBACK ? (PyObject *)e->a
                                          : ((tl_handle *)e->a)->callback;
        PyObject *task = NULL;
        if (cb != NULL && !(kind != K_CALLBACK
                            && ((tl_handle *)e->a)->cancelled))
            task = prof_task_of_callback(p, cb);
        if (task != NULL) {
            Py_SETREF(s->obj, task);
            s->kind = kind = K_TASK;
        }
    }
    switch (kind) {
    case K_TASK:
        s->task = prof_task_get(p, s->obj, s->t0, 0);
        if (s->task >= 0) {
            prof_task *t = &p->tasks[s->task];
            s->site = t->site;
            t->wait += s->t0 - t->last_end;
            if (lag > 0)
                t->queued += lag;
        }
        break;
    case K_SOON:
    case K_TIMER: {
        tl_handle *h = (tl_handle *)e->a;
        if (!h->cancelled && h->callback != NULL)
            s->site = prof_site_of_callable(p, kind, h->callback);
        break;
    }
    case K_CALLBACK:
        s->site = prof_site_of_callable(p, kind, (PyObject *)e->a);
        break;
    default:
        s->site = prof_site_get(p, K_IO, (uintptr_t)Py_TYPE((PyObject *)e->a),
                                (uintptr_t)e->c,
                                (PyObject *)Py_TYPE((PyObject *)e->a));
    }
}

void
tl_prof_task_begin(tl_loop *loop, PyObject *task, tl_prof_span *s)
{
    tl_prof *p = loop->prof;
    PyObject *exc = PyErr_Occurred() ? tl_err_get_raised() : NULL;
    prof_span_open(p, s, K_TASK, task);
    s->task = prof_task_get(p, task, s->t0, 1);
    if (s->task >= 0)
        s->site = p->tasks[s->task].site;
    if (exc != NULL)
        tl_err_set_raised(exc);
    s->t0 = prof_now();
}

void
tl_prof_proto_begin(tl_loop *loop, PyObject *protocol, PyObject *name,
                    tl_prof_span *s)
{
    tl_prof *p = loop->prof;
    PyTypeObject *tp = Py_TYPE(protocol);
    int32_t site = map_get(&p->site_map, (uintptr_t)tp ^ (uintptr_t)K_PROTO,
                           (uintptr_t)name);
    prof_span_open(p, s, K_PROTO, NULL);
    if (site < 0) {
        PyObject *exc = PyErr_Occurred() ? tl_err_get_raised() : NULL;
        PyObject *what = PyTuple_Pack(2, (PyObject *)tp, name);
        if (what != NULL)
            site = prof_site_get(p, K_PROTO, (uintptr_t)tp, (uintptr_t)name,
                                 what);
        Py_XDECREF(what);
        if (exc != NULL)
            tl_err_set_raised(exc);
        else
            PyErr_Clear();
        s->t0 = prof_now();
    }
    s->site = site;
}

static void
prof_trace(tl_prof *p, int64_t t0, int64_t dur, uint64_t track, int32_t site,
           int kind)
{
    prof_event *ev;
    if (p->ring == NULL)
        return;
    if (p->ring_len < p->ring_cap)
        ev = &p->ring[(p->ring_head + p->ring_len++) % p->ring_cap];
    else {
        ev = &p->ring[p->ring_head];
        p->ring_head = (p->ring_head + 1) % p->ring_cap;
    }
    ev->t0 = t0;
    ev->dur = dur;
    ev->track = track;
    ev->site = site;
    ev->kind = kind;
    p->ring_total++;
}

/* Keep the span among the slowest, with a stack for task steps. */
static void
prof_keep_slow(tl_prof *p, tl_prof_span *s, int64_t dur, int64_t cpu,
               uint64_t task_id)
{
    PyObject *stack = NULL, *old;
    int slot = p->nslow;
    if (slot == PROF_NSLOW) {
        slot = 0;
        for (int i = 1; i < PROF_NSLOW; i++)
            if (p->slow[i].dur < p->slow[slot].dur)
                slot = i;
    }
    /* A stack costs a Python call; steps that short do not block anyone. */
    if (s->kind == K_TASK && p->capture != NULL && s->obj != NULL
        && dur >= PROF_STACK_MIN_NS) {
        PyObject *exc = PyErr_Occurred() ? tl_err_get_raised() : NULL;
        stack = PyObject_CallOneArg(p->capture, s->obj);
        if (stack == NULL)
            PyErr_WriteUnraisable(p->capture);
        if (exc != NULL)
            tl_err_set_raised(exc);
        /* capture() ran Python code: the table may have changed. */
        if (p->nslow == PROF_NSLOW) {
            slot = 0;
            for (int i = 1; i < PROF_NSLOW; i++)
                if (p->slow[i].dur < p->slow[slot].dur)
                    slot = i;
            if (p->slow[slot].dur >= dur) {
                Py_XDECREF(stack);
                return;
            }
        }
        else
            slot = p->nslow;
    }
    old = slot < p->nslow ? p->slow[slot].stack : NULL;
    p->slow[slot].dur = dur;
    p->slow[slot].t0 = s->t0;
    p->slow[slot].cpu = cpu;
    p->slow[slot].task_id = task_id;
    p->slow[slot].site = s->site;
    p->slow[slot].kind = s->kind;
    p->slow[slot].stack = stack;
    if (slot == p->nslow)
        p->nslow++;
    p->slow_min = p->slow[0].dur;
    if (p->nslow == PROF_NSLOW)
        for (int i = 1; i < PROF_NSLOW; i++)
            if (p->slow[i].dur < p->slow_min)
                p->slow_min = p->slow[i].dur;
    Py_XDECREF(old);
}

void
tl_prof_span_end(tl_prof_span *s)
{
    tl_prof *p = s->prof;
    int64_t t1, dur, self, cpu = 0, cpu_self = 0;
    uint64_t task_id = 0;
    PyObject *obj;
    if (p == NULL)
        return;
    t1 = prof_now();
    dur = t1 - s->t0;
    self = dur - s->child_ns;
    if (p->cpu) {
        cpu = prof_cpu_now() - s->cpu0;     /* see prof_span_open */
        cpu_self = cpu - s->child_cpu;
        s->clock_ns += prof_now() - t1;
        p->cpu_clock_ns += s->clock_ns;
    }
    p->cur = s->parent;
    if (s->parent != NULL) {
        s->parent->child_ns += dur + s->clock_ns;
        s->parent->child_cpu += cpu;
    }
    else {
        p->busy += dur;
        p->busy_cpu += cpu;
    }
    if (s->site >= 0) {
        prof_site *site = &p->sites[s->site];
        site->calls++;
        site->busy += self;
        site->cpu += cpu_self;
        if (self > site->max) {
            site->max = self;
            site->max_t0 = s->t0;
        }
    }
    if (s->task >= 0) {
        prof_task *t = &p->tasks[s->task];
        task_id = t->id;
        t->steps++;
        t->busy += self;
        t->cpu += cpu_self;
        if (self > t->max)
            t->max = self;
        t->last_end = t1;
    }
    if (p->ring != NULL)
        prof_trace(p, s->t0, dur, task_id, s->site, s->kind);
    if (self > p->slow_min || p->nslow < PROF_NSLOW)
        prof_keep_slow(p, s, self, cpu_self, task_id);
    if (s->task >= 0 && s->obj != NULL && p->tasks[s->task].ref != NULL) {
        if (TL_TASK_CHECK(p->st, s->obj)) {
            /* Ours: the state is read directly and get_name() not called. */
            if (((tl_future *)s->obj)->state != TL_PENDING)
                prof_task_retire(p, s->task, 1, s->obj);
        }
        else {
            PyObject *exc = PyErr_Occurred() ? tl_err_get_raised() : NULL;
            if (prof_task_done(p, s->obj))
                prof_task_retire(p, s->task, 1, s->obj);
            if (exc != NULL)
                tl_err_set_raised(exc);
            else if (PyErr_Occurred())
                PyErr_Clear();
        }
    }
    obj = s->obj;
    s->obj = NULL;
    s->prof = NULL;
    Py_XDECREF(obj);
    Py_DECREF(p);
}

/* ------------------------------------------------------------------ */
/* Loop hooks outside spans                                            */
/* ------------------------------------------------------------------ */

void
tl_prof_pushed(tl_loop *loop)
{
    tl_entry *e = tl_ring_at(&loop->ready, tl_ring_len(&loop->ready) - 1);
    int64_t now = prof_now();
    loop->prof->last_push = now;
    e->stamp = prof_stamp(now);
}

void
tl_prof_task_created(tl_loop *loop, PyObject *task)
{
    /* Called right after loop.create_task() made it: remember where. */
    tl_prof *p = loop->prof;
    /* Its first step was queued just now (unless it ran eagerly). */
    if (prof_task_get(p, task, p->last_push ? p->last_push : prof_now(), 1) < 0)
        p->dropped++;
}

void
tl_prof_polled(tl_loop *loop, int64_t t0, int64_t t1, int64_t timeout)
{
    tl_prof *p = loop->prof;
    p->poll_ns += t1 - t0;
    p->polls++;
    p->last_poll_end = t1;
    if (timeout != 0) {
        p->poll_idle_ns += t1 - t0;
        prof_trace(p, t0, t1 - t0, 0, -1, K_POLL);
    }
    if (p->ndone > p->max_tasks)
        prof_reclaim_tasks(p);
}

void
tl_prof_running(tl_loop *loop, int running)
{
    tl_prof *p = loop->prof;
    int64_t now = prof_now();
    if (running)
        p->run_since = now;
    else if (p->run_since) {
        p->run_ns += now - p->run_since;
        p->run_since = 0;
    }
}

void
tl_prof_clear_stamps(tl_loop *loop)
{
    /* Entries queued before have stamps from an older profiler, or none. */
    for (size_t i = 0; i < tl_ring_len(&loop->ready); i++)
        tl_ring_at(&loop->ready, i)->stamp = 0;
}

void
tl_prof_detach(tl_loop *loop)
{
    tl_prof *p = loop->prof;
    if (p == NULL)
        return;
    if (p->run_since) {
        p->run_ns += prof_now() - p->run_since;
        p->run_since = 0;
    }
    p->loop = NULL;
    loop->prof = NULL;
    Py_DECREF(p);
}
