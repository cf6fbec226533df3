/* SPDX-License-Identifier: Apache-2.0 */
/* guard.h — the request deadline libmicrohttpd lacks.
 *
 * libmicrohttpd closes a connection after TS_IDLE_TIMEOUT_S without a byte,
 * but a client that trickles one byte now and then (slowloris) keeps its
 * connection, and its memory, for good. The guard gives every request a
 * deadline from its first byte (or from the end of the request before it,
 * on a kept-alive connection) and shuts down the socket of a request still
 * unanswered at TS_REQUEST_TIMEOUT_S; libmicrohttpd then sees the
 * connection end and frees it. A suspended request waiting for its reply is
 * answered (reply or 202) long before that. Thread-safe. */
#ifndef TS_GUARD_H
#define TS_GUARD_H

#include <microhttpd.h>

typedef struct ts_guard ts_guard;

/* Starts the thread that enforces `request_timeout_s`. NULL on failure. */
ts_guard *ts_guard_start(int request_timeout_s);

/* Stops the thread and frees. Call once libmicrohttpd is stopped (its
 * connections' entries are freed here). NULL is a no-op. */
void ts_guard_stop(ts_guard *g);

/* For MHD_OPTION_NOTIFY_CONNECTION, with the guard as its argument. */
void ts_guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                     enum MHD_ConnectionNotificationCode toe);

/* A request of `conn` was answered: the next one gets a fresh deadline. */
void ts_guard_request_done(ts_guard *g, struct MHD_Connection *conn);

/* Connections cut at their deadline so far (for /metrics). */
unsigned long ts_guard_cut_total(ts_guard *g);

#endif
