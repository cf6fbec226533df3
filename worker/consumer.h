/* SPDX-License-Identifier: Apache-2.0 */
/* consumer.h — the worker's loop: consume commands, apply them in batches,
 * reply after commit, and send what cannot be applied to the dead-letter
 * topic. */
#ifndef TS_CONSUMER_H
#define TS_CONSUMER_H

#include <signal.h>
#include <stddef.h>

#include "ts_config.h"

typedef struct ts_worker ts_worker;

/* Connects to Kafka and PostgreSQL. NULL with `err` set on failure. */
ts_worker *ts_worker_new(const ts_config *cfg, char *err, size_t errlen);

/* Runs until *stop becomes non-zero, then drains: the batch in hand is
 * committed, replies are flushed, the group is left. Returns 0, or -1 if
 * the worker could not go on. */
int ts_worker_run(ts_worker *w, volatile sig_atomic_t *stop);

void ts_worker_free(ts_worker *w);

/* The worker's counters in the Prometheus text format (caller frees).
 * Thread-safe; `arg` is the ts_worker. */
char *ts_worker_metrics(void *arg);

#endif
