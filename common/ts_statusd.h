/* ts_statusd.h — a tiny HTTP server for a service that has no other:
 * GET /healthz answers {"status":"ok"}, GET /metrics the Prometheus text a
 * callback renders. libmicrohttpd, one internal thread. */
#ifndef TS_STATUSD_H
#define TS_STATUSD_H

#include <stddef.h>
#include <stdio.h>

/* Returns the metrics text (caller frees), or NULL. Called from the
 * server's thread: it must be thread-safe. */
typedef char *(*ts_metrics_fn)(void *arg);

typedef struct ts_statusd ts_statusd;

/* Prints one metric in the Prometheus text format: its HELP and TYPE
 * lines, then "name value". */
void ts_metric_print(FILE *out, const char *name, const char *help, const char *type,
                     unsigned long value);

ts_statusd *ts_statusd_start(int port, ts_metrics_fn metrics, void *arg, char *err,
                             size_t errlen);
void ts_statusd_stop(ts_statusd *s);

#endif
