/* SPDX-License-Identifier: Apache-2.0 */
/* apply.h — applying commands to PostgreSQL.
 *
 * A batch is what the consumer took in one poll, in runs of one partition
 * each. It is applied in ONE transaction that first moves every partition's
 * stored offset from the value this worker expects to the end of its run:
 * if another worker moved one first, this one is a zombie for that
 * partition and the transaction is rolled back before anything else
 * happens. Inside it the applier loads the state the commands touch, has
 * decide.c decide them, and writes the rows decided; each event's counter
 * is written once per batch. Not thread-safe: one applier per worker
 * thread. */
#ifndef TS_APPLY_H
#define TS_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decide.h"
#include "ts_codec.h"

typedef struct ts_applier ts_applier;

/* One partition's share of a batch: items[first .. first + count), which
 * move its stored offset from `expected` to `next`. */
typedef struct ts_batch_part {
    int32_t partition;
    int64_t expected;
    int64_t next;
    size_t first, count;
    bool fenced; /* set when the stored offset was not `expected` */
} ts_batch_part;

typedef enum ts_apply_status {
    TS_APPLY_OK = 0,
    TS_APPLY_FENCED,   /* a stored offset is not the expected one: see .fenced */
    TS_APPLY_RETRY,    /* transient: the database is down or busy; try again */
    TS_APPLY_REJECTED, /* a statement was refused (a constraint, bad data) */
} ts_apply_status;

/* Connects (and migrates when `migrate`); NULL with `err` set on failure.
 * Every transaction, and the setup of every connection, has `timeout_ms`
 * (ts_pg_watch): past it the connection is cut and the call fails with
 * TS_APPLY_RETRY (or -1). */
ts_applier *ts_applier_new(const char *dsn, int migrate, int timeout_ms, char *err, size_t errlen);
void ts_applier_free(ts_applier *a);

/* Drops the connection and opens a new one. 0, or -1 with `err` set. */
int ts_applier_reconnect(ts_applier *a, char *err, size_t errlen);

/* True when the connection to PostgreSQL is lost. */
bool ts_applier_connection_lost(const ts_applier *a);

/* The next offset to apply for a partition (0 if none is stored yet; the
 * row is created then). 0, or -1 with `err` set. */
int ts_applier_load_offset(ts_applier *a, const char *topic, int32_t partition, int64_t *next,
                           char *err, size_t errlen);

/* Applies the items of every part in ONE transaction, which also moves
 * each part's stored offset from `expected` to `next`. Partitions hold
 * disjoint events, so their items are independent; within a part, items
 * are applied in order. On TS_APPLY_OK every item that is not skipped has
 * its reply filled. On any other status nothing was written; on
 * TS_APPLY_FENCED the parts another worker moved have .fenced set. */
ts_apply_status ts_applier_apply(ts_applier *a, const char *topic, ts_batch_part *parts,
                                 size_t nparts, ts_batch_item *items, char *err, size_t errlen);

/* One record of the event stream (turnstile.events), encoded: the change
 * a command of the last committed batch made, keyed by its event id. The
 * same bytes are stored in stream_outbox, in the batch's transaction. */
typedef struct ts_stream_msg {
    const char *event_id;
    const uint8_t *bytes;
    size_t len;
    int32_t partition; /* the command's, in the commands topic */
    int64_t offset;
} ts_stream_msg;

/* The records of the batch the last ts_applier_apply() committed, in the
 * order they must be published (per event: by sequence number). Valid
 * until the next ts_applier_apply(); none after a failed one. */
size_t ts_applier_stream(const ts_applier *a, const ts_stream_msg **msgs);

/* Batches first tried without their lookups, then undone because a
 * command or a registration was already stored (see apply.c). */
unsigned long ts_applier_conflicts(const ts_applier *a);

/* After such a batch, how many run with their lookups before trying
 * without again (0: every batch tries). */
void ts_applier_set_optimism_pause(ts_applier *a, unsigned batches);

#endif
