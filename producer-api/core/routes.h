/* SPDX-License-Identifier: Apache-2.0 */
/* routes.h — the table of the API's routes and the matching of a request
 * line against it. Pure; thread-safe. */
#ifndef TS_ROUTES_H
#define TS_ROUTES_H

#include <stdbool.h>
#include <stddef.h>

/* The numbers are part of the ids derived from Idempotency-Keys (http.c):
 * a new route goes at the end, never between. */
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
    TS_ROUTE_UPDATE_EVENT, /* PATCH /api/events/:id */
    TS_ROUTE_CANCEL_EVENT, /* DELETE /api/events/:id */
    TS_ROUTE_WAITLIST,     /* GET /api/events/:id/waitlist */
    TS_ROUTE_PLACE_HOLD,   /* POST /api/events/:id/holds */
    TS_ROUTE_CONFIRM_HOLD, /* POST /api/events/:id/holds/:hold_id/confirm */
    TS_ROUTE_RELEASE_HOLD, /* DELETE /api/events/:id/holds/:hold_id */
    TS_ROUTE_OPENAPI,      /* GET /openapi.json */
    TS_ROUTE_READYZ,       /* GET /readyz */
} ts_route_id;

typedef struct ts_route_match {
    ts_route_id route; /* TS_ROUTE_NONE when nothing matched */
    char param[64];    /* the first ":" segment (the event's or command's id), if any */
    char param2[64];   /* the second (a hold's id), if any */
    char allow[64];    /* path known but method not: the methods it takes */
} ts_route_match;

/* Matches `method` and `path` (without query string; one trailing slash is
 * ignored). Returns the match; route NONE with allow[] empty is a 404, with
 * allow[] set a 405. */
ts_route_match ts_route(const char *method, const char *path);

/* The i-th route of the table (0 <= i < ts_route_count()): its method and
 * its pattern, whose ":name" segments each match one path segment. For
 * whoever lists the routes (the OpenAPI document's tests). */
size_t ts_route_count(void);
void ts_route_at(size_t i, const char **method, const char **pattern, ts_route_id *id);

/* True for the writes: the routes answered by a command to the worker
 * (rate-limited, Idempotency-Key, 202). */
bool ts_route_is_write(ts_route_id route);

/* True for the writes whose request carries a JSON body that is read; the
 * other routes' bodies are dropped unread. */
bool ts_route_has_body(ts_route_id route);

#endif
