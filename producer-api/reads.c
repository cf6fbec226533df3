/* SPDX-License-Identifier: Apache-2.0 */
/* reads.c — see reads.h. Times are returned as ISO 8601 in UTC with
 * milliseconds, formatted by PostgreSQL. */
#include "reads.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outcome.h"
#include "ts_codec.h"
#include "ts_log.h"
#include "ts_pg.h"
#include "ts_time.h"

#define ISO(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

enum { Q_EVENT, Q_REGISTRATIONS, Q_UPCOMING, Q_STATS, Q_COMMAND, Q_WAITLIST, Q_COUNT_ };

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
                              " coalesce(hold_id::text, ''), " EXPIRES_AT_MS
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
};

static pthread_key_t conn_key;
static pthread_once_t conn_once = PTHREAD_ONCE_INIT;
static void close_conn(void *c) {
    PQfinish(c);
}
static bool conn_key_made; /* written once, in pthread_once */
static void make_key(void) {
    conn_key_made = pthread_key_create(&conn_key, close_conn) == 0;
}

/* The read a thread runs now: its deadline (monotonic ms), for query(). */
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

/* The calling thread's connection, made or remade as needed (within the
 * read's deadline, `left` ms); NULL when the database cannot be reached. */
static PGconn *conn_for_thread(const ts_config *cfg, int left) {
    if (pthread_once(&conn_once, make_key) != 0 || !conn_key_made)
        return NULL;
    PGconn *c = pthread_getspecific(conn_key);
    if (c && PQstatus(c) == CONNECTION_OK)
        return c;
    if (c)
        PQfinish(c);
    char err[512];
    c = ts_pg_connect_bounded(cfg->pg_dsn, "turnstile-api", left, err, sizeof err);
    if (c) {
        ts_pg_watch w;
        ts_pg_watch_begin(&w, c, (int)(read_due_ms - ts_monotonic_ms()));
        int rc = prepare_all(c, err, sizeof err);
        if (ts_pg_watch_end(&w) || rc) {
            PQfinish(c);
            c = NULL;
        }
    }
    if (!c)
        ts_warn("api", "event=pg_unavailable err=\"%s\"", err);
    if (pthread_setspecific(conn_key, c) != 0) {
        if (c)
            PQfinish(c);
        return NULL;
    }
    return c;
}

/* A prepared query within the read's deadline; NULL on any failure (the
 * caller answers 503). A connection found closed (the server restarted, or
 * an administrator ended the session) is remade and the query asked once
 * more, time permitting: a read changes nothing, and the client need not
 * pay for an old connection. */
static PGresult *query(const ts_config *cfg, int q, int n, const char *const *params) {
    PGresult *res = NULL;
    PGconn *c = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        PQclear(res);
        res = NULL;
        int left = (int)(read_due_ms - ts_monotonic_ms());
        if (left <= 0 || !(c = conn_for_thread(cfg, left)))
            return NULL;
        if ((left = (int)(read_due_ms - ts_monotonic_ms())) <= 0)
            return NULL;
        res = ts_pg_exec_prepared_within(c, left, queries[q].name, n, params, NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_TUPLES_OK || PQstatus(c) == CONNECTION_OK)
            break;
    }
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ts_warn("api", "event=query_failed query=%s err=\"%.*s\"", queries[q].name,
                (int)strcspn(PQerrorMessage(c), "\n"), PQerrorMessage(c));
        PQclear(res);
        return NULL;
    }
    return res;
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

static unsigned ts_read_event(const ts_config *cfg, const char *event_id, bool attendees,
                              long limit, long offset, json_t **body) {
    const char *p1[] = {event_id};
    PGresult *ev = query(cfg, Q_EVENT, 1, p1);
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
    PGresult *regs = query(cfg, Q_REGISTRATIONS, 3, p3);
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

static unsigned ts_read_upcoming(const ts_config *cfg, long limit, long offset, json_t **body) {
    char lim[24], off[24];
    snprintf(lim, sizeof lim, "%ld", limit);
    snprintf(off, sizeof off, "%ld", offset);
    const char *p[] = {lim, off};
    PGresult *res = query(cfg, Q_UPCOMING, 2, p);
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

static unsigned ts_read_stats(const ts_config *cfg, const char *event_id, json_t **body) {
    const char *p[] = {event_id};
    PGresult *res = query(cfg, Q_STATS, 1, p);
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

static unsigned ts_read_waitlist(const ts_config *cfg, const char *event_id, long limit,
                                 long offset, json_t **body) {
    char lim[24], off[24];
    snprintf(lim, sizeof lim, "%ld", limit);
    snprintf(off, sizeof off, "%ld", offset);
    const char *p[] = {event_id, lim, off};
    PGresult *res = query(cfg, Q_WAITLIST, 3, p);
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

static unsigned ts_read_command(const ts_config *cfg, const char *command_id, json_t **body) {
    const char *p[] = {command_id};
    PGresult *res = query(cfg, Q_COMMAND, 1, p);
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
};

static unsigned run_read(const ts_config *cfg, ts_read *rd) {
    switch (rd->kind) {
    case TS_READ_EVENT:
        return ts_read_event(cfg, rd->id, rd->attendees, rd->limit, rd->offset, &rd->body);
    case TS_READ_UPCOMING: return ts_read_upcoming(cfg, rd->limit, rd->offset, &rd->body);
    case TS_READ_STATS: return ts_read_stats(cfg, rd->id, &rd->body);
    case TS_READ_WAITLIST: return ts_read_waitlist(cfg, rd->id, rd->limit, rd->offset, &rd->body);
    case TS_READ_COMMAND: return ts_read_command(cfg, rd->id, &rd->body);
    }
    return no_body(NULL, &rd->body);
}

static void *reader(void *arg) {
    ts_readers *rs = arg;
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
        read_due_ms = rd->due_ms;
        /* past its deadline already (the threads were all waiting on the
         * database): 503 without asking it */
        rd->status = ts_monotonic_ms() < rd->due_ms ? run_read(rs->cfg, rd) : 503;
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
    return NULL;
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
    for (; rs->nthreads < cfg->read_threads; rs->nthreads++)
        if (pthread_create(&rs->threads[rs->nthreads], NULL, reader, rs)) {
            snprintf(err, errlen, "cannot start the read threads");
            ts_readers_stop(rs);
            return NULL;
        }
    return rs;
}
