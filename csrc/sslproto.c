/* sslproto.c -- TLS over a stream transport, with the per-record work in C.
 *
 * turboloop._sslproto.SSLProtocol subclasses the C type _core.SSLProtocol
 * (sslproto_type.c) together with the running Python's
 * asyncio.sslproto.SSLProtocol.  What runs per read and per write is here:
 * get_buffer and buffer_updated (as C functions the socket transport calls
 * directly), _do_read and its halves _do_read__copied and
 * _do_read__buffered, _do_write, _process_outgoing, _write_appdata,
 * _control_app_writing and _control_ssl_reading, each doing what asyncio's
 * method of that name does.  What runs once per connection is inherited
 * from asyncio: the handshake, the shutdown and their timeouts,
 * connection_made, connection_lost, eof_received, _fatal_error,
 * _get_extra_info, _set_state.  The two halves share their state through
 * the C type's members and getsets, which are the attributes asyncio's
 * code reads and writes (_state, _transport, _sslobj, ...), so either half
 * sees what the other does.
 *
 * Where this differs from asyncio's code, the difference cannot be seen
 * (but for one fix, see sp_read_buffered):
 *
 * - SSLObject.read(), write() and pending() are called on the _ssl object
 *   under the SSLObject (its _sslobj), as SSLObject's own methods do, and
 *   the methods of the _ssl objects through the C functions behind them.
 * - Decrypted data is read into a bytes object of the record's size (of
 *   the most data the record can hold, where that is known), or
 *   into the loop's read buffer (sslproto.h) and copied out once, where
 *   asyncio reads into a new 256 KiB bytes object and shrinks it.
 * - A read that can only raise SSLWantReadError is not made (see "Record
 *   accounting" below).  asyncio's read loops end with that exception every
 *   time; _ssl builds and formats it for each, which is most of the cost of
 *   reading a small record.
 * - What the SSL object writes is not asked for when it is known that
 *   there is nothing (see sp_process_outgoing_ex).
 *
 * Any call into Python (the application's protocol, the transport, a
 * logger) can run arbitrary code, close the connection or replace the
 * objects held here; code after such a call reads the fields again.
 */
#include "sslproto.h"

#define SP_READ_MAX (256 * 1024)     /* asyncio's SSLProtocol.max_size */
#define SP_LOST_WRITES_LOG 5         /* LOG_THRESHOLD_FOR_CONNLOST_WRITES */
/* The largest record body TLS allows (TLSCiphertext, 2^14 + 2048). */
#define SP_RECORD_MAX (16384 + 2048)
/* sp_read_into() and sp_write_ssl(): the call raised one of asyncio's
 * SSLAgainErrors, now cleared. */
#define SP_RETRY (-2)

#define NAME(self, i) SP_OBJ((self)->st, (i))
#define OBJ(o) ((o) != NULL ? (o) : Py_None)

static int sp_do_read(tl_sslproto *self);
static int sp_do_write(tl_sslproto *self);
static int sp_process_outgoing(tl_sslproto *self);

/* ------------------------------------------------------------------ */
/* Calls                                                               */
/* ------------------------------------------------------------------ */

/* obj.<name>() and obj.<name>(arg). */
static PyObject *
sp_call0(PyObject *obj, PyObject *name)
{
    PyObject *args[1] = {obj};
    return PyObject_VectorcallMethod(name, args,
                                     1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

static PyObject *
sp_call1(PyObject *obj, PyObject *name, PyObject *arg)
{
    PyObject *args[2] = {obj, arg};
    return PyObject_VectorcallMethod(name, args,
                                     2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

typedef PyObject *(*sp_fastcall)(PyObject *, PyObject *const *, Py_ssize_t);

/* The C function behind d, a method descriptor of one of the _ssl types,
 * when it takes its arguments as flags says (METH_O, METH_VARARGS, ...);
 * else NULL. */
static PyMethodDef *
sp_method(PyObject *d, int flags)
{
    PyMethodDef *m;
    if (!Py_IS_TYPE(d, &PyMethodDescr_Type))
        return NULL;
    m = ((PyMethodDescrObject *)d)->d_method;
    return m->ml_flags == flags ? m : NULL;
}

/* obj.<name>(args[1:]), args[0] being obj: when obj is exactly of the type
 * at index tp (the _ssl objects), through the method descriptor at index
 * descr, whose C function is called directly for the calling conventions
 * the _ssl methods use (that is what calling the descriptor does, after
 * checking obj's type: no attribute lookup, no bound method); else by
 * name. */
static PyObject *
sp_call_ssl(tl_sslproto *self, int tp, int descr, int name,
            PyObject *const *args, Py_ssize_t nargs)
{
    if (Py_IS_TYPE(args[0], (PyTypeObject *)SP_OBJ(self->st, tp))) {
        PyObject *d = SP_OBJ(self->st, descr);
        PyMethodDef *m;
        if (nargs == 2 && (m = sp_method(d, METH_O)) != NULL)
            return m->ml_meth(args[0], args[1]);
        if ((m = sp_method(d, METH_FASTCALL)) != NULL)
            return ((sp_fastcall)(void (*)(void))m->ml_meth)(
                args[0], args + 1, nargs - 1);
        return PyObject_Vectorcall(d, args, (size_t)nargs, NULL);
    }
    return PyObject_VectorcallMethod(SP_OBJ(self->st, name), args,
                                     (size_t)nargs, NULL);
}

/* The same, discarding the result: 0, or -1 with an exception set. */
static int
sp_call0_void(PyObject *obj, PyObject *name)
{
    PyObject *r = sp_call0(obj, name);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* fn(args...) while exc is the exception being handled (sys.exception()),
 * as it is inside asyncio's `except` blocks: _fatal_error() logs with
 * exc_info=True. */
static PyObject *
sp_call_handling(PyObject *exc, PyObject *fn, PyObject *const *args,
                 Py_ssize_t nargs)
{
    PyObject *prev = PyErr_GetHandledException(), *r;
    PyErr_SetHandledException(exc);
    r = PyObject_Vectorcall(fn, args, (size_t)nargs, NULL);
    PyErr_SetHandledException(prev);
    Py_XDECREF(prev);
    return r;
}

/* asyncio's `except Exception as ex: self._fatal_error(ex, message)` for
 * the exception set.  Anything that is not an Exception (KeyboardInterrupt,
 * SystemExit, CancelledError) propagates, as it does there.  0 when the
 * exception was handled. */
static int
sp_fatal_catch(tl_sslproto *self, PyObject *message)
{
    PyObject *exc, *fn, *r, *args[2];
    if (!PyErr_ExceptionMatches(PyExc_Exception))
        return -1;
    exc = tl_err_get_raised();
    fn = PyObject_GetAttr((PyObject *)self, NAME(self, SP_N_FATAL_ERROR));
    if (fn == NULL) {
        Py_DECREF(exc);
        return -1;
    }
    args[0] = exc;
    args[1] = message;
    r = sp_call_handling(exc, fn, args, 2);
    Py_DECREF(fn);
    Py_DECREF(exc);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* The AttributeError asyncio gets for an attribute never set (the member
 * raises it); -1. */
static int
sp_missing(tl_sslproto *self, PyObject *name)
{
    PyObject *v = PyObject_GetAttr((PyObject *)self, name);
    if (v != NULL) {
        Py_DECREF(v);
        PyErr_SetObject(PyExc_AttributeError, name);
    }
    return -1;
}

/* bio.pending, as a number (through the getset for a MemoryBIO). */
static int
sp_bio_pending(tl_sslproto *self, PyObject *bio, Py_ssize_t *out)
{
    PyObject *v;
    bio = OBJ(bio);
    if (Py_IS_TYPE(bio, (PyTypeObject *)SP_OBJ(self->st, SP_T_MEMORYBIO))) {
        PyObject *d = SP_OBJ(self->st, SP_D_BIO_PENDING);
        v = Py_TYPE(d)->tp_descr_get(d, bio, (PyObject *)Py_TYPE(bio));
    }
    else
        v = PyObject_GetAttr(bio, NAME(self, SP_N_PENDING));
    if (v == NULL)
        return -1;
    *out = PyLong_AsSsize_t(v);
    Py_DECREF(v);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* Record accounting                                                   */
/*
 * OpenSSL takes TLS records out of a memory BIO one at a time: with
 * read-ahead off (the ssl module never turns it on) SSL_read() takes a
 * record's 5-byte header, then exactly its body, and decrypts it; the
 * bytes of a record that has not fully arrived are moved into OpenSSL's own
 * buffer and SSL_read() fails with SSL_ERROR_WANT_READ.  So a read can
 * only raise SSLWantReadError when no decrypted byte is pending
 * (SSLObject.pending() is 0) and OpenSSL has taken every complete record
 * written into incoming.  The protocol counts the bytes it writes into
 * incoming (fed), follows the record headers among them to know where the
 * last complete record ends (complete_end), and compares that with what
 * OpenSSL has taken (fed - incoming.pending).
 *
 * Bytes that are not TLS 1.0-1.3 records (an SSLv2-style hello, garbage)
 * turn the accounting off for the connection, and so do an SSL object of
 * another class than ssl.SSLObject (see SSLContext.sslobject_class) and a
 * read that returns end of stream (after close_notify, reads return b''
 * instead of raising): every read is then made, as asyncio makes it.
 *
 * _core._ssl_check_reads(True) makes each skipped read happen anyway and
 * raise SystemError unless it raises SSLWantReadError; the tests run so.
 */
/* ------------------------------------------------------------------ */

static void
sp_account(tl_sslproto *self, const unsigned char *p, Py_ssize_t n)
{
    while (n > 0 && !self->frame_lost) {
        if (self->body_left == 0 && self->hdr_have == 0 && n >= 5) {
            /* A whole header at once (the usual case): the record is
             * checked as below, and taken whole when it is all here. */
            unsigned len = (unsigned)p[3] << 8 | p[4];
            if (p[0] < 20 || p[0] > 24 || p[1] != 3 || len > SP_RECORD_MAX) {
                self->rec_start = self->fed;
                self->frame_lost = 1;
                break;
            }
            if ((Py_ssize_t)len <= n - 5) {
                self->last_start = self->fed;
                self->fed += 5 + (unsigned long long)len;
                self->complete_end = self->fed;
                p += 5 + len;
                n -= 5 + (Py_ssize_t)len;
                continue;
            }
            memcpy(self->hdr, p, 4);
            self->hdr_have = 4;
            self->fed += 4;
            p += 4;
            n -= 4;
        }
        if (self->body_left > 0) {
            Py_ssize_t take = n < self->body_left ? n : self->body_left;
            self->body_left -= take;
            self->fed += (unsigned long long)take;
            p += take;
            n -= take;
            if (self->body_left == 0) {
                self->complete_end = self->fed;
                self->last_start = self->rec_start;
            }
            continue;
        }
        self->hdr[self->hdr_have++] = *p++;
        self->fed++;
        n--;
        if (self->hdr_have == 5) {
            /* content type 20-24 (change_cipher_spec .. heartbeat),
             * version 3.x, a length TLS allows */
            unsigned len = (unsigned)self->hdr[3] << 8 | self->hdr[4];
            self->hdr_have = 0;
            self->rec_start = self->fed - 5;
            if (self->hdr[0] < 20 || self->hdr[0] > 24 || self->hdr[1] != 3
                || len > SP_RECORD_MAX)
                self->frame_lost = 1;
            else if ((self->body_left = len) == 0) {
                self->complete_end = self->fed;
                self->last_start = self->rec_start;
            }
        }
    }
    self->fed += (unsigned long long)n;
}

/* 1 if a read now can only raise SSLWantReadError, 0 if it must be made,
 * -1 on error.
 *
 * Asking costs a call each (SSLObject.pending(), MemoryBIO.pending), so
 * the answers are kept while they hold: decrypted bytes can only be pending
 * after a read that filled its buffer (a read returns what is left of one
 * record, or as much as fits), and what OpenSSL has taken (taken) only
 * grows, by reads.  So taken is a lower bound at any time, exact until the
 * next read; one MemoryBIO.pending per read loop is the usual cost.  The
 * reads the handshake and shutdown code makes (do_handshake(), unwrap())
 * happen under a state change, which makes taken stale (see _state). */
static int
sp_would_block(tl_sslproto *self)
{
    Py_ssize_t n;
    PyObject *r;
    if (self->frame_lost || self->eof_seen)
        return 0;
    if (self->plain_maybe) {
        PyObject *sock = OBJ(self->sslsock);
        r = sp_call_ssl(self, SP_T_SSLSOCKET, SP_D_PENDING, SP_N_PENDING,
                        &sock, 1);
        if (r == NULL)
            return -1;
        n = PyLong_AsSsize_t(r);
        Py_DECREF(r);
        if (n == -1 && PyErr_Occurred())
            return -1;
        if (n > 0)
            return 0;
        self->plain_maybe = 0;
    }
    if (self->complete_end <= self->taken)
        return 1;
    if (self->taken_valid)
        return 0;   /* a complete record OpenSSL has not taken */
    if (sp_bio_pending(self, self->incoming, &n) < 0)
        return -1;
    self->taken = self->fed - (unsigned long long)n;
    self->taken_valid = 1;
    return self->complete_end <= self->taken;
}

/* ------------------------------------------------------------------ */
/* SSLObject calls                                                     */
/* ------------------------------------------------------------------ */

/* Write p[0:n] into incoming (through b's window), and account for it. */
static int
sp_feed(tl_sslproto *self, tl_sslbuf *b, char *p, Py_ssize_t n)
{
    PyObject *r, *incoming = Py_NewRef(OBJ(self->incoming));
    PyObject *args[2] = {incoming, (PyObject *)b};
    b->win = p;
    b->win_len = n;
    r = sp_call_ssl(self, SP_T_MEMORYBIO, SP_D_BIO_WRITE, SP_N_WRITE, args, 2);
    b->win = b->mem;
    b->win_len = b->size;
    Py_DECREF(incoming);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    sp_account(self, (const unsigned char *)p, n);
    return 0;
}

/* sslobj.read(n, buffer) into p[0:n], passed as b's window.  Returns the
 * count, SP_RETRY, or -1 with an exception set. */
static Py_ssize_t
sp_read_into(tl_sslproto *self, tl_sslbuf *b, char *p, Py_ssize_t n)
{
    PyObject *args[3], *r, *nobj;
    Py_ssize_t count;
    nobj = n == b->size ? Py_NewRef(b->size_obj) : PyLong_FromSsize_t(n);
    if (nobj == NULL)
        return -1;
    self->taken_valid = 0;
    self->out_clean = 0;    /* a handshake message read may be answered */
    args[0] = Py_NewRef(OBJ(self->sslsock));
    args[1] = nobj;
    args[2] = (PyObject *)b;
    b->win = p;
    b->win_len = n;
    r = sp_call_ssl(self, SP_T_SSLSOCKET, SP_D_READ, SP_N_READ, args, 3);
    b->win = b->mem;
    b->win_len = b->size;
    Py_DECREF(args[0]);
    Py_DECREF(nobj);
    if (r == NULL) {
        if (PyErr_ExceptionMatches(SP_OBJ(self->st, SP_AGAIN_ERRORS))) {
            PyErr_Clear();
            self->plain_maybe = 0;
            return SP_RETRY;
        }
        return -1;
    }
    count = PyLong_AsSsize_t(r);
    Py_DECREF(r);
    if (count == -1 && PyErr_Occurred())
        return -1;
    if (count < 0 || count > n) {
        PyErr_Format(PyExc_RuntimeError,
                     "SSLObject.read() returned %zd for a %zd-byte buffer",
                     count, n);
        return -1;
    }
    self->plain_maybe = count == n;
    return count;
}

/* sslobj.read(n): the data in a bytes object of its own.  Returns its
 * length (*out is the object when that is not 0), SP_RETRY, or -1 with an
 * exception set. */
static Py_ssize_t
sp_read_bytes(tl_sslproto *self, Py_ssize_t n, PyObject **out)
{
    PyObject *args[2], *r;
    PyMethodDef *m = sp_method(SP_OBJ(self->st, SP_D_READ), METH_VARARGS);
    Py_ssize_t count;
    if (self->size_obj == NULL || self->size_val != n
        || Py_REFCNT(self->size_obj) != 1) {
        PyObject *v = PyLong_FromSsize_t(n), *t;
        if (v == NULL)
            return -1;
        t = PyTuple_Pack(1, v);
        Py_DECREF(v);
        if (t == NULL)
            return -1;
        Py_XSETREF(self->size_obj, t);
        self->size_val = n;
    }
    args[1] = Py_NewRef(PyTuple_GET_ITEM(self->size_obj, 0));
    args[0] = Py_NewRef(OBJ(self->sslsock));
    self->taken_valid = 0;
    self->out_clean = 0;
    if (m != NULL
        && Py_IS_TYPE(args[0],
                      (PyTypeObject *)SP_OBJ(self->st, SP_T_SSLSOCKET))) {
        /* read(n) takes a tuple of arguments: ours, kept for the next
         * read of the same size. */
        PyObject *t = Py_NewRef(self->size_obj);
        r = m->ml_meth(args[0], t);
        Py_DECREF(t);
    }
    else
        r = sp_call_ssl(self, SP_T_SSLSOCKET, SP_D_READ, SP_N_READ, args, 2);
    Py_DECREF(args[0]);
    Py_DECREF(args[1]);
    if (r == NULL) {
        if (PyErr_ExceptionMatches(SP_OBJ(self->st, SP_AGAIN_ERRORS))) {
            PyErr_Clear();
            self->plain_maybe = 0;
            return SP_RETRY;
        }
        return -1;
    }
    count = PyBytes_CheckExact(r) ? PyBytes_GET_SIZE(r) : PyObject_Size(r);
    if (count < 0) {
        Py_DECREF(r);
        return -1;
    }
    self->plain_maybe = count >= n;
    if (count == 0)
        Py_DECREF(r);
    else
        *out = r;
    return count;
}

/* A read the accounting skipped, made anyway when checks are on: 0 if it
 * raised SSLWantReadError (or SSLSyscallError) as it had to.  What OpenSSL
 * has taken is then asked again, so that the reads that follow are planned
 * as they are without checks (sp_read_copied's one-record read needs it
 * known). */
static int
sp_check_skip(tl_sslproto *self, tl_sslbuf *b, char *p, Py_ssize_t n)
{
    Py_ssize_t got, left;
    if (SP_OBJ(self->st, SP_CHECKS) == NULL || n == 0)
        return 0;
    got = sp_read_into(self, b, p, n);
    if (got == SP_RETRY) {
        if (sp_bio_pending(self, self->incoming, &left) < 0)
            return -1;
        self->taken = self->fed - (unsigned long long)left;
        self->taken_valid = 1;
        return 0;
    }
    if (got >= 0)
        PyErr_Format(PyExc_SystemError,
                     "turboloop: a TLS read skipped as empty returned %zd "
                     "bytes", got);
    return -1;
}

/* sslobj.write(data): the count, SP_RETRY, or -1 with an exception set. */
static Py_ssize_t
sp_write_ssl(tl_sslproto *self, PyObject *data)
{
    PyObject *args[2] = {Py_NewRef(OBJ(self->sslsock)), data}, *r;
    self->out_clean = 0;
    r = sp_call_ssl(self, SP_T_SSLSOCKET, SP_D_WRITE, SP_N_WRITE, args, 2);
    Py_ssize_t count;
    Py_DECREF(args[0]);
    if (r == NULL) {
        if (PyErr_ExceptionMatches(SP_OBJ(self->st, SP_AGAIN_ERRORS))) {
            PyErr_Clear();
            return SP_RETRY;
        }
        return -1;
    }
    count = PyLong_AsSsize_t(r);
    Py_DECREF(r);
    if (count == -1 && PyErr_Occurred())
        return -1;
    return count < 0 ? 0 : count;
}

/* ------------------------------------------------------------------ */
/* Incoming flow                                                       */
/* ------------------------------------------------------------------ */

/* close_notify arrived: self._call_eof_received(); self._start_shutdown() */
static int
sp_on_close_notify(tl_sslproto *self)
{
    if (sp_call0_void((PyObject *)self, NAME(self, SP_N_CALL_EOF)) < 0)
        return -1;
    return sp_call0_void((PyObject *)self, NAME(self, SP_N_START_SHUTDOWN));
}

/* The bytes of parts (a list of bytes) followed by tail[0:n]. */
static PyObject *
sp_join(PyObject *parts, const char *tail, Py_ssize_t n)
{
    Py_ssize_t total = n, i, k = PyList_GET_SIZE(parts);
    PyObject *r;
    char *p;
    for (i = 0; i < k; i++)
        total += PyBytes_GET_SIZE(PyList_GET_ITEM(parts, i));
    r = PyBytes_FromStringAndSize(NULL, total);
    if (r == NULL)
        return NULL;
    p = PyBytes_AS_STRING(r);
    for (i = 0; i < k; i++) {
        PyObject *b = PyList_GET_ITEM(parts, i);
        memcpy(p, PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(b));
        p += PyBytes_GET_SIZE(b);
    }
    if (n > 0)
        memcpy(p, tail, (size_t)n);
    return r;
}

/* What a TLS record's body holds beyond its plaintext, at least, for the
 * SSL object's cipher: 17 bytes under TLS 1.3 with a 16-byte AEAD tag (the
 * tag and TLSInnerPlaintext's content type; padding only adds to it), so
 * that a record of n bytes holds at most n - 5 - 17 bytes of data.  0 (not
 * known) for anything else: TLS 1.2, whose records differ per cipher and
 * whose cipher a renegotiation can change, AES-CCM-8's 8-byte tag, and
 * suites this list does not know.  Asked once per SSL object, from the
 * exact _ssl object (a C method: no Python code runs). */
static int
sp_read_room(tl_sslproto *self)
{
    static const char *const suites[] = {
        "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
        "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_CCM_SHA256",
    };
    PyObject *c = PyObject_CallMethod(OBJ(self->sslsock), "cipher", NULL);
    PyObject *name;
    if (c == NULL)
        return -1;
    self->plain_room = 0;
    if (PyTuple_Check(c) && PyTuple_GET_SIZE(c) > 0
        && PyUnicode_Check(name = PyTuple_GET_ITEM(c, 0))) {
        const char *s = PyUnicode_AsUTF8(name);
        if (s == NULL) {
            Py_DECREF(c);
            return -1;
        }
        for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++)
            if (strcmp(s, suites[i]) == 0)
                self->plain_room = 17;
    }
    Py_DECREF(c);
    return 0;
}

/* asyncio's _do_read__copied: read until the SSL object has nothing more,
 * then one data_received() with all of it, then close_notify if a read
 * returned end of stream.  The data is collected in the loop's read buffer
 * (a buffer of our own if that one is busy with an outer read).
 *
 * When what there is to read is one complete record, which is how small
 * messages come, read(n) with n the record's size returns the data in a
 * bytes object of its own, and OpenSSL has then taken exactly that record:
 * no copy, and no question to the BIO afterwards.  Where the least the
 * record holds beyond its plaintext is known (sp_read_room), n is the
 * most plaintext the record can hold, which is usually exactly what it
 * holds: the bytes object is not shrunk afterwards. */
static int
sp_read_copied(tl_sslproto *self)
{
    tl_sslbuf *b;
    PyObject *first = NULL, *parts = NULL, *data = NULL, *r;
    Py_ssize_t off = 0, got;
    int eof = 0, wb, res = -1;

    if (self->taken_valid && !self->plain_maybe && !self->frame_lost
        && !self->eof_seen && self->complete_end > self->taken
        && self->last_start == self->taken
        && Py_IS_TYPE(OBJ(self->sslsock),
                      (PyTypeObject *)SP_OBJ(self->st, SP_T_SSLSOCKET))) {
        unsigned long long end = self->complete_end;
        Py_ssize_t rec = (Py_ssize_t)(end - self->taken), want = rec;
        char clean = self->out_clean;
        if (self->plain_room < 0 && sp_read_room(self) < 0)
            return -1;
        if (self->plain_room > 0 && rec > 5 + self->plain_room)
            want = rec - 5 - self->plain_room;
        got = sp_read_bytes(self, want, &first);
        if (got == -1)
            return -1;
        /* What was read came from that record, whose plaintext is no
         * longer than want: all of it. */
        if (got > 0 && want < rec)
            self->plain_maybe = 0;
        if (got == 0) {
            eof = 1;
            self->eof_seen = 1;
            goto deliver;
        }
        if (got > 0 && !self->plain_maybe) {
            /* That one record was application data: nothing else was
             * processed, so nothing was written either; and there is
             * nothing more to read. */
            self->taken = end;
            self->taken_valid = 1;
            self->out_clean = clean;
            if (SP_OBJ(self->st, SP_CHECKS) == NULL)
                goto deliver;
        }
    }
    b = self->rbuf;
    if (b == NULL || b->busy) {
        b = tl_sslbuf_new(self->st, SP_READ_MAX);
        if (b == NULL) {
            Py_XDECREF(first);
            return -1;
        }
    }
    else
        Py_INCREF(b);
    b->busy = 1;
    for (;;) {
        if (off == b->size) {
            PyObject *chunk = PyBytes_FromStringAndSize(b->mem, off);
            if (chunk == NULL)
                goto done;
            if (parts == NULL && (parts = PyList_New(0)) == NULL) {
                Py_DECREF(chunk);
                goto done;
            }
            wb = PyList_Append(parts, chunk);
            Py_DECREF(chunk);
            if (wb < 0)
                goto done;
            off = 0;
        }
        wb = sp_would_block(self);
        if (wb < 0)
            goto done;
        if (wb) {
            if (sp_check_skip(self, b, b->mem + off, b->size - off) < 0)
                goto done;
            break;
        }
        got = sp_read_into(self, b, b->mem + off, b->size - off);
        if (got == SP_RETRY)
            break;
        if (got < 0)
            goto done;
        if (got == 0) {
            eof = 1;
            self->eof_seen = 1;
            break;
        }
        off += got;
    }
    if (first != NULL && parts == NULL && off == 0)
        data = Py_NewRef(first);
    else if (first != NULL || parts != NULL) {
        if (parts == NULL && (parts = PyList_New(0)) == NULL)
            goto done;
        if (first != NULL && PyList_Insert(parts, 0, first) < 0)
            goto done;
        data = sp_join(parts, b->mem, off);
        if (data == NULL)
            goto done;
    }
    else if (off > 0 && (data = PyBytes_FromStringAndSize(b->mem, off)) == NULL)
        goto done;
    res = 0;
done:
    b->busy = 0;
    Py_DECREF(b);
    Py_XDECREF(parts);
    Py_XDECREF(first);
    if (res < 0)
        return -1;
    first = data;
deliver:
    if (first != NULL) {
        PyObject *proto = Py_NewRef(OBJ(self->app_protocol));
        r = sp_call1(proto, self->st->str_data_received, first);
        Py_DECREF(proto);
        Py_DECREF(first);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
    return eof ? sp_on_close_notify(self) : 0;
}

/* asyncio's _do_read__buffered: get_buffer(incoming.pending), read into it
 * until it is full or nothing is left, buffer_updated(), then close_notify
 * if a read returned end of stream.  A buffer filled to the end schedules
 * another _do_read(), since more may be waiting.
 *
 * The one difference from asyncio: the reads after the first go into the
 * buffer get_buffer() returned, at the offset reached.  asyncio passes
 * buf[offset:], which for a bytearray is a copy, so what those reads
 * return never reaches the buffer while buffer_updated() counts it. */
static int
sp_read_buffered(tl_sslproto *self)
{
    tl_sslbuf *b;
    PyObject *fn, *hint, *buf, *r;
    Py_buffer view;
    Py_ssize_t pending, wants, offset = 0, count = 1, got;
    int wb, full = 0;

    if (sp_bio_pending(self, self->incoming, &pending) < 0)
        return -1;
    if (self->app_get_buffer == NULL)
        return sp_missing(self, NAME(self, SP_N_GET_BUFFER_ATTR));
    fn = Py_NewRef(self->app_get_buffer);
    hint = PyLong_FromSsize_t(pending);
    buf = hint ? PyObject_CallOneArg(fn, hint) : NULL;
    Py_DECREF(fn);
    Py_XDECREF(hint);
    if (buf == NULL)
        return -1;
    wants = PyObject_Size(buf);
    if (wants < 0) {
        Py_DECREF(buf);
        return -1;
    }
    if (PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE) < 0) {
        /* Let the SSL object refuse it, with asyncio's error. */
        PyObject *args[3];
        PyErr_Clear();
        args[0] = Py_NewRef(OBJ(self->sslsock));
        args[1] = PyLong_FromSsize_t(wants);
        args[2] = buf;
        r = args[1] ? PyObject_VectorcallMethod(
                          NAME(self, SP_N_READ), args,
                          3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL)
                    : NULL;
        Py_DECREF(args[0]);
        Py_XDECREF(args[1]);
        Py_DECREF(buf);
        if (r != NULL) {
            Py_DECREF(r);
            PyErr_SetString(PyExc_TypeError,
                            "get_buffer() must return a writable buffer");
        }
        if (PyErr_ExceptionMatches(SP_OBJ(self->st, SP_AGAIN_ERRORS))) {
            PyErr_Clear();
            return 0;
        }
        return -1;
    }
    /* len(buf) counts items; reads are in bytes. */
    if (wants > view.len)
        wants = view.len;
    b = self->rbuf ? self->rbuf : self->own;
    if (b == NULL) {
        b = self->own = tl_sslbuf_new(self->st, SP_READ_MAX);
        if (b == NULL)
            goto error;
    }
    Py_INCREF(b);
    /* An empty buffer is passed on as asyncio passes it: the SSL object
     * reads 0 bytes, which the protocol takes for end of stream. */
    wb = wants > 0 ? sp_would_block(self) : 0;
    if (wb < 0)
        goto error_b;
    if (wb) {
        if (sp_check_skip(self, b, view.buf, wants) < 0)
            goto error_b;
        got = SP_RETRY;
    }
    else
        got = sp_read_into(self, b, view.buf, wants);
    if (got == -1)
        goto error_b;
    if (got != SP_RETRY) {
        count = got;
        if (count > 0) {
            offset = count;
            full = 1;
            while (offset < wants) {
                wb = sp_would_block(self);
                if (wb < 0)
                    goto error_b;
                if (wb) {
                    if (sp_check_skip(self, b, (char *)view.buf + offset,
                                      wants - offset) < 0)
                        goto error_b;
                    full = 0;
                    break;
                }
                got = sp_read_into(self, b, (char *)view.buf + offset,
                                   wants - offset);
                if (got == -1)
                    goto error_b;
                if (got == SP_RETRY) {
                    full = 0;
                    break;
                }
                count = got;
                if (count == 0) {
                    full = 0;
                    break;
                }
                offset += count;
            }
        }
    }
    Py_DECREF(b);
    PyBuffer_Release(&view);
    Py_DECREF(buf);
    if (count == 0)
        self->eof_seen = 1;
    if (full) {
        PyObject *again = PyObject_GetAttr((PyObject *)self,
                                           NAME(self, SP_N_DO_READ));
        if (again == NULL)
            return -1;
        r = sp_call1(OBJ(self->loop), self->st->str_call_soon, again);
        Py_DECREF(again);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
    if (offset > 0) {
        PyObject *n;
        if (self->app_buffer_updated == NULL)
            return sp_missing(self, NAME(self, SP_N_BUFFER_UPDATED_ATTR));
        fn = Py_NewRef(self->app_buffer_updated);
        n = PyLong_FromSsize_t(offset);
        r = n ? PyObject_CallOneArg(fn, n) : NULL;
        Py_DECREF(fn);
        Py_XDECREF(n);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
    return count == 0 ? sp_on_close_notify(self) : 0;

error_b:
    Py_DECREF(b);
error:
    PyBuffer_Release(&view);
    Py_DECREF(buf);
    return -1;
}

/* 1 if the write backlog holds something, 0 if not, -1 on error. */
static int
sp_backlog_nonempty(tl_sslproto *self)
{
    PyObject *bl = OBJ(self->backlog);
    if (PyList_CheckExact(bl))
        return PyList_GET_SIZE(bl) > 0;
    return PyObject_IsTrue(bl);
}

/* asyncio's _control_ssl_reading: pause the socket transport while
 * incoming holds more than the high-water mark, resume it below the low. */
static int
sp_control_ssl_reading(tl_sslproto *self)
{
    Py_ssize_t size;
    PyObject *tr;
    int r;
    /* No read since taken was asked: incoming holds the rest. */
    if (self->taken_valid)
        size = (Py_ssize_t)(self->fed - self->taken);
    else if (sp_bio_pending(self, self->incoming, &size) < 0)
        return -1;
    if ((double)size >= self->limit_v[0] && !self->ssl_reading_paused) {
        self->ssl_reading_paused = 1;
        tr = Py_NewRef(OBJ(self->transport));
        r = sp_call0_void(tr, NAME(self, SP_N_PAUSE_READING));
        Py_DECREF(tr);
        return r;
    }
    if ((double)size <= self->limit_v[1] && self->ssl_reading_paused) {
        self->ssl_reading_paused = 0;
        tr = Py_NewRef(OBJ(self->transport));
        r = sp_call0_void(tr, NAME(self, SP_N_RESUME_READING));
        Py_DECREF(tr);
        return r;
    }
    return 0;
}

/* asyncio's _do_read: in the WRAPPED and FLUSHING states, read what can be
 * read, send what is to be sent, adjust reading; an Exception on the way
 * is the connection's fatal error. */
static int
sp_do_read(tl_sslproto *self)
{
    int r = 0, ne;
    if (self->state_code != TL_SSL_WRAPPED
        && self->state_code != TL_SSL_FLUSHING)
        return 0;
    Py_INCREF(self);
    if (!self->app_reading_paused) {
        r = self->app_is_buffer ? sp_read_buffered(self)
                                : sp_read_copied(self);
        if (r == 0) {
            ne = sp_backlog_nonempty(self);
            r = ne < 0 ? -1 : ne ? sp_do_write(self)
                                 : sp_process_outgoing(self);
        }
    }
    if (r == 0)
        r = sp_control_ssl_reading(self);
    if (r < 0)
        r = sp_fatal_catch(self, NAME(self, SP_M_FATAL));
    Py_DECREF(self);
    return r;
}

/* ------------------------------------------------------------------ */
/* Outgoing flow                                                       */
/* ------------------------------------------------------------------ */

/* A failing pause_writing()/resume_writing() goes to the exception
 * handler, as in asyncio's _control_app_writing. */
static int
sp_app_writing_failed(tl_sslproto *self, const char *message)
{
    PyObject *exc, *tr, *ctx, *fn, *r;
    if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)
        || PyErr_ExceptionMatches(PyExc_SystemExit))
        return -1;
    exc = tl_err_get_raised();
    tr = PyObject_GetAttr((PyObject *)self, NAME(self, SP_N_APP_TRANSPORT));
    if (tr == NULL) {
        Py_DECREF(exc);
        return -1;
    }
    ctx = Py_BuildValue("{s:s,s:O,s:O,s:O}", "message", message,
                        "exception", exc, "transport", tr,
                        "protocol", (PyObject *)self);
    Py_DECREF(tr);
    fn = ctx ? PyObject_GetAttr(OBJ(self->loop),
                                self->st->str_call_exception_handler)
             : NULL;
    r = fn ? sp_call_handling(exc, fn, &ctx, 1) : NULL;
    Py_XDECREF(fn);
    Py_XDECREF(ctx);
    Py_DECREF(exc);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* asyncio's _control_app_writing: pause_writing() once the data not yet
 * sent reaches the high-water mark, resume_writing() at the low. */
static int
sp_control_app_writing(tl_sslproto *self, Py_ssize_t pending)
{
    double size;
    PyObject *proto, *r;
    if (pending < 0 && sp_bio_pending(self, self->outgoing, &pending) < 0)
        return -1;
    size = (double)pending + (double)self->write_buffer_size;
    if (size >= self->limit_v[2] && !self->app_writing_paused) {
        self->app_writing_paused = 1;
        proto = Py_NewRef(OBJ(self->app_protocol));
        r = sp_call0(proto, self->st->str_pause_writing);
        Py_DECREF(proto);
        if (r == NULL)
            return sp_app_writing_failed(self, "protocol.pause_writing() failed");
        Py_DECREF(r);
    }
    else if (size <= self->limit_v[3] && self->app_writing_paused) {
        self->app_writing_paused = 0;
        proto = Py_NewRef(OBJ(self->app_protocol));
        r = sp_call0(proto, self->st->str_resume_writing);
        Py_DECREF(proto);
        if (r == NULL)
            return sp_app_writing_failed(self,
                                         "protocol.resume_writing() failed");
        Py_DECREF(r);
    }
    return 0;
}

/* asyncio's _process_outgoing: hand what the SSL object wrote to the
 * socket transport, unless it asked us to pause, then _control_app_writing.
 *
 * One MemoryBIO.pending serves both when there is nothing to send (an empty
 * outgoing.read() does nothing).  written says the SSL object has just
 * written, so there is something to read.  After outgoing.read() and a
 * write to one of the loop's socket transports (whose write() calls back
 * only into this protocol's C methods, pause_writing() at most), outgoing
 * is known to be empty.
 *
 * out_clean keeps that knowledge until something may write to outgoing:
 * a write or read of ours (a read may process a handshake message that is
 * answered, except when it is known to have read one application record,
 * see sp_read_copied), and the handshake and shutdown code, which runs in
 * the states other than WRAPPED, where out_clean is not trusted (and is
 * cleared by every state change).  Code outside the protocol driving the
 * SSL object
 * itself is not accounted for, as it is not in asyncio either (whose
 * protocol would not send what such code writes until its own next write). */
static int
sp_process_outgoing_ex(tl_sslproto *self, int written)
{
    Py_ssize_t pending = -1;
    if (!written) {
        if (self->out_clean && self->state_code == TL_SSL_WRAPPED)
            pending = 0;
        else if (sp_bio_pending(self, self->outgoing, &pending) < 0)
            return -1;
        self->out_clean = pending == 0;
    }
    if (!self->ssl_writing_paused && pending != 0) {
        PyObject *out = Py_NewRef(OBJ(self->outgoing)), *tr, *r;
        PyObject *data = sp_call_ssl(self, SP_T_MEMORYBIO, SP_D_BIO_READ,
                                     SP_N_READ, &out, 1);
        Py_ssize_t n;
        Py_DECREF(out);
        if (data == NULL)
            return -1;
        n = PyBytes_CheckExact(data) ? PyBytes_GET_SIZE(data)
                                     : PyObject_Size(data);
        if (n < 0) {
            Py_DECREF(data);
            return -1;
        }
        pending = n == 0 ? 0 : -1;
        if (n > 0) {
            int res = 0;
            tr = Py_NewRef(OBJ(self->transport));
            if (Py_IS_TYPE(tr, self->st->SocketTransportType)) {
                pending = 0;
                res = tl_transport_write(tr, data);
            }
            else {
                r = sp_call1(tr, NAME(self, SP_N_WRITE), data);
                if (r == NULL)
                    res = -1;
                Py_XDECREF(r);
            }
            Py_DECREF(tr);
            if (res < 0) {
                Py_DECREF(data);
                return -1;
            }
        }
        Py_DECREF(data);
        self->out_clean = pending == 0;
    }
    return sp_control_app_writing(self, pending);
}

static int
sp_process_outgoing(tl_sslproto *self)
{
    return sp_process_outgoing_ex(self, 0);
}

/* asyncio's _do_write: give the backlog to the SSL object until it is
 * empty or the object cannot take more, then _process_outgoing(). */
static int
sp_do_write(tl_sslproto *self)
{
    int wrote = 0;
    for (;;) {
        PyObject *bl, *data, *rest;
        Py_ssize_t count, n;
        int ne = sp_backlog_nonempty(self), r;
        if (ne < 0)
            return -1;
        if (!ne)
            break;
        bl = Py_NewRef(OBJ(self->backlog));
        data = PySequence_GetItem(bl, 0);
        if (data == NULL) {
            Py_DECREF(bl);
            return -1;
        }
        count = sp_write_ssl(self, data);
        if (count == SP_RETRY) {
            Py_DECREF(data);
            Py_DECREF(bl);
            break;
        }
        n = count < 0 ? -1 : PyObject_Size(data);
        if (n < 0) {
            Py_DECREF(data);
            Py_DECREF(bl);
            return -1;
        }
        if (count < n) {
            rest = PySequence_GetSlice(data, count, PY_SSIZE_T_MAX);
            r = rest ? PySequence_SetItem(bl, 0, rest) : -1;
            Py_XDECREF(rest);
            self->write_buffer_size -= count;
        }
        else {
            r = PySequence_DelItem(bl, 0);
            self->write_buffer_size -= n;
        }
        Py_DECREF(data);
        Py_DECREF(bl);
        if (r < 0)
            return -1;
        wrote |= count > 0;
    }
    return sp_process_outgoing_ex(self, wrote);
}

/* Append data (of len() n) to the backlog. */
static int
sp_backlog_append(tl_sslproto *self, PyObject *data)
{
    PyObject *bl = Py_NewRef(OBJ(self->backlog)), *r;
    int res;
    if (PyList_CheckExact(bl))
        res = PyList_Append(bl, data);
    else {
        r = sp_call1(bl, NAME(self, SP_N_APPEND), data);
        res = r ? 0 : -1;
        Py_XDECREF(r);
    }
    Py_DECREF(bl);
    return res;
}

/* A write after the connection closed: counted, and logged after a few. */
static int
sp_closed_write(tl_sslproto *self)
{
    if (self->conn_lost >= SP_LOST_WRITES_LOG) {
        PyObject *r = sp_call1(SP_OBJ(self->st, SP_LOGGER),
                               NAME(self, SP_N_WARNING),
                               NAME(self, SP_M_CLOSED));
        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
    self->conn_lost++;
    return 0;
}

static int
sp_closed_state(tl_sslproto *self)
{
    return self->state_code == TL_SSL_FLUSHING
           || self->state_code == TL_SSL_SHUTDOWN
           || self->state_code == TL_SSL_UNWRAPPED;
}

/* asyncio's _write_appdata(list_of_data). */
int
tl_sslproto_writelines(tl_sslproto *self, PyObject *iterable)
{
    PyObject *it, *data;
    int r = 0;
    if (sp_closed_state(self))
        return sp_closed_write(self);
    it = PyObject_GetIter(iterable);
    if (it == NULL)
        return -1;
    Py_INCREF(self);
    while ((data = PyIter_Next(it)) != NULL) {
        Py_ssize_t n;
        if (sp_backlog_append(self, data) < 0
            || (n = PyObject_Size(data)) < 0) {
            Py_DECREF(data);
            r = -1;
            break;
        }
        self->write_buffer_size += n;
        Py_DECREF(data);
    }
    Py_DECREF(it);
    if (r == 0 && PyErr_Occurred())
        r = -1;
    if (r == 0 && self->state_code == TL_SSL_WRAPPED
        && sp_do_write(self) < 0)
        r = sp_fatal_catch(self, NAME(self, SP_M_FATAL));
    Py_DECREF(self);
    return r;
}

/* _write_appdata((data,)).  With nothing queued, data goes to the SSL
 * object at once and only what it did not take is queued, which ends where
 * asyncio's append-then-_do_write() ends. */
int
tl_sslproto_write(tl_sslproto *self, PyObject *data)
{
    Py_ssize_t n, count;
    int ne, r = 0;
    if (sp_closed_state(self))
        return sp_closed_write(self);
    ne = self->state_code == TL_SSL_WRAPPED ? sp_backlog_nonempty(self) : 1;
    if (ne < 0)
        return -1;
    if (ne) {
        PyObject *one = PyTuple_Pack(1, data);
        if (one == NULL)
            return -1;
        r = tl_sslproto_writelines(self, one);
        Py_DECREF(one);
        return r;
    }
    n = PyObject_Size(data);
    if (n < 0)
        return -1;
    Py_INCREF(self);
    count = sp_write_ssl(self, data);
    if (count == -1) {
        /* asyncio had queued it before the write failed. */
        PyObject *exc = tl_err_get_raised();
        if (sp_backlog_append(self, data) == 0) {
            self->write_buffer_size += n;
            tl_err_set_raised(exc);
        }
        else
            Py_DECREF(exc);
        r = -1;
    }
    else {
        if (count == SP_RETRY)
            count = 0;
        if (count < n) {
            PyObject *rest = count ? PySequence_GetSlice(data, count,
                                                         PY_SSIZE_T_MAX)
                                   : Py_NewRef(data);
            r = rest ? sp_backlog_append(self, rest) : -1;
            Py_XDECREF(rest);
            if (r == 0)
                self->write_buffer_size += n - count;
        }
        if (r == 0)
            r = sp_process_outgoing_ex(self, count > 0);
    }
    if (r < 0)
        r = sp_fatal_catch(self, NAME(self, SP_M_FATAL));
    Py_DECREF(self);
    return r;
}

/* ------------------------------------------------------------------ */
/* The socket transport's side                                         */
/* ------------------------------------------------------------------ */

/* The buffer the socket transport receives into.  The loop's buffer when
 * the transport is one of the loop's socket transports, which call
 * buffer_updated() before any Python code runs; a buffer of our own for any
 * other (a TLS transport under start_tls(), say), which may not. */
static tl_sslbuf *
sp_recv_buffer(tl_sslproto *self)
{
    tl_sslbuf *b = self->rbuf;
    if (b == NULL || self->transport == NULL
        || !PyObject_TypeCheck(self->transport,
                               self->st->SocketTransportType)) {
        if (self->own == NULL
            && (self->own = tl_sslbuf_new(self->st, SP_READ_MAX)) == NULL)
            return NULL;
        b = self->own;
    }
    self->last = b;
    return b;
}

/* buffer_updated(n): n bytes of TLS records are in the buffer. */
static int
sp_received(tl_sslproto *self, Py_ssize_t n)
{
    tl_sslbuf *b = self->last ? self->last : self->rbuf;
    int r = 0;
    if (b == NULL) {
        if (self->own == NULL
            && (self->own = tl_sslbuf_new(self->st, SP_READ_MAX)) == NULL)
            return -1;
        b = self->own;
    }
    /* buffer[:nbytes], as asyncio slices its view. */
    if (n < 0)
        n = n + b->size < 0 ? 0 : n + b->size;
    if (n > b->size)
        n = b->size;
    Py_INCREF(self);
    Py_INCREF(b);
    r = sp_feed(self, b, b->mem, n);
    Py_DECREF(b);
    if (r == 0) {
        switch (self->state_code) {
        case TL_SSL_DO_HANDSHAKE:
            r = sp_call0_void((PyObject *)self,
                              NAME(self, SP_N_DO_HANDSHAKE));
            break;
        case TL_SSL_WRAPPED:
            r = sp_do_read(self);
            break;
        case TL_SSL_FLUSHING:
            r = sp_call0_void((PyObject *)self, NAME(self, SP_N_DO_FLUSH));
            break;
        case TL_SSL_SHUTDOWN:
            r = sp_call0_void((PyObject *)self,
                              NAME(self, SP_N_DO_SHUTDOWN));
            break;
        default:
            break;
        }
    }
    Py_DECREF(self);
    return r;
}

int
tl_sslproto_direct(tl_state *st, PyObject *protocol)
{
    PyObject *tp = (PyObject *)Py_TYPE(protocol), *a, *b;
    int r;
    if (!PyObject_TypeCheck(protocol,
                            (PyTypeObject *)SP_OBJ(st, SP_PROTOCOL_TYPE)))
        return 0;
    a = PyObject_GetAttrString(tp, "get_buffer");
    b = PyObject_GetAttrString(tp, "buffer_updated");
    r = a == SP_OBJ(st, SP_D_GET_BUFFER) && b == SP_OBJ(st, SP_D_BUFFER_UPDATED);
    Py_XDECREF(a);
    Py_XDECREF(b);
    PyErr_Clear();
    return r;
}

char *
tl_sslproto_recv_buffer(PyObject *protocol, Py_ssize_t *len)
{
    tl_sslbuf *b = sp_recv_buffer((tl_sslproto *)protocol);
    if (b == NULL)
        return NULL;
    *len = b->size;
    return b->mem;
}

int
tl_sslproto_received(PyObject *protocol, Py_ssize_t n)
{
    return sp_received((tl_sslproto *)protocol, n);
}

/* ------------------------------------------------------------------ */
/* For sslproto_type.c: the methods of the same names                  */
/* ------------------------------------------------------------------ */

tl_sslbuf *
tl_sslproto_buffer(tl_sslproto *self)
{
    return sp_recv_buffer(self);
}

int
tl_sslproto_do_read(tl_sslproto *self)
{
    return sp_do_read(self);
}

int
tl_sslproto_read_copied(tl_sslproto *self)
{
    return sp_read_copied(self);
}

int
tl_sslproto_read_buffered(tl_sslproto *self)
{
    return sp_read_buffered(self);
}

int
tl_sslproto_do_write(tl_sslproto *self)
{
    return sp_do_write(self);
}

int
tl_sslproto_process_outgoing(tl_sslproto *self)
{
    return sp_process_outgoing(self);
}

int
tl_sslproto_control_app_writing(tl_sslproto *self)
{
    return sp_control_app_writing(self, -1);
}

int
tl_sslproto_control_ssl_reading(tl_sslproto *self)
{
    return sp_control_ssl_reading(self);
}

int
tl_sslproto_bio_pending(tl_sslproto *self, PyObject *bio, Py_ssize_t *out)
{
    return sp_bio_pending(self, bio, out);
}
