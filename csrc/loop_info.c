/* loop_info.c -- what the loop tells about itself: stats(), the
 * scheduled timers (_timer_handles()), and the getters and setters of the
 * attributes asyncio's loop has (_debug, slow_callback_duration, _closed,
 * _stopping, _thread_id, _task_factory) and of _ready_count.
 */
#include "loop.h"

PyObject *
tl_loop_stats(tl_loop *self, PyObject *Py_UNUSED(ignored))
{
    return Py_BuildValue(
        "{s:K,s:K,s:d,s:d,s:n,s:n,s:n,s:s}",
        "iterations", self->n_iterations,
        "callbacks", self->n_callbacks,
        "poll_time", (double)self->poll_ns / 1e9,
        "run_time", (double)self->run_ns / 1e9,
        "ready", (Py_ssize_t)tl_ring_len(&self->ready),
        "timers", (Py_ssize_t)tl_timerheap_len(&self->timers),
        "timers_cancelled", self->timer_cancelled,
        "poller", self->poller ? tl_poller_name(self->poller) : "closed");
}

PyObject *
tl_loop_timer_handles(tl_loop *self, PyObject *Py_UNUSED(ignored))
{
    /* The scheduled TimerHandles, in no particular order (asyncio exposes
     * its heap as _scheduled; tests and debuggers look at it). */
    PyObject *l = PyList_New(0);
    if (l == NULL)
        return NULL;
    for (size_t i = 0; i < tl_timerheap_len(&self->timers); i++) {
        if (PyList_Append(l, (PyObject *)self->timers.items[i].data) < 0) {
            Py_DECREF(l);
            return NULL;
        }
    }
    return l;
}

PyObject *
tl_loop_get_ready_count(tl_loop *self, void *Py_UNUSED(c))
{
    return PyLong_FromSize_t(tl_ring_len(&self->ready));
}

PyObject *
tl_loop_get_debug_attr(tl_loop *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(self->debug);
}

int
tl_loop_set_debug_attr(tl_loop *self, PyObject *v, void *Py_UNUSED(c))
{
    int b = tl_setter_bool(v);
    if (b < 0)
        return -1;
    self->debug = (char)b;
    return 0;
}

PyObject *
tl_loop_get_slow(tl_loop *self, void *Py_UNUSED(c))
{
    return PyFloat_FromDouble(self->slow_callback_duration);
}

int
tl_loop_set_slow(tl_loop *self, PyObject *v, void *Py_UNUSED(c))
{
    double d;
    if (v == NULL) {
        PyErr_SetString(PyExc_AttributeError,
                        "cannot delete slow_callback_duration");
        return -1;
    }
    d = PyFloat_AsDouble(v);
    if (d == -1.0 && PyErr_Occurred())
        return -1;
    self->slow_callback_duration = d;
    return 0;
}

PyObject *
tl_loop_get_closed(tl_loop *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(self->closed);
}

PyObject *
tl_loop_get_stopping(tl_loop *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(self->stopping);
}

PyObject *
tl_loop_get_thread_id(tl_loop *self, void *Py_UNUSED(c))
{
    if (self->thread_id == 0)
        Py_RETURN_NONE;
    return PyLong_FromUnsignedLong(self->thread_id);
}

PyObject *
tl_loop_get_task_factory_attr(tl_loop *self, void *Py_UNUSED(c))
{
    return tl_loop_get_task_factory(self, NULL);
}
