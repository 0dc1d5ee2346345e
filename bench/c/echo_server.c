/*
 * A plain C epoll echo server: the floor the Python event loops are compared
 * against.  It does the least work an echo server can do on Linux (one read,
 * one write, no allocation per message), so its CPU time per message is what
 * the kernel and the loopback device cost on their own.
 *
 * usage: echo_server --tcp 127.0.0.1:0 | --unix PATH
 *
 * Once listening it prints "READY <port-or-path>" on stdout and serves until
 * it is killed or its standard input is closed.  It binds only the address it
 * is given; the benchmark runner gives it a loopback address or a Unix path.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define BUF_SIZE (256 * 1024)
#define MAX_EVENTS 256

/* Per connection: bytes read but not yet written back.  While anything is
 * pending the connection stops reading, which is the back-pressure an echo
 * server needs so a slow reader cannot make it buffer without bound. */
struct conn {
    int fd;
    size_t pending_off;
    size_t pending_len;
    char *buf;
};

static int epfd;
static int listen_fd;

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void close_conn(struct conn *c)
{
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->buf);
    free(c);
}

static void set_interest(struct conn *c, unsigned events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        die("epoll_ctl mod");
}

/* Writes what is pending; returns 0 when all of it went out, 1 when the
 * socket is full, -1 when the connection is gone. */
static int flush_pending(struct conn *c)
{
    while (c->pending_len > 0) {
        ssize_t n = write(c->fd, c->buf + c->pending_off, c->pending_len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 1;
            return -1;
        }
        c->pending_off += (size_t)n;
        c->pending_len -= (size_t)n;
    }
    c->pending_off = 0;
    return 0;
}

static void on_readable(struct conn *c)
{
    for (;;) {
        ssize_t n = read(c->fd, c->buf, BUF_SIZE);
        if (n == 0) {
            close_conn(c);
            return;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            close_conn(c);
            return;
        }
        c->pending_off = 0;
        c->pending_len = (size_t)n;
        int r = flush_pending(c);
        if (r < 0) {
            close_conn(c);
            return;
        }
        if (r > 0) {
            set_interest(c, EPOLLOUT);
            return;
        }
        /* A short read means the socket is drained; skip the read that
         * would only return EAGAIN. */
        if ((size_t)n < BUF_SIZE)
            return;
    }
}

static void on_writable(struct conn *c)
{
    int r = flush_pending(c);
    if (r < 0)
        close_conn(c);
    else if (r == 0)
        set_interest(c, EPOLLIN);
}

static void on_accept(int is_tcp)
{
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            return; /* EAGAIN, or a transient error: wait for the next event */
        }
        if (is_tcp) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        struct conn *c = calloc(1, sizeof *c);
        if (!c || !(c->buf = malloc(BUF_SIZE)))
            die("malloc");
        c->fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
            die("epoll_ctl add");
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s --tcp HOST:PORT | --unix PATH\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int is_tcp = strcmp(argv[1], "--tcp") == 0;
    char ready[512];

    if (is_tcp) {
        char host[256];
        snprintf(host, sizeof host, "%s", argv[2]);
        char *colon = strrchr(host, ':');
        if (!colon) {
            fprintf(stderr, "--tcp wants HOST:PORT\n");
            return 2;
        }
        *colon = '\0';
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((unsigned short)atoi(colon + 1))};
        if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
            fprintf(stderr, "bad IPv4 address %s\n", host);
            return 2;
        }
        listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (listen_fd < 0)
            die("socket");
        int one = 1;
        setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(listen_fd, (struct sockaddr *)&sa, sizeof sa) < 0)
            die("bind");
        socklen_t len = sizeof sa;
        getsockname(listen_fd, (struct sockaddr *)&sa, &len);
        snprintf(ready, sizeof ready, "%d", ntohs(sa.sin_port));
    } else if (strcmp(argv[1], "--unix") == 0) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(argv[2]) >= sizeof sa.sun_path) {
            fprintf(stderr, "unix path too long\n");
            return 2;
        }
        strcpy(sa.sun_path, argv[2]);
        unlink(argv[2]);
        listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (listen_fd < 0)
            die("socket");
        if (bind(listen_fd, (struct sockaddr *)&sa, sizeof sa) < 0)
            die("bind");
        snprintf(ready, sizeof ready, "%s", argv[2]);
    } else {
        fprintf(stderr, "unknown option %s\n", argv[1]);
        return 2;
    }
    if (listen(listen_fd, 1024) < 0)
        die("listen");

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1");
    /* data.ptr NULL marks the listening socket; &epfd marks stdin. */
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, listen_fd, &ev) < 0)
        die("epoll_ctl listen");
    struct epoll_event sev = {.events = EPOLLIN, .data.ptr = &epfd};
    /* Watching stdin lets the server exit when the runner goes away, so a
     * crashed runner never leaves a server behind.  It fails harmlessly
     * when stdin is a regular file. */
    epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &sev);

    printf("READY %s\n", ready);
    fflush(stdout);

    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(epfd, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            void *p = events[i].data.ptr;
            if (p == NULL) {
                on_accept(is_tcp);
            } else if (p == &epfd) {
                char tmp[64];
                if (read(0, tmp, sizeof tmp) <= 0)
                    return 0;
            } else {
                struct conn *c = p;
                if (events[i].events & EPOLLOUT)
                    on_writable(c);
                else
                    on_readable(c);
            }
        }
    }
}
