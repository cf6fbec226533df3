/* SPDX-License-Identifier: Apache-2.0 */
/* ts_prometheus.c — see ts_prometheus.h. */
#include "ts_prometheus.h"

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

const int ts_latency_bounds[TS_LATENCY_BUCKETS - 1] = {1,   2,   5,   10,   25,  50,
                                                       100, 250, 500, 1000, 5000};

void ts_histogram_observe(ts_histogram *h, long ms) {
    int b = 0;
    while (b < TS_LATENCY_BUCKETS - 1 && ms > ts_latency_bounds[b])
        b++;
    atomic_fetch_add_explicit(&h->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ms, (unsigned long)(ms > 0 ? ms : 0), memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

void ts_histogram_print(FILE *f, const char *name, const char *help, const ts_histogram *h) {
    ts_metric_head(f, name, help, "histogram");
    unsigned long cumulative = 0;
    for (int b = 0; b < TS_LATENCY_BUCKETS; b++) {
        cumulative += atomic_load_explicit(&h->buckets[b], memory_order_relaxed);
        if (b < TS_LATENCY_BUCKETS - 1)
            fprintf(f, "%s_bucket{le=\"%d\"} %lu\n", name, ts_latency_bounds[b], cumulative);
        else
            fprintf(f, "%s_bucket{le=\"+Inf\"} %lu\n", name, cumulative);
    }
    fprintf(f, "%s_sum %lu\n%s_count %lu\n", name,
            atomic_load_explicit(&h->sum_ms, memory_order_relaxed), name,
            atomic_load_explicit(&h->count, memory_order_relaxed));
}
