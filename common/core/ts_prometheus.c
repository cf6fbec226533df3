/* SPDX-License-Identifier: Apache-2.0 */
/* ts_prometheus.c — see ts_prometheus.h. */
#include "ts_prometheus.h"

#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>

FILE *ts_metrics_page_open(ts_metrics_page *page) {
    page->text = NULL;
    page->len = 0;
    page->out = open_memstream(&page->text, &page->len);
    return page->out;
}

char *ts_metrics_page_close(ts_metrics_page *page) {
    bool failed = ferror(page->out) != 0;
    if (fclose(page->out) != 0 || failed) {
        free(page->text);
        return NULL;
    }
    return page->text;
}

void ts_metric_head(FILE *out, const char *name, const char *help, const char *type) {
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void ts_metric_print(FILE *out, const char *name, const char *help, const char *type,
                     unsigned long value) {
    ts_metric_head(out, name, help, type);
    fprintf(out, "%s %lu\n", name, value);
}

void ts_metric_rows_print(FILE *out, const ts_metric_row *rows, size_t n) {
    for (size_t i = 0; i < n; i++)
        ts_metric_print(out, rows[i].name, rows[i].help, rows[i].type, rows[i].value);
}

/* 1 ms to 10 s: a write's way through the pipeline is milliseconds, and a
 * deadline (TS_REPLY_TIMEOUT_MS, TS_PG_TIMEOUT_MS) is seconds. */
const long ts_latency_bounds_us[TS_LATENCY_BUCKETS - 1] = {
    1000,   2500,   5000,    10000,   25000,   50000,   100000,
    250000, 500000, 1000000, 2500000, 5000000, 10000000};

void ts_histogram_observe_us(ts_histogram *h, long us) {
    if (us < 0)
        us = 0;
    int b = 0;
    while (b < TS_LATENCY_BUCKETS - 1 && us > ts_latency_bounds_us[b])
        b++;
    atomic_fetch_add_explicit(&h->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, (unsigned long)us, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

void ts_histogram_observe(ts_histogram *h, long ms) {
    if (ms > LONG_MAX / 1000)
        ms = LONG_MAX / 1000;
    ts_histogram_observe_us(h, ms > 0 ? ms * 1000 : 0);
}

void ts_histogram_print(FILE *f, const char *name, const char *help, const ts_histogram *h) {
    ts_metric_head(f, name, help, "histogram");
    unsigned long cumulative = 0;
    for (int b = 0; b < TS_LATENCY_BUCKETS; b++) {
        cumulative += atomic_load_explicit(&h->buckets[b], memory_order_relaxed);
        if (b < TS_LATENCY_BUCKETS - 1) /* %g: 0.001, 0.0025, 1, 10, as Prometheus's clients */
            fprintf(f, "%s_bucket{le=\"%g\"} %lu\n", name, (double)ts_latency_bounds_us[b] / 1e6,
                    cumulative);
        else
            fprintf(f, "%s_bucket{le=\"+Inf\"} %lu\n", name, cumulative);
    }
    fprintf(f, "%s_sum %.6f\n%s_count %lu\n", name,
            (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6, name,
            atomic_load_explicit(&h->count, memory_order_relaxed));
}
