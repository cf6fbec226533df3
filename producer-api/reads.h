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
    /* the answer: body is the caller's to decref */
    unsigned status;
    json_t *body;
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

/* Takes no more reads and waits until those taken are answered (each has
 * its deadline). Before MHD_stop_daemon: no request stays suspended. */
void ts_readers_drain(ts_readers *rs);

/* Stops the threads (closing their connections) and frees. NULL: no-op. */
void ts_readers_stop(ts_readers *rs);

#endif
