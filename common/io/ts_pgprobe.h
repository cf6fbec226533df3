/* SPDX-License-Identifier: Apache-2.0 */
/* ts_pgprobe.h — whether PostgreSQL answers, known without asking it on
 * the caller's thread: for /readyz, which must never wait on the database
 * (an HTTP thread blocked on a hung server is the outage the deadlines are
 * there to prevent). A thread of its own asks, on a connection of its own,
 * `SELECT 1` every interval, within a deadline (ts_pg_connect_bounded,
 * ts_pg_watch), and keeps the answer; a change is logged. Thread-safe. */
#ifndef TS_PGPROBE_H
#define TS_PGPROBE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ts_pgprobe ts_pgprobe;

/* Starts asking `dsn` (the connection named `application_name`) every
 * interval_ms, each time within timeout_ms (connecting included). NULL
 * with `err` set when the thread cannot start (not when the database does
 * not answer: that is what it reports). */
ts_pgprobe *ts_pgprobe_start(const char *dsn, const char *application_name, int timeout_ms,
                             int interval_ms, char *err, size_t errlen);

/* True when the last question was answered; false before the first. */
bool ts_pgprobe_ok(ts_pgprobe *p);

/* Stops (waiting for a question under way, TS_PG_TIMEOUT_MS at most),
 * closes the connection, frees. NULL is a no-op. */
void ts_pgprobe_stop(ts_pgprobe *p);

#endif
