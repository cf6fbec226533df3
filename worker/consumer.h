/* SPDX-License-Identifier: Apache-2.0 */
/* consumer.h — the worker's loop: consume commands, apply them in batches,
 * reply after commit, and send what cannot be applied to the dead-letter
 * topic. */
#ifndef TS_CONSUMER_H
#define TS_CONSUMER_H

#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>

#include "ts_config.h"

typedef struct ts_worker ts_worker;

/* Connects to Kafka and PostgreSQL, and makes the event stream's relay
 * (stream.h: the events topic must exist). NULL with `err` set on
 * failure. */
ts_worker *ts_worker_new(const ts_config *cfg, char *err, size_t errlen);

/* Runs until *stop becomes non-zero, then drains: the batch in hand is
 * committed, replies and the event stream's records are flushed, the group
 * is left. Returns 0, or -1 if the worker could not go on (the event
 * stream's relay failed: see ts_stream_failed). */
int ts_worker_run(ts_worker *w, volatile sig_atomic_t *stop);

void ts_worker_free(ts_worker *w);

/* Prints the worker's counters (the event stream's included) in the
 * Prometheus text format. Thread-safe. */
void ts_worker_metrics_print(ts_worker *w, FILE *out);

/* How many partitions of the commands topic this worker owns, and of those
 * how many are settled (their stored offset read and sought: they may be
 * applied). For /readyz. Thread-safe. */
void ts_worker_assignment(ts_worker *w, int *owned, int *settled);

/* The producer of the worker's replies, for others that write now and then
 * (the hold sweeper): thread-safe; the worker serves its delivery reports;
 * it lives until ts_worker_free. */
rd_kafka_t *ts_worker_producer(ts_worker *w);

/* Why the worker cannot go on ("kafka_fatal", "stream_failed"), or NULL
 * while it can: /healthz answers 503 with it. Thread-safe. */
const char *ts_worker_failure(ts_worker *w);

#endif
