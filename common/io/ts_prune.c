/* SPDX-License-Identifier: Apache-2.0 */
/* ts_prune.c — see ts_prune.h.
 *
 * A run, in order:
 *   cutoffs    now() minus each window, computed once: a run under a steady
 *              stream of commands still ends
 *   commands   the oldest processed commands, a chunk per statement, by
 *              processed_commands_by_age from where the last chunk ended
 *   events     under the lock, the events started before their cutoff, the
 *              oldest first, each whole (holds, waitlist, registrations,
 *              then the event) until the chunk's rows are spent: an event
 *              is never left half deleted for a batch to decide on
 *   users      users read a chunk at a time in id order; those nothing
 *              names are deleted under the lock, where the same condition
 *              is checked again on what is committed then
 * Rows that became unreferenced by the events' step go in the users' step
 * of the same run. */
#include "ts_prune.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_kafka.h"
#include "ts_pg.h"

/* A statement of a pass at most (a chunk's delete, the lock's wait): a
 * server that stops answering must not hold the pruner, or a worker's
 * stop, for good (ts_pg_watch). */
#define PRUNE_STATEMENT_MS 60000
/* The lock on consumer_offsets is waited for this long at most: while it
 * is asked for, the batches that start queue behind it. */
#define PRUNE_LOCK_WAIT_MS 1000

/* "the user is named by nothing", for users u. Subqueries, not NOT
 * EXISTS: the planner cannot turn them into joins, and so a chunk costs
 * three index probes per user however large the tables (as an anti join it
 * read the whole of registrations for every chunk once that looked
 * cheaper). */
#define UNREFERENCED                                                                               \
    "(SELECT 1 FROM registrations r WHERE r.user_id = u.id LIMIT 1) IS NULL"                       \
    " AND (SELECT 1 FROM holds h WHERE h.user_id = u.id LIMIT 1) IS NULL"                          \
    " AND (SELECT 1 FROM waitlist w WHERE w.user_id = u.id LIMIT 1) IS NULL"

enum stmt {
    P_CUTOFFS,
    P_TRY_LOCK,
    P_UNLOCK,
    P_COMMANDS,
    P_NEXT_EVENT,
    P_EVENT_HOLDS,
    P_EVENT_WAITLIST,
    P_EVENT_REGISTRATIONS,
    P_EVENT,
    P_USER_CANDIDATES,
    P_USERS,
    P_COUNT,
    P_COUNT_
};

static const struct {
    const char *name, *sql;
} stmts[P_COUNT_] = {
    /* '-infinity': events are kept */
    [P_CUTOFFS] = {"prune_cutoffs",
                   "SELECT now() - make_interval(hours => $1::int),"
                   " CASE WHEN $2::int > 0 THEN now() - make_interval(days => $2::int)"
                   " ELSE '-infinity'::timestamptz END"},
    [P_TRY_LOCK] = {"prune_try_lock", "SELECT pg_try_advisory_lock($1::bigint)"},
    [P_UNLOCK] = {"prune_unlock", "SELECT pg_advisory_unlock($1::bigint)"},
    /* $1 cutoff, $2 where the last chunk ended, $3 rows: the count and the
     * newest processed_at deleted (ties with it may remain: >= $2) */
    [P_COMMANDS] = {"prune_commands",
                    "WITH d AS (DELETE FROM processed_commands WHERE command_id = ANY (ARRAY("
                    " SELECT command_id FROM processed_commands WHERE processed_at >= $2"
                    " AND processed_at < $1 ORDER BY processed_at LIMIT $3))"
                    " RETURNING processed_at)"
                    " SELECT count(*), coalesce(max(processed_at), $2::timestamptz) FROM d"},
    [P_NEXT_EVENT] = {"prune_next_event",
                      "SELECT id FROM events WHERE starts_at < $1 ORDER BY starts_at LIMIT 1"},
    [P_EVENT_HOLDS] = {"prune_event_holds", "DELETE FROM holds WHERE event_id = $1"},
    [P_EVENT_WAITLIST] = {"prune_event_waitlist", "DELETE FROM waitlist WHERE event_id = $1"},
    [P_EVENT_REGISTRATIONS] = {"prune_event_registrations",
                               "DELETE FROM registrations WHERE event_id = $1"},
    [P_EVENT] = {"prune_event", "DELETE FROM events WHERE id = $1"},
    /* $1 the last id of the chunk before, $2 rows: how many were read, the
     * last of them, and those of them nothing names */
    [P_USER_CANDIDATES] = {"prune_user_candidates",
                           "WITH scan AS (SELECT id FROM users WHERE id > $1 ORDER BY id"
                           " LIMIT $2)"
                           " SELECT (SELECT count(*) FROM scan),"
                           " (SELECT id FROM scan ORDER BY id DESC LIMIT 1),"
                           " (SELECT coalesce(array_agg(u.id), '{}') FROM scan u"
                           " WHERE " UNREFERENCED ")"},
    [P_USERS] = {"prune_users",
                 "DELETE FROM users u WHERE u.id = ANY ($1::uuid[]) AND " UNREFERENCED},
    /* $1, $2 the cutoffs; users: those only the expired events name */
    [P_COUNT] = {"prune_count",
                 "WITH old AS (SELECT id FROM events WHERE starts_at < $2)"
                 " SELECT (SELECT count(*) FROM processed_commands WHERE processed_at < $1),"
                 " (SELECT count(*) FROM old),"
                 " (SELECT count(*) FROM registrations WHERE event_id IN (SELECT id FROM old)),"
                 " (SELECT count(*) FROM holds WHERE event_id IN (SELECT id FROM old)),"
                 " (SELECT count(*) FROM waitlist WHERE event_id IN (SELECT id FROM old)),"
                 " (SELECT count(*) FROM users u WHERE NOT EXISTS (SELECT 1 FROM registrations r"
                 " WHERE r.user_id = u.id AND r.event_id NOT IN (SELECT id FROM old))"
                 " AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.user_id = u.id"
                 " AND h.event_id NOT IN (SELECT id FROM old))"
                 " AND NOT EXISTS (SELECT 1 FROM waitlist w WHERE w.user_id = u.id"
                 " AND w.event_id NOT IN (SELECT id FROM old)))"},
};

/* ------------------------------------------------------------ the window */

ts_prune_window ts_prune_window_verdict(int retain_h, const char *topic, long long retention_ms,
                                        long long segment_ms, char *msg, size_t msglen) {
    long long window_ms = (long long)retain_h * 3600000LL;
    msg[0] = '\0';
    if (retention_ms < 0) {
        snprintf(msg, msglen,
                 "%s keeps its messages forever (retention.ms=-1): a command may be delivered"
                 " again at any age, so no processed command may be forgotten",
                 topic);
        return TS_WINDOW_UNSAFE;
    }
    if (window_ms <= retention_ms) {
        snprintf(msg, msglen,
                 "TS_RETAIN_COMMANDS_H=%d (%lld ms) is not longer than the retention of %s"
                 " (retention.ms=%lld): a command still in the topic could be applied twice",
                 retain_h, window_ms, topic, retention_ms);
        return TS_WINDOW_UNSAFE;
    }
    if (segment_ms > 0 && window_ms <= retention_ms + segment_ms)
        snprintf(msg, msglen,
                 "TS_RETAIN_COMMANDS_H=%d (%lld ms) is not longer than retention.ms=%lld plus"
                 " segment.ms=%lld of %s: a message may stay up to that long (the broker"
                 " deletes whole segments), so a consumer group reset to the earliest offset"
                 " could meet commands already forgotten",
                 retain_h, window_ms, retention_ms, segment_ms, topic);
    return TS_WINDOW_SAFE;
}

/* A topic's numeric configuration entry; -1 with `err` set if unknown. */
static int topic_ms(rd_kafka_t *rk, const char *topic, const char *name, int timeout_ms,
                    long long *out, char *err, size_t errlen) {
    char value[64];
    if (ts_kafka_topic_config(rk, topic, name, timeout_ms, value, sizeof value, err, errlen))
        return -1;
    char *end;
    errno = 0;
    *out = strtoll(value, &end, 10);
    if (errno || end == value || *end) {
        snprintf(err, errlen, "topic %s: %s=%s is not a number", topic, name, value);
        return -1;
    }
    return 0;
}

ts_prune_window ts_prune_check_window(rd_kafka_t *rk, const ts_config *cfg, int timeout_ms,
                                      char *msg, size_t msglen) {
    char err[256];
    long long retention_ms, segment_ms;
    if (topic_ms(rk, cfg->topic_commands, "retention.ms", timeout_ms, &retention_ms, err,
                 sizeof err)) {
        snprintf(msg, msglen,
                 "cannot learn the retention of %s (%s): trusting TS_RETAIN_COMMANDS_H=%d",
                 cfg->topic_commands, err, cfg->retain_commands_h);
        return TS_WINDOW_UNKNOWN;
    }
    if (topic_ms(rk, cfg->topic_commands, "segment.ms", timeout_ms, &segment_ms, err, sizeof err))
        segment_ms = -1;
    return ts_prune_window_verdict(cfg->retain_commands_h, cfg->topic_commands, retention_ms,
                                   segment_ms, msg, msglen);
}

/* ------------------------------------------------------------ statements */

static void set_err(char *err, size_t errlen, const char *what, PGconn *conn) {
    const char *msg = PQerrorMessage(conn);
    snprintf(err, errlen, "%s: %.*s", what, (int)strcspn(msg, "\n"), msg);
}

/* Prepares the statements on `conn`, once: a connection that has them
 * already (42P05) is fine. */
static int prepare(PGconn *conn, char *err, size_t errlen) {
    for (int i = 0; i < P_COUNT_; i++) {
        PGresult *res = PQprepare(conn, stmts[i].name, stmts[i].sql, 0, NULL);
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        bool ok = PQresultStatus(res) == PGRES_COMMAND_OK || (state && !strcmp(state, "42P05"));
        PQclear(res);
        if (!ok) {
            set_err(err, errlen, stmts[i].name, conn);
            return -1;
        }
    }
    return 0;
}

/* Runs a prepared statement with text parameters; NULL (err set) on
 * failure. The caller PQclear()s. */
static PGresult *run(PGconn *conn, enum stmt s, int n, const char *const *params, char *err,
                     size_t errlen) {
    PGresult *res = ts_pg_exec_prepared_within(conn, PRUNE_STATEMENT_MS, stmts[s].name, n, params,
                                               NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    set_err(err, errlen, stmts[s].name, conn);
    PQclear(res);
    return NULL;
}

/* A DELETE's row count, or -1. */
static long long run_delete(PGconn *conn, enum stmt s, const char *id, char *err, size_t errlen) {
    const char *params[] = {id};
    PGresult *res = run(conn, s, 1, params, err, errlen);
    if (!res)
        return -1;
    long long n = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return n;
}

static int exec(PGconn *conn, const char *sql, char *err, size_t errlen) {
    ts_pg_watch w;
    ts_pg_watch_begin(&w, conn, PRUNE_STATEMENT_MS);
    PGresult *res = PQexec(conn, sql);
    ts_pg_watch_end(&w);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        set_err(err, errlen, sql, conn);
    PQclear(res);
    return ok ? 0 : -1;
}

/* BEGIN, and the lock that keeps the worker's batches out (ts_prune.h). */
static int begin_locked(PGconn *conn, char *err, size_t errlen) {
    char wait[64];
    snprintf(wait, sizeof wait, "SET LOCAL lock_timeout = %d", PRUNE_LOCK_WAIT_MS);
    if (exec(conn, "BEGIN", err, errlen))
        return -1;
    if (exec(conn, wait, err, errlen) ||
        exec(conn, "LOCK TABLE consumer_offsets IN SHARE MODE", err, errlen)) {
        char ignored[8];
        exec(conn, "ROLLBACK", ignored, sizeof ignored);
        return -1;
    }
    return 0;
}

static int end_locked(PGconn *conn, bool commit, char *err, size_t errlen) {
    if (commit)
        return exec(conn, "COMMIT", err, errlen);
    char ignored[8];
    exec(conn, "ROLLBACK", ignored, sizeof ignored);
    return -1;
}

typedef struct cutoffs {
    char commands[64], events[64]; /* timestamptz as the session writes them */
} cutoffs;

static int get_cutoffs(PGconn *conn, const ts_config *cfg, cutoffs *c, char *err, size_t errlen) {
    char h[16], d[16];
    snprintf(h, sizeof h, "%d", cfg->retain_commands_h);
    snprintf(d, sizeof d, "%d", cfg->retain_events_days);
    const char *params[] = {h, d};
    PGresult *res = run(conn, P_CUTOFFS, 2, params, err, errlen);
    if (!res)
        return -1;
    snprintf(c->commands, sizeof c->commands, "%s", PQgetvalue(res, 0, 0));
    snprintf(c->events, sizeof c->events, "%s", PQgetvalue(res, 0, 1));
    PQclear(res);
    return 0;
}

static bool stopping(ts_prune_stop_fn stop, void *arg) {
    return stop && stop(arg);
}

/* ------------------------------------------------------------ the steps */

/* -1 failed, 0 done, 1 stopped */
static int prune_commands(PGconn *conn, const ts_config *cfg, const char *cutoff,
                          ts_prune_stop_fn stop, void *arg, ts_prune_counts *done, char *err,
                          size_t errlen) {
    char from[64] = "-infinity", rows[16];
    snprintf(rows, sizeof rows, "%d", cfg->prune_chunk_rows);
    for (;;) {
        if (stopping(stop, arg))
            return 1;
        const char *params[] = {cutoff, from, rows};
        PGresult *res = run(conn, P_COMMANDS, 3, params, err, errlen);
        if (!res)
            return -1;
        long long n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        snprintf(from, sizeof from, "%s", PQgetvalue(res, 0, 1));
        PQclear(res);
        done->processed_commands += n;
        if (n < cfg->prune_chunk_rows)
            return 0;
    }
}

/* One transaction: whole events, the oldest first, until about a chunk's
 * rows are gone. Sets *more when expired events remain. */
static int prune_events_chunk(PGconn *conn, const ts_config *cfg, const char *cutoff, bool *more,
                              ts_prune_counts *done, char *err, size_t errlen) {
    if (begin_locked(conn, err, errlen))
        return -1;
    ts_prune_counts chunk = {0};
    long long budget = cfg->prune_chunk_rows;
    *more = false;
    while (budget > 0) {
        const char *params[] = {cutoff};
        PGresult *res = run(conn, P_NEXT_EVENT, 1, params, err, errlen);
        if (!res)
            return end_locked(conn, false, err, errlen);
        if (PQntuples(res) == 0) {
            PQclear(res);
            break;
        }
        char id[64];
        snprintf(id, sizeof id, "%s", PQgetvalue(res, 0, 0));
        PQclear(res);
        long long h = run_delete(conn, P_EVENT_HOLDS, id, err, errlen);
        long long w = h < 0 ? -1 : run_delete(conn, P_EVENT_WAITLIST, id, err, errlen);
        long long r = w < 0 ? -1 : run_delete(conn, P_EVENT_REGISTRATIONS, id, err, errlen);
        long long e = r < 0 ? -1 : run_delete(conn, P_EVENT, id, err, errlen);
        if (e < 0)
            return end_locked(conn, false, err, errlen);
        chunk.holds += h;
        chunk.waitlist += w;
        chunk.registrations += r;
        chunk.events += e;
        budget -= h + w + r + e;
        *more = true; /* perhaps: the next chunk asks */
    }
    if (end_locked(conn, true, err, errlen))
        return -1;
    done->events += chunk.events;
    done->registrations += chunk.registrations;
    done->holds += chunk.holds;
    done->waitlist += chunk.waitlist;
    if (budget > 0)
        *more = false; /* it ran out of events, not of rows */
    return 0;
}

static int prune_events(PGconn *conn, const ts_config *cfg, const char *cutoff,
                        ts_prune_stop_fn stop, void *arg, ts_prune_counts *done, char *err,
                        size_t errlen) {
    if (cfg->retain_events_days == 0)
        return 0;
    bool more = true;
    while (more) {
        if (stopping(stop, arg))
            return 1;
        if (prune_events_chunk(conn, cfg, cutoff, &more, done, err, errlen))
            return -1;
    }
    return 0;
}

/* Deletes those of `candidates` (a uuid[] literal) nothing names now. */
static int prune_users_chunk(PGconn *conn, const char *candidates, ts_prune_counts *done, char *err,
                             size_t errlen) {
    if (begin_locked(conn, err, errlen))
        return -1;
    const char *params[] = {candidates};
    PGresult *res = run(conn, P_USERS, 1, params, err, errlen);
    if (!res)
        return end_locked(conn, false, err, errlen);
    long long n = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    if (end_locked(conn, true, err, errlen))
        return -1;
    done->users += n;
    return 0;
}

/* The users, a chunk at a time in id order: read without the lock, and
 * only a chunk with candidates is checked again and deleted under it. */
static int prune_users(PGconn *conn, const ts_config *cfg, ts_prune_stop_fn stop, void *arg,
                       ts_prune_counts *done, char *err, size_t errlen) {
    char after[64] = "00000000-0000-0000-0000-000000000000", rows[16];
    snprintf(rows, sizeof rows, "%d", cfg->prune_chunk_rows);
    for (;;) {
        if (stopping(stop, arg))
            return 1;
        const char *params[] = {after, rows};
        PGresult *res = run(conn, P_USER_CANDIDATES, 2, params, err, errlen);
        if (!res)
            return -1;
        long long scanned = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        if (!PQgetisnull(res, 0, 1))
            snprintf(after, sizeof after, "%s", PQgetvalue(res, 0, 1));
        int rc = 0;
        if (strcmp(PQgetvalue(res, 0, 2), "{}") != 0)
            rc = prune_users_chunk(conn, PQgetvalue(res, 0, 2), done, err, errlen);
        PQclear(res);
        if (rc)
            return -1;
        if (scanned < cfg->prune_chunk_rows)
            return 0;
    }
}

/* ------------------------------------------------------------ a run */

ts_prune_status ts_prune_run(PGconn *conn, const ts_config *cfg, ts_prune_stop_fn stop, void *arg,
                             ts_prune_counts *done, char *err, size_t errlen) {
    if (prepare(conn, err, errlen))
        return TS_PRUNE_FAILED;
    char key[24];
    snprintf(key, sizeof key, "%d", TS_PRUNE_LOCK_KEY);
    const char *params[] = {key};
    PGresult *res = run(conn, P_TRY_LOCK, 1, params, err, errlen);
    if (!res)
        return TS_PRUNE_FAILED;
    bool locked = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (!locked)
        return TS_PRUNE_BUSY;
    cutoffs c;
    int rc = get_cutoffs(conn, cfg, &c, err, errlen);
    if (rc == 0)
        rc = prune_commands(conn, cfg, c.commands, stop, arg, done, err, errlen);
    if (rc == 0)
        rc = prune_events(conn, cfg, c.events, stop, arg, done, err, errlen);
    if (rc == 0)
        rc = prune_users(conn, cfg, stop, arg, done, err, errlen);
    char ignored[8];
    PQclear(run(conn, P_UNLOCK, 1, params, ignored, sizeof ignored)); /* or the session ends */
    return rc < 0 ? TS_PRUNE_FAILED : rc > 0 ? TS_PRUNE_STOPPED : TS_PRUNE_DONE;
}

int ts_prune_count(PGconn *conn, const ts_config *cfg, ts_prune_counts *would, char *err,
                   size_t errlen) {
    cutoffs c;
    if (prepare(conn, err, errlen) || get_cutoffs(conn, cfg, &c, err, errlen))
        return -1;
    const char *params[] = {c.commands, c.events};
    PGresult *res = run(conn, P_COUNT, 2, params, err, errlen);
    if (!res)
        return -1;
    long long *fields[] = {&would->processed_commands, &would->events,
                           &would->registrations,      &would->holds,
                           &would->waitlist,           &would->users};
    for (int i = 0; i < 6; i++)
        *fields[i] = strtoll(PQgetvalue(res, 0, i), NULL, 10);
    PQclear(res);
    return 0;
}
