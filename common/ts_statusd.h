/* ts_statusd.h — what both services need to be watched:
 *   - the Prometheus text format: one metric, a table of them, latency
 *     histograms;
 *   - an answer queued on a libmicrohttpd connection, allocation checked
 *     (the API answers every request with it, /metrics included);
 *   - a tiny HTTP server for a service that has no other (the worker):
 *     GET /healthz answers {"status":"ok"}, GET /metrics the text a
 *     callback renders; libmicrohttpd, one internal thread.
 * Thread-safe: the printers write only to the FILE they are given. */
#ifndef TS_STATUSD_H
#define TS_STATUSD_H

#include <microhttpd.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>

/* Returns the metrics text (caller frees), or NULL. Called from the
 * server's thread: it must be thread-safe. */
typedef char *(*ts_metrics_fn)(void *arg);

typedef struct ts_statusd ts_statusd;

/* Prints one metric in the Prometheus text format: its HELP and TYPE
 * lines, then "name value". */
void ts_metric_print(FILE *out, const char *name, const char *help, const char *type,
                     unsigned long value);

/* One row of a service's table of plain (unlabelled) metrics, its value
 * read by the caller as it builds the table (each counter on its own: no
 * snapshot across them). */
typedef struct ts_metric_row {
    const char *name;
    const char *help;
    const char *type; /* "counter" or "gauge" */
    unsigned long value;
} ts_metric_row;

/* Prints rows[0..n) in order, each as ts_metric_print() does. */
void ts_metric_rows_print(FILE *out, const ts_metric_row *rows, size_t n);

/* A latency histogram in milliseconds. Only /metrics reads it, so it is
 * updated and read with relaxed atomics (the rule is written in
 * producer-api/metrics.h). The buckets' upper bounds are
 * ts_latency_bounds; the last is +Inf. */
#define TS_LATENCY_BUCKETS 12
extern const int ts_latency_bounds[TS_LATENCY_BUCKETS - 1];

typedef struct ts_histogram {
    atomic_ulong buckets[TS_LATENCY_BUCKETS]; /* not cumulative: rendered so */
    atomic_ulong sum_ms;
    atomic_ulong count;
} ts_histogram;

void ts_histogram_observe(ts_histogram *h, long ms);
/* Prints it in the Prometheus text format, as `name`_bucket, _sum, _count. */
void ts_histogram_print(FILE *out, const char *name, const char *help, const ts_histogram *h);

/* Queues `text` as the answer on `conn`: `status`, Content-Type `type`,
 * and one more header when `header` is not NULL. Takes `text` (from
 * malloc) and frees it in every case. Returns MHD_NO, and libmicrohttpd
 * closes the connection, when `text` is NULL (the caller's allocation
 * failed) or the response cannot be made. Call from an access handler. */
enum MHD_Result ts_statusd_respond(struct MHD_Connection *conn, unsigned status, char *text,
                                   const char *type, const char *header, const char *value);

/* ts_statusd_respond() of a Prometheus page: 200, text/plain; version=0.0.4.
 * The /metrics of both services. */
enum MHD_Result ts_statusd_respond_metrics(struct MHD_Connection *conn, char *text);

/* Listens on `port` (every interface) and serves /healthz and /metrics,
 * calling `metrics(arg)` for each scrape. NULL with `err` set on failure.
 * ts_statusd_stop() stops and frees it; NULL is a no-op. */
ts_statusd *ts_statusd_start(int port, ts_metrics_fn metrics, void *arg, char *err, size_t errlen);
void ts_statusd_stop(ts_statusd *s);

#endif
