/* SPDX-License-Identifier: Apache-2.0 */
/* apply.c — see apply.h.
 *
 * A batch costs a fixed number of statements, whatever its size:
 *
 *   BEGIN
 *   fence        move the partitions' stored offsets (or learn we are a zombie)
 *   seen         which command ids were applied before (their first outcome)
 *   events       the events the batch touches: capacity, counters, start, status
 *   registered   the seats of the (event, user) pairs the batch names: a
 *                registration, a held seat or a place on a waitlist, with
 *                its cancel-token digest and the command that made it
 *   holds        the holds the batch names, and those of its events that may
 *                expire during it (only events that have holds)
 *   waitlist     the head of each waitlist the batch may move (only events
 *                that have one)
 *   ...decide.c decides every command in offset order, in memory...
 *   insert       events, users, registrations, waitlist places, holds,
 *                processed commands, and the event-stream records (one
 *                stream_outbox row per partition): one multi-row INSERT
 *                each (unnest of array parameters)
 *   rotate       the tokens retried registrations bring: one UPDATE
 *   counters     one UPDATE for all the events touched
 *   COMMIT
 *
 * This file only loads that state and writes those rows; what to write is
 * decide.c's. A freed seat (a cancellation, a hold released or expired) is
 * decided in memory too, but which seat it frees is only known to the
 * database, so it runs as statements of its own (DELETE ... RETURNING
 * seat, and the last seat moved into the hole), after the rows decided
 * before it; so do a confirmation and a capacity change. They are rare in
 * a burst. A plain registration burst runs none of the lifecycle's
 * statements: they run only for the events and commands that need them.
 *
 * Optimistic batches. In a burst almost no command is a replay and almost
 * no registration a duplicate of a stored one, so a batch of creates,
 * registrations and holds first skips the two lookups ("seen", "registered") and lets
 * the primary keys of processed_commands and registrations say so: their
 * unique check runs anyway when the rows go in. A violation of either
 * rolls the batch back and it runs again with the lookups, and so do the
 * next TS_OPTIMISM_PAUSE batches (64). So does a batch in which the decider
 * would refuse someone for a full event, before anything is written: a
 * stored registration would make that "already registered", which only the
 * lookup tells. Nothing of the undone attempt survives: its outcomes are
 * decided again from scratch.
 *
 * The worker owns every write of the events of its partitions, so the
 * decisions need no row locks: the fence at the start already serialises
 * this worker against any other that believes it owns the partition. */
#include "apply.h"

#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decide.h"
#include "ts_log.h"
#include "ts_lsn.h"
#include "ts_pg.h"
#include "ts_pgarray.h"
#include "ts_time.h"

/* Statements sent and not yet read, at most: past this the pipeline is
 * read before more go in (a batch of plain registrations sends 8). */
#define MAX_PENDING 64

enum stmt {
    ST_FENCE,
    ST_LOAD_OFFSET,
    ST_SEEN,
    ST_EVENTS,
    ST_REGISTERED,
    ST_REGISTERED_ONLY,
    ST_INSERT_EVENTS,
    ST_INSERT_USERS,
    ST_INSERT_REGISTRATIONS,
    ST_INSERT_PROCESSED,
    ST_COUNTERS,
    ST_COUNTERS_PLAIN,
    ST_CANCEL,
    ST_MOVE_SEAT,
    ST_ROTATE_TOKENS,
    ST_HOLDS_BY_ID,
    ST_HOLDS_EXPIRING,
    ST_WAITLIST_HEAD,
    ST_CONFIRM,
    ST_CAPACITY,
    ST_UNWAIT,
    ST_WAIT,
    ST_WRITE_HOLDS,
    ST_ROTATE_WAITS,
    ST_WRITE_OUTBOX,
    ST_POSITION,
    ST_COUNT_
};

static const struct {
    const char *name;
    const char *sql;
} stmts[ST_COUNT_] = {
    [ST_FENCE] = {"fence",
                  "UPDATE consumer_offsets o SET next_offset = v.nxt, updated_at = now()"
                  " FROM unnest($2::int[], $3::bigint[], $4::bigint[]) AS v(p, nxt, exp)"
                  " WHERE o.topic = $1 AND o.kafka_partition = v.p AND o.next_offset = v.exp"
                  " RETURNING o.kafka_partition"},
    [ST_LOAD_OFFSET] = {"load_offset",
                        "WITH ins AS (INSERT INTO consumer_offsets (topic, kafka_partition,"
                        " next_offset) VALUES ($1, $2, 0) ON CONFLICT DO NOTHING RETURNING"
                        " next_offset) SELECT next_offset FROM ins UNION ALL SELECT next_offset"
                        " FROM consumer_offsets WHERE topic = $1 AND kafka_partition = $2"},
    [ST_SEEN] = {"seen",
                 "SELECT command_id, outcome, coalesce(user_id::text, ''), coalesce(message, ''),"
                 " (extract(epoch FROM processed_at) * 1000)::bigint,"
                 " coalesce(encode(request_sha256, 'hex'), ''), coalesce(position, 0),"
                 " coalesce(hold_id::text, ''),"
                 " coalesce((extract(epoch FROM expires_at) * 1000)::bigint, 0)"
                 " FROM processed_commands WHERE command_id = ANY($1::uuid[])"},
    [ST_EVENTS] =
        {"events",
         "SELECT id, capacity, registered, (extract(epoch FROM starts_at) * 1000)::bigint,"
         " held, waitlisted, status = 'cancelled', stream_seq, waitlist_seq"
         " FROM events WHERE id = ANY($1::uuid[])"},
    /* a pair's seat: registered (1), held (2), or a place on the waitlist (3) */
    [ST_REGISTERED] = {"registered",
                       "SELECT r.event_id, r.user_id, r.command_id,"
                       " coalesce(encode(r.cancel_token_sha256, 'hex'), ''),"
                       " CASE WHEN r.held THEN 2 ELSE 1 END, coalesce(r.hold_id::text, ''), 0, 0"
                       " FROM unnest($1::uuid[], $2::uuid[]) k(e, u)"
                       " JOIN registrations r ON r.event_id = k.e AND r.user_id = k.u"
                       " UNION ALL SELECT w.event_id, w.user_id, w.command_id,"
                       " coalesce(encode(w.cancel_token_sha256, 'hex'), ''), 3, '', w.seq,"
                       " (SELECT count(*) FROM waitlist x WHERE x.event_id = w.event_id"
                       " AND x.seq <= w.seq)"
                       " FROM unnest($1::uuid[], $2::uuid[]) k(e, u)"
                       " JOIN waitlist w ON w.event_id = k.e AND w.user_id = k.u"},
    /* the same when no event of the batch has a waitlist */
    [ST_REGISTERED_ONLY] = {"registered_only",
                            "SELECT r.event_id, r.user_id, r.command_id,"
                            " coalesce(encode(r.cancel_token_sha256, 'hex'), ''),"
                            " CASE WHEN r.held THEN 2 ELSE 1 END, coalesce(r.hold_id::text, ''),"
                            " 0, 0 FROM unnest($1::uuid[], $2::uuid[]) k(e, u)"
                            " JOIN registrations r ON r.event_id = k.e AND r.user_id = k.u"},
    [ST_INSERT_EVENTS] = {"insert_events",
                          "INSERT INTO events (id, title, description, starts_at, location,"
                          " capacity) SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[],"
                          " $4::timestamptz[], $5::text[], $6::int[])"},
    /* the same when no event of the batch changed more than its counters */
    [ST_COUNTERS_PLAIN] = {"counters_plain",
                           "UPDATE events e SET registered = v.r, held = v.h, waitlisted = v.w,"
                           " stream_seq = v.s, waitlist_seq = v.q FROM unnest($1::uuid[],"
                           " $2::int[], $3::int[], $4::int[], $5::bigint[], $6::bigint[])"
                           " AS v(id, r, h, w, s, q) WHERE e.id = v.id"},
    [ST_INSERT_USERS] = {"insert_users",
                         "INSERT INTO users (id, email) SELECT * FROM unnest($1::uuid[],"
                         " $2::text[]) ON CONFLICT (id) DO NOTHING"},
    /* clock_timestamp() per row, in array order: registration order */
    [ST_INSERT_REGISTRATIONS] = {"insert_registrations",
                                 "INSERT INTO registrations (event_id, user_id, name, seat,"
                                 " capacity, registered_at, command_id, cancel_token_sha256,"
                                 " held, hold_id)"
                                 " SELECT e, u, n, s, c, clock_timestamp(), k, t, h <> 0, x FROM"
                                 " unnest($1::uuid[], $2::uuid[], $3::text[], $4::int[],"
                                 " $5::int[], $6::uuid[], $7::bytea[], $8::int[], $9::uuid[])"
                                 " AS v(e, u, n, s, c, k, t, h, x)"},
    [ST_INSERT_PROCESSED] =
        {"insert_processed",
         "INSERT INTO processed_commands (command_id, event_id, kind,"
         " outcome, user_id, message, topic, kafka_partition, kafka_offset,"
         " request_sha256, position, hold_id, expires_at)"
         " SELECT c, e, k, o, u, m, $7, p, f, h, q, x, a FROM unnest($1::uuid[],"
         " $2::uuid[], $3::text[], $4::text[], $5::uuid[], $6::text[],"
         " $8::int[], $9::bigint[], $10::bytea[], $11::bigint[], $12::uuid[],"
         " $13::timestamptz[]) AS v(c, e, k, o, u, m, p, f, h, q, x, a)"},
    /* an event as the batch left it: description '' clears it */
    [ST_COUNTERS] = {"counters",
                     "UPDATE events e SET registered = v.r, held = v.h, waitlisted = v.w,"
                     " stream_seq = v.s, waitlist_seq = v.q,"
                     " status = CASE WHEN v.x <> 0 THEN 'cancelled' ELSE e.status END,"
                     " title = coalesce(v.t, e.title),"
                     " description = CASE WHEN v.d IS NULL THEN e.description"
                     " WHEN v.d = '' THEN NULL ELSE v.d END,"
                     " location = coalesce(v.l, e.location), starts_at = coalesce(v.a, e.starts_at)"
                     " FROM unnest($1::uuid[], $2::int[], $3::int[], $4::int[], $5::bigint[],"
                     " $6::bigint[], $7::int[], $8::text[], $9::text[], $10::text[],"
                     " $11::timestamptz[]) AS v(id, r, h, w, s, q, x, t, d, l, a)"
                     " WHERE e.id = v.id"},
    /* With a token ($3), only the registration that holds its hash goes:
     * decide.c checked it already; the database agrees or the batch fails. */
    [ST_CANCEL] = {"cancel", "DELETE FROM registrations WHERE event_id = $1 AND user_id = $2"
                             " AND ($3::bytea IS NULL OR cancel_token_sha256 = $3) RETURNING seat"},
    /* Seats stay dense (1..registered): the last seat fills the hole a
     * cancellation leaves, so the next registration's seat is always
     * registered + 1. */
    [ST_MOVE_SEAT] = {"move_seat",
                      "UPDATE registrations SET seat = $3 WHERE event_id = $1 AND seat = $2"},
    /* A client's retry of its registration (same idempotency key, same
     * request) comes with a new token: it replaces the one the client never
     * received. Only the registration that command made is touched; each
     * registration is named once (decide.c). */
    [ST_ROTATE_TOKENS] = {"rotate_tokens",
                          "UPDATE registrations r SET cancel_token_sha256 = v.t"
                          " FROM unnest($1::uuid[], $2::uuid[], $3::bytea[], $4::uuid[])"
                          " AS v(e, u, t, k)"
                          " WHERE r.event_id = v.e AND r.user_id = v.u AND r.command_id = v.k"},
    [ST_HOLDS_BY_ID] = {"holds_by_id", "SELECT hold_id, event_id, user_id, state,"
                                       " (extract(epoch FROM expires_at) * 1000)::bigint"
                                       " FROM holds WHERE hold_id = ANY($1::uuid[])"},
    /* the holds of these events still held that expire before the time given */
    [ST_HOLDS_EXPIRING] = {"holds_expiring",
                           "SELECT h.hold_id, h.event_id, h.user_id, h.state,"
                           " (extract(epoch FROM h.expires_at) * 1000)::bigint"
                           " FROM unnest($1::uuid[], $2::timestamptz[]) AS v(e, b)"
                           " JOIN holds h ON h.event_id = v.e AND h.state = 'held'"
                           " AND h.expires_at < v.b"},
    /* the first places of these waitlists, each event's in line order */
    [ST_WAITLIST_HEAD] = {"waitlist_head",
                          "SELECT w.event_id, w.user_id, w.name, w.email, w.command_id,"
                          " coalesce(encode(w.cancel_token_sha256, 'hex'), ''), w.seq"
                          " FROM unnest($1::uuid[], $2::int[]) AS v(e, k) CROSS JOIN LATERAL"
                          " (SELECT * FROM waitlist x WHERE x.event_id = v.e ORDER BY x.seq"
                          " LIMIT v.k) w ORDER BY w.event_id, w.seq"},
    [ST_CONFIRM] = {"confirm", "UPDATE registrations SET held = false, command_id = $4,"
                               " cancel_token_sha256 = $5, registered_at = clock_timestamp()"
                               " WHERE event_id = $1 AND user_id = $2 AND hold_id = $3 AND held"},
    [ST_CAPACITY] = {"capacity",
                     "UPDATE events SET capacity = $2, registered = $3, held = $4 WHERE id = $1"},
    [ST_UNWAIT] = {"unwait",
                   "DELETE FROM waitlist w USING unnest($1::uuid[], $2::uuid[]) AS v(e, u)"
                   " WHERE w.event_id = v.e AND w.user_id = v.u"},
    [ST_WAIT] = {"wait",
                 "INSERT INTO waitlist (event_id, user_id, name, email, seq, command_id,"
                 " cancel_token_sha256, joined_at) SELECT e, u, n, m, s, k, t, clock_timestamp()"
                 " FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::bigint[],"
                 " $6::uuid[], $7::bytea[]) AS v(e, u, n, m, s, k, t)"},
    [ST_WRITE_HOLDS] = {"write_holds",
                        "INSERT INTO holds (hold_id, event_id, user_id, expires_at, state)"
                        " SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[],"
                        " $4::timestamptz[], $5::text[])"
                        " ON CONFLICT (hold_id) DO UPDATE SET state = excluded.state"},
    /* a retried registration's new token, for a place still on the waitlist */
    [ST_ROTATE_WAITS] = {"rotate_waits",
                         "UPDATE waitlist w SET cancel_token_sha256 = v.t"
                         " FROM unnest($1::uuid[], $2::uuid[], $3::bytea[], $4::uuid[])"
                         " AS v(e, u, t, k)"
                         " WHERE w.event_id = v.e AND w.user_id = v.u AND w.command_id = v.k"},
    [ST_WRITE_OUTBOX] = {"write_outbox",
                         "INSERT INTO stream_outbox (topic, kafka_partition, first_offset,"
                         " last_offset, records) SELECT $1, p, f, l, r FROM unnest($2::int[],"
                         " $3::bigint[], $4::bigint[], $5::bytea[]) AS v(p, f, l, r)"},
    /* sent right after COMMIT: see commit_position() */
    [ST_POSITION] =
        {"position",
         "SELECT (CASE current_setting('synchronous_commit') WHEN 'off'"
         " THEN pg_current_wal_insert_lsn() ELSE pg_current_wal_flush_lsn() END)::text"},
};

/* The arrays of a statement's rows, reused from batch to batch. */
enum {
    A_EV_ID,
    A_EV_TITLE,
    A_EV_DESC,
    A_EV_STARTS,
    A_EV_LOCATION,
    A_EV_CAPACITY,
    A_US_ID,
    A_US_EMAIL,
    A_RG_EVENT,
    A_RG_USER,
    A_RG_NAME,
    A_RG_SEAT,
    A_RG_CAPACITY,
    A_RG_COMMAND,
    A_RG_TOKEN,
    A_RG_HELD,
    A_RG_HOLD,
    A_RT_EVENT,
    A_RT_USER,
    A_RT_TOKEN,
    A_RT_COMMAND,
    A_PC_COMMAND,
    A_PC_EVENT,
    A_PC_KIND,
    A_PC_OUTCOME,
    A_PC_USER,
    A_PC_MESSAGE,
    A_PC_PARTITION,
    A_PC_OFFSET,
    A_PC_REQUEST,
    A_PC_POSITION,
    A_PC_HOLD,
    A_PC_EXPIRES,
    A_Q1,
    A_Q2,
    A_Q3,
    A_Q4,
    A_Q5,
    A_Q6,
    A_Q7,
    A_Q8,
    A_Q9,
    A_Q10,
    A_Q11,
    A_COUNT_
};

/* One partition's share of the batch's records in stream_buf: a row of
 * stream_outbox. */
typedef struct outbox_row {
    int32_t partition;
    int64_t first_offset, last_offset;
    size_t start, len;
} outbox_row;

struct ts_applier {
    PGconn *conn;
    char *dsn;
    int timeout_ms; /* TS_PG_TIMEOUT_MS: a transaction, or a connection's setup, at most */
    bool broken;    /* the session cannot be trusted (a failed ROLLBACK): reconnect */
    ts_decider *decider;
    ts_codec *codec;
    uint8_t *stream_buf; /* the batch's records, in stream_outbox's frames */
    size_t stream_len, stream_cap;
    outbox_row *outbox; /* per partition of the batch */
    size_t noutbox, outbox_cap;
    ts_stream_msg *msgs;
    size_t nmsgs, msgs_cap;
    bool committed; /* the last batch was: msgs are its records */
    ts_pgarray arr[A_COUNT_];
    size_t *order; /* indexes of the batch's items, part by part */
    size_t order_cap;
    ts_apply_status failure; /* how the last failed statement failed */
    bool optimistic;         /* this attempt skips the lookups */
    bool key_conflict;       /* it met a stored command id or (event, user) */
    unsigned pause;          /* batches left to run with the lookups */
    unsigned pause_after;    /* ... after a conflict (TS_OPTIMISM_PAUSE) */
    atomic_ulong conflicts;  /* optimistic attempts undone (only /metrics reads it: relaxed) */
    /* the statements sent in the attempt's pipeline whose results are not
     * read yet, in order (ST_COUNT_: BEGIN or COMMIT) */
    enum stmt pending[MAX_PENDING];
    int npending;
    int keep;       /* the index in `pending` of the one whose result is kept, or -1 */
    PGresult *kept; /* ... and that result, once read */
};

/* ------------------------------------------------------------ connection */

/* The worker reads and writes rows by key only, a batch's worth at a time,
 * and its plans must say so whatever the tables' statistics say.
 *  - A prepared statement's generic plan is made on its sixth run, when a
 *    fresh worker's tables may still be nearly empty: the planner then picks
 *    sequential scans and keeps them while the tables grow (seen here: the
 *    command-id lookup went from under 1 ms to 25 ms per batch). Plans made
 *    for each run's own arrays cost far less than that.
 *  - Even a custom plan seq-scanned processed_commands for a batch's 500 ids
 *    while it held 50,000 rows (7-9 ms a batch, growing with the table,
 *    against 1.5 ms by its primary key): a scan is never the right answer to
 *    "these keys", so it is the planner's last resort here.
 * Planning costs: a third of PostgreSQL's CPU for a lone registration's
 * transaction (915-1,025 us of backend CPU with custom plans, 630-665 us
 * with generic ones). Generic plans were tried again with scans off, and
 * with only nested loops: registrations over 1,000 events went from 9,299/s
 * (PostgreSQL 55 us per request) to 4,043/s (216 us). */
static const char *const session_settings[] = {
    "SET plan_cache_mode = force_custom_plan",
    "SET enable_seqscan = off",
};

static int prepare_all(ts_applier *a, char *err, size_t errlen) {
    for (size_t i = 0; i < sizeof session_settings / sizeof *session_settings; i++) {
        PGresult *set = PQexec(a->conn, session_settings[i]);
        bool set_ok = PQresultStatus(set) == PGRES_COMMAND_OK;
        PQclear(set);
        if (!set_ok) {
            snprintf(err, errlen, "%s: %s", session_settings[i], PQerrorMessage(a->conn));
            return -1;
        }
    }
    for (int i = 0; i < ST_COUNT_; i++) {
        PGresult *res = PQprepare(a->conn, stmts[i].name, stmts[i].sql, 0, NULL);
        bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok)
            snprintf(err, errlen, "prepare %s: %s", stmts[i].name, PQerrorMessage(a->conn));
        PQclear(res);
        if (!ok)
            return -1;
    }
    return 0;
}

/* prepare_all() within the deadline: a server that stops answering after
 * the connection is made must not hang the worker either. */
static int prepare_watched(ts_applier *a, char *err, size_t errlen) {
    ts_pg_watch w;
    ts_pg_watch_begin(&w, a->conn, a->timeout_ms);
    int rc = prepare_all(a, err, errlen);
    if (ts_pg_watch_end(&w))
        snprintf(err, errlen, "no answer within TS_PG_TIMEOUT_MS (%d ms)", a->timeout_ms);
    return rc;
}

/* Connects with the deadlines (connect_timeout, statement_timeout). */
static int connect_db(ts_applier *a, char *err, size_t errlen) {
    a->conn = ts_pg_connect_bounded(a->dsn, "turnstile-worker", a->timeout_ms, err, errlen);
    return a->conn ? 0 : -1;
}

/* Migrations may take long on big tables (an index built): no statement
 * deadline for them, only for the work after. */
static int migrate(ts_applier *a, char *err, size_t errlen) {
    return ts_pg_exec(a->conn, "SET statement_timeout = 0", err, errlen) ||
                   ts_pg_migrate(a->conn, NULL, err, errlen) ||
                   ts_pg_exec(a->conn, "RESET statement_timeout", err, errlen)
               ? -1
               : 0;
}

int ts_applier_reconnect(ts_applier *a, char *err, size_t errlen) {
    if (a->conn)
        PQfinish(a->conn);
    a->conn = NULL;
    a->broken = false;
    return connect_db(a, err, errlen) || prepare_watched(a, err, errlen) ? -1 : 0;
}

ts_applier *ts_applier_new(const char *dsn, int migrate_first, int timeout_ms, char *err,
                           size_t errlen) {
    ts_applier *a = calloc(1, sizeof *a);
    if (!a || !(a->dsn = strdup(dsn)) || !(a->decider = ts_decider_new())) {
        ts_applier_free(a);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->timeout_ms = timeout_ms;
    if (!(a->codec = ts_codec_new(err, errlen))) {
        ts_applier_free(a);
        return NULL;
    }
    if (connect_db(a, err, errlen) || (migrate_first && migrate(a, err, errlen)) ||
        prepare_watched(a, err, errlen)) {
        ts_applier_free(a);
        return NULL;
    }
    return a;
}

void ts_applier_free(ts_applier *a) {
    if (!a)
        return;
    PQclear(a->kept);
    if (a->conn)
        PQfinish(a->conn);
    for (int i = 0; i < A_COUNT_; i++)
        ts_pgarray_free(&a->arr[i]);
    ts_decider_free(a->decider);
    ts_codec_free(a->codec);
    free(a->stream_buf);
    free(a->outbox);
    free(a->msgs);
    free(a->order);
    free(a->dsn);
    free(a);
}

bool ts_applier_connection_lost(const ts_applier *a) {
    return !a->conn || a->broken || PQstatus(a->conn) != CONNECTION_OK;
}

/* ------------------------------------------------------------ statements */

/* Transient failures are worth retrying in place: the connection, a
 * serialization failure or deadlock, resources, an operator's shutdown. */
static ts_apply_status classify(PGconn *conn, const PGresult *res) {
    if (PQstatus(conn) != CONNECTION_OK)
        return TS_APPLY_RETRY;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (!state)
        return TS_APPLY_RETRY;
    if (!strncmp(state, "08", 2) || !strncmp(state, "40", 2) || !strncmp(state, "53", 2) ||
        !strncmp(state, "57", 2))
        return TS_APPLY_RETRY;
    return TS_APPLY_REJECTED;
}

/* A statement's parameter: text (format 0), or a binary array. */
typedef struct param {
    const char *value; /* NULL: an array that failed, unless is_null */
    int length;
    int format;
    ts_pgarray_error error;
    bool is_null;
} param;

static param text_param(const char *s) {
    return (param){s, 0, 0, TS_PGARRAY_OK, false};
}

/* A digest as bytea (binary), or SQL NULL when absent. */
static param digest_param(const ts_digest *d) {
    if (!d->present)
        return (param){NULL, 0, 1, TS_PGARRAY_OK, true};
    return (param){(const char *)d->bytes, TS_SHA256_LEN, 1, TS_PGARRAY_OK, false};
}

static param array_param(ts_pgarray *arr) {
    int len = 0;
    const char *v = ts_pgarray_finish(arr, &len);
    return (param){v, len, 1, arr->error, false};
}

/* libpq's arrays for a statement's parameters. */
enum { MAX_PARAMS = 16 };
typedef struct bound {
    const char *values[MAX_PARAMS];
    int lengths[MAX_PARAMS], formats[MAX_PARAMS];
} bound;

/* Fills `b` for statement s. Too many parameters, or an array that failed
 * (out of memory, a value not of its type), is a failure, never a
 * statement that silently writes less: -1 with a->failure and `err` set. */
static int bind_params(ts_applier *a, enum stmt s, int n, const param *params, bound *b, char *err,
                       size_t errlen) {
    if (n > MAX_PARAMS) {
        a->failure = TS_APPLY_REJECTED;
        snprintf(err, errlen, "%s: too many parameters", stmts[s].name);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (!params[i].value && !params[i].is_null) {
            bool nomem = params[i].error == TS_PGARRAY_NOMEM;
            a->failure = nomem ? TS_APPLY_RETRY : TS_APPLY_REJECTED;
            snprintf(err, errlen, "%s: parameter %d: %s", stmts[s].name, i + 1,
                     nomem ? "out of memory" : "a value not of the array's type");
            return -1;
        }
        b->values[i] = params[i].value;
        b->lengths[i] = params[i].length;
        b->formats[i] = params[i].format;
    }
    return 0;
}

/* A stored command id or registration that skipped lookups would have
 * found: not a refusal, a reason to look first. */
static bool stored_key_conflict(const PGresult *res) {
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
    return state && constraint && !strcmp(state, "23505") &&
           (!strcmp(constraint, "processed_commands_pkey") ||
            !strcmp(constraint, "registrations_pkey"));
}

/* An attempt's statements go out in one pipeline (libpq's pipeline mode):
 * a statement whose result the worker does not read (run0) is sent and not
 * waited for; the next statement whose rows it reads (run), or the COMMIT,
 * sends everything queued and reads every result in order. A batch of
 * registrations costs three round trips ([BEGIN, fence], [events],
 * [inserts, counters, outbox, COMMIT]) where it cost nine, each a wake-up
 * of PostgreSQL and of the worker: most of a lone registration's time in
 * the database, and CPU under load. A failure anywhere makes the server
 * skip the rest of the pipeline up to its sync; the first failure is the
 * one reported, as it was when each statement was waited for. */

static bool pipelined(const ts_applier *a) {
    return PQpipelineStatus(a->conn) != PQ_PIPELINE_OFF;
}

static const char *pending_name(enum stmt s) {
    return s == ST_COUNT_ ? "transaction" : stmts[s].name;
}

/* Records a failed result as the attempt's failure: a->failure, `err` and
 * (for an optimistic attempt) a->key_conflict. */
static void failed(ts_applier *a, const char *what, const PGresult *res, char *err, size_t errlen) {
    a->failure = classify(a->conn, res);
    if (a->optimistic && a->failure == TS_APPLY_REJECTED)
        a->key_conflict = stored_key_conflict(res);
    const char *msg = res ? PQresultErrorMessage(res) : "";
    if (!*msg)
        msg = PQerrorMessage(a->conn);
    snprintf(err, errlen, "%s: %.*s", what, (int)strcspn(msg, "\n"), msg);
}

/* One statement's result from the pipeline, and the NULL that ends it.
 * NULL when the connection gave nothing (lost). */
static PGresult *next_result(ts_applier *a) {
    PGresult *res = PQgetResult(a->conn);
    if (res)
        PQclear(PQgetResult(a->conn)); /* the end of this statement's results */
    return res;
}

/* Reads the results of the statements sent and not read yet. 0, or -1
 * with the first failure recorded. */
static int read_pending(ts_applier *a, int rc, char *err, size_t errlen) {
    int n = a->npending, keep = a->keep;
    a->npending = 0;
    a->keep = -1;
    for (int i = 0; i < n; i++) {
        PGresult *res = next_result(a);
        ExecStatusType st = PQresultStatus(res);
        /* the commit's position, after it: not knowing it fails nothing */
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && rc == 0 &&
            a->pending[i] != ST_POSITION) {
            failed(a, pending_name(a->pending[i]), res, err, errlen);
            rc = -1;
        }
        if (i == keep && rc == 0) {
            a->kept = res;
            continue;
        }
        PQclear(res);
        if (!res) { /* nothing more will come: the connection is gone */
            a->broken = true;
            break;
        }
    }
    return rc;
}

/* Asks the server for the results of what was sent so far, and reads
 * those queued before the last `keep_last` statements (which the caller
 * reads itself). 0, or -1 with the first failure recorded (`what` names
 * a failed request). */
static int flush_pending(ts_applier *a, const char *what, int keep_last, char *err, size_t errlen) {
    int rc = 0;
    if (!PQsendFlushRequest(a->conn) || PQflush(a->conn) != 0) {
        failed(a, what, NULL, err, errlen);
        a->failure = TS_APPLY_RETRY;
        rc = -1;
    }
    a->npending -= keep_last;
    return read_pending(a, rc, err, errlen);
}

/* Sends a statement into the pipeline: prepared statement s with `b`'s
 * parameters, or `sql` (BEGIN or COMMIT, s ST_COUNT_). -1 if it cannot be
 * (the connection is gone), with the failure recorded. */
static int pipe_send(ts_applier *a, enum stmt s, const char *sql, int n, const bound *b, char *err,
                     size_t errlen) {
    if (a->npending == MAX_PENDING && read_pending(a, 0, err, errlen))
        return -1;
    bool sent = sql ? PQsendQueryParams(a->conn, sql, 0, NULL, NULL, NULL, NULL, 0)
                    : PQsendQueryPrepared(a->conn, stmts[s].name, n, b ? b->values : NULL,
                                          b ? b->lengths : NULL, b ? b->formats : NULL, 0);
    if (!sent) {
        failed(a, pending_name(s), NULL, err, errlen);
        a->failure = TS_APPLY_RETRY;
        return -1;
    }
    a->pending[a->npending++] = s;
    return 0;
}

/* Runs a prepared statement and returns its result; NULL on failure, with
 * a->failure and `err` set (and a->key_conflict, for an optimistic
 * attempt). The caller PQclear()s the result. */
static PGresult *run(ts_applier *a, enum stmt s, int n, const param *params, char *err,
                     size_t errlen) {
    bound b;
    if (bind_params(a, s, n, params, &b, err, errlen))
        return NULL;
    PGresult *res;
    if (pipelined(a)) {
        if (pipe_send(a, s, NULL, n, &b, err, errlen))
            return NULL;
        /* this one is read below, after those before it */
        int rc = flush_pending(a, stmts[s].name, 1, err, errlen);
        res = a->broken ? NULL : next_result(a);
        if (rc) {
            PQclear(res);
            return NULL;
        }
    } else {
        res = PQexecPrepared(a->conn, stmts[s].name, n, b.values, b.lengths, b.formats, 0);
    }
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    failed(a, stmts[s].name, res, err, errlen);
    PQclear(res);
    return NULL;
}

/* Runs a statement whose result is not read: in the pipeline, sent and not
 * waited for (its failure is reported where the pipeline is next read). */
static int run0(ts_applier *a, enum stmt s, int n, const param *params, char *err, size_t errlen) {
    if (!pipelined(a)) {
        PGresult *res = run(a, s, n, params, err, errlen);
        PQclear(res);
        return res ? 0 : -1;
    }
    bound b;
    if (bind_params(a, s, n, params, &b, err, errlen))
        return -1;
    return pipe_send(a, s, NULL, n, &b, err, errlen);
}

/* The pipeline's end: a sync, every result read, and back to one
 * statement at a time. 0, or -1 with the first failure recorded (`rc`
 * -1: one was recorded already). */
static int end_pipeline(ts_applier *a, int rc, char *err, size_t errlen) {
    if (!pipelined(a))
        return rc;
    if (!PQpipelineSync(a->conn)) {
        if (rc == 0) {
            failed(a, "sync", NULL, err, errlen);
            a->failure = TS_APPLY_RETRY;
        }
        a->broken = true;
        return -1;
    }
    rc = read_pending(a, rc, err, errlen);
    PGresult *sync = a->broken ? NULL : PQgetResult(a->conn);
    bool synced = PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
    PQclear(sync);
    if (!synced || !PQexitPipelineMode(a->conn)) {
        if (rc == 0) {
            failed(a, "sync", NULL, err, errlen);
            a->failure = TS_APPLY_RETRY;
        }
        a->broken = true; /* a session in an unknown state: reconnect */
        return -1;
    }
    return rc;
}

int ts_applier_load_offset(ts_applier *a, const char *topic, int32_t partition, int64_t *next,
                           char *err, size_t errlen) {
    char pbuf[16];
    snprintf(pbuf, sizeof pbuf, "%d", partition);
    const param params[] = {text_param(topic), text_param(pbuf)};
    ts_pg_watch w;
    ts_pg_watch_begin(&w, a->conn, a->timeout_ms);
    PGresult *res = run(a, ST_LOAD_OFFSET, 2, params, err, errlen);
    if (ts_pg_watch_end(&w))
        snprintf(err, errlen, "no answer within TS_PG_TIMEOUT_MS (%d ms)", a->timeout_ms);
    if (!res)
        return -1;
    int rc = -1;
    if (PQntuples(res) >= 1) {
        *next = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        rc = 0;
    } else {
        snprintf(err, errlen, "load_offset: no row for %s/%d", topic, partition);
    }
    PQclear(res);
    return rc;
}

/* ------------------------------------------------------------ the state */

static int hex_digit(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* A digest from its hex text (encode(..., 'hex')), "" for none. 0, or -1
 * if it is not one. */
static int digest_from_hex(const char *hex, ts_digest *d) {
    memset(d, 0, sizeof *d);
    if (!hex[0])
        return 0;
    if (strlen(hex) != (size_t)2 * TS_SHA256_LEN)
        return -1;
    for (size_t i = 0; i < TS_SHA256_LEN; i++) {
        int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        d->bytes[i] = (uint8_t)(hi << 4 | lo);
    }
    d->present = true;
    return 0;
}

/* A row the decider did not take: more than the batch named, or no memory
 * for it. Neither is the commands' fault: the batch is tried again. */
static int state_failed(ts_applier *a, const char *what, char *err, size_t errlen) {
    a->failure = TS_APPLY_RETRY;
    snprintf(err, errlen, "%s: a row the batch's state cannot take", what);
    return -1;
}

/* The commands of the batch applied before, with their first outcome. */
static int load_commands(ts_applier *a, const ts_batch_item *items, size_t n, char *err,
                         size_t errlen) {
    if (a->optimistic)
        return 0;
    ts_pgarray *q = &a->arr[A_Q1];
    ts_pgarray_reset(q, TS_OID_UUID);
    for (size_t k = 0; k < n; k++)
        if (!items[a->order[k]].skip)
            ts_pgarray_uuid(q, items[a->order[k]].cmd.command_id);
    if (q->n == 0)
        return 0;
    const param p[] = {array_param(q)};
    PGresult *res = run(a, ST_SEEN, 1, p, err, errlen);
    if (!res)
        return -1;
    int rc = 0;
    for (int row = 0; row < PQntuples(res) && rc == 0; row++) {
        ts_stored_command c = {
            .command_id = PQgetvalue(res, row, 0),
            .user_id = PQgetvalue(res, row, 2),
            .message = PQgetvalue(res, row, 3),
            .applied_at_ms = strtoll(PQgetvalue(res, row, 4), NULL, 10),
            .position = strtoll(PQgetvalue(res, row, 6), NULL, 10),
            .hold_id = PQgetvalue(res, row, 7),
            .expires_at_ms = strtoll(PQgetvalue(res, row, 8), NULL, 10),
        };
        if (ts_outcome_parse(PQgetvalue(res, row, 1), &c.outcome))
            c.outcome = TS_OUT_INVALID;
        if (digest_from_hex(PQgetvalue(res, row, 5), &c.request)) {
            a->failure = TS_APPLY_REJECTED;
            snprintf(err, errlen, "seen: a request digest that is not one");
            rc = -1;
        } else if (ts_decider_add_command(a->decider, &c)) {
            rc = state_failed(a, "seen", err, errlen);
        }
    }
    PQclear(res);
    return rc;
}

/* The events the batch names for commands not applied before. */
static int load_events(ts_applier *a, const ts_batch_item *items, size_t n, char *err,
                       size_t errlen) {
    ts_pgarray *ids = &a->arr[A_Q1];
    ts_pgarray_reset(ids, TS_OID_UUID);
    for (size_t k = 0; k < n; k++) {
        const ts_batch_item *it = &items[a->order[k]];
        if (ts_decider_wants_event(a->decider, it))
            ts_pgarray_uuid(ids, it->cmd.event_id);
    }
    if (ids->n == 0)
        return 0;
    const param p[] = {array_param(ids)};
    PGresult *res = run(a, ST_EVENTS, 1, p, err, errlen);
    if (!res)
        return -1;
    int rc = 0;
    for (int row = 0; row < PQntuples(res) && rc == 0; row++) {
        const ts_stored_event e = {
            .id = PQgetvalue(res, row, 0),
            .capacity = strtoll(PQgetvalue(res, row, 1), NULL, 10),
            .registered = strtoll(PQgetvalue(res, row, 2), NULL, 10),
            .starts_at_ms = strtoll(PQgetvalue(res, row, 3), NULL, 10),
            .held = strtoll(PQgetvalue(res, row, 4), NULL, 10),
            .waitlisted = strtoll(PQgetvalue(res, row, 5), NULL, 10),
            .cancelled = PQgetvalue(res, row, 6)[0] == 't',
            .stream_seq = strtoll(PQgetvalue(res, row, 7), NULL, 10),
            .waitlist_seq = strtoll(PQgetvalue(res, row, 8), NULL, 10),
        };
        if (ts_decider_add_event(a->decider, &e))
            rc = state_failed(a, "events", err, errlen);
    }
    PQclear(res);
    return rc;
}

/* The seats of the (event, user) pairs the batch names — registrations,
 * held seats, places on a waitlist — with the digest of each one's cancel
 * token and the command that made it. */
static int load_registrations(ts_applier *a, const ts_batch_item *items, size_t n, char *err,
                              size_t errlen) {
    if (a->optimistic)
        return 0;
    ts_pgarray *ev = &a->arr[A_Q1], *us = &a->arr[A_Q2];
    ts_pgarray_reset(ev, TS_OID_UUID);
    ts_pgarray_reset(us, TS_OID_UUID);
    for (size_t k = 0; k < n; k++) {
        const ts_batch_item *it = &items[a->order[k]];
        if (ts_decider_wants_registration(a->decider, it)) {
            ts_pgarray_uuid(ev, it->cmd.event_id);
            ts_pgarray_uuid(us, ts_decider_pair_user(a->decider, it));
        }
    }
    if (ev->n == 0)
        return 0;
    const param p[] = {array_param(ev), array_param(us)};
    PGresult *res =
        run(a, ts_decider_has_waitlists(a->decider) ? ST_REGISTERED : ST_REGISTERED_ONLY, 2, p, err,
            errlen);
    if (!res)
        return -1;
    int rc = 0;
    for (int row = 0; row < PQntuples(res) && rc == 0; row++) {
        ts_stored_registration r = {
            .event_id = PQgetvalue(res, row, 0),
            .user_id = PQgetvalue(res, row, 1),
            .command_id = PQgetvalue(res, row, 2),
            .kind = (ts_seat_kind)strtol(PQgetvalue(res, row, 4), NULL, 10),
            .hold_id = PQgetvalue(res, row, 5),
            .seq = strtoll(PQgetvalue(res, row, 6), NULL, 10),
            .position = strtoll(PQgetvalue(res, row, 7), NULL, 10),
        };
        if (digest_from_hex(PQgetvalue(res, row, 3), &r.cancel_token)) {
            a->failure = TS_APPLY_REJECTED;
            snprintf(err, errlen, "registered: a token digest that is not one");
            rc = -1;
        } else if (ts_decider_add_registration(a->decider, &r)) {
            rc = state_failed(a, "registered", err, errlen);
        }
    }
    PQclear(res);
    return rc;
}

static int hold_state(const char *s, ts_hold_state *out) {
    static const char *const names[] = {"held", "confirmed", "released", "expired"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, names[i])) {
            *out = (ts_hold_state)(TS_HOLD_HELD + i);
            return 0;
        }
    return -1;
}

static const char *hold_state_name(ts_hold_state s) {
    switch (s) {
    case TS_HOLD_HELD: return "held";
    case TS_HOLD_CONFIRMED: return "confirmed";
    case TS_HOLD_RELEASED: return "released";
    case TS_HOLD_EXPIRED: return "expired";
    }
    return "held";
}

/* Holds, as ST_HOLDS_BY_ID and ST_HOLDS_EXPIRING give them. */
static int add_holds(ts_applier *a, PGresult *res, char *err, size_t errlen) {
    int rc = 0;
    for (int row = 0; row < PQntuples(res) && rc == 0; row++) {
        ts_stored_hold h = {
            .hold_id = PQgetvalue(res, row, 0),
            .event_id = PQgetvalue(res, row, 1),
            .user_id = PQgetvalue(res, row, 2),
            .expires_at_ms = strtoll(PQgetvalue(res, row, 4), NULL, 10),
        };
        if (hold_state(PQgetvalue(res, row, 3), &h.state)) {
            a->failure = TS_APPLY_REJECTED;
            snprintf(err, errlen, "holds: a state that is not one");
            rc = -1;
        } else if (ts_decider_add_hold(a->decider, &h)) {
            rc = state_failed(a, "holds", err, errlen);
        }
    }
    PQclear(res);
    return rc;
}

/* The holds the batch's confirmations, releases and expiries name. */
static int load_named_holds(ts_applier *a, const ts_batch_item *items, size_t n, char *err,
                            size_t errlen) {
    ts_pgarray *ids = &a->arr[A_Q1];
    ts_pgarray_reset(ids, TS_OID_UUID);
    for (size_t k = 0; k < n; k++) {
        const ts_batch_item *it = &items[a->order[k]];
        if (ts_decider_wants_hold(a->decider, it))
            ts_pgarray_uuid(ids, it->cmd.u.hold_ref.hold_id);
    }
    if (ids->n == 0)
        return 0;
    const param p[] = {array_param(ids)};
    PGresult *res = run(a, ST_HOLDS_BY_ID, 1, p, err, errlen);
    return res ? add_holds(a, res, err, errlen) : -1;
}

/* The holds that may expire during the batch: only events with holds. */
static int load_expiring_holds(ts_applier *a, char *err, size_t errlen) {
    ts_pgarray *ev = &a->arr[A_Q1], *before = &a->arr[A_Q2];
    ts_pgarray_reset(ev, TS_OID_UUID);
    ts_pgarray_reset(before, TS_OID_TIMESTAMPTZ);
    size_t cursor = 0;
    const char *event_id;
    int64_t before_ms;
    while (ts_decider_expiring(a->decider, &cursor, &event_id, &before_ms)) {
        ts_pgarray_uuid(ev, event_id);
        ts_pgarray_timestamptz_ms(before, before_ms);
    }
    if (ev->n == 0)
        return 0;
    const param p[] = {array_param(ev), array_param(before)};
    PGresult *res = run(a, ST_HOLDS_EXPIRING, 2, p, err, errlen);
    return res ? add_holds(a, res, err, errlen) : -1;
}

/* The head of each waitlist the batch may move: only events with one. */
static int load_waitlists(ts_applier *a, char *err, size_t errlen) {
    ts_pgarray *ev = &a->arr[A_Q1], *lim = &a->arr[A_Q2];
    ts_pgarray_reset(ev, TS_OID_UUID);
    ts_pgarray_reset(lim, TS_OID_INT4);
    size_t cursor = 0;
    const char *event_id;
    int64_t limit;
    while (ts_decider_waitlist_wanted(a->decider, &cursor, &event_id, &limit)) {
        ts_pgarray_uuid(ev, event_id);
        ts_pgarray_int4(lim, limit > INT32_MAX ? INT32_MAX : (int32_t)limit);
    }
    if (ev->n == 0)
        return 0;
    const param p[] = {array_param(ev), array_param(lim)};
    PGresult *res = run(a, ST_WAITLIST_HEAD, 2, p, err, errlen);
    if (!res)
        return -1;
    int rc = 0;
    for (int row = 0; row < PQntuples(res) && rc == 0; row++) {
        ts_stored_waiter w = {
            .event_id = PQgetvalue(res, row, 0),
            .user_id = PQgetvalue(res, row, 1),
            .name = PQgetvalue(res, row, 2),
            .email = PQgetvalue(res, row, 3),
            .command_id = PQgetvalue(res, row, 4),
            .seq = strtoll(PQgetvalue(res, row, 6), NULL, 10),
        };
        if (digest_from_hex(PQgetvalue(res, row, 5), &w.cancel_token)) {
            a->failure = TS_APPLY_REJECTED;
            snprintf(err, errlen, "waitlist_head: a token digest that is not one");
            rc = -1;
        } else if (ts_decider_add_waiter(a->decider, &w)) {
            rc = state_failed(a, "waitlist_head", err, errlen);
        }
    }
    PQclear(res);
    return rc;
}

/* ------------------------------------------------------------ the rows */

static void add_digest(ts_pgarray *arr, const ts_digest *d) {
    ts_pgarray_bytea(arr, d && d->present ? d->bytes : NULL, TS_SHA256_LEN);
}

static int write_events(ts_applier *a, const ts_decisions *d, char *err, size_t errlen) {
    if (d->nevents == 0)
        return 0;
    ts_pgarray *r = a->arr;
    ts_pgarray_reset(&r[A_EV_ID], TS_OID_UUID);
    ts_pgarray_reset(&r[A_EV_TITLE], TS_OID_TEXT);
    ts_pgarray_reset(&r[A_EV_DESC], TS_OID_TEXT);
    ts_pgarray_reset(&r[A_EV_STARTS], TS_OID_TIMESTAMPTZ);
    ts_pgarray_reset(&r[A_EV_LOCATION], TS_OID_TEXT);
    ts_pgarray_reset(&r[A_EV_CAPACITY], TS_OID_INT4);
    for (size_t i = 0; i < d->nevents; i++) {
        const ts_command *c = &d->events[i].item->cmd;
        ts_pgarray_uuid(&r[A_EV_ID], c->event_id);
        ts_pgarray_text(&r[A_EV_TITLE], c->u.create.title);
        ts_pgarray_text(&r[A_EV_DESC],
                        c->u.create.has_description ? c->u.create.description : NULL);
        ts_pgarray_timestamptz_ms(&r[A_EV_STARTS], c->u.create.starts_at_ms);
        ts_pgarray_text(&r[A_EV_LOCATION], c->u.create.location);
        ts_pgarray_int4(&r[A_EV_CAPACITY], (int32_t)c->u.create.capacity);
    }
    const param p[] = {array_param(&r[A_EV_ID]),       array_param(&r[A_EV_TITLE]),
                       array_param(&r[A_EV_DESC]),     array_param(&r[A_EV_STARTS]),
                       array_param(&r[A_EV_LOCATION]), array_param(&r[A_EV_CAPACITY])};
    return run0(a, ST_INSERT_EVENTS, 6, p, err, errlen);
}

static int write_users(ts_applier *a, const ts_decisions *d, char *err, size_t errlen) {
    if (d->nusers == 0)
        return 0;
    ts_pgarray *r = a->arr;
    ts_pgarray_reset(&r[A_US_ID], TS_OID_UUID);
    ts_pgarray_reset(&r[A_US_EMAIL], TS_OID_TEXT);
    for (size_t i = 0; i < d->nusers; i++) {
        ts_pgarray_uuid(&r[A_US_ID], d->users[i].id);
        ts_pgarray_text(&r[A_US_EMAIL], d->users[i].email);
    }
    const param p[] = {array_param(&r[A_US_ID]), array_param(&r[A_US_EMAIL])};
    return run0(a, ST_INSERT_USERS, 2, p, err, errlen);
}

/* registrations[from .. to) */
static int write_registrations(ts_applier *a, const ts_decisions *d, size_t from, size_t to,
                               char *err, size_t errlen) {
    if (from == to)
        return 0;
    ts_pgarray *r = a->arr;
    static const uint32_t types[] = {TS_OID_UUID,  TS_OID_UUID, TS_OID_TEXT,
                                     TS_OID_INT4,  TS_OID_INT4, TS_OID_UUID,
                                     TS_OID_BYTEA, TS_OID_INT4, TS_OID_UUID};
    for (int i = 0; i <= A_RG_HOLD - A_RG_EVENT; i++)
        ts_pgarray_reset(&r[A_RG_EVENT + i], types[i]);
    for (size_t i = from; i < to; i++) {
        const ts_row_registration *g = &d->registrations[i];
        ts_pgarray_uuid(&r[A_RG_EVENT], g->event_id);
        ts_pgarray_uuid(&r[A_RG_USER], g->user_id);
        ts_pgarray_text(&r[A_RG_NAME], g->name);
        ts_pgarray_int4(&r[A_RG_SEAT], g->seat);
        ts_pgarray_int4(&r[A_RG_CAPACITY], g->capacity);
        ts_pgarray_uuid(&r[A_RG_COMMAND], g->command_id);
        add_digest(&r[A_RG_TOKEN], g->cancel_token);
        ts_pgarray_int4(&r[A_RG_HELD], g->held);
        if (g->held)
            ts_pgarray_uuid(&r[A_RG_HOLD], g->hold_id);
        else
            ts_pgarray_null(&r[A_RG_HOLD]);
    }
    const param p[] = {
        array_param(&r[A_RG_EVENT]), array_param(&r[A_RG_USER]),     array_param(&r[A_RG_NAME]),
        array_param(&r[A_RG_SEAT]),  array_param(&r[A_RG_CAPACITY]), array_param(&r[A_RG_COMMAND]),
        array_param(&r[A_RG_TOKEN]), array_param(&r[A_RG_HELD]),     array_param(&r[A_RG_HOLD])};
    return run0(a, ST_INSERT_REGISTRATIONS, 9, p, err, errlen);
}

/* rotations[from .. to): each must find its registration, as the decider
 * found it */
static int write_rotations(ts_applier *a, const ts_decisions *d, size_t from, size_t to, char *err,
                           size_t errlen) {
    if (from == to)
        return 0;
    ts_pgarray *r = a->arr;
    ts_pgarray_reset(&r[A_RT_EVENT], TS_OID_UUID);
    ts_pgarray_reset(&r[A_RT_USER], TS_OID_UUID);
    ts_pgarray_reset(&r[A_RT_TOKEN], TS_OID_BYTEA);
    ts_pgarray_reset(&r[A_RT_COMMAND], TS_OID_UUID);
    for (size_t i = from; i < to; i++) {
        const ts_row_rotation *t = &d->rotations[i];
        ts_pgarray_uuid(&r[A_RT_EVENT], t->event_id);
        ts_pgarray_uuid(&r[A_RT_USER], t->user_id);
        add_digest(&r[A_RT_TOKEN], t->cancel_token);
        ts_pgarray_uuid(&r[A_RT_COMMAND], t->command_id);
    }
    const param p[] = {array_param(&r[A_RT_EVENT]), array_param(&r[A_RT_USER]),
                       array_param(&r[A_RT_TOKEN]), array_param(&r[A_RT_COMMAND])};
    PGresult *res = run(a, ST_ROTATE_TOKENS, 4, p, err, errlen);
    if (!res)
        return -1;
    const char *tuples = PQcmdTuples(res);
    char *end;
    unsigned long long updated = strtoull(tuples, &end, 10);
    bool counted = end != tuples && *end == '\0';
    PQclear(res);
    if (!counted || updated != to - from) {
        a->failure = TS_APPLY_REJECTED;
        snprintf(err, errlen, "rotate_tokens: %llu of %zu registrations found", updated, to - from);
        return -1;
    }
    return 0;
}

/* Runs a statement that must touch exactly `want` rows, as the decider
 * saw them: the database disagreeing fails the batch. */
static int run_count(ts_applier *a, enum stmt s, int n, const param *params,
                     unsigned long long want, char *err, size_t errlen) {
    PGresult *res = run(a, s, n, params, err, errlen);
    if (!res)
        return -1;
    const char *tuples = PQcmdTuples(res);
    char *end;
    unsigned long long got = strtoull(tuples, &end, 10);
    bool counted = end != tuples && *end == '\0';
    PQclear(res);
    if (!counted || got != want) {
        a->failure = TS_APPLY_REJECTED;
        snprintf(err, errlen, "%s: %llu of %llu rows found", stmts[s].name, got, want);
        return -1;
    }
    return 0;
}

/* A held seat the decider saw becomes a registration. */
static int write_confirm(ts_applier *a, const ts_row_confirm *c, char *err, size_t errlen) {
    const param p[] = {text_param(c->event_id), text_param(c->user_id), text_param(c->hold_id),
                       text_param(c->command_id), digest_param(c->cancel_token)};
    return run_count(a, ST_CONFIRM, 5, p, 1, err, errlen);
}

static int write_capacity(ts_applier *a, const ts_row_capacity *c, char *err, size_t errlen) {
    char cap[16], reg[16], held[16];
    snprintf(cap, sizeof cap, "%d", c->capacity);
    snprintf(reg, sizeof reg, "%d", c->registered);
    snprintf(held, sizeof held, "%d", c->held);
    const param p[] = {text_param(c->event_id), text_param(cap), text_param(reg), text_param(held)};
    return run_count(a, ST_CAPACITY, 4, p, 1, err, errlen);
}

static int write_wait_rotations(ts_applier *a, const ts_decisions *d, char *err, size_t errlen) {
    if (d->nwait_rotations == 0)
        return 0;
    ts_pgarray *r = &a->arr[A_Q1];
    static const uint32_t types[] = {TS_OID_UUID, TS_OID_UUID, TS_OID_BYTEA, TS_OID_UUID};
    for (int i = 0; i < 4; i++)
        ts_pgarray_reset(&r[i], types[i]);
    for (size_t i = 0; i < d->nwait_rotations; i++) {
        const ts_row_rotation *t = &d->wait_rotations[i];
        ts_pgarray_uuid(&r[0], t->event_id);
        ts_pgarray_uuid(&r[1], t->user_id);
        add_digest(&r[2], t->cancel_token);
        ts_pgarray_uuid(&r[3], t->command_id);
    }
    const param p[] = {array_param(&r[0]), array_param(&r[1]), array_param(&r[2]),
                       array_param(&r[3])};
    return run_count(a, ST_ROTATE_WAITS, 4, p, d->nwait_rotations, err, errlen);
}

static int write_unwaits(ts_applier *a, const ts_decisions *d, char *err, size_t errlen) {
    if (d->nunwaits == 0)
        return 0;
    ts_pgarray *ev = &a->arr[A_Q1], *us = &a->arr[A_Q2];
    ts_pgarray_reset(ev, TS_OID_UUID);
    ts_pgarray_reset(us, TS_OID_UUID);
    for (size_t i = 0; i < d->nunwaits; i++) {
        ts_pgarray_uuid(ev, d->unwaits[i].event_id);
        ts_pgarray_uuid(us, d->unwaits[i].user_id);
    }
    const param p[] = {array_param(ev), array_param(us)};
    return run_count(a, ST_UNWAIT, 2, p, d->nunwaits, err, errlen);
}

static int write_waits(ts_applier *a, const ts_decisions *d, char *err, size_t errlen) {
    if (d->nwaits == 0)
        return 0;
    ts_pgarray *r = &a->arr[A_Q1];
    static const uint32_t types[] = {TS_OID_UUID, TS_OID_UUID, TS_OID_TEXT, TS_OID_TEXT,
                                     TS_OID_INT8, TS_OID_UUID, TS_OID_BYTEA};
    for (int i = 0; i < 7; i++)
        ts_pgarray_reset(&r[i], types[i]);
    for (size_t i = 0; i < d->nwaits; i++) {
        const ts_row_wait *w = &d->waits[i];
        ts_pgarray_uuid(&r[0], w->event_id);
        ts_pgarray_uuid(&r[1], w->user_id);
        ts_pgarray_text(&r[2], w->name);
        ts_pgarray_text(&r[3], w->email);
        ts_pgarray_int8(&r[4], w->seq);
        ts_pgarray_uuid(&r[5], w->command_id);
        add_digest(&r[6], w->cancel_token);
    }
    const param p[] = {array_param(&r[0]), array_param(&r[1]), array_param(&r[2]),
                       array_param(&r[3]), array_param(&r[4]), array_param(&r[5]),
                       array_param(&r[6])};
    return run0(a, ST_WAIT, 7, p, err, errlen);
}

static int write_holds(ts_applier *a, const ts_decisions *d, char *err, size_t errlen) {
    if (d->nholds == 0)
        return 0;
    ts_pgarray *r = &a->arr[A_Q1];
    static const uint32_t types[] = {TS_OID_UUID, TS_OID_UUID, TS_OID_UUID, TS_OID_TIMESTAMPTZ,
                                     TS_OID_TEXT};
    for (int i = 0; i < 5; i++)
        ts_pgarray_reset(&r[i], types[i]);
    for (size_t i = 0; i < d->nholds; i++) {
        const ts_row_hold *h = &d->holds[i];
        ts_pgarray_uuid(&r[0], h->hold_id);
        ts_pgarray_uuid(&r[1], h->event_id);
        ts_pgarray_uuid(&r[2], h->user_id);
        ts_pgarray_timestamptz_ms(&r[3], h->expires_at_ms);
        ts_pgarray_text(&r[4], hold_state_name(h->state));
    }
    const param p[] = {array_param(&r[0]), array_param(&r[1]), array_param(&r[2]),
                       array_param(&r[3]), array_param(&r[4])};
    return run0(a, ST_WRITE_HOLDS, 5, p, err, errlen);
}

/* A cancellation the decider allowed: the database says which seat it
 * frees, and the last seat moves there. */
static int write_cancel(ts_applier *a, const ts_row_cancel *c, char *err, size_t errlen) {
    const param key[] = {text_param(c->event_id), text_param(c->user_id), digest_param(c->token)};
    PGresult *res = run(a, ST_CANCEL, 3, key, err, errlen);
    if (!res)
        return -1;
    if (PQntuples(res) == 0) { /* the decider saw it, with that token: the database disagrees */
        PQclear(res);
        a->failure = TS_APPLY_REJECTED;
        snprintf(err, errlen, "cancel: registration %s/%s vanished", c->event_id, c->user_id);
        return -1;
    }
    long long freed = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    if (freed == c->last_seat)
        return 0;
    char from[24], to[24];
    snprintf(from, sizeof from, "%d", c->last_seat);
    snprintf(to, sizeof to, "%lld", freed);
    const param move[] = {text_param(c->event_id), text_param(from), text_param(to)};
    return run0(a, ST_MOVE_SEAT, 3, move, err, errlen);
}

static int write_processed(ts_applier *a, const char *topic, const ts_decisions *d, char *err,
                           size_t errlen) {
    if (d->nprocessed == 0)
        return 0;
    ts_pgarray *r = a->arr;
    static const uint32_t types[] = {TS_OID_UUID,  TS_OID_UUID, TS_OID_TEXT, TS_OID_TEXT,
                                     TS_OID_UUID,  TS_OID_TEXT, TS_OID_INT4, TS_OID_INT8,
                                     TS_OID_BYTEA, TS_OID_INT8, TS_OID_UUID, TS_OID_TIMESTAMPTZ};
    for (int i = 0; i <= A_PC_EXPIRES - A_PC_COMMAND; i++)
        ts_pgarray_reset(&r[A_PC_COMMAND + i], types[i]);
    for (size_t i = 0; i < d->nprocessed; i++) {
        const ts_batch_item *it = d->processed[i].item;
        ts_pgarray_uuid(&r[A_PC_COMMAND], it->cmd.command_id);
        ts_pgarray_uuid(&r[A_PC_EVENT], it->cmd.event_id);
        ts_pgarray_text(&r[A_PC_KIND], ts_command_type_name(it->cmd.type));
        ts_pgarray_text(&r[A_PC_OUTCOME], ts_outcome_name(it->reply.outcome));
        if (it->reply.user_id[0])
            ts_pgarray_uuid(&r[A_PC_USER], it->reply.user_id);
        else
            ts_pgarray_null(&r[A_PC_USER]);
        ts_pgarray_text(&r[A_PC_MESSAGE], it->reply.message[0] ? it->reply.message : NULL);
        ts_pgarray_int4(&r[A_PC_PARTITION], it->partition);
        ts_pgarray_int8(&r[A_PC_OFFSET], it->offset);
        add_digest(&r[A_PC_REQUEST], &it->cmd.request_sha256);
        const ts_reply *rp = &it->reply;
        if (rp->position)
            ts_pgarray_int8(&r[A_PC_POSITION], rp->position);
        else
            ts_pgarray_null(&r[A_PC_POSITION]);
        if (rp->hold_id[0])
            ts_pgarray_uuid(&r[A_PC_HOLD], rp->hold_id);
        else
            ts_pgarray_null(&r[A_PC_HOLD]);
        if (rp->expires_at_ms)
            ts_pgarray_timestamptz_ms(&r[A_PC_EXPIRES], rp->expires_at_ms);
        else
            ts_pgarray_null(&r[A_PC_EXPIRES]);
    }
    const param p[] = {array_param(&r[A_PC_COMMAND]),
                       array_param(&r[A_PC_EVENT]),
                       array_param(&r[A_PC_KIND]),
                       array_param(&r[A_PC_OUTCOME]),
                       array_param(&r[A_PC_USER]),
                       array_param(&r[A_PC_MESSAGE]),
                       text_param(topic),
                       array_param(&r[A_PC_PARTITION]),
                       array_param(&r[A_PC_OFFSET]),
                       array_param(&r[A_PC_REQUEST]),
                       array_param(&r[A_PC_POSITION]),
                       array_param(&r[A_PC_HOLD]),
                       array_param(&r[A_PC_EXPIRES])};
    return run0(a, ST_INSERT_PROCESSED, 13, p, err, errlen);
}

static int write_counters(ts_applier *a, const ts_decisions *d, char *err, size_t errlen) {
    if (d->ncounters == 0)
        return 0;
    bool plain = true; /* a burst changes counters only */
    for (size_t i = 0; i < d->ncounters && plain; i++) {
        const ts_row_counter *c = &d->counters[i];
        plain = !c->cancelled && !c->title && !c->description && !c->location && !c->has_starts_at;
    }
    const int n = plain ? 6 : 11;
    ts_pgarray *r = &a->arr[A_Q1];
    static const uint32_t types[] = {TS_OID_UUID, TS_OID_INT4, TS_OID_INT4,       TS_OID_INT4,
                                     TS_OID_INT8, TS_OID_INT8, TS_OID_INT4,       TS_OID_TEXT,
                                     TS_OID_TEXT, TS_OID_TEXT, TS_OID_TIMESTAMPTZ};
    for (int i = 0; i < n; i++)
        ts_pgarray_reset(&r[i], types[i]);
    for (size_t i = 0; i < d->ncounters; i++) {
        const ts_row_counter *c = &d->counters[i];
        ts_pgarray_uuid(&r[0], c->event_id);
        ts_pgarray_int4(&r[1], c->registered);
        ts_pgarray_int4(&r[2], c->held);
        ts_pgarray_int4(&r[3], c->waitlisted);
        ts_pgarray_int8(&r[4], c->stream_seq);
        ts_pgarray_int8(&r[5], c->waitlist_seq);
        if (plain)
            continue;
        ts_pgarray_int4(&r[6], c->cancelled);
        ts_pgarray_text(&r[7], c->title);
        ts_pgarray_text(&r[8], c->description);
        ts_pgarray_text(&r[9], c->location);
        if (c->has_starts_at)
            ts_pgarray_timestamptz_ms(&r[10], c->starts_at_ms);
        else
            ts_pgarray_null(&r[10]);
    }
    param p[11];
    for (int i = 0; i < n; i++)
        p[i] = array_param(&r[i]);
    return run0(a, plain ? ST_COUNTERS_PLAIN : ST_COUNTERS, n, p, err, errlen);
}

/* The decisions' rows, in the order decide.h gives. */
static int write_decisions(ts_applier *a, const char *topic, const ts_decisions *d, char *err,
                           size_t errlen) {
    if (write_events(a, d, err, errlen) || write_users(a, d, err, errlen))
        return -1;
    size_t registrations = 0, rotations = 0;
    for (size_t i = 0; i < d->nsteps; i++) {
        const ts_decided_step *s = &d->steps[i];
        if (write_registrations(a, d, registrations, s->registrations_end, err, errlen) ||
            write_rotations(a, d, rotations, s->rotations_end, err, errlen) ||
            (s->ends_with == TS_STEP_FREE && write_cancel(a, &s->u.cancel, err, errlen)) ||
            (s->ends_with == TS_STEP_CONFIRM && write_confirm(a, &s->u.confirm, err, errlen)) ||
            (s->ends_with == TS_STEP_CAPACITY && write_capacity(a, &s->u.capacity, err, errlen)))
            return -1;
        registrations = s->registrations_end;
        rotations = s->rotations_end;
    }
    return write_wait_rotations(a, d, err, errlen) || write_unwaits(a, d, err, errlen) ||
                   write_waits(a, d, err, errlen) || write_holds(a, d, err, errlen) ||
                   write_processed(a, topic, d, err, errlen) || write_counters(a, d, err, errlen)
               ? -1
               : 0;
}

/* ------------------------------------------------------------ the batch */

/* Lists the items of the parts, part by part, in a->order[]. */
static size_t order_items(ts_applier *a, const ts_batch_part *parts, size_t nparts) {
    size_t n = 0;
    for (size_t p = 0; p < nparts; p++)
        n += parts[p].count;
    if (n > a->order_cap) {
        size_t *o = realloc(a->order, n * sizeof *o);
        if (!o)
            return (size_t)-1;
        a->order = o;
        a->order_cap = n;
    }
    size_t k = 0;
    for (size_t p = 0; p < nparts; p++)
        for (size_t i = 0; i < parts[p].count; i++)
            a->order[k++] = parts[p].first + i;
    return n;
}

static int grow(void **p, size_t *cap, size_t need, size_t size) {
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * size);
    if (!q)
        return -1;
    *p = q;
    *cap = n;
    return 0;
}

static void put_be(uint8_t *at, uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; i--, v >>= 8)
        at[i] = (uint8_t)v;
}

/* The batch's changes as stream records: the frames of stream_outbox, one
 * row per partition of the batch (its items are part by part), and the
 * list to publish once the batch is committed. */
static int encode_stream(ts_applier *a, const ts_decisions *d, char *err, size_t errlen) {
    enum { FRAME_HEAD = 8 + TS_UUID_LEN + 4 };
    a->stream_len = a->nmsgs = a->noutbox = 0;
    if (grow((void **)&a->msgs, &a->msgs_cap, d->nchanges, sizeof *a->msgs) ||
        grow((void **)&a->outbox, &a->outbox_cap, d->nprocessed, sizeof *a->outbox)) {
        a->failure = TS_APPLY_RETRY;
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < d->nprocessed; i++) {
        const ts_batch_item *it = d->processed[i].item;
        for (size_t k = it->first_change; k < it->first_change + it->nchanges; k++) {
            if (grow((void **)&a->stream_buf, &a->stream_cap,
                     a->stream_len + FRAME_HEAD + TS_MESSAGE_BYTES_MAX, 1)) {
                a->failure = TS_APPLY_RETRY;
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            uint8_t *at = a->stream_buf + a->stream_len;
            size_t len = 0;
            ts_codec_status st = ts_codec_encode_change(a->codec, &d->changes[k], at + FRAME_HEAD,
                                                        TS_MESSAGE_BYTES_MAX, &len);
            if (st != TS_CODEC_OK) { /* the decider made a change the schema refuses */
                a->failure = TS_APPLY_REJECTED;
                snprintf(err, errlen, "encoding a %s change: %s",
                         ts_change_type_name(d->changes[k].type), ts_codec_status_name(st));
                return -1;
            }
            put_be(at, (uint64_t)it->offset, 8);
            memset(at + 8, 0, TS_UUID_LEN);
            memcpy(at + 8, d->changes[k].event_id, strnlen(d->changes[k].event_id, TS_UUID_LEN));
            put_be(at + 8 + TS_UUID_LEN, len, 4);
            outbox_row *row = a->noutbox ? &a->outbox[a->noutbox - 1] : NULL;
            if (!row || row->partition != it->partition) {
                row = &a->outbox[a->noutbox++];
                *row = (outbox_row){it->partition, it->offset, it->offset, a->stream_len, 0};
            }
            row->last_offset = it->offset;
            row->len += FRAME_HEAD + len;
            a->msgs[a->nmsgs++] = (ts_stream_msg){
                d->changes[k].event_id, (const uint8_t *)(uintptr_t)(a->stream_len + FRAME_HEAD),
                len, it->partition, it->offset};
            a->stream_len += FRAME_HEAD + len;
        }
    }
    for (size_t m = 0; m < a->nmsgs; m++) /* offsets until stream_buf stopped moving */
        a->msgs[m].bytes = a->stream_buf + (uintptr_t)a->msgs[m].bytes;
    return 0;
}

/* The batch's records, in the same transaction as the changes. */
static int write_outbox(ts_applier *a, const char *topic, char *err, size_t errlen) {
    if (a->noutbox == 0)
        return 0;
    ts_pgarray *r = &a->arr[A_Q1];
    static const uint32_t types[] = {TS_OID_INT4, TS_OID_INT8, TS_OID_INT8, TS_OID_BYTEA};
    for (int i = 0; i < 4; i++)
        ts_pgarray_reset(&r[i], types[i]);
    for (size_t i = 0; i < a->noutbox; i++) {
        const outbox_row *o = &a->outbox[i];
        ts_pgarray_int4(&r[0], o->partition);
        ts_pgarray_int8(&r[1], o->first_offset);
        ts_pgarray_int8(&r[2], o->last_offset);
        ts_pgarray_bytea(&r[3], a->stream_buf + o->start, o->len);
    }
    const param p[] = {text_param(topic), array_param(&r[0]), array_param(&r[1]),
                       array_param(&r[2]), array_param(&r[3])};
    return run0(a, ST_WRITE_OUTBOX, 5, p, err, errlen);
}

size_t ts_applier_stream(const ts_applier *a, const ts_stream_msg **msgs) {
    *msgs = a->msgs;
    return a->committed ? a->nmsgs : 0;
}

/* Moves every part's stored offset: sent right after BEGIN, its result read
 * with the batch's first lookup's, in one round trip (fence_result). */
static int fence(ts_applier *a, const char *topic, ts_batch_part *parts, size_t nparts, char *err,
                 size_t errlen) {
    ts_pgarray *pa = &a->arr[A_Q1], *nx = &a->arr[A_Q2], *ex = &a->arr[A_Q3];
    ts_pgarray_reset(pa, TS_OID_INT4);
    ts_pgarray_reset(nx, TS_OID_INT8);
    ts_pgarray_reset(ex, TS_OID_INT8);
    for (size_t p = 0; p < nparts; p++) {
        ts_pgarray_int4(pa, parts[p].partition);
        ts_pgarray_int8(nx, parts[p].next);
        ts_pgarray_int8(ex, parts[p].expected);
        parts[p].fenced = true;
    }
    const param params[] = {text_param(topic), array_param(pa), array_param(nx), array_param(ex)};
    /* The fence stays the transaction's first statement: the retention job
     * (ts_prune.h) locks consumer_offsets in SHARE mode to keep every batch
     * out of its deletions, and relies on it. */
    int at = a->npending;
    if (run0(a, ST_FENCE, 4, params, err, errlen))
        return -1;
    a->keep = at;
    return 0;
}

/* Marks the parts whose offset another worker moved, from the fence's
 * result (read now if no lookup has read it yet). Returns the number
 * fenced, or -1 on failure. */
static int fence_result(ts_applier *a, ts_batch_part *parts, size_t nparts, char *err,
                        size_t errlen) {
    if (a->keep >= 0 && flush_pending(a, "fence", 0, err, errlen))
        return -1;
    PGresult *res = a->kept;
    a->kept = NULL;
    if (!res) {
        a->failure = TS_APPLY_RETRY;
        snprintf(err, errlen, "fence: no result");
        return -1;
    }
    for (int row = 0; row < PQntuples(res); row++) {
        long moved = strtol(PQgetvalue(res, row, 0), NULL, 10);
        for (size_t p = 0; p < nparts; p++)
            if (parts[p].partition == moved)
                parts[p].fenced = false;
    }
    PQclear(res);
    int fenced = 0;
    for (size_t p = 0; p < nparts; p++)
        fenced += parts[p].fenced;
    return fenced;
}

/* Loads the state the batch's commands touch, has them decided, and
 * writes the rows. With the lookups skipped, a refusal they could change
 * fails the attempt (key_conflict) before anything is written. */
static int apply_items(ts_applier *a, const char *topic, ts_batch_part *parts, size_t nparts,
                       ts_batch_item *items, size_t n, char *err, size_t errlen) {
    if (ts_decider_begin(a->decider, items, a->order, n, a->optimistic)) {
        a->failure = TS_APPLY_RETRY;
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (load_commands(a, items, n, err, errlen) || load_events(a, items, n, err, errlen) ||
        load_registrations(a, items, n, err, errlen) ||
        load_named_holds(a, items, n, err, errlen) || load_expiring_holds(a, err, errlen) ||
        load_waitlists(a, err, errlen))
        return -1;
    /* A zombie learns it is one here, before it writes anything. */
    int fenced = fence_result(a, parts, nparts, err, errlen);
    if (fenced < 0)
        return -1;
    if (fenced > 0) {
        snprintf(err, errlen, "%d partition(s) of %s: stored offset moved by another worker",
                 fenced, topic);
        a->failure = TS_APPLY_FENCED;
        return -1;
    }
    ts_decisions decided;
    switch (ts_decide(a->decider, ts_now_ms(), &decided)) {
    case TS_DECIDE_OK: break;
    case TS_DECIDE_NEEDS_LOOKUPS:
        a->key_conflict = a->optimistic;
        a->failure = TS_APPLY_REJECTED;
        snprintf(err, errlen, "a decision the lookups must confirm");
        return -1;
    case TS_DECIDE_NO_MEMORY:
        a->failure = TS_APPLY_RETRY;
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return encode_stream(a, &decided, err, errlen) ||
                   write_decisions(a, topic, &decided, err, errlen) ||
                   write_outbox(a, topic, err, errlen)
               ? -1
               : 0;
}

/* The WAL position a committed batch's COMMIT reached, for its replies: a
 * reader of a replica that has replayed this far sees the batch
 * (ts_codec.h, commit_lsn). The statement (ST_POSITION) is sent into the
 * pipeline right after COMMIT, so it costs no round trip of its own; if
 * COMMIT fails, the server skips it with the rest of the pipeline, and
 * the COMMIT's error is the first one read, as before. Its own failure
 * fails nothing: the batch is committed, and its replies say "not known"
 * (0), after which the API asks the primary instead.
 *
 * Which position: COMMIT returns once its record is flushed (every
 * synchronous_commit but off, and "never loses a registration" needs
 * one of them), so the flush position is at or past it, and it is one a
 * replica reaches exactly: WAL is streamed as it is flushed. With
 * synchronous_commit off the commit returns before its record is even
 * written, and only the insert position is sure to be past it (a replica
 * reaches that once the WAL writer flushes it, and, at a page's first
 * record, once a record follows). The setting is the session's: it is
 * read after the commit, but no transaction here sets its own. */
static void commit_position(ts_applier *a, ts_batch_item *items, size_t n) {
    PGresult *res = a->kept;
    a->kept = NULL;
    uint64_t lsn = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
        ts_lsn_parse(PQgetvalue(res, 0, 0), &lsn) || lsn > INT64_MAX) {
        const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(a->conn);
        ts_warn("worker", "event=commit_position_unknown err=\"%.*s\"", (int)strcspn(msg, "\n"),
                msg);
        lsn = 0; /* past what a reply holds (and any WAL there is), or none */
    }
    PQclear(res);
    /* every reply of the batch carries it (a command answered again with
     * its first outcome too: this commit is later) */
    for (size_t k = 0; k < n; k++)
        items[a->order[k]].reply.commit_lsn = lsn;
}

/* One attempt at the batch: a transaction, committed or rolled back. */
static ts_apply_status attempt(ts_applier *a, const char *topic, ts_batch_part *parts,
                               size_t nparts, ts_batch_item *items, size_t n, char *err,
                               size_t errlen) {
    a->failure = TS_APPLY_RETRY;
    a->key_conflict = false;
    a->npending = 0;
    a->keep = -1;
    PQclear(a->kept);
    a->kept = NULL;
    if (!PQenterPipelineMode(a->conn)) {
        snprintf(err, errlen, "pipeline: %s", PQerrorMessage(a->conn));
        a->broken = true;
        return TS_APPLY_RETRY;
    }
    if (pipe_send(a, ST_COUNT_, "BEGIN", 0, NULL, err, errlen))
        goto rollback;

    /* The fence first: it takes the row locks that serialise competing
     * workers. */
    if (fence(a, topic, parts, nparts, err, errlen) ||
        apply_items(a, topic, parts, nparts, items, n, err, errlen) ||
        pipe_send(a, ST_COUNT_, "COMMIT", 0, NULL, err, errlen))
        goto rollback;
    /* and the position it reaches (commit_position): in the same round
     * trip; a connection that cannot take it fails the sync below */
    if (pipe_send(a, ST_POSITION, NULL, 0, NULL, err, errlen) == 0)
        a->keep = a->npending - 1;
    if (end_pipeline(a, 0, err, errlen)) {
        /* A failed COMMIT rolled back by itself; a failure before it left
         * the transaction aborted, to be rolled back below. */
        if (a->broken || PQtransactionStatus(a->conn) == PQTRANS_IDLE)
            return a->failure;
        goto rolled_back_pipeline;
    }
    commit_position(a, items, n);
    return TS_APPLY_OK;

rollback:
    end_pipeline(a, -1, err, errlen);
    PQclear(a->kept);
    a->kept = NULL;
rolled_back_pipeline:;
    ts_apply_status st = a->failure;
    if (!a->broken && PQstatus(a->conn) == CONNECTION_OK) {
        PGresult *rb = PQexec(a->conn, "ROLLBACK");
        bool rolled_back = PQresultStatus(rb) == PGRES_COMMAND_OK;
        PQclear(rb);
        if (!rolled_back) { /* a session left in the transaction would fail every batch after */
            ts_warn("worker", "event=rollback_failed action=reconnect err=\"%.*s\"",
                    (int)strcspn(PQerrorMessage(a->conn), "\n"), PQerrorMessage(a->conn));
            /* lost: the caller reconnects. (Not closed here: a watched
             * section may still name its socket.) */
            a->broken = true;
            st = TS_APPLY_RETRY;
        }
    } else if (a->broken) {
        st = TS_APPLY_RETRY;
    }
    return st;
}

ts_apply_status ts_applier_apply(ts_applier *a, const char *topic, ts_batch_part *parts,
                                 size_t nparts, ts_batch_item *items, char *err, size_t errlen) {
    size_t n = order_items(a, parts, nparts);
    if (n == (size_t)-1) {
        snprintf(err, errlen, "out of memory");
        return TS_APPLY_RETRY;
    }
    /* only creates, registrations and holds may skip the lookups: every
     * other command needs to know what is stored */
    bool others = false;
    for (size_t k = 0; k < n && !others; k++) {
        const ts_batch_item *it = &items[a->order[k]];
        others = !it->skip && it->cmd.type != TS_CMD_CREATE_EVENT &&
                 it->cmd.type != TS_CMD_REGISTER && it->cmd.type != TS_CMD_PLACE_HOLD;
    }
    a->committed = false;
    a->optimistic = !others && a->pause == 0;
    if (a->pause)
        a->pause--;
    /* A database that stops answering must not hold the batch for good: past
     * the deadline the connection is cut, and the batch is retried (the
     * transaction never committed: nothing of it is applied). */
    ts_pg_watch w;
    ts_pg_watch_begin(&w, a->conn, a->timeout_ms);
    ts_apply_status st = attempt(a, topic, parts, nparts, items, n, err, errlen);
    if (a->optimistic && st == TS_APPLY_REJECTED && a->key_conflict) {
        atomic_fetch_add_explicit(&a->conflicts, 1, memory_order_relaxed);
        a->pause = a->pause_after;
        a->optimistic = false;
        st = attempt(a, topic, parts, nparts, items, n, err, errlen);
    }
    if (ts_pg_watch_end(&w)) {
        snprintf(err, errlen, "no answer within TS_PG_TIMEOUT_MS (%d ms)", a->timeout_ms);
        st = TS_APPLY_RETRY;
    }
    a->optimistic = false;
    a->committed = st == TS_APPLY_OK;
    return st;
}

unsigned long ts_applier_conflicts(const ts_applier *a) {
    return atomic_load_explicit(&a->conflicts, memory_order_relaxed);
}

void ts_applier_set_optimism_pause(ts_applier *a, unsigned batches) {
    a->pause_after = batches;
}
