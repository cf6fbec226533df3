/* SPDX-License-Identifier: Apache-2.0 */
/* ts_statusd.h — the HTTP side of watching both services (the metrics
 * themselves are ts_prometheus.h's):
 *   - an answer queued on a libmicrohttpd connection, allocation checked
 *     (the API answers every request with it, /metrics included);
 *   - the answer of /readyz, the same in both services;
 *   - a tiny HTTP server for a service that has no other (the worker):
 *     GET /healthz answers {"status":"ok"}, GET /readyz what a callback
 *     says is not ready, GET /metrics the text a callback renders;
 *     libmicrohttpd, one internal thread.
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

/* What is not ready for traffic: up to `max` short names (static, e.g.
 * "database", "draining") in out[], and how many; 0 when ready. Called
 * from the server's thread: it must be thread-safe and never wait on a
 * backend (read what a probe found). */
typedef size_t (*ts_ready_fn)(void *arg, const char **out, size_t max);

/* The most names a ts_ready_fn is asked for. */
#define TS_READY_MAX 8

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

/* The answer of /readyz: 200 {"status":"ready"} when n is 0, else 503
 * {"status":"not_ready","not_ready":[names...]}. */
enum MHD_Result ts_statusd_respond_ready(struct MHD_Connection *conn, const char *const *names,
                                         size_t n);

/* Listens on `port` (every interface) and serves /healthz, asking
 * `health(arg)`, /readyz, asking `ready(arg)`, and /metrics, calling
 * `metrics(arg)` for each scrape. NULL with `err` set on failure.
 * ts_statusd_stop() stops and frees it; NULL is a no-op. */
ts_statusd *ts_statusd_start(int port, ts_metrics_fn metrics, ts_health_fn health,
                             ts_ready_fn ready, void *arg, char *err, size_t errlen);
void ts_statusd_stop(ts_statusd *s);

#endif
