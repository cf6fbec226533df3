/* SPDX-License-Identifier: Apache-2.0 */
/* metrics.h — the ingress's counters, rendered in the Prometheus text
 * format at /metrics. Thread-safe.
 *
 * Atomics in producer-api/ and common/ follow one rule, written here. A
 * counter or gauge that only /metrics reads (these, the histograms of
 * ts_prometheus.h, guard.c's count of cut requests) is updated and read with
 * memory_order_relaxed, spelled out (atomic_fetch_add_explicit,
 * atomic_load_explicit): it orders nothing, and a scrape may see one
 * counter a moment ahead of another. A flag or value that hands state from
 * one thread to another (the threads' stop flags, replies.c's
 * brokers_down_since, keys.c's mode, guard.c's deadlines, the log level)
 * uses the default, sequentially consistent, operations (atomic_load,
 * atomic_store): what a thread did before the store is seen by the thread
 * that loads it. */
#ifndef TS_METRICS_H
#define TS_METRICS_H

#include <stdatomic.h>
#include <stddef.h>

#include "ts_prometheus.h"

typedef struct ts_metrics {
    atomic_ulong requests[6]; /* by status class: [1] 1xx ... [5] 5xx */
    atomic_ulong commands_produced;
    atomic_ulong commands_at_once; /* of those, sent with no linger: none else waited */
    atomic_ulong produce_failures; /* queue full, broker down, delivery failed */
    atomic_ulong replies_received;
    atomic_ulong replies_unmatched; /* for no request waiting here */
    atomic_ulong accepted_202;      /* answered 202 at the deadline */
    atomic_long waiting;            /* requests waiting for a reply now */
    atomic_ulong rate_limited;      /* answered 429 */
    atomic_ulong unauthorized;      /* answered 401 or 403 */
    atomic_ulong requests_cut;      /* connections cut at TS_REQUEST_TIMEOUT_S (copied in) */
    atomic_ulong reads_refused;     /* reads answered 503 at once: their queue was full */
    atomic_ulong reads_failed;      /* reads answered 503: no answer from PostgreSQL in time */
    atomic_long reads_waiting;      /* reads queued or running now */
    atomic_ulong reads_primary;     /* reads answered from TS_PG_DSN */
    atomic_ulong reads_replica;     /* reads answered from TS_PG_READ_DSN */
    atomic_ulong fallback_lag;      /* reads of data to the primary: the replica was behind */
    atomic_ulong fallback_down;     /* ...: the replica failed, or rests after failing */
    atomic_ulong db_deadlines;      /* PostgreSQL calls cut at TS_PG_TIMEOUT_MS (copied in) */
    atomic_ulong ready;             /* 1 when /readyz would answer 200 (copied in) */
    atomic_long reply_partition;    /* the reply partition new commands name */
    atomic_ulong reply_claimed;     /* 1 while this instance holds its claim */
    ts_histogram write_latency;     /* a write's request to its answer */
    ts_histogram produced;          /* command issued -> acknowledged by Kafka */
    ts_histogram to_applied;        /* command issued -> applied by the worker */
    ts_histogram to_reply;          /* applied -> reply read here */
    ts_histogram resume;            /* reply read -> its request resumed */
} ts_metrics;

/* The metrics as Prometheus text; caller frees. NULL when out of memory. */
char *ts_metrics_render(const ts_metrics *m);

#endif
