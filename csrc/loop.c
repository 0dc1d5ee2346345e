/* loop.c -- the event loop: ready queue, timers, one iteration, wake-up,
 * scheduling and running; the Loop type.
 *
 * run_once() is the heart of the loop and lists its phases in the order of
 * asyncio's BaseEventLoop._run_once, so programs see the same ordering:
 *
 *   1. drop cancelled timers from the head of the heap (compacting the heap
 *      when most of it is cancelled);
 *   2. compute the poll timeout: 0 if anything is ready or the loop is
 *      stopping, the nearest deadline otherwise, forever if there is none;
 *   3. poll, with the GIL released;
 *   4. queue the handles of ready file descriptors;
 *   5. queue the timers that are due;
 *   6. run exactly the entries that were queued when this phase began;
 *   7. after a poll that delivered I/O, run once more what those callbacks
 *      queued (with the timers then due), as an iteration whose poll found
 *      nothing would: see run_once().
 *
 * This file keeps everything on the per-callback and per-iteration paths.
 * The colder methods are in files of their own, which loop.h ties
 * together: loop_lifecycle.c (creation, traverse/clear/dealloc, close,
 * fork), loop_fd.c (add_reader() and friends), loop_task.c
 * (create_future(), create_task(), the task factory) and loop_info.c
 * (stats() and the attributes).
 *
 * Cold paths (run_until_complete, the exception handler, executors, signal
 * handlers, asyncgen hooks) are Python, in turboloop/__init__.py, on top of
 * the methods defined here.
 */
#include "loop.h"
#include "profile.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOOP_MAX_EVENTS 256
#define LOOP_MIN_SCHEDULED_TO_COMPACT 100

/* ------------------------------------------------------------------ */
/* Clock                                                               */
/* ------------------------------------------------------------------ */

static inline int64_t
loop_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Seconds on the loop's clock, as loop.time() gives them. */
static inline double
loop_now_s(void)
{
    return (double)loop_now_ns() / 1e9;
}

/* Deadlines are kept as the doubles asyncio compares (time() + delay), so
 * the heap orders them as asyncio's heap does, to the last bit and at both
 * ends of the range (-inf, -1e300, -1e12 keep their order).  The only key
 * that is not the deadline itself is NaN's: -inf, since asyncio runs a NaN
 * deadline as soon as it reaches the head of its heap.  No deadline is ever
 * converted to an integer; the poll timeout is computed in seconds and
 * bounded by 0 and MAXIMUM_SELECT_TIMEOUT before it becomes nanoseconds
 * (see loop_timeout()), so no value can wrap. */
static inline double
loop_when_key(double when)
{
    return isnan(when) ? -Py_HUGE_VAL : when;
}

/* ------------------------------------------------------------------ */
/* Ready queue                                                         */
/* ------------------------------------------------------------------ */

int
tl_loop_check_thread(tl_loop *loop)
{
    /* Debug mode only, as asyncio's _check_thread. */
    if (loop->thread_id == 0)
        return 0;
    if (PyThread_get_thread_ident() != loop->thread_id) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Non-thread-safe operation invoked on an event loop "
                        "other than the current one");
        return -1;
    }
    return 0;
}

static void
loop_wake(tl_loop *loop)
{
    /* Only a loop sleeping in poll needs a kick; the flag is read and set
     * under the GIL, which every pusher holds. */
    if (loop->polling && loop->wakeup_wfd >= 0) {
        uint64_t one = 1;
        ssize_t n;
        loop->polling = 0;      /* one write per sleep is enough */
        do {
            n = write(loop->wakeup_wfd, &one, sizeof(one));
        } while (n < 0 && errno == EINTR);
        /* EAGAIN means the counter is already non-zero: the loop will wake. */
    }
}

int
tl_loop_push(tl_loop *loop, int kind, PyObject *a, PyObject *b, PyObject *c)
{
    if (loop->closed) {
        Py_XDECREF(a);
        Py_XDECREF(b);
        Py_XDECREF(c);
        return loop_raise_closed();
    }
    if (tl_ring_push(&loop->ready, kind, a, b, c) != 0) {
        Py_XDECREF(a);
        Py_XDECREF(b);
        Py_XDECREF(c);
        PyErr_NoMemory();
        return -1;
    }
    if (loop->prof != NULL)
        tl_prof_pushed(loop);
    if (loop->polling)
        loop_wake(loop);
    return 0;
}

int
tl_call_soon(tl_state *st, PyObject *loop, tl_loop *tloop, PyObject *fn,
             PyObject *arg, PyObject *ctx)
{
    PyObject *argv[4], *r;
    if (tloop != NULL) {
        if (tloop->debug && tl_loop_check_thread(tloop) < 0)
            return -1;
        return tl_loop_push(tloop, TL_EV_CALLBACK, Py_NewRef(fn),
                            Py_NewRef(arg), Py_NewRef(ctx));
    }
    argv[0] = loop;
    argv[1] = fn;
    argv[2] = arg;
    argv[3] = ctx;
    r = PyObject_VectorcallMethod(st->str_call_soon, argv,
                                  3 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                  st->kw_context);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

int
tl_call_exception_handler(tl_state *st, PyObject *loop, PyObject *context)
{
    PyObject *r;
    if (context == NULL)
        return -1;
    if (st != NULL && st->str_call_exception_handler != NULL)
        r = PyObject_CallMethodOneArg(loop, st->str_call_exception_handler,
                                      context);
    else {
        /* From a finalizer after the module is gone (shutdown). */
        PyErr_Clear();
        r = PyObject_CallMethod(loop, "call_exception_handler", "O", context);
    }
    Py_DECREF(context);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static void
loop_release_entry(tl_entry *e)
{
    Py_XDECREF((PyObject *)e->a);
    if (e->kind != TL_EV_IO) {      /* there b and c are not objects */
        Py_XDECREF((PyObject *)e->b);
        Py_XDECREF((PyObject *)e->c);
    }
}

/* A callback raised.  KeyboardInterrupt and SystemExit leave the loop, as in
 * asyncio's Handle._run; anything else goes to the exception handler through
 * the Python-level Loop._callback_error(exc, handle, callback, args). */
static int
loop_report_error(tl_loop *self, PyObject *handle, PyObject *callback,
                  PyObject *args)
{
    PyObject *exc, *r, *argv[5];
    if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)
        || PyErr_ExceptionMatches(PyExc_SystemExit))
        return -1;
    exc = tl_err_get_raised();
    argv[0] = (PyObject *)self;
    argv[1] = exc;
    argv[2] = handle ? handle : Py_None;
    argv[3] = callback ? callback : Py_None;
    argv[4] = args ? args : Py_None;
    r = PyObject_VectorcallMethod(self->st->str_callback_error, argv,
                                  5 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(exc);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static int
loop_run_in_context(PyObject *ctx, PyObject *fn, PyObject *arg)
{
    PyObject *r;
    if (PyContext_Enter(ctx) < 0)
        return -1;
    r = PyObject_CallOneArg(fn, arg);
    if (PyContext_Exit(ctx) < 0)
        Py_CLEAR(r);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static int
loop_run_task_entry(tl_loop *self, tl_entry *e)
{
    tl_task *task = (tl_task *)e->a;
    PyObject *ctx = Py_NewRef(task->context);
    int r;
    if (PyContext_Enter(ctx) < 0) {
        Py_DECREF(ctx);
        return -1;
    }
    if (e->kind == TL_EV_TASK_STEP)
        r = tl_task_step(task, (PyObject *)e->b);
    else
        r = tl_task_wakeup(task, (PyObject *)e->b);
    if (PyContext_Exit(ctx) < 0)
        r = -1;
    Py_DECREF(ctx);
    (void)self;
    return r;
}

/* Where a TL_EV_IO entry comes from, packed into its b: bit 0 the
 * direction, then the slot's generation for that direction when the event
 * was queued (32 bits), then the fd.  With 32-bit pointers there is no
 * room for the generation, and the check below is by watcher alone. */
#if UINTPTR_MAX > 0xFFFFFFFFu
#  define LOOP_IO_GEN_BITS 32
#else
#  define LOOP_IO_GEN_BITS 0
#endif

static inline void *
loop_io_where(int fd, int writer, unsigned gen)
{
    uintptr_t v = (uintptr_t)fd << (1 + LOOP_IO_GEN_BITS);
#if LOOP_IO_GEN_BITS
    v |= (uintptr_t)(uint32_t)gen << 1;
#else
    (void)gen;
#endif
    return (void *)(v | (uintptr_t)(writer != 0));
}

/* Whether the registration that queued a TL_EV_IO entry is still in
 * place.  A C watcher taken out of its slot (or taken out and put back)
 * since then misses the event, as a Handle cancelled by remove_reader()
 * does in asyncio even when add_reader() has put a new one in. */
static int
loop_io_entry_live(tl_loop *self, tl_entry *e)
{
    uintptr_t v = (uintptr_t)e->b;
    size_t fd = (size_t)(v >> (1 + LOOP_IO_GEN_BITS));
    int writer = (int)(v & 1);
    tl_fdwatch *w;
    if (fd >= (size_t)self->nfds)
        return 0;
    w = &self->fds[fd];
    if ((writer ? w->writer : w->reader) != e->a)
        return 0;
#if LOOP_IO_GEN_BITS
    return (uint32_t)(v >> 1) == (uint32_t)(writer ? w->wgen : w->rgen);
#else
    return 1;
#endif
}

/* Run one entry; the entry's references are released here.  Returns -1 only
 * when an exception must leave the loop. */
static int
loop_run_entry(tl_loop *self, tl_entry *e)
{
    int r = 0;
    switch (e->kind) {
    case TL_EV_HANDLE: {
        tl_handle *h = (tl_handle *)e->a;
        if (!h->cancelled && tl_handle_run(h) < 0)
            r = loop_report_error(self, (PyObject *)h, h->callback, h->args);
        break;
    }
    case TL_EV_CALLBACK:
        if (loop_run_in_context((PyObject *)e->c, (PyObject *)e->a,
                                (PyObject *)e->b) < 0) {
            PyObject *args = PyTuple_Pack(1, (PyObject *)e->b);
            if (args == NULL)
                r = -1;
            else {
                r = loop_report_error(self, NULL, (PyObject *)e->a, args);
                Py_DECREF(args);
            }
        }
        break;
    case TL_EV_TASK_STEP:
    case TL_EV_TASK_WAKEUP:
        if (loop_run_task_entry(self, e) < 0)
            r = loop_report_error(self, NULL, (PyObject *)e->a, NULL);
        break;
    case TL_EV_IO:
        if (loop_io_entry_live(self, e)
            && ((tl_io_fn)e->c)((PyObject *)e->a) < 0)
            r = loop_report_error(self, NULL, (PyObject *)e->a, NULL);
        break;
    default:
        Py_UNREACHABLE();
    }
    loop_release_entry(e);
    return r;
}

static int loop_run_entry_debug(tl_loop *self, tl_entry *e);

/* A profiled loop times each entry (profile.c). */
static int
loop_run_entry_profiled(tl_loop *self, tl_entry *e)
{
    tl_prof_span span;
    int r;
    tl_prof_entry_begin(self, e, &span);
    r = self->debug ? loop_run_entry_debug(self, e) : loop_run_entry(self, e);
    tl_prof_span_end(&span);
    return r;
}

static int
loop_run_entry_debug(tl_loop *self, tl_entry *e)
{
    /* Debug mode: time each callback and log the slow ones with what they
     * were, as asyncio does with slow_callback_duration. */
    PyObject *what = Py_NewRef((PyObject *)e->a);
    int64_t t0 = loop_now_ns();
    int r = loop_run_entry(self, e);
    double dt = (double)(loop_now_ns() - t0) / 1e9;
    if (r == 0 && dt >= self->slow_callback_duration) {
        PyObject *d = PyFloat_FromDouble(dt);
        PyObject *res = d ? PyObject_CallMethodObjArgs(
            (PyObject *)self, self->st->str_log_slow_callback, what, d, NULL)
            : NULL;
        Py_XDECREF(d);
        if (res == NULL)
            r = -1;
        Py_XDECREF(res);
    }
    Py_DECREF(what);
    return r;
}

/* ------------------------------------------------------------------ */
/* Timers                                                              */
/* ------------------------------------------------------------------ */

static int
loop_keep_timer(void *data, void *arg)
{
    tl_handle *h = data;
    (void)arg;
    if (!h->cancelled)
        return 1;
    h->scheduled = 0;
    Py_DECREF(h);
    return 0;
}

static void
loop_prune_timers(tl_loop *self)
{
    size_t n = tl_timerheap_len(&self->timers);
    tl_timer t;

    if (n > LOOP_MIN_SCHEDULED_TO_COMPACT
        && (size_t)self->timer_cancelled * 2 > n) {
        /* Most of the heap is dead weight: rebuild it without them.  The
         * decrefs may run finalizers, but only of handles already out of the
         * heap, so the heap is consistent whatever they do. */
        self->timers_filtering = 1;
        tl_timerheap_filter(&self->timers, loop_keep_timer, NULL);
        self->timers_filtering = 0;
        self->timer_cancelled = 0;
        return;
    }
    for (;;) {
        const tl_timer *top = tl_timerheap_peek(&self->timers);
        tl_handle *h;
        if (top == NULL || !((tl_handle *)top->data)->cancelled)
            break;
        tl_timerheap_pop(&self->timers, &t);
        h = t.data;
        h->scheduled = 0;
        self->timer_cancelled--;
        Py_DECREF(h);
    }
}

/* A deadline that is not a plain float (an int, a Fraction, a Decimal...)
 * or is NaN: the loop does asyncio's own arithmetic on it when it is at the
 * head of the heap, so that it raises what asyncio's _run_once raises. */
static inline int
loop_timer_is_slow(const tl_handle *h)
{
    return h->when_obj != NULL || isnan(h->when);
}

/* asyncio's MAXIMUM_SELECT_TIMEOUT, seconds: the longest one poll sleeps. */
#define LOOP_MAX_TIMEOUT_S (24.0 * 3600.0)

/* The poll timeout for a slow head timer h, as asyncio computes it:
 * `h._when - self.time()`, bounded by 0 and MAXIMUM_SELECT_TIMEOUT (3.11
 * and 3.12 with min(max(0, t), MAX), which turns NaN into 0; 3.13+ with
 * comparisons that let NaN through to the selector, whose math.ceil()
 * raises ValueError).  Runs Python code. */
static int
loop_timeout_slow(tl_handle *h, int64_t *timeout)
{
    PyObject *when, *now, *delta;
    double t;
    when = h->when_obj ? Py_NewRef(h->when_obj) : PyFloat_FromDouble(h->when);
    if (when == NULL)
        return -1;
    now = PyFloat_FromDouble(loop_now_s());
    if (now == NULL) {
        Py_DECREF(when);
        return -1;
    }
    delta = PyNumber_Subtract(when, now);
    Py_DECREF(when);
    Py_DECREF(now);
    if (delta == NULL)
        return -1;
    t = PyFloat_AsDouble(delta);
    Py_DECREF(delta);
    if (t == -1.0 && PyErr_Occurred())
        return -1;
#if PY_VERSION_HEX < 0x030D0000
    if (!(t > 0))
        t = 0;
    if (LOOP_MAX_TIMEOUT_S < t)
        t = LOOP_MAX_TIMEOUT_S;
#else
    if (t > LOOP_MAX_TIMEOUT_S)
        t = LOOP_MAX_TIMEOUT_S;
    else if (t < 0)
        t = 0;
    if (isnan(t)) {
        PyErr_SetString(PyExc_ValueError,
                        "cannot convert float NaN to integer");
        return -1;
    }
#endif
    *timeout = (int64_t)ceil(t * 1e9);
    return 0;
}

/* Whether a slow head timer h is due: asyncio's `not h._when >= end_time`,
 * end_time being now plus the clock's resolution.  1, 0, or -1 on error;
 * runs Python code. */
static int
loop_timer_due_slow(tl_handle *h, double now)
{
    PyObject *when, *end;
    int ge;
    when = h->when_obj ? Py_NewRef(h->when_obj) : PyFloat_FromDouble(h->when);
    if (when == NULL)
        return -1;
    end = PyFloat_FromDouble(now + 1e-9);
    if (end == NULL) {
        Py_DECREF(when);
        return -1;
    }
    ge = PyObject_RichCompareBool(when, end, Py_GE);
    Py_DECREF(when);
    Py_DECREF(end);
    return ge < 0 ? -1 : !ge;
}

/* The poll timeout in nanoseconds: 0 when something is ready or the loop is
 * stopping, -1 (forever) without timers, else until the nearest deadline.
 * May run Python code (slow deadlines); the caller checks the loop again. */
static int
loop_timeout(tl_loop *self, int64_t *timeout)
{
    const tl_timer *top = tl_timerheap_peek(&self->timers);
    double t;
    if (tl_ring_len(&self->ready) > 0 || self->stopping)
        *timeout = 0;
    else if (top == NULL)
        *timeout = -1;
    else if (loop_timer_is_slow(top->data))
        return loop_timeout_slow(top->data, timeout);
    else {
        /* Bounded in seconds first: inf and 1e300 become a day. */
        t = top->when - loop_now_s();
        if (!(t > 0))
            *timeout = 0;
        else if (t > LOOP_MAX_TIMEOUT_S)
            *timeout = (int64_t)(LOOP_MAX_TIMEOUT_S * 1e9);
        else
            *timeout = (int64_t)ceil(t * 1e9);
    }
    return 0;
}

/* Move the due timers to the ready queue, in (deadline, insertion) order. */
static int
loop_queue_due_timers(tl_loop *self, double now)
{
    for (;;) {
        const tl_timer *top = tl_timerheap_peek(&self->timers);
        tl_handle *h;
        tl_timer t;
        if (top == NULL)
            break;
        h = top->data;
        if (!h->cancelled && loop_timer_is_slow(h)) {
            int due = loop_timer_due_slow(h, now);
            if (due < 0)
                return -1;
            if (!due || self->closed)
                break;
            /* The comparison ran Python code, which may have changed the
             * heap: start over unless h is still its head. */
            top = tl_timerheap_peek(&self->timers);
            if (top == NULL || top->data != h)
                continue;
        }
        else if (top->when > now)
            break;
        tl_timerheap_pop(&self->timers, &t);
        h->scheduled = 0;
        if (h->cancelled) {
            self->timer_cancelled--;
            Py_DECREF(h);
            continue;
        }
        /* The heap's reference moves to the ring. */
        if (tl_loop_push(self, TL_EV_HANDLE, (PyObject *)h, NULL, NULL) < 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* One iteration                                                       */
/* ------------------------------------------------------------------ */

static void
loop_drain_wakeup(tl_loop *self)
{
    uint64_t buf[8];
    ssize_t n;
    do {
        n = read(self->wakeup_fd, buf, sizeof(buf));
    } while (n > 0 && self->wakeup_fd != self->wakeup_wfd);
    /* An eventfd is drained by a single read; a pipe until EAGAIN. */
}

/* Queue what watches one side of an fd: its Handle, unless cancelled, or
 * its C watcher. */
static int
loop_queue_watcher(tl_loop *self, int fd, int writer, PyObject *obj,
                   tl_io_fn fn, unsigned gen)
{
    if (fn != NULL) {
        if (tl_ring_push(&self->ready, TL_EV_IO, Py_NewRef(obj),
                         loop_io_where(fd, writer, gen), (void *)fn) != 0) {
            Py_DECREF(obj);
            PyErr_NoMemory();
            return -1;
        }
        return 0;
    }
    if (((tl_handle *)obj)->cancelled)
        return 0;
    return tl_loop_push(self, TL_EV_HANDLE, Py_NewRef(obj), NULL, NULL);
}

/* Queue the watchers of the ready fds; returns how many entries were
 * queued, or -1 on error. */
static int
loop_dispatch_io(tl_loop *self, tl_poll_event *evs, int n)
{
    for (int i = 0; i < n; i++) {
        int fd = evs[i].fd;
        tl_fdwatch *w;
        if (fd == self->wakeup_fd) {
            loop_drain_wakeup(self);
            continue;
        }
        if (fd < 0 || fd >= self->nfds)
            continue;
        /* Queueing runs no Python code, so w stays valid. */
        w = &self->fds[fd];
        if ((evs[i].mask & TL_POLL_READ) && w->reader != NULL
            && loop_queue_watcher(self, fd, 0, w->reader, w->rfn,
                                  w->rgen) < 0)
            return -1;
        if ((evs[i].mask & TL_POLL_WRITE) && w->writer != NULL
            && loop_queue_watcher(self, fd, 1, w->writer, w->wfn,
                                  w->wgen) < 0)
            return -1;
    }
    return 0;
}

/* Steps 5 and 6 of an iteration: queue the timers due at `now`, then run
 * exactly the entries that are ready; what they schedule waits. */
static int
loop_run_batch(tl_loop *self, int64_t now)
{
    size_t ntodo;

    /* 5. Due timers, in (deadline, insertion) order. */
    if (loop_queue_due_timers(self, (double)now / 1e9) < 0)
        return -1;
    if (self->closed)
        return 0;

    /* 6. Run what is ready now. */
    ntodo = tl_ring_len(&self->ready);
    self->n_callbacks += ntodo;
    self->n_iterations++;
    while (ntodo-- > 0) {
        tl_entry e;
        if (!tl_ring_pop(&self->ready, &e))
            break;      /* close() from a callback emptied the ring */
        if (self->prof != NULL ? loop_run_entry_profiled(self, &e) < 0
            : self->debug ? loop_run_entry_debug(self, &e) < 0
                          : loop_run_entry(self, &e) < 0)
            return -1;
    }
    self->run_ns += loop_now_ns() - now;
    return 0;
}

static int
loop_run_once(tl_loop *self)
{
    tl_poll_event evs[LOOP_MAX_EVENTS];
    int64_t timeout, now, t_poll;
    int n;

    /* 1. Cancelled timers at the head would only shorten the timeout. */
    loop_prune_timers(self);

    /* 2. The timeout.  A deadline that is not a float makes this run
     * Python code, which may close the loop or queue callbacks. */
    if (loop_timeout(self, &timeout) < 0)
        return -1;
    if (self->closed)
        return 0;
    if (timeout != 0 && (tl_ring_len(&self->ready) > 0 || self->stopping))
        timeout = 0;

    /* 3. Poll.  With a zero timeout the call cannot block, so the GIL stays
     * with us; otherwise other threads may run and push work, and they kick
     * the wake-up fd when they see `polling`. */
    t_poll = loop_now_ns();
    if (timeout == 0) {
        n = tl_poller_wait(self->poller, evs, LOOP_MAX_EVENTS, 0);
    }
    else {
        self->polling = 1;
        Py_BEGIN_ALLOW_THREADS
        n = tl_poller_wait(self->poller, evs, LOOP_MAX_EVENTS, timeout);
        Py_END_ALLOW_THREADS
        self->polling = 0;
    }
    now = loop_now_ns();
    self->poll_ns += now - t_poll;
    if (self->prof != NULL)
        tl_prof_polled(self, t_poll, now, timeout);
    if (n < 0) {
        if (n != -EINTR) {
            errno = -n;
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        /* A signal arrived: run the Python-level handlers now (Ctrl-C
         * raises KeyboardInterrupt here, as in asyncio's select()). */
        if (PyErr_CheckSignals() < 0)
            return -1;
        n = 0;
    }
    if (self->closed)
        return 0;

    /* 4. I/O readiness. */
    if (loop_dispatch_io(self, evs, n) < 0)
        return -1;

    /* 5, 6. Due timers, then what is ready. */
    return loop_run_batch(self, now);
}

/* ------------------------------------------------------------------ */
/* Releasing what the loop holds                                       */
/* ------------------------------------------------------------------ */

/* Detach everything the loop holds, then drop it: the decrefs can run
 * arbitrary code (finalizers), which then finds an empty, closed loop.
 * For tp_clear and close() (loop_lifecycle.c); it stays in this file with
 * loop_release_entry(), which it shares with loop_run_entry(). */
void
tl_loop_release_all(tl_loop *self)
{
    tl_ring ready = self->ready;
    tl_timerheap timers = self->timers;
    tl_fdwatch *fds = self->fds;
    int nfds = self->nfds;
    tl_entry e;
    tl_timer t;

    tl_ring_init(&self->ready);
    tl_timerheap_init(&self->timers);
    self->fds = NULL;
    self->nfds = 0;
    self->timer_cancelled = 0;

    while (tl_ring_pop(&ready, &e))
        loop_release_entry(&e);
    tl_ring_free(&ready);
    while (tl_timerheap_pop(&timers, &t)) {
        ((tl_handle *)t.data)->scheduled = 0;
        Py_DECREF((PyObject *)t.data);
    }
    tl_timerheap_free(&timers);
    for (int i = 0; i < nfds; i++) {
        Py_XDECREF(fds[i].reader);
        Py_XDECREF(fds[i].writer);
        Py_XDECREF(fds[i].fileobj);
    }
    free(fds);
}

/* ------------------------------------------------------------------ */
/* Scheduling methods                                                  */
/* ------------------------------------------------------------------ */

/* Split (callback, *args, context=None) from a vectorcall. */
static int
loop_parse_callback(tl_loop *self, const char *fname, PyObject *const *args,
                    Py_ssize_t nargs, PyObject *kwnames, Py_ssize_t skip,
                    PyObject **callback, PyObject **cargs, PyObject **context)
{
    *context = NULL;
    if (kwnames != NULL) {
        Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t i = 0; i < nkw; i++) {
            PyObject *k = PyTuple_GET_ITEM(kwnames, i);
            if (PyUnicode_Check(k)
                && PyUnicode_Compare(k, self->st->str_context) == 0) {
                *context = args[nargs + i];
            }
            else {
                PyErr_Format(PyExc_TypeError,
                             "%s() got an unexpected keyword argument '%S'",
                             fname, k);
                return -1;
            }
        }
    }
    if (nargs < skip + 1) {
        PyErr_Format(PyExc_TypeError,
                     "%s() missing required argument 'callback'", fname);
        return -1;
    }
    *callback = args[skip];
    *cargs = PyTuple_New(nargs - skip - 1);
    if (*cargs == NULL)
        return -1;
    for (Py_ssize_t i = skip + 1; i < nargs; i++)
        PyTuple_SET_ITEM(*cargs, i - skip - 1, Py_NewRef(args[i]));
    return 0;
}

/* loop_parse_callback() for loop_fd.c.  The scheduling methods here call
 * the static function, so that call_soon() keeps a direct call. */
int
tl_loop_parse_callback(tl_loop *self, const char *fname,
                       PyObject *const *args, Py_ssize_t nargs,
                       PyObject *kwnames, Py_ssize_t skip,
                       PyObject **callback, PyObject **cargs,
                       PyObject **context)
{
    return loop_parse_callback(self, fname, args, nargs, kwnames, skip,
                               callback, cargs, context);
}

static int
loop_check_callback(tl_loop *self, PyObject *callback, const char *method)
{
    /* Debug mode only, as asyncio's _check_callback. */
    PyObject *r = PyObject_CallOneArg(self->st->iscoroutine, callback);
    int is_coro;
    if (r == NULL)
        return -1;
    is_coro = PyObject_IsTrue(r);
    Py_DECREF(r);
    if (is_coro < 0)
        return -1;
    if (!is_coro && PyFunction_Check(callback)) {
        PyCodeObject *code = (PyCodeObject *)PyFunction_GetCode(callback);
        PyObject *flags = PyObject_GetAttrString((PyObject *)code, "co_flags");
        long f = flags ? PyLong_AsLong(flags) : -1;
        Py_XDECREF(flags);
        if (f == -1 && PyErr_Occurred())
            return -1;
        is_coro = (f & (CO_COROUTINE | CO_ITERABLE_COROUTINE)) != 0;
    }
    if (is_coro) {
        PyErr_Format(PyExc_TypeError, "coroutines cannot be used with %s()",
                     method);
        return -1;
    }
    if (!PyCallable_Check(callback)) {
        PyErr_Format(PyExc_TypeError,
                     "a callable object was expected by %s(), got %R",
                     method, callback);
        return -1;
    }
    return 0;
}

static PyObject *
loop_call_soon_impl(tl_loop *self, const char *fname, PyObject *const *args,
                    Py_ssize_t nargs, PyObject *kwnames, int threadsafe)
{
    PyObject *callback, *cargs, *context, *h;
    if (loop_check_closed(self) < 0)
        return NULL;
    if (loop_parse_callback(self, fname, args, nargs, kwnames, 0, &callback,
                            &cargs, &context) < 0)
        return NULL;
    if (self->debug) {
        if ((!threadsafe && tl_loop_check_thread(self) < 0)
            || loop_check_callback(self, callback, fname) < 0) {
            Py_DECREF(cargs);
            return NULL;
        }
    }
    h = loop_handle_new(self, self->st->HandleType, callback, cargs, context,
                        0.0);
    if (h == NULL)
        return NULL;
#if TL_HANDLE_LOCKS
    if (threadsafe && tl_handle_make_threadsafe((tl_handle *)h) < 0) {
        Py_DECREF(h);
        return NULL;
    }
#endif
    if (tl_loop_push(self, TL_EV_HANDLE, Py_NewRef(h), NULL, NULL) < 0) {
        Py_DECREF(h);
        return NULL;
    }
    return h;
}

static PyObject *
loop_call_soon(tl_loop *self, PyObject *const *args, size_t nargsf,
               PyObject *kwnames)
{
    return loop_call_soon_impl(self, "call_soon", args,
                               PyVectorcall_NARGS(nargsf), kwnames, 0);
}

static PyObject *
loop_call_soon_threadsafe(tl_loop *self, PyObject *const *args, size_t nargsf,
                          PyObject *kwnames)
{
    return loop_call_soon_impl(self, "call_soon_threadsafe", args,
                               PyVectorcall_NARGS(nargsf), kwnames, 1);
}

/* asyncio's heappush() compares a new deadline with its parent's in the
 * heap: a deadline that cannot be ordered against it (an object with only
 * __index__ or __float__, a str) raises the TypeError of that comparison.
 * (asyncio pushes the handle first and leaves it in its heap, where every
 * later heap operation meets it; here it is refused and gone.  With an
 * empty heap asyncio makes no comparison and fails at the next iteration
 * instead; here the comparison is made with 0.0.)  Only deadlines that are
 * neither ints nor floats get here, so this is never the common path. */
static int
loop_check_orderable(tl_loop *self, PyObject *when)
{
    size_t n = tl_timerheap_len(&self->timers);
    PyObject *other, *lt;
    tl_handle *parent;
    if (PyLong_Check(when) || PyFloat_Check(when))
        return 0;
    if (n == 0)
        other = PyFloat_FromDouble(0.0);
    else {
        parent = self->timers.items[(n - 1) / 2].data;
        other = parent->when_obj ? Py_NewRef(parent->when_obj)
                                 : PyFloat_FromDouble(parent->when);
    }
    if (other == NULL)
        return -1;
    lt = PyObject_RichCompare(when, other, Py_LT);
    Py_DECREF(other);
    if (lt == NULL)
        return -1;
    Py_DECREF(lt);
    return 0;
}

/* Schedule a TimerHandle at `when` (when_obj: see tl_timer_deadline();
 * stolen), or, when whenarg is not NULL, at the deadline it converts to.
 * The checks come in asyncio's order: arguments, closed loop, debug-mode
 * checks, then the deadline itself. */
static PyObject *
loop_schedule_timer(tl_loop *self, PyObject *whenarg, double when,
                    PyObject *when_obj, PyObject *const *args,
                    Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *callback, *cargs, *context, *h;
    if (loop_parse_callback(self, "call_at", args, nargs, kwnames, 1,
                            &callback, &cargs, &context) < 0)
        goto fail;
    if (loop_check_closed(self) < 0) {
        Py_DECREF(cargs);
        goto fail;
    }
    if (self->debug) {
        if (tl_loop_check_thread(self) < 0
            || loop_check_callback(self, callback, "call_at") < 0) {
            Py_DECREF(cargs);
            goto fail;
        }
    }
    if (whenarg != NULL
        && (loop_check_orderable(self, whenarg) < 0
            || tl_timer_deadline(whenarg, &when, &when_obj) < 0)) {
        Py_DECREF(cargs);
        return NULL;
    }
    h = loop_handle_new(self, self->st->TimerHandleType, callback, cargs,
                        context, when);
    if (h == NULL)
        goto fail;
    ((tl_handle *)h)->when_obj = when_obj;
    /* Creating the handle can run Python code (debug tracebacks). */
    if (loop_check_closed(self) < 0) {
        Py_DECREF(h);
        return NULL;
    }
    if (tl_timerheap_push(&self->timers, loop_when_key(when),
                          self->timer_seq++, h) != 0) {
        Py_DECREF(h);
        return PyErr_NoMemory();
    }
    Py_INCREF(h);                   /* one for the heap, one returned */
    ((tl_handle *)h)->scheduled = 1;
    return h;
fail:
    Py_XDECREF(when_obj);
    return NULL;
}

static PyObject *
loop_call_later(tl_loop *self, PyObject *const *args, size_t nargsf,
                PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *delay, *when_obj = NULL;
    double now, when;
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError,
                        "call_later() missing required argument 'delay'");
        return NULL;
    }
    delay = args[0];
    if (delay == Py_None) {
        PyErr_SetString(PyExc_TypeError, "delay must not be None");
        return NULL;
    }
    /* asyncio computes self.time() + delay and hands it to call_at(). */
    now = loop_now_s();
    if (PyFloat_CheckExact(delay))
        when = now + PyFloat_AS_DOUBLE(delay);
    else if (PyLong_CheckExact(delay) || PyBool_Check(delay)) {
        /* An int converts without a float object; the value and the
         * OverflowError for a huge one are float.__add__'s. */
        double d = PyLong_AsDouble(delay);
        if (d == -1.0 && PyErr_Occurred())
            return NULL;
        when = now + d;
    }
    else {
        /* Anything else is float + delay: a Fraction gives a float, a
         * Decimal or an object with only __index__ or __float__ a
         * TypeError, as in asyncio; whatever it gives is call_at()'s. */
        PyObject *nowobj = PyFloat_FromDouble(now), *w, *r;
        if (nowobj == NULL)
            return NULL;
        w = PyNumber_Add(nowobj, delay);
        Py_DECREF(nowobj);
        if (w == NULL)
            return NULL;
        r = loop_schedule_timer(self, w, 0.0, NULL, args, nargs, kwnames);
        Py_DECREF(w);
        return r;
    }
    return loop_schedule_timer(self, NULL, when, when_obj, args, nargs,
                               kwnames);
}

static PyObject *
loop_call_at(tl_loop *self, PyObject *const *args, size_t nargsf,
             PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError,
                        "call_at() missing required argument 'when'");
        return NULL;
    }
    if (args[0] == Py_None) {
        PyErr_SetString(PyExc_TypeError, "when cannot be None");
        return NULL;
    }
    if (PyFloat_CheckExact(args[0]))
        return loop_schedule_timer(self, NULL, PyFloat_AS_DOUBLE(args[0]),
                                   NULL, args, nargs, kwnames);
    return loop_schedule_timer(self, args[0], 0.0, NULL, args, nargs,
                               kwnames);
}

static PyObject *
loop_time(tl_loop *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    return PyFloat_FromDouble(loop_now_s());
}

/* ------------------------------------------------------------------ */
/* Running                                                             */
/* ------------------------------------------------------------------ */

/* The C part of run_forever(): Loop.run_forever() in Python does the
 * set-up (running loop, asyncgen hooks) and calls this. */
static PyObject *
loop_run(tl_loop *self, PyObject *Py_UNUSED(ignored))
{
    int r = 0;
    if (loop_check_closed(self) < 0)
        return NULL;
    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError,
                        "This event loop is already running");
        return NULL;
    }
    self->running = 1;
    self->thread_id = PyThread_get_thread_ident();
    Py_INCREF(self);        /* a callback may drop the last reference */
    if (self->prof != NULL)
        tl_prof_running(self, 1);
    for (;;) {
        r = loop_run_once(self);
        if (r < 0 || self->stopping)
            break;
    }
    if (self->prof != NULL)
        tl_prof_running(self, 0);
    self->stopping = 0;
    self->running = 0;
    self->thread_id = 0;
    Py_DECREF(self);
    if (r < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* For Loop._run_profiled() in Python, which drives the iterations itself
 * when a profiler is installed (see _loop.py): what _run() does on
 * entry (running=True) and on exit (running=False). */
static PyObject *
loop_set_running(tl_loop *self, PyObject *flag)
{
    int on = PyObject_IsTrue(flag);
    if (on < 0)
        return NULL;
    if (on) {
        if (loop_check_closed(self) < 0)
            return NULL;
        if (self->running) {
            PyErr_SetString(PyExc_RuntimeError,
                            "This event loop is already running");
            return NULL;
        }
        self->running = 1;
        self->thread_id = PyThread_get_thread_ident();
        if (self->prof != NULL)
            tl_prof_running(self, 1);
    }
    else if (self->running) {
        if (self->prof != NULL)
            tl_prof_running(self, 0);
        self->stopping = 0;
        self->running = 0;
        self->thread_id = 0;
    }
    Py_RETURN_NONE;
}

/* Wait in poll until something is ready or the next timer is due, without
 * taking the events: the poller is level-triggered, so the next
 * _run_once() finds them with a poll that does not wait.  This way a
 * profiler charges the wait to this call, as it charges asyncio's to
 * epoll.poll(), instead of to the loop's own work. */
static PyObject *
loop_poll_wait(tl_loop *self, PyObject *Py_UNUSED(ignored))
{
    tl_poll_event ev;
    int64_t timeout, t0;
    int n;
    if (loop_check_closed(self) < 0)
        return NULL;
    /* The timeout run_once() would use (a cancelled timer at the top only
     * makes this return early: the next _run_once() drops it). */
    if (loop_timeout(self, &timeout) < 0)
        return NULL;
    if (timeout == 0 || self->closed)
        Py_RETURN_NONE;
    t0 = loop_now_ns();
    self->polling = 1;
    Py_BEGIN_ALLOW_THREADS
    n = tl_poller_wait(self->poller, &ev, 1, timeout);
    Py_END_ALLOW_THREADS
    self->polling = 0;
    self->poll_ns += loop_now_ns() - t0;
    if (n < 0 && n != -EINTR) {
        errno = -n;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (n < 0 && PyErr_CheckSignals() < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
loop_run_once_py(tl_loop *self, PyObject *Py_UNUSED(ignored))
{
    if (loop_check_closed(self) < 0 || loop_run_once(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
loop_stop(tl_loop *self, PyObject *Py_UNUSED(ignored))
{
    self->stopping = 1;
    Py_RETURN_NONE;
}

static PyObject *
loop_is_running(tl_loop *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->running);
}

static PyObject *
loop_is_closed(tl_loop *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->closed);
}

static PyObject *
loop_check_closed_py(tl_loop *self, PyObject *Py_UNUSED(ignored))
{
    if (loop_check_closed(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
loop_get_debug(tl_loop *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->debug);
}

/* ------------------------------------------------------------------ */
/* The type                                                            */
/* ------------------------------------------------------------------ */

static PyMethodDef loop_methods[] = {
    {"time", (PyCFunction)loop_time, METH_NOARGS,
     "Return the time according to the event loop's clock."},
    {"call_soon", (PyCFunction)(void (*)(void))loop_call_soon,
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {"call_soon_threadsafe", (PyCFunction)(void (*)(void))loop_call_soon_threadsafe,
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {"call_later", (PyCFunction)(void (*)(void))loop_call_later,
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {"call_at", (PyCFunction)(void (*)(void))loop_call_at,
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {"_run", (PyCFunction)loop_run, METH_NOARGS,
     "Run iterations until stop() is called."},
    {"_run_once", (PyCFunction)loop_run_once_py, METH_NOARGS, NULL},
    {"_poll_wait", (PyCFunction)loop_poll_wait, METH_NOARGS,
     "Wait until something is ready or due (for profilers, see _loop.py)."},
    {"_set_running", (PyCFunction)loop_set_running, METH_O, NULL},
    {"stop", (PyCFunction)loop_stop, METH_NOARGS, NULL},
    {"is_running", (PyCFunction)loop_is_running, METH_NOARGS, NULL},
    {"is_closed", (PyCFunction)loop_is_closed, METH_NOARGS, NULL},
    {"_close", (PyCFunction)tl_loop_close_core, METH_NOARGS, NULL},
    {"_check_closed", (PyCFunction)loop_check_closed_py, METH_NOARGS, NULL},
    {"_reinit_after_fork", (PyCFunction)tl_loop_reinit_after_fork, METH_NOARGS,
     NULL},
    {"get_debug", (PyCFunction)loop_get_debug, METH_NOARGS, NULL},
    {"_add_reader", (PyCFunction)(void (*)(void))tl_loop_add_reader,
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {"_add_writer", (PyCFunction)(void (*)(void))tl_loop_add_writer,
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {"_remove_reader", (PyCFunction)tl_loop_remove_reader, METH_O, NULL},
    {"_remove_writer", (PyCFunction)tl_loop_remove_writer, METH_O, NULL},
    {"_c_sock_recv", (PyCFunction)(void (*)(void))tl_sock_recv,
     METH_FASTCALL, NULL},
    {"_c_sock_recv_into", (PyCFunction)(void (*)(void))tl_sock_recv_into,
     METH_FASTCALL, NULL},
    {"_c_sock_sendall", (PyCFunction)(void (*)(void))tl_sock_sendall,
     METH_FASTCALL, NULL},
    {"_get_reader", (PyCFunction)tl_loop_get_reader, METH_O, NULL},
    {"_get_writer", (PyCFunction)tl_loop_get_writer, METH_O, NULL},
    {"create_future", (PyCFunction)tl_loop_create_future, METH_NOARGS,
     "Create a Future object attached to the loop."},
    {"create_task", (PyCFunction)(void (*)(void))tl_loop_create_task,
     METH_FASTCALL | METH_KEYWORDS, "Schedule a coroutine object."},
    {"set_task_factory", (PyCFunction)tl_loop_set_task_factory, METH_O, NULL},
    {"get_task_factory", (PyCFunction)tl_loop_get_task_factory, METH_NOARGS,
     NULL},
    {"stats", (PyCFunction)tl_loop_stats, METH_NOARGS,
     "Counters of what the loop has done."},
    {"_timer_handles", (PyCFunction)tl_loop_timer_handles, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef loop_getset[] = {
    {"_debug", (getter)tl_loop_get_debug_attr,
     (setter)tl_loop_set_debug_attr, NULL, NULL},
    {"slow_callback_duration", (getter)tl_loop_get_slow,
     (setter)tl_loop_set_slow, NULL, NULL},
    {"_closed", (getter)tl_loop_get_closed, NULL, NULL, NULL},
    {"_stopping", (getter)tl_loop_get_stopping, NULL, NULL, NULL},
    {"_thread_id", (getter)tl_loop_get_thread_id, NULL, NULL, NULL},
    {"_task_factory", (getter)tl_loop_get_task_factory_attr, NULL, NULL, NULL},
    {"_ready_count", (getter)tl_loop_get_ready_count, NULL, NULL, NULL},
    {NULL},
};

static PyMemberDef loop_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(tl_loop, weakreflist),
     READONLY, NULL},
    {NULL},
};

static PyType_Slot loop_slots[] = {
    {Py_tp_new, tl_loop_tp_new},
    {Py_tp_dealloc, tl_loop_dealloc},
    {Py_tp_traverse, tl_loop_traverse},
    {Py_tp_clear, tl_loop_clear},
    {Py_tp_methods, loop_methods},
    {Py_tp_getset, loop_getset},
    {Py_tp_members, loop_members},
    {Py_tp_doc, "The C core of turboloop's event loop; use turboloop.Loop."},
    {0, NULL},
};

static PyType_Spec loop_spec = {
    "turboloop._core.Loop", sizeof(tl_loop), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    loop_slots,
};

int
tl_loop_init_type(PyObject *mod, tl_state *st)
{
    return tl_add_type(mod, &loop_spec, NULL, &st->LoopType);
}
