/* SPDX-License-Identifier: Apache-2.0 */
/* ts_pg.h — PostgreSQL helpers shared by the ingress and the worker:
 * connecting, migrating, and small wrappers that turn libpq results into
 * error codes. A PGconn is used by one thread at a time. */
#ifndef TS_PG_H
#define TS_PG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Connects with `dsn`, naming the connection `application_name` (shown in
 * pg_stat_activity; NULL leaves the dsn's). Returns the connection, or NULL
 * with `err` set. */
PGconn *ts_pg_connect(const char *dsn, const char *application_name, char *err, size_t errlen);

/* ts_pg_connect with deadlines: the connection attempt gives up after
 * `timeout_ms` (rounded up to seconds, 2 at least: libpq's unit), and on
 * the server every statement after, and a transaction left idle, as long
 * (statement_timeout, idle_in_transaction_session_timeout, which replace
 * any `options` of the dsn). For connections that must never wait long on
 * a slow database; a stopped one needs ts_pg_watch too. */
PGconn *ts_pg_connect_bounded(const char *dsn, const char *application_name, int timeout_ms,
                              char *err, size_t errlen);

/* ts_pg_connect_bounded, the connection made within `timeout_ms` to the
 * millisecond (libpq's non-blocking steps, polled against that deadline):
 * for a server that may be tried on the way to another, whose attempts
 * must leave the other most of a request's deadline. */
PGconn *ts_pg_connect_within(const char *dsn, const char *application_name, int timeout_ms,
                             char *err, size_t errlen);

/* PQexecPrepared in a watched section of `timeout_ms` (ts_pg_watch). */
PGresult *ts_pg_exec_prepared_within(PGconn *conn, int timeout_ms, const char *name, int n,
                                     const char *const *values, const int *lengths,
                                     const int *formats, int result_format);

/* Deadlines on libpq's synchronous calls.
 *
 * statement_timeout is the server's own clock: a server that is stopped
 * (SIGSTOP, a frozen host) or a path that drops packets without a reset
 * never answers, the kernel acknowledges what libpq sends, and a
 * synchronous call waits for good. A watched section gives the calls made
 * on `conn` between ts_pg_watch_begin() and ts_pg_watch_end() a deadline:
 * past it, a watchdog thread (one per process, started on first use) shuts
 * the connection's socket down, so the call blocked in it returns an error
 * and the connection is CONNECTION_BAD: the caller's "database
 * unavailable" path runs, never a silent success. (The same method as the
 * ingress's request guard.) The socket is only shut down, never closed, and
 * only between begin and end: end before PQfinish(). One section per
 * thread at a time; `w` lives on the caller's stack. */
typedef struct ts_pg_watch {
    int fd;
    int64_t due_ms; /* monotonic */
    bool cut;
    struct ts_pg_watch *prev, *next;
} ts_pg_watch;

void ts_pg_watch_begin(ts_pg_watch *w, PGconn *conn, int timeout_ms);
/* Ends the section; true when its deadline cut the connection. */
bool ts_pg_watch_end(ts_pg_watch *w);
/* Connections cut at their deadline in this process so far. */
unsigned long ts_pg_watch_cuts(void);

/* Applies the compiled-in migrations (sql/NNN_name.sql) not yet recorded in
 * schema_migrations, each in its own transaction, under an advisory lock so
 * that services starting together migrate once. Sets *applied to the count
 * applied when not NULL. Returns 0, or -1 with `err` set. */
int ts_pg_migrate(PGconn *conn, int *applied, char *err, size_t errlen);

/* Runs a statement without parameters; 0 on success, or -1 with `err` set. */
int ts_pg_exec(PGconn *conn, const char *sql, char *err, size_t errlen);

#endif
