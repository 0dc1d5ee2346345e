/*
 * Load generator for the HTTP/1.1 keep-alive benchmark.
 *
 * One thread, epoll, many keep-alive connections.  Each connection keeps
 * exactly one request in flight: it writes a small GET request, reads the
 * response (headers, then Content-Length bytes of body), records the round
 * trip and sends the next request on the same connection.  Like the echo
 * client, it does far less work per request than a Python server.
 *
 * usage: http_client --tcp HOST:PORT [--conns N] [--warmup SECONDS]
 *                    [--duration SECONDS] [--max-reqs N] [--server-pid PID]
 *
 * After the warm-up it measures until DURATION has passed or MAX-REQS
 * responses have arrived, whichever comes first, and gives up when the
 * server makes no progress for a few seconds.  A response that is not
 * "HTTP/1.1 200" with a Content-Length, or that closes the connection, is an
 * error.  With --server-pid it samples the server's utime and stime around
 * the measured window.  It prints one JSON object on stdout.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define STALL_NS (5LL * 1000000000LL)
#define RESP_MAX (8 * 1024)

static const char request[] =
    "GET / HTTP/1.1\r\n"
    "Host: 127.0.0.1\r\n"
    "User-Agent: turboloop-bench\r\n"
    "Accept: */*\r\n"
    "\r\n";

struct conn {
    int fd;
    size_t sent;      /* bytes of the request written so far */
    size_t got;       /* bytes of the response read so far */
    size_t need;      /* total length of the response, once the head is in */
    int64_t started;
    int want_out;
    char buf[RESP_MAX];
};

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

static int read_cpu_ticks(int pid, long long *utime, long long *stime)
{
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p += 2;
    for (int field = 3; field < 14; field++) {
        p = strchr(p, ' ');
        if (!p)
            return -1;
        p++;
    }
    if (sscanf(p, "%lld %lld", utime, stime) != 2)
        return -1;
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void set_interest(struct conn *c, int want_out)
{
    if (c->want_out == want_out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        fail("epoll_ctl", strerror(errno));
    c->want_out = want_out;
}

static void pump_write(struct conn *c)
{
    size_t len = sizeof request - 1;
    while (c->sent < len) {
        ssize_t n = write(c->fd, request + c->sent, len - c->sent);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                set_interest(c, 1);
                return;
            }
            fail("write", strerror(errno));
        }
        c->sent += (size_t)n;
    }
    set_interest(c, 0);
}

static void start_request(struct conn *c, int64_t t)
{
    c->sent = 0;
    c->got = 0;
    c->need = 0;
    c->started = t;
    pump_write(c);
}

/* Once the head is complete, the response's total length; 0 while the
 * head is incomplete. */
static size_t response_length(struct conn *c)
{
    char *end = memmem(c->buf, c->got, "\r\n\r\n", 4);
    if (!end)
        return 0;
    size_t head = (size_t)(end - c->buf) + 4;
    if (c->got < 12 || memcmp(c->buf, "HTTP/1.1 200", 12) != 0)
        fail("protocol", "status is not HTTP/1.1 200");
    long length = -1;
    for (char *p = c->buf; p < end;) {
        char *eol = memmem(p, (size_t)(end + 2 - p), "\r\n", 2);
        if (!eol)
            break;
        if ((size_t)(eol - p) > 15 && strncasecmp(p, "Content-Length:", 15) == 0)
            length = strtol(p + 15, NULL, 10);
        p = eol + 2;
    }
    if (length < 0)
        fail("protocol", "response without Content-Length");
    if (head + (size_t)length > RESP_MAX)
        fail("protocol", "response too large");
    return head + (size_t)length;
}

static int connect_tcp(const char *tcp)
{
    char host[256];
    snprintf(host, sizeof host, "%s", tcp);
    char *colon = strrchr(host, ':');
    if (!colon)
        fail("usage", "--tcp wants HOST:PORT");
    *colon = '\0';
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((unsigned short)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        fail("usage", "bad IPv4 address");
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        fail("connect", strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int flags = fcntl(fd, F_GETFL, 0);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    return fd;
}

int main(int argc, char **argv)
{
    const char *tcp = NULL;
    int nconns = 10, server_pid = 0;
    double warmup = 0.3, duration = 1.0;
    long long max_reqs = 1000000;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            fail("usage", a);
        if (!strcmp(a, "--tcp"))
            tcp = v;
        else if (!strcmp(a, "--conns"))
            nconns = atoi(v);
        else if (!strcmp(a, "--warmup"))
            warmup = atof(v);
        else if (!strcmp(a, "--duration"))
            duration = atof(v);
        else if (!strcmp(a, "--max-reqs"))
            max_reqs = atoll(v);
        else if (!strcmp(a, "--server-pid"))
            server_pid = atoi(v);
        else
            fail("unknown option", a);
        i++;
    }
    if (!tcp)
        fail("usage", "--tcp HOST:PORT is required");
    if (nconns < 1 || nconns > 10000 || max_reqs < 1 || max_reqs > 100000000LL ||
        duration <= 0 || duration > 3600 || warmup < 0)
        fail("usage", "option out of range");

    signal(SIGPIPE, SIG_IGN);
    int64_t *lat = malloc((size_t)max_reqs * sizeof *lat);
    struct conn *conns = calloc((size_t)nconns, sizeof *conns);
    struct epoll_event *events = calloc((size_t)nconns, sizeof *events);
    if (!lat || !conns || !events)
        fail("malloc", "out of memory");

    epfd = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < nconns; i++) {
        conns[i].fd = connect_tcp(tcp);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, conns[i].fd, &ev) < 0)
            fail("epoll_ctl", strerror(errno));
    }

    int64_t t_begin = now_ns();
    int64_t t_measure = t_begin + (int64_t)(warmup * 1e9);
    int64_t t_end = t_measure + (int64_t)(duration * 1e9);
    int measuring = warmup <= 0;
    long long ut0 = 0, st0 = 0, ut1 = 0, st1 = 0;
    int have_cpu = 0;
    if (measuring && server_pid)
        have_cpu = read_cpu_ticks(server_pid, &ut0, &st0) == 0;
    int64_t t_start_measured = measuring ? t_begin : 0;
    long long count = 0;
    int64_t last_progress = t_begin;

    for (int i = 0; i < nconns; i++)
        start_request(&conns[i], t_begin);

    int64_t t = t_begin;
    while (1) {
        int64_t deadline = measuring ? t_end : t_measure;
        int timeout_ms = (int)((deadline - t) / 1000000) + 1;
        int n = epoll_wait(epfd, events, nconns, timeout_ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fail("epoll_wait", strerror(errno));
        }
        t = now_ns();
        for (int i = 0; i < n && !(measuring && count >= max_reqs); i++) {
            struct conn *c = events[i].data.ptr;
            if (events[i].events & EPOLLOUT)
                pump_write(c);
            if (!(events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                continue;
            for (;;) {
                ssize_t r = read(c->fd, c->buf + c->got, RESP_MAX - c->got);
                if (r == 0)
                    fail("read", "server closed the connection");
                if (r < 0) {
                    if (errno == EINTR)
                        continue;
                    if (errno == EAGAIN || errno == EWOULDBLOCK)
                        break;
                    fail("read", strerror(errno));
                }
                c->got += (size_t)r;
                if (!c->need)
                    c->need = response_length(c);
                if (c->need && c->got > c->need)
                    fail("protocol", "more bytes than the response");
                if (c->need && c->got == c->need) {
                    if (measuring) {
                        lat[count++] = t - c->started;
                    }
                    last_progress = t;
                    if (!(measuring && count >= max_reqs))
                        start_request(c, t);
                    break;
                }
                if (c->got == RESP_MAX)
                    fail("protocol", "response too large");
            }
        }
        if (!measuring && t >= t_measure) {
            measuring = 1;
            t_start_measured = t;
            if (server_pid)
                have_cpu = read_cpu_ticks(server_pid, &ut0, &st0) == 0;
        }
        if (measuring && (t >= t_end || count >= max_reqs))
            break;
        if (t - last_progress > STALL_NS)
            fail("stalled", "no response for 5 seconds");
    }
    int64_t t_stop = now_ns();
    if (have_cpu)
        have_cpu = read_cpu_ticks(server_pid, &ut1, &st1) == 0;

    for (int i = 0; i < nconns; i++)
        close(conns[i].fd);

    double elapsed = (double)(t_stop - t_start_measured) / 1e9;
    double p50 = 0, p99 = 0;
    if (count > 0) {
        qsort(lat, (size_t)count, sizeof *lat, cmp_i64);
        p50 = lat[(count - 1) * 50 / 100] / 1e3;
        p99 = lat[(count - 1) * 99 / 100] / 1e3;
    }
    printf("{\"requests\": %lld, \"elapsed_s\": %.6f, \"req_per_s\": %.1f, "
           "\"p50_us\": %.1f, \"p99_us\": %.1f",
           count, elapsed, elapsed > 0 ? count / elapsed : 0.0, p50, p99);
    if (have_cpu)
        printf(", \"server_utime_ticks\": %lld, \"server_stime_ticks\": %lld, \"clk_tck\": %ld",
               ut1 - ut0, st1 - st0, sysconf(_SC_CLK_TCK));
    printf("}\n");
    return 0;
}
