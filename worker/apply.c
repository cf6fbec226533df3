/* apply.c — see apply.h.
 *
 * A batch costs a fixed number of statements, whatever its size:
 *
 *   BEGIN
 *   fence        move the partition's stored offset (or learn we are a zombie)
 *   seen         which command ids were applied before (their first outcome)
 *   events       the events the batch touches: capacity, counter, start
 *   registered   which (event, user) pairs of the batch already exist
 *   ...decide every command in offset order, in memory...
 *   insert       events, users, registrations, processed commands: one
 *                multi-row INSERT each (unnest of array parameters)
 *   counters     one UPDATE for all the events touched
 *   COMMIT
 *
 * A cancellation needs the seat it frees and moves the last seat into the
 * hole, so it runs as its own statements; the rows decided before it are
 * written first. Cancellations are rare in a burst.
 *
 * Optimistic batches. In a burst almost no command is a replay and almost
 * no registration a duplicate of a stored one, so a batch without
 * cancellations first skips the two lookups ("seen", "registered") and lets
 * the primary keys of processed_commands and registrations say so: their
 * unique check runs anyway when the rows go in. A violation of either
 * rolls the batch back and it runs again with the lookups, and so do the
 * next TS_OPTIMISM_PAUSE batches (64). So does a batch that would refuse
 * someone for a full event, before writing anything: a stored registration
 * would make that "already registered", which only the lookup tells.
 * Nothing of the undone attempt survives: its outcomes are decided again
 * from scratch.
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

#include "rules.h"
#include "ts_hash.h"
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
    ST_ROTATE_TOKEN,
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
                       "SELECT r.event_id, r.user_id FROM unnest($1::uuid[], $2::uuid[]) k(e, u)"
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
    /* With a token ($3), only the registration that holds its hash goes. */
    [ST_CANCEL] = {"cancel", "DELETE FROM registrations WHERE event_id = $1 AND user_id = $2"
                             " AND ($3::bytea IS NULL OR cancel_token_sha256 = $3) RETURNING seat"},
    /* Seats stay dense (1..registered): the last seat fills the hole a
     * cancellation leaves, so the next registration's seat is always
     * registered + 1. */
    [ST_MOVE_SEAT] = {"move_seat",
                      "UPDATE registrations SET seat = $3 WHERE event_id = $1 AND seat = $2"},
    /* A client's retry of its registration (same idempotency key, same
     * request) comes with a new token: it replaces the one the client never
     * received. Only the registration that command made is touched. */
    [ST_ROTATE_TOKEN] = {"rotate_token",
                         "UPDATE registrations SET cancel_token_sha256 = $3"
                         " WHERE event_id = $1 AND user_id = $2 AND command_id = $4"},
};

/* ------------------------------------------------------------ the batch's memory */

typedef struct event_state {
    char id[TS_UUID_LEN + 1];
    bool found;
    bool dirty;
    int64_t capacity;
    int64_t registered;
    int64_t starts_at_ms;
} event_state;

/* Keys known in this batch — (event, user) pairs registered, and command
 * ids decided — in an open-addressed table emptied by bumping a generation.
 * A pair's key is the two UUIDs; a command's, its id then 36 '-'s (no user
 * id looks like that). */
typedef struct pair_slot {
    unsigned gen;
    bool present;
    int first; /* commands: the index of the item that holds it */
    char key[2 * TS_UUID_LEN + 1];
} pair_slot;

static const char no_user[TS_UUID_LEN + 1] = "------------------------------------";

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
    event_state *events;
    size_t nevents, events_cap;
    uint32_t *event_slots;  /* open-addressed index of events[]: position + 1, 0 empty */
    size_t event_slots_n;   /* in use: a power of two, at least twice the batch's events */
    size_t event_slots_cap; /* allocated */
    pair_slot *pairs;
    size_t pairs_cap;
    unsigned gen;
    ts_pgarray arr[A_COUNT_];
    size_t *order; /* indexes of the batch's items, part by part */
    size_t order_cap;
    ts_apply_status failure; /* how the last failed statement failed */
    bool optimistic;         /* this attempt skips the lookups */
    bool key_conflict;       /* it met a stored command id or (event, user) */
    unsigned pause;          /* batches left to run with the lookups */
    unsigned pause_after;    /* ... after a conflict (TS_OPTIMISM_PAUSE) */
    atomic_ulong conflicts;  /* optimistic attempts undone (read by /metrics) */
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
        int set_ok = PQresultStatus(set) == PGRES_COMMAND_OK;
        PQclear(set);
        if (!set_ok) {
            snprintf(err, errlen, "%s: %s", session_settings[i], PQerrorMessage(a->conn));
            return -1;
        }
    }
    for (int i = 0; i < ST_COUNT_; i++) {
        PGresult *res = PQprepare(a->conn, stmts[i].name, stmts[i].sql, 0, NULL);
        int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
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
    if (!a || !(a->dsn = strdup(dsn))) {
        free(a);
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
    free(a->pairs);
    free(a->order);
    free(a->events);
    free(a->event_slots);
    free(a->dsn);
    free(a);
}

int ts_applier_connection_lost(const ts_applier *a) {
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

/* Runs a prepared statement; NULL on failure, with a->failure and `err` set.
 * An array that failed (out of memory, a value not of its type) is a
 * failure, never a statement that silently writes less. The caller
 * PQclear()s the result. */
static PGresult *run(ts_applier *a, enum stmt s, int n, const param *params, char *err,
                     size_t errlen) {
    const char *values[16];
    int lengths[16], formats[16];
    if (n > 16) {
        a->failure = TS_APPLY_REJECTED;
        snprintf(err, errlen, "%s: too many parameters", stmts[s].name);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        if (!params[i].value && !params[i].is_null) {
            bool nomem = params[i].error == TS_PGARRAY_NOMEM;
            a->failure = nomem ? TS_APPLY_RETRY : TS_APPLY_REJECTED;
            snprintf(err, errlen, "%s: parameter %d: %s", stmts[s].name, i + 1,
                     nomem ? "out of memory" : "a value not of the array's type");
            return NULL;
        }
        values[i] = params[i].value;
        lengths[i] = params[i].length;
        formats[i] = params[i].format;
    }
    PGresult *res = PQexecPrepared(a->conn, stmts[s].name, n, values, lengths, formats, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    a->failure = classify(a->conn, res);
    if (a->optimistic && a->failure == TS_APPLY_REJECTED) {
        /* a stored command id or registration the skipped lookups would
         * have found: not a refusal, a reason to look first */
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        const char *constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
        a->key_conflict = state && constraint && !strcmp(state, "23505") &&
                          (!strcmp(constraint, "processed_commands_pkey") ||
                           !strcmp(constraint, "registrations_pkey"));
    }
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
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
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

/* ------------------------------------------------------------ batch memory */

/* The slot of events[]'s index where the event is, or the empty one where
 * it would go. The table is never more than half full (fresh_keys). */
static uint32_t *event_slot(ts_applier *a, const char *id) {
    size_t mask = a->event_slots_n - 1;
    for (size_t i = ts_fnv1a(id, TS_UUID_LEN) & mask;; i = (i + 1) & mask) {
        uint32_t *s = &a->event_slots[i];
        if (*s == 0 || strcmp(a->events[*s - 1].id, id) == 0)
            return s;
    }
}

static event_state *event_find(ts_applier *a, const char *id) {
    uint32_t *s = event_slot(a, id);
    return *s ? &a->events[*s - 1] : NULL;
}

/* The event's entry, added (not found) if the batch has none yet. */
static event_state *event_entry(ts_applier *a, const char *id) {
    uint32_t *s = event_slot(a, id);
    if (*s)
        return &a->events[*s - 1];
    if (a->nevents == a->events_cap) {
        size_t cap = a->events_cap ? a->events_cap * 2 : 64;
        event_state *p = realloc(a->events, cap * sizeof *p);
        if (!p)
            return NULL;
        a->events = p;
        a->events_cap = cap;
    }
    event_state *e = &a->events[a->nevents++];
    memset(e, 0, sizeof *e);
    strcpy(e->id, id);
    *s = (uint32_t)a->nevents;
    return e;
}

static pair_slot *pair_slot_for(ts_applier *a, const char *event_id, const char *user_id) {
    char key[2 * TS_UUID_LEN + 1];
    memcpy(key, event_id, TS_UUID_LEN);
    memcpy(key + TS_UUID_LEN, user_id, TS_UUID_LEN + 1);
    uint32_t h = ts_fnv1a(key, 2 * TS_UUID_LEN);
    for (size_t i = h % a->pairs_cap;; i = (i + 1) % a->pairs_cap) {
        pair_slot *s = &a->pairs[i];
        if (s->gen != a->gen) { /* empty in this batch */
            s->gen = a->gen;
            s->present = false;
            memcpy(s->key, key, sizeof key);
            return s;
        }
        if (memcmp(s->key, key, sizeof key) == 0)
            return s;
    }
}

/* ------------------------------------------------------------ the batch */

static void refuse(ts_reply *r, ts_outcome outcome, const char *message) {
    r->outcome = outcome;
    snprintf(r->message, sizeof r->message, "%s", message);
}

/* The element type of each array of rows. */
static const uint32_t row_types[A_PC_REQUEST + 1] = {
    [A_EV_ID] = TS_OID_UUID,        [A_EV_TITLE] = TS_OID_TEXT,
    [A_EV_DESC] = TS_OID_TEXT,      [A_EV_STARTS] = TS_OID_TIMESTAMPTZ,
    [A_EV_LOCATION] = TS_OID_TEXT,  [A_EV_CAPACITY] = TS_OID_INT4,
    [A_US_ID] = TS_OID_UUID,        [A_US_EMAIL] = TS_OID_TEXT,
    [A_RG_EVENT] = TS_OID_UUID,     [A_RG_USER] = TS_OID_UUID,
    [A_RG_NAME] = TS_OID_TEXT,      [A_RG_SEAT] = TS_OID_INT4,
    [A_RG_CAPACITY] = TS_OID_INT4,  [A_RG_COMMAND] = TS_OID_UUID,
    [A_RG_TOKEN] = TS_OID_BYTEA,    [A_PC_REQUEST] = TS_OID_BYTEA,
    [A_PC_COMMAND] = TS_OID_UUID,   [A_PC_EVENT] = TS_OID_UUID,
    [A_PC_KIND] = TS_OID_TEXT,      [A_PC_OUTCOME] = TS_OID_TEXT,
    [A_PC_USER] = TS_OID_UUID,      [A_PC_MESSAGE] = TS_OID_TEXT,
    [A_PC_PARTITION] = TS_OID_INT4, [A_PC_OFFSET] = TS_OID_INT8,
};

static void begin_rows(ts_applier *a) {
    for (int i = A_EV_ID; i <= A_PC_REQUEST; i++)
        ts_pgarray_reset(&a->arr[i], row_types[i]);
}

/* Writes the rows decided so far: events, users, registrations, processed
 * commands, in that order (each refers to the ones before). */
static int flush_rows(ts_applier *a, const char *topic, char *err, size_t errlen) {
    ts_pgarray *r = a->arr;
    if (r[A_EV_ID].n) {
        const param p[] = {array_param(&r[A_EV_ID]),       array_param(&r[A_EV_TITLE]),
                           array_param(&r[A_EV_DESC]),     array_param(&r[A_EV_STARTS]),
                           array_param(&r[A_EV_LOCATION]), array_param(&r[A_EV_CAPACITY])};
        if (run0(a, ST_INSERT_EVENTS, 6, p, err, errlen))
            return -1;
    }
    if (r[A_US_ID].n) {
        const param p[] = {array_param(&r[A_US_ID]), array_param(&r[A_US_EMAIL])};
        if (run0(a, ST_INSERT_USERS, 2, p, err, errlen))
            return -1;
    }
    if (r[A_RG_EVENT].n) {
        const param p[] = {array_param(&r[A_RG_EVENT]),    array_param(&r[A_RG_USER]),
                           array_param(&r[A_RG_NAME]),     array_param(&r[A_RG_SEAT]),
                           array_param(&r[A_RG_CAPACITY]), array_param(&r[A_RG_COMMAND]),
                           array_param(&r[A_RG_TOKEN])};
        if (run0(a, ST_INSERT_REGISTRATIONS, 7, p, err, errlen))
            return -1;
    }
    if (r[A_PC_COMMAND].n) {
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
        if (run0(a, ST_INSERT_PROCESSED, 10, p, err, errlen))
            return -1;
    }
    begin_rows(a);
    return 0;
}

static void decide_create(ts_applier *a, const ts_command *c, ts_reply *r) {
    event_state *e = event_entry(a, c->event_id);
    if (!e || e->found) {
        refuse(r, TS_OUT_INVALID, "Event already exists");
        return;
    }
    e->found = true;
    e->capacity = c->u.create.capacity;
    e->registered = 0;
    e->starts_at_ms = c->u.create.starts_at_ms;
    ts_pgarray_uuid(&a->arr[A_EV_ID], c->event_id);
    ts_pgarray_text(&a->arr[A_EV_TITLE], c->u.create.title);
    ts_pgarray_text(&a->arr[A_EV_DESC],
                    c->u.create.has_description ? c->u.create.description : NULL);
    ts_pgarray_timestamptz_ms(&a->arr[A_EV_STARTS], c->u.create.starts_at_ms);
    ts_pgarray_text(&a->arr[A_EV_LOCATION], c->u.create.location);
    ts_pgarray_int4(&a->arr[A_EV_CAPACITY], (int32_t)c->u.create.capacity);
    r->outcome = TS_OUT_CREATED;
}

static void decide_register(ts_applier *a, const ts_batch_item *it, int64_t now_ms, ts_reply *r) {
    const ts_command *c = &it->cmd;
    event_state *e = event_entry(a, c->event_id);
    ts_event_view view = {e && e->found, e ? e->starts_at_ms : 0, e ? e->capacity : 0,
                          e ? e->registered : 0};
    strcpy(r->user_id, it->user_id);
    pair_slot *pair = NULL;
    bool already = false;
    if (ts_rules_needs_lookup(&view, now_ms)) {
        pair = pair_slot_for(a, c->event_id, r->user_id);
        already = pair->present;
    }
    r->outcome = ts_rules_register(&view, now_ms, already);
    /* Full, unless the person is registered already: only the lookup
     * tells, and a batch tried without it cannot answer. */
    if (a->optimistic && r->outcome == TS_OUT_EVENT_FULL)
        a->key_conflict = true;
    if (r->outcome != TS_OUT_REGISTERED) {
        snprintf(r->message, sizeof r->message, "%s", ts_outcome_message(r->outcome));
        if (r->outcome != TS_OUT_ALREADY_REGISTERED)
            r->user_id[0] = '\0';
        return;
    }
    e->registered++;
    e->dirty = true;
    pair->present = true;
    ts_pgarray_uuid(&a->arr[A_US_ID], r->user_id);
    ts_pgarray_text(&a->arr[A_US_EMAIL], c->u.reg.email);
    ts_pgarray_uuid(&a->arr[A_RG_EVENT], c->event_id);
    ts_pgarray_uuid(&a->arr[A_RG_USER], r->user_id);
    ts_pgarray_text(&a->arr[A_RG_NAME], c->u.reg.name);
    ts_pgarray_int4(&a->arr[A_RG_SEAT], (int32_t)e->registered);
    ts_pgarray_int4(&a->arr[A_RG_CAPACITY], (int32_t)e->capacity);
    ts_pgarray_uuid(&a->arr[A_RG_COMMAND], c->command_id);
    const ts_digest *token = &c->u.reg.cancel_token_sha256;
    ts_pgarray_bytea(&a->arr[A_RG_TOKEN], token->present ? token->bytes : NULL, TS_SHA256_LEN);
}

/* A cancellation runs at once, after the rows decided before it. */
static int apply_cancel(ts_applier *a, const char *topic, const ts_command *c, ts_reply *r,
                        char *err, size_t errlen) {
    event_state *e = event_entry(a, c->event_id);
    if (!e || !e->found || !pair_slot_for(a, c->event_id, c->u.cancel.user_id)->present) {
        refuse(r, TS_OUT_REGISTRATION_NOT_FOUND, ts_outcome_message(TS_OUT_REGISTRATION_NOT_FOUND));
        return 0;
    }
    if (flush_rows(a, topic, err, errlen))
        return -1;
    const param key[] = {text_param(c->event_id), text_param(c->u.cancel.user_id),
                         digest_param(&c->u.cancel.token_sha256)};
    PGresult *res = run(a, ST_CANCEL, 3, key, err, errlen);
    if (!res)
        return -1;
    if (PQntuples(res) == 0 && c->u.cancel.token_sha256.present) {
        PQclear(res); /* registered, but not with this token */
        refuse(r, TS_OUT_FORBIDDEN, ts_outcome_message(TS_OUT_FORBIDDEN));
        return 0;
    }
    if (PQntuples(res) == 0) { /* the set said present: the database disagrees */
        PQclear(res);
        a->failure = TS_APPLY_REJECTED;
        snprintf(err, errlen, "cancel: registration %s/%s vanished", c->event_id,
                 c->u.cancel.user_id);
        return -1;
    }
    long long freed = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    if (freed != e->registered) {
        char from[24], to[24];
        snprintf(from, sizeof from, "%lld", (long long)e->registered);
        snprintf(to, sizeof to, "%lld", freed);
        const param move[] = {text_param(c->event_id), text_param(from), text_param(to)};
        if (run0(a, ST_MOVE_SEAT, 3, move, err, errlen))
            return -1;
    }
    e->registered--;
    e->dirty = true;
    pair_slot_for(a, c->event_id, c->u.cancel.user_id)->present = false;
    snprintf(r->user_id, sizeof r->user_id, "%s", c->u.cancel.user_id);
    r->outcome = TS_OUT_CANCELLED;
    return 0;
}

static void queue_processed(ts_applier *a, const ts_batch_item *it) {
    ts_pgarray_uuid(&a->arr[A_PC_COMMAND], it->cmd.command_id);
    ts_pgarray_uuid(&a->arr[A_PC_EVENT], it->cmd.event_id);
    ts_pgarray_text(&a->arr[A_PC_KIND], ts_command_type_name(it->cmd.type));
    ts_pgarray_text(&a->arr[A_PC_OUTCOME], ts_outcome_name(it->reply.outcome));
    if (it->reply.user_id[0])
        ts_pgarray_uuid(&a->arr[A_PC_USER], it->reply.user_id);
    else
        ts_pgarray_null(&a->arr[A_PC_USER]);
    ts_pgarray_text(&a->arr[A_PC_MESSAGE], it->reply.message[0] ? it->reply.message : NULL);
    ts_pgarray_int4(&a->arr[A_PC_PARTITION], it->partition);
    ts_pgarray_int8(&a->arr[A_PC_OFFSET], it->offset);
    const ts_digest *h = &it->cmd.request_sha256;
    ts_pgarray_bytea(&a->arr[A_PC_REQUEST], h->present ? h->bytes : NULL, TS_SHA256_LEN);
}

static void hex(const uint8_t *b, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

/* An idempotency key's command seen again with another request: refused,
 * and nothing of the first command's outcome is told. */
static void refuse_reused_key(ts_reply *r) {
    r->user_id[0] = '\0';
    refuse(r, TS_OUT_IDEMPOTENCY_KEY_REUSED, ts_outcome_message(TS_OUT_IDEMPOTENCY_KEY_REUSED));
}

static bool same_request(const ts_digest *a, const ts_digest *b) {
    return !a->present || !b->present || memcmp(a->bytes, b->bytes, TS_SHA256_LEN) == 0;
}

/* A client's retry of a registration made by this command id gets the
 * retry's token (see ST_ROTATE_TOKEN); the rows decided before go first, in
 * case the registration is one of them. */
static int rotate_token(ts_applier *a, const char *topic, const ts_batch_item *it, char *err,
                        size_t errlen) {
    const ts_command *c = &it->cmd;
    if (c->type != TS_CMD_REGISTER || !c->request_sha256.present ||
        !c->u.reg.cancel_token_sha256.present || it->reply.outcome != TS_OUT_REGISTERED)
        return 0;
    if (flush_rows(a, topic, err, errlen))
        return -1;
    const param p[] = {text_param(c->event_id), text_param(it->user_id),
                       digest_param(&c->u.reg.cancel_token_sha256), text_param(c->command_id)};
    return run0(a, ST_ROTATE_TOKEN, 4, p, err, errlen);
}

/* Marks the items applied before, with their first outcome. An item whose
 * command_id appears earlier in the same batch is marked too (its reply is
 * copied once the first is decided). */
static int load_seen(ts_applier *a, ts_batch_item *items, size_t n, char *err, size_t errlen) {
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
    for (int row = 0; row < PQntuples(res); row++) {
        const char *id = PQgetvalue(res, row, 0);
        for (size_t k = 0; k < n; k++) {
            ts_batch_item *it = &items[a->order[k]];
            if (it->skip || strcmp(it->cmd.command_id, id) != 0)
                continue;
            it->replayed = true;
            if (ts_outcome_parse(PQgetvalue(res, row, 1), &it->reply.outcome))
                it->reply.outcome = TS_OUT_INVALID;
            snprintf(it->reply.user_id, sizeof it->reply.user_id, "%s", PQgetvalue(res, row, 2));
            snprintf(it->reply.message, sizeof it->reply.message, "%s", PQgetvalue(res, row, 3));
            it->reply.applied_at_ms = strtoll(PQgetvalue(res, row, 4), NULL, 10);
            const char *stored = PQgetvalue(res, row, 5);
            if (it->cmd.request_sha256.present && stored[0]) {
                char mine[2 * TS_SHA256_LEN + 1];
                hex(it->cmd.request_sha256.bytes, TS_SHA256_LEN, mine);
                if (strcmp(mine, stored) != 0)
                    refuse_reused_key(&it->reply);
            }
        }
    }
    PQclear(res);
    return 0;
}

/* Loads the events the batch names, and the registrations that already
 * exist among the (event, user) pairs it names. */
static int load_state(ts_applier *a, ts_batch_item *items, size_t n, char *err, size_t errlen) {
    ts_pgarray *ids = &a->arr[A_Q1];
    ts_pgarray_reset(ids, TS_OID_UUID);
    for (size_t k = 0; k < n; k++) {
        const ts_batch_item *it = &items[a->order[k]];
        if (!it->skip && !it->replayed && !event_find(a, it->cmd.event_id)) {
            /* every event decided on below has its entry from here on */
            if (!event_entry(a, it->cmd.event_id)) {
                a->failure = TS_APPLY_RETRY;
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            ts_pgarray_uuid(ids, it->cmd.event_id);
        }
    }
    if (ids->n) {
        const param p[] = {array_param(ids)};
        PGresult *res = run(a, ST_EVENTS, 1, p, err, errlen);
        if (!res)
            return -1;
        for (int row = 0; row < PQntuples(res); row++) {
            event_state *e = event_find(a, PQgetvalue(res, row, 0));
            if (!e)
                continue;
            e->found = true;
            e->capacity = strtoll(PQgetvalue(res, row, 1), NULL, 10);
            e->registered = strtoll(PQgetvalue(res, row, 2), NULL, 10);
            e->starts_at_ms = strtoll(PQgetvalue(res, row, 3), NULL, 10);
        }
        PQclear(res);
    }

    if (a->optimistic)
        return 0;
    ts_pgarray *ev = &a->arr[A_Q1], *us = &a->arr[A_Q2];
    ts_pgarray_reset(ev, TS_OID_UUID);
    ts_pgarray_reset(us, TS_OID_UUID);
    for (size_t k = 0; k < n; k++) {
        const ts_batch_item *it = &items[a->order[k]];
        if (it->skip || it->replayed)
            continue;
        const char *uid;
        if (it->cmd.type == TS_CMD_REGISTER)
            uid = it->user_id;
        else if (it->cmd.type == TS_CMD_CANCEL)
            uid = it->cmd.u.cancel.user_id;
        else
            continue;
        ts_pgarray_uuid(ev, it->cmd.event_id);
        ts_pgarray_uuid(us, uid);
    }
    if (ev->n == 0)
        return 0;
    const param p[] = {array_param(ev), array_param(us)};
    PGresult *res = run(a, ST_REGISTERED, 2, p, err, errlen);
    if (!res)
        return -1;
    for (int row = 0; row < PQntuples(res); row++)
        pair_slot_for(a, PQgetvalue(res, row, 0), PQgetvalue(res, row, 1))->present = true;
    PQclear(res);
    return 0;
}

static int write_counters(ts_applier *a, char *err, size_t errlen) {
    ts_pgarray *ids = &a->arr[A_Q1], *ns = &a->arr[A_Q2];
    ts_pgarray_reset(ids, TS_OID_UUID);
    ts_pgarray_reset(ns, TS_OID_INT4);
    for (size_t i = 0; i < a->nevents; i++)
        if (a->events[i].dirty) {
            ts_pgarray_uuid(ids, a->events[i].id);
            ts_pgarray_int4(ns, (int32_t)a->events[i].registered);
        }
    if (ids->n == 0)
        return 0;
    const param p[] = {array_param(ids), array_param(ns)};
    return run0(a, ST_COUNTERS, 2, p, err, errlen);
}

/* Room for the pairs and command ids of a batch (2n keys at most), the
 * table never more than a quarter full; and a new, empty generation. The
 * events' index is emptied too (n events at most, half full at most). */
static int fresh_keys(ts_applier *a, size_t n) {
    if (a->pairs_cap < 8 * n + 16) {
        free(a->pairs);
        a->pairs_cap = 8 * n + 16;
        a->pairs = calloc(a->pairs_cap, sizeof *a->pairs);
        a->gen = 0;
        if (!a->pairs) {
            a->pairs_cap = 0;
            return -1;
        }
    }
    if (++a->gen == 0) { /* wrapped: clear the table once */
        memset(a->pairs, 0, a->pairs_cap * sizeof *a->pairs);
        a->gen = 1;
    }
    size_t slots = 16;
    while (slots < 2 * n)
        slots *= 2;
    if (a->event_slots_cap < slots) {
        free(a->event_slots);
        a->event_slots = malloc(slots * sizeof *a->event_slots);
        a->event_slots_cap = a->event_slots ? slots : 0;
        if (!a->event_slots)
            return -1;
    }
    /* only as much of the table as this batch uses: a small batch clears little */
    a->event_slots_n = slots;
    memset(a->event_slots, 0, slots * sizeof *a->event_slots);
    return 0;
}

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

static int apply_items(ts_applier *a, const char *topic, ts_batch_item *items, size_t n, char *err,
                       size_t errlen) {
    a->nevents = 0;
    if (fresh_keys(a, n)) {
        a->failure = TS_APPLY_RETRY;
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t k = 0; k < n; k++) {
        ts_batch_item *it = &items[a->order[k]];
        memset(&it->reply, 0, sizeof it->reply);
        it->replayed = false;
    }
    if (load_seen(a, items, n, err, errlen) || load_state(a, items, n, err, errlen))
        return -1;

    begin_rows(a);
    int64_t now_ms = ts_now_ms();
    for (size_t k = 0; k < n; k++) {
        size_t i = a->order[k];
        ts_batch_item *it = &items[i];
        if (it->skip)
            continue;
        ts_reply *r = &it->reply;
        strcpy(r->command_id, it->cmd.command_id);
        strcpy(r->event_id, it->cmd.event_id);
        if (it->replayed) {
            if (!r->applied_at_ms)
                r->applied_at_ms = now_ms;
            if (rotate_token(a, topic, it, err, errlen))
                return -1;
            continue;
        }
        /* the same command earlier in this batch: its outcome, once */
        pair_slot *cmd = pair_slot_for(a, it->cmd.command_id, no_user);
        if (cmd->present) {
            const ts_batch_item *first = &items[cmd->first];
            *r = first->reply;
            it->replayed = true;
            if (!same_request(&it->cmd.request_sha256, &first->cmd.request_sha256))
                refuse_reused_key(r);
            else if (rotate_token(a, topic, it, err, errlen))
                return -1;
            continue;
        }
        cmd->present = true;
        cmd->first = (int)i;
        r->applied_at_ms = now_ms;
        switch (it->cmd.type) {
        case TS_CMD_CREATE_EVENT: decide_create(a, &it->cmd, r); break;
        case TS_CMD_REGISTER: decide_register(a, it, now_ms, r); break;
        case TS_CMD_CANCEL:
            if (apply_cancel(a, topic, &it->cmd, r, err, errlen))
                return -1;
            break;
        }
        queue_processed(a, it);
    }
    if (a->key_conflict) { /* before writing anything */
        a->failure = TS_APPLY_REJECTED;
        snprintf(err, errlen, "a refusal the lookups must confirm");
        return -1;
    }
    return flush_rows(a, topic, err, errlen) || write_counters(a, err, errlen) ? -1 : 0;
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
        int32_t moved = (int32_t)atoi(PQgetvalue(res, row, 0));
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
        PQclear(rb);
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
        atomic_fetch_add(&a->conflicts, 1);
        a->pause = a->pause_after;
        a->optimistic = false;
        st = attempt(a, topic, parts, nparts, items, n, err, errlen);
    }
    a->optimistic = false;
    return st;
}

unsigned long ts_applier_conflicts(const ts_applier *a) {
    return atomic_load(&a->conflicts);
}

void ts_applier_set_optimism_pause(ts_applier *a, unsigned batches) {
    a->pause_after = batches;
}
