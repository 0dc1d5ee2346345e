/* profile.h -- the loop's task-level profiler: what the loop, tasks and
 * transports call while a loop is being profiled.
 *
 * A loop is profiled when tl_loop.prof points to a Profiler (profile.c).
 * Every call site tests that pointer first, so a loop that is not profiled
 * pays one predictable branch per hook and nothing else:
 *
 *   loop.c       after the poll (tl_prof_polled), around each ready-queue
 *                entry (tl_prof_entry_begin / tl_prof_span_end), after each
 *                push into the ready queue (tl_prof_pushed), after
 *                create_task() (tl_prof_task_created), entering and leaving
 *                _run() (tl_prof_running);
 *   task.c       around an eager first step (tl_prof_task_begin), which
 *                runs inline instead of from the ready queue;
 *   transport.c  around each protocol callback (tl_prof_proto_begin), so
 *                that data_received() and friends are sites of their own.
 *
 * A span is timed on the C stack of its caller: begin fills it in, end
 * records it.  The span holds a strong reference to its profiler, so the
 * profiler may be detached (or replaced) while spans are open; end then
 * records into the profiler the span began with.  The hooks never raise and
 * leave any exception being propagated untouched; when they cannot allocate
 * they drop the sample and count it.
 */
#ifndef TL_PROFILE_H
#define TL_PROFILE_H

#include "tl.h"

typedef struct tl_prof_span {
    struct tl_prof *prof;         /* strong reference; NULL: nothing to end */
    struct tl_prof_span *parent;  /* the span this one runs inside */
    int64_t t0, cpu0;             /* start: monotonic and thread CPU clock */
    int64_t child_ns, child_cpu;  /* time of the spans nested in this one */
    int64_t clock_ns;             /* reading the CPU clock, in and around it */
    PyObject *obj;                /* what runs (task, callable...), strong */
    int32_t site;                 /* index of its site, or -1 */
    int32_t task;                 /* index of its task record, or -1 */
    int kind;                     /* TL_PROF_K_* */
} tl_prof_span;

/* Start timing a ready-queue entry that is about to run. */
void tl_prof_entry_begin(tl_loop *loop, const tl_entry *e, tl_prof_span *s);
/* Start timing an eager first step of task (run inline, not queued). */
void tl_prof_task_begin(tl_loop *loop, PyObject *task, tl_prof_span *s);
/* Start timing protocol.<name>(...) called by a transport. */
void tl_prof_proto_begin(tl_loop *loop, PyObject *protocol, PyObject *name,
                         tl_prof_span *s);
/* Stop timing and record the span (a no-op for a span that never began). */
void tl_prof_span_end(tl_prof_span *s);

/* The entry just pushed (the newest one in the ready queue) was queued now. */
void tl_prof_pushed(tl_loop *loop);
/* loop.create_task() has just made task (called with no exception set). */
void tl_prof_task_created(tl_loop *loop, PyObject *task);
/* The poll of one iteration took [t0, t1) (monotonic ns) with this timeout
 * (ns; 0: did not block, -1: no timeout). */
void tl_prof_polled(tl_loop *loop, int64_t t0, int64_t t1, int64_t timeout);

/* The loop enters (running=1) or leaves (0) its _run(). */
void tl_prof_running(tl_loop *loop, int running);

/* The Profiler type (module init), and dropping the loop's profiler when
 * the loop is cleared.  tl_prof_detach() accepts a loop without one. */
int tl_profile_init_type(PyObject *mod, tl_state *st);
void tl_prof_detach(tl_loop *loop);

#endif /* TL_PROFILE_H */
