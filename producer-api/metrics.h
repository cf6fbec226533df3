/* metrics.h — the ingress's counters, rendered in the Prometheus text
 * format at /metrics. Updated with relaxed atomics; thread-safe. */
#ifndef TS_METRICS_H
#define TS_METRICS_H

#include <stdatomic.h>
#include <stddef.h>

#include "ts_statusd.h"

typedef struct ts_metrics {
    atomic_ulong requests[6]; /* by status class: [1] 1xx ... [5] 5xx */
    atomic_ulong commands_produced;
    atomic_ulong produce_failures; /* queue full, broker down, delivery failed */
    atomic_ulong replies_received;
    atomic_ulong replies_unmatched; /* for no request waiting here */
    atomic_ulong accepted_202;      /* answered 202 at the deadline */
    atomic_long waiting;            /* requests waiting for a reply now */
    atomic_ulong rate_limited;      /* answered 429 */
    atomic_ulong unauthorized;      /* answered 401 or 403 */
    atomic_ulong requests_cut;      /* connections cut at TS_REQUEST_TIMEOUT_S (copied in) */
    ts_histogram write_latency;     /* a write's request to its answer */
    ts_histogram produced;          /* command issued -> acknowledged by Kafka */
    ts_histogram to_applied;        /* command issued -> applied by the worker */
    ts_histogram to_reply;          /* applied -> reply read here */
    ts_histogram resume;            /* reply read -> its request resumed */
} ts_metrics;

/* The metrics as Prometheus text; caller frees. */
char *ts_metrics_render(const ts_metrics *m);

#endif
