/* SPDX-License-Identifier: Apache-2.0 */
/* reads.c — see reads.h. Times are returned as ISO 8601 in UTC with
 * milliseconds, formatted by PostgreSQL. */
#include "reads.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outcome.h"
#include "ts_codec.h"
#include "ts_log.h"
#include "ts_pg.h"

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

/* The calling thread's connection, made or remade as needed; NULL when the
 * database cannot be reached. */
static PGconn *conn_for_thread(const ts_config *cfg) {
    if (pthread_once(&conn_once, make_key) != 0 || !conn_key_made)
        return NULL;
    PGconn *c = pthread_getspecific(conn_key);
    if (c && PQstatus(c) == CONNECTION_OK)
        return c;
    if (c)
        PQfinish(c);
    char err[512];
    c = ts_pg_connect(cfg->pg_dsn, "turnstile-api", err, sizeof err);
    for (int i = 0; c && i < Q_COUNT_; i++) {
        PGresult *res = PQprepare(c, queries[i].name, queries[i].sql, 0, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            snprintf(err, sizeof err, "prepare %s: %s", queries[i].name, PQerrorMessage(c));
            PQfinish(c);
            c = NULL;
        }
        PQclear(res);
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

static PGresult *query(const ts_config *cfg, int q, int n, const char *const *params) {
    PGconn *c = conn_for_thread(cfg);
    if (!c)
        return NULL;
    PGresult *res = PQexecPrepared(c, queries[q].name, n, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ts_warn("api", "event=query_failed query=%s err=\"%s\"", queries[q].name,
                PQerrorMessage(c));
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

unsigned ts_read_event(const ts_config *cfg, const char *event_id, bool attendees, long limit,
                       long offset, json_t **body) {
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

unsigned ts_read_upcoming(const ts_config *cfg, long limit, long offset, json_t **body) {
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

unsigned ts_read_stats(const ts_config *cfg, const char *event_id, json_t **body) {
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

unsigned ts_read_waitlist(const ts_config *cfg, const char *event_id, long limit, long offset,
                          json_t **body) {
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

unsigned ts_read_command(const ts_config *cfg, const char *command_id, json_t **body) {
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
