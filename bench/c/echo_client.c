/*
 * Load generator for the echo benchmarks.
 *
 * One thread, epoll, many connections.  Each connection keeps exactly one
 * message in flight: it writes SIZE bytes, waits until SIZE bytes have come
 * back, records the round-trip time and sends the next message.  The client
 * does far less work per message than any Python server, so on a machine with
 * a core for each side the server saturates first.
 *
 * usage: echo_client (--tcp HOST:PORT | --unix PATH) [--conns N] [--size BYTES]
 *                    [--warmup SECONDS] [--duration SECONDS] [--max-msgs N]
 *                    [--server-pid PID]
 *
 * The run stops by itself: after the warm-up it measures until DURATION has
 * passed or MAX-MSGS messages have been echoed, whichever comes first, and it
 * gives up when the server makes no progress for a few seconds.
 *
 * It checks every byte that comes back against what it sent, so a server
 * that loses, reorders or repeats data is reported as an error rather than
 * measured.
 *
 * With --server-pid it samples the server's CPU time (utime and stime from
 * /proc/PID/stat) at the start and the end of the measured window, so the CPU
 * cost per message excludes the server's start-up and the warm-up.
 *
 * It prints one JSON object on stdout.
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
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define STALL_NS (5LL * 1000000000LL)
#define READ_CHUNK (256 * 1024)

struct conn {
    int fd;
    char *msg;        /* the current message, stamped with its sequence number */
    uint64_t seq;
    size_t sent;      /* bytes of the current message written so far */
    size_t received;  /* bytes of the current message echoed so far */
    int64_t started;  /* when the first byte of the message was written */
    int want_out;     /* EPOLLOUT is registered */
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

/* utime and stime, in clock ticks, of a process.  Fields 14 and 15 of
 * /proc/PID/stat, counted after the parenthesised command name, which may
 * itself contain spaces. */
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
    p += 2; /* now at field 3, the state */
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

/* Writes as much of the current message as the socket takes. */
static void pump_write(struct conn *c)
{
    while (c->sent < msg_size) {
        ssize_t n = write(c->fd, c->msg + c->sent, msg_size - c->sent);
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

/* Every message differs from the one before it (its first and last bytes
 * carry a sequence number), so a server that echoes stale or reordered data
 * fails the comparison in the read loop instead of passing as fast. */
static void start_message(struct conn *c, int64_t t)
{
    c->seq++;
    size_t stamp = msg_size < sizeof c->seq ? msg_size : sizeof c->seq;
    memcpy(c->msg, &c->seq, stamp);
    memcpy(c->msg + msg_size - stamp, &c->seq, stamp);
    c->sent = 0;
    c->received = 0;
    c->started = t;
    pump_write(c);
}

static int connect_one(const char *tcp, const char *unix_path)
{
    int fd;
    if (tcp) {
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
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
            fail("connect", strerror(errno));
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    } else {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(unix_path) >= sizeof sa.sun_path)
            fail("usage", "unix path too long");
        strcpy(sa.sun_path, unix_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
            fail("connect", strerror(errno));
    }
    int flags = fcntl(fd, F_GETFL, 0);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    return fd;
}

int main(int argc, char **argv)
{
    const char *tcp = NULL, *unix_path = NULL;
    int nconns = 10, server_pid = 0;
    double warmup = 0.3, duration = 1.0;
    long long max_msgs = 1000000;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            fail("usage", a);
        if (!strcmp(a, "--tcp"))
            tcp = v;
        else if (!strcmp(a, "--unix"))
            unix_path = v;
        else if (!strcmp(a, "--conns"))
            nconns = atoi(v);
        else if (!strcmp(a, "--size"))
            msg_size = (size_t)atol(v);
        else if (!strcmp(a, "--warmup"))
            warmup = atof(v);
        else if (!strcmp(a, "--duration"))
            duration = atof(v);
        else if (!strcmp(a, "--max-msgs"))
            max_msgs = atoll(v);
        else if (!strcmp(a, "--server-pid"))
            server_pid = atoi(v);
        else
            fail("unknown option", a);
        i++;
    }
    if ((!tcp) == (!unix_path))
        fail("usage", "give exactly one of --tcp and --unix");
    if (nconns < 1 || nconns > 10000 || msg_size < 1 || max_msgs < 1 ||
        max_msgs > 100000000LL || duration <= 0 || duration > 3600 || warmup < 0)
        fail("usage", "option out of range");

    signal(SIGPIPE, SIG_IGN);
    char *scratch = malloc(READ_CHUNK);
    /* A latency sample per measured message; max_msgs bounds the memory. */
    int64_t *lat = malloc((size_t)max_msgs * sizeof *lat);
    struct conn *conns = calloc((size_t)nconns, sizeof *conns);
    struct epoll_event *events = calloc((size_t)nconns, sizeof *events);
    if (!scratch || !lat || !conns || !events)
        fail("malloc", "out of memory");
    for (int i = 0; i < nconns; i++) {
        if (!(conns[i].msg = malloc(msg_size)))
            fail("malloc", "out of memory");
        for (size_t j = 0; j < msg_size; j++)
            conns[i].msg[j] = (char)('a' + (i + j) % 26);
    }

    epfd = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < nconns; i++) {
        conns[i].fd = connect_one(tcp, unix_path);
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
    long long nlat = 0;
    int64_t last_progress = t_begin;

    for (int i = 0; i < nconns; i++)
        start_message(&conns[i], t_begin);

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
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (events[i].events & EPOLLOUT)
                pump_write(c);
            if (!(events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                continue;
            for (;;) {
                ssize_t r = read(c->fd, scratch, READ_CHUNK);
                if (r == 0)
                    fail("read", "server closed the connection");
                if (r < 0) {
                    if (errno == EINTR)
                        continue;
                    if (errno == EAGAIN || errno == EWOULDBLOCK)
                        break;
                    fail("read", strerror(errno));
                }
                if (c->received + (size_t)r > c->sent)
                    fail("protocol", "received more than was sent");
                if (memcmp(scratch, c->msg + c->received, (size_t)r) != 0)
                    fail("protocol", "echoed data differs from what was sent");
                c->received += (size_t)r;
                if (c->received == msg_size) {
                    if (measuring && nlat < max_msgs) {
                        lat[nlat++] = t - c->started;
                        count++;
                    }
                    last_progress = t;
                    start_message(c, t);
                    break;
                }
                if ((size_t)r < READ_CHUNK)
                    break;
            }
        }
        if (!measuring && t >= t_measure) {
            measuring = 1;
            t_start_measured = t;
            if (server_pid)
                have_cpu = read_cpu_ticks(server_pid, &ut0, &st0) == 0;
        }
        if (measuring && (t >= t_end || count >= max_msgs))
            break;
        if (t - last_progress > STALL_NS)
            fail("stalled", "no echo for 5 seconds");
    }
    int64_t t_stop = now_ns();
    if (have_cpu)
        have_cpu = read_cpu_ticks(server_pid, &ut1, &st1) == 0;

    for (int i = 0; i < nconns; i++)
        close(conns[i].fd);

    double elapsed = (double)(t_stop - t_start_measured) / 1e9;
    double p50 = 0, p90 = 0, p99 = 0, pmax = 0;
    if (nlat > 0) {
        qsort(lat, (size_t)nlat, sizeof *lat, cmp_i64);
        p50 = lat[(nlat - 1) * 50 / 100] / 1e3;
        p90 = lat[(nlat - 1) * 90 / 100] / 1e3;
        p99 = lat[(nlat - 1) * 99 / 100] / 1e3;
        pmax = lat[nlat - 1] / 1e3;
    }
    printf("{\"messages\": %lld, \"elapsed_s\": %.6f, \"msgs_per_s\": %.1f, "
           "\"p50_us\": %.1f, \"p90_us\": %.1f, \"p99_us\": %.1f, \"max_us\": %.1f",
           count, elapsed, elapsed > 0 ? count / elapsed : 0.0, p50, p90, p99, pmax);
    if (have_cpu)
        printf(", \"server_utime_ticks\": %lld, \"server_stime_ticks\": %lld, \"clk_tck\": %ld",
               ut1 - ut0, st1 - st0, sysconf(_SC_CLK_TCK));
    printf("}\n");
    return 0;
}
