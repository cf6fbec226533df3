/* SPDX-License-Identifier: Apache-2.0 */
/* apply.c — see apply.h.
 *
 * A batch costs a fixed number of statements, whatever its size:
 *
 *   BEGIN
 *   fence        move the partitions' stored offsets (or learn we are a zombie)
 *   seen         which command ids were applied before (their first outcome)
 *   events       the events the batch touches: capacity, counter, start
 *   registered   which (event, user) pairs of the batch are registered, with
 *                each one's cancel-token digest and the command that made it
 *   ...decide.c decides every command in offset order, in memory...
 *   insert       events, users, registrations, processed commands: one
 *                multi-row INSERT each (unnest of array parameters)
 *   rotate       the tokens retried registrations bring: one UPDATE
 *   counters     one UPDATE for all the events touched
 *   COMMIT
 *
 * This file only loads that state and writes those rows; what to write is
 * decide.c's. A cancellation's outcome is decided in memory too, but the
 * seat it frees is only known to the database, so it runs as statements of
 * its own (DELETE ... RETURNING seat, and the last seat moved into the
 * hole), after the registrations decided before it. Cancellations are rare
 * in a burst.
 *
 * Optimistic batches. In a burst almost no command is a replay and almost
 * no registration a duplicate of a stored one, so a batch without
 * cancellations first skips the two lookups ("seen", "registered") and lets
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
#include "ts_pg.h"
#include "ts_pgarray.h"
#include "ts_time.h"

enum stmt {
    ST_FENCE,
    ST_LOAD_OFFSET,
    ST_SEEN,
    ST_EVENTS,
    ST_REGISTERED,
    ST_INSERT_EVENTS,
    ST_INSERT_USERS,
    ST_INSERT_REGISTRATIONS,
    ST_INSERT_PROCESSED,
    ST_COUNTERS,
    ST_CANCEL,
    ST_MOVE_SEAT,
    ST_ROTATE_TOKENS,
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
                 " coalesce(encode(request_sha256, 'hex'), '')"
                 " FROM processed_commands WHERE command_id = ANY($1::uuid[])"},
    [ST_EVENTS] = {"events",
                   "SELECT id, capacity, registered, (extract(epoch FROM starts_at) * 1000)::bigint"
                   " FROM events WHERE id = ANY($1::uuid[])"},
    [ST_REGISTERED] = {"registered",
                       "SELECT r.event_id, r.user_id, r.command_id,"
                       " coalesce(encode(r.cancel_token_sha256, 'hex'), '')"
                       " FROM unnest($1::uuid[], $2::uuid[]) k(e, u)"
                       " JOIN registrations r ON r.event_id = k.e AND r.user_id = k.u"},
    [ST_INSERT_EVENTS] = {"insert_events",
                          "INSERT INTO events (id, title, description, starts_at, location,"
                          " capacity) SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[],"
                          " $4::timestamptz[], $5::text[], $6::int[])"},
    [ST_INSERT_USERS] = {"insert_users",
                         "INSERT INTO users (id, email) SELECT * FROM unnest($1::uuid[],"
                         " $2::text[]) ON CONFLICT (id) DO NOTHING"},
    /* clock_timestamp() per row, in array order: registration order */
    [ST_INSERT_REGISTRATIONS] = {"insert_registrations",
                                 "INSERT INTO registrations (event_id, user_id, name, seat,"
                                 " capacity, registered_at, command_id, cancel_token_sha256)"
                                 " SELECT e, u, n, s, c, clock_timestamp(), k, t FROM"
                                 " unnest($1::uuid[], $2::uuid[], $3::text[], $4::int[],"
                                 " $5::int[], $6::uuid[], $7::bytea[]) AS v(e, u, n, s, c, k, t)"},
    [ST_INSERT_PROCESSED] =
        {"insert_processed",
         "INSERT INTO processed_commands (command_id, event_id, kind,"
         " outcome, user_id, message, topic, kafka_partition, kafka_offset,"
         " request_sha256)"
         " SELECT c, e, k, o, u, m, $7, p, f, h FROM unnest($1::uuid[],"
         " $2::uuid[], $3::text[], $4::text[], $5::uuid[], $6::text[],"
         " $8::int[], $9::bigint[], $10::bytea[]) AS v(c, e, k, o, u, m, p, f, h)"},
    [ST_COUNTERS] = {"counters",
                     "UPDATE events SET registered = v.n FROM unnest($1::uuid[], $2::int[])"
                     " AS v(id, n) WHERE events.id = v.id"},
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
    A_Q1,
    A_Q2,
    A_Q3,
    A_COUNT_
};

struct ts_applier {
    PGconn *conn;
    char *dsn;
    ts_decider *decider;
    ts_pgarray arr[A_COUNT_];
    size_t *order; /* indexes of the batch's items, part by part */
    size_t order_cap;
    ts_apply_status failure; /* how the last failed statement failed */
    bool optimistic;         /* this attempt skips the lookups */
    bool key_conflict;       /* it met a stored command id or (event, user) */
    unsigned pause;          /* batches left to run with the lookups */
    unsigned pause_after;    /* ... after a conflict (TS_OPTIMISM_PAUSE) */
    atomic_ulong conflicts;  /* optimistic attempts undone (only /metrics reads it: relaxed) */
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
 *    "these keys", so it is the planner's last resort here. */
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

int ts_applier_reconnect(ts_applier *a, char *err, size_t errlen) {
    if (a->conn)
        PQfinish(a->conn);
    a->conn = ts_pg_connect(a->dsn, "turnstile-worker", err, errlen);
    if (!a->conn)
        return -1;
    return prepare_all(a, err, errlen);
}

ts_applier *ts_applier_new(const char *dsn, int migrate, char *err, size_t errlen) {
    ts_applier *a = calloc(1, sizeof *a);
    if (!a || !(a->dsn = strdup(dsn)) || !(a->decider = ts_decider_new())) {
        ts_applier_free(a);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->conn = ts_pg_connect(dsn, "turnstile-worker", err, errlen);
    if (!a->conn || (migrate && ts_pg_migrate(a->conn, NULL, err, errlen)) ||
        prepare_all(a, err, errlen)) {
        ts_applier_free(a);
        return NULL;
    }
    return a;
}

void ts_applier_free(ts_applier *a) {
    if (!a)
        return;
    if (a->conn)
        PQfinish(a->conn);
    for (int i = 0; i < A_COUNT_; i++)
        ts_pgarray_free(&a->arr[i]);
    ts_decider_free(a->decider);
    free(a->order);
    free(a->dsn);
    free(a);
}

bool ts_applier_connection_lost(const ts_applier *a) {
    return PQstatus(a->conn) != CONNECTION_OK;
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

/* libpq's arrays for a statement's parameters. An array that failed (out
 * of memory, a value not of its type) is a failure, never a statement that
 * silently writes less: -1 with a->failure and `err` set. */
static int bind_params(ts_applier *a, enum stmt s, int n, const param *params, const char **values,
                       int *lengths, int *formats, char *err, size_t errlen) {
    for (int i = 0; i < n; i++) {
        if (!params[i].value && !params[i].is_null) {
            bool nomem = params[i].error == TS_PGARRAY_NOMEM;
            a->failure = nomem ? TS_APPLY_RETRY : TS_APPLY_REJECTED;
            snprintf(err, errlen, "%s: parameter %d: %s", stmts[s].name, i + 1,
                     nomem ? "out of memory" : "a value not of the array's type");
            return -1;
        }
        values[i] = params[i].value;
        lengths[i] = params[i].length;
        formats[i] = params[i].format;
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

/* Runs a prepared statement; NULL on failure, with a->failure and `err`
 * set (and a->key_conflict, for an optimistic attempt). The caller
 * PQclear()s the result. */
static PGresult *run(ts_applier *a, enum stmt s, int n, const param *params, char *err,
                     size_t errlen) {
    enum { MAX_PARAMS = 16 };
    const char *values[MAX_PARAMS];
    int lengths[MAX_PARAMS], formats[MAX_PARAMS];
    if (n > MAX_PARAMS) {
        a->failure = TS_APPLY_REJECTED;
        snprintf(err, errlen, "%s: too many parameters", stmts[s].name);
        return NULL;
    }
    if (bind_params(a, s, n, params, values, lengths, formats, err, errlen))
        return NULL;
    PGresult *res = PQexecPrepared(a->conn, stmts[s].name, n, values, lengths, formats, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    a->failure = classify(a->conn, res);
    if (a->optimistic && a->failure == TS_APPLY_REJECTED)
        a->key_conflict = stored_key_conflict(res);
    const char *msg = PQresultErrorMessage(res);
    snprintf(err, errlen, "%s: %.*s", stmts[s].name, (int)strcspn(msg, "\n"), msg);
    PQclear(res);
    return NULL;
}

static int run0(ts_applier *a, enum stmt s, int n, const param *params, char *err, size_t errlen) {
    PGresult *res = run(a, s, n, params, err, errlen);
    PQclear(res);
    return res ? 0 : -1;
}

static int exec_simple(ts_applier *a, const char *sql, char *err, size_t errlen) {
    PGresult *res = PQexec(a->conn, sql);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok) {
        a->failure = classify(a->conn, res);
        snprintf(err, errlen, "%s: %s", sql, PQerrorMessage(a->conn));
    }
    PQclear(res);
    return ok ? 0 : -1;
}

int ts_applier_load_offset(ts_applier *a, const char *topic, int32_t partition, int64_t *next,
                           char *err, size_t errlen) {
    char pbuf[16];
    snprintf(pbuf, sizeof pbuf, "%d", partition);
    const param params[] = {text_param(topic), text_param(pbuf)};
    PGresult *res = run(a, ST_LOAD_OFFSET, 2, params, err, errlen);
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
            PQgetvalue(res, row, 0), strtoll(PQgetvalue(res, row, 1), NULL, 10),
            strtoll(PQgetvalue(res, row, 2), NULL, 10), strtoll(PQgetvalue(res, row, 3), NULL, 10)};
        if (ts_decider_add_event(a->decider, &e))
            rc = state_failed(a, "events", err, errlen);
    }
    PQclear(res);
    return rc;
}

/* The registrations among the (event, user) pairs the batch names, with
 * the digest of each one's cancel token and the command that made it. */
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
            ts_pgarray_uuid(us, ts_decide_user_id(it));
        }
    }
    if (ev->n == 0)
        return 0;
    const param p[] = {array_param(ev), array_param(us)};
    PGresult *res = run(a, ST_REGISTERED, 2, p, err, errlen);
    if (!res)
        return -1;
    int rc = 0;
    for (int row = 0; row < PQntuples(res) && rc == 0; row++) {
        ts_stored_registration r = {
            PQgetvalue(res, row, 0), PQgetvalue(res, row, 1), PQgetvalue(res, row, 2), {0}};
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
    static const uint32_t types[] = {TS_OID_UUID, TS_OID_UUID, TS_OID_TEXT, TS_OID_INT4,
                                     TS_OID_INT4, TS_OID_UUID, TS_OID_BYTEA};
    for (int i = 0; i <= A_RG_TOKEN - A_RG_EVENT; i++)
        ts_pgarray_reset(&r[A_RG_EVENT + i], types[i]);
    for (size_t i = from; i < to; i++) {
        const ts_row_registration *g = &d->registrations[i];
        ts_pgarray_uuid(&r[A_RG_EVENT], g->item->cmd.event_id);
        ts_pgarray_uuid(&r[A_RG_USER], g->item->user_id);
        ts_pgarray_text(&r[A_RG_NAME], g->item->cmd.u.reg.name);
        ts_pgarray_int4(&r[A_RG_SEAT], g->seat);
        ts_pgarray_int4(&r[A_RG_CAPACITY], g->capacity);
        ts_pgarray_uuid(&r[A_RG_COMMAND], g->item->cmd.command_id);
        add_digest(&r[A_RG_TOKEN], g->cancel_token);
    }
    const param p[] = {array_param(&r[A_RG_EVENT]),    array_param(&r[A_RG_USER]),
                       array_param(&r[A_RG_NAME]),     array_param(&r[A_RG_SEAT]),
                       array_param(&r[A_RG_CAPACITY]), array_param(&r[A_RG_COMMAND]),
                       array_param(&r[A_RG_TOKEN])};
    return run0(a, ST_INSERT_REGISTRATIONS, 7, p, err, errlen);
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
    static const uint32_t types[] = {TS_OID_UUID, TS_OID_UUID, TS_OID_TEXT,
                                     TS_OID_TEXT, TS_OID_UUID, TS_OID_TEXT,
                                     TS_OID_INT4, TS_OID_INT8, TS_OID_BYTEA};
    for (int i = 0; i <= A_PC_REQUEST - A_PC_COMMAND; i++)
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
                       array_param(&r[A_PC_REQUEST])};
    return run0(a, ST_INSERT_PROCESSED, 10, p, err, errlen);
}

static int write_counters(ts_applier *a, const ts_decisions *d, char *err, size_t errlen) {
    if (d->ncounters == 0)
        return 0;
    ts_pgarray *ids = &a->arr[A_Q1], *ns = &a->arr[A_Q2];
    ts_pgarray_reset(ids, TS_OID_UUID);
    ts_pgarray_reset(ns, TS_OID_INT4);
    for (size_t i = 0; i < d->ncounters; i++) {
        ts_pgarray_uuid(ids, d->counters[i].event_id);
        ts_pgarray_int4(ns, d->counters[i].registered);
    }
    const param p[] = {array_param(ids), array_param(ns)};
    return run0(a, ST_COUNTERS, 2, p, err, errlen);
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
            (s->cancels && write_cancel(a, &s->cancel, err, errlen)))
            return -1;
        registrations = s->registrations_end;
        rotations = s->rotations_end;
    }
    return write_processed(a, topic, d, err, errlen) || write_counters(a, d, err, errlen) ? -1 : 0;
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

/* Loads the state the batch's commands touch, has them decided, and
 * writes the rows. With the lookups skipped, a refusal they could change
 * fails the attempt (key_conflict) before anything is written. */
static int apply_items(ts_applier *a, const char *topic, ts_batch_item *items, size_t n, char *err,
                       size_t errlen) {
    if (ts_decider_begin(a->decider, items, a->order, n, a->optimistic)) {
        a->failure = TS_APPLY_RETRY;
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (load_commands(a, items, n, err, errlen) || load_events(a, items, n, err, errlen) ||
        load_registrations(a, items, n, err, errlen))
        return -1;
    ts_decisions decided;
    if (ts_decide(a->decider, ts_now_ms(), &decided) == TS_DECIDE_NEEDS_LOOKUPS) {
        a->key_conflict = true;
        a->failure = TS_APPLY_REJECTED;
        snprintf(err, errlen, "a refusal the lookups must confirm");
        return -1;
    }
    return write_decisions(a, topic, &decided, err, errlen);
}

/* Moves every part's stored offset; marks the parts whose offset another
 * worker moved. Returns the number fenced, or -1 on failure. */
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
    PGresult *res = run(a, ST_FENCE, 4, params, err, errlen);
    if (!res)
        return -1;
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

/* One attempt at the batch: a transaction, committed or rolled back. */
static ts_apply_status attempt(ts_applier *a, const char *topic, ts_batch_part *parts,
                               size_t nparts, ts_batch_item *items, size_t n, char *err,
                               size_t errlen) {
    a->failure = TS_APPLY_RETRY;
    a->key_conflict = false;
    if (exec_simple(a, "BEGIN", err, errlen))
        return a->failure;

    /* The fence first: it takes the row locks that serialise competing
     * workers, and a zombie learns it is one before it writes anything. */
    int fenced = fence(a, topic, parts, nparts, err, errlen);
    if (fenced < 0)
        goto rollback;
    if (fenced > 0) {
        snprintf(err, errlen, "%d partition(s) of %s: stored offset moved by another worker",
                 fenced, topic);
        a->failure = TS_APPLY_FENCED;
        goto rollback;
    }
    if (apply_items(a, topic, items, n, err, errlen))
        goto rollback;
    if (exec_simple(a, "COMMIT", err, errlen))
        return a->failure;
    return TS_APPLY_OK;

rollback:;
    ts_apply_status st = a->failure;
    if (PQstatus(a->conn) == CONNECTION_OK) {
        PGresult *rb = PQexec(a->conn, "ROLLBACK");
        bool rolled_back = PQresultStatus(rb) == PGRES_COMMAND_OK;
        PQclear(rb);
        if (!rolled_back) { /* a session left in the transaction would fail every batch after */
            ts_warn("worker", "event=rollback_failed action=reconnect err=\"%.*s\"",
                    (int)strcspn(PQerrorMessage(a->conn), "\n"), PQerrorMessage(a->conn));
            PQfinish(a->conn);
            a->conn = NULL; /* lost: the caller reconnects */
        }
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
    /* a cancellation needs to know what is registered: it looks first */
    bool cancels = false;
    for (size_t k = 0; k < n && !cancels; k++)
        cancels = !items[a->order[k]].skip && items[a->order[k]].cmd.type == TS_CMD_CANCEL;
    a->optimistic = !cancels && a->pause == 0;
    if (a->pause)
        a->pause--;
    ts_apply_status st = attempt(a, topic, parts, nparts, items, n, err, errlen);
    if (a->optimistic && st == TS_APPLY_REJECTED && a->key_conflict) {
        atomic_fetch_add_explicit(&a->conflicts, 1, memory_order_relaxed);
        a->pause = a->pause_after;
        a->optimistic = false;
        st = attempt(a, topic, parts, nparts, items, n, err, errlen);
    }
    a->optimistic = false;
    return st;
}

unsigned long ts_applier_conflicts(const ts_applier *a) {
    return atomic_load_explicit(&a->conflicts, memory_order_relaxed);
}

void ts_applier_set_optimism_pause(ts_applier *a, unsigned batches) {
    a->pause_after = batches;
}
