/* SPDX-License-Identifier: Apache-2.0 */
/* Integration: the ingress under abuse — bodies, URLs and headers over
 * their limits, thousands of slow connections (slowloris), too many
 * connections from one address, and malformed requests — against the real
 * turnstile-api, with the worker, broker and PostgreSQL behind it.
 *
 * Raw sockets, non-blocking and driven by poll(), play the abusers; a
 * libcurl client plays the well-behaved user who must still be served.
 * The abusers connect from several loopback addresses (all of 127.0.0.0/8
 * is loopback on Linux), as distinct clients would. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"
#include "http_client.h"
#include "ts_time.h"
#include "ts_uuid.h"

/* The API under attack (slot 0): short timeouts so that the tests can
 * watch them at work. TS_REPLY_TIMEOUT_MS must stay a second under the
 * request timeout. */
#define REQUEST_TIMEOUT_S 3
#define IDLE_TIMEOUT_S 2
/* "A few seconds" of grace past a timeout: the server's timer granularity
 * and this test's own loop. */
#define GRACE_S 3

static it_env env;
static char base[64];   /* slot 0 */
static char capped[64]; /* slot 1: TS_MAX_CONNECTIONS_PER_IP=50, started by its test */
static char event_id[TS_UUID_LEN + 1];

static int port_of(const char *url) {
    const char *colon = strrchr(url, ':');
    return colon ? atoi(colon + 1) : 0;
}

static int setup(void **state) {
    (void)state;
    if (it_setup(&env, 4, 2)) /* reply partition 0: this test; 1: the APIs */
        return -1;
    it_start_worker(&env, 0);
    const char *extra[] = {"TS_AUTH=off", "TS_REQUEST_TIMEOUT_S=3", "TS_IDLE_TIMEOUT_S=2",
                           "TS_REPLY_TIMEOUT_MS=2000", NULL};
    it_start_api_env(&env, 0, 1, extra, base, sizeof base);
    char url[128], when[TS_ISO8601_LEN + 1], body[256];
    ts_time_format_iso8601(ts_now_ms() + 30LL * 86400000, when);
    snprintf(url, sizeof url, "%s/api/events", base);
    snprintf(body, sizeof body,
             "{\"title\":\"Abuse\",\"starts_at\":\"%s\",\"location\":\"Gate\",\"capacity\":100000}",
             when);
    it_http_result r = it_http("POST", url, body, NULL);
    int rc = r.status == 201 && ts_uuid_normalize(it_json_str(&r, "id"), event_id) == 0 ? 0 : -1;
    if (rc)
        fprintf(stderr, "setup: create event: %ld %s\n", r.status, r.body ? r.body : "");
    it_http_free(&r);
    return rc;
}

static int teardown(void **state) {
    (void)state;
    it_teardown(&env);
    return 0;
}

/* ------------------------------------------------------------ raw sockets */

/* A TCP connection from `source` to 127.0.0.1:port; non-blocking, so the
 * connection may still be under way. -1 if the socket cannot be made. */
static int open_from(const char *source, int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, source, &a.sin_addr);
    if (bind(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    if (connect(fd, (struct sockaddr *)&to, sizeof to) && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Waits up to ms for fd's connection; 0 once connected, else -1. */
static int await_connected(int fd, int ms) {
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int err = 0;
    socklen_t len = sizeof err;
    if (poll(&p, 1, ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) || err)
        return -1;
    return 0;
}

/* Sends all of buf within ms, as far as the peer takes it; -1 if it
 * closed or did not take it in time. */
static int send_all(int fd, const char *buf, size_t len, int ms) {
    int64_t deadline = ts_monotonic_ms() + ms;
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        int64_t left = deadline - ts_monotonic_ms();
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (left <= 0 || poll(&p, 1, (int)left) != 1)
            return -1;
    }
    return 0;
}

/* What the server did with a request on a connection. */
typedef struct outcome {
    int status;     /* of the first status line, 0 if none came */
    bool closed;    /* EOF or reset seen */
    int64_t ms;     /* from the call to the status line (or the close) */
    char head[256]; /* the first bytes it sent */
} outcome;

/* Reads from fd until a status line arrives (or, with until_closed, until
 * the connection closes), the connection closes, or ms pass. */
static outcome read_outcome(int fd, int ms, bool until_closed) {
    outcome o = {0};
    size_t have = 0;
    int64_t t0 = ts_monotonic_ms();
    for (;;) {
        int64_t left = t0 + ms - ts_monotonic_ms();
        if (left <= 0)
            break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) != 1)
            continue;
        char buf[4096];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            continue;
        if (n <= 0) {
            o.closed = true;
            o.ms = ts_monotonic_ms() - t0;
            break;
        }
        size_t take = (size_t)n < sizeof o.head - 1 - have ? (size_t)n : sizeof o.head - 1 - have;
        memcpy(o.head + have, buf, take);
        have += take;
        o.head[have] = '\0';
        if (!o.status && strstr(o.head, "\r\n") && strncmp(o.head, "HTTP/1.", 7) == 0) {
            o.status = atoi(o.head + 9);
            o.ms = ts_monotonic_ms() - t0;
            if (!until_closed)
                break;
        }
    }
    return o;
}

/* One raw request from 127.0.0.1 on a connection of its own. */
static outcome raw_request(const char *request, size_t len, int ms) {
    int fd = open_from("127.0.0.1", env.api_ports[0]);
    assert_true(fd >= 0);
    assert_int_equal(await_connected(fd, 2000), 0);
    send_all(fd, request, len, ms); /* the server may close before it has all */
    outcome o = read_outcome(fd, ms, false);
    close(fd);
    return o;
}

static bool api_alive(int slot) {
    int status;
    return env.apis[slot] > 0 && waitpid(env.apis[slot], &status, WNOHANG) == 0;
}

static long healthz(const char *url) {
    char u[128];
    snprintf(u, sizeof u, "%s/healthz", url);
    it_http_opts o = {.timeout_ms = 2000};
    it_http_result r = it_http_ex("GET", u, NULL, &o);
    long status = r.status;
    it_http_free(&r);
    return status;
}

/* ------------------------------------------------------------ limits */

static void a_body_announced_over_the_limit_is_refused_before_it_is_sent(void **state) {
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "/api/events/%s/register", event_id);
    const char *paths[] = {"/api/events", path};
    for (int expect = 0; expect < 2; expect++)
        for (int i = 0; i < 2; i++) {
            char req[512];
            int n = snprintf(req, sizeof req,
                             "POST %s HTTP/1.1\r\nHost: abuse\r\n"
                             "Content-Type: application/json\r\n%s"
                             "Content-Length: 200000000\r\n\r\n",
                             paths[i], expect ? "Expect: 100-continue\r\n" : "");
            outcome o = raw_request(req, (size_t)n, 1000);
            if (o.status != 413)
                fail_msg("POST %s%s announcing 200 MB, no body sent: %s %d within 1 s ('%.40s')",
                         paths[i], expect ? " with Expect: 100-continue" : "",
                         o.status   ? "status"
                         : o.closed ? "closed, no status"
                                    : "nothing",
                         o.status, o.head);
            printf("413 after %lld ms\n", (long long)o.ms);
        }
    assert_int_equal(healthz(base), 200);
}

static void a_url_over_the_limit_is_414_and_one_within_it_is_served(void **state) {
    (void)state;
    /* TS_MAX_URL_BYTES is 2048 (the default): an unknown query parameter
     * pads the request target to the length wanted */
    const size_t lengths[] = {1800, 2100, 60000};
    const long expect[] = {200, 414, 414};
    for (int i = 0; i < 3; i++) {
        size_t len = strlen(base) + lengths[i];
        char *url = malloc(len + 1);
        int n = snprintf(url, len + 1, "%s/api/events?limit=1&pad=", base);
        memset(url + n, 'a', len - (size_t)n);
        url[len] = '\0';
        it_http_result r = it_http("GET", url, NULL, NULL);
        if (r.status != expect[i])
            fail_msg("a request target of %zu bytes: %ld, not %ld", lengths[i], r.status,
                     expect[i]);
        it_http_free(&r);
        free(url);
    }
    assert_int_equal(healthz(base), 200);
}

static void headers_over_the_limit_are_refused_and_within_it_are_served(void **state) {
    (void)state;
    /* TS_MAX_HEADER_BYTES is 8192 (the default) */
    char url[128];
    snprintf(url, sizeof url, "%s/healthz", base);
    struct {
        int count, bytes;
        bool over;
    } cases[] = {{1, 6000, false}, {1, 9000, true}, {100, 100, true}, {1, 18000, true}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const char **headers = calloc((size_t)cases[c].count + 1, sizeof *headers);
        char **lines = calloc((size_t)cases[c].count, sizeof *lines);
        for (int i = 0; i < cases[c].count; i++) {
            lines[i] = malloc((size_t)cases[c].bytes + 1);
            int n = snprintf(lines[i], (size_t)cases[c].bytes + 1, "X-Pad-%d: ", i);
            memset(lines[i] + n, 'h', (size_t)(cases[c].bytes - n));
            lines[i][cases[c].bytes] = '\0';
            headers[i] = lines[i];
        }
        it_http_opts o = {.headers = headers, .timeout_ms = 5000};
        it_http_result r = it_http_ex("GET", url, NULL, &o);
        printf("%d header(s) of %d bytes: %ld\n", cases[c].count, cases[c].bytes, r.status);
        if (cases[c].over ? (r.status < 400 || r.status > 499) : r.status != 200)
            fail_msg("%d header(s) of %d bytes: %ld, expected %s", cases[c].count, cases[c].bytes,
                     r.status, cases[c].over ? "a 4xx (431)" : "200");
        it_http_free(&r);
        for (int i = 0; i < cases[c].count; i++)
            free(lines[i]);
        free(lines);
        free(headers);
    }
    assert_int_equal(healthz(base), 200);
}

/* ------------------------------------------------------------ slowloris */

typedef struct slow {
    int fd;
    int64_t opened_ms; /* connected (and, for a slow one, request line sent) */
    int64_t next_ms;   /* next trickled byte; 0: an idle one, sends nothing */
    int64_t closed_ms; /* EOF or reset seen; 0 while open */
} slow;

static long rss_kb(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

/* One round over the open connections: what the server sent or closed is
 * read, and every slow one due for it trickles one more header byte. Waits
 * up to wait_ms for something to happen. */
static void tend(slow *s, size_t n, struct pollfd *pfds, size_t *map, int wait_ms) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!s[i].closed_ms) {
            pfds[k] = (struct pollfd){.fd = s[i].fd, .events = POLLIN};
            map[k++] = i;
        }
    if (k == 0)
        return;
    int ready = poll(pfds, k, wait_ms);
    int64_t now = ts_monotonic_ms();
    for (size_t j = 0; ready > 0 && j < k; j++) {
        if (!pfds[j].revents)
            continue;
        slow *c = &s[map[j]];
        char buf[1024];
        ssize_t got;
        while ((got = recv(c->fd, buf, sizeof buf, 0)) > 0)
            ; /* a 408 before the close, say */
        if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            c->closed_ms = now;
            close(c->fd);
        }
    }
    for (size_t i = 0; i < n; i++) {
        slow *c = &s[i];
        if (c->closed_ms || !c->next_ms || c->next_ms > now)
            continue;
        if (send(c->fd, "a", 1, MSG_NOSIGNAL) < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            c->closed_ms = now;
            close(c->fd);
        } else {
            c->next_ms = now + 1000;
        }
    }
}

static void two_thousand_slow_connections_do_not_keep_anyone_else_out(void **state) {
    (void)state;
    enum { SLOW = 2000, PER_ADDRESS = 250, IDLE = 100, GOOD = 10 };
    enum { N = SLOW + IDLE };
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = rl.rlim_max;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    assert_true(rl.rlim_cur >= N + 256);

    pid_t api = env.apis[0];
    long rss_before = rss_kb(api), rss_peak = rss_before;
    assert_true(rss_before > 0);
    slow *s = calloc(N, sizeof *s);
    struct pollfd *pfds = calloc(N, sizeof *pfds);
    size_t *map = calloc(N, sizeof *map);
    char line[256];
    int len = snprintf(line, sizeof line,
                       "POST /api/events/%s/register HTTP/1.1\r\nHost: slow\r\n"
                       "Content-Type: application/json\r\nX-Slow: ",
                       event_id);

    /* 2,000 slow ones from 127.0.0.10..17, 250 each, and 100 idle ones
     * from 127.0.0.18 */
    for (int i = 0; i < N; i++) {
        char source[32];
        snprintf(source, sizeof source, "127.0.0.%d", i < SLOW ? 10 + i / PER_ADDRESS : 18);
        s[i].fd = open_from(source, env.api_ports[0]);
        if (s[i].fd < 0)
            fail_msg("socket %d from %s: %s", i, source, strerror(errno));
    }
    int64_t deadline = ts_monotonic_ms() + 10000;
    for (int pending = N; pending > 0;) {
        pending = 0;
        for (int i = 0; i < N; i++) {
            if (s[i].opened_ms)
                continue;
            struct pollfd p = {.fd = s[i].fd, .events = POLLOUT};
            int err = 0;
            socklen_t elen = sizeof err;
            if (poll(&p, 1, 0) == 1) {
                getsockopt(s[i].fd, SOL_SOCKET, SO_ERROR, &err, &elen);
                if (err)
                    fail_msg("connection %d refused: %s", i, strerror(err));
                s[i].opened_ms = ts_monotonic_ms();
                if (i < SLOW) {
                    assert_int_equal(send(s[i].fd, line, (size_t)len, MSG_NOSIGNAL), len);
                    s[i].next_ms = s[i].opened_ms + 1000;
                }
            } else {
                pending++;
            }
        }
        if (pending && ts_monotonic_ms() > deadline)
            fail_msg("%d of %d connections not made within 10 s", pending, N);
    }
    int64_t all_open = ts_monotonic_ms();

    /* meanwhile, someone well-behaved registers people */
    char url[256], health[128];
    snprintf(url, sizeof url, "%s/api/events/%s/register", base, event_id);
    snprintf(health, sizeof health, "%s/healthz", base);
    for (int i = 0; i < GOOD + 1; i++) {
        tend(s, N, pfds, map, 0);
        long rss = rss_kb(api);
        if (rss > rss_peak)
            rss_peak = rss;
        char body[128];
        snprintf(body, sizeof body, "{\"name\":\"Good\",\"email\":\"good%d@slow.example\"}", i);
        it_http_opts o = {.timeout_ms = 2000};
        int64_t t0 = ts_monotonic_ms();
        it_http_result r =
            i < GOOD ? it_http_ex("POST", url, body, &o) : it_http_ex("GET", health, NULL, &o);
        int64_t took = ts_monotonic_ms() - t0;
        long want = i < GOOD ? 201 : 200;
        if (r.status != want || took > 2000)
            fail_msg("%s during the attack: %ld after %lld ms (body %s)",
                     i < GOOD ? "a registration" : "/healthz", r.status, (long long)took,
                     r.body ? r.body : "");
        it_http_free(&r);
    }
    tend(s, N, pfds, map, 0);
    int open_then = 0;
    int64_t first_open = all_open;
    for (int i = 0; i < N; i++) {
        open_then += i < SLOW && !s[i].closed_ms;
        if (s[i].opened_ms < first_open)
            first_open = s[i].opened_ms;
    }
    int64_t good_done = ts_monotonic_ms();
    printf("connections made in %lld ms; %d good requests in %lld ms; %d of %d slow ones"
           " still open\n",
           (long long)(all_open - first_open), GOOD + 1, (long long)(good_done - all_open),
           open_then, SLOW);
    /* the good requests were served while the attack was on */
    assert_int_equal(open_then, SLOW);

    /* then the server closes them: the slow ones at the request timeout,
     * the idle ones at the idle timeout */
    deadline = ts_monotonic_ms() + (REQUEST_TIMEOUT_S + GRACE_S + 2) * 1000;
    for (;;) {
        int still = 0;
        for (int i = 0; i < N; i++)
            still += !s[i].closed_ms;
        if (!still || ts_monotonic_ms() > deadline)
            break;
        tend(s, N, pfds, map, 100);
        long rss = rss_kb(api);
        if (rss > rss_peak)
            rss_peak = rss;
    }
    int never = 0, early = 0, late = 0;
    int64_t slowest = 0;
    for (int i = 0; i < N; i++) {
        int timeout_s = i < SLOW ? REQUEST_TIMEOUT_S : IDLE_TIMEOUT_S;
        if (!s[i].closed_ms) {
            never++;
            close(s[i].fd);
            continue;
        }
        int64_t after = s[i].closed_ms - s[i].opened_ms;
        if (after > slowest)
            slowest = after;
        if (after < (timeout_s - 1) * 1000)
            early++;
        if (after > (timeout_s + GRACE_S) * 1000)
            late++;
    }
    free(s);
    free(pfds);
    free(map);
    printf("closed by the server: never %d, early %d, late %d; the last after %lld ms;"
           " API RSS %ld kB before, %ld kB at most\n",
           never, early, late, (long long)slowest, rss_before, rss_peak);
    assert_int_equal(never, 0);
    assert_int_equal(late, 0);
    assert_int_equal(early, 0);
    /* Memory: a slow connection may hold its memory pool (16 kB in
     * libmicrohttpd as configured) and the few bytes it sent; 2,100 of
     * them are 34 MB. 100 MB of growth is three times that: it catches
     * anything that buffers per connection the size of a body or a
     * thread stack, or leaks per connection. */
    assert_true(rss_peak - rss_before < 100 * 1024);
#if defined(__SANITIZE_ADDRESS__)
    assert_true(rss_peak < 1024 * 1024); /* shadow memory and quarantine */
#else
    assert_true(rss_peak < 200 * 1024);
#endif
    assert_true(api_alive(0));
    assert_int_equal(healthz(base), 200);
}

/* ------------------------------------------------------------ per address */

/* A request on an open keep-alive connection; its status (0: closed or no
 * answer within 3 s). */
static int get_healthz_on(int fd) {
    const char req[] = "GET /healthz HTTP/1.1\r\nHost: capped\r\n\r\n";
    if (send_all(fd, req, sizeof req - 1, 3000))
        return 0;
    return read_outcome(fd, 3000, false).status;
}

/* Opens n connections from `source`, each served a /healthz and kept
 * open, in fds. */
static void hold_connections(const char *source, int port, int *fds, int n) {
    for (int i = 0; i < n; i++) {
        fds[i] = open_from(source, port);
        assert_true(fds[i] >= 0);
        assert_int_equal(await_connected(fds[i], 2000), 0);
        int status = get_healthz_on(fds[i]);
        if (status != 200)
            fail_msg("connection %d of %d from %s: %d", i + 1, n, source, status);
    }
}

/* One more connection from `source` must be refused, closed, or answered
 * with an error, within 3 s. */
static void expect_turned_away(const char *source, int port) {
    int fd = open_from(source, port);
    assert_true(fd >= 0);
    outcome o = {0};
    if (await_connected(fd, 2000) == 0) {
        const char req[] = "GET /healthz HTTP/1.1\r\nHost: capped\r\n\r\n";
        send_all(fd, req, sizeof req - 1, 3000);
        o = read_outcome(fd, 3000, true);
        if (o.status == 200 || (!o.closed && o.status == 0))
            fail_msg("the connection over the cap: %s ('%.60s')",
                     o.status ? "served" : "neither closed nor answered in 3 s", o.head);
        if (o.status)
            assert_true(o.status >= 400);
    }
    close(fd);
    printf("over the cap: status %d, closed %d\n", o.status, o.closed);
}

static void
the_connection_over_the_cap_of_one_address_is_refused_and_others_are_served(void **state) {
    (void)state;
    enum { CAP = 50 };
    const char *extra[] = {"TS_AUTH=off", "TS_MAX_CONNECTIONS_PER_IP=50", "TS_IDLE_TIMEOUT_S=60",
                           NULL};
    it_start_api_env(&env, 1, 1, extra, capped, sizeof capped);
    int port = port_of(capped);
    int fds[CAP];
    hold_connections("127.0.0.30", port, fds, CAP);
    /* the 51st from that address */
    expect_turned_away("127.0.0.30", port);

    /* another address is served meanwhile */
    char url[128];
    snprintf(url, sizeof url, "%s/api/events/%s/register", capped, event_id);
    it_http_opts other = {.source = "127.0.0.31", .timeout_ms = 5000};
    it_http_result r =
        it_http_ex("POST", url, "{\"name\":\"Other\",\"email\":\"other@capped.example\"}", &other);
    assert_int_equal(r.status, 201);
    it_http_free(&r);
    assert_int_equal(healthz(capped), 200);

    /* the cap counts open connections: one closed, one more is let in */
    close(fds[0]);
    int64_t deadline = ts_monotonic_ms() + 2000;
    for (;;) {
        int fd = open_from("127.0.0.30", port);
        assert_true(fd >= 0);
        int status = await_connected(fd, 2000) == 0 ? get_healthz_on(fd) : 0;
        close(fd);
        if (status == 200)
            break;
        if (ts_monotonic_ms() > deadline)
            fail_msg("no connection from the capped address 2 s after one of its 50 closed");
        struct timespec ts = {0, 50 * 1000000L}; /* between two attempts */
        nanosleep(&ts, NULL);
    }
    for (int i = 1; i < CAP; i++)
        close(fds[i]);
}

/* TS_MAX_CONNECTIONS_PER_IP unset: 256 in protected mode, no cap in open
 * mode (the API under attack is open: 300 from one address are served). */
static void one_address_gets_256_connections_when_protected_and_no_cap_when_open(void **state) {
    (void)state;
    enum { PROTECTED_CAP = 256, OPEN_MANY = 300 };
    int *fds = calloc(OPEN_MANY, sizeof *fds);
    hold_connections("127.0.0.50", env.api_ports[0], fds, OPEN_MANY);
    for (int i = 0; i < OPEN_MANY; i++)
        close(fds[i]);

    /* slot 1 becomes a protected API with the default cap */
    assert_true(api_alive(1));
    assert_int_equal(it_stop_api(&env, 1, SIGTERM), 0);
    const char *extra[] = {"TS_AUTH=on", "TS_IDLE_TIMEOUT_S=60", NULL};
    it_start_api_env(&env, 1, 1, extra, capped, sizeof capped);
    char mode[32];
    snprintf(mode, sizeof mode, "%s/healthz", capped);
    it_http_result r = it_http("GET", mode, NULL, NULL);
    assert_string_equal(it_json_str(&r, "mode"), "protected");
    it_http_free(&r);
    int port = port_of(capped);
    hold_connections("127.0.0.51", port, fds, PROTECTED_CAP);
    expect_turned_away("127.0.0.51", port);
    assert_int_equal(healthz(capped), 200); /* from 127.0.0.1 */
    for (int i = 0; i < PROTECTED_CAP; i++)
        close(fds[i]);
    free(fds);
}

/* ------------------------------------------------------------ bad input */

static void malformed_requests_are_refused_and_crash_nothing(void **state) {
    (void)state;
    static char deep[16001];
    memset(deep, '[', 8000);
    memset(deep + 8000, ']', 8000);
    char nested[16200];
    int nested_len =
        snprintf(nested, sizeof nested,
                 "POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s",
                 strlen(deep), deep);
    char *long_line = malloc(100001);
    memset(long_line, 'A', 100000);
    long_line[100000] = '\0';
    const char utf8_body[] = "{\"title\":\"\xff\xfe\",\"starts_at\":\"2030-01-01T00:00:00Z\","
                             "\"location\":\"L\",\"capacity\":1}";
    char bad_utf8[512];
    snprintf(bad_utf8, sizeof bad_utf8,
             "POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(utf8_body), utf8_body);
    const char nuls[] = "\0\x01\x02GET /\0 HTTP/1.1\r\n\r\n";
    struct {
        const char *what, *bytes;
        size_t len;
    } cases[] = {
        {"garbage", "GARBAGE\r\n\r\n", 0},
        {"an unknown HTTP version", "GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", 0},
        {"a negative Content-Length",
         "POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 0},
        {"an overflowing Content-Length",
         "POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
         0},
        {"two Content-Lengths",
         "POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n"
         "hello",
         0},
        {"an overflowing chunk size",
         "POST /api/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
         "FFFFFFFFFFFFFFFFFF\r\nxx\r\n",
         0},
        {"chunks over the body limit",
         "POST /api/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
         "7FFFFFFF\r\n",
         0},
        {"a header without a colon", "GET /healthz HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n", 0},
        {"an encoded NUL and dot segments",
         "GET /api/events/%00%ff/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 0},
        {"NUL bytes", nuls, sizeof nuls - 1},
        {"JSON nested 8,000 deep", nested, (size_t)nested_len},
        {"invalid UTF-8 in JSON", bad_utf8, 0},
        {"a request line of 100 kB without an end", long_line, 100000},
    };
    enum { NCASES = sizeof cases / sizeof cases[0] };
    int fds[NCASES];
    for (int i = 0; i < NCASES; i++) {
        fds[i] = open_from("127.0.0.40", env.api_ports[0]);
        assert_true(fds[i] >= 0);
        assert_int_equal(await_connected(fds[i], 2000), 0);
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].bytes);
        send_all(fds[i], cases[i].bytes, len, 2000); /* it may close before it has all */
    }
    for (int i = 0; i < NCASES; i++) {
        /* every one is answered or closed within the request timeout */
        outcome o = read_outcome(fds[i], (REQUEST_TIMEOUT_S + GRACE_S) * 1000, false);
        close(fds[i]);
        printf("%s: %d%s\n", cases[i].what, o.status, o.closed ? " (closed)" : "");
        if (!o.status && !o.closed)
            fail_msg("%s: neither answered nor closed within %d s", cases[i].what,
                     REQUEST_TIMEOUT_S + GRACE_S);
        if (o.status == 500 || o.status >= 600 || (o.status && o.status < 200))
            fail_msg("%s: %d ('%.60s')", cases[i].what, o.status, o.head);
        assert_true(api_alive(0));
    }
    free(long_line);
    assert_int_equal(healthz(base), 200);
}

static void after_all_of_it_the_apis_are_alive_and_serve(void **state) {
    (void)state;
    assert_true(api_alive(0));
    assert_true(api_alive(1));
    assert_int_equal(healthz(base), 200);
    assert_int_equal(healthz(capped), 200);
    char url[128];
    snprintf(url, sizeof url, "%s/api/events/%s/register", base, event_id);
    it_http_result r =
        it_http("POST", url, "{\"name\":\"Last\",\"email\":\"last@abuse.example\"}", NULL);
    assert_int_equal(r.status, 201);
    it_http_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_body_announced_over_the_limit_is_refused_before_it_is_sent),
        cmocka_unit_test(a_url_over_the_limit_is_414_and_one_within_it_is_served),
        cmocka_unit_test(headers_over_the_limit_are_refused_and_within_it_are_served),
        cmocka_unit_test(malformed_requests_are_refused_and_crash_nothing),
        cmocka_unit_test(two_thousand_slow_connections_do_not_keep_anyone_else_out),
        cmocka_unit_test(
            the_connection_over_the_cap_of_one_address_is_refused_and_others_are_served),
        cmocka_unit_test(one_address_gets_256_connections_when_protected_and_no_cap_when_open),
        cmocka_unit_test(after_all_of_it_the_apis_are_alive_and_serve),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
