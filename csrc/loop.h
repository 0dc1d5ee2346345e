/* loop.h -- what the files of the event loop share: loop.c (the ready
 * queue, timers, one iteration, scheduling, running, the type) and the
 * files of its colder methods.
 *
 * The small helpers several files call, as static inline functions so that
 * loop.c's per-callback and per-iteration paths keep direct calls, and the
 * functions the other files define for the method, getset and slot tables
 * of loop.c.  Other files see only what tl.h declares.
 */
#ifndef TL_LOOP_H
#define TL_LOOP_H

#include "tl.h"

/* ------------------------------------------------------------------ */
/* Helpers of several files                                            */
/* ------------------------------------------------------------------ */

static inline int
loop_raise_closed(void)
{
    PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
    return -1;
}

static inline int
loop_check_closed(tl_loop *self)
{
    if (self->closed)
        return loop_raise_closed();
    return 0;
}

/* A Handle or TimerHandle (tp) of this loop for callback(*cargs), in
 * context or a copy of the current one; steals cargs.  Marked as the
 * loop's own, so that cancelling it reaches the loop without checks. */
static inline PyObject *
loop_handle_new(tl_loop *self, PyTypeObject *tp, PyObject *callback,
                PyObject *cargs, PyObject *context, double when)
{
    PyObject *h = tl_handle_new(self->st, tp, callback, cargs,
                                (PyObject *)self, context, when);
    Py_DECREF(cargs);
    if (h != NULL)
        ((tl_handle *)h)->own_loop = 1;
    return h;
}

/* ------------------------------------------------------------------ */
/* Defined in one file, called from another                            */
/* ------------------------------------------------------------------ */

/* loop.c */
/* Split (callback, *args, context=None) from a vectorcall, skipping the
 * first `skip` positional arguments; *cargs is a new tuple. */
int tl_loop_parse_callback(tl_loop *self, const char *fname,
                           PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames, Py_ssize_t skip,
                           PyObject **callback, PyObject **cargs,
                           PyObject **context);
/* Detach everything the loop holds (ready queue, timers, fd table), then
 * drop it: for tp_clear and close(). */
void tl_loop_release_all(tl_loop *self);

/* loop_lifecycle.c: the type's slots and the methods behind close() and
 * the fork hook. */
PyObject *tl_loop_tp_new(PyTypeObject *tp, PyObject *args, PyObject *kwds);
int tl_loop_traverse(tl_loop *self, visitproc visit, void *arg);
int tl_loop_clear(tl_loop *self);
void tl_loop_dealloc(tl_loop *self);
PyObject *tl_loop_close_core(tl_loop *self, PyObject *ignored);
PyObject *tl_loop_reinit_after_fork(tl_loop *self, PyObject *ignored);

/* loop_fd.c: add_reader() and friends (the table is fdwatch.c's). */
PyObject *tl_loop_add_reader(tl_loop *self, PyObject *const *args,
                             size_t nargsf, PyObject *kwnames);
PyObject *tl_loop_add_writer(tl_loop *self, PyObject *const *args,
                             size_t nargsf, PyObject *kwnames);
PyObject *tl_loop_remove_reader(tl_loop *self, PyObject *fd);
PyObject *tl_loop_remove_writer(tl_loop *self, PyObject *fd);
PyObject *tl_loop_get_reader(tl_loop *self, PyObject *fd);
PyObject *tl_loop_get_writer(tl_loop *self, PyObject *fd);

/* loop_task.c: futures, tasks and the task factory. */
PyObject *tl_loop_create_future(tl_loop *self, PyObject *ignored);
PyObject *tl_loop_create_task(tl_loop *self, PyObject *const *args,
                              size_t nargsf, PyObject *kwnames);
PyObject *tl_loop_set_task_factory(tl_loop *self, PyObject *factory);
PyObject *tl_loop_get_task_factory(tl_loop *self, PyObject *ignored);

/* loop_info.c: counters and the attributes asyncio's loop has. */
PyObject *tl_loop_stats(tl_loop *self, PyObject *ignored);
PyObject *tl_loop_timer_handles(tl_loop *self, PyObject *ignored);
PyObject *tl_loop_get_ready_count(tl_loop *self, void *c);
PyObject *tl_loop_get_debug_attr(tl_loop *self, void *c);
int tl_loop_set_debug_attr(tl_loop *self, PyObject *v, void *c);
PyObject *tl_loop_get_slow(tl_loop *self, void *c);
int tl_loop_set_slow(tl_loop *self, PyObject *v, void *c);
PyObject *tl_loop_get_closed(tl_loop *self, void *c);
PyObject *tl_loop_get_stopping(tl_loop *self, void *c);
PyObject *tl_loop_get_thread_id(tl_loop *self, void *c);
PyObject *tl_loop_get_task_factory_attr(tl_loop *self, void *c);

#endif /* TL_LOOP_H */
