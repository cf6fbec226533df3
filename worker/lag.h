/* SPDX-License-Identifier: Apache-2.0 */
/* lag.h — what this worker owns of the commands topic, as the status
 * thread sees it (/metrics and /readyz): each partition's offset stored in
 * PostgreSQL, its end, and the lag between, turnstile_worker_lag_messages.
 *
 * The loop publishes a partition's state whenever it changes (assigned,
 * settled at its stored offset, moved by a commit, revoked): a relaxed
 * store, nothing more on the hot path.
 *
 * The end is asked for by a thread of its own. librdkafka's cached high
 * watermark (rd_kafka_get_watermark_offsets) comes with fetch responses
 * only, and a partition is not fetched while its prefetch queue is full
 * (queued.min.messages: a backlog, a database outage) or while it is
 * paused (assigned, not settled yet): the lag would stand still exactly
 * when it grows. statistics.interval.ms refreshes the low watermark only.
 * So every second the thread asks the leaders for the end of every owned
 * partition (rd_kafka_offsets_for_times at the latest offset: one
 * ListOffsets request per broker, the consumer's read_committed isolation)
 * and keeps the larger of that and the cached watermark. Thread-safe. */
#ifndef TS_LAG_H
#define TS_LAG_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <stdio.h>

#define TS_LAG_PARTITIONS 1024 /* partitions 0..this-1 are tracked */

/* A partition's state as published (ts_lag_set): not this worker's,
 * assigned but its stored offset not known yet, or that offset (>= 0). */
#define TS_LAG_NOT_OWNED (-2)
#define TS_LAG_UNSETTLED (-1)

typedef struct ts_lag ts_lag;

/* Starts the thread that asks for the ends of `topic`'s owned partitions
 * through `consumer` (not owned: it must outlive ts_lag_stop). NULL with
 * `err` set (no memory, no thread). */
ts_lag *ts_lag_start(rd_kafka_t *consumer, const char *topic, char *err, size_t errlen);

/* Stops the thread (waiting for a question under way, 2 s at most) and
 * frees. NULL is a no-op. */
void ts_lag_stop(ts_lag *l);

/* Partition p is TS_LAG_NOT_OWNED, TS_LAG_UNSETTLED or stored at `state`.
 * The worker's loop (and its rebalance callback) calls it. */
void ts_lag_set(ts_lag *l, int32_t p, int64_t state);

/* How many partitions are owned, and of those how many settled. */
void ts_lag_assignment(ts_lag *l, int *owned, int *settled);

/* turnstile_worker_lag_messages{partition="N"}: for each settled
 * partition whose end is known, end - stored offset (0 at least). */
void ts_lag_metrics_print(ts_lag *l, FILE *out);

#endif
