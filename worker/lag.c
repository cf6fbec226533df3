/* SPDX-License-Identifier: Apache-2.0 */
/* lag.c — see lag.h. Every value here is read only for /metrics and
 * /readyz, so it is stored and read with relaxed atomics (the project's
 * rule, written in producer-api/core/metrics.h). */
#include "lag.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_limits.h"
#include "ts_log.h"
#include "ts_periodic.h"
#include "ts_prometheus.h"

#define REFRESH_MS 1000 /* how often the ends are asked for */
#define QUERY_MS 2000   /* the longest a question waits for the leaders */

struct ts_lag {
    rd_kafka_t *consumer;
    char topic[TS_TOPIC_MAX + 1];
    atomic_llong state[TS_LAG_PARTITIONS]; /* TS_LAG_NOT_OWNED, _UNSETTLED, or stored */
    atomic_llong end[TS_LAG_PARTITIONS];   /* -1: not known */
    bool warned;                           /* the thread's: a failed question said once */
    ts_periodic *thread;
};

static int64_t load(const atomic_llong *v) {
    return atomic_load_explicit(v, memory_order_relaxed);
}

/* The end of every settled partition, from the leaders and the cache. */
static long refresh(ts_periodic *t, void *arg) {
    (void)t;
    ts_lag *l = arg;
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(16);
    for (int32_t p = 0; p < TS_LAG_PARTITIONS; p++)
        if (load(&l->state[p]) >= 0)
            rd_kafka_topic_partition_list_add(list, l->topic, p)->offset = RD_KAFKA_OFFSET_END;
    rd_kafka_resp_err_t e = list->cnt ? rd_kafka_offsets_for_times(l->consumer, list, QUERY_MS)
                                      : RD_KAFKA_RESP_ERR_NO_ERROR;
    if (e && !l->warned) /* the cached watermark still moves the ends */
        ts_warn("worker", "event=lag_end_unknown err=\"%s\"", rd_kafka_err2str(e));
    l->warned = e != RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int i = 0; i < list->cnt; i++) {
        int32_t p = list->elems[i].partition;
        int64_t end = load(&l->end[p]), low, high;
        if (!e && !list->elems[i].err && list->elems[i].offset > end)
            end = list->elems[i].offset;
        if (!rd_kafka_get_watermark_offsets(l->consumer, l->topic, p, &low, &high) && high > end)
            end = high;
        atomic_store_explicit(&l->end[p], end, memory_order_relaxed);
    }
    rd_kafka_topic_partition_list_destroy(list);
    return REFRESH_MS;
}

ts_lag *ts_lag_start(rd_kafka_t *consumer, const char *topic, char *err, size_t errlen) {
    ts_lag *l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->consumer = consumer;
    snprintf(l->topic, sizeof l->topic, "%s", topic);
    for (int p = 0; p < TS_LAG_PARTITIONS; p++) {
        atomic_init(&l->state[p], TS_LAG_NOT_OWNED);
        atomic_init(&l->end[p], -1);
    }
    if (!(l->thread = ts_periodic_start(refresh, l, err, errlen))) {
        free(l);
        return NULL;
    }
    return l;
}

void ts_lag_stop(ts_lag *l) {
    if (!l)
        return;
    ts_periodic_stop(l->thread);
    free(l);
}

void ts_lag_set(ts_lag *l, int32_t p, int64_t state) {
    if (p >= 0 && p < TS_LAG_PARTITIONS)
        atomic_store_explicit(&l->state[p], state, memory_order_relaxed);
}

void ts_lag_assignment(ts_lag *l, int *owned, int *settled) {
    *owned = *settled = 0;
    for (int p = 0; p < TS_LAG_PARTITIONS; p++) {
        int64_t s = load(&l->state[p]);
        *owned += s != TS_LAG_NOT_OWNED;
        *settled += s >= 0;
    }
}

void ts_lag_metrics_print(ts_lag *l, FILE *out) {
    ts_metric_head(out, "turnstile_worker_lag_messages",
                   "Commands of an owned partition not applied yet: its end (high watermark)"
                   " minus the offset stored in PostgreSQL.",
                   "gauge");
    for (int p = 0; p < TS_LAG_PARTITIONS; p++) {
        int64_t stored = load(&l->state[p]), end = load(&l->end[p]);
        if (stored >= 0 && end >= 0)
            fprintf(out, "turnstile_worker_lag_messages{partition=\"%d\"} %lld\n", p,
                    (long long)(end > stored ? end - stored : 0));
    }
}
