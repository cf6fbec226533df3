/* SPDX-License-Identifier: Apache-2.0 */
/* reads.c — see reads.h. Times are returned as ISO 8601 in UTC with
 * milliseconds, formatted by PostgreSQL.
 *
 * With a replica (TS_PG_READ_DSN) each read thread has a connection to
 * either database. A read of data needs the replica to have replayed the
 * position it must see (position.h): the highest this instance has
 * answered a write with, or the request's own. What the thread's replica
 * connection last said of its replay position is kept with it and asked
 * again only when not enough (it only grows while the server runs; a
 * restarted one is a new connection, asked afresh). The replica gets half
 * of what is left of a read's deadline, its connection and that question
 * at most REPLICA_CHECK_MS of it: a replica that is down or hangs costs
 * the read that finds it so at most half its time, then it rests
 * (ts_replica_rest_ms) and reads go straight to the primary meanwhile. */
#include "reads.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outcome.h"
#include "position.h"
#include "ts_codec.h"
#include "ts_log.h"
#include "ts_lsn.h"
#include "ts_pg.h"
#include "ts_time.h"

#define ISO(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

enum {
    Q_EVENT,
    Q_REGISTRATIONS,
    Q_UPCOMING,
    Q_STATS,
    Q_COMMAND,
    Q_WAITLIST,
    Q_REPLAYED,
    Q_POSITION,
    Q_COUNT_
};

#define REPLICA_CHECK_MS 1000 /* a replica's connection, or its replay position, at most */
#define REPLICA_MIN_MS 10     /* less time than this left, and the replica is not tried */

/* A position of the primary's WAL at or past every commit visible now: the
 * insert position, which a commit's record is before when it becomes
 * visible, whatever synchronous_commit the committer had. */
#define WAL_NOW "pg_current_wal_insert_lsn()::text"

/* The columns of an event, as event_json() reads them. */
#define EVENT_COLUMNS                                                                              \
    "id, title, description, " ISO("starts_at") ", location, capacity, registered, status, held"

#define PROCESSED_AT ISO("processed_at")
#define JOINED_AT ISO("w.joined_at")
#define EXPIRES_AT_MS "coalesce((extract(epoch FROM expires_at) * 1000)::bigint, 0)"

static const struct {
    const char *name, *sql;
} queries[Q_COUNT_] = {
    [Q_EVENT] = {"event", "SELECT " EVENT_COLUMNS " FROM events WHERE id = $1"},
    /* registrations proper: a held seat is not one (yet) */
    [Q_REGISTRATIONS] =
        {"registrations",
         "SELECT r.user_id, r.name, u.email, " ISO(
             "r.registered_at") " FROM registrations r JOIN users u ON u.id = r.user_id"
                                " WHERE r.event_id = $1 AND NOT r.held"
                                " ORDER BY r.registered_at, r.seat LIMIT $2 OFFSET $3"},
    [Q_UPCOMING] = {"upcoming", "SELECT " EVENT_COLUMNS " FROM events"
                                " WHERE starts_at > now() AND status = 'scheduled'"
                                " ORDER BY starts_at, location, id LIMIT $1 OFFSET $2"},
    [Q_STATS] = {"stats",
                 "SELECT capacity, registered, held, waitlisted FROM events WHERE id = $1"},
    [Q_COMMAND] = {"command", "SELECT kind, outcome, event_id, coalesce(user_id::text, ''),"
                              " coalesce(message, ''), " PROCESSED_AT ", coalesce(position, 0),"
                              " coalesce(hold_id::text, ''), " EXPIRES_AT_MS ", " WAL_NOW
                              " FROM processed_commands WHERE command_id = $1"},
    /* One row with NULLs for an event with an empty waitlist (or a page past
     * its end), none for no event. The position is the rank in the whole
     * line, numbered before the page is cut. */
    [Q_WAITLIST] = {"waitlist", "SELECT w.user_id, w.name, w.email, w.position, " JOINED_AT
                                " FROM events e LEFT JOIN LATERAL"
                                " (SELECT user_id, name, email, seq, joined_at,"
                                " row_number() OVER (ORDER BY seq) AS position"
                                " FROM waitlist WHERE event_id = e.id ORDER BY seq"
                                " LIMIT $2 OFFSET $3) w ON true"
                                " WHERE e.id = $1 ORDER BY w.seq"},
    /* a replica's: NULL on a server not in recovery */
    [Q_REPLAYED] = {"replayed", "SELECT pg_last_wal_replay_lsn()::text"},
    [Q_POSITION] = {"position", "SELECT " WAL_NOW}, /* the primary's */
};

/* A database a read thread asks, with the thread's connection to it (made
 * on first use, remade after a failure). */
typedef struct db {
    const char *dsn;
    bool replica;
    PGconn *conn;
    uint64_t replayed; /* replica: its replay position, as this connection last saw it */
} db;

/* The read a thread runs now: its deadline (monotonic ms), for query(); a
 * replica's share of the read's deadline while the read is there. */
static _Thread_local int64_t read_due_ms;

/* The statements prepared on a new connection, within the read's deadline
 * (a server that stops answering after the connection is made). */
static int prepare_all(PGconn *c, char *err, size_t errlen) {
    for (int i = 0; i < Q_COUNT_; i++) {
        PGresult *res = PQprepare(c, queries[i].name, queries[i].sql, 0, NULL);
        bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok)
            snprintf(err, errlen, "prepare %s: %s", queries[i].name, PQerrorMessage(c));
        PQclear(res);
        if (!ok)
            return -1;
    }
    return 0;
}

/* The thread's connection to `d`, made or remade as needed (within the
 * read's deadline, `left` ms); NULL, with `err` set, when the database
 * cannot be reached. A replica's is made within the deadline to the
 * millisecond: the primary is waiting for what is left. */
static PGconn *conn_for(db *d, int left, char *err, size_t errlen) {
    if (d->conn && PQstatus(d->conn) == CONNECTION_OK)
        return d->conn;
    if (d->conn)
        PQfinish(d->conn);
    d->replayed = 0; /* a new connection, perhaps to a server started anew */
    d->conn = d->replica ? ts_pg_connect_within(d->dsn, "turnstile-api", left, err, errlen)
                         : ts_pg_connect_bounded(d->dsn, "turnstile-api", left, err, errlen);
    if (d->conn) {
        ts_pg_watch w;
        ts_pg_watch_begin(&w, d->conn, (int)(read_due_ms - ts_monotonic_ms()));
        int rc = prepare_all(d->conn, err, errlen);
        if (ts_pg_watch_end(&w) || rc) {
            if (!rc)
                snprintf(err, errlen, "no answer while preparing the statements");
            PQfinish(d->conn);
            d->conn = NULL;
        }
    }
    return d->conn;
}

/* A prepared query within the read's deadline; NULL on any failure (the
 * caller answers 503, or asks the primary). A connection found closed (the
 * server restarted, or an administrator ended the session) is remade and
 * the query asked once more, time permitting: a read changes nothing, and
 * the client need not pay for an old connection. */
static PGresult *query(db *d, int q, int n, const char *const *params) {
    PGresult *res = NULL;
    PGconn *c = NULL;
    char err[512] = "";
    for (int attempt = 0; attempt < 2; attempt++) {
        PQclear(res);
        res = NULL;
        int left = (int)(read_due_ms - ts_monotonic_ms());
        if (left <= 0)
            return NULL;
        if (!(c = conn_for(d, left, err, sizeof err))) {
            ts_warn("api", "event=pg_unavailable database=%s err=\"%.*s\"",
                    d->replica ? "replica" : "primary", (int)strcspn(err, "\n"), err);
            return NULL;
        }
        if ((left = (int)(read_due_ms - ts_monotonic_ms())) <= 0)
            return NULL;
        res = ts_pg_exec_prepared_within(c, left, queries[q].name, n, params, NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_TUPLES_OK || PQstatus(c) == CONNECTION_OK)
            break;
    }
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ts_warn("api", "event=query_failed database=%s query=%s err=\"%.*s\"",
                d->replica ? "replica" : "primary", queries[q].name,
                (int)strcspn(PQerrorMessage(c), "\n"), PQerrorMessage(c));
        PQclear(res);
        return NULL;
    }
    return res;
}

/* The last error of d's connection, its first line, in buf. */
static const char *last_error(const db *d, char *buf, size_t cap) {
    const char *msg = d->conn ? PQerrorMessage(d->conn) : "";
    snprintf(buf, cap, "%.*s", (int)strcspn(msg, "\n"), msg[0] ? msg : "no connection");
    return buf;
}

/* A position a one-row query gave as text; 0 with *out, or -1 (NULL, not
 * a position). */
static int position_of(PGresult *res, int col, uint64_t *out) {
    return PQntuples(res) == 1 && !PQgetisnull(res, 0, col)
               ? ts_lsn_parse(PQgetvalue(res, 0, col), out)
               : -1;
}

static unsigned db_unavailable(json_t **body) {
    *body = ts_error_body("unavailable", "Database unavailable, retry later", NULL);
    return 503;
}

static json_t *text_or_null(PGresult *res, int row, int col) {
    return PQgetisnull(res, row, col) ? json_null() : json_string(PQgetvalue(res, row, col));
}

/* An integer column's value. PostgreSQL's text of an integer is always a
 * number, so there is no error to report. */
static long long int_at(PGresult *res, int row, int col) {
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* Out of memory while building an answer: nothing is sent (the caller's
 * respond() sends nothing for a NULL body), never a part of one. */
static unsigned no_body(json_t *partial, json_t **body) {
    json_decref(partial);
    *body = NULL;
    return 500;
}

/* A row of EVENT_COLUMNS. Held seats count against capacity: "held" says
 * how many are held besides the "registered". */
static json_t *event_json(PGresult *res, int row) {
    return json_pack("{s:s, s:s, s:o, s:s, s:s, s:I, s:I, s:I, s:s}", "id", PQgetvalue(res, row, 0),
                     "title", PQgetvalue(res, row, 1), "description", text_or_null(res, row, 2),
                     "starts_at", PQgetvalue(res, row, 3), "location", PQgetvalue(res, row, 4),
                     "capacity", (json_int_t)int_at(res, row, 5), "registered",
                     (json_int_t)int_at(res, row, 6), "held", (json_int_t)int_at(res, row, 8),
                     "status", PQgetvalue(res, row, 7));
}

static unsigned not_found(json_t **body) {
    *body = ts_error_body("event_not_found", "Event not found", NULL);
    return 404;
}

static unsigned ts_read_event(db *d, const char *event_id, bool attendees, long limit, long offset,
                              json_t **body) {
    const char *p1[] = {event_id};
    PGresult *ev = query(d, Q_EVENT, 1, p1);
    if (!ev)
        return db_unavailable(body);
    if (PQntuples(ev) == 0) {
        PQclear(ev);
        return not_found(body);
    }
    if (!attendees) { /* the public view: the event and its counts */
        json_t *event = event_json(ev, 0);
        long long capacity = int_at(ev, 0, 5), registered = int_at(ev, 0, 6);
        long long held = int_at(ev, 0, 8); /* held seats count against capacity */
        PQclear(ev);
        /* json_object_set_new fails on a NULL object or value, and frees the value */
        if (json_object_set_new(event, "total_registrations", json_integer(registered)) ||
            json_object_set_new(event, "remaining_capacity",
                                json_integer(capacity - registered - held)))
            return no_body(event, body);
        *body = event;
        return 200;
    }
    char lim[24], off[24];
    snprintf(lim, sizeof lim, "%ld", limit);
    snprintf(off, sizeof off, "%ld", offset);
    const char *p3[] = {event_id, lim, off};
    PGresult *regs = query(d, Q_REGISTRATIONS, 3, p3);
    if (!regs) {
        PQclear(ev);
        return db_unavailable(body);
    }
    json_t *list = json_array();
    bool whole = list != NULL;
    for (int i = 0; whole && i < PQntuples(regs); i++)
        whole = json_array_append_new(
                    list, json_pack("{s:s, s:s, s:s, s:s}", "id", PQgetvalue(regs, i, 0), "name",
                                    PQgetvalue(regs, i, 1), "email", PQgetvalue(regs, i, 2),
                                    "registered_at", PQgetvalue(regs, i, 3))) == 0;
    PQclear(regs);
    json_t *event = event_json(ev, 0);
    PQclear(ev);
    if (!whole) {
        json_decref(list);
        return no_body(event, body);
    }
    /* paging of large events: ?limit=&offset= over registrations, and the
     * body says which page it is */
    if (json_object_set_new(event, "registrations", list) ||
        json_object_set_new(event, "registrations_limit", json_integer(limit)) ||
        json_object_set_new(event, "registrations_offset", json_integer(offset)))
        return no_body(event, body);
    *body = event;
    return 200;
}

static unsigned ts_read_upcoming(db *d, long limit, long offset, json_t **body) {
    char lim[24], off[24];
    snprintf(lim, sizeof lim, "%ld", limit);
    snprintf(off, sizeof off, "%ld", offset);
    const char *p[] = {lim, off};
    PGresult *res = query(d, Q_UPCOMING, 2, p);
    if (!res)
        return db_unavailable(body);
    json_t *list = json_array();
    bool whole = list != NULL;
    for (int i = 0; whole && i < PQntuples(res); i++)
        whole = json_array_append_new(list, event_json(res, i)) == 0;
    PQclear(res);
    if (!whole)
        return no_body(list, body);
    *body = list;
    return 200;
}

static unsigned ts_read_stats(db *d, const char *event_id, json_t **body) {
    const char *p[] = {event_id};
    PGresult *res = query(d, Q_STATS, 1, p);
    if (!res)
        return db_unavailable(body);
    if (PQntuples(res) == 0) {
        PQclear(res);
        return not_found(body);
    }
    long long capacity = int_at(res, 0, 0);
    long long registered = int_at(res, 0, 1);
    long long held = int_at(res, 0, 2), waitlisted = int_at(res, 0, 3);
    PQclear(res);
    /* the seats taken: registrations and holds; total_registrations is the
     * registrations alone. Percentage rounded to 2 decimals, as the
     * original service did. */
    long long taken = registered + held;
    long long hundredths = (taken * 10000 + capacity / 2) / capacity;
    *body = json_pack("{s:I, s:I, s:f, s:I, s:I}", "total_registrations", (json_int_t)registered,
                      "remaining_capacity", (json_int_t)(capacity - taken), "percentage_used",
                      (double)hundredths / 100.0, "waitlisted", (json_int_t)waitlisted, "held",
                      (json_int_t)held);
    return 200;
}

static unsigned ts_read_waitlist(db *d, const char *event_id, long limit, long offset,
                                 json_t **body) {
    char lim[24], off[24];
    snprintf(lim, sizeof lim, "%ld", limit);
    snprintf(off, sizeof off, "%ld", offset);
    const char *p[] = {event_id, lim, off};
    PGresult *res = query(d, Q_WAITLIST, 3, p);
    if (!res)
        return db_unavailable(body);
    if (PQntuples(res) == 0) {
        PQclear(res);
        return not_found(body);
    }
    json_t *list = json_array();
    bool whole = list != NULL;
    for (int i = 0; whole && i < PQntuples(res); i++) {
        if (PQgetisnull(res, i, 0)) /* the event's row, without anyone waiting */
            continue;
        whole = json_array_append_new(
                    list, json_pack("{s:s, s:s, s:s, s:I, s:s}", "user_id", PQgetvalue(res, i, 0),
                                    "name", PQgetvalue(res, i, 1), "email", PQgetvalue(res, i, 2),
                                    "position", (json_int_t)int_at(res, i, 3), "joined_at",
                                    PQgetvalue(res, i, 4))) == 0;
    }
    PQclear(res);
    if (!whole)
        return no_body(list, body);
    *body = list;
    return 200;
}

/* A processed command's outcome, with *position the primary's WAL position
 * when it was read: past the command's commit, which a client that got a
 * 202 may then ask a replica for. */
static unsigned ts_read_command(db *d, const char *command_id, uint64_t *position, json_t **body) {
    const char *p[] = {command_id};
    PGresult *res = query(d, Q_COMMAND, 1, p);
    if (!res)
        return db_unavailable(body);
    if (PQntuples(res) == 0) {
        PQclear(res);
        *body = ts_error_body("command_not_found", "Command not found", NULL);
        return 404;
    }
    ts_reply reply;
    memset(&reply, 0, sizeof reply);
    strcpy(reply.command_id, command_id);
    snprintf(reply.event_id, sizeof reply.event_id, "%s", PQgetvalue(res, 0, 2));
    if (ts_outcome_parse(PQgetvalue(res, 0, 1), &reply.outcome))
        reply.outcome = TS_OUT_INVALID;
    snprintf(reply.user_id, sizeof reply.user_id, "%s", PQgetvalue(res, 0, 3));
    snprintf(reply.message, sizeof reply.message, "%s", PQgetvalue(res, 0, 4));
    reply.position = int_at(res, 0, 6);
    snprintf(reply.hold_id, sizeof reply.hold_id, "%s", PQgetvalue(res, 0, 7));
    reply.expires_at_ms = int_at(res, 0, 8);
    if (position_of(res, 9, position))
        *position = 0;
    json_t *result;
    unsigned status = ts_outcome_http(&reply, &result);
    *body = json_pack("{s:s, s:s, s:s, s:s, s:I, s:o, s:s}", "command_id", command_id, "status",
                      "done", "kind", PQgetvalue(res, 0, 0), "outcome",
                      ts_outcome_name(reply.outcome), "http_status", (json_int_t)status, "result",
                      result, "processed_at", PQgetvalue(res, 0, 5));
    PQclear(res);
    return 200;
}

/* ------------------------------------------------------------ the pool */

struct ts_readers {
    const ts_config *cfg;
    ts_metrics *metrics;
    pthread_mutex_t lock;
    pthread_cond_t work; /* a read was queued, or the pool stops */
    pthread_cond_t idle; /* a read was answered: the drain looks again */
    ts_read *head, *tail;
    int queued;  /* in the queue */
    int running; /* taken by a thread, not answered yet */
    bool draining, stopping;
    pthread_t *threads;
    int nthreads;
    /* What reads of data must see (handed between threads: sequentially
     * consistent): the highest position a write was answered with here,
     * and the writes answered without one (counted; `settled` is the count
     * the primary's position was last asked after). */
    _Atomic uint64_t highest;
    _Atomic uint64_t unknown, settled;
    /* The replica's health: while it rests (until rest_until, monotonic
     * ms) reads go to the primary without trying it. The rest's length and
     * the log of the change under replica_lock. */
    atomic_llong rest_until;
    atomic_bool resting;
    pthread_mutex_t replica_lock;
    int rest_ms;
};

/* What a read thread asks. */
typedef struct thread_dbs {
    db primary, replica;
} thread_dbs;

static void count(atomic_ulong *c) {
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static unsigned dispatch(db *d, ts_read *rd) {
    switch (rd->kind) {
    case TS_READ_EVENT:
        return ts_read_event(d, rd->id, rd->attendees, rd->limit, rd->offset, &rd->body);
    case TS_READ_UPCOMING: return ts_read_upcoming(d, rd->limit, rd->offset, &rd->body);
    case TS_READ_STATS: return ts_read_stats(d, rd->id, &rd->body);
    case TS_READ_WAITLIST: return ts_read_waitlist(d, rd->id, rd->limit, rd->offset, &rd->body);
    case TS_READ_COMMAND: return ts_read_command(d, rd->id, &rd->position, &rd->body);
    }
    return no_body(NULL, &rd->body);
}

/* The replica failed (`why`): it rests, 1 s the first time, longer after
 * each failed try (ts_replica_rest_ms), and the change is logged once. A
 * failure met while it rests already (a read that began before) makes
 * the rest no longer. */
static void replica_failed(ts_readers *rs, const char *why) {
    pthread_mutex_lock(&rs->replica_lock);
    int64_t now = ts_monotonic_ms();
    if (!atomic_load(&rs->resting)) {
        rs->rest_ms = ts_replica_rest_ms(0);
        ts_warn("api", "event=replica_unavailable action=reads_to_primary retry_ms=%d err=\"%.*s\"",
                rs->rest_ms, (int)strcspn(why, "\n"), why);
    } else if (now >= atomic_load(&rs->rest_until)) {
        rs->rest_ms = ts_replica_rest_ms(rs->rest_ms);
        ts_debug("api", "event=replica_still_unavailable retry_ms=%d err=\"%.*s\"", rs->rest_ms,
                 (int)strcspn(why, "\n"), why);
    }
    atomic_store(&rs->rest_until, now + rs->rest_ms);
    atomic_store(&rs->resting, true);
    pthread_mutex_unlock(&rs->replica_lock);
}

static void replica_served(ts_readers *rs) {
    if (!atomic_load(&rs->resting))
        return;
    pthread_mutex_lock(&rs->replica_lock);
    if (atomic_load(&rs->resting)) {
        atomic_store(&rs->resting, false);
        atomic_store(&rs->rest_until, 0);
        rs->rest_ms = 0;
        ts_info("api", "event=replica_available");
    }
    pthread_mutex_unlock(&rs->replica_lock);
}

/* Writes answered without their position came before this read: the
 * primary's position now is past them, and becomes the highest to see.
 * False when the primary could not say. */
static bool settle_unknown(ts_readers *rs, thread_dbs *t) {
    uint64_t unknown = atomic_load(&rs->unknown);
    if (unknown == atomic_load(&rs->settled))
        return true;
    PGresult *res = query(&t->primary, Q_POSITION, 0, NULL);
    uint64_t now;
    bool ok = res && position_of(res, 0, &now) == 0;
    PQclear(res);
    if (ok) {
        ts_lsn_raise(&rs->highest, now);
        ts_lsn_raise(&rs->settled, unknown); /* the count asked after, kept highest */
    }
    return ok;
}

/* Runs a read of data on the replica when it has replayed what the read
 * must see: true with *status its answer. False when the read goes to
 * the primary, the reason counted: the replica is behind, or it rests, or
 * it failed now (and rests from now). Its share of the deadline is half of
 * what is left. */
static bool on_replica(ts_readers *rs, thread_dbs *t, ts_read *rd, unsigned *status) {
    int64_t now = ts_monotonic_ms();
    bool resting = atomic_load(&rs->resting) && now < atomic_load(&rs->rest_until);
    uint64_t needed = atomic_load(&rs->highest);
    if (rd->min_position > needed)
        needed = rd->min_position;
    db *r = &t->replica;
    ts_read_target target = ts_position_target(true, resting, needed, r->conn ? r->replayed : 0);
    if (target == TS_TARGET_PRIMARY) {
        count(&rs->metrics->fallback_down);
        return false;
    }
    int64_t half = (rd->due_ms - now) / 2;
    if (half < REPLICA_MIN_MS) { /* a read queued that long: no time to try */
        count(&rs->metrics->fallback_down);
        return false;
    }
    read_due_ms = now + (half < REPLICA_CHECK_MS ? half : REPLICA_CHECK_MS);
    char err[512] = "";
    if (!conn_for(r, (int)(read_due_ms - now), err, sizeof err)) {
        replica_failed(rs, err);
        count(&rs->metrics->fallback_down);
        return false;
    }
    if (target == TS_TARGET_ASK_REPLICA || r->replayed < needed) { /* or a new connection */
        PGresult *res = query(r, Q_REPLAYED, 0, NULL);
        uint64_t replayed;
        bool ok = res && position_of(res, 0, &replayed) == 0;
        if (res && !ok)
            snprintf(err, sizeof err, "not a replica: pg_last_wal_replay_lsn() is null");
        PQclear(res);
        if (!ok) {
            replica_failed(rs, err[0] ? err : last_error(r, err, sizeof err));
            count(&rs->metrics->fallback_down);
            return false;
        }
        if (replayed > r->replayed)
            r->replayed = replayed;
    }
    if (r->replayed < needed) {
        replica_served(rs); /* it answers: behind is not down */
        count(&rs->metrics->fallback_lag);
        return false;
    }
    read_due_ms = now + half;
    *status = dispatch(r, rd);
    if (*status == 503) { /* whatever failed there, the primary has what is left */
        json_decref(rd->body);
        rd->body = NULL;
        replica_failed(rs, last_error(r, err, sizeof err));
        count(&rs->metrics->fallback_down);
        return false;
    }
    replica_served(rs);
    return true;
}

/* A read: a command's outcome on the primary; data on the replica when it
 * can serve it (on_replica), else on the primary. */
static unsigned run_read(ts_readers *rs, thread_dbs *t, ts_read *rd) {
    read_due_ms = rd->due_ms;
    if (rd->kind != TS_READ_COMMAND && t->replica.dsn[0] && settle_unknown(rs, t)) {
        unsigned status;
        bool served = on_replica(rs, t, rd, &status);
        read_due_ms = rd->due_ms;
        if (served) {
            count(&rs->metrics->reads_replica);
            return status;
        }
    }
    unsigned status = dispatch(&t->primary, rd);
    if (status == 503)
        return status;
    count(&rs->metrics->reads_primary);
    if (rd->kind == TS_READ_COMMAND && status == 200 && rd->position)
        ts_lsn_raise(&rs->highest, rd->position); /* the client may read next */
    return status;
}

static void *reader(void *arg) {
    ts_readers *rs = arg;
    thread_dbs t = {.primary = {.dsn = rs->cfg->pg_dsn},
                    .replica = {.dsn = rs->cfg->pg_read_dsn, .replica = true}};
    pthread_mutex_lock(&rs->lock);
    for (;;) {
        while (!rs->head && !rs->stopping)
            pthread_cond_wait(&rs->work, &rs->lock);
        if (!rs->head)
            break; /* stopping, and nothing left */
        ts_read *rd = rs->head;
        rs->head = rd->next;
        if (!rs->head)
            rs->tail = NULL;
        rs->queued--;
        rs->running++;
        pthread_mutex_unlock(&rs->lock);

        rd->body = NULL;
        rd->position = 0;
        /* past its deadline already (the threads were all waiting on the
         * database): 503 without asking it */
        rd->status = ts_monotonic_ms() < rd->due_ms ? run_read(rs, &t, rd) : 503;
        if (rd->status == 503) {
            if (!rd->body)
                db_unavailable(&rd->body);
            atomic_fetch_add_explicit(&rs->metrics->reads_failed, 1, memory_order_relaxed);
        }
        atomic_fetch_sub_explicit(&rs->metrics->reads_waiting, 1, memory_order_relaxed);

        MHD_resume_connection(rd->conn); /* rd is the request's: not touched after */
        pthread_mutex_lock(&rs->lock);
        rs->running--;
        pthread_cond_broadcast(&rs->idle);
    }
    pthread_mutex_unlock(&rs->lock);
    PQfinish(t.primary.conn);
    PQfinish(t.replica.conn);
    return NULL;
}

void ts_readers_written(ts_readers *rs, uint64_t position) {
    if (position)
        ts_lsn_raise(&rs->highest, position);
    else
        atomic_fetch_add(&rs->unknown, 1);
}

bool ts_readers_submit(ts_readers *rs, ts_read *rd, struct MHD_Connection *conn) {
    pthread_mutex_lock(&rs->lock);
    if (rs->draining || rs->queued >= rs->cfg->read_queue) {
        pthread_mutex_unlock(&rs->lock);
        atomic_fetch_add_explicit(&rs->metrics->reads_refused, 1, memory_order_relaxed);
        return false;
    }
    rd->conn = conn;
    rd->due_ms = ts_monotonic_ms() + rs->cfg->pg_timeout_ms;
    rd->next = NULL;
    rd->body = NULL;
    /* suspended before any thread can see it, so its resume comes after */
    MHD_suspend_connection(conn);
    if (rs->tail)
        rs->tail->next = rd;
    else
        rs->head = rd;
    rs->tail = rd;
    rs->queued++;
    atomic_fetch_add_explicit(&rs->metrics->reads_waiting, 1, memory_order_relaxed);
    pthread_cond_signal(&rs->work);
    pthread_mutex_unlock(&rs->lock);
    return true;
}

void ts_readers_drain(ts_readers *rs) {
    if (!rs)
        return;
    pthread_mutex_lock(&rs->lock);
    rs->draining = true;
    while (rs->queued || rs->running)
        pthread_cond_wait(&rs->idle, &rs->lock);
    pthread_mutex_unlock(&rs->lock);
}

void ts_readers_stop(ts_readers *rs) {
    if (!rs)
        return;
    pthread_mutex_lock(&rs->lock);
    rs->draining = rs->stopping = true;
    pthread_cond_broadcast(&rs->work);
    pthread_mutex_unlock(&rs->lock);
    for (int i = 0; i < rs->nthreads; i++)
        pthread_join(rs->threads[i], NULL);
    pthread_cond_destroy(&rs->work);
    pthread_cond_destroy(&rs->idle);
    pthread_mutex_destroy(&rs->lock);
    pthread_mutex_destroy(&rs->replica_lock);
    free(rs->threads);
    free(rs);
}

ts_readers *ts_readers_start(const ts_config *cfg, ts_metrics *metrics, char *err, size_t errlen) {
    ts_readers *rs = calloc(1, sizeof *rs);
    if (!rs || !(rs->threads = calloc((size_t)cfg->read_threads, sizeof *rs->threads))) {
        free(rs);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    rs->cfg = cfg;
    rs->metrics = metrics;
    pthread_mutex_init(&rs->lock, NULL);
    pthread_cond_init(&rs->work, NULL);
    pthread_cond_init(&rs->idle, NULL);
    pthread_mutex_init(&rs->replica_lock, NULL);
    for (; rs->nthreads < cfg->read_threads; rs->nthreads++)
        if (pthread_create(&rs->threads[rs->nthreads], NULL, reader, rs)) {
            snprintf(err, errlen, "cannot start the read threads");
            ts_readers_stop(rs);
            return NULL;
        }
    return rs;
}
