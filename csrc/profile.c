/* profile.c -- turboloop._core.Profiler: the loop's task-level profiler.
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
 */
#include "profile.h"

#include <string.h>
#include <time.h>

#define PROF_NSLOW 20             /* slowest spans kept */
#define PROF_HIST_SUB 8           /* histogram buckets per power of two */
#define PROF_HIST_N 512
#define PROF_MAX_TASKS 10000      /* finished task records kept, by default */

/* Kinds of span (and of site). */
enum {
    K_TASK = 1,      /* a task step or wake-up */
    K_SOON,          /* a call_soon() Handle, or an fd Handle */
    K_TIMER,         /* a TimerHandle */
    K_CALLBACK,      /* a future's done callback */
    K_IO,            /* a C fd watcher (transport, socket operation) */
    K_PROTO,         /* a protocol method called by a transport */
    K_POLL,          /* trace events only: a poll that could block */
};

/* ------------------------------------------------------------------ */
/* Tables                                                              */
/* ------------------------------------------------------------------ */

/* Open addressing from a pair of words to an index. */
typedef struct {
    uintptr_t k1, k2;
    int32_t val;                  /* >= 0, or SLOT_EMPTY / SLOT_DELETED */
} prof_slot;

enum { SLOT_EMPTY = -1, SLOT_DELETED = -2 };

typedef struct {
    prof_slot *slots;
    size_t cap;                   /* a power of two, or 0 */
    size_t used;                  /* live and deleted slots */
    size_t live;
} prof_map;

typedef struct {
    PyObject *ref;                /* weakref to the task while pending */
    PyObject *name;               /* its name, once finished, or NULL for
                                     the default "Task-<name_id>" */
    unsigned long long name_id;
    PyObject *created;            /* code object where it was created */
    int created_lasti;
    int32_t site;                 /* its coroutine's site */
    int32_t next_free;            /* a free slot: the next free one */
    char done;                    /* 0 pending, 1 finished, 2 gone */
    uint64_t id;                  /* 1, 2, ... in the order first seen */
    uint64_t steps;
    int64_t busy, max, cpu;       /* in steps */
    int64_t wait, queued;         /* suspended; ready but not yet running */
    int64_t born, last_end;
} prof_task;

typedef struct {
    PyObject *what;               /* code, type, str or (type, name): a label */
    int kind;
    uint64_t calls;
    int64_t busy, max, cpu;
} prof_site;

typedef struct {
    uint64_t n;
    int64_t sum, max;
    uint64_t counts[PROF_HIST_N];
} prof_hist;

typedef struct {
    int64_t dur, t0, cpu;
    uint64_t task_id;             /* 0 if not a task step */
    int32_t site;
    int kind;
    PyObject *stack;              /* what capture() returned, or NULL */
} prof_slow;

typedef struct {
    int64_t t0, dur;
    uint64_t track;               /* task id, 0 for the loop */
    int32_t site;
    int32_t kind;
} prof_event;

typedef struct tl_prof {
    PyObject_HEAD
    tl_state *st;
    tl_loop *loop;                /* attached to, borrowed (the loop holds us) */
    tl_prof_span *cur;            /* innermost open span */
    PyObject *capture;            /* capture(task) -> stack, or NULL */
    PyObject *task_types;         /* tuple: other task classes (asyncio's),
                                     whose steps come as plain callbacks */
    PyObject *skip_prefixes;      /* tuple of str: files not to blame for
                                     creating a task (asyncio's own) */
    prof_map skip_codes;          /* code objects known to be in them */
    PyObject *skip_list;          /* ... held here: (code, bool) pairs */
    PyObject *str_get_name, *str_done, *str_get_coro;  /* interned names */
    PyObject *cr_code, *gi_code;  /* the descriptors of coroutine.cr_code
                                     and generator.gi_code */
    Py_ssize_t cr_code_offset;    /* where a member descriptor reads it
                                     (3.11), or -1 */
    PyObject *last_code;          /* one-entry caches: the code object... */
    int32_t last_site;            /* ...of the last coroutine site */
    PyObject *last_skip_code;     /* the code last checked for skipping */
    int last_skip;
    int64_t last_push;            /* time of the last push */
    char cpu;
    int64_t origin;               /* creation time: trace timestamps start here */
    int64_t run_ns, run_since;    /* inside the loop's _run(), attached */
    int64_t busy, busy_cpu;       /* outermost spans */
    int64_t poll_ns, poll_idle_ns;
    uint64_t polls, spans, dropped;
    int64_t last_poll_end;

    prof_map task_map;            /* task object -> its slot in tasks */
    prof_task *tasks;             /* pending tasks; a free slot has no ref */
    size_t ntasks, tasks_cap;     /* slots used so far, allocated */
    int32_t free_slot;            /* first free slot (-1: none), linked by
                                     next_free */
    prof_task *done;              /* finished and gone tasks */
    size_t ndone, done_cap, max_tasks;
    int64_t done_floor;           /* a finished task this cheap is not kept
                                     (-1 until max_tasks were exceeded) */
    uint64_t made;                /* records made so far */
    uint64_t next_task_id, tasks_dropped;

    prof_map site_map;            /* (kind, key) -> site */
    prof_site *sites;
    size_t nsites, sites_cap;

    prof_hist timer_late, ready_lag;
    prof_slow slow[PROF_NSLOW];
    int nslow;
    int64_t slow_min;

    prof_event *ring;             /* trace events, NULL when not tracing */
    size_t ring_cap, ring_head, ring_len;
    uint64_t ring_total;
} tl_prof;

static inline int64_t
prof_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline int64_t
prof_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The ready queue's stamps: monotonic time in units of 1024 ns, modulo
 * 2**32 (wraps after 73 minutes, far longer than any queueing), never 0. */
static inline uint32_t
prof_stamp(int64_t t)
{
    return (uint32_t)((uint64_t)t >> 10) | 1u;
}

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
map_free(prof_map *m)
{
    PyMem_Free(m->slots);
    m->slots = NULL;
    m->cap = m->used = m->live = 0;
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
    h->sum += v;
    if (v > h->max)
        h->max = v;
}

/* Lower bound (ns) of histogram bucket idx. */
static int64_t
hist_low(unsigned idx)
{
    int e;
    if (idx < PROF_HIST_SUB)
        return (int64_t)idx;
    e = (int)(idx / PROF_HIST_SUB) + 2;
    return (int64_t)(PROF_HIST_SUB + idx % PROF_HIST_SUB) << (e - 3);
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

/* A finished task's name: ours without formatting the default name (its
 * number is kept instead), others' through get_name(). */
static void
prof_task_name(tl_prof *p, PyObject *task, PyObject **name,
               unsigned long long *name_id)
{
    if (TL_TASK_CHECK(p->st, task)) {
        *name = Py_XNewRef(((tl_task *)task)->name);
        *name_id = ((tl_task *)task)->name_id;
        return;
    }
    *name = PyObject_CallMethodNoArgs(task, p->str_get_name);
    if (*name == NULL)
        PyErr_Clear();
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

/* The new reference a weakref points to, or NULL (no error set). */
static PyObject *
prof_weak_get(PyObject *ref)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *o;
    if (PyWeakref_GetRef(ref, &o) < 0) {
        PyErr_Clear();
        return NULL;
    }
    return o;
#else
    PyObject *o = PyWeakref_GET_OBJECT(ref);
    return o == Py_None ? NULL : Py_NewRef(o);
#endif
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
    unsigned long long name_id = 0;
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
        prof_task_name(p, key, &name, &name_id);
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
        d->name_id = name_id;
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
    memset(t, 0, sizeof(*t));
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
    s->cpu0 = p->cpu ? prof_cpu_now() : 0;
    s->t0 = prof_now();
}

/* The handle's deadline in ns, as the loop's heap rounds it. */
static int64_t
prof_when_ns(double when)
{
    if (when != when || when >= 9.2e9)
        return INT64_MAX;
    if (when <= -9.2e9)
        return -INT64_MAX;
    return (int64_t)(when * 1e9 + (when >= 0 ? 0.5 : -0.5));
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
            hist_add(&p->timer_late, s->t0 - prof_when_ns(h->when));
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
    if (s->kind == K_TASK && p->capture != NULL && s->obj != NULL) {
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
        cpu = prof_cpu_now() - s->cpu0;
        cpu_self = cpu - s->child_cpu;
    }
    p->cur = s->parent;
    if (s->parent != NULL) {
        s->parent->child_ns += dur;
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
        if (self > site->max)
            site->max = self;
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

static void
prof_attached(tl_loop *loop)
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

/* ------------------------------------------------------------------ */
/* Python interface                                                    */
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
    prof_attached(loop);
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
prof_copy_take(tl_prof *p, prof_copy *c, int events)
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
    memcpy(c->tasks + c->ntasks, p->done, p->ndone * sizeof(prof_task));
    c->ntasks += p->ndone;
    c->nsites = p->nsites;
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
    PyObject *name = t->name ? Py_NewRef(t->name)
                     : t->done == 1 ? PyUnicode_FromFormat("Task-%llu", t->name_id)
                     : Py_NewRef(Py_None);
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
            "{s:s,s:O,s:K,s:L,s:L,s:L}", "kind", prof_kind_name(s->kind),
            "what", s->what ? s->what : Py_None,
            "calls", (unsigned long long)s->calls, "busy", (long long)s->busy,
            "max", (long long)s->max, "cpu", (long long)s->cpu);
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
        "{s:L,s:L,s:L,s:L,s:L,s:L,s:K,s:K,s:K,s:K,s:K,s:n,s:N,s:N,s:N,s:N,"
        "s:N,s:N,s:N,s:O,s:O}",
        "now", (long long)(now - p->origin),
        "run", (long long)run, "busy", (long long)p->busy,
        "busy_cpu", (long long)p->busy_cpu, "poll", (long long)p->poll_ns,
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
    static char *kwlist[] = {"trace", NULL};
    int trace = 1;
    int64_t now = prof_now();
    prof_copy c;
    PyObject *r;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$p:snapshot", kwlist,
                                     &trace))
        return NULL;
    if (prof_copy_take(p, &c, trace) < 0)
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
     "snapshot(*, trace=True): what was recorded, as plain objects "
     "(times in ns)."},
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
