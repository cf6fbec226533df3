/* SPDX-License-Identifier: Apache-2.0 */
/* ts_pg.h — PostgreSQL helpers shared by the ingress and the worker:
 * connecting, migrating, and small wrappers that turn libpq results into
 * error codes. A PGconn is used by one thread at a time. */
#ifndef TS_PG_H
#define TS_PG_H

#include <libpq-fe.h>
#include <stddef.h>

/* Connects with `dsn`, naming the connection `application_name` (shown in
 * pg_stat_activity; NULL leaves the dsn's). Returns the connection, or NULL
 * with `err` set. */
PGconn *ts_pg_connect(const char *dsn, const char *application_name, char *err, size_t errlen);

/* ts_pg_connect with deadlines: the connection attempt gives up after
 * `timeout_s` seconds and every statement after as many (statement_timeout,
 * which replaces any `options` of the dsn). For connections that must never
 * wait long on a hung database. */
PGconn *ts_pg_connect_bounded(const char *dsn, const char *application_name, int timeout_s,
                              char *err, size_t errlen);

/* Applies the compiled-in migrations (sql/NNN_name.sql) not yet recorded in
 * schema_migrations, each in its own transaction, under an advisory lock so
 * that services starting together migrate once. Sets *applied to the count
 * applied when not NULL. Returns 0, or -1 with `err` set. */
int ts_pg_migrate(PGconn *conn, int *applied, char *err, size_t errlen);

/* Runs a statement without parameters; 0 on success, or -1 with `err` set. */
int ts_pg_exec(PGconn *conn, const char *sql, char *err, size_t errlen);

#endif
