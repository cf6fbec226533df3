/* SPDX-License-Identifier: Apache-2.0 */
/* claim.c — see claim.h. One partition at a time is tried, one statement
 * each: a single query over generate_series(...) WHERE
 * pg_try_advisory_lock(...) LIMIT 1 could lock more rows than it returns
 * (PostgreSQL's manual warns of exactly that), and a lock taken and not
 * known here would keep a partition from everyone until the session ends. */
#include "claim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_limits.h"
#include "ts_pg.h"

#define KEY "('x' || left(md5($1), 8))::bit(32)::int"

/* Server-side TCP keepalives (seconds): an instance whose host vanished
 * without closing its connection frees its partition in about idle +
 * interval x count = 25 s. */
#define KEEPALIVES                                                                                 \
    "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5;"                               \
    " SET tcp_keepalives_count = 3"

struct ts_claim {
    char dsn[512];
    char topic[TS_TOPIC_MAX + 1];
    int timeout_ms;
    PGconn *conn;
    int held; /* -1: none */
};

ts_claim *ts_claim_new(const char *dsn, const char *topic, int timeout_ms) {
    ts_claim *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    snprintf(c->dsn, sizeof c->dsn, "%s", dsn);
    snprintf(c->topic, sizeof c->topic, "%s", topic);
    c->timeout_ms = timeout_ms;
    c->held = -1;
    return c;
}

int ts_claim_held(const ts_claim *c) {
    return c->held;
}

/* Closes the connection: the server frees what it held. */
static void disconnect(ts_claim *c) {
    if (c->conn)
        PQfinish(c->conn);
    c->conn = NULL;
    c->held = -1;
}

static void set_err(ts_claim *c, bool cut, char *err, size_t errlen) {
    snprintf(err, errlen, "%s",
             cut ? "no answer within TS_PG_TIMEOUT_MS"
                 : (c->conn ? PQerrorMessage(c->conn) : "not connected"));
    err[strcspn(err, "\n")] = '\0';
}

/* Runs `sql` with the topic and a partition; the first column of its one
 * row, "t" or a count, in out[cap]. 0, or -1 with `err` set and the
 * connection closed. */
static int ask(ts_claim *c, const char *sql, int partition, char *out, size_t cap, char *err,
               size_t errlen) {
    char part[16];
    snprintf(part, sizeof part, "%d", partition);
    const char *params[] = {c->topic, part};
    ts_pg_watch w;
    ts_pg_watch_begin(&w, c->conn, c->timeout_ms);
    PGresult *res = PQexecParams(c->conn, sql, 2, NULL, params, NULL, NULL, 0);
    bool cut = ts_pg_watch_end(&w);
    bool ok = !cut && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    if (ok)
        snprintf(out, cap, "%s", PQgetvalue(res, 0, 0));
    else
        set_err(c, cut, err, errlen);
    PQclear(res);
    if (!ok)
        disconnect(c);
    return ok ? 0 : -1;
}

static int connect_claimant(ts_claim *c, char *err, size_t errlen) {
    if (c->conn && PQstatus(c->conn) == CONNECTION_OK)
        return 0;
    disconnect(c);
    if (!(c->conn =
              ts_pg_connect_bounded(c->dsn, "turnstile-api-claim", c->timeout_ms, err, errlen))) {
        err[strcspn(err, "\n")] = '\0'; /* one log line */
        return -1;
    }
    ts_pg_watch w;
    ts_pg_watch_begin(&w, c->conn, c->timeout_ms);
    int rc = ts_pg_exec(c->conn, KEEPALIVES, err, errlen);
    if (ts_pg_watch_end(&w) && rc == 0) {
        set_err(c, true, err, errlen);
        rc = -1;
    }
    if (rc)
        disconnect(c);
    return rc;
}

int ts_claim_take(ts_claim *c, int first, int partitions, char *err, size_t errlen) {
    if (connect_claimant(c, err, errlen))
        return TS_CLAIM_DB_DOWN;
    for (int i = first >= 0 ? -1 : 0; i < partitions; i++) {
        int p = i < 0 ? first : i;
        if (i >= 0 && p == first)
            continue; /* asked already */
        char got[8];
        if (ask(c, "SELECT pg_try_advisory_lock(" KEY ", $2::int)", p, got, sizeof got, err,
                errlen))
            return TS_CLAIM_DB_DOWN;
        if (got[0] == 't') {
            c->held = p;
            return p;
        }
    }
    return TS_CLAIM_NONE_FREE;
}

bool ts_claim_keep(ts_claim *c, char *err, size_t errlen) {
    if (c->held < 0 || !c->conn) {
        snprintf(err, errlen, "no partition held");
        return false;
    }
    char n[16];
    if (ask(c,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND pid = pg_backend_pid() AND objsubid = 2"
            " AND classid = (" KEY ")::oid AND objid = ($2::int)::oid",
            c->held, n, sizeof n, err, errlen))
        return false;
    if (strcmp(n, "1") != 0) { /* the session is there, its lock is not: start afresh */
        snprintf(err, errlen, "the session no longer holds the lock");
        disconnect(c);
        return false;
    }
    return true;
}

void ts_claim_release(ts_claim *c) {
    disconnect(c);
}

void ts_claim_free(ts_claim *c) {
    if (!c)
        return;
    disconnect(c);
    free(c);
}
