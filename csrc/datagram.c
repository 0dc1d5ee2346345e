/* datagram.c -- the per-datagram paths of turboloop's datagram transport.
 *
 * The transport is asyncio's _SelectorDatagramTransport, subclassed in
 * python/turboloop/_network.py: setting up, closing, buffering and flow
 * control stay asyncio's code for the running version.  What runs once per
 * datagram is here, as functions the subclass plugs in:
 *
 *   _datagram_read_ready(transport)  the reader callback, in place of the
 *       bound method transport._read_ready: one recvfrom(), then
 *       datagram_received() or error_received(), as asyncio's _read_ready.
 *   _datagram_sendto                 the transport's sendto() method: the
 *       common case (bytes-like data, nothing buffered, connection not lost)
 *       sends at once; anything else goes to asyncio's sendto() (the
 *       subclass's _py_sendto), which has the version-specific rules.
 *
 * Both look the transport's attributes up on every call, as asyncio's code
 * does, so a protocol swapped by set_protocol() or a transport closed from a
 * callback is seen at once. */
#include "tl.h"

enum {
    DG_CONN_LOST, DG_SOCK, DG_MAX_SIZE, DG_RECVFROM, DG_PROTOCOL,
    DG_DATAGRAM_RECEIVED, DG_ERROR_RECEIVED, DG_FATAL_ERROR, DG_BUFFER,
    DG_ADDRESS, DG_EXTRA, DG_PEERNAME, DG_SENDTO, DG_PY_SENDTO,
    DG_NSTR
};
_Static_assert(DG_NSTR == TL_DGRAM_NSTR, "tl.h sizes dgram_str for these names");

static const char *const dgram_names[TL_DGRAM_NSTR] = {
    "_conn_lost", "_sock", "max_size", "recvfrom", "_protocol",
    "datagram_received", "error_received", "_fatal_error", "_buffer",
    "_address", "_extra", "peername", "sendto", "_py_sendto",
};

#define NAME(st, i) ((st)->dgram_str[(i)])

/* 1 if transport.<name> is true, 0 if false, -1 on error. */
static int
dgram_attr_true(PyObject *self, PyObject *name)
{
    PyObject *v = PyObject_GetAttr(self, name);
    if (v == NULL)
        return -1;
    return tl_truth_steal(v);
}

/* transport._protocol.<method>(args...) */
static PyObject *
dgram_call_protocol(tl_state *st, PyObject *self, int method, PyObject *a,
                    PyObject *b)
{
    PyObject *protocol, *r, *argv[3];
    protocol = PyObject_GetAttr(self, NAME(st, DG_PROTOCOL));
    if (protocol == NULL)
        return NULL;
    argv[0] = protocol;
    argv[1] = a;
    argv[2] = b;
    r = PyObject_VectorcallMethod(NAME(st, method), argv,
                                  (b ? 3 : 2) | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                  NULL);
    Py_DECREF(protocol);
    return r;
}

/* The socket call failed with the exception set: asyncio's handling of it.
 * Returns the result to give back (None), or NULL with an exception. */
static PyObject *
dgram_socket_error(tl_state *st, PyObject *self, const char *fatal)
{
    PyObject *exc, *r;
    if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)
        || PyErr_ExceptionMatches(PyExc_SystemExit))
        return NULL;
    exc = tl_err_get_raised();
    if (PyErr_GivenExceptionMatches(exc, PyExc_OSError)) {
        r = dgram_call_protocol(st, self, DG_ERROR_RECEIVED, exc, NULL);
    }
    else {
        PyObject *msg = PyUnicode_FromString(fatal);
        r = msg == NULL ? NULL
                        : PyObject_CallMethodObjArgs(self, NAME(st, DG_FATAL_ERROR),
                                                     exc, msg, NULL);
        Py_XDECREF(msg);
    }
    Py_DECREF(exc);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE;
}

static int
dgram_would_block(void)
{
    if (PyErr_ExceptionMatches(PyExc_BlockingIOError)
        || PyErr_ExceptionMatches(PyExc_InterruptedError)) {
        PyErr_Clear();
        return 1;
    }
    return 0;
}

static PyObject *
dgram_read_ready(PyObject *module, PyObject *self)
{
    tl_state *st = PyModule_GetState(module);
    PyObject *sock, *size, *got, *r;
    int lost = dgram_attr_true(self, NAME(st, DG_CONN_LOST));
    if (lost != 0)
        return lost < 0 ? NULL : Py_NewRef(Py_None);
    sock = PyObject_GetAttr(self, NAME(st, DG_SOCK));
    if (sock == NULL)
        return NULL;
    size = PyObject_GetAttr(self, NAME(st, DG_MAX_SIZE));
    if (size == NULL) {
        Py_DECREF(sock);
        return NULL;
    }
    got = PyObject_CallMethodOneArg(sock, NAME(st, DG_RECVFROM), size);
    Py_DECREF(size);
    Py_DECREF(sock);
    if (got == NULL) {
        if (dgram_would_block())
            Py_RETURN_NONE;
        return dgram_socket_error(st, self,
                                  "Fatal read error on datagram transport");
    }
    if (!PyTuple_CheckExact(got) || PyTuple_GET_SIZE(got) != 2) {
        /* Not socket.recvfrom(): unpack as the Python code would. */
        PyObject *seq = PySequence_Tuple(got);
        Py_DECREF(got);
        if (seq == NULL)
            return NULL;
        if (PyTuple_GET_SIZE(seq) != 2) {
            PyErr_Format(PyExc_ValueError,
                         "expected 2 values to unpack (got %zd)",
                         PyTuple_GET_SIZE(seq));
            Py_DECREF(seq);
            return NULL;
        }
        got = seq;
    }
    r = dgram_call_protocol(st, self, DG_DATAGRAM_RECEIVED,
                            PyTuple_GET_ITEM(got, 0), PyTuple_GET_ITEM(got, 1));
    Py_DECREF(got);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE;
}

/* asyncio's sendto() for the cases the fast path leaves alone. */
static PyObject *
dgram_sendto_slow(tl_state *st, PyObject *const *args, size_t nargsf,
                  PyObject *kwnames)
{
    /* args[0] is the transport: call self._py_sendto(*args[1:], **kw). */
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *fn = PyObject_GetAttr(args[0], NAME(st, DG_PY_SENDTO)), *r;
    if (fn == NULL)
        return NULL;
    r = PyObject_Vectorcall(fn, args + 1, (size_t)(nargs - 1), kwnames);
    Py_DECREF(fn);
    return r;
}

static PyObject *
dgram_sendto(PyObject *module, PyObject *const *args, size_t nargsf,
             PyObject *kwnames)
{
    tl_state *st = PyModule_GetState(module);
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *self, *data, *addr, *address = NULL, *extra, *peername, *sock,
             *r;
    Py_ssize_t len;
    int t, connected;

    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "sendto() needs the transport");
        return NULL;
    }
    if (kwnames != NULL || nargs < 2 || nargs > 3)
        return dgram_sendto_slow(st, args, nargsf, kwnames);
    self = args[0];
    data = args[1];
    addr = nargs == 3 ? args[2] : Py_None;
    if (!PyBytes_CheckExact(data) && !PyByteArray_CheckExact(data)
        && !PyMemoryView_Check(data))
        return dgram_sendto_slow(st, args, nargsf, kwnames);
    len = PyObject_Size(data);
    if (len < 0)
        return NULL;
    if (len == 0)               /* dropped before 3.12, sent from 3.12 */
        return dgram_sendto_slow(st, args, nargsf, kwnames);
    if ((t = dgram_attr_true(self, NAME(st, DG_CONN_LOST))) != 0) {
        if (t < 0)
            return NULL;
        return dgram_sendto_slow(st, args, nargsf, kwnames);
    }
    if ((t = dgram_attr_true(self, NAME(st, DG_BUFFER))) != 0) {
        if (t < 0)
            return NULL;
        return dgram_sendto_slow(st, args, nargsf, kwnames);
    }
    address = PyObject_GetAttr(self, NAME(st, DG_ADDRESS));
    if (address == NULL)
        return NULL;
    t = PyObject_IsTrue(address);
    if (t < 0) {
        Py_DECREF(address);
        return NULL;
    }
    if (t) {
        if (addr != Py_None) {
            /* The address check and its error are asyncio's. */
            Py_DECREF(address);
            return dgram_sendto_slow(st, args, nargsf, kwnames);
        }
        addr = address;
    }
    extra = PyObject_GetAttr(self, NAME(st, DG_EXTRA));
    if (extra == NULL) {
        Py_DECREF(address);
        return NULL;
    }
    peername = PyObject_GetItem(extra, NAME(st, DG_PEERNAME));
    Py_DECREF(extra);
    if (peername == NULL) {
        Py_DECREF(address);
        return NULL;
    }
    connected = tl_truth_steal(peername);
    if (connected < 0) {
        Py_DECREF(address);
        return NULL;
    }
    sock = PyObject_GetAttr(self, NAME(st, DG_SOCK));
    if (sock == NULL) {
        Py_DECREF(address);
        return NULL;
    }
    if (connected)
        r = PyObject_CallMethodOneArg(sock, st->str_send, data);
    else
        r = PyObject_CallMethodObjArgs(sock, NAME(st, DG_SENDTO), data, addr,
                                       NULL);
    Py_DECREF(sock);
    Py_DECREF(address);
    if (r != NULL) {
        Py_DECREF(r);
        Py_RETURN_NONE;
    }
    if (dgram_would_block())
        /* asyncio's sendto() queues it and waits for the socket. */
        return dgram_sendto_slow(st, args, nargsf, kwnames);
    return dgram_socket_error(st, self,
                              "Fatal write error on datagram transport");
}

static PyMethodDef dgram_read_ready_def = {
    "_datagram_read_ready", (PyCFunction)dgram_read_ready, METH_O,
    "The reader callback of turboloop's datagram transport.",
};

static PyMethodDef dgram_sendto_def = {
    "sendto", (PyCFunction)(void (*)(void))dgram_sendto,
    METH_FASTCALL | METH_KEYWORDS,
    "sendto(data, addr=None)\n--\n\n"
    "Send data to addr (the remote address if the transport has one).",
};

int
tl_datagram_init(PyObject *mod, tl_state *st)
{
    PyObject *fn, *meth;
    int r;
    for (int i = 0; i < TL_DGRAM_NSTR; i++) {
        st->dgram_str[i] = PyUnicode_InternFromString(dgram_names[i]);
        if (st->dgram_str[i] == NULL)
            return -1;
    }
    fn = PyCFunction_NewEx(&dgram_read_ready_def, mod, NULL);
    if (fn == NULL)
        return -1;
    r = PyModule_AddObjectRef(mod, "_datagram_read_ready", fn);
    Py_DECREF(fn);
    if (r < 0)
        return -1;
    fn = PyCFunction_NewEx(&dgram_sendto_def, mod, NULL);
    if (fn == NULL)
        return -1;
    /* An instancemethod binds to the transport like a Python function. */
    meth = PyInstanceMethod_New(fn);
    Py_DECREF(fn);
    if (meth == NULL)
        return -1;
    r = PyModule_AddObjectRef(mod, "_datagram_sendto", meth);
    Py_DECREF(meth);
    return r;
}
