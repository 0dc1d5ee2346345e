/* process.c -- watching child processes exit with pidfds.
 *
 * PidfdWatch(loop, pid, callback, args) opens a pidfd for the child
 * (pidfd_open(2), Linux 5.3+) and has the loop's poller watch it: when the
 * child exits the pidfd turns readable, the loop calls pidfd_ready() straight
 * from its ready queue, which reaps the child and calls
 * callback(pid, returncode, *args) -- what asyncio's PidfdChildWatcher does
 * with a reader Handle and a Python method, without either.  No SIGCHLD
 * handler, no thread.
 *
 * The child is reaped with waitid(P_PIDFD), which names the process by the
 * pidfd, not by a pid number the kernel may have handed to another process;
 * kernels before 5.4 lack it and get waitpid().
 *
 * Where pidfds are not available the Python side falls back to asyncio's
 * threaded child watcher (turboloop/_subprocess.py).
 */
#include "tl.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#if TL_HAVE_PIDFD
#  include <sys/syscall.h>
#endif

#ifndef P_PIDFD
#  define P_PIDFD 3
#endif

typedef struct {
    PyObject_HEAD
    tl_loop *loop;
    PyObject *callback;
    PyObject *args;             /* tuple */
    long pid;
    int pidfd;                  /* -1 once done */
    char watching;
} tl_pidfd_watch;

static int
pidfd_open_fd(long pid)
{
#if TL_HAVE_PIDFD
    return (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

static void
pidfd_stop(tl_pidfd_watch *self)
{
    if (self->watching) {
        self->watching = 0;
        tl_loop_unwatch(self->loop, self->pidfd, 0, (PyObject *)self);
    }
    if (self->pidfd >= 0) {
        close(self->pidfd);
        self->pidfd = -1;
    }
}

/* Reap the child: 1 with *returncode set as os.waitstatus_to_exitcode()
 * would, 0 if it has not exited after all, -1 with errno set. */
static int
pidfd_reap(tl_pidfd_watch *self, int *returncode)
{
    siginfo_t info;
    int r, status;
    memset(&info, 0, sizeof(info));
    do {
        r = waitid((idtype_t)P_PIDFD, (id_t)self->pidfd, &info,
                   WEXITED | WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == 0) {
        if (info.si_pid == 0)
            return 0;
        if (info.si_code == CLD_EXITED)
            *returncode = info.si_status;
        else
            *returncode = -info.si_status;  /* killed or dumped core */
        return 1;
    }
    if (errno != EINVAL)
        return -1;
    /* No P_PIDFD (Linux < 5.4): by pid, as asyncio does. */
    do {
        r = (int)waitpid((pid_t)self->pid, &status, WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        return -1;
    if (r == 0)
        return 0;
    if (WIFEXITED(status))
        *returncode = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        *returncode = -WTERMSIG(status);
    else
        return 0;       /* stopped or continued: keep waiting */
    return 1;
}

/* callback(pid, returncode, *args); an exception is reported as asyncio
 * reports one from the callback of its watcher's reader Handle. */
static int
pidfd_notify(tl_pidfd_watch *self, int returncode)
{
    PyObject *callback = self->callback, *args = self->args, *full, *r;
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    self->callback = NULL;
    self->args = NULL;
    full = PyTuple_New(n + 2);
    if (full == NULL)
        goto error;
    PyTuple_SET_ITEM(full, 0, PyLong_FromLong(self->pid));
    PyTuple_SET_ITEM(full, 1, PyLong_FromLong(returncode));
    if (PyTuple_GET_ITEM(full, 0) == NULL || PyTuple_GET_ITEM(full, 1) == NULL)
        goto error;
    for (Py_ssize_t i = 0; i < n; i++)
        PyTuple_SET_ITEM(full, i + 2, Py_NewRef(PyTuple_GET_ITEM(args, i)));
    r = PyObject_Call(callback, full, NULL);
    if (r == NULL) {
        PyObject *exc, *rr;
        if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)
            || PyErr_ExceptionMatches(PyExc_SystemExit))
            goto error;
        exc = tl_err_get_raised();
        rr = PyObject_CallMethod((PyObject *)self->loop, "_callback_error",
                                 "OOOO", exc, Py_None, callback, full);
        Py_DECREF(exc);
        if (rr == NULL)
            goto error;
        Py_DECREF(rr);
    }
    else
        Py_DECREF(r);
    Py_DECREF(full);
    Py_DECREF(callback);
    Py_DECREF(args);
    return 0;
error:
    Py_XDECREF(full);
    Py_DECREF(callback);
    Py_DECREF(args);
    return -1;
}

/* The pidfd is readable: the child exited. */
static int
pidfd_ready(PyObject *obj)
{
    tl_pidfd_watch *self = (tl_pidfd_watch *)obj;
    int returncode = 255, got;
    if (!self->watching || self->callback == NULL)
        return 0;
    got = pidfd_reap(self, &returncode);
    if (got == 0)
        return 0;
    Py_INCREF(self);            /* unwatching drops the loop's reference */
    pidfd_stop(self);
    if (got < 0) {
        PyObject *r;
        if (errno != ECHILD) {
            PyErr_SetFromErrno(PyExc_OSError);
            Py_DECREF(self);
            return -1;
        }
        /* Reaped by someone else (a waitpid() elsewhere): asyncio reports
         * 255 and says so. */
        returncode = 255;
        r = PyObject_CallMethod((PyObject *)self->loop, "_child_status_lost",
                                "l", self->pid);
        if (r == NULL) {
            Py_DECREF(self);
            return -1;
        }
        Py_DECREF(r);
    }
    got = pidfd_notify(self, returncode);
    Py_DECREF(self);
    return got;
}

/* PidfdWatch(loop, pid, callback, args) */
static PyObject *
pidfd_tp_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    tl_state *st = tl_state_from_type(tp);
    PyObject *loop, *callback, *cargs;
    long pid;
    tl_pidfd_watch *self;
    if (st == NULL)
        return NULL;
    if (kwds != NULL && PyDict_GET_SIZE(kwds) > 0) {
        PyErr_SetString(PyExc_TypeError,
                        "PidfdWatch() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O!lOO!:PidfdWatch", st->LoopType, &loop,
                          &pid, &callback, &PyTuple_Type, &cargs))
        return NULL;
    if (pid <= 0) {
        PyErr_Format(PyExc_ValueError, "invalid pid %ld", pid);
        return NULL;
    }
    self = (tl_pidfd_watch *)tp->tp_alloc(tp, 0);
    if (self == NULL)
        return NULL;
    self->pidfd = -1;
    self->pid = pid;
    self->loop = (tl_loop *)Py_NewRef(loop);
    self->callback = Py_NewRef(callback);
    self->args = Py_NewRef(cargs);
    self->pidfd = pidfd_open_fd(pid);
    if (self->pidfd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        Py_DECREF(self);
        return NULL;
    }
    if (tl_loop_watch(self->loop, self->pidfd, 0, (PyObject *)self,
                      pidfd_ready) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    self->watching = 1;
    return (PyObject *)self;
}

static PyObject *
pidfd_cancel(tl_pidfd_watch *self, PyObject *Py_UNUSED(ignored))
{
    pidfd_stop(self);
    Py_CLEAR(self->callback);
    Py_CLEAR(self->args);
    Py_RETURN_NONE;
}

static int
pidfd_traverse(tl_pidfd_watch *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->loop);
    Py_VISIT(self->callback);
    Py_VISIT(self->args);
    return 0;
}

static int
pidfd_clear(tl_pidfd_watch *self)
{
    Py_CLEAR(self->callback);
    Py_CLEAR(self->args);
    return 0;
}

static void
pidfd_dealloc(tl_pidfd_watch *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    pidfd_clear(self);
    /* The loop only drops its reference when it stops watching (or closes,
     * having forgotten every fd), so there is nothing to unwatch here. */
    self->watching = 0;
    if (self->pidfd >= 0)
        close(self->pidfd);
    Py_CLEAR(self->loop);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *
pidfd_repr(tl_pidfd_watch *self)
{
    return PyUnicode_FromFormat("<PidfdWatch pid=%ld %s>", self->pid,
                                self->watching ? "watching" : "done");
}

static PyObject *
pidfd_get_pid(tl_pidfd_watch *self, void *Py_UNUSED(c))
{
    return PyLong_FromLong(self->pid);
}

static PyObject *
pidfd_get_fd(tl_pidfd_watch *self, void *Py_UNUSED(c))
{
    return PyLong_FromLong(self->pidfd);
}

static PyMethodDef pidfd_methods[] = {
    {"cancel", (PyCFunction)pidfd_cancel, METH_NOARGS,
     "Stop watching and close the pidfd; the callback will not run."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef pidfd_getset[] = {
    {"pid", (getter)pidfd_get_pid, NULL, NULL, NULL},
    {"fd", (getter)pidfd_get_fd, NULL, NULL, NULL},
    {NULL},
};

static PyType_Slot pidfd_slots[] = {
    {Py_tp_new, pidfd_tp_new},
    {Py_tp_dealloc, pidfd_dealloc},
    {Py_tp_traverse, pidfd_traverse},
    {Py_tp_clear, pidfd_clear},
    {Py_tp_repr, pidfd_repr},
    {Py_tp_methods, pidfd_methods},
    {Py_tp_getset, pidfd_getset},
    {Py_tp_doc, "Watches a child process exit through a pidfd."},
    {0, NULL},
};

static PyType_Spec pidfd_spec = {
    "turboloop._core.PidfdWatch", sizeof(tl_pidfd_watch), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, pidfd_slots,
};

int
tl_process_init_type(PyObject *mod, tl_state *st)
{
    return tl_add_type(mod, &pidfd_spec, NULL, &st->PidfdWatchType);
}
