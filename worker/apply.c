/* apply.c — see apply.h.
 *
 * The worker owns every write of the events of its partitions, so the
 * checks need no row locks: the offset fence at the start of the
 * transaction already serialises this worker against any other that might
 * believe it owns the partition. Within a batch the events touched are
 * cached, and their counters written back once at the end. */
#include "apply.h"
#include "rules.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_log.h"
#include "ts_pg.h"
#include "ts_time.h"
#include "ts_uuid.h"

enum stmt {
    ST_FENCE,
    ST_LOAD_OFFSET,
    ST_SEEN,
    ST_RECORD,
    ST_CREATE_EVENT,
    ST_LOAD_EVENT,
    ST_IS_REGISTERED,
    ST_UPSERT_USER,
    ST_REGISTER,
    ST_CANCEL,
    ST_MOVE_SEAT,
    ST_SET_COUNTER,
    ST_COUNT_
};

static const struct {
    const char *name;
    const char *sql;
} stmts[ST_COUNT_] = {
    [ST_FENCE] = {"fence",
                  "UPDATE consumer_offsets SET next_offset = $3, updated_at = now()"
                  " WHERE topic = $1 AND kafka_partition = $2 AND next_offset = $4"},
    [ST_LOAD_OFFSET] = {"load_offset",
                        "WITH ins AS (INSERT INTO consumer_offsets (topic, kafka_partition,"
                        " next_offset) VALUES ($1, $2, 0) ON CONFLICT DO NOTHING RETURNING"
                        " next_offset) SELECT next_offset FROM ins UNION ALL SELECT next_offset"
                        " FROM consumer_offsets WHERE topic = $1 AND kafka_partition = $2"},
    [ST_SEEN] = {"seen",
                 "SELECT outcome, coalesce(user_id::text, ''), coalesce(message, ''),"
                 " (extract(epoch FROM processed_at) * 1000)::bigint"
                 " FROM processed_commands WHERE command_id = $1"},
    [ST_RECORD] = {"record",
                   "INSERT INTO processed_commands (command_id, event_id, kind, outcome,"
                   " user_id, message, topic, kafka_partition, kafka_offset)"
                   " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"},
    [ST_CREATE_EVENT] = {"create_event",
                         "INSERT INTO events (id, title, description, starts_at, location,"
                         " capacity) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING"},
    [ST_LOAD_EVENT] = {"load_event",
                       "SELECT capacity, registered,"
                       " (extract(epoch FROM starts_at) * 1000)::bigint"
                       " FROM events WHERE id = $1"},
    [ST_IS_REGISTERED] = {"is_registered",
                          "SELECT 1 FROM registrations WHERE event_id = $1 AND user_id = $2"},
    [ST_UPSERT_USER] = {"upsert_user",
                        "INSERT INTO users (id, email) VALUES ($1, $2)"
                        " ON CONFLICT (id) DO NOTHING"},
    [ST_REGISTER] = {"register",
                     "INSERT INTO registrations (event_id, user_id, name, seat, capacity,"
                     " registered_at, command_id)"
                     " VALUES ($1, $2, $3, $4, $5, clock_timestamp(), $6)"},
    [ST_CANCEL] = {"cancel",
                   "DELETE FROM registrations WHERE event_id = $1 AND user_id = $2"
                   " RETURNING seat"},
    /* Seats stay dense (1..registered): the last seat fills the hole a
     * cancellation leaves, so the next registration's seat is always
     * registered + 1. */
    [ST_MOVE_SEAT] = {"move_seat",
                      "UPDATE registrations SET seat = $3 WHERE event_id = $1 AND seat = $2"},
    [ST_SET_COUNTER] = {"set_counter", "UPDATE events SET registered = $2 WHERE id = $1"},
};

typedef struct event_state {
    char id[TS_UUID_LEN + 1];
    bool found;
    bool dirty;
    int64_t capacity;
    int64_t registered;
    int64_t starts_at_ms;
} event_state;

struct ts_applier {
    PGconn *conn;
    char *dsn;
    event_state *events;
    size_t nevents, events_cap;
    ts_apply_status failure; /* how the last failed statement failed */
};

/* ------------------------------------------------------------ connection */

static int prepare_all(ts_applier *a, char *err, size_t errlen) {
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
    free(a->events);
    free(a->dsn);
    free(a);
}

int ts_applier_connection_lost(const ts_applier *a) { return PQstatus(a->conn) != CONNECTION_OK; }

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

/* Runs a prepared statement; NULL on failure, with a->failure and `err` set.
 * The caller PQclear()s the result. */
static PGresult *run(ts_applier *a, enum stmt s, int n, const char *const *params, char *err,
                     size_t errlen) {
    PGresult *res = PQexecPrepared(a->conn, stmts[s].name, n, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    a->failure = classify(a->conn, res);
    const char *msg = PQresultErrorMessage(res);
    snprintf(err, errlen, "%s: %.*s", stmts[s].name, (int)strcspn(msg, "\n"), msg);
    PQclear(res);
    return NULL;
}

/* Runs a statement whose result is not needed. */
static int run0(ts_applier *a, enum stmt s, int n, const char *const *params, char *err,
                size_t errlen) {
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
    const char *params[] = {topic, pbuf};
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

/* ------------------------------------------------------------ the batch */

static event_state *event_get(ts_applier *a, const char *id, char *err, size_t errlen) {
    for (size_t i = 0; i < a->nevents; i++)
        if (strcmp(a->events[i].id, id) == 0)
            return &a->events[i];
    if (a->nevents == a->events_cap) {
        size_t cap = a->events_cap ? a->events_cap * 2 : 16;
        event_state *p = realloc(a->events, cap * sizeof *p);
        if (!p) {
            a->failure = TS_APPLY_RETRY;
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
        a->events = p;
        a->events_cap = cap;
    }
    const char *params[] = {id};
    PGresult *res = run(a, ST_LOAD_EVENT, 1, params, err, errlen);
    if (!res)
        return NULL;
    event_state *e = &a->events[a->nevents++];
    memset(e, 0, sizeof *e);
    strcpy(e->id, id);
    if (PQntuples(res) == 1) {
        e->found = true;
        e->capacity = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        e->registered = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        e->starts_at_ms = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    }
    PQclear(res);
    return e;
}

static void refuse(ts_reply *r, ts_outcome outcome, const char *message) {
    r->outcome = outcome;
    snprintf(r->message, sizeof r->message, "%s", message);
}

static int apply_create(ts_applier *a, const ts_command *c, ts_reply *r, char *err,
                        size_t errlen) {
    char starts[TS_ISO8601_LEN + 1], cap[24];
    ts_time_format_iso8601(c->u.create.starts_at_ms, starts);
    snprintf(cap, sizeof cap, "%lld", (long long)c->u.create.capacity);
    const char *params[] = {c->event_id, c->u.create.title,
                            c->u.create.has_description ? c->u.create.description : NULL,
                            starts, c->u.create.location, cap};
    PGresult *res = run(a, ST_CREATE_EVENT, 6, params, err, errlen);
    if (!res)
        return -1;
    int created = atoi(PQcmdTuples(res)) == 1;
    PQclear(res);
    if (!created) {
        refuse(r, TS_OUT_INVALID, "Event already exists");
        return 0;
    }
    /* Forget a cached "not found" for this id: the event exists now. */
    for (size_t i = 0; i < a->nevents; i++)
        if (strcmp(a->events[i].id, c->event_id) == 0)
            a->events[i] = a->events[--a->nevents];
    r->outcome = TS_OUT_CREATED;
    return 0;
}

static int apply_register(ts_applier *a, const ts_command *c, int64_t now_ms, ts_reply *r,
                          char *err, size_t errlen) {
    event_state *e = event_get(a, c->event_id, err, errlen);
    if (!e)
        return -1;
    ts_event_view view = {e->found, e->starts_at_ms, e->capacity, e->registered};
    bool already = false;
    ts_uuid_for_email(c->u.reg.email, r->user_id);
    if (ts_rules_needs_lookup(&view, now_ms)) {
        const char *key[] = {c->event_id, r->user_id};
        PGresult *res = run(a, ST_IS_REGISTERED, 2, key, err, errlen);
        if (!res)
            return -1;
        already = PQntuples(res) > 0;
        PQclear(res);
    }
    r->outcome = ts_rules_register(&view, now_ms, already);
    if (r->outcome != TS_OUT_REGISTERED) {
        snprintf(r->message, sizeof r->message, "%s", ts_rules_message(r->outcome));
        if (r->outcome != TS_OUT_ALREADY_REGISTERED)
            r->user_id[0] = '\0';
        return 0;
    }
    const char *user[] = {r->user_id, c->u.reg.email};
    char seat[24], cap[24];
    snprintf(seat, sizeof seat, "%lld", (long long)(e->registered + 1));
    snprintf(cap, sizeof cap, "%lld", (long long)e->capacity);
    const char *reg[] = {c->event_id, r->user_id, c->u.reg.name, seat, cap, c->command_id};
    if (run0(a, ST_UPSERT_USER, 2, user, err, errlen) ||
        run0(a, ST_REGISTER, 6, reg, err, errlen))
        return -1;
    e->registered++;
    e->dirty = true;
    return 0;
}

static int apply_cancel(ts_applier *a, const ts_command *c, ts_reply *r, char *err,
                        size_t errlen) {
    event_state *e = event_get(a, c->event_id, err, errlen);
    if (!e)
        return -1;
    if (!e->found) {
        refuse(r, TS_OUT_REGISTRATION_NOT_FOUND, ts_rules_message(TS_OUT_REGISTRATION_NOT_FOUND));
        return 0;
    }
    const char *key[] = {c->event_id, c->u.cancel.user_id};
    PGresult *res = run(a, ST_CANCEL, 2, key, err, errlen);
    if (!res)
        return -1;
    if (PQntuples(res) == 0) {
        PQclear(res);
        refuse(r, TS_OUT_REGISTRATION_NOT_FOUND, ts_rules_message(TS_OUT_REGISTRATION_NOT_FOUND));
        return 0;
    }
    long long freed = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    if (freed != e->registered) {
        char from[24], to[24];
        snprintf(from, sizeof from, "%lld", (long long)e->registered);
        snprintf(to, sizeof to, "%lld", freed);
        const char *move[] = {c->event_id, from, to};
        if (run0(a, ST_MOVE_SEAT, 3, move, err, errlen))
            return -1;
    }
    e->registered--;
    e->dirty = true;
    snprintf(r->user_id, sizeof r->user_id, "%s", c->u.cancel.user_id);
    r->outcome = TS_OUT_CANCELLED;
    return 0;
}

/* A command applied before (same command_id): its reply is the first one. */
static int replay(ts_applier *a, ts_batch_item *it, bool *seen, char *err, size_t errlen) {
    const char *params[] = {it->cmd.command_id};
    PGresult *res = run(a, ST_SEEN, 1, params, err, errlen);
    if (!res)
        return -1;
    *seen = PQntuples(res) > 0;
    if (*seen) {
        const char *outcome = PQgetvalue(res, 0, 0);
        for (int o = 0; o < TS_OUT_COUNT_; o++)
            if (strcmp(outcome, ts_outcome_name((ts_outcome)o)) == 0)
                it->reply.outcome = (ts_outcome)o;
        snprintf(it->reply.user_id, sizeof it->reply.user_id, "%s", PQgetvalue(res, 0, 1));
        snprintf(it->reply.message, sizeof it->reply.message, "%s", PQgetvalue(res, 0, 2));
        it->reply.applied_at_ms = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
    }
    PQclear(res);
    return 0;
}

static int record(ts_applier *a, const char *topic, const char *part, ts_batch_item *it,
                  char *err, size_t errlen) {
    char off[24];
    snprintf(off, sizeof off, "%lld", (long long)it->offset);
    const char *params[] = {it->cmd.command_id,
                            it->cmd.event_id,
                            ts_command_type_name(it->cmd.type),
                            ts_outcome_name(it->reply.outcome),
                            it->reply.user_id[0] ? it->reply.user_id : NULL,
                            it->reply.message[0] ? it->reply.message : NULL,
                            topic,
                            part,
                            off};
    return run0(a, ST_RECORD, 9, params, err, errlen);
}

static int apply_item(ts_applier *a, const char *topic, const char *part, ts_batch_item *it,
                      int64_t now_ms, char *err, size_t errlen) {
    ts_reply *r = &it->reply;
    memset(r, 0, sizeof *r);
    strcpy(r->command_id, it->cmd.command_id);
    strcpy(r->event_id, it->cmd.event_id);
    r->applied_at_ms = now_ms;

    bool seen;
    if (replay(a, it, &seen, err, errlen))
        return -1;
    it->replayed = seen;
    if (seen)
        return 0;

    int rc;
    switch (it->cmd.type) {
    case TS_CMD_CREATE_EVENT: rc = apply_create(a, &it->cmd, r, err, errlen); break;
    case TS_CMD_REGISTER: rc = apply_register(a, &it->cmd, now_ms, r, err, errlen); break;
    case TS_CMD_CANCEL: rc = apply_cancel(a, &it->cmd, r, err, errlen); break;
    default:
        refuse(r, TS_OUT_INVALID, "unknown command type");
        rc = 0;
    }
    return rc ? -1 : record(a, topic, part, it, err, errlen);
}

static int write_counters(ts_applier *a, char *err, size_t errlen) {
    for (size_t i = 0; i < a->nevents; i++) {
        event_state *e = &a->events[i];
        if (!e->dirty)
            continue;
        char n[24];
        snprintf(n, sizeof n, "%lld", (long long)e->registered);
        const char *params[] = {e->id, n};
        if (run0(a, ST_SET_COUNTER, 2, params, err, errlen))
            return -1;
    }
    return 0;
}

ts_apply_status ts_applier_apply(ts_applier *a, const char *topic, int32_t partition,
                                 int64_t expected, int64_t next, ts_batch_item *items,
                                 size_t n, char *err, size_t errlen) {
    char part[16], exp[24], nxt[24];
    snprintf(part, sizeof part, "%d", partition);
    snprintf(exp, sizeof exp, "%lld", (long long)expected);
    snprintf(nxt, sizeof nxt, "%lld", (long long)next);
    a->nevents = 0;
    a->failure = TS_APPLY_RETRY;

    if (exec_simple(a, "BEGIN", err, errlen))
        return a->failure;

    /* The fence first: it takes the row lock that serialises competing
     * workers, and a zombie learns it is one before it writes anything. */
    const char *fence[] = {topic, part, nxt, exp};
    PGresult *res = run(a, ST_FENCE, 4, fence, err, errlen);
    if (!res)
        goto rollback;
    int moved = atoi(PQcmdTuples(res));
    PQclear(res);
    if (moved != 1) {
        snprintf(err, errlen, "partition %s/%d: stored offset is not %lld", topic, partition,
                 (long long)expected);
        a->failure = TS_APPLY_FENCED;
        goto rollback;
    }

    int64_t now_ms = ts_now_ms();
    for (size_t i = 0; i < n; i++)
        if (!items[i].skip && apply_item(a, topic, part, &items[i], now_ms, err, errlen))
            goto rollback;
    if (write_counters(a, err, errlen))
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
