/* SPDX-License-Identifier: Apache-2.0 */
/* ts_pg.c — see ts_pg.h. */
#include "ts_pg.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "ts_embedded.h"
#include "ts_log.h"
#include "ts_time.h"

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

/* A connection attempt's end: the connection, set up as every one is, or
 * NULL with `err` (the connection freed). */
static PGconn *connected(PGconn *conn, char *err, size_t errlen) {
    if (PQstatus(conn) != CONNECTION_OK) {
        set_err(err, errlen, "connect", conn);
        PQfinish(conn);
        return NULL;
    }
    PQsetErrorVerbosity(conn, PQERRORS_DEFAULT);
    PQsetNoticeProcessor(conn, on_notice, NULL);
    return conn;
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
    return connected(conn, err, errlen);
}

PGconn *ts_pg_connect(const char *dsn, const char *application_name, char *err, size_t errlen) {
    const char *keys[] = {"dbname", "application_name", NULL};
    const char *values[] = {dsn, application_name, NULL};
    return connect_with(keys, values, err, errlen);
}

PGconn *ts_pg_connect_bounded(const char *dsn, const char *application_name, int timeout_ms,
                              char *err, size_t errlen) {
    /* libpq's connect_timeout is in whole seconds, and 1 counts as 2.
     * idle_in_transaction_session_timeout: a session whose client is gone
     * without the server knowing (a call cut by ts_pg_watch on a half-open
     * path, a client frozen mid-transaction) must not keep its
     * transaction, and its row locks, until TCP keepalive notices hours
     * later: the next worker to own the partition would wait on them. */
    char timeout[16], options[128];
    snprintf(timeout, sizeof timeout, "%d", timeout_ms < 2000 ? 2 : (timeout_ms + 999) / 1000);
    snprintf(options, sizeof options,
             "-c statement_timeout=%d -c idle_in_transaction_session_timeout=%d", timeout_ms,
             timeout_ms);
    const char *keys[] = {"dbname", "application_name", "connect_timeout", "options", NULL};
    const char *values[] = {dsn, application_name, timeout, options, NULL};
    return connect_with(keys, values, err, errlen);
}

PGconn *ts_pg_connect_within(const char *dsn, const char *application_name, int timeout_ms,
                             char *err, size_t errlen) {
    char options[128];
    snprintf(options, sizeof options,
             "-c statement_timeout=%d -c idle_in_transaction_session_timeout=%d", timeout_ms,
             timeout_ms);
    const char *keys[] = {"dbname", "application_name", "options", NULL};
    const char *values[] = {dsn, application_name, options, NULL};
    int64_t due = ts_monotonic_ms() + timeout_ms;
    PGconn *conn = PQconnectStartParams(keys, values, 1 /* dbname is a full dsn */);
    if (!conn) {
        snprintf(err, errlen, "connect: out of memory");
        return NULL;
    }
    /* libpq's own steps, each waiting on the socket only as long as the
     * deadline leaves; its connect_timeout (whole seconds, 2 at least)
     * plays no part in this mode */
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (PQstatus(conn) != CONNECTION_BAD && st != PGRES_POLLING_OK &&
           st != PGRES_POLLING_FAILED) {
        int64_t left = due - ts_monotonic_ms();
        struct pollfd p = {.fd = PQsocket(conn),
                           .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT};
        int n = left > 0 ? poll(&p, 1, (int)left) : 0;
        if (n == 0) {
            snprintf(err, errlen, "connect: no answer within %d ms", timeout_ms);
            PQfinish(conn);
            return NULL;
        }
        if (n < 0 && errno != EINTR) {
            snprintf(err, errlen, "connect: poll: %m"); /* thread-safe in glibc */
            PQfinish(conn);
            return NULL;
        }
        if (n > 0)
            st = PQconnectPoll(conn);
    }
    return connected(conn, err, errlen);
}

PGresult *ts_pg_exec_prepared_within(PGconn *conn, int timeout_ms, const char *name, int n,
                                     const char *const *values, const int *lengths,
                                     const int *formats, int result_format) {
    ts_pg_watch w;
    ts_pg_watch_begin(&w, conn, timeout_ms);
    PGresult *res = PQexecPrepared(conn, name, n, values, lengths, formats, result_format);
    ts_pg_watch_end(&w);
    return res;
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

/* ------------------------------------------------------------ deadlines */

#define WATCH_TICK_MS 50 /* how late past its deadline a section may be cut */

static struct {
    pthread_mutex_t lock;
    pthread_cond_t armed; /* a section began: the watchdog has work */
    ts_pg_watch *head;
    bool started;
    atomic_ulong cuts;
} watch = {.lock = PTHREAD_MUTEX_INITIALIZER, .armed = PTHREAD_COND_INITIALIZER};

/* The watchdog: sleeps while nothing is watched, else looks every tick.
 * Detached: it lives as long as the process. */
static void *watchdog(void *arg) {
    (void)arg;
    pthread_mutex_lock(&watch.lock);
    for (;;) {
        while (!watch.head)
            pthread_cond_wait(&watch.armed, &watch.lock);
        int64_t now = ts_monotonic_ms();
        for (ts_pg_watch *w = watch.head; w; w = w->next)
            if (!w->cut && now >= w->due_ms) {
                w->cut = true;
                (void)shutdown(w->fd, SHUT_RDWR);
                atomic_fetch_add_explicit(&watch.cuts, 1, memory_order_relaxed);
            }
        pthread_mutex_unlock(&watch.lock);
        struct timespec tick = {0, WATCH_TICK_MS * 1000000L};
        (void)nanosleep(&tick, NULL);
        pthread_mutex_lock(&watch.lock);
    }
    return NULL;
}

void ts_pg_watch_begin(ts_pg_watch *w, PGconn *conn, int timeout_ms) {
    w->fd = PQsocket(conn);
    w->due_ms = ts_monotonic_ms() + timeout_ms;
    w->cut = false;
    w->prev = NULL;
    pthread_mutex_lock(&watch.lock);
    if (!watch.started) {
        pthread_t t;
        pthread_attr_t attr;
        if (pthread_attr_init(&attr) == 0) {
            watch.started = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0 &&
                            pthread_create(&t, &attr, watchdog, NULL) == 0;
            pthread_attr_destroy(&attr);
        }
        if (!watch.started) /* no deadline then, as without the watchdog */
            ts_warn("pg", "event=watchdog_failed");
    }
    if (w->fd >= 0) {
        w->next = watch.head;
        if (watch.head)
            watch.head->prev = w;
        watch.head = w;
        pthread_cond_signal(&watch.armed);
    }
    pthread_mutex_unlock(&watch.lock);
}

bool ts_pg_watch_end(ts_pg_watch *w) {
    if (w->fd < 0)
        return false;
    pthread_mutex_lock(&watch.lock);
    if (w->prev)
        w->prev->next = w->next;
    else
        watch.head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    bool cut = w->cut;
    pthread_mutex_unlock(&watch.lock);
    if (cut)
        ts_warn("pg", "event=deadline_cut fd=%d", w->fd);
    return cut;
}

unsigned long ts_pg_watch_cuts(void) {
    return atomic_load_explicit(&watch.cuts, memory_order_relaxed);
}
