/* loop_fd.c -- the C half of the loop's add_reader(), add_writer(),
 * remove_reader(), remove_writer() and of the _get_reader()/_get_writer()
 * lookups: _add_reader() and the others, which parse their arguments, make
 * the Handle and hand it to the fd table of fdwatch.c.  The public methods
 * are Python (turboloop/_network.py) and call these.
 */
#include "loop.h"

static PyObject *
loop_add_watcher(tl_loop *self, PyObject *const *args, Py_ssize_t nargs,
                 PyObject *kwnames, int writer)
{
    const char *fname = writer ? "add_writer" : "add_reader";
    PyObject *callback, *cargs, *context, *h;
    int fd, r;
    if (nargs < 1) {
        PyErr_Format(PyExc_TypeError, "%s() missing required argument 'fd'",
                     fname);
        return NULL;
    }
    if (loop_check_closed(self) < 0)
        return NULL;
    /* context= is the private API's, which asyncio's own transports use
     * from 3.15 on; the public add_reader()/add_writer() do not pass it. */
    if (tl_loop_parse_callback(self, fname, args, nargs, kwnames, 1, &callback,
                            &cargs, &context) < 0)
        return NULL;
    if (context == Py_None)
        context = NULL;
    h = loop_handle_new(self, self->st->HandleType, callback, cargs, context,
                        0.0);
    if (h == NULL)
        return NULL;
    /* Creating the handle can run Python code (debug tracebacks), and so
     * can fileno(): check the loop again after each. */
    r = loop_check_closed(self) < 0 ? -1 : tl_fd_lookup(self, args[0], &fd);
    if (r == 0)
        /* An int no C int holds: what select.epoll.register() says. */
        PyErr_SetString(PyExc_OverflowError,
                        "Python int too large to convert to C int");
    if (r <= 0 || loop_check_closed(self) < 0
        || tl_fd_add_handle(self, fd, writer, h, args[0]) < 0) {
        Py_DECREF(h);
        return NULL;
    }
    return h;
}

static PyObject *
loop_remove_watcher(tl_loop *self, PyObject *fdobj, int writer)
{
    int fd, r;
    if (self->closed)
        Py_RETURN_FALSE;
    r = tl_fd_lookup(self, fdobj, &fd);
    if (r < 0)
        return NULL;
    if (r == 0 || self->closed)
        Py_RETURN_FALSE;
    r = tl_fd_remove(self, fd, writer);
    if (r < 0)
        return NULL;
    return PyBool_FromLong(r);
}

PyObject *
tl_loop_add_reader(tl_loop *self, PyObject *const *args, size_t nargsf,
                PyObject *kwnames)
{
    return loop_add_watcher(self, args, PyVectorcall_NARGS(nargsf), kwnames, 0);
}

PyObject *
tl_loop_add_writer(tl_loop *self, PyObject *const *args, size_t nargsf,
                PyObject *kwnames)
{
    return loop_add_watcher(self, args, PyVectorcall_NARGS(nargsf), kwnames, 1);
}

PyObject *
tl_loop_remove_reader(tl_loop *self, PyObject *fd)
{
    return loop_remove_watcher(self, fd, 0);
}

PyObject *
tl_loop_remove_writer(tl_loop *self, PyObject *fd)
{
    return loop_remove_watcher(self, fd, 1);
}

static PyObject *
loop_get_watcher(tl_loop *self, PyObject *fdobj, int writer)
{
    int fd;
    int r = tl_fd_lookup(self, fdobj, &fd);
    if (r < 0)
        return NULL;
    if (r == 0)
        Py_RETURN_NONE;
    return tl_fd_get(self, fd, writer);
}

PyObject *
tl_loop_get_reader(tl_loop *self, PyObject *fd)
{
    return loop_get_watcher(self, fd, 0);
}

PyObject *
tl_loop_get_writer(tl_loop *self, PyObject *fd)
{
    return loop_get_watcher(self, fd, 1);
}
