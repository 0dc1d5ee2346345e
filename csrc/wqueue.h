/* wqueue.h -- the write queue of the stream socket and pipe transports.
 *
 * A ring of the chunks a transport could not write at once, oldest first,
 * each a bytes object the queue owns a reference to; the first chunk is
 * written up to `off`.  `size` is what write_buffer_size() reports: the
 * bytes queued and not yet written.  All functions are static inline so
 * that the write paths keep direct calls; the queue holds no Python object
 * other than its chunks, so the owner's traverse/clear call
 * tl_wq_traverse()/tl_wq_clear().
 *
 * The stream transport may also queue, on 3.12 and later, a memoryview
 * that is not contiguous (asyncio queues it and fails when it gets to it);
 * tl_wq_iov() stops before such a chunk and the caller raises.
 */
#ifndef TL_WQUEUE_H
#define TL_WQUEUE_H

#include "tl.h"

#include <string.h>
#include <sys/uio.h>

typedef struct {
    PyObject **ring;
    Py_ssize_t head, len, cap;
    Py_ssize_t off;             /* bytes of the first chunk already written */
    Py_ssize_t size;            /* bytes queued and not written */
} tl_wqueue;

static inline PyObject *
tl_wq_at(const tl_wqueue *q, Py_ssize_t i)
{
    return q->ring[(q->head + i) % q->cap];
}

/* Append chunk, of which nbytes count as unwritten (steals the reference,
 * also on failure). */
static inline int
tl_wq_push(tl_wqueue *q, PyObject *chunk, Py_ssize_t nbytes)
{
    if (q->len == q->cap) {
        Py_ssize_t cap = q->cap ? q->cap * 2 : 8;
        PyObject **ring = PyMem_New(PyObject *, cap);
        if (ring == NULL) {
            Py_DECREF(chunk);
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t i = 0; i < q->len; i++)
            ring[i] = tl_wq_at(q, i);
        PyMem_Free(q->ring);
        q->ring = ring;
        q->head = 0;
        q->cap = cap;
    }
    q->ring[(q->head + q->len) % q->cap] = chunk;
    q->len++;
    q->size += nbytes;
    return 0;
}

/* Append a bytes object whose first `skip` bytes are already written; only
 * possible when the queue is empty (skip 0 otherwise). */
static inline int
tl_wq_push_rest(tl_wqueue *q, PyObject *chunk, Py_ssize_t skip)
{
    assert(skip == 0 || q->len == 0);
    if (tl_wq_push(q, chunk, PyBytes_GET_SIZE(chunk) - skip) < 0)
        return -1;
    if (q->len == 1)
        q->off = skip;
    return 0;
}

/* Forget the first nbytes of the queue, which were written. */
static inline void
tl_wq_consume(tl_wqueue *q, Py_ssize_t nbytes)
{
    q->size -= nbytes;
    while (nbytes > 0 && q->len > 0) {
        PyObject *b = q->ring[q->head];
        Py_ssize_t left = PyBytes_GET_SIZE(b) - q->off;
        if (left > nbytes) {
            q->off += nbytes;
            return;
        }
        nbytes -= left;
        q->head = (q->head + 1) % q->cap;
        q->len--;
        q->off = 0;
        Py_DECREF(b);
    }
}

/* Drop every chunk.  The queue is empty before the first reference is
 * released, so code a chunk's deallocation runs finds it consistent. */
static inline void
tl_wq_clear(tl_wqueue *q)
{
    PyObject **ring = q->ring;
    Py_ssize_t head = q->head, len = q->len, cap = q->cap;
    q->ring = NULL;
    q->head = q->len = q->cap = q->off = q->size = 0;
    for (Py_ssize_t i = 0; i < len; i++)
        Py_DECREF(ring[(head + i) % cap]);
    PyMem_Free(ring);
}

static inline int
tl_wq_traverse(const tl_wqueue *q, visitproc visit, void *arg)
{
    for (Py_ssize_t i = 0; i < q->len; i++)
        Py_VISIT(tl_wq_at(q, i));
    return 0;
}

/* Point iov at the unwritten bytes of the first chunks, at most max of
 * them, stopping before a chunk that is not a bytes object.  Returns how
 * many were filled, with their total length in *total. */
static inline Py_ssize_t
tl_wq_iov(const tl_wqueue *q, struct iovec *iov, Py_ssize_t max,
          size_t *total)
{
    Py_ssize_t i, n = q->len < max ? q->len : max;
    size_t sum = 0;
    for (i = 0; i < n; i++) {
        PyObject *b = tl_wq_at(q, i);
        Py_ssize_t off = i == 0 ? q->off : 0;
        if (!PyBytes_Check(b))
            break;
        iov[i].iov_base = PyBytes_AS_STRING(b) + off;
        iov[i].iov_len = (size_t)(PyBytes_GET_SIZE(b) - off);
        sum += iov[i].iov_len;
    }
    *total = sum;
    return i;
}

/* Copy the unwritten bytes, in order, to dst (room for q->size bytes;
 * bytes chunks only). */
static inline void
tl_wq_copy(const tl_wqueue *q, char *dst)
{
    for (Py_ssize_t i = 0; i < q->len; i++) {
        PyObject *c = tl_wq_at(q, i);
        Py_ssize_t off = i == 0 ? q->off : 0;
        Py_ssize_t n = PyBytes_GET_SIZE(c) - off;
        memcpy(dst, PyBytes_AS_STRING(c) + off, (size_t)n);
        dst += n;
    }
}

#endif /* TL_WQUEUE_H */
