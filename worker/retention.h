/* SPDX-License-Identifier: Apache-2.0 */
/* retention.h — the worker's retention job: a thread that, every
 * TS_PRUNE_INTERVAL_S, prunes what the retention settings let go (see
 * ts_prune.h): processed commands past TS_RETAIN_COMMANDS_H, events past
 * TS_RETAIN_EVENTS_DAYS with their rows, and users nothing names.
 *
 * Every worker of the group runs one; a pass that finds another worker's
 * (or turnstile-admin prune's) under way skips (the advisory lock of
 * ts_prune_run). Before each pass it asks the broker for the commands
 * topic's retention and refuses the pass when the window is not longer
 * (an error line); a broker that does not answer is warned about and the
 * setting trusted. A database error is logged and the connection made
 * again at the next pass; it never stops the worker. */
#ifndef TS_RETENTION_H
#define TS_RETENTION_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "ts_config.h"

typedef struct ts_retention ts_retention;

/* Starts the thread (cfg->prune_interval_s > 0); its first pass is at
 * once. `rk` (not owned, thread-safe, outliving the job) asks the broker
 * for the topic's retention. Connects to PostgreSQL in the thread. NULL
 * with `err` set on failure (no memory, no thread). */
ts_retention *ts_retention_start(const ts_config *cfg, rd_kafka_t *rk, char *err, size_t errlen);

/* Stops the thread (a pass under way stops after its current chunk),
 * waits for it and frees. NULL is a no-op. */
void ts_retention_stop(ts_retention *r);

#endif
