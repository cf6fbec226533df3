/* SPDX-License-Identifier: Apache-2.0 */
/* routes.c — one table maps (method, pattern) to a route id; a ":name"
 * segment of a pattern captures one path segment (the first into param,
 * the second into param2). */
#include "routes.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *method;
    const char *pattern;
    ts_route_id id;
} table[] = {
    {"GET", "/healthz", TS_ROUTE_HEALTHZ},
    {"GET", "/readyz", TS_ROUTE_READYZ},
    {"GET", "/metrics", TS_ROUTE_METRICS},
    {"POST", "/api/events", TS_ROUTE_CREATE_EVENT},
    {"GET", "/api/events", TS_ROUTE_LIST_EVENTS},
    {"GET", "/api/events/:id", TS_ROUTE_GET_EVENT},
    {"PATCH", "/api/events/:id", TS_ROUTE_UPDATE_EVENT},
    {"DELETE", "/api/events/:id", TS_ROUTE_CANCEL_EVENT},
    {"POST", "/api/events/:id/register", TS_ROUTE_REGISTER},
    {"POST", "/api/events/:id/cancel", TS_ROUTE_CANCEL},
    {"GET", "/api/events/:id/stats", TS_ROUTE_STATS},
    {"GET", "/api/events/:id/waitlist", TS_ROUTE_WAITLIST},
    {"POST", "/api/events/:id/holds", TS_ROUTE_PLACE_HOLD},
    {"POST", "/api/events/:id/holds/:hold_id/confirm", TS_ROUTE_CONFIRM_HOLD},
    {"DELETE", "/api/events/:id/holds/:hold_id", TS_ROUTE_RELEASE_HOLD},
    {"GET", "/api/commands/:id", TS_ROUTE_GET_COMMAND},
    {"GET", "/openapi.json", TS_ROUTE_OPENAPI},
};

/* Whether path matches pattern; the ":" segments go to params[0..1]. */
static bool match(const char *pattern, const char *path, size_t path_len, char params[2][64]) {
    const char *p = pattern, *s = path, *end = path + path_len;
    int n_params = 0;
    while (*p && s < end) {
        if (p[0] == ':') {
            const char *seg_end = memchr(s, '/', (size_t)(end - s));
            if (!seg_end)
                seg_end = end;
            size_t n = (size_t)(seg_end - s);
            if (n == 0 || n_params == 2)
                return false;
            snprintf(params[n_params++], 64, "%.*s", (int)(n < 64 ? n : 63), s);
            s = seg_end;
            while (*p && *p != '/')
                p++;
        } else if (*p++ != *s++) {
            return false;
        }
    }
    return *p == '\0' && s == end;
}

ts_route_match ts_route(const char *method, const char *path) {
    ts_route_match m = {0};
    size_t len = strlen(path);
    if (len > 1 && path[len - 1] == '/')
        len--;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        char params[2][64] = {"", ""};
        if (!match(table[i].pattern, path, len, params))
            continue;
        if (strcmp(table[i].method, method) == 0) {
            m.route = table[i].id;
            memcpy(m.param, params[0], sizeof m.param);
            memcpy(m.param2, params[1], sizeof m.param2);
            m.allow[0] = '\0';
            return m;
        }
        if (!strstr(m.allow, table[i].method)) {
            if (m.allow[0])
                strncat(m.allow, ", ", sizeof m.allow - strlen(m.allow) - 1);
            strncat(m.allow, table[i].method, sizeof m.allow - strlen(m.allow) - 1);
        }
    }
    return m;
}

size_t ts_route_count(void) {
    return sizeof table / sizeof table[0];
}

void ts_route_at(size_t i, const char **method, const char **pattern, ts_route_id *id) {
    *method = table[i].method;
    *pattern = table[i].pattern;
    *id = table[i].id;
}

bool ts_route_is_write(ts_route_id route) {
    switch (route) {
    case TS_ROUTE_CREATE_EVENT:
    case TS_ROUTE_REGISTER:
    case TS_ROUTE_CANCEL:
    case TS_ROUTE_UPDATE_EVENT:
    case TS_ROUTE_CANCEL_EVENT:
    case TS_ROUTE_PLACE_HOLD:
    case TS_ROUTE_CONFIRM_HOLD:
    case TS_ROUTE_RELEASE_HOLD: return true;
    default: return false;
    }
}

bool ts_route_has_body(ts_route_id route) {
    switch (route) {
    case TS_ROUTE_CREATE_EVENT:
    case TS_ROUTE_REGISTER:
    case TS_ROUTE_CANCEL:
    case TS_ROUTE_UPDATE_EVENT:
    case TS_ROUTE_PLACE_HOLD: return true;
    default: return false;
    }
}
