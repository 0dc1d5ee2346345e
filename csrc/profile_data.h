/* profile_data.h -- the tables of turboloop's profiler, shared by the
 * accounting (profile.c) and the Python type that reads them out
 * (profile_type.c).  Only those two files include it; the rest of the core
 * sees the hooks of profile.h.
 */
#ifndef TL_PROFILE_DATA_H
#define TL_PROFILE_DATA_H

#include "profile.h"

#include <time.h>

#define PROF_NSLOW 20             /* slowest spans kept */
#define PROF_HIST_SUB 8           /* histogram buckets per power of two */
#define PROF_HIST_N 512
#define PROF_MAX_TASKS 1000       /* finished task records kept, by default */
#define PROF_STACK_MIN_NS 200000  /* shorter slow steps get no stack */

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
    PyObject *name;               /* its name once finished: a str, or the
                                     int N of a default "Task-N" */
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
    int64_t max_t0;               /* when the longest call started */
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
    int64_t busy, busy_cpu;
    int64_t cpu_clock_ns;         /* spent reading the CPU clock (cpu=True) */       /* outermost spans */
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

static inline void
map_free(prof_map *m)
{
    PyMem_Free(m->slots);
    m->slots = NULL;
    m->cap = m->used = m->live = 0;
}

/* Lower bound (ns) of histogram bucket idx. */
static inline int64_t
hist_low(unsigned idx)
{
    int e;
    if (idx < PROF_HIST_SUB)
        return (int64_t)idx;
    e = (int)(idx / PROF_HIST_SUB) + 2;
    return (int64_t)(PROF_HIST_SUB + idx % PROF_HIST_SUB) << (e - 3);
}

/* The new reference a weakref points to, or NULL (no error set). */
static inline PyObject *
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

/* profile.c: forget the queueing stamps of the entries in the ready queue
 * (they were made by another profiler, or none). */
void tl_prof_clear_stamps(tl_loop *loop);

#endif /* TL_PROFILE_DATA_H */
