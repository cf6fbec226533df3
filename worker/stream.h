/* SPDX-License-Identifier: Apache-2.0 */
/* stream.h — the event stream's relay: publishes to PREFIX.events the
 * records (schemas/change.avsc) that each committed batch wrote to its
 * outbox (stream_outbox), keyed by event id, in order.
 *
 * At least once, in order, without gaps: a dedicated idempotent producer
 * (acks=all, no message timeout) keeps every record until the broker has
 * it. For each partition of the commands topic the relay knows its
 * watermark, the lowest command offset whose records are not all
 * acknowledged yet, and stores it (consumer_offsets.stream_offset, only
 * ever forward, about once a second) on a PostgreSQL connection of its own.
 * When the worker takes a partition, the relay first publishes again every
 * record of the partition's commands from that stored offset on; what it
 * publishes after that comes behind them. A duplicate is possible (readers
 * skip a record whose per-event seq they have seen), a gap is not.
 *
 * Not thread-safe: the worker's thread calls every function but
 * ts_stream_metrics_print (any thread). Delivery reports are served by
 * ts_stream_poll, ts_stream_publish and ts_stream_drain, on that thread. */
#ifndef TS_STREAM_H
#define TS_STREAM_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "apply.h"
#include "ts_config.h"

typedef struct ts_stream ts_stream;

/* The relay's producer and its PostgreSQL connection; fails when the
 * events topic does not exist (turnstile-admin topics creates it). NULL
 * with `err` set. */
ts_stream *ts_stream_new(const ts_config *cfg, char *err, size_t errlen);

/* Destroys the producer (what it still holds is in the outbox: the next
 * owner of the partitions publishes it) and closes the connection. Call
 * ts_stream_drain() first for a clean stop. NULL is a no-op. */
void ts_stream_free(ts_stream *s);

/* Partition `partition` of the commands topic is this worker's, from its
 * stored offset `next` on: queues again every record of its commands below
 * `next` that may not have reached the topic (from the stored stream
 * offset; or, for a partition the relay follows already, from where it
 * stopped following), before anything of the partition's new batches.
 * Retries while PostgreSQL is down. 0, or -1 when *stop was set or the
 * relay failed (ts_stream_failed): then the partition must not be
 * applied, and the next call recovers it again. */
int ts_stream_recover(ts_stream *s, int32_t partition, int64_t next,
                      const volatile sig_atomic_t *stop);

/* The partition is not this worker's any more (revoked): the relay stops
 * following it. Its records in flight still count. No I/O: safe in a
 * rebalance callback. */
void ts_stream_release(ts_stream *s, int32_t partition);

/* After a committed batch: queues msgs[0..n) (ts_applier_stream's, in
 * that order) and notes that each of parts[0..nparts) is covered up to its
 * `next`. Waits while the producer's queue is full (the broker away),
 * serving delivery reports, until *stop; records not queued then stay in
 * the outbox, below the watermark. */
void ts_stream_publish(ts_stream *s, const ts_batch_part *parts, size_t nparts,
                       const ts_stream_msg *msgs, size_t n, const volatile sig_atomic_t *stop);

/* Serves delivery reports and, at most once a second, stores the
 * watermarks that moved. Cheap: call it after every batch and while idle. */
void ts_stream_poll(ts_stream *s);

/* Waits up to timeout_ms for every record queued to be acknowledged, then
 * stores the watermarks. For a clean stop. */
void ts_stream_drain(ts_stream *s, int timeout_ms);

/* True once the relay cannot go on: the producer raised a fatal error, or
 * the broker refused a record (a gap, were the worker to go on). Logged
 * with the reason; the worker must stop and exit non-zero (the records
 * stay in the outbox, above the stored watermark). */
bool ts_stream_failed(const ts_stream *s);

/* The relay's counters in the Prometheus text format (records published,
 * pending, re-sent by recovery). Thread-safe. */
void ts_stream_metrics_print(const ts_stream *s, FILE *out);

#endif
