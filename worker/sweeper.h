/* SPDX-License-Identifier: Apache-2.0 */
/* sweeper.h — the hold sweeper: a thread that finds the seat holds past
 * their expiry and asks for them to expire.
 *
 * Every TS_SWEEP_INTERVAL_MS it asks PostgreSQL for the holds still held
 * whose expires_at is before now (the local clock), and writes an
 * ExpireHold command for each to the commands topic, keyed by its event
 * id: the event's partition decides, in order with everything else of the
 * event, at the command's issued_at (that same now, after expires_at).
 * The sweeper decides nothing itself. Its command id is name-based
 * (version 5) on the hold's id, so that the repeated sweeps of one worker
 * and the sweeps of several workers are one command to the worker that
 * applies them; a hold still held is asked for again after
 * TS_SWEEPER_RESEND_MS. A database error is logged, waited out and
 * reconnected; it never stops the worker. */
#ifndef TS_SWEEPER_H
#define TS_SWEEPER_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdio.h>

#include "ts_config.h"
#include "ts_limits.h"

/* The namespace of the sweeper's command ids: the command that expires
 * hold H is uuid5(TS_SWEEPER_NAMESPACE, "expire:" + H). Fixed forever:
 * changing it makes every sweeper's commands new ones. */
#define TS_SWEEPER_NAMESPACE "6b5af523-398b-4f7e-aadd-de2a8c1fb840"

/* A hold asked to expire is not asked again for this long. */
#define TS_SWEEPER_RESEND_MS 5000

typedef struct ts_sweeper ts_sweeper;

/* Starts the thread (cfg->sweep_interval_ms > 0). Commands go out through
 * `producer` (thread-safe; not owned: it must outlive the sweeper, and its
 * delivery reports are served by its owner). Connects to PostgreSQL in the
 * thread, retrying: a database down at start is no error. NULL with `err`
 * set on failure (no memory, no thread). */
ts_sweeper *ts_sweeper_start(const ts_config *cfg, rd_kafka_t *producer, char *err, size_t errlen);

/* Stops the thread (a sweep under way finishes), waits for it, flushes
 * the producer (up to 5 s) and frees. NULL is a no-op. */
void ts_sweeper_stop(ts_sweeper *s);

/* The command id that expires `hold_id` (a UUID's text). Pure. */
void ts_sweeper_command_id(const char *hold_id, char out[TS_UUID_LEN + 1]);

/* Its counters in the Prometheus text format. Thread-safe. */
void ts_sweeper_metrics_print(const ts_sweeper *s, FILE *out);

#endif
