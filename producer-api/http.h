/* SPDX-License-Identifier: Apache-2.0 */
/* http.h — the HTTP ingress: libmicrohttpd with an internal epoll thread
 * pool, a table of routes, and JSON responses. */
#ifndef TS_HTTP_H
#define TS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "ts_config.h"

typedef struct ts_http ts_http;

/* Starts listening on cfg->http_bind, port cfg->http_port, with the
 * replies' thread, the keys' thread and the request guard. NULL with
 * `err` set on failure. */
ts_http *ts_http_start(const ts_config *cfg, char *err, size_t errlen);

/* Stops accepting, waits for the requests in flight, frees. */
void ts_http_stop(ts_http *h);

/* True once the ingress cannot go on (a fatal Kafka error): /healthz
 * answers 503, and main() stops and exits non-zero. */
bool ts_http_failed(ts_http *h);

#endif
