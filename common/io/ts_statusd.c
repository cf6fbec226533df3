/* SPDX-License-Identifier: Apache-2.0 */
/* ts_statusd.c — see ts_statusd.h. */
#include "ts_statusd.h"

#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ts_statusd {
    struct MHD_Daemon *daemon;
    ts_metrics_fn metrics;
    ts_health_fn health;
    ts_ready_fn ready;
    void *arg;
};

enum MHD_Result ts_statusd_respond(struct MHD_Connection *conn, unsigned status, char *text,
                                   const char *type, const char *header, const char *value) {
    if (!text)
        return MHD_NO;
    /* On failure libmicrohttpd has not taken the buffer: it is still ours. */
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    enum MHD_Result r = MHD_NO;
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type) == MHD_YES &&
        (!header || MHD_add_response_header(resp, header, value) == MHD_YES))
        r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp); /* frees text, now or once sent */
    return r;
}

enum MHD_Result ts_statusd_respond_metrics(struct MHD_Connection *conn, char *text) {
    return ts_statusd_respond(conn, MHD_HTTP_OK, text, "text/plain; version=0.0.4", NULL, NULL);
}

enum MHD_Result ts_statusd_respond_ready(struct MHD_Connection *conn, const char *const *names,
                                         size_t n) {
    json_t *body = json_pack("{s:s}", "status", n ? "not_ready" : "ready");
    json_t *list = json_array();
    bool ok = body && list;
    for (size_t i = 0; ok && i < n; i++)
        ok = json_array_append_new(list, json_string(names[i])) == 0;
    if (ok && n)
        ok = json_object_set(body, "not_ready", list) == 0;
    char *text = ok ? json_dumps(body, JSON_COMPACT) : NULL; /* NULL: the connection closes */
    json_decref(list);
    json_decref(body);
    return ts_statusd_respond(conn, n ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_OK, text,
                              "application/json", NULL, NULL);
}

/* A fixed JSON answer of the status server. */
static enum MHD_Result respond_json(struct MHD_Connection *conn, unsigned status,
                                    const char *json) {
    return ts_statusd_respond(conn, status, strdup(json), "application/json", NULL, NULL);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    ts_statusd *s = cls;
    if (strcmp(method, "GET") != 0)
        return respond_json(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                            "{\"error\":\"Method not allowed\",\"code\":\"method_not_allowed\"}");
    if (strcmp(url, "/healthz") == 0) {
        const char *failing = s->health(s->arg);
        if (!failing)
            return respond_json(conn, MHD_HTTP_OK, "{\"status\":\"ok\"}");
        char body[128];
        snprintf(body, sizeof body, "{\"status\":\"failing\",\"reason\":\"%s\"}", failing);
        return respond_json(conn, MHD_HTTP_SERVICE_UNAVAILABLE, body);
    }
    if (strcmp(url, "/readyz") == 0) {
        const char *names[TS_READY_MAX];
        size_t n = s->ready(s->arg, names, TS_READY_MAX);
        return ts_statusd_respond_ready(conn, names, n);
    }
    if (strcmp(url, "/metrics") == 0)
        return ts_statusd_respond_metrics(conn, s->metrics(s->arg));
    return respond_json(conn, MHD_HTTP_NOT_FOUND,
                        "{\"error\":\"Not found\",\"code\":\"not_found\"}");
}

ts_statusd *ts_statusd_start(int port, ts_metrics_fn metrics, ts_health_fn health,
                             ts_ready_fn ready, void *arg, char *err, size_t errlen) {
    ts_statusd *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->metrics = metrics;
    s->health = health;
    s->ready = ready;
    s->arg = arg;
    s->daemon =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, (uint16_t)port, NULL,
                         NULL, on_request, s, MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    if (!s->daemon) {
        snprintf(err, errlen, "cannot listen on port %d", port);
        free(s);
        return NULL;
    }
    return s;
}

void ts_statusd_stop(ts_statusd *s) {
    if (!s)
        return;
    MHD_stop_daemon(s->daemon);
    free(s);
}
