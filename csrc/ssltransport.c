/* ssltransport.c -- the transport a TLS connection hands the application,
 * and the loop's TLS read buffer.
 *
 * SSLTransport is the C half of turboloop._sslproto._SSLProtocolTransport,
 * which subclasses it together with the running Python's
 * asyncio.sslproto._SSLProtocolTransport: write(), writelines() and
 * is_closing() are here, the rest (close, abort, flow control, extra info,
 * the unclosed-transport warning) is asyncio's.  _ssl_protocol and _closed,
 * which asyncio's methods use, are fields of this type.
 *
 * SSLReadBuffer is the memory TLS records are received into and decrypted
 * data is collected in; see sslproto.h.
 */
#include "sslproto.h"

/* ------------------------------------------------------------------ */
/* SSLReadBuffer                                                       */
/* ------------------------------------------------------------------ */

#define SB_DEFAULT_SIZE (256 * 1024)

static int
sb_getbuffer(tl_sslbuf *self, Py_buffer *view, int flags)
{
    return PyBuffer_FillInfo(view, (PyObject *)self, self->win, self->win_len,
                             0, flags);
}

static PyObject *
sb_tp_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"size", NULL};
    Py_ssize_t size = SB_DEFAULT_SIZE;
    tl_sslbuf *self;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|n:SSLReadBuffer", kwlist,
                                     &size))
        return NULL;
    if (size <= 0) {
        PyErr_SetString(PyExc_ValueError, "size must be positive");
        return NULL;
    }
    self = (tl_sslbuf *)tp->tp_alloc(tp, 0);
    if (self == NULL)
        return NULL;
    self->mem = PyMem_Malloc((size_t)size);
    if (self->mem == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    self->size = size;
    self->win = self->mem;
    self->win_len = size;
    self->view = PyMemoryView_FromObject((PyObject *)self);
    self->size_obj = PyLong_FromSsize_t(size);
    if (self->view == NULL || self->size_obj == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

tl_sslbuf *
tl_sslbuf_new(tl_state *st, Py_ssize_t size)
{
    PyObject *n = PyLong_FromSsize_t(size), *r;
    if (n == NULL)
        return NULL;
    r = PyObject_CallOneArg(SP_OBJ(st, SP_BUFFER_TYPE), n);
    Py_DECREF(n);
    return (tl_sslbuf *)r;
}

static int
sb_traverse(tl_sslbuf *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->view);
    return 0;
}

static int
sb_clear(tl_sslbuf *self)
{
    Py_CLEAR(self->view);
    Py_CLEAR(self->size_obj);
    return 0;
}

static void
sb_dealloc(tl_sslbuf *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    sb_clear(self);
    PyMem_Free(self->mem);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static Py_ssize_t
sb_length(tl_sslbuf *self)
{
    return self->size;
}

static PyMemberDef sb_members[] = {
    {"view", T_OBJECT, offsetof(tl_sslbuf, view), READONLY,
     "A memoryview of the whole buffer."},
    {"busy", T_INT, offsetof(tl_sslbuf, busy), READONLY,
     "Whether a read is collecting decrypted data in it."},
    {NULL},
};

static PyType_Slot sb_slots[] = {
    {Py_tp_new, sb_tp_new},
    {Py_tp_dealloc, sb_dealloc},
    {Py_tp_traverse, sb_traverse},
    {Py_tp_clear, sb_clear},
    {Py_tp_members, sb_members},
    {Py_bf_getbuffer, sb_getbuffer},
    {Py_sq_length, sb_length},
    {Py_tp_doc, "SSLReadBuffer(size=262144): the memory a loop's TLS "
                "connections receive records and collect decrypted data in."},
    {0, NULL},
};

static PyType_Spec sb_spec = {
    "turboloop._core.SSLReadBuffer", sizeof(tl_sslbuf), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    sb_slots,
};

/* ------------------------------------------------------------------ */
/* SSLTransport                                                        */
/* ------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *extra;            /* asyncio.BaseTransport._extra; keep first */
    PyObject *flow_slots[4];    /* _FlowControlMixin's slots (_loop, ...) */
    PyObject *ssl_protocol;     /* _ssl_protocol */
    tl_state *st;
    char closed;                /* _closed */
} tl_ssltransport;

#define OBJ(o) ((o) != NULL ? (o) : Py_None)

/* Only allocation: asyncio's __init__ (inherited by the Python subclass)
 * sets the fields. */
static PyObject *
st_tp_new(PyTypeObject *tp, PyObject *Py_UNUSED(args),
          PyObject *Py_UNUSED(kwds))
{
    tl_state *st = tl_state_from_type(tp);
    tl_ssltransport *self;
    if (st == NULL)
        return NULL;
    self = (tl_ssltransport *)tp->tp_alloc(tp, 0);
    if (self != NULL)
        self->st = st;
    return (PyObject *)self;
}

static int
st_is_ours(tl_ssltransport *self, PyObject *proto)
{
    return PyObject_TypeCheck(
        proto, (PyTypeObject *)SP_OBJ(self->st, SP_PROTOCOL_TYPE));
}

/* obj.<name>(arg) (no argument when arg is NULL); name an SP_N_ index. */
static PyObject *
st_call(tl_ssltransport *self, PyObject *obj, int name, PyObject *arg)
{
    PyObject *args[2] = {obj, arg};
    return PyObject_VectorcallMethod(
        SP_OBJ(self->st, name), args,
        (arg ? 2 : 1) | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

static PyObject *
st_write(tl_ssltransport *self, PyObject *data)
{
    PyObject *proto, *one, *r;
    int t;
    if (!PyBytes_Check(data) && !PyByteArray_Check(data)
        && !PyMemoryView_Check(data)) {
        PyObject *name = PyType_GetName(Py_TYPE(data));
        if (name != NULL) {
            PyErr_Format(PyExc_TypeError,
                         "data: expecting a bytes-like instance, got %U", name);
            Py_DECREF(name);
        }
        return NULL;
    }
    t = PyBytes_CheckExact(data) ? PyBytes_GET_SIZE(data) != 0
                                 : PyObject_IsTrue(data);
    if (t <= 0)
        return t < 0 ? NULL : Py_NewRef(Py_None);
    proto = Py_NewRef(OBJ(self->ssl_protocol));
    if (st_is_ours(self, proto)) {
        t = tl_sslproto_write((tl_sslproto *)proto, data);
        Py_DECREF(proto);
        if (t < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    one = PyTuple_Pack(1, data);
    r = one ? st_call(self, proto, SP_N_WRITE_APPDATA, one) : NULL;
    Py_XDECREF(one);
    Py_DECREF(proto);
    return r;
}

static PyObject *
st_writelines(tl_ssltransport *self, PyObject *list_of_data)
{
    PyObject *proto = Py_NewRef(OBJ(self->ssl_protocol)), *r;
    if (st_is_ours(self, proto)) {
        int t = tl_sslproto_writelines((tl_sslproto *)proto, list_of_data);
        Py_DECREF(proto);
        if (t < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    r = st_call(self, proto, SP_N_WRITE_APPDATA, list_of_data);
    Py_DECREF(proto);
    return r;
}

/* self._closed or self._ssl_protocol._is_transport_closing() */
static PyObject *
st_is_closing(tl_ssltransport *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *proto, *r;
    if (self->closed)
        Py_RETURN_TRUE;
    proto = Py_NewRef(OBJ(self->ssl_protocol));
    if (st_is_ours(self, proto)) {
        PyObject *tr = ((tl_sslproto *)proto)->transport;
        if (tr == NULL || tr == Py_None)
            r = Py_NewRef(Py_False);
        else if (Py_IS_TYPE(tr, self->st->SocketTransportType))
            r = PyBool_FromLong(tl_transport_is_closing(tr));
        else {
            Py_INCREF(tr);
            r = st_call(self, tr, SP_N_IS_CLOSING, NULL);
            Py_DECREF(tr);
        }
    }
    else
        r = st_call(self, proto, SP_N_IS_TRANSPORT_CLOSING, NULL);
    Py_DECREF(proto);
    return r;
}

static int
st_traverse(tl_ssltransport *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->extra);
    for (int k = 0; k < 4; k++)
        Py_VISIT(self->flow_slots[k]);
    Py_VISIT(self->ssl_protocol);
    return 0;
}

static int
st_clear(tl_ssltransport *self)
{
    Py_CLEAR(self->extra);
    for (int k = 0; k < 4; k++)
        Py_CLEAR(self->flow_slots[k]);
    Py_CLEAR(self->ssl_protocol);
    return 0;
}

static void
st_dealloc(tl_ssltransport *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    st_clear(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef st_methods[] = {
    {"write", (PyCFunction)st_write, METH_O,
     "Write bytes; they are encrypted and sent without blocking."},
    {"writelines", (PyCFunction)st_writelines, METH_O,
     "Write an iterable of bytes-like objects."},
    {"is_closing", (PyCFunction)st_is_closing, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef st_members[] = {
    {"_ssl_protocol", T_OBJECT, offsetof(tl_ssltransport, ssl_protocol), 0,
     NULL},
    {"_closed", T_BOOL, offsetof(tl_ssltransport, closed), 0, NULL},
    {NULL},
};

static PyType_Slot st_slots[] = {
    {Py_tp_new, st_tp_new},
    {Py_tp_dealloc, st_dealloc},
    {Py_tp_traverse, st_traverse},
    {Py_tp_clear, st_clear},
    {Py_tp_methods, st_methods},
    {Py_tp_members, st_members},
    {Py_tp_doc, "The C half of the transport of a TLS connection."},
    {0, NULL},
};

static PyType_Spec st_spec = {
    "turboloop._core.SSLTransport", sizeof(tl_ssltransport), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    st_slots,
};

int
tl_ssltransport_init_types(PyObject *mod, tl_state *st)
{
    PyObject *m, *base, *tp;
    tp = PyType_FromModuleAndSpec(mod, &sb_spec, NULL);
    if (tp == NULL)
        return -1;
    st->ssl_obj[SP_BUFFER_TYPE] = tp;
    if (PyModule_AddObjectRef(mod, "SSLReadBuffer", tp) < 0)
        return -1;
    m = PyImport_ImportModule("asyncio.transports");
    if (m == NULL)
        return -1;
    base = PyObject_GetAttrString(m, "_FlowControlMixin");
    Py_DECREF(m);
    if (base == NULL)
        return -1;
    /* The layout extends asyncio's, as SocketTransport's does. */
    if (((PyTypeObject *)base)->tp_basicsize
            != (Py_ssize_t)offsetof(tl_ssltransport, ssl_protocol)
        || offsetof(tl_ssltransport, flow_slots)
           != offsetof(tl_ssltransport, extra) + sizeof(PyObject *)) {
        Py_DECREF(base);
        PyErr_SetString(PyExc_ImportError,
                        "asyncio.transports._FlowControlMixin has an "
                        "unexpected layout");
        return -1;
    }
    tp = PyType_FromModuleAndSpec(mod, &st_spec, base);
    Py_DECREF(base);
    if (tp == NULL)
        return -1;
    st->ssl_obj[SP_TRANSPORT_TYPE] = tp;
    return PyModule_AddObjectRef(mod, "SSLTransport", tp);
}
