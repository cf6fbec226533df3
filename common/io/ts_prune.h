/* SPDX-License-Identifier: Apache-2.0 */
/* ts_prune.h — retention: deleting what turnstile no longer needs, for
 * turnstile-admin prune and the worker's periodic retention job alike.
 *
 * What goes (ts_config):
 *   processed_commands  older than TS_RETAIN_COMMANDS_H. This table is how
 *                       a command delivered again is recognised as applied
 *                       (and answered with its first outcome): it must
 *                       outlive every copy of a command in the commands
 *                       topic, so the window must be longer than the
 *                       topic's retention (ts_prune_check_window).
 *   events              that started more than TS_RETAIN_EVENTS_DAYS ago
 *                       (0: none), each with its registrations, holds and
 *                       waitlist places, all in one transaction.
 *   users               no registration, hold or waitlist place names.
 * stream_outbox is the relay's to prune, and consumer_offsets is kept.
 *
 * Against the worker. A batch of the worker reads what it needs, decides in
 * memory and writes, in one READ COMMITTED transaction whose first
 * statement (the fence) updates consumer_offsets: from there to its commit
 * it holds consumer_offsets in ROW EXCLUSIVE mode. Every transaction that
 * deletes an event or a user first takes consumer_offsets in SHARE mode,
 * which conflicts with that: it waits for the batches under way to commit,
 * and batches that start meanwhile wait at their fence until it commits.
 * Each statement after the lock reads a snapshot taken after it, so it
 * sees every batch committed before, and each batch after reads a snapshot
 * that has the deletion. A batch therefore never decides on an event, a
 * registration or a user row that vanishes before its commit: no
 * registration without its event or its user, no "vanished" row that
 * would send a command to the dead-letter topic; a command for a pruned
 * event is answered "Event not found". The lock is held for one chunk
 * (about TS_PRUNE_CHUNK_ROWS rows; an event goes whole, so an event with
 * more rows makes a chunk of its size: 100,000 registrations took 60 ms
 * here), and waited for at most PRUNE_LOCK_WAIT_MS (ts_prune.c).
 * processed_commands needs no such lock: only rows older than the window
 * go, and no batch reads one except to answer a command delivered again
 * after the window — the case the window rules out.
 *
 * One pruner at a time: a run holds a session advisory lock
 * (TS_PRUNE_LOCK_KEY) and returns TS_PRUNE_BUSY when another holds it. */
#ifndef TS_PRUNE_H
#define TS_PRUNE_H

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>

#include "ts_config.h"

/* The advisory lock of a pruning run, in every process. */
#define TS_PRUNE_LOCK_KEY 0x7072756e /* "prun" */

/* Rows deleted (or, for a dry run, that would be). */
typedef struct ts_prune_counts {
    long long processed_commands, events, registrations, holds, waitlist, users;
} ts_prune_counts;

typedef enum ts_prune_window {
    TS_WINDOW_SAFE,    /* longer than every copy of a command can live in the topic */
    TS_WINDOW_UNKNOWN, /* the topic's retention could not be learned: the setting is trusted */
    TS_WINDOW_UNSAFE,  /* not longer than the topic's retention, or the topic keeps all */
} ts_prune_window;

/* The verdict on TS_RETAIN_COMMANDS_H (`retain_h`) against the commands
 * topic's retention.ms (-1: forever) and segment.ms (-1: not known): a
 * message can outlive retention.ms by up to segment.ms, because the broker
 * deletes whole segments once their newest message is past retention. Not
 * longer than retention.ms, or a topic that keeps everything: unsafe. Not
 * longer than both added: safe, with a warning in msg[]. msg[] says why in
 * every case ("" when there is nothing to say). Pure. */
ts_prune_window ts_prune_window_verdict(int retain_h, const char *topic, long long retention_ms,
                                        long long segment_ms, char *msg, size_t msglen);

/* ts_prune_window_verdict on what the broker says of cfg->topic_commands
 * (Admin API DescribeConfigs through `rk`, any client handle, within
 * timeout_ms); TS_WINDOW_UNKNOWN, with the reason in msg[], when it cannot
 * be asked. */
ts_prune_window ts_prune_check_window(rd_kafka_t *rk, const ts_config *cfg, int timeout_ms,
                                      char *msg, size_t msglen);

typedef enum ts_prune_status {
    TS_PRUNE_DONE,    /* everything past the settings is gone */
    TS_PRUNE_BUSY,    /* another run holds the lock: nothing done */
    TS_PRUNE_STOPPED, /* stop() said so between two chunks: some done */
    TS_PRUNE_FAILED,  /* a statement failed (err): some may be done */
} ts_prune_status;

/* Asked between chunks: true to stop. NULL: never. */
typedef bool (*ts_prune_stop_fn)(void *arg);

/* Prunes with `conn` (migrated; its session must not be in a transaction)
 * in chunks of cfg->prune_chunk_rows, each its own transaction. What it
 * deleted is added to *done, also when it fails or stops half-way. The
 * window is not checked here: ts_prune_check_window first. */
ts_prune_status ts_prune_run(PGconn *conn, const ts_config *cfg, ts_prune_stop_fn stop, void *arg,
                             ts_prune_counts *done, char *err, size_t errlen);

/* What ts_prune_run would delete now, counted in one snapshot; deletes
 * nothing. 0, or -1 with `err` set. */
int ts_prune_count(PGconn *conn, const ts_config *cfg, ts_prune_counts *would, char *err,
                   size_t errlen);

#endif
