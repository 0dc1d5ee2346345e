/*
 * Load generator for the TLS echo benchmark (bench/tls.py).
 *
 * One thread, epoll, non-blocking OpenSSL connections.  Each connection
 * does the TLS handshake, then keeps exactly one message in flight: it
 * writes SIZE bytes, waits until SIZE bytes have come back (checking every
 * byte), and sends the next message.
 *
 * usage: tls_echo_client --port PORT [--conns N] [--size BYTES]
 *            [--tls12] [--server-pid PID]
 *            (--warmup SECONDS --duration SECONDS | --msgs N)
 *
 * With --duration it measures messages echoed in a window that starts
 * after the warm-up, sampling the server's CPU time (utime and stime from
 * /proc/PID/stat) at both ends of the window.  With --msgs every connection
 * echoes exactly N messages, then closes with a TLS close_notify: that run
 * is deterministic, for instruction counts of the server.
 *
 * It prints one JSON object on stdout.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define STALL_NS (10LL * 1000000000LL)

struct conn {
    int fd;
    SSL *ssl;
    int handshaking;
    unsigned char *msg;
    unsigned char *back;
    size_t sent, received;
    long long done;          /* messages echoed */
    uint32_t events;         /* registered with epoll */
    int closed;
};

static size_t msg_size = 1024;
static int epfd;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void fail(const char *what, const char *detail)
{
    printf("{\"error\": \"%s: %s\"}\n", what, detail);
    fflush(stdout);
    exit(2);
}

static void fail_ssl(const char *what)
{
    char buf[256];
    unsigned long e = ERR_get_error();
    ERR_error_string_n(e, buf, sizeof(buf));
    fail(what, e ? buf : strerror(errno));
}

static int read_cpu_ticks(int pid, long long *utime, long long *stime)
{
    char path[64], buf[2048];
    FILE *f;
    size_t n;
    char *p;
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    p = strrchr(buf, ')');
    if (!p)
        return -1;
    /* after ") ": state(3) ppid pgrp session tty tpgid flags minflt cminflt
     * majflt cmajflt utime(14) stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lld %lld",
               utime, stime) != 2)
        return -1;
    return 0;
}

static void want(struct conn *c, uint32_t ev)
{
    struct epoll_event e;
    if (c->events == ev)
        return;
    e.events = ev;
    e.data.ptr = c;
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e) < 0)
        fail("epoll_ctl", strerror(errno));
    c->events = ev;
}

static void new_message(struct conn *c)
{
    /* Different bytes each time, so a server that repeats data fails. */
    for (size_t i = 0; i < msg_size; i++)
        c->msg[i] = (unsigned char)(c->done * 31 + i * 7);
    c->sent = c->received = 0;
}

/* Drive one connection as far as it goes without blocking.  Returns the
 * number of messages completed. */
static long long drive(struct conn *c, long long limit)
{
    long long completed = 0;
    for (;;) {
        int r, err;
        if (c->closed)
            return completed;
        if (c->handshaking) {
            r = SSL_do_handshake(c->ssl);
            if (r == 1) {
                c->handshaking = 0;
                new_message(c);
                continue;
            }
        }
        else if (limit && c->done >= limit) {
            SSL_shutdown(c->ssl);
            epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
            close(c->fd);
            c->closed = 1;
            return completed;
        }
        else if (c->sent < msg_size) {
            size_t w;
            r = SSL_write_ex(c->ssl, c->msg + c->sent, msg_size - c->sent, &w);
            if (r == 1) {
                c->sent += w;
                continue;
            }
        }
        else {
            size_t got;
            r = SSL_read_ex(c->ssl, c->back + c->received,
                            msg_size - c->received, &got);
            if (r == 1) {
                c->received += got;
                if (c->received == msg_size) {
                    if (memcmp(c->back, c->msg, msg_size) != 0)
                        fail("echo", "the server sent back other bytes");
                    c->done++;
                    completed++;
                    new_message(c);
                }
                continue;
            }
        }
        err = SSL_get_error(c->ssl, r);
        if (err == SSL_ERROR_WANT_READ) {
            want(c, EPOLLIN);
            return completed;
        }
        if (err == SSL_ERROR_WANT_WRITE) {
            want(c, EPOLLIN | EPOLLOUT);
            return completed;
        }
        fail_ssl(c->handshaking ? "handshake" : "tls i/o");
    }
}

int main(int argc, char **argv)
{
    int port = 0, conns = 10, tls12 = 0, server_pid = 0;
    double warmup = 0.3, duration = 1.0;
    long long msgs = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--tls12")) { tls12 = 1; continue; }
        if (!v)
            fail("usage", a);
        if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--conns")) conns = atoi(v);
        else if (!strcmp(a, "--size")) msg_size = (size_t)atol(v);
        else if (!strcmp(a, "--warmup")) warmup = atof(v);
        else if (!strcmp(a, "--duration")) duration = atof(v);
        else if (!strcmp(a, "--msgs")) msgs = atoll(v);
        else if (!strcmp(a, "--server-pid")) server_pid = atoi(v);
        else fail("usage", a);
        i++;
    }
    if (!port || conns <= 0 || !msg_size)
        fail("usage", "--port is required");

    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        fail_ssl("SSL_CTX_new");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
    if (tls12)
        SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);

    epfd = epoll_create1(0);
    struct conn *cs = calloc((size_t)conns, sizeof(*cs));
    for (int i = 0; i < conns; i++) {
        struct conn *c = &cs[i];
        struct sockaddr_in sa = {0};
        struct epoll_event e;
        int one = 1;
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
            fail("connect", strerror(errno));
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
        c->ssl = SSL_new(ctx);
        SSL_set_fd(c->ssl, c->fd);
        SSL_set_connect_state(c->ssl);
        c->handshaking = 1;
        c->msg = malloc(msg_size);
        c->back = malloc(msg_size);
        e.events = c->events = EPOLLIN | EPOLLOUT;
        e.data.ptr = c;
        epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &e);
    }

    int64_t start = now_ns(), last_progress = start, measure_start = 0,
            end = 0;
    long long total = 0, measured = 0, u0 = 0, s0 = 0, u1 = 0, s1 = 0;
    int open = conns, measuring = 0;
    struct epoll_event evs[256];
    while (open > 0) {
        int n = epoll_wait(epfd, evs, 256, 1000);
        int64_t t = now_ns();
        if (n < 0 && errno != EINTR)
            fail("epoll_wait", strerror(errno));
        for (int k = 0; k < n; k++) {
            struct conn *c = evs[k].data.ptr;
            long long got = drive(c, msgs);
            if (got) {
                total += got;
                last_progress = t;
                if (measuring)
                    measured += got;
            }
            if (c->closed)
                open--;
        }
        if (t - last_progress > STALL_NS)
            fail("stall", "the server made no progress");
        if (msgs)
            continue;
        if (!measuring && t - start >= (int64_t)(warmup * 1e9)) {
            measuring = 1;
            measure_start = t;
            if (server_pid && read_cpu_ticks(server_pid, &u0, &s0) < 0)
                fail("cpu", "cannot read the server's /proc stat");
        }
        else if (measuring && t - measure_start >= (int64_t)(duration * 1e9)) {
            end = t;
            if (server_pid && read_cpu_ticks(server_pid, &u1, &s1) < 0)
                fail("cpu", "cannot read the server's /proc stat");
            break;
        }
    }
    if (msgs) {
        printf("{\"msgs\": %lld, \"seconds\": %.6f}\n", total,
               (double)(now_ns() - start) / 1e9);
        return 0;
    }
    printf("{\"msgs\": %lld, \"seconds\": %.6f, \"utime_ticks\": %lld, "
           "\"stime_ticks\": %lld, \"clk_tck\": %ld}\n",
           measured, (double)(end - measure_start) / 1e9, u1 - u0, s1 - s0,
           sysconf(_SC_CLK_TCK));
    return 0;
}
