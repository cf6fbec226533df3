/* SPDX-License-Identifier: Apache-2.0 */
/* ts_pgprobe.c — see ts_pgprobe.h. The job of a ts_periodic thread. */
#include "ts_pgprobe.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_log.h"
#include "ts_periodic.h"
#include "ts_pg.h"

struct ts_pgprobe {
    char dsn[512];
    char application_name[64];
    int timeout_ms, interval_ms;
    PGconn *conn;   /* the thread's */
    atomic_bool ok; /* handed to the HTTP threads: seq_cst */
    bool said;      /* a state was logged */
    ts_periodic *thread;
};

/* One question: connected (again) if need be, then SELECT 1, both within
 * the deadline. 0, or -1 with `err` set (the connection dropped). */
static int ask(ts_pgprobe *p, char *err, size_t errlen) {
    if (p->conn && PQstatus(p->conn) != CONNECTION_OK) {
        PQfinish(p->conn);
        p->conn = NULL;
    }
    if (!p->conn &&
        !(p->conn = ts_pg_connect_bounded(p->dsn, p->application_name, p->timeout_ms, err, errlen)))
        return -1;
    ts_pg_watch w;
    ts_pg_watch_begin(&w, p->conn, p->timeout_ms);
    PGresult *res = PQexec(p->conn, "SELECT 1");
    bool cut = ts_pg_watch_end(&w);
    int rc = PQresultStatus(res) == PGRES_TUPLES_OK && !cut ? 0 : -1;
    PQclear(res);
    if (rc) {
        snprintf(err, errlen, "%s",
                 cut ? "no answer within TS_PG_TIMEOUT_MS" : PQerrorMessage(p->conn));
        err[strcspn(err, "\n")] = '\0';
        PQfinish(p->conn);
        p->conn = NULL;
    }
    return rc;
}

static long run(ts_periodic *t, void *arg) {
    (void)t;
    ts_pgprobe *p = arg;
    char err[512] = "";
    bool ok = ask(p, err, sizeof err) == 0;
    bool was = atomic_exchange(&p->ok, ok);
    if (ok && (!was || !p->said))
        ts_info("ready", "event=database_answers");
    else if (!ok && (was || !p->said))
        ts_warn("ready", "event=database_not_answering err=\"%s\"", err);
    p->said = true;
    return p->interval_ms;
}

ts_pgprobe *ts_pgprobe_start(const char *dsn, const char *application_name, int timeout_ms,
                             int interval_ms, char *err, size_t errlen) {
    ts_pgprobe *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(p->dsn, sizeof p->dsn, "%s", dsn);
    snprintf(p->application_name, sizeof p->application_name, "%s", application_name);
    p->timeout_ms = timeout_ms;
    p->interval_ms = interval_ms;
    if (!(p->thread = ts_periodic_start(run, p, err, errlen))) {
        free(p);
        return NULL;
    }
    return p;
}

bool ts_pgprobe_ok(ts_pgprobe *p) {
    return atomic_load(&p->ok);
}

void ts_pgprobe_stop(ts_pgprobe *p) {
    if (!p)
        return;
    ts_periodic_stop(p->thread);
    if (p->conn)
        PQfinish(p->conn);
    free(p);
}
