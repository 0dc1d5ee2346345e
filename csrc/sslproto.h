/* sslproto.h -- what the TLS files share: sslproto.c (the protocol that
 * runs TLS over a stream transport: reading, writing, flow control),
 * sslproto_type.c (its Python type: methods, attributes, set-up) and
 * ssltransport.c (the transport it hands the application, and the read
 * buffer).
 *
 * The layouts below are the C halves of Python classes: the Python side
 * (python/turboloop/_sslproto.py) subclasses each C type together with the
 * asyncio class it stands for, so the attributes asyncio's own methods read
 * and write are these C fields (members and getsets of the C types). */
#ifndef TL_SSLPROTO_H
#define TL_SSLPROTO_H

#include "tl.h"

/* Indices into tl_state.ssl_obj. */
enum {
    /* types */
    SP_PROTOCOL_TYPE, SP_TRANSPORT_TYPE, SP_BUFFER_TYPE,
    /* asyncio.sslproto.SSLProtocolState's members, in the order of the
     * TL_SSL_* codes below */
    SP_STATE0, SP_STATE_LAST = SP_STATE0 + 4,
    /* ssl.SSLObject; the exceptions asyncio treats as "try again later"
     * (sslproto.SSLAgainErrors); asyncio's logger */
    SP_SSLOBJECT, SP_AGAIN_ERRORS, SP_LOGGER,
    /* Py_True while reads the record accounting skips are checked (see
     * sslproto_would_block), else NULL */
    SP_CHECKS,
    /* _ssl._SSLSocket and _ssl.MemoryBIO, and the descriptors of the
     * methods called on them (read, write, pending; read, write, and the
     * pending getset), called directly on objects of exactly those types */
    SP_T_SSLSOCKET, SP_T_MEMORYBIO,
    SP_D_READ, SP_D_WRITE, SP_D_PENDING, SP_D_BIO_READ, SP_D_BIO_WRITE,
    SP_D_BIO_PENDING,
    /* this type's get_buffer and buffer_updated descriptors */
    SP_D_GET_BUFFER, SP_D_BUFFER_UPDATED,
    /* interned names */
    SP_N_READ, SP_N_WRITE, SP_N_PENDING, SP_N_SSLOBJ, SP_N_DO_HANDSHAKE,
    SP_N_DO_FLUSH, SP_N_DO_SHUTDOWN, SP_N_FATAL_ERROR, SP_N_CALL_EOF,
    SP_N_START_SHUTDOWN, SP_N_PAUSE_READING, SP_N_RESUME_READING,
    SP_N_DO_READ, SP_N_APP_TRANSPORT, SP_N_IS_CLOSING, SP_N_WARNING,
    SP_N_APPEND, SP_N_WRITE_APPDATA, SP_N_IS_TRANSPORT_CLOSING,
    SP_N_GET_BUFFER_ATTR, SP_N_BUFFER_UPDATED_ATTR,
    /* messages */
    SP_M_FATAL, SP_M_CLOSED,
    SP_NOBJ
};
_Static_assert(SP_NOBJ == TL_SSL_NOBJ, "tl.h sizes ssl_obj for this list");

#define SP_OBJ(st, i) ((st)->ssl_obj[(i)])

/* The states of asyncio's SSLProtocol (SSLProtocolState), as codes. */
enum {
    TL_SSL_UNWRAPPED, TL_SSL_DO_HANDSHAKE, TL_SSL_WRAPPED, TL_SSL_FLUSHING,
    TL_SSL_SHUTDOWN, TL_SSL_OTHER
};

/* A read buffer (turboloop._core.SSLReadBuffer): memory the socket
 * transport receives TLS records into (get_buffer() hands out `view`) and
 * that decrypted data is collected in before data_received().  One per
 * loop, shared by the loop's TLS connections: every use of it ends before
 * any Python code runs, except collecting plaintext, which marks the buffer
 * busy so that a nested read takes a buffer of its own.
 *
 * Through the buffer protocol the object itself exposes win[0:win_len],
 * which is how a slice of it, or of an application's buffer, is passed to
 * MemoryBIO.write() and SSLObject.read() without a memoryview per call. */
typedef struct {
    PyObject_HEAD
    char *mem;
    Py_ssize_t size;
    char *win;
    Py_ssize_t win_len;
    PyObject *view;             /* memoryview of mem[0:size] */
    PyObject *size_obj;         /* size, as an int */
    int busy;
} tl_sslbuf;

/* The C half of turboloop._sslproto.SSLProtocol.  Names in comments are
 * the Python attributes asyncio's methods use. */
typedef struct {
    PyObject_HEAD
    tl_state *st;
    PyObject *loop;             /* _loop */
    PyObject *transport;        /* _transport: the socket transport */
    PyObject *app_protocol;     /* _app_protocol */
    PyObject *app_get_buffer;   /* _app_protocol_get_buffer */
    PyObject *app_buffer_updated; /* _app_protocol_buffer_updated */
    PyObject *sslobj;           /* _sslobj, an ssl.SSLObject */
    PyObject *sslsock;          /* what read/write/pending are called on:
                                   sslobj._sslobj (the _ssl object) when
                                   sslobj is exactly ssl.SSLObject, else
                                   sslobj itself */
    PyObject *incoming;         /* _incoming, _outgoing: ssl.MemoryBIO */
    PyObject *outgoing;
    PyObject *state;            /* _state, an SSLProtocolState member */
    PyObject *backlog;          /* _write_backlog: a list (any mutable
                                   sequence with append() works) */
    PyObject *limits[4];        /* _incoming_high_water, _incoming_low_water,
                                   _outgoing_high_water, _outgoing_low_water */
    double limit_v[4];          /* the same, as numbers to compare with */
    tl_sslbuf *rbuf;            /* _read_buffer: the loop's shared buffer */
    tl_sslbuf *own;             /* a buffer of our own, made when one is
                                   needed (see get_buffer) */
    tl_sslbuf *last;            /* the buffer get_buffer() handed out last
                                   (borrowed: rbuf or own) */
    Py_ssize_t write_buffer_size; /* _write_buffer_size */
    Py_ssize_t conn_lost;       /* _conn_lost */
    /* Record accounting of the bytes written to incoming (see
     * sslproto_would_block): how many, where the last complete record
     * ends, and the record being received. */
    unsigned long long fed;
    unsigned long long complete_end;
    unsigned long long taken;   /* what OpenSSL had taken when last asked */
    unsigned long long rec_start;  /* where the record being received starts */
    unsigned long long last_start; /* where the last complete record starts */
    Py_ssize_t body_left;
    unsigned char hdr[5];
    unsigned char hdr_have;
    char taken_valid;           /* no read since taken was asked */
    char plain_maybe;           /* the last read filled its buffer: decrypted
                                   bytes may be pending */
    char out_clean;             /* outgoing is known to be empty (see
                                   sp_process_outgoing_ex) */
    char frame_lost;            /* not TLS records as we know them, or an
                                   SSL object other than ssl.SSLObject:
                                   always read, as asyncio does */
    char eof_seen;              /* a read returned end of stream */
    int state_code;             /* TL_SSL_* of state */
    char app_is_buffer;         /* _app_protocol_is_buffer */
    char ssl_writing_paused;    /* _ssl_writing_paused */
    char app_reading_paused;    /* _app_reading_paused */
    char ssl_reading_paused;    /* _ssl_reading_paused */
    char app_writing_paused;    /* _app_writing_paused */
    /* What a TLS record's body holds beyond its plaintext, at least (see
     * sp_read_room in sslproto.c): -1 not known yet, 0 nothing known. */
    signed char plain_room;
    /* The arguments of the last read(n), the tuple (n,), for the next read
     * of the same size (sp_read_bytes). */
    Py_ssize_t size_val;
    PyObject *size_obj;
} tl_sslproto;

/* sslproto.c (tl_sslproto_direct and friends, for transport.c, are in
 * tl.h).  The functions behind the methods of the same names; 0, or -1
 * with an exception set. */
int tl_sslproto_do_read(tl_sslproto *self);
int tl_sslproto_read_copied(tl_sslproto *self);
int tl_sslproto_read_buffered(tl_sslproto *self);
int tl_sslproto_do_write(tl_sslproto *self);
int tl_sslproto_process_outgoing(tl_sslproto *self);
int tl_sslproto_control_app_writing(tl_sslproto *self);
int tl_sslproto_control_ssl_reading(tl_sslproto *self);
/* What get_buffer() hands out; NULL with an exception set. */
tl_sslbuf *tl_sslproto_buffer(tl_sslproto *self);
/* bio.pending */
int tl_sslproto_bio_pending(tl_sslproto *self, PyObject *bio, Py_ssize_t *out);
/* _write_appdata((data,)) for one bytes-like object, and
 * _write_appdata(iterable); 0, or -1 with an exception set. */
int tl_sslproto_write(tl_sslproto *self, PyObject *data);
int tl_sslproto_writelines(tl_sslproto *self, PyObject *iterable);

/* ssltransport.c */
int tl_ssltransport_init_types(PyObject *mod, tl_state *st);
/* A new read buffer of size bytes. */
tl_sslbuf *tl_sslbuf_new(tl_state *st, Py_ssize_t size);

#endif /* TL_SSLPROTO_H */
