/* tl.h -- what the Python-facing files of turboloop._core share.
 *
 * Module state (the types and the asyncio objects we cache), the object
 * layouts other files need to see, and small compatibility shims over the
 * public C API of CPython 3.11 - 3.15.  Cross-file functions carry the tl_
 * prefix; file-local ones are static and prefixed by their file.
 */
#ifndef TL_H
#define TL_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>     /* PyMemberDef constants on 3.11 */
#include <stdint.h>

#include "config.h"
#include "poller.h"
#include "ring.h"
#include "timerheap.h"

#define TL_DGRAM_NSTR 8                /* see datagram.c */
#define TL_SSL_NOBJ 45                 /* see sslproto.h */

/* ------------------------------------------------------------------ */
/* Compatibility shims                                                 */
/* ------------------------------------------------------------------ */

#if PY_VERSION_HEX < 0x030C0000
static inline PyObject *
tl_err_get_raised(void)
{
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    if (t == NULL)
        return NULL;
    PyErr_NormalizeException(&t, &v, &tb);
    if (tb != NULL)
        PyException_SetTraceback(v, tb);
    Py_DECREF(t);
    Py_XDECREF(tb);
    return v;
}
static inline void
tl_err_set_raised(PyObject *exc)
{
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc,
                  PyException_GetTraceback(exc));
}
#else
#  define tl_err_get_raised() PyErr_GetRaisedException()
#  define tl_err_set_raised(e) PyErr_SetRaisedException(e)
#endif

/* Look up an attribute; 1 found, 0 missing (no error set), -1 error. */
static inline int
tl_getattr_opt(PyObject *obj, PyObject *name, PyObject **res)
{
#if PY_VERSION_HEX >= 0x030D0000
    return PyObject_GetOptionalAttr(obj, name, res);
#else
    *res = PyObject_GetAttr(obj, name);
    if (*res != NULL)
        return 1;
    if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
        PyErr_Clear();
        return 0;
    }
    return -1;
#endif
}

/* The value given to a boolean attribute setter, as 0 or 1; -1 with an
 * error set for a deletion or a failing __bool__. */
static inline int
tl_setter_bool(PyObject *v)
{
    if (v == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete attribute");
        return -1;
    }
    return PyObject_IsTrue(v);
}

/* The truth of a call's result, releasing it; -1 on error, including a
 * NULL result (the failed call's error stays set). */
static inline int
tl_truth_steal(PyObject *r)
{
    int b;
    if (r == NULL)
        return -1;
    b = PyObject_IsTrue(r);
    Py_DECREF(r);
    return b;
}

/* ------------------------------------------------------------------ */
/* Module state                                                        */
/* ------------------------------------------------------------------ */

typedef struct tl_state {
    PyTypeObject *LoopType;
    PyTypeObject *HandleType;
    PyTypeObject *TimerHandleType;
    PyTypeObject *FutureType;
    PyTypeObject *FutureIterType;
    PyTypeObject *TaskType;
    PyTypeObject *SocketTransportType;
    PyTypeObject *SockOpType;

    /* asyncio objects, imported once when the module is executed. */
    PyObject *CancelledError;
    PyObject *InvalidStateError;
    PyObject *get_event_loop;          /* asyncio.events.get_event_loop */
    PyObject *get_running_loop;        /* asyncio.events._get_running_loop */
    PyObject *iscoroutine;             /* asyncio.coroutines.iscoroutine */
    PyObject *enter_task;              /* asyncio.tasks._enter_task ... */
    PyObject *leave_task;
    PyObject *current_tasks;           /* the dict those two keep, when they
                                          are _asyncio's (3.11-3.13), else NULL */
    PyObject *register_task;
    PyObject *unregister_task;
    /* The parts of the WeakSet _asyncio's _register_task adds to (3.11-3.13),
     * when those hooks are _asyncio's; else NULL.  See task_register(). */
    PyObject *tasks_data;              /* WeakSet.data: set of weakrefs */
    PyObject *tasks_iterating;         /* WeakSet._iterating: set */
    PyObject *tasks_pending;           /* WeakSet._pending_removals: list */
    PyObject *tasks_weakset;
    PyObject *register_eager_task;     /* NULL before 3.12 */
    PyObject *unregister_eager_task;   /* NULL before 3.12 */
    PyObject *swap_current_task;       /* NULL before 3.12 */
    PyObject *future_repr;             /* base_futures._future_repr(_info) */
    PyObject *task_repr;               /* base_tasks._task_repr(_info) */
    PyObject *task_get_stack;          /* base_tasks._task_get_stack */
    PyObject *task_print_stack;        /* base_tasks._task_print_stack */
    PyObject *extract_stack;           /* format_helpers.extract_stack */
    PyObject *format_callback_source;  /* format_helpers._format_callback_source */
    PyObject *add_to_awaited_by;       /* futures.future_add_to_awaited_by, 3.14+ */
    PyObject *discard_from_awaited_by; /* futures.future_discard_from_awaited_by */
    PyObject *BufferedProtocol;        /* asyncio.protocols.BufferedProtocol */
    PyObject *ssl_module;              /* asyncio.base_events.ssl, or None */

    /* Interned attribute names. */
    PyObject *str_throw;
    PyObject *str_add_done_callback;
    PyObject *str_cancel;
    PyObject *str_call_soon;
    PyObject *str_call_exception_handler;
    PyObject *str_callback_error;      /* Loop._callback_error */
    PyObject *str_log_slow_callback;   /* Loop._log_slow_callback */
    PyObject *str_blocking;            /* _asyncio_future_blocking */
    PyObject *str_get_loop;
    PyObject *str_loop;                /* _loop */
    PyObject *str_result;
    PyObject *str_get_debug;
    PyObject *str_context;             /* "context" keyword */
    PyObject *str_msg;                 /* "msg" keyword */
    PyObject *str_data_received;       /* protocol methods */
    PyObject *str_buffer_updated;
    PyObject *str_get_buffer;
    PyObject *str_eof_received;
    PyObject *str_connection_lost;
    PyObject *str_pause_writing;
    PyObject *str_resume_writing;
    PyObject *str_recv;                /* socket methods */
    PyObject *str_recv_into;
    PyObject *str_send;
    PyObject *str_fileno;
    PyObject *str_set_result;
    PyObject *str_set_exception;
    PyObject *str_create_future;
    PyObject *str_ensure_fd_no_transport;
    PyObject *dgram_str[TL_DGRAM_NSTR]; /* names datagram.c looks up */
    PyObject *kw_context;              /* ("context",) for vectorcall */
    PyObject *kw_msg;                  /* ("msg",) */

    /* asyncio's C Future and Task, our types' bases; NULL when the layout
     * check failed and our types are plain (layout.c). */
    PyTypeObject *AsyncioFutureType;
    PyTypeObject *AsyncioTaskType;
    PyObject *layout_problem;          /* why not, as a str */

    unsigned long long task_name_counter;
    int format_source_has_debug;       /* 3.13+: debug= keyword */
    PyTypeObject *ProfilerType;        /* profile.c */

    /* Pipes and child processes (pipe.c, process.c). */
    PyTypeObject *ReadPipeTransportType;
    PyTypeObject *WritePipeTransportType;
    PyTypeObject *PidfdWatchType;

    /* TLS (sslproto.c): its types, the ssl and asyncio objects and the
     * names it uses, indexed as sslproto.h says. */
    PyObject *ssl_obj[TL_SSL_NOBJ];

    PyTypeObject *DatagramTransportType;   /* datagram.c */

    /* task_registry.c (3.11-3.13): the tasks not yet in asyncio's task
     * WeakSet (borrowed), and the WeakSet subclass that puts them there
     * when the set is read. */
    struct tl_task **tasks_unregistered;
    Py_ssize_t tasks_unregistered_n;
    Py_ssize_t tasks_unregistered_cap;
    PyObject *tasks_set_type;
    int tasks_deferring;               /* the WeakSet's class is ours */
} tl_state;

extern PyModuleDef tl_module_def;

static inline tl_state *
tl_state_from_type(PyTypeObject *tp)
{
    PyObject *mod;
    /* At interpreter shutdown the collector may clear a heap type (its MRO
     * and module) before the last of its instances is destroyed. */
    if (tp->tp_mro == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "turboloop's module is already finalized");
        return NULL;
    }
    mod = PyType_GetModuleByDef(tp, &tl_module_def);
    return mod ? (tl_state *)PyModule_GetState(mod) : NULL;
}

/* ------------------------------------------------------------------ */
/* Object layouts shared between files                                 */
/* ------------------------------------------------------------------ */

/* Ready-queue entry kinds; the meaning of a, b, c per kind.  Every pointer
 * stored in the ring is a strong reference owned by the ring. */
enum {
    TL_EV_HANDLE = 1,    /* a: Handle */
    TL_EV_CALLBACK,      /* a: callable, b: its single argument, c: Context */
    TL_EV_TASK_STEP,     /* a: Task, b: exception to throw in, or NULL */
    TL_EV_TASK_WAKEUP,   /* a: Task, b: the future it waited for */
    TL_EV_IO,            /* a: object watching an fd, b: the fd, the
                            direction and the slot's generation, packed
                            (not a reference; see loop_io_where()), c: its
                            tl_io_fn (not a reference) */
};

/* A C-level fd watcher (a transport): called from the ready queue when the
 * fd it watches is ready.  Returns 0, or -1 with an exception set that the
 * loop reports as it would a failing callback. */
typedef int (*tl_io_fn)(PyObject *obj);

/* Per-fd watchers.  A slot holds either a Handle (add_reader/add_writer) or,
 * when its fn is set, an object whose fn the loop calls directly. */
typedef struct tl_fdwatch {
    PyObject *reader;    /* Handle, watcher object, or NULL */
    PyObject *writer;
    tl_io_fn rfn;        /* set when reader is a C watcher */
    tl_io_fn wfn;
    unsigned rgen, wgen; /* bumped whenever reader / writer changes */
    PyObject *fileobj;   /* what the slot was registered with, when not an
                            int: see fdwatch.c */
    unsigned mask;       /* interest currently registered with the poller */
    unsigned char boolfd; /* registered with True or False (see fdwatch.c) */
} tl_fdwatch;

typedef struct tl_loop {
    PyObject_HEAD
    tl_state *st;
    tl_poller *poller;
    tl_ring ready;
    tl_timerheap timers;          /* data: TimerHandle, strong reference */
    uint64_t timer_seq;
    Py_ssize_t timer_cancelled;   /* cancelled handles still in the heap */
    char timers_filtering;        /* the heap is being rebuilt: a cancel
                                     must leave it alone (handle.c) */
    tl_fdwatch *fds;
    int nfds;                     /* length of fds */
    int wakeup_fd;                /* eventfd (or pipe read end), -1 if none */
    int wakeup_wfd;               /* where other threads write; may equal wakeup_fd */
    unsigned long thread_id;      /* thread running the loop, 0 when stopped */
    char closed;
    char stopping;
    char running;
    char polling;                 /* inside poll with the GIL released */
    char debug;
    double slow_callback_duration;
    PyObject *task_factory;
    PyObject *weakreflist;
    /* Counters for observability. */
    unsigned long long n_iterations;
    unsigned long long n_callbacks;
    long long poll_ns;
    long long run_ns;
    char *rbuf;                   /* transports' receive buffer */
    struct tl_prof *prof;         /* the attached profiler (profile.c) or NULL;
                                     a strong reference */
} tl_loop;

/* Size of tl_loop.rbuf: what one recv() of a stream transport may return. */
#define TL_RBUF_SIZE (256 * 1024)

/* From 3.14 on, asyncio's call_soon_threadsafe() returns a handle that
 * holds a reentrant lock across cancel(), cancelled() and its run. */
#define TL_HANDLE_LOCKS (PY_VERSION_HEX >= 0x030E0000)

typedef struct tl_handle {
    PyObject_HEAD
    PyObject *callback;
    PyObject *args;               /* tuple */
    PyObject *context;
    PyObject *loop;
    PyObject *source_traceback;
    PyObject *repr;               /* repr kept at cancel time in debug mode */
    PyObject *weakreflist;
    double when;                  /* TimerHandle only: the deadline as a double */
    PyObject *when_obj;           /* TimerHandle only: the deadline as given,
                                     unless it is an exact float (see
                                     tl_timer_deadline()) */
    char cancelled;
    char scheduled;               /* TimerHandle sitting in a loop's heap */
    char own_loop;                /* loop is a turboloop loop: made by its
                                     scheduling methods */
#if TL_HANDLE_LOCKS
    struct tl_handle_lock *lock;  /* call_soon_threadsafe() handles only
                                     (see handle.c); NULL otherwise */
#endif
} tl_handle;

enum { TL_PENDING = 0, TL_CANCELLED = 1, TL_FINISHED = 2 };

/* Future and Task have the object layout of asyncio's C Future and Task
 * (_asyncio.Future and _asyncio.Task, Modules/_asynciomodule.c) of the
 * Python they are built for, and are subclasses of those types: asyncio's
 * own C code reads and writes these fields in instances of subclasses (on
 * 3.14+ the task list, the awaited-by links and the out-of-process task
 * reader do), so every piece of state lives in the field asyncio keeps it
 * in, in asyncio's representation.  The layouts differ per minor version;
 * module start-up checks them against the running interpreter (layout.c)
 * and falls back to plain types with the same fields if they differ.
 *
 * One flag of our own, own_loop (loop is a turboloop loop, so
 * (tl_loop *)loop is valid), sits in bits the base layout leaves unused
 * (padding after `blocking`, or a spare bit of the bit-field unit), at the
 * same position in Future and Task.  A Task may add fields after asyncio's
 * (a Future may not: Task's base fields follow Future's).
 *
 * Callbacks are stored as asyncio stores them: the first in callback0 /
 * context0, the others as (callback, context) tuples in the list callbacks.
 * One difference: a task waiting on the future is stored in callback0 as
 * the task itself with None for context0 (its internal wake-up), so
 * awaiting costs no bound method; anywhere else the wake-up is a real
 * callable. */
#define TL_FUTURE_FIELDS                                                   \
    PyObject_HEAD                                                          \
    PyObject *loop;                                                        \
    PyObject *callback0;                                                   \
    PyObject *context0;        /* None: callback0 is a task's wake-up */   \
    PyObject *callbacks;       /* list of (callback, context), or NULL */  \
    PyObject *exception;                                                   \
    PyObject *exception_tb;                                                \
    PyObject *result;                                                      \
    PyObject *source_tb;                                                   \
    PyObject *cancel_msg;

#if PY_VERSION_HEX >= 0x030E0000        /* 3.14, 3.15 */
#  define TL_LAYOUT_BITFIELDS 1
#  define TL_FUTURE_STATE_FIELDS                                           \
    PyObject *cancelled_exc;                                               \
    PyObject *awaited_by;      /* a waiter, or a set if awaited_by_is_set */\
    int state;                                                             \
    char is_task;                                                          \
    char awaited_by_is_set;
#elif PY_VERSION_HEX >= 0x030D0000      /* 3.13 */
#  define TL_LAYOUT_BITFIELDS 1
#  define TL_FUTURE_STATE_FIELDS                                           \
    PyObject *cancelled_exc;                                               \
    int state;
#else                                   /* 3.11, 3.12 */
#  define TL_LAYOUT_BITFIELDS 0
#  define TL_FUTURE_STATE_FIELDS                                           \
    int state;                                                             \
    int log_tb;                                                            \
    int blocking;                                                          \
    unsigned own_loop : 1;     /* in the padding before dict */
#  define TL_FUTURE_TAIL_FIELDS                                            \
    PyObject *dict;                                                        \
    PyObject *weakreflist;                                                 \
    PyObject *cancelled_exc;
#endif

typedef struct tl_future {
    TL_FUTURE_FIELDS
    TL_FUTURE_STATE_FIELDS
#if TL_LAYOUT_BITFIELDS
    unsigned log_tb : 1;
    unsigned blocking : 1;
    unsigned : 2;              /* Task's must_cancel, log_destroy_pending */
    unsigned own_loop : 1;
#else
    TL_FUTURE_TAIL_FIELDS
#endif
} tl_future;

typedef struct tl_task {
    TL_FUTURE_FIELDS
    TL_FUTURE_STATE_FIELDS
#if TL_LAYOUT_BITFIELDS
    unsigned log_tb : 1;
    unsigned blocking : 1;
    unsigned must_cancel : 1;
    unsigned log_destroy_pending : 1;
    unsigned own_loop : 1;
    int num_cancels_requested;
    PyObject *fut_waiter;
    PyObject *coro;
    PyObject *name;            /* str, or the int N of a default "Task-N" */
    PyObject *context;
#  if PY_VERSION_HEX >= 0x030E0000
    struct tl_llist_node { struct tl_llist_node *next, *prev; } node;
#    ifdef Py_GIL_DISABLED
    uintptr_t tid;
#    endif
#  endif
#else
    TL_FUTURE_TAIL_FIELDS
    PyObject *fut_waiter;
    PyObject *coro;
    PyObject *name;            /* str, or the int N of a default "Task-N" */
    PyObject *context;
    int must_cancel;
    int log_destroy_pending;
    int num_cancels_requested;
    /* Ours, in the padding that ends asyncio's struct: the N of a default
     * name "Task-N" not made into an object yet (name is NULL), or 0. */
    unsigned int name_num;
#  define TL_TASK_NAME_NUM 1
#endif
    /* Ours, after asyncio's fields.  Up to 3.13, where the task is in
     * asyncio's task WeakSet (task_registry.c): 0 (nowhere), our weakref in
     * the set (not traversed or cleared by the GC: dealloc takes it out of
     * the set), or (i << 1) | 1 for index i in the module state's array of
     * tasks not yet put in the set. */
#if PY_VERSION_HEX < 0x030E0000
    uintptr_t registry;
#endif
} tl_task;

/* The size of asyncio's own Task, which ours extends. */
#if PY_VERSION_HEX < 0x030E0000
#  define TL_ASYNCIO_TASK_SIZE offsetof(tl_task, registry)
#else
#  define TL_ASYNCIO_TASK_SIZE sizeof(tl_task)
#endif

/* The turboloop loop a future belongs to, or NULL for any other loop. */
#define TL_FUT_TLOOP(f) \
    (((tl_future *)(f))->own_loop ? (tl_loop *)((tl_future *)(f))->loop : NULL)

/* The module state of a future or task.  Through its loop when that is
 * ours (the common case, two loads), else through its type. */
static inline tl_state *
tl_future_state(void *f)
{
    tl_future *fut = (tl_future *)f;
    if (fut->own_loop)
        return ((tl_loop *)fut->loop)->st;
    return tl_state_from_type(Py_TYPE(fut));
}

#define TL_LOOP_CHECK(st, o)  PyObject_TypeCheck((o), (st)->LoopType)
#define TL_FUTURE_CHECK(st, o) PyObject_TypeCheck((o), (st)->FutureType)
#define TL_TASK_CHECK(st, o)  PyObject_TypeCheck((o), (st)->TaskType)
/* Exactly our Future or Task: a subclass may override the methods the fast
 * paths would bypass, so it gets the generic protocol. */
#define TL_FUTURE_CHECK_EXACT(st, o) \
    (Py_IS_TYPE((o), (st)->FutureType) || Py_IS_TYPE((o), (st)->TaskType))

/* ------------------------------------------------------------------ */
/* Cross-file functions                                                */
/* ------------------------------------------------------------------ */

/* module.c */
int tl_add_type(PyObject *mod, PyType_Spec *spec, PyObject *base,
                PyTypeObject **out);

/* handle.c */
int tl_handle_init_types(PyObject *mod, tl_state *st);
PyObject *tl_handle_new(tl_state *st, PyTypeObject *tp, PyObject *callback,
                        PyObject *args, PyObject *loop, PyObject *context,
                        double when);
/* Run the handle's callback in its context; 0, or -1 with the error set
 * (the caller reports it). */
int tl_handle_run(tl_handle *h);
void tl_handle_release(tl_handle *h);   /* drop callback, args */
#if TL_HANDLE_LOCKS
/* Give a new handle the lock of call_soon_threadsafe()'s handles; -1 with
 * MemoryError. */
int tl_handle_make_threadsafe(tl_handle *h);
#endif
/* A deadline as call_at() gets it: *when is its value as a double (ints too
 * large for one saturate to +-inf), *obj NULL when it is an exact float and
 * otherwise a new reference to the object itself, which asyncio would keep
 * and do its timer arithmetic on.  -1 with an error for what has no value
 * as a float. */
int tl_timer_deadline(PyObject *o, double *when, PyObject **obj);
PyObject *tl_format_callback_source(tl_state *st, PyObject *cb,
                                    PyObject *args, int debug);

/* loop.c */
int tl_loop_init_type(PyObject *mod, tl_state *st);
/* Queue an entry; steals the references in a, b, c on success and on
 * failure.  Raises if the loop is closed. */
int tl_loop_push(tl_loop *loop, int kind, PyObject *a, PyObject *b, PyObject *c);
int tl_loop_check_thread(tl_loop *loop);
/* Watch fd for reading (writer == 0) or writing with a C watcher: fn(obj)
 * runs each iteration the fd is ready.  The loop holds obj while it
 * watches; a Handle already in the slot is cancelled. */
int tl_loop_watch(tl_loop *loop, int fd, int writer, PyObject *obj,
                  tl_io_fn fn);
/* Stop watching, if obj is still the slot's watcher; never fails for a
 * closed fd (the interest is dropped regardless). */
void tl_loop_unwatch(tl_loop *loop, int fd, int writer, PyObject *obj);
/* fdwatch.c: the fd table behind add_reader() & co.  tl_fd_lookup resolves
 * an fd or file object: 1 with *fd set, 0 for an int too large to be an fd,
 * -1 with an error.  tl_fd_add_handle puts a Handle in a slot (cancelling
 * the one it replaces); tl_fd_remove takes it out: 1 if there was one, 0 if
 * not, -1 with an error; tl_fd_get returns it, or None. */
int tl_fd_lookup(tl_loop *loop, PyObject *obj, int *fd);
int tl_fd_add_handle(tl_loop *loop, int fd, int writer, PyObject *handle,
                     PyObject *fileobj);
int tl_fd_remove(tl_loop *loop, int fd, int writer);
PyObject *tl_fd_get(tl_loop *loop, int fd, int writer);
/* Schedule fn(arg) in ctx on any loop: straight into the ring of a turboloop
 * loop, through loop.call_soon(fn, arg, context=ctx) on any other. */
int tl_call_soon(tl_state *st, PyObject *loop, tl_loop *tloop, PyObject *fn,
                 PyObject *arg, PyObject *ctx);
/* loop.call_exception_handler(context); steals context. */
int tl_call_exception_handler(tl_state *st, PyObject *loop, PyObject *context);

/* future.c */
int tl_future_init_types(PyObject *mod, tl_state *st);
int tl_sockop_init_type(PyObject *mod, tl_state *st);
int tl_datagram_init(PyObject *mod, tl_state *st);
PyObject *tl_sock_recv(tl_loop *loop, PyObject *const *args, Py_ssize_t nargs);
PyObject *tl_sock_recv_into(tl_loop *loop, PyObject *const *args,
                            Py_ssize_t nargs);
PyObject *tl_sock_sendall(tl_loop *loop, PyObject *const *args,
                          Py_ssize_t nargs);
/* st may be NULL: found from the future's type. */
int tl_future_init(tl_state *st, tl_future *fut, PyObject *loop);
int tl_future_init_fresh(tl_state *st, tl_future *fut, tl_loop *loop);
int tl_future_schedule_callbacks(tl_future *fut);
PyObject *tl_future_set_result(tl_future *fut, PyObject *res);
PyObject *tl_future_set_exception(tl_future *fut, PyObject *exc);
int tl_future_cancel(tl_future *fut, PyObject *msg);
PyObject *tl_future_make_cancelled_error(tl_state *st, tl_future *fut);
/* 1 with *res a new reference to the result, 0 with *res the exception to
 * raise (new reference), -1 on error. */
int tl_future_get_result(tl_state *st, tl_future *fut, PyObject **res);
/* Add a done callback fn(fut) in ctx, or with a NULL ctx the wake-up of
 * the task fn; scheduled at once if fut is done.  Steals nothing. */
int tl_future_add_callback(tl_future *fut, PyObject *fn, PyObject *ctx);
int tl_future_traverse(tl_future *fut, visitproc visit, void *arg);
void tl_future_clear(tl_future *fut);
void tl_future_finalize(PyObject *self);
void tl_future_clear_weakrefs(tl_future *fut);

/* layout.c: make Future (is_task 0) or Task as subclasses of asyncio's C
 * types when the layout check passes, as plain types otherwise. */
int tl_add_asyncio_subtype(PyObject *mod, tl_state *st, PyType_Spec *spec,
                           int is_task, PyTypeObject **out);
/* Call graph bookkeeping (3.14+); no-ops elsewhere. */
int tl_awaited_by_add(tl_state *st, PyObject *fut, PyObject *waiter);
int tl_awaited_by_discard(tl_state *st, PyObject *fut, PyObject *waiter);

/* transport.c, transport_write.c */
int tl_transport_init_type(PyObject *mod, tl_state *st);
/* write(data) and is_closing() of a SocketTransport (exact type). */
int tl_transport_write(PyObject *transport, PyObject *data);
int tl_transport_is_closing(PyObject *transport);

/* sslproto.c */
int tl_sslproto_init(PyObject *mod, tl_state *st);
/* For the socket transport: 1 if protocol is turboloop's SSLProtocol with
 * its own get_buffer() and buffer_updated(), which the transport may then
 * replace by the two calls below (same effect, no Python call). */
int tl_sslproto_direct(tl_state *st, PyObject *protocol);
/* What get_buffer() hands out, as memory; NULL with an exception set. */
char *tl_sslproto_recv_buffer(PyObject *protocol, Py_ssize_t *len);
/* buffer_updated(n); 0, or -1 with an exception set. */
int tl_sslproto_received(PyObject *protocol, Py_ssize_t n);

/* pipe.c, process.c */
int tl_pipe_init_types(PyObject *mod, tl_state *st);
int tl_process_init_type(PyObject *mod, tl_state *st);

/* task.c */
int tl_task_init_type(PyObject *mod, tl_state *st);
/* Entry points for the loop's ready queue. */
int tl_task_step(tl_task *task, PyObject *exc);
int tl_task_wakeup(tl_task *task, PyObject *fut);
PyObject *tl_task_wakeup_callable(tl_task *task);
/* Take a done task off asyncio's task list (3.14+; a no-op before). */
void tl_task_unlink(tl_task *task);
PyObject *tl_task_create(tl_state *st, PyObject *coro, tl_loop *loop,
                         PyObject *name, PyObject *context, int eager_start);
/* The task's name as stored (a str, or the int N of "Task-N"), a new
 * reference; None if it has none. */
PyObject *tl_task_name_ref(tl_task *task);

/* task_registry.c: asyncio's _register_task for our tasks, and the removal
 * at dealloc; the set-up of the WeakSet subclass. */
int tl_task_registry_add(tl_state *st, tl_task *task);
void tl_task_registry_remove(tl_task *task);
int tl_task_registry_init(PyObject *mod, tl_state *st);

#endif /* TL_H */
