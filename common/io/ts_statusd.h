/* SPDX-License-Identifier: Apache-2.0 */
/* ts_statusd.h — the HTTP side of watching both services (the metrics
 * themselves are ts_prometheus.h's):
 *   - an answer queued on a libmicrohttpd connection, allocation checked
 *     (the API answers every request with it, /metrics included);
 *   - a tiny HTTP server for a service that has no other (the worker):
 *     GET /healthz answers {"status":"ok"}, GET /metrics the text a
 *     callback renders; libmicrohttpd, one internal thread.
 * Thread-safe. */
#ifndef TS_STATUSD_H
#define TS_STATUSD_H

#include <microhttpd.h>
#include <stddef.h>

#include "ts_prometheus.h"

/* Returns the metrics text (caller frees), or NULL. Called from the
 * server's thread: it must be thread-safe. */
typedef char *(*ts_metrics_fn)(void *arg);

/* Why the service cannot go on (a short word, static), or NULL while it
 * can: /healthz answers 503 {"status":"failing","reason":...} then. Called
 * from the server's thread: it must be thread-safe. */
typedef const char *(*ts_health_fn)(void *arg);

typedef struct ts_statusd ts_statusd;

/* Queues `text` as the answer on `conn`: `status`, Content-Type `type`,
 * and one more header when `header` is not NULL. Takes `text` (from
 * malloc) and frees it in every case. Returns MHD_NO, and libmicrohttpd
 * closes the connection, when `text` is NULL (the caller's allocation
 * failed) or the response cannot be made. Call from an access handler. */
enum MHD_Result ts_statusd_respond(struct MHD_Connection *conn, unsigned status, char *text,
                                   const char *type, const char *header, const char *value);

/* ts_statusd_respond() of a Prometheus page: 200, text/plain; version=0.0.4.
 * The /metrics of both services. */
enum MHD_Result ts_statusd_respond_metrics(struct MHD_Connection *conn, char *text);

/* Listens on `port` (every interface) and serves /healthz, asking
 * `health(arg)`, and /metrics, calling `metrics(arg)` for each scrape. NULL
 * with `err` set on failure. ts_statusd_stop() stops and frees it; NULL is
 * a no-op. */
ts_statusd *ts_statusd_start(int port, ts_metrics_fn metrics, ts_health_fn health, void *arg,
                             char *err, size_t errlen);
void ts_statusd_stop(ts_statusd *s);

#endif
