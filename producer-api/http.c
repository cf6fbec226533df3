/* http.c — see http.h.
 *
 * libmicrohttpd calls on_request several times per request: first with the
 * headers (a context is made and the route matched), then with each piece
 * of the body (kept, up to TS_MAX_BODY_BYTES), then once with nothing
 * (the request is handled). A write suspends the connection until
 * replies.c has its answer; libmicrohttpd then calls on_request once more
 * and the answer is sent. */
#include "http.h"

#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metrics.h"
#include "outcome.h"
#include "reads.h"
#include "replies.h"
#include "request.h"
#include "routes.h"
#include "ts_log.h"
#include "ts_time.h"
#include "ts_uuid.h"
#include "ts_validate.h"

#define PAGE_DEFAULT 1000
#define PAGE_MAX 10000

struct ts_http {
    const ts_config *cfg;
    struct MHD_Daemon *daemon;
    ts_replies *replies;
    ts_metrics metrics;
};

typedef struct request {
    ts_route_match match;
    int64_t started_ms; /* monotonic, at the request's headers */
    char *body;
    size_t len, cap;
    bool too_big;
    bool submitted;
    ts_answer answer;
} request;

/* Namespaces of name-based ids derived from an Idempotency-Key. Fixed
 * forever: a retry must map to the same ids. */
static const char idempotency_ns[] = "3d1e7a0c-59b2-5f4e-8c6d-1a2b3c4d5e6f";
static const char event_ns[] = "9a8b7c6d-5e4f-5a3b-9c2d-1e0f9a8b7c6d";

/* ------------------------------------------------------------ responses */

static enum MHD_Result respond(ts_http *h, struct MHD_Connection *conn, unsigned status,
                               json_t *body, const char *header, const char *value) {
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        return MHD_NO;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (header)
        MHD_add_response_header(resp, header, value);
    enum MHD_Result r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    if (status >= 100 && status < 600)
        atomic_fetch_add_explicit(&h->metrics.requests[status / 100], 1, memory_order_relaxed);
    return r;
}

static enum MHD_Result respond_error(ts_http *h, struct MHD_Connection *conn, unsigned status,
                                     const char *code, const char *message, const char *field) {
    return respond(h, conn, status, ts_error_body(code, message, field), NULL, NULL);
}

static enum MHD_Result respond_answer(ts_http *h, struct MHD_Connection *conn,
                                      const ts_answer *a) {
    switch (a->result) {
    case TS_WAIT_REPLIED: {
        json_t *body;
        unsigned status = ts_outcome_http(&a->reply, &body);
        return respond(h, conn, status, body, NULL, NULL);
    }
    case TS_WAIT_ACCEPTED: {
        char location[96];
        snprintf(location, sizeof location, "/api/commands/%s", a->command_id);
        return respond(h, conn, MHD_HTTP_ACCEPTED,
                       json_pack("{s:s, s:s, s:s}", "command_id", a->command_id, "status",
                                 "pending", "location", location),
                       MHD_HTTP_HEADER_LOCATION, location);
    }
    case TS_WAIT_PENDING:
    case TS_WAIT_UNAVAILABLE:
        break;
    }
    return respond(h, conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                   ts_error_body("unavailable", "Service unavailable, retry later", NULL),
                   MHD_HTTP_HEADER_RETRY_AFTER, "1");
}

/* ------------------------------------------------------------ handlers */

static long query_long(struct MHD_Connection *conn, const char *name, long def, long max,
                       bool *bad) {
    const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
    if (!v)
        return def;
    char *end;
    long n = strtol(v, &end, 10);
    if (end == v || *end || n < 0 || n > max)
        *bad = true;
    return n;
}

/* The :id of the path as a canonical UUID, or a 400 naming `field`. */
static int path_uuid(const request *req, char out[TS_UUID_LEN + 1]) {
    return ts_uuid_normalize(req->match.param, out);
}

static enum MHD_Result handle_read(ts_http *h, struct MHD_Connection *conn, request *req) {
    char id[TS_UUID_LEN + 1];
    json_t *body = NULL;
    unsigned status;
    bool bad = false;
    switch (req->match.route) {
    case TS_ROUTE_HEALTHZ:
        return respond(h, conn, 200, json_pack("{s:s}", "status", "ok"), NULL, NULL);
    case TS_ROUTE_METRICS: {
        char *text = ts_metrics_render(&h->metrics);
        if (!text)
            return MHD_NO;
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                "text/plain; version=0.0.4");
        enum MHD_Result r = MHD_queue_response(conn, 200, resp);
        MHD_destroy_response(resp);
        return r;
    }
    case TS_ROUTE_LIST_EVENTS: {
        long limit = query_long(conn, "limit", PAGE_DEFAULT, PAGE_MAX, &bad);
        long offset = query_long(conn, "offset", 0, 1L << 40, &bad);
        if (bad)
            return respond_error(h, conn, 400, "invalid_query",
                                 "limit must be 0..10000 and offset >= 0", NULL);
        status = ts_read_upcoming(h->cfg, limit, offset, &body);
        break;
    }
    case TS_ROUTE_GET_EVENT: {
        long limit = query_long(conn, "limit", PAGE_DEFAULT, PAGE_MAX, &bad);
        long offset = query_long(conn, "offset", 0, 1L << 40, &bad);
        if (path_uuid(req, id))
            return respond_error(h, conn, 400, "invalid_field", "Invalid event id", "id");
        if (bad)
            return respond_error(h, conn, 400, "invalid_query",
                                 "limit must be 0..10000 and offset >= 0", NULL);
        status = ts_read_event(h->cfg, id, limit, offset, &body);
        break;
    }
    case TS_ROUTE_STATS:
        if (path_uuid(req, id))
            return respond_error(h, conn, 400, "invalid_field", "Invalid event id", "id");
        status = ts_read_stats(h->cfg, id, &body);
        break;
    case TS_ROUTE_GET_COMMAND:
        if (path_uuid(req, id))
            return respond_error(h, conn, 400, "invalid_field", "Invalid command id", "id");
        status = ts_read_command(h->cfg, id, &body);
        if (status == 404 && ts_replies_is_pending(h->replies, id)) {
            json_decref(body);
            body = json_pack("{s:s, s:s}", "command_id", id, "status", "pending");
            status = 200;
        }
        break;
    default:
        return respond_error(h, conn, 500, "internal", "Unhandled route", NULL);
    }
    return respond(h, conn, status, body, NULL, NULL);
}

/* Fills the envelope of a command: ids, time, reply address. With an
 * Idempotency-Key the command id (and a new event's id) derive from the
 * key, so a retry is the same command and gets the first outcome. */
static int envelope(ts_http *h, struct MHD_Connection *conn, const char *path, ts_command *c) {
    const char *key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Idempotency-Key");
    if (key) {
        size_t n = strlen(key);
        if (n == 0 || n > 200)
            return -1;
        char name[512];
        snprintf(name, sizeof name, "%s\n%s", path, key);
        ts_uuid_v5(idempotency_ns, name, c->command_id);
    } else {
        ts_uuid_new(c->command_id);
    }
    c->issued_at_ms = ts_now_ms();
    snprintf(c->reply_topic, sizeof c->reply_topic, "%s", h->cfg->topic_replies);
    c->reply_partition = h->cfg->reply_partition;
    return 0;
}

static enum MHD_Result handle_write(ts_http *h, struct MHD_Connection *conn, request *req,
                                    const char *path) {
    if (req->too_big)
        return respond_error(h, conn, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large",
                             "Request body too large", NULL);
    ts_command cmd;
    ts_bad_request why;
    memset(&cmd, 0, sizeof cmd);
    const char *body = req->body ? req->body : "";
    int rc;
    switch (req->match.route) {
    case TS_ROUTE_CREATE_EVENT:
        cmd.type = TS_CMD_CREATE_EVENT;
        rc = ts_request_create_event(body, req->len, &cmd, &why);
        break;
    case TS_ROUTE_REGISTER:
        cmd.type = TS_CMD_REGISTER;
        rc = ts_request_register(body, req->len, &cmd, &why);
        break;
    default:
        cmd.type = TS_CMD_CANCEL;
        rc = ts_request_cancel(body, req->len, &cmd, &why);
        break;
    }
    if (cmd.type != TS_CMD_CREATE_EVENT && path_uuid(req, cmd.event_id))
        return respond_error(h, conn, 400, "invalid_field", "Invalid event id", "id");
    if (rc)
        return respond_error(h, conn, 400, why.code, why.message, why.field);
    ts_violation rule; /* the rules the worker holds every producer to */
    if (ts_validate_command(&cmd, &rule))
        return respond_error(h, conn, 400, "invalid_field", rule.message, rule.field);
    if (envelope(h, conn, path, &cmd))
        return respond_error(h, conn, 400, "invalid_header",
                             "Idempotency-Key must be 1 to 200 characters", "Idempotency-Key");
    if (cmd.type == TS_CMD_CREATE_EVENT) {
        if (MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Idempotency-Key"))
            ts_uuid_v5(event_ns, cmd.command_id, cmd.event_id);
        else
            ts_uuid_new(cmd.event_id);
    }
    req->submitted = true;
    if (ts_replies_submit(h->replies, &cmd, conn, &req->answer))
        return MHD_YES; /* suspended: on_request is called again with the answer */
    ts_histogram_observe(&h->metrics.write_latency, (long)(ts_monotonic_ms() - req->started_ms));
    return respond_answer(h, conn, &req->answer);
}

/* ------------------------------------------------------------ libmicrohttpd */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    (void)version;
    ts_http *h = cls;
    request *req = *con_cls;
    if (!req) { /* headers only */
        req = calloc(1, sizeof *req);
        if (!req)
            return MHD_NO;
        req->match = ts_route(method, url);
        req->started_ms = ts_monotonic_ms();
        *con_cls = req;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (req->too_big || !ts_route_has_body(req->match.route))
            return MHD_YES;
        if (req->len + n > (size_t)h->cfg->max_body_bytes) {
            req->too_big = true; /* the rest is read and dropped; then 413 */
            free(req->body);
            req->body = NULL;
            req->len = 0;
            return MHD_YES;
        }
        if (req->len + n + 1 > req->cap) {
            size_t cap = req->cap ? req->cap * 2 : 1024;
            while (cap < req->len + n + 1)
                cap *= 2;
            char *p = realloc(req->body, cap);
            if (!p)
                return MHD_NO;
            req->body = p;
            req->cap = cap;
        }
        memcpy(req->body + req->len, upload_data, n);
        req->len += n;
        req->body[req->len] = '\0';
        return MHD_YES;
    }
    if (req->submitted) { /* resumed: the answer is in */
        int64_t now = ts_monotonic_ms();
        ts_histogram_observe(&h->metrics.write_latency, (long)(now - req->started_ms));
        ts_histogram_observe(&h->metrics.resume, (long)(now - req->answer.resolved_ms));
        return respond_answer(h, conn, &req->answer);
    }

    if (req->match.route == TS_ROUTE_NONE) {
        if (req->match.allow[0])
            return respond(h, conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                           ts_error_body("method_not_allowed", "Method not allowed", NULL),
                           MHD_HTTP_HEADER_ALLOW, req->match.allow);
        return respond_error(h, conn, MHD_HTTP_NOT_FOUND, "not_found", "Not found", NULL);
    }
    if (ts_route_has_body(req->match.route))
        return handle_write(h, conn, req, url);
    return handle_read(h, conn, req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)conn;
    (void)toe;
    request *req = *con_cls;
    if (req) {
        free(req->body);
        free(req);
        *con_cls = NULL;
    }
}

ts_http *ts_http_start(const ts_config *cfg, char *err, size_t errlen) {
    ts_http *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->cfg = cfg;
    h->replies = ts_replies_start(cfg, &h->metrics, err, errlen);
    if (!h->replies) {
        free(h);
        return NULL;
    }
    h->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
            MHD_USE_ERROR_LOG,
        (uint16_t)cfg->http_port, NULL, NULL, on_request, h, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)cfg->http_threads, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
        MHD_OPTION_CONNECTION_LIMIT, 20000u, MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096u,
        /* MHD clears a connection's memory pool for each request: 32 kB
         * by default, 9% of the ingress's CPU in a burst. Headers of 8 kB
         * still fit; bodies are streamed out of it. */
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16384,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_END);
    if (!h->daemon) {
        snprintf(err, errlen, "cannot listen on port %d", cfg->http_port);
        ts_replies_stop(h->replies);
        free(h);
        return NULL;
    }
    ts_info("api", "event=listening port=%d threads=%d", cfg->http_port, cfg->http_threads);
    return h;
}

void ts_http_stop(ts_http *h) {
    if (!h)
        return;
    /* Stop accepting; answer what is in flight; then close. */
    MHD_socket listener = MHD_quiesce_daemon(h->daemon);
    if (listener != MHD_INVALID_SOCKET)
        close(listener);
    ts_replies_drain(h->replies);
    MHD_stop_daemon(h->daemon);
    ts_replies_stop(h->replies);
    free(h);
}
