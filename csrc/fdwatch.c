/* fdwatch.c -- the loop's table of file descriptor watchers.
 *
 * One slot per fd holds what watches it for reading and for writing: a
 * Handle (add_reader() and friends) or a C watcher (tl_loop_watch(): an
 * object and the C function the loop calls when the fd is ready).  The rules
 * are those of asyncio's selector loop over selectors.EpollSelector, so that
 * programs see the same results:
 *
 *  a) An fd is resolved as selectors' _fileobj_lookup() does: an int is
 *     itself, anything else is int(obj.fileno()), and when that fails with
 *     ValueError (a closed socket's fileno() is -1) the slot registered with
 *     that very object is found by searching the table.  So the registration
 *     of a socket closed in the meantime can still be removed, and it must
 *     be: the slot would otherwise outlive the socket.  Each slot keeps the
 *     object it was first registered with (NULL for an int) until it is
 *     empty again.
 *  b) The poller sees a change first, the table after: an fd the poller
 *     refuses (closed, out of range, a regular file) leaves no trace in the
 *     table, which grows only to hold an fd the kernel accepted.  An int
 *     that cannot be an fd at all (> INT_MAX) is asyncio's OverflowError at
 *     registration and "not registered" everywhere else.
 *  c) When the poller refuses a change to an existing registration (its fd
 *     was closed, or closed and reused by another file), the whole slot is
 *     forgotten and the error raised, as the selector's modify() does; the
 *     handles in it are not cancelled, and nothing it held can fire for the
 *     file that now has its number.
 *  d) From 3.13 on, select.epoll warns "bool is used as a file descriptor"
 *     when it is handed True or False, and the selector hands it the object
 *     the slot was first registered with: a slot registered with a bool
 *     warns at every change of interest.
 */
#include "tl.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Resolving fds                                                       */
/* ------------------------------------------------------------------ */

/* selectors._fileobj_to_fd(obj): 1 with *fd set, 0 for an fd number too
 * large for a C int, -1 with an error (ValueError for a negative number or
 * an object without a usable fileno()). */
static int
fdwatch_to_fd(PyObject *obj, int *fd)
{
    PyObject *num;
    long long v;
    int overflow;
    if (PyLong_Check(obj))
        num = Py_NewRef(obj);
    else {
        PyObject *r = PyObject_CallMethod(obj, "fileno", NULL);
        num = r ? PyNumber_Long(r) : NULL;
        Py_XDECREF(r);
        if (num == NULL) {
            if (PyErr_ExceptionMatches(PyExc_AttributeError)
                || PyErr_ExceptionMatches(PyExc_TypeError)
                || PyErr_ExceptionMatches(PyExc_ValueError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_ValueError, "Invalid file object: %R",
                             obj);
            }
            return -1;
        }
    }
    v = PyLong_AsLongLongAndOverflow(num, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        Py_DECREF(num);
        return -1;
    }
    if (overflow < 0 || (overflow == 0 && v < 0)) {
        PyErr_Format(PyExc_ValueError, "Invalid file descriptor: %S", num);
        Py_DECREF(num);
        return -1;
    }
    Py_DECREF(num);
    if (overflow > 0 || v > INT_MAX)
        return 0;
    *fd = (int)v;
    return 1;
}

int
tl_fd_lookup(tl_loop *loop, PyObject *obj, int *fd)
{
    int r = fdwatch_to_fd(obj, fd);
    if (r >= 0 || !PyErr_ExceptionMatches(PyExc_ValueError))
        return r;
    /* Rule a: the slot this very object registered, if any. */
    for (int i = 0; i < loop->nfds; i++) {
        if (loop->fds[i].fileobj == obj) {
            PyErr_Clear();
            *fd = i;
            return 1;
        }
    }
    return -1;
}

/* ------------------------------------------------------------------ */
/* The table                                                           */
/* ------------------------------------------------------------------ */

static int
fdwatch_grow(tl_loop *loop, int fd)
{
    /* Powers of two from 64; fd <= INT_MAX, so n fits a size_t. */
    size_t n = loop->nfds ? (size_t)loop->nfds : 64;
    tl_fdwatch *nw;
    while (n <= (size_t)fd)
        n *= 2;
    if (n > (size_t)INT_MAX)
        n = (size_t)INT_MAX;
    if (n > SIZE_MAX / sizeof(*nw)) {
        PyErr_NoMemory();
        return -1;
    }
    nw = realloc(loop->fds, n * sizeof(*nw));
    if (nw == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memset(nw + loop->nfds, 0, (n - (size_t)loop->nfds) * sizeof(*nw));
    loop->fds = nw;
    loop->nfds = (int)n;
    return 0;
}

/* Rule d, before a change of interest of a slot whose key is a bool. */
static int
fdwatch_warn_bool(int isbool)
{
#if PY_VERSION_HEX >= 0x030D0000
    if (isbool)
        return PyErr_WarnEx(PyExc_RuntimeWarning,
                            "bool is used as a file descriptor", 1);
#else
    (void)isbool;
#endif
    return 0;
}

static int
fdwatch_oserror(int err)
{
    errno = err;
    PyErr_SetFromErrno(PyExc_OSError);
    return -1;
}

/* Rule c: forget everything in fd's slot without telling the poller (which
 * has just refused it) or cancelling the handles; their references are
 * released last, when the slot is consistent. */
static void
fdwatch_drop_slot(tl_loop *loop, int fd)
{
    tl_fdwatch *w = &loop->fds[fd];
    PyObject *reader = w->reader, *writer = w->writer, *fileobj = w->fileobj;
    unsigned rgen = w->rgen, wgen = w->wgen;
    memset(w, 0, sizeof(*w));
    w->rgen = rgen + 1;
    w->wgen = wgen + 1;
    Py_XDECREF(reader);
    Py_XDECREF(writer);
    Py_XDECREF(fileobj);
}

/* Put obj (a Handle, or a C watcher when fn is set) in fd's slot for one
 * direction.  fileobj is what the registration was made with (kept when the
 * slot was empty, unless it is an int).  On success the slot holds a new
 * reference to obj and the previous occupant is handed back in *old and
 * *oldfn, for the caller to cancel or release.  On failure nothing changed,
 * except under rule c. */
static int
fdwatch_set(tl_loop *loop, int fd, int writer, PyObject *obj, tl_io_fn fn,
            PyObject *fileobj, PyObject **old, tl_io_fn *oldfn)
{
    tl_fdwatch *w = fd < loop->nfds ? &loop->fds[fd] : NULL;
    unsigned oldmask = w ? w->mask : 0;
    unsigned want = oldmask | (writer ? TL_POLL_WRITE : TL_POLL_READ);
    int isbool = oldmask ? w->boolfd
                         : (fileobj != NULL && PyBool_Check(fileobj));
    int err;

    *old = NULL;
    *oldfn = NULL;
    if (want != oldmask && isbool) {
        if (fdwatch_warn_bool(isbool) < 0) {
            if (oldmask != 0 && fd < loop->nfds)
                fdwatch_drop_slot(loop, fd);
            return -1;
        }
        /* The warning ran Python code (filters, showwarning), which may
         * have closed the loop or changed the table: look again. */
        if (loop->closed) {
            PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
            return -1;
        }
        w = fd < loop->nfds ? &loop->fds[fd] : NULL;
        oldmask = w ? w->mask : 0;
        want = oldmask | (writer ? TL_POLL_WRITE : TL_POLL_READ);
    }
    err = tl_poller_modify(loop->poller, fd, oldmask, want);
    if (err != 0) {
        if (oldmask != 0)
            fdwatch_drop_slot(loop, fd);
        return fdwatch_oserror(err);
    }
    if (w == NULL) {
        if (fdwatch_grow(loop, fd) < 0) {
            (void)tl_poller_modify(loop->poller, fd, want, 0);
            return -1;
        }
        w = &loop->fds[fd];
    }
    if (oldmask == 0) {
        if (fileobj != NULL && !PyLong_Check(fileobj))
            Py_XSETREF(w->fileobj, Py_NewRef(fileobj));
        w->boolfd = (unsigned char)isbool;
    }
    w->mask = want;
    if (writer) {
        *old = w->writer;
        *oldfn = w->wfn;
        w->writer = Py_NewRef(obj);
        w->wfn = fn;
        w->wgen++;
    }
    else {
        *old = w->reader;
        *oldfn = w->rfn;
        w->reader = Py_NewRef(obj);
        w->rfn = fn;
        w->rgen++;
    }
    return 0;
}

/* Take one direction's watcher out of fd's slot into *old / *oldfn (NULL if
 * there was none) and tell the poller.  -1 with the error when the poller
 * refused the remaining interest (rule c: the slot is gone, *old is still
 * handed back); a removal that leaves the fd unwatched cannot fail. */
static int
fdwatch_take(tl_loop *loop, int fd, int writer, PyObject **old,
             tl_io_fn *oldfn)
{
    unsigned bit = writer ? TL_POLL_WRITE : TL_POLL_READ, want;
    PyObject *fileobj = NULL;
    tl_fdwatch *w;
    int err;

    *old = NULL;
    *oldfn = NULL;
    if (fd < 0 || fd >= loop->nfds)
        return 0;
    w = &loop->fds[fd];
    if ((writer ? w->writer : w->reader) == NULL)
        return 0;
    if (w->boolfd && (w->mask & bit)) {
        if (fdwatch_warn_bool(1) < 0) {
            /* As the selector: the registration is gone, the watcher not
             * cancelled, the error raised. */
            if (fd < loop->nfds)
                fdwatch_drop_slot(loop, fd);
            return -1;
        }
        /* The warning ran Python code (see fdwatch_set()): look again. */
        if (fd >= loop->nfds)
            return 0;
        w = &loop->fds[fd];
        if ((writer ? w->writer : w->reader) == NULL)
            return 0;
    }
    if (writer) {
        *old = w->writer;
        *oldfn = w->wfn;
        w->writer = NULL;
        w->wfn = NULL;
        w->wgen++;
    }
    else {
        *old = w->reader;
        *oldfn = w->rfn;
        w->reader = NULL;
        w->rfn = NULL;
        w->rgen++;
    }
    want = w->mask & ~bit;
    /* After close() the poller is gone and the mask means nothing. */
    err = loop->poller ? tl_poller_modify(loop->poller, fd, w->mask, want) : 0;
    if (err != 0) {
        fdwatch_drop_slot(loop, fd);
        return fdwatch_oserror(err);
    }
    w->mask = want;
    if (want == 0) {
        fileobj = w->fileobj;
        w->fileobj = NULL;
    }
    Py_XDECREF(fileobj);
    return 0;
}

/* Drop a watcher taken out of its slot: a Handle is cancelled, a C watcher
 * simply released. */
static int
fdwatch_cancel(PyObject *old, tl_io_fn fn)
{
    PyObject *r;
    if (old == NULL)
        return 0;
    if (fn != NULL) {
        Py_DECREF(old);
        return 0;
    }
    r = PyObject_CallMethod(old, "cancel", NULL);
    Py_DECREF(old);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Entry points                                                        */
/* ------------------------------------------------------------------ */

int
tl_fd_add_handle(tl_loop *loop, int fd, int writer, PyObject *handle,
                 PyObject *fileobj)
{
    PyObject *old;
    tl_io_fn oldfn;
    if (fdwatch_set(loop, fd, writer, handle, NULL, fileobj, &old,
                    &oldfn) < 0)
        return -1;
    return fdwatch_cancel(old, oldfn);
}

int
tl_fd_remove(tl_loop *loop, int fd, int writer)
{
    PyObject *old;
    tl_io_fn oldfn;
    if (fdwatch_take(loop, fd, writer, &old, &oldfn) < 0) {
        /* As the selector's modify() failing inside asyncio's
         * _remove_reader(): the handle is not cancelled. */
        Py_XDECREF(old);
        return -1;
    }
    if (old == NULL)
        return 0;
    if (fdwatch_cancel(old, oldfn) < 0)
        return -1;
    /* asyncio's True means "a Handle was there"; a C watcher counts. */
    return 1;
}

int
tl_loop_watch(tl_loop *loop, int fd, int writer, PyObject *obj, tl_io_fn fn)
{
    PyObject *old;
    tl_io_fn oldfn;
    if (loop->closed) {
        PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        return -1;
    }
    if (fd < 0) {
        PyErr_Format(PyExc_ValueError, "Invalid file descriptor: %d", fd);
        return -1;
    }
    if (fd < loop->nfds
        && (writer ? loop->fds[fd].writer : loop->fds[fd].reader) == obj)
        return 0;
    if (fdwatch_set(loop, fd, writer, obj, fn, NULL, &old, &oldfn) < 0)
        return -1;
    return fdwatch_cancel(old, oldfn);
}

void
tl_loop_unwatch(tl_loop *loop, int fd, int writer, PyObject *obj)
{
    PyObject *old;
    tl_io_fn oldfn;
    if (fd < 0 || fd >= loop->nfds
        || (writer ? loop->fds[fd].writer : loop->fds[fd].reader) != obj)
        return;
    /* A refused change (the fd was closed under us) has already dropped
     * the slot; there is nobody to tell. */
    if (fdwatch_take(loop, fd, writer, &old, &oldfn) < 0)
        PyErr_Clear();
    Py_XDECREF(old);
}

PyObject *
tl_fd_get(tl_loop *loop, int fd, int writer)
{
    PyObject *h = NULL;
    if (fd >= 0 && fd < loop->nfds)
        h = writer ? loop->fds[fd].writer : loop->fds[fd].reader;
    return Py_NewRef(h ? h : Py_None);
}
