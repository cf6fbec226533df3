/* SPDX-License-Identifier: Apache-2.0 */
/* reads.h — the GET endpoints, answered from PostgreSQL directly, off the
 * HTTP threads.
 *
 * A read is queued for a small pool of threads (TS_READ_THREADS), each
 * with a PostgreSQL connection of its own, and its request is suspended
 * until a thread has the answer. Nothing a database does can hold an HTTP
 * thread: writes, /healthz and /metrics never wait on it. Every read has a
 * deadline (TS_PG_TIMEOUT_MS from its arrival, connecting included, cut by
 * ts_pg_watch when PostgreSQL does not answer at all); past it the answer
 * is 503. At most TS_READ_QUEUE reads wait: the next is answered 503 at
 * once, never queued behind a database that has stopped answering.
 *
 * With TS_PG_READ_DSN, reads of data (the event, its registrations, the
 * upcoming events, the stats, the waitlist) go to that streaming replica
 * once it has replayed every write this instance has answered and the
 * position the request names (position.h), and to TS_PG_DSN, the primary,
 * otherwise: while it lags, and while it rests after failing (down,
 * unreachable, not answering: 1 s, then longer, up to 30 s; logged when it
 * goes and comes back). A command's outcome is always read on the primary.
 * Thread-safe. */
#ifndef TS_READS_H
#define TS_READS_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>

#include "metrics.h"
#include "ts_config.h"
#include "ts_limits.h"

typedef enum ts_read_kind {
    /* the event with its counts; with its registrations (names, emails), a
     * page of them (`limit` from `offset`, oldest first) whose place the
     * body gives (registrations_limit, registrations_offset), only when
     * `attendees` (open mode, or an organizer key for the event) */
    TS_READ_EVENT,
    TS_READ_UPCOMING, /* scheduled events to come, a page of them */
    TS_READ_STATS,
    /* an event's waitlist, a page of it in line order: [{user_id, name,
     * email, position, joined_at}], position the 1-based place in the whole
     * line; 404 for no such event */
    TS_READ_WAITLIST,
    TS_READ_COMMAND, /* a processed command's outcome: 200, or 404 when not applied */
} ts_read_kind;

/* A read: what to read, then (once the request is resumed) its answer.
 * Every event carries its status ("scheduled" or "cancelled"). A database
 * that cannot be reached in time is a 503. Out of memory is a 500 with
 * body NULL: never a part of an answer (a list with rows missing). */
typedef struct ts_read {
    ts_read_kind kind;
    char id[TS_UUID_LEN + 1]; /* the event's or the command's */
    bool attendees;
    long limit, offset;
    /* a read of data: the WAL position it must see at least (the request's
     * X-Turnstile-Min-Position; 0 for none), besides those of the writes
     * this instance answered */
    uint64_t min_position;
    /* the answer: body is the caller's to decref */
    unsigned status;
    json_t *body;
    uint64_t position; /* TS_READ_COMMAND found: the primary's WAL position then; else 0 */
    /* the pool's */
    struct MHD_Connection *conn;
    int64_t due_ms;
    struct ts_read *next;
} ts_read;

typedef struct ts_readers ts_readers;

/* Starts the threads. `metrics` counts refusals and failures. NULL with
 * `err` set on failure. */
ts_readers *ts_readers_start(const ts_config *cfg, ts_metrics *metrics, char *err, size_t errlen);

/* Queues `rd` and suspends `conn` (call from its access handler): when
 * libmicrohttpd calls the handler again, rd->status and rd->body hold the
 * answer. False, with nothing suspended, when the queue is full or the
 * pool drains: answer 503 then. */
bool ts_readers_submit(ts_readers *rs, ts_read *rd, struct MHD_Connection *conn);

/* A write was answered with its reply: reads of data must see it from now
 * on, wherever they are served. `position` is the WAL position its commit
 * reached (the reply's commit_lsn); 0 when the worker did not say (a
 * worker of before), and then the next read of data asks the primary for
 * its position first and takes that. Not for an INVALID reply, which
 * applied nothing. Call before the write's answer is sent. */
void ts_readers_written(ts_readers *rs, uint64_t position);

/* Takes no more reads and waits until those taken are answered (each has
 * its deadline). Before MHD_stop_daemon: no request stays suspended. */
void ts_readers_drain(ts_readers *rs);

/* Stops the threads (closing their connections) and frees. NULL: no-op. */
void ts_readers_stop(ts_readers *rs);

#endif
