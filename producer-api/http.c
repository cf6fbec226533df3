/* http.c — see http.h.
 *
 * Requests are dispatched through one table of routes (method, path
 * pattern, handler). An unknown path is a JSON 404; a known path with
 * another method is a JSON 405 with an Allow header. Every error body is
 * {"error": "<message>", "code": "<machine_code>"}. */
#include "http.h"

#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_log.h"

struct ts_http {
    const ts_config *cfg;
    struct MHD_Daemon *daemon;
};

typedef struct request {
    ts_http *http;
    const char *method;
    const char *path;
} request;

typedef enum MHD_Result (*handler_fn)(struct MHD_Connection *conn, request *req);

static enum MHD_Result send_json(struct MHD_Connection *conn, unsigned status, json_t *body,
                                 const char *allow) {
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text)
        return MHD_NO;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status,
                                  const char *code, const char *message, const char *allow) {
    return send_json(conn, status, json_pack("{s:s, s:s}", "error", message, "code", code),
                     allow);
}

static enum MHD_Result handle_healthz(struct MHD_Connection *conn, request *req) {
    (void)req;
    return send_json(conn, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"), NULL);
}

static const struct route {
    const char *method;
    const char *path;
    handler_fn fn;
} routes[] = {
    {"GET", "/healthz", handle_healthz},
};

static enum MHD_Result dispatch(struct MHD_Connection *conn, request *req) {
    char allow[64] = "";
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(routes[i].path, req->path) != 0)
            continue;
        if (strcmp(routes[i].method, req->method) == 0)
            return routes[i].fn(conn, req);
        if (allow[0])
            strncat(allow, ", ", sizeof allow - strlen(allow) - 1);
        strncat(allow, routes[i].method, sizeof allow - strlen(allow) - 1);
    }
    if (allow[0])
        return send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                          "Method not allowed", allow);
    return send_error(conn, MHD_HTTP_NOT_FOUND, "not_found", "Not found", NULL);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    (void)version;
    (void)upload_data;
    if (*con_cls == NULL) { /* first call: headers only */
        *con_cls = conn;
        return MHD_YES;
    }
    if (*upload_data_size) { /* bodies are read by the routes that take one */
        *upload_data_size = 0;
        return MHD_YES;
    }
    request req = {.http = cls, .method = method, .path = url};
    return dispatch(conn, &req);
}

ts_http *ts_http_start(const ts_config *cfg, char *err, size_t errlen) {
    ts_http *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->cfg = cfg;
    h->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG,
        (uint16_t)cfg->http_port, NULL, NULL, on_request, h,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->http_threads,
        MHD_OPTION_CONNECTION_TIMEOUT, 30u,
        MHD_OPTION_END);
    if (!h->daemon) {
        snprintf(err, errlen, "cannot listen on port %d", cfg->http_port);
        free(h);
        return NULL;
    }
    ts_info("api", "event=listening port=%d threads=%d", cfg->http_port, cfg->http_threads);
    return h;
}

void ts_http_stop(ts_http *h) {
    if (!h)
        return;
    MHD_stop_daemon(h->daemon);
    free(h);
}
