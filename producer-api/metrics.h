/* metrics.h — the ingress's counters, rendered in the Prometheus text
 * format at /metrics. Updated with relaxed atomics; thread-safe. */
#ifndef TS_METRICS_H
#define TS_METRICS_H

#include <stdatomic.h>
#include <stddef.h>

/* Upper bounds (ms) of the latency histograms' buckets; the last is +Inf. */
#define TS_LATENCY_BUCKETS 10
extern const int ts_latency_bounds[TS_LATENCY_BUCKETS - 1];

typedef struct ts_histogram {
    atomic_ulong buckets[TS_LATENCY_BUCKETS]; /* not cumulative: rendered so */
    atomic_ulong sum_ms;
    atomic_ulong count;
} ts_histogram;

void ts_histogram_observe(ts_histogram *h, long ms);

typedef struct ts_metrics {
    atomic_ulong requests[6];        /* by status class: [1] 1xx ... [5] 5xx */
    atomic_ulong commands_produced;
    atomic_ulong produce_failures;   /* queue full, broker down, delivery failed */
    atomic_ulong replies_received;
    atomic_ulong replies_unmatched;  /* for no request waiting here */
    atomic_ulong accepted_202;       /* answered 202 at the deadline */
    atomic_long waiting;             /* requests waiting for a reply now */
    ts_histogram write_latency;      /* a write's request to its answer */
    ts_histogram to_applied;         /* command issued -> applied by the worker */
    ts_histogram to_reply;           /* applied -> reply read here */
    ts_histogram resume;             /* reply read -> its request resumed */
} ts_metrics;

/* The metrics as Prometheus text; caller frees. */
char *ts_metrics_render(const ts_metrics *m);

#endif
