/* SPDX-License-Identifier: Apache-2.0 */
/* ts_pg.c — see ts_pg.h. */
#include "ts_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_embedded.h"
#include "ts_log.h"

/* Any constant works; it only has to be the same in every process. */
#define MIGRATION_LOCK_KEY 0x7475726e /* "turn" */

static void set_err(char *err, size_t errlen, const char *what, PGconn *conn) {
    const char *msg = conn ? PQerrorMessage(conn) : "";
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        n--;
    snprintf(err, errlen, "%s: %.*s", what, (int)n, msg);
}

/* Server notices ("relation already exists, skipping") are debug lines. */
static void on_notice(void *arg, const char *message) {
    (void)arg;
    ts_debug("pg", "event=notice msg=\"%.*s\"", (int)strcspn(message, "\n"), message);
}

/* Connects with the dsn expanded first, then the other parameters, which
 * win over the dsn's own. */
static PGconn *connect_with(const char *const *keys, const char *const *values, char *err,
                            size_t errlen) {
    PGconn *conn = PQconnectdbParams(keys, values, 1 /* dbname is a full dsn */);
    if (!conn) {
        snprintf(err, errlen, "connect: out of memory");
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        set_err(err, errlen, "connect", conn);
        PQfinish(conn);
        return NULL;
    }
    PQsetErrorVerbosity(conn, PQERRORS_DEFAULT);
    PQsetNoticeProcessor(conn, on_notice, NULL);
    return conn;
}

PGconn *ts_pg_connect(const char *dsn, const char *application_name, char *err, size_t errlen) {
    const char *keys[] = {"dbname", "application_name", NULL};
    const char *values[] = {dsn, application_name, NULL};
    return connect_with(keys, values, err, errlen);
}

PGconn *ts_pg_connect_bounded(const char *dsn, const char *application_name, int timeout_s,
                              char *err, size_t errlen) {
    char timeout[16], options[64];
    snprintf(timeout, sizeof timeout, "%d", timeout_s);
    snprintf(options, sizeof options, "-c statement_timeout=%d", timeout_s * 1000);
    const char *keys[] = {"dbname", "application_name", "connect_timeout", "options", NULL};
    const char *values[] = {dsn, application_name, timeout, options, NULL};
    return connect_with(keys, values, err, errlen);
}

int ts_pg_exec(PGconn *conn, const char *sql, char *err, size_t errlen) {
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        set_err(err, errlen, "exec", conn);
    PQclear(res);
    return ok ? 0 : -1;
}

/* "001_initial.sql" -> 1; -1 if the name does not start with a number. */
static int migration_version(const char *name) {
    char *end;
    long v = strtol(name, &end, 10);
    return end == name || *end != '_' || v <= 0 ? -1 : (int)v;
}

static int is_applied(PGconn *conn, int version, int *applied, char *err, size_t errlen) {
    char vbuf[16];
    snprintf(vbuf, sizeof vbuf, "%d", version);
    const char *params[1] = {vbuf};
    PGresult *res = PQexecParams(conn, "SELECT 1 FROM schema_migrations WHERE version = $1", 1,
                                 NULL, params, NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        set_err(err, errlen, "schema_migrations", conn);
        rc = -1;
    } else {
        *applied = PQntuples(res) > 0;
    }
    PQclear(res);
    return rc;
}

static int apply_one(PGconn *conn, const ts_embedded *m, int version, char *err, size_t errlen) {
    char vbuf[16];
    snprintf(vbuf, sizeof vbuf, "%d", version);
    const char *params[2] = {vbuf, m->name};
    if (ts_pg_exec(conn, "BEGIN", err, errlen))
        return -1;
    PGresult *res = PQexec(conn, m->data);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
    PQclear(res);
    if (!ok) {
        char what[128];
        snprintf(what, sizeof what, "migration %s", m->name);
        set_err(err, errlen, what, conn);
        ts_pg_exec(conn, "ROLLBACK", err + strlen(err), 0);
        return -1;
    }
    res = PQexecParams(conn, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2,
                       NULL, params, NULL, NULL, 0);
    ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (!ok) {
        set_err(err, errlen, "schema_migrations", conn);
        ts_pg_exec(conn, "ROLLBACK", err + strlen(err), 0);
        return -1;
    }
    return ts_pg_exec(conn, "COMMIT", err, errlen);
}

int ts_pg_migrate(PGconn *conn, int *applied_count, char *err, size_t errlen) {
    int count = 0, rc = -1;
    char lock_sql[96];
    if (ts_pg_exec(conn,
                   "CREATE TABLE IF NOT EXISTS schema_migrations ("
                   " version integer PRIMARY KEY,"
                   " name text NOT NULL,"
                   " applied_at timestamptz NOT NULL DEFAULT now())",
                   err, errlen))
        return -1;
    snprintf(lock_sql, sizeof lock_sql, "SELECT pg_advisory_lock(%d)", MIGRATION_LOCK_KEY);
    if (ts_pg_exec(conn, lock_sql, err, errlen))
        return -1;
    for (const ts_embedded *m = ts_embedded_migrations; m->name; m++) {
        int version = migration_version(m->name), applied = 0;
        if (version < 0) {
            snprintf(err, errlen, "migration %s: name must start with NNN_", m->name);
            goto unlock;
        }
        if (is_applied(conn, version, &applied, err, errlen))
            goto unlock;
        if (applied)
            continue;
        if (apply_one(conn, m, version, err, errlen))
            goto unlock;
        ts_info("pg", "event=migrated version=%d name=%s", version, m->name);
        count++;
    }
    rc = 0;
unlock:
    snprintf(lock_sql, sizeof lock_sql, "SELECT pg_advisory_unlock(%d)", MIGRATION_LOCK_KEY);
    char ignored[8];
    ts_pg_exec(conn, lock_sql, ignored, sizeof ignored);
    if (applied_count)
        *applied_count = count;
    return rc;
}
