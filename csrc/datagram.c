/* datagram.c -- the per-datagram paths of turboloop's datagram transport.
 *
 * The transport is a Python class (python/turboloop/_network.py) with two
 * bases: DatagramTransport, defined here, and asyncio's own
 * _SelectorDatagramTransport of the running version.  asyncio's code does
 * the setting up, closing, queueing and flow control; this file does what
 * runs once per datagram:
 *
 *   reading  the loop calls dgram_on_readable() straight from its ready
 *            queue (a C watcher, no Handle): one recvfrom() into the loop's
 *            receive buffer, a bytes object of the datagram's size, the
 *            sender's address (the previous sender's object when it is the
 *            same sender), then datagram_received() or error_received(), as
 *            asyncio's _read_ready().
 *   sendto() sends at once from C when nothing is queued, to the address
 *            of the last sender or last destination without parsing it
 *            again; anything else (keywords, empty data, a queue, a lost
 *            connection, an address to check or to resolve) goes to
 *            asyncio's sendto(), which holds the version-specific rules.
 *
 * The state these paths need is kept in C fields that asyncio's Python
 * code reads and writes through member descriptors of the same names
 * (_sock, _sock_fd, _protocol, _address, _buffer, _conn_lost, _loop), which
 * shadow the attributes asyncio's classes would otherwise keep in the
 * instance dict.  So neither path looks up an attribute of the transport,
 * and a protocol set with set_protocol() or a transport closed from a
 * callback is seen at once.
 *
 * The sender's address is built as the socket module builds it (makesockaddr
 * for AF_INET, AF_INET6 and AF_UNIX); sockets of other families are read
 * with socket.recvfrom(). */
#include "tl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

enum {
    DG_MAX_SIZE, DG_RECVFROM, DG_DATAGRAM_RECEIVED, DG_ERROR_RECEIVED,
    DG_FATAL_ERROR, DG_PEERNAME, DG_PY_SENDTO, DG_READ_READY,
    DG_NSTR
};
_Static_assert(DG_NSTR == TL_DGRAM_NSTR, "tl.h sizes dgram_str for these names");

static const char *const dgram_names[TL_DGRAM_NSTR] = {
    "max_size", "recvfrom", "datagram_received", "error_received",
    "_fatal_error", "peername", "_py_sendto", "_read_ready",
};

#define NAME(st, i) ((st)->dgram_str[(i)])

typedef struct {
    PyObject_HEAD
    PyObject *extra;            /* asyncio.BaseTransport._extra; keep first */
    /* asyncio.transports._FlowControlMixin's four slots (the flow control
     * state stays there, in asyncio's hands; _loop is shadowed below). */
    PyObject *flow_slots[4];
    tl_state *st;
    /* What asyncio's code calls self._loop, _sock, ...: see the members. */
    PyObject *loop;
    PyObject *sock;
    PyObject *protocol;
    PyObject *address;
    PyObject *buffer;           /* asyncio's deque of queued (data, addr) */
    Py_ssize_t conn_lost;
    int fd;
    /* Set when reading starts (dgram_watch_reader). */
    int family;                 /* the socket's address family */
    Py_ssize_t max_size;        /* bytes asked of one recvfrom() */
    PyObject *rcontext;         /* datagram_received() runs in it */
    /* The last peer: the address object of the last sender (or of the last
     * destination given to sendto()) and its sockaddr. */
    PyObject *peer;
    socklen_t peer_len;
    struct sockaddr_storage peer_sa;
} tl_dgram;

/* ------------------------------------------------------------------ */
/* Addresses                                                           */
/* ------------------------------------------------------------------ */

/* The socket's address family, looked up once. */
static int
dgram_family(tl_dgram *self)
{
    struct sockaddr_storage sa;
    socklen_t salen = sizeof(sa);
    if (self->family == AF_UNSPEC && self->fd >= 0
        && getsockname(self->fd, (struct sockaddr *)&sa, &salen) == 0)
        self->family = sa.ss_family;
    return self->family;
}

/* The address object socket.recvfrom() would return for sa. */
static PyObject *
dgram_make_addr(const struct sockaddr_storage *sa, socklen_t len)
{
    char host[INET6_ADDRSTRLEN];
    if (len == 0)
        Py_RETURN_NONE;     /* as makesockaddr: no address */
    switch (sa->ss_family) {
    case AF_INET: {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        if (inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host)) == NULL)
            return PyErr_SetFromErrno(PyExc_OSError);
        return Py_BuildValue("(si)", host, (int)ntohs(a->sin_port));
    }
    case AF_INET6: {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        if (inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host)) == NULL)
            return PyErr_SetFromErrno(PyExc_OSError);
        return Py_BuildValue("(siII)", host, (int)ntohs(a->sin6_port),
                             (unsigned int)ntohl(a->sin6_flowinfo),
                             (unsigned int)a->sin6_scope_id);
    }
    case AF_UNIX: {
        const struct sockaddr_un *a = (const struct sockaddr_un *)sa;
        size_t n = len > offsetof(struct sockaddr_un, sun_path)
                   ? len - offsetof(struct sockaddr_un, sun_path) : 0;
        if (TL_HAVE_ABSTRACT_UNIX && n > 0 && a->sun_path[0] == '\0')
            return PyBytes_FromStringAndSize(a->sun_path, (Py_ssize_t)n);
        return PyUnicode_DecodeFSDefaultAndSize(
            a->sun_path, (Py_ssize_t)strnlen(a->sun_path, n));
    }
    default:
        PyErr_SetString(PyExc_OSError, "unexpected address family");
        return NULL;
    }
}

/* The sender's address object: the last one when the sender is the same. */
static PyObject *
dgram_peer_from(tl_dgram *self, const struct sockaddr_storage *sa,
                socklen_t len)
{
    PyObject *addr;
    if (self->peer != NULL && len == self->peer_len
        && memcmp(sa, &self->peer_sa, len) == 0)
        return Py_NewRef(self->peer);
    addr = dgram_make_addr(sa, len);
    if (addr == NULL)
        return NULL;
    if (len <= sizeof(self->peer_sa)) {
        Py_XSETREF(self->peer, Py_NewRef(addr));
        self->peer_len = len;
        memcpy(&self->peer_sa, sa, len);
    }
    return addr;
}

/* 1 if addr is an (exact) str/int tuple equal to the cached peer, which
 * has such items too; comparing them runs no Python code. */
static int
dgram_same_peer(tl_dgram *self, PyObject *addr)
{
    PyObject *peer = self->peer;
    Py_ssize_t n;
    if (peer == NULL || !PyTuple_CheckExact(addr) || !PyTuple_CheckExact(peer))
        return 0;
    n = PyTuple_GET_SIZE(addr);
    if (n != PyTuple_GET_SIZE(peer))
        return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *x = PyTuple_GET_ITEM(addr, i), *y = PyTuple_GET_ITEM(peer, i);
        int eq;
        if (x == y)
            continue;
        if (PyUnicode_CheckExact(x) && PyUnicode_CheckExact(y))
            eq = PyUnicode_Compare(x, y) == 0;
        else if (PyLong_CheckExact(x) && PyLong_CheckExact(y))
            eq = PyObject_RichCompareBool(x, y, Py_EQ) == 1;
        else
            return 0;
        if (!eq) {
            PyErr_Clear();
            return 0;
        }
    }
    return 1;
}

/* Parse a numeric IPv4 or IPv6 address tuple as socket.sendto() would,
 * into sa; 1 done, 0 when it is anything else (a host name, a scope name,
 * an out-of-range number, other types), which the socket module then
 * handles, errors included. */
static int
dgram_parse_numeric(int family, PyObject *addr, struct sockaddr_storage *sa,
                    socklen_t *len)
{
    Py_ssize_t n;
    const char *host;
    long port;
    if (!PyTuple_CheckExact(addr))
        return 0;
    n = PyTuple_GET_SIZE(addr);
    if (n < 2 || n > (family == AF_INET6 ? 4 : 2))
        return 0;
    for (Py_ssize_t i = 1; i < n; i++)
        if (!PyLong_CheckExact(PyTuple_GET_ITEM(addr, i)))
            return 0;
    if (!PyUnicode_CheckExact(PyTuple_GET_ITEM(addr, 0))
        || !PyUnicode_IS_ASCII(PyTuple_GET_ITEM(addr, 0)))
        return 0;
    host = PyUnicode_AsUTF8(PyTuple_GET_ITEM(addr, 0));
    port = PyLong_AsLong(PyTuple_GET_ITEM(addr, 1));
    if (host == NULL || port < 0 || port > 65535) {
        PyErr_Clear();
        return 0;
    }
    memset(sa, 0, sizeof(*sa));
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)sa;
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
            return 0;
        a->sin_family = AF_INET;
        a->sin_port = htons((unsigned short)port);
        *len = sizeof(*a);
        return 1;
    }
    else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)sa;
        unsigned long flowinfo = 0, scope_id = 0;
        if (n > 2) {
            flowinfo = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(addr, 2));
            if (flowinfo > 0xfffff) {       /* the socket module's limit */
                PyErr_Clear();
                return 0;
            }
        }
        if (n > 3) {
            scope_id = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(addr, 3));
            if (scope_id > 0xffffffffUL) {
                PyErr_Clear();
                return 0;
            }
        }
        if (strchr(host, '%') != NULL
            || inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
            return 0;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((unsigned short)port);
        a->sin6_flowinfo = htonl((uint32_t)flowinfo);
        a->sin6_scope_id = (uint32_t)scope_id;
        *len = sizeof(*a);
        return 1;
    }
}

/* ------------------------------------------------------------------ */
/* Reading                                                             */
/* ------------------------------------------------------------------ */

/* transport._protocol.<method>(a[, b]), in the reader's context when enter
 * is set. */
static PyObject *
dgram_call_protocol(tl_dgram *self, int method, PyObject *a, PyObject *b,
                    int enter)
{
    PyObject *protocol = self->protocol, *r, *argv[3];
    if (protocol == NULL) {
        PyErr_SetString(PyExc_AttributeError,
                        "'NoneType' object has no attribute 'datagram_received'");
        return NULL;
    }
    Py_INCREF(protocol);
    if (enter && PyContext_Enter(self->rcontext) < 0) {
        Py_DECREF(protocol);
        return NULL;
    }
    argv[0] = protocol;
    argv[1] = a;
    argv[2] = b;
    r = PyObject_VectorcallMethod(NAME(self->st, method), argv,
                                  (b ? 3 : 2) | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                  NULL);
    if (enter && PyContext_Exit(self->rcontext) < 0)
        Py_CLEAR(r);
    Py_DECREF(protocol);
    return r;
}

static int
dgram_escapes(void)
{
    return PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)
           || PyErr_ExceptionMatches(PyExc_SystemExit);
}

/* A socket call failed with the exception set: asyncio's handling of it,
 * protocol.error_received() for an OSError, _fatal_error() otherwise.
 * 0 done, -1 with an exception to propagate. */
static int
dgram_socket_error(tl_dgram *self, const char *fatal, int enter)
{
    PyObject *exc, *r;
    if (dgram_escapes())
        return -1;
    exc = tl_err_get_raised();
    if (PyErr_GivenExceptionMatches(exc, PyExc_OSError)) {
        r = dgram_call_protocol(self, DG_ERROR_RECEIVED, exc, NULL, enter);
    }
    else {
        PyObject *msg = PyUnicode_FromString(fatal);
        r = msg == NULL ? NULL
            : PyObject_CallMethodObjArgs((PyObject *)self,
                                         NAME(self->st, DG_FATAL_ERROR), exc,
                                         msg, NULL);
        Py_XDECREF(msg);
    }
    Py_DECREF(exc);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* Sockets of other families, or a max_size the loop's buffer cannot take:
 * data, addr = sock.recvfrom(max_size), as asyncio. */
static int
dgram_read_python(tl_dgram *self, int enter)
{
    PyObject *size, *got, *r;
    size = PyLong_FromSsize_t(self->max_size);
    if (size == NULL)
        return -1;
    got = PyObject_CallMethodOneArg(self->sock, NAME(self->st, DG_RECVFROM),
                                    size);
    Py_DECREF(size);
    if (got == NULL) {
        if (PyErr_ExceptionMatches(PyExc_BlockingIOError)
            || PyErr_ExceptionMatches(PyExc_InterruptedError)) {
            PyErr_Clear();
            return 0;
        }
        return dgram_socket_error(self, "Fatal read error on datagram transport",
                                  enter);
    }
    if (!PyTuple_CheckExact(got) || PyTuple_GET_SIZE(got) != 2) {
        PyObject *seq = PySequence_Tuple(got);
        Py_DECREF(got);
        if (seq == NULL)
            return -1;
        if (PyTuple_GET_SIZE(seq) != 2) {
            PyErr_Format(PyExc_ValueError,
                         "expected 2 values to unpack (got %zd)",
                         PyTuple_GET_SIZE(seq));
            Py_DECREF(seq);
            return -1;
        }
        got = seq;
    }
    r = dgram_call_protocol(self, DG_DATAGRAM_RECEIVED, PyTuple_GET_ITEM(got, 0),
                            PyTuple_GET_ITEM(got, 1), enter);
    Py_DECREF(got);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* asyncio's _read_ready(): one datagram.  0, or -1 with the exception that
 * leaves the callback (as in asyncio, one raised by datagram_received() or
 * error_received()). */
static int
dgram_read(tl_dgram *self, int enter)
{
    struct sockaddr_storage sa;
    socklen_t salen = sizeof(sa);
    tl_loop *loop;
    PyObject *data, *addr, *r;
    ssize_t n;
    if (self->conn_lost)
        return 0;
    if (self->sock == NULL || self->loop == NULL
        || !TL_LOOP_CHECK(self->st, self->loop) || self->max_size < 0
        || self->max_size > TL_RBUF_SIZE
        || (self->family != AF_INET && self->family != AF_INET6
            && self->family != AF_UNIX)) {
        if (self->sock == NULL) {
            PyErr_SetString(PyExc_AttributeError,
                            "'NoneType' object has no attribute 'recvfrom'");
            return dgram_socket_error(
                self, "Fatal read error on datagram transport", enter);
        }
        return dgram_read_python(self, enter);
    }
    loop = (tl_loop *)self->loop;
    if (loop->rbuf == NULL) {
        loop->rbuf = malloc(TL_RBUF_SIZE);
        if (loop->rbuf == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    do {
        n = recvfrom(self->fd, loop->rbuf, (size_t)self->max_size, 0,
                     (struct sockaddr *)&sa, &salen);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        PyErr_SetFromErrno(PyExc_OSError);
        return dgram_socket_error(self, "Fatal read error on datagram transport",
                                  enter);
    }
    data = PyBytes_FromStringAndSize(loop->rbuf, n);
    if (data == NULL)
        return -1;
    addr = dgram_peer_from(self, &sa, salen);
    if (addr == NULL) {
        Py_DECREF(data);
        return -1;
    }
    r = dgram_call_protocol(self, DG_DATAGRAM_RECEIVED, data, addr, enter);
    Py_DECREF(data);
    Py_DECREF(addr);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* The loop's C watcher.  What leaves the reader goes to the exception
 * handler as a failing _read_ready callback, as under asyncio. */
static int
dgram_on_readable(PyObject *obj)
{
    tl_dgram *self = (tl_dgram *)obj;
    PyObject *exc, *cb, *r, *argv[5];
    if (dgram_read(self, 1) == 0)
        return 0;
    if (dgram_escapes() || self->loop == NULL
        || !TL_LOOP_CHECK(self->st, self->loop))
        return -1;
    exc = tl_err_get_raised();
    cb = PyObject_GetAttr(obj, NAME(self->st, DG_READ_READY));
    if (cb == NULL) {
        Py_DECREF(exc);
        return -1;
    }
    argv[0] = self->loop;
    argv[1] = exc;
    argv[2] = Py_None;
    argv[3] = cb;
    argv[4] = Py_None;
    r = PyObject_VectorcallMethod(self->st->str_callback_error, argv,
                                  5 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(cb);
    Py_DECREF(exc);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static PyObject *
dgram_read_ready_py(tl_dgram *self, PyObject *Py_UNUSED(ignored))
{
    if (dgram_read(self, 0) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* _watch_reader(context): let the loop call us when a datagram arrives;
 * datagram_received() runs in context, or in a copy of the current context
 * when it is None (what a Handle made by loop._add_reader() would do). */
static PyObject *
dgram_watch_reader(tl_dgram *self, PyObject *context)
{
    PyObject *size;
    Py_ssize_t max_size;
    if (self->loop == NULL || !TL_LOOP_CHECK(self->st, self->loop)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "the transport is not attached to a turboloop loop");
        return NULL;
    }
    if (context != Py_None && !PyContext_CheckExact(context)) {
        PyErr_Format(PyExc_TypeError,
                     "context must be a contextvars.Context, not %.200s",
                     Py_TYPE(context)->tp_name);
        return NULL;
    }
    size = PyObject_GetAttr((PyObject *)self, NAME(self->st, DG_MAX_SIZE));
    if (size == NULL)
        return NULL;
    max_size = PyLong_AsSsize_t(size);
    Py_DECREF(size);
    if (max_size == -1 && PyErr_Occurred())
        return NULL;
    self->max_size = max_size;
    dgram_family(self);
    Py_XSETREF(self->rcontext, context == Py_None ? PyContext_CopyCurrent()
                                                  : Py_NewRef(context));
    if (self->rcontext == NULL)
        return NULL;
    if (tl_loop_watch((tl_loop *)self->loop, self->fd, 0, (PyObject *)self,
                      dgram_on_readable) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ */
/* Sending                                                             */
/* ------------------------------------------------------------------ */

/* asyncio's sendto() for the cases the fast path leaves alone. */
static PyObject *
dgram_sendto_slow(tl_dgram *self, PyObject *const *args, size_t nargsf,
                  PyObject *kwnames)
{
    PyObject *fn = PyObject_GetAttr((PyObject *)self,
                                    NAME(self->st, DG_PY_SENDTO)), *r;
    if (fn == NULL)
        return NULL;
    r = PyObject_Vectorcall(fn, args, nargsf, kwnames);
    Py_DECREF(fn);
    return r;
}

/* The truth of an address as asyncio tests it (None, a tuple, a str);
 * -1 for anything else, which asyncio's code then handles. */
static int
dgram_addr_truth(PyObject *addr)
{
    if (addr == NULL || addr == Py_None)
        return 0;
    if (PyTuple_CheckExact(addr))
        return PyTuple_GET_SIZE(addr) > 0;
    if (PyUnicode_CheckExact(addr))
        return PyUnicode_GET_LENGTH(addr) > 0;
    return -1;
}

/* 1 if the socket is connected (asyncio: self._extra['peername'] is true),
 * 0 if not, -1 when asyncio's code should decide (no such key). */
static int
dgram_connected(tl_dgram *self)
{
    PyObject *peername;
    if (self->extra == NULL || !PyDict_CheckExact(self->extra))
        return -1;
    peername = PyDict_GetItemWithError(self->extra,
                                       NAME(self->st, DG_PEERNAME));
    if (peername == NULL) {
        PyErr_Clear();
        return -1;
    }
    return dgram_addr_truth(peername);
}

static PyObject *
dgram_sendto(tl_dgram *self, PyObject *const *args, size_t nargsf,
             PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf), qlen;
    PyObject *data, *addr;
    struct sockaddr_storage parsed;
    const struct sockaddr *to = NULL;
    socklen_t tolen = 0;
    Py_buffer view;
    ssize_t sent;
    int connected, family, t;

    if (kwnames != NULL || nargs < 1 || nargs > 2 || self->conn_lost
        || self->sock == NULL)
        return dgram_sendto_slow(self, args, nargsf, kwnames);
    data = args[0];
    addr = nargs == 2 ? args[1] : Py_None;
    if (!PyBytes_Check(data) && !PyByteArray_Check(data)
        && !PyMemoryView_Check(data))
        return dgram_sendto_slow(self, args, nargsf, kwnames);
    /* Something queued: it goes behind it, asyncio's code queues it. */
    if (self->buffer != NULL) {
        qlen = PyObject_Size(self->buffer);
        if (qlen != 0) {
            if (qlen < 0)
                PyErr_Clear();
            return dgram_sendto_slow(self, args, nargsf, kwnames);
        }
    }
    if ((t = dgram_addr_truth(self->address)) != 0) {
        /* A remote address was given: only it (or None) may be named. */
        if (t < 0)
            return dgram_sendto_slow(self, args, nargsf, kwnames);
        if (addr != Py_None && addr != self->address)
            return dgram_sendto_slow(self, args, nargsf, kwnames);
        addr = self->address;
    }
    connected = dgram_connected(self);
    if (connected < 0)
        return dgram_sendto_slow(self, args, nargsf, kwnames);
    if (!connected) {
        if (addr == Py_None)
            return dgram_sendto_slow(self, args, nargsf, kwnames);
        if (addr == self->peer || dgram_same_peer(self, addr)) {
            to = (const struct sockaddr *)&self->peer_sa;
            tolen = self->peer_len;
        }
        else if (((family = dgram_family(self)) == AF_INET
                  || family == AF_INET6)
                 && dgram_parse_numeric(family, addr, &parsed, &tolen)) {
            /* Remember it: the next sendto() to it skips the parsing. */
            Py_XSETREF(self->peer, Py_NewRef(addr));
            self->peer_len = tolen;
            memcpy(&self->peer_sa, &parsed, tolen);
            to = (const struct sockaddr *)&self->peer_sa;
        }
        else
            return dgram_sendto_slow(self, args, nargsf, kwnames);
    }
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        return dgram_sendto_slow(self, args, nargsf, kwnames);
    }
    if (view.len == 0) {
        /* Dropped by 3.11's sendto(), sent by later ones. */
        PyBuffer_Release(&view);
        return dgram_sendto_slow(self, args, nargsf, kwnames);
    }
    do {
        if (to == NULL)
            sent = send(self->fd, view.buf, (size_t)view.len, 0);
        else
            sent = sendto(self->fd, view.buf, (size_t)view.len, 0, to, tolen);
    } while (sent < 0 && errno == EINTR);
    PyBuffer_Release(&view);
    if (sent >= 0)
        Py_RETURN_NONE;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        /* asyncio's sendto() tries again, then queues it and waits for the
         * socket to be writable. */
        return dgram_sendto_slow(self, args, nargsf, kwnames);
    PyErr_SetFromErrno(PyExc_OSError);
    if (dgram_socket_error(self, "Fatal write error on datagram transport",
                           0) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ */
/* Object lifecycle                                                    */
/* ------------------------------------------------------------------ */

static PyObject *
dgram_tp_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    tl_state *st = tl_state_from_type(tp);
    tl_dgram *self;
    (void)args;
    (void)kwds;
    if (st == NULL)
        return NULL;
    self = (tl_dgram *)tp->tp_alloc(tp, 0);
    if (self == NULL)
        return NULL;
    self->st = st;
    self->fd = -1;
    self->family = AF_UNSPEC;
    self->max_size = TL_RBUF_SIZE;
    return (PyObject *)self;
}

static int
dgram_traverse(tl_dgram *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->extra);
    for (int k = 0; k < 4; k++)
        Py_VISIT(self->flow_slots[k]);
    Py_VISIT(self->loop);
    Py_VISIT(self->sock);
    Py_VISIT(self->protocol);
    Py_VISIT(self->address);
    Py_VISIT(self->buffer);
    Py_VISIT(self->rcontext);
    Py_VISIT(self->peer);
    return 0;
}

static int
dgram_clear(tl_dgram *self)
{
    Py_CLEAR(self->extra);
    for (int k = 0; k < 4; k++)
        Py_CLEAR(self->flow_slots[k]);
    Py_CLEAR(self->loop);
    Py_CLEAR(self->sock);
    Py_CLEAR(self->protocol);
    Py_CLEAR(self->address);
    Py_CLEAR(self->buffer);
    Py_CLEAR(self->rcontext);
    Py_CLEAR(self->peer);
    return 0;
}

static void
dgram_dealloc(tl_dgram *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    dgram_clear(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef dgram_methods[] = {
    {"sendto", (PyCFunction)(void (*)(void))dgram_sendto,
     METH_FASTCALL | METH_KEYWORDS,
     "sendto($self, data, addr=None)\n--\n\n"
     "Send data to addr (the remote address if the transport has one)."},
    {"_read_ready", (PyCFunction)dgram_read_ready_py, METH_NOARGS,
     "Receive one datagram and hand it to the protocol."},
    {"_watch_reader", (PyCFunction)dgram_watch_reader, METH_O,
     "Start calling _read_ready() in the given context when a datagram "
     "arrives."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef dgram_members[] = {
    {"_loop", T_OBJECT, offsetof(tl_dgram, loop), 0, NULL},
    {"_sock", T_OBJECT, offsetof(tl_dgram, sock), 0, NULL},
    {"_protocol", T_OBJECT, offsetof(tl_dgram, protocol), 0, NULL},
    {"_address", T_OBJECT, offsetof(tl_dgram, address), 0, NULL},
    {"_buffer", T_OBJECT, offsetof(tl_dgram, buffer), 0, NULL},
    {"_conn_lost", T_PYSSIZET, offsetof(tl_dgram, conn_lost), 0, NULL},
    {"_sock_fd", T_INT, offsetof(tl_dgram, fd), 0, NULL},
    {NULL},
};

static PyType_Slot dgram_slots[] = {
    {Py_tp_new, dgram_tp_new},
    {Py_tp_dealloc, dgram_dealloc},
    {Py_tp_traverse, dgram_traverse},
    {Py_tp_clear, dgram_clear},
    {Py_tp_methods, dgram_methods},
    {Py_tp_members, dgram_members},
    {Py_tp_doc, "The per-datagram paths of turboloop's datagram transport; "
                "a base of the transport class, next to asyncio's "
                "_SelectorDatagramTransport."},
    {0, NULL},
};

static PyType_Spec dgram_spec = {
    "turboloop._core.DatagramTransport", sizeof(tl_dgram), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    dgram_slots,
};

int
tl_datagram_init(PyObject *mod, tl_state *st)
{
    PyObject *mod_tr, *base;
    int r;
    for (int i = 0; i < TL_DGRAM_NSTR; i++) {
        st->dgram_str[i] = PyUnicode_InternFromString(dgram_names[i]);
        if (st->dgram_str[i] == NULL)
            return -1;
    }
    mod_tr = PyImport_ImportModule("asyncio.transports");
    if (mod_tr == NULL)
        return -1;
    base = PyObject_GetAttrString(mod_tr, "_FlowControlMixin");
    Py_DECREF(mod_tr);
    if (base == NULL)
        return -1;
    /* The layout extends asyncio's, as SocketTransport's does: _extra
     * first, then the mixin's four slots. */
    if (((PyTypeObject *)base)->tp_basicsize
        != (Py_ssize_t)(offsetof(tl_dgram, flow_slots)
                        + sizeof(((tl_dgram *)0)->flow_slots))
        || offsetof(tl_dgram, flow_slots)
           != offsetof(tl_dgram, extra) + sizeof(PyObject *)) {
        Py_DECREF(base);
        PyErr_SetString(PyExc_ImportError,
                        "asyncio.transports._FlowControlMixin has an unexpected layout");
        return -1;
    }
    r = tl_add_type(mod, &dgram_spec, base, &st->DatagramTransportType);
    Py_DECREF(base);
    return r;
}
