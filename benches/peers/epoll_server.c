/*
 * The C peer of `examples/echo.rs` and `examples/http.rs`, for `benches/echo_load.rs` and
 * `benches/http_load.rs`: the physical limit reactor is judged against.
 *
 *     cc -O2 -o epoll_server benches/peers/epoll_server.c
 *     epoll_server echo ADDR
 *     epoll_server http ADDR
 *
 * ADDR is like 127.0.0.1:0 or [::1]:8080 (port 0 picks a free port). Prints `listening on
 * IP:PORT` once it is ready and exits with status 0 on SIGINT or SIGTERM, like the examples.
 *
 * What a careful C programmer writes for one core, with nothing in the way: one thread, one
 * edge-triggered epoll set, one `epoll_wait` for up to 1024 events, one 64 KiB read buffer for
 * the whole loop (as reactor's), and per connection only a small struct, plus a heap buffer
 * while the client is not taking what we write. Each socket is registered once, for input and
 * output together, and never modified: pausing and resuming cost no `epoll_ctl`.
 *
 * - echo: every byte read is written back at once. A short write keeps the rest in the
 *   connection's heap buffer and stops reading until the buffer is flushed (backpressure: the
 *   kernel's receive buffer fills and TCP slows the client down). On the client's half-close
 *   the rest of the echo is sent and the connection closed, as reactor's `on_eof` does.
 * - http: every request must be a `GET ` with no body; each complete head (up to `\r\n\r\n`)
 *   gets the same fixed `Hello, World!` response, shaped byte for byte like reactor's (115
 *   bytes, `Date` cached and rebuilt once a second). All the requests of one read are answered
 *   with one write (pipelining); a partial head is kept for the next read; connections are
 *   kept alive with no idle timeout. Anything else gets a 400 and the connection is closed.
 *
 * Reading: a read shorter than the space given proves the socket empty, since data arriving
 * later raises a new edge, so the `read` that would fail with EAGAIN is skipped; reactor does
 * the same. Once the peer's FIN has been reported (EPOLLRDHUP), its edge is spent, and reading
 * goes on until `read` returns 0.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The loop's one read buffer, as reactor's READ_BUFFER_SIZE. */
#define READ_BUF (64 * 1024)
/* Events taken by one epoll_wait. */
#define MAX_EVENTS 1024
/* The listen backlog, as reactor's listeners. */
#define BACKLOG 1024
/* Longest request head kept across reads; a longer one is refused. */
#define MAX_HEAD (8 * 1024)
/* The shortest request a connection can send: "GET " and the head's end. */
#define MIN_REQUEST 8

/* ------------------------------------------------------------------------------------------ */
/* The HTTP response                                                                          */
/* ------------------------------------------------------------------------------------------ */

/* The answer to every GET; the date (29 bytes of IMF-fixdate) is written in place. */
static char response[] = "HTTP/1.1 200 OK\r\n"
                         "Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
                         "Content-Type: text/plain\r\n"
                         "Content-Length: 13\r\n"
                         "\r\n"
                         "Hello, World!";
#define RESPONSE_LEN (sizeof response - 1)
#define DATE_AT (sizeof "HTTP/1.1 200 OK\r\nDate: " - 1)
_Static_assert(RESPONSE_LEN == 115, "the same length as reactor's response");

static const char bad_request[] = "HTTP/1.1 400 Bad Request\r\n"
                                  "Content-Length: 0\r\n"
                                  "Connection: close\r\n"
                                  "\r\n";

/* The second the date in `response` is for. */
static time_t date_second = -1;

/* Rewrites the date if the wall-clock second has changed: one vDSO call per loop iteration. */
static void refresh_date(void) {
    time_t now = time(NULL);
    if (now == date_second)
        return;
    struct tm tm;
    char text[32];
    gmtime_r(&now, &tm);
    /* The C locale (never changed here) gives the English names IMF-fixdate wants. */
    strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    memcpy(response + DATE_AT, text, 29);
    date_second = now;
}

/* ------------------------------------------------------------------------------------------ */
/* Connections                                                                                */
/* ------------------------------------------------------------------------------------------ */

struct conn {
    int fd;
    /* The peer's FIN was reported: read on until `read` returns 0. */
    unsigned rdhup : 1;
    /* Close once `out` is flushed (the client half-closed, or was refused); read no more. */
    unsigned closing : 1;
    /* Output the socket did not take, from `out_off` to `out_len`; NULL when none. While it
     * is there, the connection is not read. */
    char *out;
    size_t out_off, out_len;
    /* http: the start of a request head whose end has not come yet; NULL when none. */
    char *head;
    size_t head_len;
};

/* epoll's data for the listener and the signalfd; connections use their struct's address. */
static char listener_tag, signals_tag;

static int http_mode;
/* The loop's buffers: what is read, and (http) the responses to one read. Untouched pages of
 * `wbuf` cost no memory. */
static char rbuf[READ_BUF];
static char wbuf[(READ_BUF / MIN_REQUEST + 1) * RESPONSE_LEN + sizeof bad_request];

static void conn_close(struct conn *c) {
    close(c->fd); /* also takes it out of the epoll set */
    free(c->out);
    free(c->head);
    free(c);
}

/* What became of a write. */
enum sent { SENT_ALL, SENT_BLOCKED, SENT_CLOSED };

/* Writes `len` bytes of `data` (the loop's buffer); what the socket does not take is copied to
 * the connection's heap buffer, to be flushed on EPOLLOUT. */
static enum sent send_out(struct conn *c, const char *data, size_t len) {
    while (len > 0) {
        ssize_t n = write(c->fd, data, len);
        if (n >= 0) {
            data += n;
            len -= (size_t)n;
        } else if (errno == EAGAIN) {
            c->out = malloc(len);
            if (c->out == NULL) {
                conn_close(c);
                return SENT_CLOSED;
            }
            memcpy(c->out, data, len);
            c->out_off = 0;
            c->out_len = len;
            return SENT_BLOCKED;
        } else if (errno != EINTR) {
            conn_close(c); /* reset by the client, or broken pipe */
            return SENT_CLOSED;
        }
    }
    return SENT_ALL;
}

/* On EPOLLOUT: writes out the heap buffer. Returns SENT_ALL once it is empty (and freed). */
static enum sent flush_out(struct conn *c) {
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n >= 0)
            c->out_off += (size_t)n;
        else if (errno == EAGAIN)
            return SENT_BLOCKED;
        else if (errno != EINTR) {
            conn_close(c);
            return SENT_CLOSED;
        }
    }
    free(c->out);
    c->out = NULL;
    return SENT_ALL;
}

/* http: answers every complete request in `rbuf[0..len]`, into `wbuf`; keeps an incomplete
 * head in the connection, or refuses what is not a GET (400, then close). Returns the length
 * of the responses. */
static size_t answer(struct conn *c, size_t len) {
    size_t at = 0, out = 0;
    while (at < len) {
        const char *req = rbuf + at;
        size_t left = len - at;
        /* The method, or as much of it as has come. */
        if (memcmp(req, "GET ", left < 4 ? left : 4) != 0)
            goto refuse;
        const char *end = left < 4 ? NULL : memmem(req + 4, left - 4, "\r\n\r\n", 4);
        if (end == NULL) {
            /* A partial head: kept for the next read, unless it is already too long. */
            if (left > MAX_HEAD)
                goto refuse;
            c->head = malloc(left);
            if (c->head == NULL)
                goto refuse;
            memcpy(c->head, req, left);
            c->head_len = left;
            break;
        }
        memcpy(wbuf + out, response, RESPONSE_LEN);
        out += RESPONSE_LEN;
        at = (size_t)(end + 4 - rbuf);
    }
    return out;
refuse:
    memcpy(wbuf + out, bad_request, sizeof bad_request - 1);
    c->closing = 1;
    return out + sizeof bad_request - 1;
}

/* Reads until the socket is empty, the output blocks, or the connection ends, and answers
 * each read: echo writes back what it read, http the responses to the requests in it. */
static void on_readable(struct conn *c) {
    for (;;) {
        /* http: a partial head from the last read goes first, so that heads are contiguous. */
        size_t kept = c->head_len;
        if (kept > 0)
            memcpy(rbuf, c->head, kept);
        size_t space = sizeof rbuf - kept;
        ssize_t n = read(c->fd, rbuf + kept, space);
        if (n > 0) {
            enum sent sent;
            if (http_mode) {
                if (kept > 0) {
                    free(c->head);
                    c->head = NULL;
                    c->head_len = 0;
                }
                size_t out = answer(c, kept + (size_t)n);
                sent = send_out(c, wbuf, out);
            } else {
                sent = send_out(c, rbuf, (size_t)n);
            }
            if (sent == SENT_CLOSED)
                return;
            if (c->closing && sent == SENT_ALL) {
                conn_close(c);
                return;
            }
            /* Blocked: stop reading until EPOLLOUT has flushed the rest. */
            if (sent == SENT_BLOCKED || c->closing)
                return;
            /* A short read: the socket is empty (see the top of the file). */
            if ((size_t)n < space && !c->rdhup)
                return;
        } else if (n == 0) {
            /* The client half-closed: finish the output, then close. */
            if (c->out == NULL)
                conn_close(c);
            else
                c->closing = 1;
            return;
        } else if (errno == EAGAIN) {
            return;
        } else if (errno != EINTR) {
            conn_close(c); /* reset by the client */
            return;
        }
    }
}

/* One event of a connection. */
static void on_conn_event(struct conn *c, uint32_t events) {
    if (events & EPOLLERR) {
        conn_close(c);
        return;
    }
    if (events & EPOLLRDHUP)
        c->rdhup = 1;
    int resumed = 0;
    if (c->out != NULL) {
        /* Paused on a full socket: only a flush (or its failure) can move things on. */
        if (!(events & (EPOLLOUT | EPOLLHUP)))
            return;
        enum sent sent = flush_out(c);
        if (sent != SENT_ALL)
            return;
        if (c->closing) {
            conn_close(c);
            return;
        }
        /* Data that came while paused spent its edge: read it now. */
        resumed = 1;
    }
    if (resumed || (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)))
        on_readable(c);
}

/* ------------------------------------------------------------------------------------------ */
/* Listening and the loop                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* Accepts every waiting connection (the listener is edge-triggered too). */
static void on_listener(int lfd, int ep) {
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            /* EAGAIN: all taken. EMFILE and the like: the rest wait for the next edge. */
            return;
        }
        /* Nagle off, as reactor's listeners set it on every accepted socket. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->fd = fd;
        /* Registered once, for both directions: EPOLLOUT only rises after a write found the
         * socket full, so it costs nothing until then. */
        struct epoll_event ev = {
            .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
            .data.ptr = c,
        };
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
            conn_close(c);
    }
}

/* Parses ADDR (`IP:PORT`, `[IPv6]:PORT`) into `ss`; returns its length, or 0. */
static socklen_t parse_addr(const char *arg, struct sockaddr_storage *ss) {
    char host[64];
    const char *colon = strrchr(arg, ':');
    if (colon == NULL || (size_t)(colon - arg) >= sizeof host)
        return 0;
    memcpy(host, arg, (size_t)(colon - arg));
    host[colon - arg] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || port < 0 || port > 65535)
        return 0;
    memset(ss, 0, sizeof *ss);
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        host[hl - 1] = '\0';
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        return inet_pton(AF_INET6, host + 1, &a->sin6_addr) == 1 ? sizeof *a : 0;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? sizeof *a : 0;
}

static int die(const char *what) {
    perror(what);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3 || (strcmp(argv[1], "echo") != 0 && strcmp(argv[1], "http") != 0)) {
        fprintf(stderr, "usage: epoll_server echo|http ADDR\n");
        return 2;
    }
    http_mode = strcmp(argv[1], "http") == 0;
    struct sockaddr_storage ss;
    socklen_t sslen = parse_addr(argv[2], &ss);
    if (sslen == 0) {
        fprintf(stderr, "epoll_server: \"%s\" is not an address like 127.0.0.1:7000\n", argv[2]);
        return 2;
    }

    /* 10,000 connections need 10,000 descriptors: soft limit up to the hard one. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    /* A write to a reset connection fails with EPIPE instead of killing the process. */
    signal(SIGPIPE, SIG_IGN);

    /* SIGINT and SIGTERM arrive through a signalfd in the epoll set: no handler, no EINTR. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
        return die("sigprocmask");
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0)
        return die("signalfd");

    int lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        return die("socket");
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&ss, sslen) < 0)
        return die(argv[2]);
    if (listen(lfd, BACKLOG) < 0)
        return die("listen");

    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        return die("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.ptr = &listener_tag};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
        return die("epoll_ctl");
    ev = (struct epoll_event){.events = EPOLLIN, .data.ptr = &signals_tag};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev) < 0)
        return die("epoll_ctl");

    /* Ready: say where, and flush, since whoever reads the line may connect at once. */
    sslen = sizeof ss;
    if (getsockname(lfd, (struct sockaddr *)&ss, &sslen) < 0)
        return die("getsockname");
    char ip[INET6_ADDRSTRLEN];
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        printf("listening on [%s]:%u\n", ip, ntohs(a->sin6_port));
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        printf("listening on %s:%u\n", ip, ntohs(a->sin_port));
    }
    fflush(stdout);

    /* The loop: wait, then handle each event. A connection is in the set once, so it is in
     * one batch at most once, and closing it cannot leave a stale event behind. */
    static struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return die("epoll_wait");
        }
        if (http_mode)
            refresh_date();
        for (int i = 0; i < n; i++) {
            void *tag = events[i].data.ptr;
            if (tag == &listener_tag) {
                on_listener(lfd, ep);
            } else if (tag == &signals_tag) {
                /* SIGINT or SIGTERM: done. The kernel closes what is left. */
                return 0;
            } else {
                on_conn_event(tag, events[i].events);
            }
        }
    }
}
