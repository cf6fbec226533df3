/* SPDX-License-Identifier: Apache-2.0 */
/* ts_prometheus.h — the Prometheus text format: one metric, a table of
 * them, latency histograms. Both services render their /metrics with it;
 * the HTTP side of serving them is ts_statusd's. Pure: the printers write
 * only to the FILE they are given; histograms are updated with relaxed
 * atomics (the rule is written in producer-api/core/metrics.h). Thread-safe. */
#ifndef TS_PROMETHEUS_H
#define TS_PROMETHEUS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>

/* A page of metrics being printed into memory: ts_metrics_page_open()
 * gives the FILE to print to, ts_metrics_page_close() the text. */
typedef struct ts_metrics_page {
    FILE *out;
    char *text;
    size_t len;
} ts_metrics_page;

/* The page's FILE, or NULL for want of memory. */
FILE *ts_metrics_page_open(ts_metrics_page *page);

/* Ends the page: its text (caller frees), or NULL if any print failed (for
 * want of memory): never half a page of metrics. */
char *ts_metrics_page_close(ts_metrics_page *page);

/* The HELP and TYPE lines of a metric family; its samples follow. */
void ts_metric_head(FILE *out, const char *name, const char *help, const char *type);

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

/* A latency histogram, exposed in seconds (Prometheus's base unit) with
 * buckets from 1 ms to 10 s; observed and summed in microseconds. Only
 * /metrics reads it, so it is updated and read with relaxed atomics (the
 * rule is written in producer-api/core/metrics.h). The buckets' upper
 * bounds are ts_latency_bounds_us; the last is +Inf. */
#define TS_LATENCY_BUCKETS 14
extern const long ts_latency_bounds_us[TS_LATENCY_BUCKETS - 1];

typedef struct ts_histogram {
    atomic_ulong buckets[TS_LATENCY_BUCKETS]; /* not cumulative: rendered so */
    atomic_ulong sum_us;
    atomic_ulong count;
} ts_histogram;

/* One observation of `us` microseconds (below 0 counts as 0: clocks of two
 * machines). */
void ts_histogram_observe_us(ts_histogram *h, long us);
/* One observation of `ms` milliseconds: where the measure is in ms (the
 * wall-clock times commands and replies carry). */
void ts_histogram_observe(ts_histogram *h, long ms);
/* Prints it in the Prometheus text format, as `name`_bucket, _sum, _count,
 * bounds and sum in seconds. `name` should end in _seconds. */
void ts_histogram_print(FILE *out, const char *name, const char *help, const ts_histogram *h);

#endif
