/* SPDX-License-Identifier: Apache-2.0 */
/* routes.h — the table of the API's routes and the matching of a request
 * line against it. Pure; thread-safe. */
#ifndef TS_ROUTES_H
#define TS_ROUTES_H

#include <stdbool.h>
#include <stddef.h>

typedef enum ts_route_id {
    TS_ROUTE_NONE = 0,
    TS_ROUTE_HEALTHZ,
    TS_ROUTE_METRICS,
    TS_ROUTE_CREATE_EVENT,
    TS_ROUTE_LIST_EVENTS,
    TS_ROUTE_GET_EVENT,
    TS_ROUTE_REGISTER,
    TS_ROUTE_CANCEL,
    TS_ROUTE_STATS,
    TS_ROUTE_GET_COMMAND,
} ts_route_id;

typedef struct ts_route_match {
    ts_route_id route; /* TS_ROUTE_NONE when nothing matched */
    char param[64];    /* the ":id" segment, when the route has one */
    char allow[64];    /* path known but method not: the methods it takes */
} ts_route_match;

/* Matches `method` and `path` (without query string; one trailing slash is
 * ignored). Returns the match; route NONE with allow[] empty is a 404, with
 * allow[] set a 405. */
ts_route_match ts_route(const char *method, const char *path);

/* True for routes whose request carries a JSON body (the writes). */
bool ts_route_has_body(ts_route_id route);

#endif
