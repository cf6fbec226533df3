/* SPDX-License-Identifier: Apache-2.0 */
/* loadgen.c — turnstile-loadgen: the benchmark's HTTP load generator.
 *
 * Closed loop (default): C keep-alive connections, each sending its next
 * request as soon as the previous answer is in, until N requests are done.
 * Open loop (--rate R): request i is due at start + i/R whatever the answers
 * (on the first idle one of C connections), and its latency counts from when
 * it was due, so a stalled server cannot hide its queue (no coordinated
 * omission). Request i
 * registers "b<run>-<i>@bench.example" (unique) for event i % E of the
 * event ids given. Every latency is kept, so percentiles are exact, and
 * completions are bucketed per second for the plot. Writes JSON.
 *
 *   turnstile-loadgen --port 4000 --n 50000 --concurrency 64 \
 *       --events ids.txt --run R --out result.json
 *
 * One thread: one epoll loop drives every connection. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define EVENT_ID_SIZE 40 /* a UUID and its NUL, with room */
#define MAX_STATUS 600   /* HTTP statuses counted: 1..599 */
#define EPOLL_BATCH 256

typedef struct options {
    int port;
    int concurrency;
    long n;
    double rate; /* requests per second; 0 for the closed loop */
    const char *events_file;
    const char *out_file; /* "-" for stdout */
    const char *run;      /* makes the emails of a run unique */
} options;

typedef struct conn {
    int fd;
    int connected;
    long req; /* index of the request in flight, -1 if none */
    double started;
    char out[512];
    size_t out_len, out_sent;
    char in[8192];
    size_t in_len;
} conn;

typedef struct result {
    double done_at; /* seconds since start */
    float latency_ms;
    short status;
} result;

/* Everything a run holds: its requests' results, its connections, and how
 * far it has got. */
typedef struct load {
    const options *opt;
    char (*events)[EVENT_ID_SIZE];
    long nevents;
    result *results; /* one per request, by index */
    conn *conns;
    int ep;
    long next;   /* the next request to send */
    long done;   /* requests answered or failed */
    long errors; /* requests whose connection died */
    double t0;   /* the start, for due times and done_at */
    double last_progress;
} load;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* ------------------------------------------------------------ options */

/* The whole of s as a whole number within [lo, hi]: 0, or -1 if it is not
 * one. */
static int parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* The whole of s as a number, not negative: 0, or -1 if it is not one. */
static int parse_rate(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0))
        return -1;
    *out = v;
    return 0;
}

/* Fills opt from the command line: 0, or 2 (the exit status) after saying
 * what is wrong. */
static int parse_options(int argc, char **argv, options *opt) {
    *opt = (options){.port = 4000, .concurrency = 64, .n = 1000, .out_file = "-", .run = "0"};
    static const struct option longopts[] = {
        {"port", 1, 0, 'p'}, {"n", 1, 0, 'n'},   {"concurrency", 1, 0, 'c'}, {"events", 1, 0, 'e'},
        {"out", 1, 0, 'o'},  {"run", 1, 0, 'r'}, {"rate", 1, 0, 'R'},        {0, 0, 0, 0}};
    int o;
    long v = 0;
    /* NOLINTNEXTLINE(concurrency-mt-unsafe): one thread */
    while ((o = getopt_long(argc, argv, "p:n:c:e:o:r:R:", longopts, NULL)) != -1) {
        int bad = 0;
        switch (o) {
        case 'p':
            bad = parse_long(optarg, 0, 65535, &v);
            opt->port = (int)v;
            break;
        case 'n': bad = parse_long(optarg, 0, LONG_MAX, &opt->n); break;
        case 'c':
            bad = parse_long(optarg, 1, 1000000, &v);
            opt->concurrency = (int)v;
            break;
        case 'R': bad = parse_rate(optarg, &opt->rate); break;
        case 'e': opt->events_file = optarg; break;
        case 'o': opt->out_file = optarg; break;
        case 'r': opt->run = optarg; break;
        default: fprintf(stderr, "usage: see the comment at the top of loadgen.c\n"); return 2;
        }
        if (bad) {
            fprintf(stderr, "turnstile-loadgen: bad value '%s' for -%c\n", optarg, o);
            return 2;
        }
    }
    if (!opt->events_file) {
        fprintf(stderr, "turnstile-loadgen: --events FILE is required\n");
        return 2;
    }
    if (opt->concurrency > opt->n)
        opt->concurrency = (int)opt->n;
    return 0;
}

/* The event ids of path, one a line, blank lines skipped, into *events
 * (caller frees): how many, 0 if none or no file, -1 if out of memory. */
static long read_events(const char *path, char (**events)[EVENT_ID_SIZE]) {
    long nevents = 0, cap = 0;
    char line[128];
    FILE *f = fopen(path, "r");
    *events = NULL;
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!*line)
            continue;
        if (nevents == cap) {
            cap = cap ? cap * 2 : 1024;
            char(*grown)[EVENT_ID_SIZE] = realloc(*events, (size_t)cap * sizeof **events);
            if (!grown) {
                nevents = -1;
                break;
            }
            *events = grown;
        }
        snprintf((*events)[nevents++], EVENT_ID_SIZE, "%s", line);
    }
    if (f)
        (void)fclose(f); /* read only: nothing to lose */
    return nevents;
}

/* ------------------------------------------------------------ connections */

/* A non-blocking connection to the API on loopback, under way: its fd, or
 * -1 after saying why. */
static int open_conn(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        perror("socket");
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) && errno != EINPROGRESS) {
        perror("connect");
        close(fd);
        return -1;
    }
    return fd;
}

static void watch(load *l, conn *c, int op, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(l->ep, op, c->fd, &ev);
}

/* Opens every connection: 0, or -1 if one cannot be. */
static int open_connections(load *l) {
    for (int i = 0; i < l->opt->concurrency; i++) {
        conn *c = &l->conns[i];
        c->req = -1;
        c->fd = open_conn(l->opt->port);
        if (c->fd < 0)
            return -1;
        watch(l, c, EPOLL_CTL_ADD, EPOLLOUT | EPOLLIN);
    }
    return 0;
}

/* The connection of a request that failed: the request counts as an error,
 * a new connection takes its place. 0, or -1 if none can be opened. */
static int reconnect(load *l, conn *c) {
    l->errors++;
    l->results[c->req] = (result){now() - l->t0, 0, 0};
    l->done++;
    epoll_ctl(l->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = open_conn(l->opt->port);
    if (c->fd < 0)
        return -1;
    c->connected = 0;
    c->req = -1;
    watch(l, c, EPOLL_CTL_ADD, EPOLLOUT);
    return 0;
}

/* ------------------------------------------------------------ requests */

/* Sends request r on the idle connection c; its latency counts from started. */
static void send_request(load *l, conn *c, long r, double started) {
    char body[160], path[128];
    int blen =
        snprintf(body, sizeof body, "{\"name\":\"Bench %ld\",\"email\":\"b%s-%ld@bench.example\"}",
                 r, l->opt->run, r);
    snprintf(path, sizeof path, "/api/events/%s/register", l->events[r % l->nevents]);
    c->out_len = (size_t)snprintf(c->out, sizeof c->out,
                                  "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  "Content-Type: application/json\r\n"
                                  "Content-Length: %d\r\n\r\n%s",
                                  path, blen, body);
    c->in_len = 0;
    c->req = r;
    c->started = started;
    ssize_t w = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
    c->out_sent = w > 0 ? (size_t)w : 0;
    watch(l, c, EPOLL_CTL_MOD, EPOLLIN | (c->out_sent < c->out_len ? EPOLLOUT : 0));
}

/* The rest of a request the socket did not take at once. */
static void send_rest(conn *c) {
    ssize_t w = send(c->fd, c->out + c->out_sent, c->out_len - c->out_sent, MSG_NOSIGNAL);
    if (w > 0)
        c->out_sent += (size_t)w;
}

/* Reads what the server sent: 1 when the whole answer is in, 0 if more is to
 * come, -1 if the connection died. */
static int receive(conn *c) {
    ssize_t r = recv(c->fd, c->in + c->in_len, sizeof c->in - c->in_len - 1, 0);
    if (r <= 0 && !(r < 0 && errno == EAGAIN))
        return -1;
    if (r > 0)
        c->in_len += (size_t)r;
    c->in[c->in_len] = '\0';
    char *hdr_end = strstr(c->in, "\r\n\r\n");
    if (!hdr_end)
        return 0;
    char *cl = strcasestr(c->in, "Content-Length:");
    size_t body_len = cl && cl < hdr_end ? (size_t)strtol(cl + 15, NULL, 10) : 0;
    return c->in_len >= (size_t)(hdr_end + 4 - c->in) + body_len;
}

static void record_answer(load *l, conn *c) {
    double t = now();
    result *res = &l->results[c->req];
    res->done_at = t - l->t0;
    res->latency_ms = (float)((t - c->started) * 1000.0);
    res->status = (short)strtol(c->in + 9, NULL, 10); /* "HTTP/1.1 201" */
    l->done++;
    c->req = -1;
    watch(l, c, EPOLL_CTL_MOD, EPOLLIN);
}

/* One readiness event on c: 0, or -1 if a lost connection cannot be
 * replaced. */
static int on_ready(load *l, conn *c, uint32_t events) {
    if ((events & EPOLLOUT) && !c->connected) {
        c->connected = 1;
        if (c->req < 0) /* idle until a request is due */
            watch(l, c, EPOLL_CTL_MOD, EPOLLIN);
    }
    if (c->req >= 0 && c->out_sent < c->out_len)
        send_rest(c);
    if (c->req >= 0 && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
        int answered = receive(c);
        if (answered < 0)
            return reconnect(l, c);
        if (answered)
            record_answer(l, c);
    }
    return 0;
}

/* Waits up to timeout_ms for the connections and handles what is ready. */
static int poll_connections(load *l, int timeout_ms) {
    struct epoll_event evs[EPOLL_BATCH];
    int k = epoll_wait(l->ep, evs, EPOLL_BATCH, timeout_ms);
    for (int e = 0; e < k; e++)
        if (on_ready(l, evs[e].data.ptr, evs[e].events))
            return -1;
    return 0;
}

static void show_progress(load *l, double t) {
    if (t - l->last_progress < 1.0)
        return;
    fprintf(stderr, "\r  %ld/%ld requests, %.0f/s   ", l->done, l->opt->n,
            (double)l->done / (t - l->t0));
    l->last_progress = t;
}

/* ------------------------------------------------------------ the loops */

/* Closed loop: every idle connection sends the next request at once.
 * 0, or -1 if a connection is lost for good. */
static int closed_loop(load *l) {
    while (l->done < l->opt->n) {
        if (poll_connections(l, 1000))
            return -1;
        double t = now();
        for (int i = 0; i < l->opt->concurrency && l->next < l->opt->n; i++) {
            conn *c = &l->conns[i];
            if (c->req < 0 && c->connected)
                send_request(l, c, l->next++, t);
        }
        show_progress(l, t);
    }
    return 0;
}

/* When request i is due in the open loop. */
static double due_at(const load *l, long i) {
    return l->t0 + (double)i / l->opt->rate;
}

/* Open loop: each request goes when it is due, on an idle connection, and
 * its latency counts from then. 0, or -1 if a connection is lost for good. */
static int open_loop(load *l) {
    while (l->done < l->opt->n) {
        int timeout = 1000; /* all sent: wait for the answers */
        if (l->next < l->opt->n) {
            double wait_ms = (due_at(l, l->next) - now()) * 1000.0;
            timeout = wait_ms <= 0 ? 0 : wait_ms < 1 ? 1 : (int)wait_ms;
        }
        if (poll_connections(l, timeout))
            return -1;
        double t = now();
        for (int i = 0; i < l->opt->concurrency && l->next < l->opt->n; i++) {
            conn *c = &l->conns[i];
            if (c->req >= 0 || !c->connected)
                continue;
            double due = due_at(l, l->next);
            if (due > t)
                break;
            send_request(l, c, l->next++, due);
        }
        show_progress(l, t);
    }
    return 0;
}

/* ------------------------------------------------------------ the report */

/* The p-quantile of n sorted values (0 if none). */
static float percentile(const float *sorted, long n, double p) {
    return n ? sorted[(long)((double)(n - 1) * p)] : 0;
}

static void write_summary(FILE *out, const load *l, double wall) {
    const options *opt = l->opt;
    long status[MAX_STATUS] = {0};
    float *lat = malloc((size_t)opt->n * sizeof *lat);
    long nlat = 0;
    for (long i = 0; i < opt->n; i++) {
        if (l->results[i].status > 0 && l->results[i].status < MAX_STATUS) {
            status[l->results[i].status]++;
            lat[nlat++] = l->results[i].latency_ms;
        }
    }
    qsort(lat, (size_t)nlat, sizeof *lat, cmp_float);
    fprintf(out,
            "{\"requests\":%ld,\"errors\":%ld,\"concurrency\":%d,\"events\":%ld,"
            "\"rate\":%.1f,\"duration_s\":%.3f,\"throughput\":%.1f,",
            opt->n, l->errors, opt->concurrency, l->nevents, opt->rate, wall,
            (double)opt->n / wall);
    fprintf(out, "\"latency_ms\":{\"p50\":%.2f,\"p90\":%.2f,\"p99\":%.2f,\"max\":%.2f},",
            percentile(lat, nlat, 0.50), percentile(lat, nlat, 0.90), percentile(lat, nlat, 0.99),
            percentile(lat, nlat, 1.0));
    fprintf(out, "\"status\":{");
    int first = 1;
    for (int s = 0; s < MAX_STATUS; s++)
        if (status[s]) {
            fprintf(out, "%s\"%d\":%ld", first ? "" : ",", s, status[s]);
            first = 0;
        }
    fprintf(out, "},");
    free(lat);
}

/* Per second of the run: the answers completed in it, and their p50 and p99. */
static void write_series(FILE *out, const load *l, double wall) {
    long n = l->opt->n;
    int seconds = (int)wall + 1;
    float *bucket = malloc((size_t)n * sizeof *bucket);
    fprintf(out, "\"series\":[");
    for (int sec = 0; sec < seconds; sec++) {
        long m = 0;
        for (long i = 0; i < n; i++)
            if (l->results[i].status > 0 && (int)l->results[i].done_at == sec)
                bucket[m++] = l->results[i].latency_ms;
        qsort(bucket, (size_t)m, sizeof *bucket, cmp_float);
        fprintf(out, "%s{\"t\":%d,\"rps\":%ld,\"p50_ms\":%.2f,\"p99_ms\":%.2f}", sec ? "," : "",
                sec, m, percentile(bucket, m, 0.5), percentile(bucket, m, 0.99));
    }
    fprintf(out, "]}\n");
    free(bucket);
}

/* The JSON report (bench/report.py reads it) to opt->out_file: 0, or 2 if
 * it cannot be written. */
static int write_report(const load *l, double wall) {
    const char *path = l->opt->out_file;
    FILE *out = strcmp(path, "-") ? fopen(path, "w") : stdout;
    if (!out) {
        fprintf(stderr, "turnstile-loadgen: cannot write %s: %m\n", path);
        return 2;
    }
    write_summary(out, l, wall);
    write_series(out, l, wall);
    if (out == stdout ? fflush(out) : fclose(out)) {
        fprintf(stderr, "turnstile-loadgen: cannot write %s: %m\n", path);
        return 2;
    }
    return 0;
}

/* ------------------------------------------------------------ main */

static void close_connections(load *l) {
    for (int i = 0; i < l->opt->concurrency; i++)
        if (l->conns[i].fd > 0)
            close(l->conns[i].fd);
}

/* Sends the requests, then reports: 0 if every request was answered,
 * 1 if some connections died, 2 if the run could not be made. */
static int run(load *l) {
    const options *opt = l->opt;
    l->results = calloc((size_t)opt->n, sizeof *l->results);
    l->conns = calloc((size_t)opt->concurrency, sizeof *l->conns);
    l->ep = epoll_create1(0);
    if ((!l->results && opt->n) || (!l->conns && opt->concurrency) || l->ep < 0) {
        fprintf(stderr, "turnstile-loadgen: out of memory or descriptors\n");
        return 2;
    }
    l->t0 = now();
    l->last_progress = l->t0;
    if (open_connections(l))
        return 1;
    if ((opt->rate > 0 ? open_loop(l) : closed_loop(l)))
        return 1;
    double wall = now() - l->t0;
    fprintf(stderr, "\r  %ld/%ld requests in %.2f s              \n", l->done, opt->n, wall);
    int rc = write_report(l, wall);
    return rc ? rc : l->errors ? 1 : 0;
}

int main(int argc, char **argv) {
    options opt;
    int rc = parse_options(argc, argv, &opt);
    if (rc)
        return rc;
    load l = {.opt = &opt, .ep = -1};
    l.nevents = read_events(opt.events_file, &l.events);
    if (l.nevents <= 0) {
        fprintf(stderr, "turnstile-loadgen: %s %s\n",
                l.nevents < 0 ? "out of memory reading" : "no event ids in", opt.events_file);
        free(l.events);
        return 2;
    }
    rc = run(&l);
    if (l.conns)
        close_connections(&l);
    if (l.ep >= 0)
        close(l.ep);
    free(l.conns);
    free(l.results);
    free(l.events);
    return rc;
}
