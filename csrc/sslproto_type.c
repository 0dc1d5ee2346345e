/* sslproto_type.c -- the Python side of the C SSLProtocol type: its
 * methods (each the Python face of a function of sslproto.c), the
 * attributes asyncio's SSLProtocol methods read and write, the object's
 * lifecycle, and the set-up of the TLS types and of what they use from the
 * ssl and asyncio modules.
 */
#include "sslproto.h"

#include <math.h>

#define NAME(self, i) SP_OBJ((self)->st, (i))
#define OBJ(o) ((o) != NULL ? (o) : Py_None)

/* ------------------------------------------------------------------ */
/* Methods                                                             */
/* ------------------------------------------------------------------ */

static PyObject *
spt_none(int r)
{
    if (r < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
spt_get_buffer(tl_sslproto *self, PyObject *Py_UNUSED(n))
{
    tl_sslbuf *b = tl_sslproto_buffer(self);
    return b ? Py_NewRef(b->view) : NULL;
}

static PyObject *
spt_buffer_updated(tl_sslproto *self, PyObject *arg)
{
    Py_ssize_t n = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    return spt_none(tl_sslproto_received((PyObject *)self, n));
}

static PyObject *
spt_do_read_py(tl_sslproto *self, PyObject *Py_UNUSED(ignored))
{
    return spt_none(tl_sslproto_do_read(self));
}

static PyObject *
spt_read_copied_py(tl_sslproto *self, PyObject *Py_UNUSED(ignored))
{
    int r;
    Py_INCREF(self);
    r = tl_sslproto_read_copied(self);
    Py_DECREF(self);
    return spt_none(r);
}

static PyObject *
spt_read_buffered_py(tl_sslproto *self, PyObject *Py_UNUSED(ignored))
{
    int r;
    Py_INCREF(self);
    r = tl_sslproto_read_buffered(self);
    Py_DECREF(self);
    return spt_none(r);
}

static PyObject *
spt_do_write_py(tl_sslproto *self, PyObject *Py_UNUSED(ignored))
{
    int r;
    Py_INCREF(self);
    r = tl_sslproto_do_write(self);
    Py_DECREF(self);
    return spt_none(r);
}

static PyObject *
spt_process_outgoing_py(tl_sslproto *self, PyObject *Py_UNUSED(ignored))
{
    int r;
    Py_INCREF(self);
    r = tl_sslproto_process_outgoing(self);
    Py_DECREF(self);
    return spt_none(r);
}

static PyObject *
spt_write_appdata_py(tl_sslproto *self, PyObject *list_of_data)
{
    return spt_none(tl_sslproto_writelines(self, list_of_data));
}

static PyObject *
spt_control_app_writing_py(tl_sslproto *self, PyObject *Py_UNUSED(ignored))
{
    int r;
    Py_INCREF(self);
    r = tl_sslproto_control_app_writing(self);
    Py_DECREF(self);
    return spt_none(r);
}

static PyObject *
spt_control_ssl_reading_py(tl_sslproto *self, PyObject *Py_UNUSED(ignored))
{
    int r;
    Py_INCREF(self);
    r = tl_sslproto_control_ssl_reading(self);
    Py_DECREF(self);
    return spt_none(r);
}

static PyObject *
spt_get_read_buffer_size(tl_sslproto *self, PyObject *Py_UNUSED(ignored))
{
    return PyObject_GetAttr(OBJ(self->incoming), NAME(self, SP_N_PENDING));
}

static PyObject *
spt_get_write_buffer_size(tl_sslproto *self, PyObject *Py_UNUSED(ignored))
{
    Py_ssize_t pending;
    if (tl_sslproto_bio_pending(self, self->outgoing, &pending) < 0)
        return NULL;
    return PyLong_FromSsize_t(pending + self->write_buffer_size);
}

/* Called by the socket transport when its buffer goes over its high-water
 * mark, and under the low one. */
static PyObject *
spt_pause_writing(tl_sslproto *self, PyObject *Py_UNUSED(ignored))
{
    if (self->ssl_writing_paused) {
        PyErr_SetNone(PyExc_AssertionError);
        return NULL;
    }
    self->ssl_writing_paused = 1;
    Py_RETURN_NONE;
}

static PyObject *
spt_resume_writing(tl_sslproto *self, PyObject *Py_UNUSED(ignored))
{
    int r;
    if (!self->ssl_writing_paused) {
        PyErr_SetNone(PyExc_AssertionError);
        return NULL;
    }
    self->ssl_writing_paused = 0;
    Py_INCREF(self);
    r = tl_sslproto_process_outgoing(self);
    Py_DECREF(self);
    return spt_none(r);
}

static PyMethodDef spt_methods[] = {
    {"get_buffer", (PyCFunction)spt_get_buffer, METH_O,
     "The buffer the transport receives TLS records into."},
    {"buffer_updated", (PyCFunction)spt_buffer_updated, METH_O,
     "nbytes of TLS records were received into the buffer."},
    {"_do_read", (PyCFunction)spt_do_read_py, METH_NOARGS, NULL},
    {"_do_read__copied", (PyCFunction)spt_read_copied_py, METH_NOARGS, NULL},
    {"_do_read__buffered", (PyCFunction)spt_read_buffered_py, METH_NOARGS,
     NULL},
    {"_do_write", (PyCFunction)spt_do_write_py, METH_NOARGS, NULL},
    {"_process_outgoing", (PyCFunction)spt_process_outgoing_py, METH_NOARGS,
     NULL},
    {"_write_appdata", (PyCFunction)spt_write_appdata_py, METH_O, NULL},
    {"_control_app_writing", (PyCFunction)spt_control_app_writing_py,
     METH_NOARGS, NULL},
    {"_control_ssl_reading", (PyCFunction)spt_control_ssl_reading_py,
     METH_NOARGS, NULL},
    {"_get_read_buffer_size", (PyCFunction)spt_get_read_buffer_size,
     METH_NOARGS, NULL},
    {"_get_write_buffer_size", (PyCFunction)spt_get_write_buffer_size,
     METH_NOARGS, NULL},
    {"pause_writing", (PyCFunction)spt_pause_writing, METH_NOARGS, NULL},
    {"resume_writing", (PyCFunction)spt_resume_writing, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

/* ------------------------------------------------------------------ */
/* Attributes                                                          */
/* ------------------------------------------------------------------ */

static int
spt_no_delete(PyObject *v)
{
    if (v != NULL)
        return 0;
    PyErr_SetString(PyExc_AttributeError, "cannot delete attribute");
    return -1;
}

static PyObject *
spt_get_state(tl_sslproto *self, void *Py_UNUSED(c))
{
    return Py_NewRef(OBJ(self->state));
}

static int
spt_set_state(tl_sslproto *self, PyObject *v, void *Py_UNUSED(c))
{
    int code = TL_SSL_OTHER;
    if (spt_no_delete(v) < 0)
        return -1;
    for (int i = 0; i < TL_SSL_OTHER; i++)
        if (v == SP_OBJ(self->st, SP_STATE0 + i))
            code = i;
    Py_XSETREF(self->state, Py_NewRef(v));
    self->state_code = code;
    /* The handshake and shutdown code may read and write next (see
     * sp_would_block and sp_process_outgoing_ex in sslproto.c). */
    self->taken_valid = 0;
    self->plain_maybe = 1;
    self->out_clean = 0;
    return 0;
}

static PyObject *
spt_get_sslobj(tl_sslproto *self, void *Py_UNUSED(c))
{
    if (self->sslobj == NULL) {
        PyErr_SetString(PyExc_AttributeError, "_sslobj");
        return NULL;
    }
    return Py_NewRef(self->sslobj);
}

/* The SSL object, and what its read/write/pending are called on. */
static int
spt_set_sslobj(tl_sslproto *self, PyObject *v, void *Py_UNUSED(c))
{
    PyObject *sock = NULL;
    if (spt_no_delete(v) < 0)
        return -1;
    if ((PyObject *)Py_TYPE(v) == SP_OBJ(self->st, SP_SSLOBJECT)) {
        sock = PyObject_GetAttr(v, NAME(self, SP_N_SSLOBJ));
        if (sock == NULL)
            PyErr_Clear();
    }
    if (sock == NULL)
        sock = Py_NewRef(v);
    /* What another SSL object class (sslcontext.sslobject_class) does is
     * not known: every read is made, as asyncio makes it. */
    if (!Py_IS_TYPE(sock, (PyTypeObject *)SP_OBJ(self->st, SP_T_SSLSOCKET)))
        self->frame_lost = 1;
    Py_XSETREF(self->sslobj, Py_NewRef(v));
    Py_XSETREF(self->sslsock, sock);
    self->plain_room = -1;
    self->taken_valid = 0;
    self->plain_maybe = 1;
    self->out_clean = 0;
    return 0;
}

static PyObject *
spt_get_backlog(tl_sslproto *self, void *Py_UNUSED(c))
{
    return Py_NewRef(OBJ(self->backlog));
}

static int
spt_set_backlog(tl_sslproto *self, PyObject *v, void *Py_UNUSED(c))
{
    if (spt_no_delete(v) < 0)
        return -1;
    Py_XSETREF(self->backlog, Py_NewRef(v));
    return 0;
}

static PyObject *
spt_get_limit(tl_sslproto *self, void *c)
{
    return Py_NewRef(OBJ(self->limits[(intptr_t)c]));
}

/* A water mark: kept as given (asyncio keeps whatever number it was
 * given) and as a double to compare buffer sizes with. */
static int
spt_set_limit(tl_sslproto *self, PyObject *v, void *c)
{
    intptr_t i = (intptr_t)c;
    double d;
    if (spt_no_delete(v) < 0)
        return -1;
    d = PyFloat_AsDouble(v);
    if (d == -1.0 && PyErr_Occurred()) {
        /* An int too large for a double is beyond any buffer size. */
        PyObject *zero;
        int neg;
        if (!PyLong_Check(v) || !PyErr_ExceptionMatches(PyExc_OverflowError))
            return -1;
        PyErr_Clear();
        zero = PyLong_FromLong(0);
        neg = zero ? PyObject_RichCompareBool(v, zero, Py_LT) : -1;
        Py_XDECREF(zero);
        if (neg < 0)
            return -1;
        d = neg ? -HUGE_VAL : HUGE_VAL;
    }
    Py_XSETREF(self->limits[i], Py_NewRef(v));
    self->limit_v[i] = d;
    return 0;
}

static PyObject *
spt_get_read_buffer(tl_sslproto *self, void *Py_UNUSED(c))
{
    return Py_NewRef(self->rbuf ? (PyObject *)self->rbuf : Py_None);
}

static int
spt_set_read_buffer(tl_sslproto *self, PyObject *v, void *Py_UNUSED(c))
{
    PyObject *tp = SP_OBJ(self->st, SP_BUFFER_TYPE);
    if (spt_no_delete(v) < 0)
        return -1;
    if (v != Py_None && !PyObject_TypeCheck(v, (PyTypeObject *)tp)) {
        PyErr_Format(PyExc_TypeError, "expected an SSLReadBuffer, not %.200s",
                     Py_TYPE(v)->tp_name);
        return -1;
    }
    if (self->last == self->rbuf)
        self->last = NULL;
    Py_XSETREF(self->rbuf, v == Py_None ? NULL : (tl_sslbuf *)Py_NewRef(v));
    return 0;
}

static PyGetSetDef spt_getset[] = {
    {"_state", (getter)spt_get_state, (setter)spt_set_state, NULL, NULL},
    {"_sslobj", (getter)spt_get_sslobj, (setter)spt_set_sslobj, NULL, NULL},
    {"_write_backlog", (getter)spt_get_backlog, (setter)spt_set_backlog, NULL,
     NULL},
    {"_incoming_high_water", (getter)spt_get_limit, (setter)spt_set_limit, NULL,
     (void *)0},
    {"_incoming_low_water", (getter)spt_get_limit, (setter)spt_set_limit, NULL,
     (void *)1},
    {"_outgoing_high_water", (getter)spt_get_limit, (setter)spt_set_limit, NULL,
     (void *)2},
    {"_outgoing_low_water", (getter)spt_get_limit, (setter)spt_set_limit, NULL,
     (void *)3},
    {"_read_buffer", (getter)spt_get_read_buffer, (setter)spt_set_read_buffer,
     "The loop's SSLReadBuffer.", NULL},
    {NULL},
};

#define SP_MEMBER(name, type, field) \
    {name, type, offsetof(tl_sslproto, field), 0, NULL}

static PyMemberDef spt_members[] = {
    SP_MEMBER("_loop", T_OBJECT, loop),
    SP_MEMBER("_transport", T_OBJECT, transport),
    SP_MEMBER("_app_protocol", T_OBJECT, app_protocol),
    SP_MEMBER("_app_protocol_get_buffer", T_OBJECT_EX, app_get_buffer),
    SP_MEMBER("_app_protocol_buffer_updated", T_OBJECT_EX,
              app_buffer_updated),
    SP_MEMBER("_incoming", T_OBJECT, incoming),
    SP_MEMBER("_outgoing", T_OBJECT, outgoing),
    SP_MEMBER("_write_buffer_size", T_PYSSIZET, write_buffer_size),
    SP_MEMBER("_conn_lost", T_PYSSIZET, conn_lost),
    SP_MEMBER("_app_protocol_is_buffer", T_BOOL, app_is_buffer),
    SP_MEMBER("_ssl_writing_paused", T_BOOL, ssl_writing_paused),
    SP_MEMBER("_app_reading_paused", T_BOOL, app_reading_paused),
    SP_MEMBER("_ssl_reading_paused", T_BOOL, ssl_reading_paused),
    SP_MEMBER("_app_writing_paused", T_BOOL, app_writing_paused),
    {NULL},
};

/* ------------------------------------------------------------------ */
/* Object lifecycle                                                    */
/* ------------------------------------------------------------------ */

/* The fields start as asyncio's __init__ leaves them before it has its
 * arguments; the Python subclass's __init__ does the rest. */
static PyObject *
spt_tp_new(PyTypeObject *tp, PyObject *Py_UNUSED(args),
          PyObject *Py_UNUSED(kwds))
{
    tl_state *st = tl_state_from_type(tp);
    tl_sslproto *self;
    if (st == NULL)
        return NULL;
    self = (tl_sslproto *)tp->tp_alloc(tp, 0);
    if (self == NULL)
        return NULL;
    self->st = st;
    self->state = Py_NewRef(SP_OBJ(st, SP_STATE0 + TL_SSL_UNWRAPPED));
    self->state_code = TL_SSL_UNWRAPPED;
    self->plain_maybe = 1;
    self->plain_room = -1;
    self->backlog = PyList_New(0);
    if (self->backlog == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    for (int i = 0; i < 4; i++) {
        self->limits[i] = PyLong_FromLong(0);
        if (self->limits[i] == NULL) {
            Py_DECREF(self);
            return NULL;
        }
    }
    return (PyObject *)self;
}

static int
spt_traverse(tl_sslproto *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->loop);
    Py_VISIT(self->transport);
    Py_VISIT(self->app_protocol);
    Py_VISIT(self->app_get_buffer);
    Py_VISIT(self->app_buffer_updated);
    Py_VISIT(self->sslobj);
    Py_VISIT(self->sslsock);
    Py_VISIT(self->incoming);
    Py_VISIT(self->outgoing);
    Py_VISIT(self->state);
    Py_VISIT(self->backlog);
    for (int i = 0; i < 4; i++)
        Py_VISIT(self->limits[i]);
    Py_VISIT(self->rbuf);
    Py_VISIT(self->own);
    return 0;
}

static int
spt_clear(tl_sslproto *self)
{
    self->last = NULL;
    Py_CLEAR(self->loop);
    Py_CLEAR(self->transport);
    Py_CLEAR(self->app_protocol);
    Py_CLEAR(self->app_get_buffer);
    Py_CLEAR(self->app_buffer_updated);
    Py_CLEAR(self->sslobj);
    Py_CLEAR(self->sslsock);
    Py_CLEAR(self->incoming);
    Py_CLEAR(self->outgoing);
    Py_CLEAR(self->state);
    Py_CLEAR(self->backlog);
    for (int i = 0; i < 4; i++)
        Py_CLEAR(self->limits[i]);
    Py_CLEAR(self->rbuf);
    Py_CLEAR(self->own);
    Py_CLEAR(self->size_obj);
    return 0;
}

static void
spt_dealloc(tl_sslproto *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    spt_clear(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyType_Slot spt_slots[] = {
    {Py_tp_new, spt_tp_new},
    {Py_tp_dealloc, spt_dealloc},
    {Py_tp_traverse, spt_traverse},
    {Py_tp_clear, spt_clear},
    {Py_tp_methods, spt_methods},
    {Py_tp_getset, spt_getset},
    {Py_tp_members, spt_members},
    {Py_tp_doc, "The C half of turboloop's TLS protocol: its per-record "
                "methods and the state asyncio's SSLProtocol methods use."},
    {0, NULL},
};

static PyType_Spec spt_spec = {
    "turboloop._core.SSLProtocol", sizeof(tl_sslproto), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    spt_slots,
};

/* ------------------------------------------------------------------ */
/* Module functions and set-up                                         */
/* ------------------------------------------------------------------ */

static PyObject *
spt_check_reads(PyObject *module, PyObject *flag)
{
    tl_state *st = PyModule_GetState(module);
    int on = PyObject_IsTrue(flag);
    if (on < 0)
        return NULL;
    Py_XSETREF(st->ssl_obj[SP_CHECKS], on ? Py_NewRef(Py_True) : NULL);
    Py_RETURN_NONE;
}

static PyMethodDef spt_functions[] = {
    {"_ssl_check_reads", spt_check_reads, METH_O,
     "_ssl_check_reads(flag): when true, TLS reads the protocol skips as "
     "empty are made anyway and a skipped read that returns data raises "
     "SystemError (for tests)."},
    {NULL, NULL, 0, NULL},
};

static const char *const spt_names[] = {
    "read", "write", "pending", "_sslobj", "_do_handshake", "_do_flush",
    "_do_shutdown", "_fatal_error", "_call_eof_received", "_start_shutdown",
    "pause_reading", "resume_reading", "_do_read", "_app_transport",
    "is_closing", "warning", "append", "_write_appdata",
    "_is_transport_closing", "_app_protocol_get_buffer",
    "_app_protocol_buffer_updated",
};
_Static_assert(sizeof(spt_names) / sizeof(spt_names[0])
               == SP_M_FATAL - SP_N_READ, "one string per SP_N_ name");

static const char *const spt_states[] = {
    "UNWRAPPED", "DO_HANDSHAKE", "WRAPPED", "FLUSHING", "SHUTDOWN",
};
_Static_assert(sizeof(spt_states) / sizeof(spt_states[0])
               == SP_STATE_LAST - SP_STATE0 + 1, "one name per state");

/* The descriptors sp_call_ssl() and sp_bio_pending() (sslproto.c) use.  Any of them
 * missing (an _ssl unlike CPython's) leaves the type slots NULL, which
 * makes those calls go by name. */
static int
spt_import_descriptors(tl_state *st)
{
    static const struct { int tp, index; const char *name; } want[] = {
        {SP_T_SSLSOCKET, SP_D_READ, "read"},
        {SP_T_SSLSOCKET, SP_D_WRITE, "write"},
        {SP_T_SSLSOCKET, SP_D_PENDING, "pending"},
        {SP_T_MEMORYBIO, SP_D_BIO_READ, "read"},
        {SP_T_MEMORYBIO, SP_D_BIO_WRITE, "write"},
        {SP_T_MEMORYBIO, SP_D_BIO_PENDING, "pending"},
    };
    PyObject *m = PyImport_ImportModule("_ssl");
    if (m == NULL)
        return -1;
    st->ssl_obj[SP_T_SSLSOCKET] = PyObject_GetAttrString(m, "_SSLSocket");
    Py_DECREF(m);
    if (st->ssl_obj[SP_T_SSLSOCKET] == NULL)
        return -1;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        PyObject *d = PyObject_GetAttrString(st->ssl_obj[want[i].tp],
                                             want[i].name);
        if (d == NULL)
            return -1;
        st->ssl_obj[want[i].index] = d;
    }
    if (Py_TYPE(st->ssl_obj[SP_D_BIO_PENDING])->tp_descr_get == NULL) {
        Py_CLEAR(st->ssl_obj[SP_T_MEMORYBIO]);
        Py_CLEAR(st->ssl_obj[SP_T_SSLSOCKET]);
    }
    return 0;
}

/* The ssl module's objects, when it can be imported. */
static int
spt_import_ssl(tl_state *st)
{
    PyObject *ssl = PyImport_ImportModule("ssl"), *want_read, *syscall;
    if (ssl == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_ImportError))
            return -1;
        PyErr_Clear();
        st->ssl_obj[SP_SSLOBJECT] = Py_NewRef(Py_None);
        st->ssl_obj[SP_AGAIN_ERRORS] = PyTuple_New(0);
        return st->ssl_obj[SP_AGAIN_ERRORS] ? 0 : -1;
    }
    st->ssl_obj[SP_SSLOBJECT] = PyObject_GetAttrString(ssl, "SSLObject");
    st->ssl_obj[SP_T_MEMORYBIO] = PyObject_GetAttrString(ssl, "MemoryBIO");
    want_read = PyObject_GetAttrString(ssl, "SSLWantReadError");
    syscall = PyObject_GetAttrString(ssl, "SSLSyscallError");
    Py_DECREF(ssl);
    if (want_read != NULL && syscall != NULL)
        st->ssl_obj[SP_AGAIN_ERRORS] = PyTuple_Pack(2, want_read, syscall);
    Py_XDECREF(want_read);
    Py_XDECREF(syscall);
    if (!st->ssl_obj[SP_SSLOBJECT] || !st->ssl_obj[SP_AGAIN_ERRORS]
        || !st->ssl_obj[SP_T_MEMORYBIO])
        return -1;
    return spt_import_descriptors(st);
}

int
tl_sslproto_init(PyObject *mod, tl_state *st)
{
    PyObject *m, *states, *tp;
    size_t i;
    if (spt_import_ssl(st) < 0)
        return -1;
    m = PyImport_ImportModule("asyncio.sslproto");
    if (m == NULL)
        return -1;
    states = PyObject_GetAttrString(m, "SSLProtocolState");
    Py_DECREF(m);
    if (states == NULL)
        return -1;
    for (i = 0; i < sizeof(spt_states) / sizeof(spt_states[0]); i++) {
        st->ssl_obj[SP_STATE0 + i] = PyObject_GetAttrString(states,
                                                            spt_states[i]);
        if (st->ssl_obj[SP_STATE0 + i] == NULL) {
            Py_DECREF(states);
            return -1;
        }
    }
    Py_DECREF(states);
    m = PyImport_ImportModule("asyncio.log");
    if (m == NULL)
        return -1;
    st->ssl_obj[SP_LOGGER] = PyObject_GetAttrString(m, "logger");
    Py_DECREF(m);
    if (st->ssl_obj[SP_LOGGER] == NULL)
        return -1;
    for (i = 0; i < sizeof(spt_names) / sizeof(spt_names[0]); i++)
        if ((st->ssl_obj[SP_N_READ + i] =
                 PyUnicode_InternFromString(spt_names[i])) == NULL)
            return -1;
    if ((st->ssl_obj[SP_M_FATAL] =
             PyUnicode_FromString("Fatal error on SSL protocol")) == NULL
        || (st->ssl_obj[SP_M_CLOSED] =
                PyUnicode_FromString("SSL connection is closed")) == NULL)
        return -1;
    tp = PyType_FromModuleAndSpec(mod, &spt_spec, NULL);
    if (tp == NULL)
        return -1;
    st->ssl_obj[SP_PROTOCOL_TYPE] = tp;
    if (PyModule_AddObjectRef(mod, "SSLProtocol", tp) < 0)
        return -1;
    if ((st->ssl_obj[SP_D_GET_BUFFER] =
             PyObject_GetAttrString(tp, "get_buffer")) == NULL
        || (st->ssl_obj[SP_D_BUFFER_UPDATED] =
                PyObject_GetAttrString(tp, "buffer_updated")) == NULL)
        return -1;
    if (tl_ssltransport_init_types(mod, st) < 0)
        return -1;
    return PyModule_AddFunctions(mod, spt_functions);
}
