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
 *       --events ids.txt --run R --out result.json */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct conn {
    int fd;
    int connected;
    long req;          /* index of the request in flight, -1 if none */
    double started;
    char out[512];
    size_t out_len, out_sent;
    char in[8192];
    size_t in_len;
} conn;

typedef struct result {
    double done_at;    /* seconds since start */
    float latency_ms;
    short status;
} result;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static int open_conn(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) && errno != EINPROGRESS) {
        perror("connect");
        exit(1);
    }
    return fd;
}

int main(int argc, char **argv) {
    int port = 4000, concurrency = 64;
    double rate = 0;
    long n = 1000;
    const char *events_file = NULL, *out_file = "-", *run = "0", *path_fmt =
        "/api/events/%s/register";
    static struct option opts[] = {{"port", 1, 0, 'p'},        {"n", 1, 0, 'n'},
                                   {"concurrency", 1, 0, 'c'}, {"events", 1, 0, 'e'},
                                   {"out", 1, 0, 'o'},         {"run", 1, 0, 'r'},
                                   {"rate", 1, 0, 'R'},        {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "p:n:c:e:o:r:R:", opts, NULL)) != -1) {
        switch (o) {
        case 'p': port = atoi(optarg); break;
        case 'n': n = atol(optarg); break;
        case 'c': concurrency = atoi(optarg); break;
        case 'e': events_file = optarg; break;
        case 'o': out_file = optarg; break;
        case 'r': run = optarg; break;
        case 'R': rate = atof(optarg); break;
        default: fprintf(stderr, "usage: see the comment at the top of loadgen.c\n"); return 2;
        }
    }
    if (!events_file) {
        fprintf(stderr, "turnstile-loadgen: --events FILE is required\n");
        return 2;
    }
    char (*events)[40] = NULL;
    long nevents = 0, cap = 0;
    FILE *f = fopen(events_file, "r");
    char line[128];
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!*line)
            continue;
        if (nevents == cap) {
            cap = cap ? cap * 2 : 1024;
            events = realloc(events, (size_t)cap * sizeof *events);
        }
        snprintf(events[nevents++], 40, "%s", line);
    }
    if (f)
        fclose(f);
    if (nevents == 0) {
        fprintf(stderr, "turnstile-loadgen: no event ids in %s\n", events_file);
        return 2;
    }
    if (concurrency > n)
        concurrency = (int)n;

    result *results = calloc((size_t)n, sizeof *results);
    conn *conns = calloc((size_t)concurrency, sizeof *conns);
    int ep = epoll_create1(0);
    long next = 0, done = 0, errors = 0;
    double t0 = now(), last_progress = t0;

    for (int i = 0; i < concurrency; i++) {
        conns[i].fd = open_conn(port);
        conns[i].req = -1;
        struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = &conns[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
    }

    struct epoll_event evs[256];
    while (done < n) {
        int timeout = 1000;
        if (rate > 0 && next < n) {
            double wait_ms = (t0 + (double)next / rate - now()) * 1000.0;
            timeout = wait_ms <= 0 ? 0 : wait_ms < 1 ? 1 : (int)wait_ms;
        }
        int k = epoll_wait(ep, evs, 256, timeout);
        for (int e = 0; e < k; e++) {
            conn *c = evs[e].data.ptr;
            if ((evs[e].events & EPOLLOUT) && !c->connected) {
                c->connected = 1;
                if (c->req < 0) { /* idle until a request is due */
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            }
            if (c->req >= 0 && c->out_sent < c->out_len) {
                ssize_t w = send(c->fd, c->out + c->out_sent, c->out_len - c->out_sent,
                                 MSG_NOSIGNAL);
                if (w > 0)
                    c->out_sent += (size_t)w;
            }
            if (c->req >= 0 && (evs[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
                ssize_t r = recv(c->fd, c->in + c->in_len, sizeof c->in - c->in_len - 1, 0);
                if (r <= 0 && !(r < 0 && errno == EAGAIN)) {
                    /* the connection died: count the request as an error, reconnect */
                    errors++;
                    results[c->req] = (result){now() - t0, 0, 0};
                    done++;
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    close(c->fd);
                    c->fd = open_conn(port);
                    c->connected = 0;
                    c->req = -1;
                    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
                    continue;
                }
                if (r > 0)
                    c->in_len += (size_t)r;
                c->in[c->in_len] = '\0';
                char *hdr_end = strstr(c->in, "\r\n\r\n");
                if (!hdr_end)
                    continue;
                char *cl = strcasestr(c->in, "Content-Length:");
                size_t body_len = cl && cl < hdr_end ? (size_t)atol(cl + 15) : 0;
                if (c->in_len < (size_t)(hdr_end + 4 - c->in) + body_len)
                    continue;
                double t = now();
                results[c->req].done_at = t - t0;
                results[c->req].latency_ms = (float)((t - c->started) * 1000.0);
                results[c->req].status = (short)atoi(c->in + 9);
                done++;
                c->req = -1;
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
            }
        }
        /* hand the requests that are due to idle connections */
        double t = now();
        for (int i = 0; i < concurrency && next < n; i++) {
            conn *c = &conns[i];
            if (c->req >= 0 || !c->connected)
                continue;
            double due = rate > 0 ? t0 + (double)next / rate : t;
            if (due > t)
                break;
            char body[160], path[128];
            long r = next++;
            int blen = snprintf(body, sizeof body,
                                "{\"name\":\"Bench %ld\",\"email\":\"b%s-%ld@bench.example\"}", r,
                                run, r);
            snprintf(path, sizeof path, path_fmt, events[r % nevents]);
            c->out_len = (size_t)snprintf(c->out, sizeof c->out,
                                          "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                          "Content-Type: application/json\r\n"
                                          "Content-Length: %d\r\n\r\n%s",
                                          path, blen, body);
            c->in_len = 0;
            c->req = r;
            c->started = due; /* open loop: from when it was due */
            ssize_t w = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
            c->out_sent = w > 0 ? (size_t)w : 0;
            struct epoll_event ev = {.events = EPOLLIN | (c->out_sent < c->out_len ? EPOLLOUT : 0),
                                     .data.ptr = c};
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        }
        if (t - last_progress >= 1.0) {
            fprintf(stderr, "\r  %ld/%ld requests, %.0f/s   ", done, n, done / (t - t0));
            last_progress = t;
        }
    }
    double wall = now() - t0;
    fprintf(stderr, "\r  %ld/%ld requests in %.2f s              \n", done, n, wall);

    /* summary */
    long status[600] = {0};
    float *lat = malloc((size_t)n * sizeof *lat);
    long nlat = 0;
    for (long i = 0; i < n; i++) {
        if (results[i].status > 0 && results[i].status < 600) {
            status[results[i].status]++;
            lat[nlat++] = results[i].latency_ms;
        }
    }
    qsort(lat, (size_t)nlat, sizeof *lat, cmp_float);
#define PCT(p) (nlat ? lat[(long)((double)(nlat - 1) * (p))] : 0)
    FILE *out = strcmp(out_file, "-") ? fopen(out_file, "w") : stdout;
    fprintf(out, "{\"requests\":%ld,\"errors\":%ld,\"concurrency\":%d,\"events\":%ld,"
                 "\"rate\":%.1f,\"duration_s\":%.3f,\"throughput\":%.1f,",
            n, errors, concurrency, nevents, rate, wall, (double)n / wall);
    fprintf(out, "\"latency_ms\":{\"p50\":%.2f,\"p90\":%.2f,\"p99\":%.2f,\"max\":%.2f},",
            PCT(0.50), PCT(0.90), PCT(0.99), PCT(1.0));
    fprintf(out, "\"status\":{");
    int first = 1;
    for (int s = 0; s < 600; s++)
        if (status[s]) {
            fprintf(out, "%s\"%d\":%ld", first ? "" : ",", s, status[s]);
            first = 0;
        }
    fprintf(out, "},\"series\":[");
    /* per second: completions, and p50/p99 latency of those */
    int seconds = (int)wall + 1;
    float *bucket = malloc((size_t)n * sizeof *bucket);
    for (int sec = 0; sec < seconds; sec++) {
        long m = 0;
        for (long i = 0; i < n; i++)
            if (results[i].status > 0 && (int)results[i].done_at == sec)
                bucket[m++] = results[i].latency_ms;
        qsort(bucket, (size_t)m, sizeof *bucket, cmp_float);
        fprintf(out, "%s{\"t\":%d,\"rps\":%ld,\"p50_ms\":%.2f,\"p99_ms\":%.2f}", sec ? "," : "",
                sec, m, m ? bucket[(long)((double)(m - 1) * 0.5)] : 0,
                m ? bucket[(long)((double)(m - 1) * 0.99)] : 0);
    }
    fprintf(out, "]}\n");
    if (out != stdout)
        fclose(out);
    free(bucket);
    free(lat);
    free(results);
    free(events);
    for (int i = 0; i < concurrency; i++)
        close(conns[i].fd);
    free(conns);
    return errors ? 1 : 0;
}
