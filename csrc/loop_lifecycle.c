/* loop_lifecycle.c -- the loop object from creation to close: the poller
 * and the wake-up fd opened in tp_new, traverse/clear/dealloc, the C part
 * of close(), and the fresh poller and wake-up fd a child gets after
 * fork().
 */
#include "loop.h"
#include "profile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#if TL_HAVE_EVENTFD
#  include <sys/eventfd.h>
#endif

/* ------------------------------------------------------------------ */
/* Object lifecycle                                                    */
/* ------------------------------------------------------------------ */

static int
loop_open_wakeup(tl_loop *self)
{
#if TL_HAVE_EVENTFD
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0)
        return errno;
    self->wakeup_fd = self->wakeup_wfd = fd;
#else
    int p[2];
    if (pipe(p) < 0)
        return errno;
    for (int i = 0; i < 2; i++) {
        fcntl(p[i], F_SETFL, fcntl(p[i], F_GETFL) | O_NONBLOCK);
        fcntl(p[i], F_SETFD, FD_CLOEXEC);
    }
    self->wakeup_fd = p[0];
    self->wakeup_wfd = p[1];
#endif
    return tl_poller_modify(self->poller, self->wakeup_fd, 0, TL_POLL_READ);
}

static void
loop_close_fds(tl_loop *self)
{
    if (self->wakeup_wfd >= 0 && self->wakeup_wfd != self->wakeup_fd)
        close(self->wakeup_wfd);
    if (self->wakeup_fd >= 0)
        close(self->wakeup_fd);
    self->wakeup_fd = self->wakeup_wfd = -1;
    if (self->poller != NULL) {
        tl_poller_close(self->poller);
        self->poller = NULL;
    }
}

PyObject *
tl_loop_tp_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    tl_state *st = tl_state_from_type(tp);
    const tl_poller_ops *ops;
    const char *backend;
    tl_loop *self;
    int err;
    (void)args;
    (void)kwds;
    if (st == NULL)
        return NULL;
    backend = getenv("TURBOLOOP_POLLER");
    ops = tl_poller_find(backend);
    if (ops == NULL) {
        PyErr_Format(PyExc_ValueError,
                     "TURBOLOOP_POLLER=%s: unknown poller backend", backend);
        return NULL;
    }
    self = (tl_loop *)tp->tp_alloc(tp, 0);
    if (self == NULL)
        return NULL;
    self->st = st;
    self->wakeup_fd = self->wakeup_wfd = -1;
    self->slow_callback_duration = 0.1;
    tl_ring_init(&self->ready);
    tl_timerheap_init(&self->timers);
    err = tl_poller_open(ops, &self->poller);
    if (err == 0)
        err = loop_open_wakeup(self);
    if (err != 0) {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

int
tl_loop_traverse(tl_loop *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->task_factory);
    Py_VISIT((PyObject *)self->prof);
    for (size_t i = 0; i < tl_ring_len(&self->ready); i++) {
        tl_entry *e = tl_ring_at(&self->ready, i);
        Py_VISIT((PyObject *)e->a);
        if (e->kind != TL_EV_IO) {      /* there b and c are not objects */
            Py_VISIT((PyObject *)e->b);
            Py_VISIT((PyObject *)e->c);
        }
    }
    for (size_t i = 0; i < tl_timerheap_len(&self->timers); i++)
        Py_VISIT((PyObject *)self->timers.items[i].data);
    for (int i = 0; i < self->nfds; i++) {
        Py_VISIT(self->fds[i].reader);
        Py_VISIT(self->fds[i].writer);
        Py_VISIT(self->fds[i].fileobj);
    }
    /* The instance dict of Python subclasses is visited by the subclass's
     * own traverse (subtype_traverse). */
    return 0;
}

int
tl_loop_clear(tl_loop *self)
{
    Py_CLEAR(self->task_factory);
    tl_prof_detach(self);
    tl_loop_release_all(self);
    return 0;
}

void
tl_loop_dealloc(tl_loop *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    tl_loop_clear(self);
    loop_close_fds(self);
    free(self->rbuf);
    tp->tp_free(self);
    Py_DECREF(tp);
}

/* ------------------------------------------------------------------ */
/* Closing and fork                                                    */
/* ------------------------------------------------------------------ */

/* The C part of close(): Loop.close() checks and shuts down the executor. */
PyObject *
tl_loop_close_core(tl_loop *self, PyObject *Py_UNUSED(ignored))
{
    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Cannot close a running event loop");
        return NULL;
    }
    if (self->closed)
        Py_RETURN_NONE;
    self->closed = 1;
    tl_prof_detach(self);
    tl_loop_release_all(self);
    loop_close_fds(self);
    Py_RETURN_NONE;
}

/* In a child made with fork(): the epoll instance and the wake-up eventfd
 * are shared with the parent, so whatever this copy of the loop did to them
 * (a transport closed, a reader removed, a thread waking it) would happen to
 * the parent's loop.  Give the loop its own, with every watched fd
 * registered again.  Called from the Python side's os.register_at_fork()
 * hook. */
PyObject *
tl_loop_reinit_after_fork(tl_loop *self, PyObject *Py_UNUSED(ignored))
{
    int err, old_wakeup = self->wakeup_fd, old_wwake = self->wakeup_wfd;
    if (self->closed || self->poller == NULL)
        Py_RETURN_NONE;
    err = tl_poller_reinit(self->poller);
    if (err == 0) {
        /* A backend that kept its registrations (poll) must forget the
         * old wake-up fd, which is closed next. */
        tl_poller_modify(self->poller, old_wakeup, TL_POLL_READ, 0);
        if (old_wwake >= 0 && old_wwake != old_wakeup)
            close(old_wwake);
        close(old_wakeup);
        self->wakeup_fd = self->wakeup_wfd = -1;
        err = loop_open_wakeup(self);
    }
    for (int fd = 0; err == 0 && fd < self->nfds; fd++) {
        unsigned mask = self->fds[fd].mask;
        if (mask != 0 && tl_poller_modify(self->poller, fd, 0, mask) != 0)
            self->fds[fd].mask = 0;     /* closed behind our back */
    }
    if (err != 0) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    self->polling = 0;
    if (self->running && self->thread_id != PyThread_get_thread_ident()) {
        /* The thread that ran the loop does not exist in the child. */
        self->running = 0;
        self->stopping = 0;
        self->thread_id = 0;
    }
    Py_RETURN_NONE;
}
