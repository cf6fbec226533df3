/* SPDX-License-Identifier: Apache-2.0 */
/* ready.h — whether this API instance is ready for traffic, for /readyz,
 * known without asking anyone on an HTTP thread. Two threads of their own
 * ask every second: one Kafka (ts_replies_probe: the commands topic's
 * metadata; the reply partition led, assigned to this instance's reader
 * and fetched from), the other PostgreSQL (ts_pgprobe: SELECT 1 within
 * TS_PG_TIMEOUT_MS, the reads' database). /readyz reads their last
 * answers; draining and a fatal Kafka error are http.c's to add.
 * Thread-safe. */
#ifndef TS_READY_H
#define TS_READY_H

#include <stddef.h>

#include "replies.h"
#include "ts_config.h"

typedef struct ts_ready ts_ready;

/* Starts both threads; `replies` must outlive ts_ready_stop. Until their
 * first answers, nothing is ready. NULL with `err` set (no memory, no
 * thread). */
ts_ready *ts_ready_start(const ts_config *cfg, ts_replies *replies, char *err, size_t errlen);

/* What is not ready, as /readyz names it ("kafka", "reply_partition",
 * "database"): up to `max` static names in out[]; how many. */
size_t ts_ready_not_ready(ts_ready *r, const char **out, size_t max);

/* Stops both threads (a question under way is waited for: TS_PG_TIMEOUT_MS
 * at most) and frees. NULL is a no-op. */
void ts_ready_stop(ts_ready *r);

#endif
