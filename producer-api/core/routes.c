/* SPDX-License-Identifier: Apache-2.0 */
/* routes.c — one table maps (method, pattern) to a route id; ":id" in a
 * pattern captures one path segment. */
#include "routes.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *method;
    const char *pattern;
    ts_route_id id;
} table[] = {
    {"GET", "/healthz", TS_ROUTE_HEALTHZ},
    {"GET", "/metrics", TS_ROUTE_METRICS},
    {"POST", "/api/events", TS_ROUTE_CREATE_EVENT},
    {"GET", "/api/events", TS_ROUTE_LIST_EVENTS},
    {"GET", "/api/events/:id", TS_ROUTE_GET_EVENT},
    {"POST", "/api/events/:id/register", TS_ROUTE_REGISTER},
    {"POST", "/api/events/:id/cancel", TS_ROUTE_CANCEL},
    {"GET", "/api/events/:id/stats", TS_ROUTE_STATS},
    {"GET", "/api/commands/:id", TS_ROUTE_GET_COMMAND},
};

/* Whether path matches pattern; the ":id" segment goes to param. */
static bool match(const char *pattern, const char *path, size_t path_len, char *param, size_t cap) {
    const char *p = pattern, *s = path, *end = path + path_len;
    while (*p && s < end) {
        if (p[0] == ':') {
            const char *seg_end = memchr(s, '/', (size_t)(end - s));
            if (!seg_end)
                seg_end = end;
            size_t n = (size_t)(seg_end - s);
            if (n == 0)
                return false;
            snprintf(param, cap, "%.*s", (int)(n < cap ? n : cap - 1), s);
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
        char param[sizeof m.param] = "";
        if (!match(table[i].pattern, path, len, param, sizeof param))
            continue;
        if (strcmp(table[i].method, method) == 0) {
            m.route = table[i].id;
            memcpy(m.param, param, sizeof param);
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

bool ts_route_has_body(ts_route_id route) {
    return route == TS_ROUTE_CREATE_EVENT || route == TS_ROUTE_REGISTER || route == TS_ROUTE_CANCEL;
}
