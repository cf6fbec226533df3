/* SPDX-License-Identifier: Apache-2.0 */
/* http.c — see http.h.
 *
 * libmicrohttpd calls on_request several times per request: first with the
 * headers (a context is made, the route matched, and the request admitted
 * or refused: sizes, the organizer key, the rate limit), then with each
 * piece of the body (kept, up to TS_MAX_BODY_BYTES), then once with
 * nothing (the request is handled). A write suspends the connection until
 * replies.c has its answer; libmicrohttpd then calls on_request once more
 * and the answer is sent.
 *
 * Protected mode (keys.h) changes four things: a key is needed to create,
 * change or cancel an event, to see its attendees or its waitlist and to
 * cancel without the registrant's token; registrations (a place on the
 * waitlist and a confirmed hold too) get a cancel token; writes are
 * rate-limited (in open mode only by a TS_RATE_* set explicitly); an
 * unknown key is refused everywhere. Holds are public, like registering:
 * a hold's id is what lets its holder confirm or release it. Open mode is
 * the original contract. */
#include "http.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>

#include "clientaddr.h"
#include "guard.h"
#include "keys.h"
#include "metrics.h"
#include "openapi.h"
#include "ratelimit.h"
#include "outcome.h"
#include "position.h"
#include "reads.h"
#include "ready.h"
#include "replies.h"
#include "request.h"
#include "routes.h"
#include "ts_log.h"
#include "ts_lsn.h"
#include "ts_pg.h"
#include "ts_secret.h"
#include "ts_statusd.h"
#include "ts_time.h"
#include "ts_uuid.h"
#include "ts_validate.h"

#define PAGE_DEFAULT 1000
#define PAGE_MAX 10000
#define RATE_SLOTS 65536 /* clients remembered by each rate limit */

/* The defaults of protected mode, where TS_RATE_* and
 * TS_MAX_CONNECTIONS_PER_IP say -1: a person registering never meets them,
 * a script flooding from one address does within seconds. */
#define PROTECTED_WRITES_PER_S 10
#define PROTECTED_BURST 20
#define PROTECTED_KEY_WRITES_PER_S 200
#define PROTECTED_KEY_BURST 1000
#define PROTECTED_CONNECTIONS_PER_IP 256

/* A rate limit and when it applies. */
typedef struct rate_limit {
    ts_ratelimit *buckets; /* NULL: never */
    bool always;           /* set explicitly: in open mode too */
} rate_limit;

struct ts_http {
    const ts_config *cfg;
    struct MHD_Daemon *daemon;
    ts_replies *replies;
    ts_readers *readers;
    ts_keys *keys;
    ts_guard *guard;
    ts_proxies *proxies;
    rate_limit per_address, per_key;
    ts_metrics metrics;
    ts_ready *ready;      /* /readyz's probes */
    atomic_bool draining; /* ts_http_stop() has begun: /readyz answers 503 */
};

bool ts_http_failed(ts_http *h) {
    return ts_replies_failed(h->replies);
}

typedef struct request {
    ts_route_match match;
    int64_t started_ms; /* monotonic, at the request's headers */
    char *body;
    size_t len, cap;
    bool too_big;
    bool submitted;
    bool protected_mode; /* the mode when the headers came */
    bool has_key;        /* protected mode, and a valid Authorization header */
    ts_key_check key;    /* what that key covers of this request's event */
    char key_id[TS_UUID_LEN + 1];
    char client[TS_CLIENT_ADDR_MAX]; /* client_of(): "" until first asked */
    char token[TS_TOKEN_LEN + 1];    /* a registration's cancel token, "" if none */
    ts_answer answer;
    bool reading; /* suspended until the read pool has `read` answered */
    ts_read read;
} request;

/* Namespaces of name-based ids derived from an Idempotency-Key. Fixed
 * forever: a retry must map to the same ids. */
static const char idempotency_ns[] = "3d1e7a0c-59b2-5f4e-8c6d-1a2b3c4d5e6f";
static const char event_ns[] = "9a8b7c6d-5e4f-5a3b-9c2d-1e0f9a8b7c6d";

/* ------------------------------------------------------------ responses */

static enum MHD_Result respond(ts_http *h, struct MHD_Connection *conn, unsigned status,
                               json_t *body, const char *header, const char *value) {
    char *text = ts_body_text(body);
    json_decref(body);
    enum MHD_Result r = ts_statusd_respond(conn, status, text, "application/json", header, value);
    if (r == MHD_YES && status >= 100 && status < 600)
        atomic_fetch_add_explicit(&h->metrics.requests[status / 100], 1, memory_order_relaxed);
    return r;
}

static enum MHD_Result respond_error(ts_http *h, struct MHD_Connection *conn, unsigned status,
                                     const char *code, const char *message, const char *field) {
    return respond(h, conn, status, ts_error_body(code, message, field), NULL, NULL);
}

/* 401 with the challenge RFC 6750 asks for; `invalid` when a key was sent. */
static enum MHD_Result respond_unauthorized(ts_http *h, struct MHD_Connection *conn, bool invalid,
                                            const char *message) {
    atomic_fetch_add_explicit(&h->metrics.unauthorized, 1, memory_order_relaxed);
    return respond(h, conn, MHD_HTTP_UNAUTHORIZED, ts_error_body("unauthorized", message, NULL),
                   MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                   invalid ? "Bearer realm=\"turnstile\", error=\"invalid_token\""
                           : "Bearer realm=\"turnstile\"");
}

static enum MHD_Result respond_forbidden(ts_http *h, struct MHD_Connection *conn,
                                         const char *message) {
    atomic_fetch_add_explicit(&h->metrics.unauthorized, 1, memory_order_relaxed);
    return respond_error(h, conn, MHD_HTTP_FORBIDDEN, "forbidden", message, NULL);
}

/* `body` with a registration's cancel token added; NULL, and the body
 * freed, when out of memory: nothing is sent rather than an answer without
 * the token its registrant needs to cancel. */
static json_t *with_token(json_t *body, const char *token) {
    if (body && json_object_set_new(body, "cancel_token", json_string(token)) != 0) {
        json_decref(body);
        return NULL;
    }
    return body;
}

/* Whether an answer shows attendees' names and emails: open mode, or an
 * organizer key for the event. */
static bool sees_attendees(const request *req) {
    return !req->protected_mode || req->key == TS_KEY_COVERS;
}

/* The answer to a write; a registration's cancel token goes with it (also
 * in a 202: it will be valid once the registration is applied), as does a
 * place on the waitlist's (the waiting person may leave the line). A
 * changed event is answered with the event, read once the change is in. */
static enum MHD_Result start_read(ts_http *h, struct MHD_Connection *conn, request *req);

/* X-Turnstile-Position of a write's answer: the WAL position its commit
 * reached, as PostgreSQL prints it, in text[TS_LSN_TEXT_MAX]. The header's
 * name, or NULL when the reply did not say (a worker of before). */
static const char *position_header(const ts_reply *reply, char *text) {
    if (!reply->commit_lsn)
        return NULL;
    ts_lsn_format(reply->commit_lsn, text);
    return TS_POSITION_HEADER;
}

static enum MHD_Result respond_answer(ts_http *h, struct MHD_Connection *conn, request *req) {
    const ts_answer *a = &req->answer;
    const char *token = req->token;
    switch (a->result) {
    case TS_WAIT_REPLIED: {
        json_t *body;
        unsigned status;
        /* before the answer leaves: the client's next read here sees it */
        if (a->reply.outcome != TS_OUT_INVALID) /* an INVALID one applied nothing */
            ts_readers_written(h->readers, a->reply.commit_lsn);
        if (a->reply.outcome == TS_OUT_UPDATED) { /* answered with the event, read now */
            req->read = (ts_read){
                .kind = TS_READ_EVENT, .attendees = sees_attendees(req), .limit = PAGE_DEFAULT};
            strcpy(req->read.id, a->reply.event_id);
            return start_read(h, conn, req);
        }
        status = ts_outcome_http(&a->reply, &body);
        if (token[0] &&
            (a->reply.outcome == TS_OUT_REGISTERED || a->reply.outcome == TS_OUT_WAITLISTED))
            body = with_token(body, token);
        char position[TS_LSN_TEXT_MAX];
        return respond(h, conn, status, body, position_header(&a->reply, position), position);
    }
    case TS_WAIT_ACCEPTED: {
        char location[96];
        snprintf(location, sizeof location, "/api/commands/%s", a->command_id);
        json_t *body = json_pack("{s:s, s:s, s:s}", "command_id", a->command_id, "status",
                                 "pending", "location", location);
        if (token[0])
            body = with_token(body, token);
        return respond(h, conn, MHD_HTTP_ACCEPTED, body, MHD_HTTP_HEADER_LOCATION, location);
    }
    case TS_WAIT_PENDING:
    case TS_WAIT_UNAVAILABLE: break;
    }
    return respond(h, conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                   ts_error_body("unavailable", "Service unavailable, retry later", NULL),
                   MHD_HTTP_HEADER_RETRY_AFTER, "1");
}

/* Whether an organizer operation on the route's event may go on: in open
 * mode always; in protected mode with a key for the event. False, with the
 * 401 (no key; `what` says what needs one) or 403 sent (*refused). */
static bool organizer_allowed(ts_http *h, struct MHD_Connection *conn, const request *req,
                              const char *what, enum MHD_Result *refused) {
    if (!req->protected_mode || req->key == TS_KEY_COVERS)
        return true;
    if (req->has_key)
        *refused = respond_forbidden(h, conn, "This key does not cover this event");
    else
        *refused = respond_unauthorized(h, conn, false, what);
    return false;
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

/* A listing's ?limit and ?offset: false when either is not a number in
 * range (the caller answers respond_bad_page()). */
static bool read_page(struct MHD_Connection *conn, long *limit, long *offset) {
    bool bad = false;
    *limit = query_long(conn, "limit", PAGE_DEFAULT, PAGE_MAX, &bad);
    *offset = query_long(conn, "offset", 0, 1L << 40, &bad);
    return !bad;
}

static enum MHD_Result respond_bad_page(ts_http *h, struct MHD_Connection *conn) {
    return respond_error(h, conn, 400, "invalid_query", "limit must be 0..10000 and offset >= 0",
                         NULL);
}

/* GET /openapi.json: the document the binary was built with. */
static enum MHD_Result respond_document(ts_http *h, struct MHD_Connection *conn) {
    size_t len;
    const char *doc = ts_openapi_document(&len);
    char *text = malloc(len + 1);
    if (text)
        memcpy(text, doc, len + 1);
    enum MHD_Result r = ts_statusd_respond(conn, MHD_HTTP_OK, text, "application/json", NULL, NULL);
    if (r == MHD_YES)
        atomic_fetch_add_explicit(&h->metrics.requests[2], 1, memory_order_relaxed);
    return r;
}

/* The :id of the path as a canonical UUID in `out`: 0, or -1 when it is
 * not a UUID (the caller answers 400, naming the id). */
static int path_uuid(const request *req, char out[TS_UUID_LEN + 1]) {
    return ts_uuid_normalize(req->match.param, out);
}

/* What /readyz names as not ready, in names[TS_READY_MAX]; how many. */
static size_t not_ready(ts_http *h, const char **names) {
    size_t n = 0;
    if (atomic_load(&h->draining))
        names[n++] = "draining";
    if (ts_replies_failed(h->replies))
        names[n++] = "kafka_fatal";
    return n + ts_ready_not_ready(h->ready, names + n, TS_READY_MAX - n);
}

/* The position a read of data must see from X-Turnstile-Min-Position (0
 * without one) in *out: true, or false with its 400 sent (*refused). */
static bool min_position(ts_http *h, struct MHD_Connection *conn, uint64_t *out,
                         enum MHD_Result *refused) {
    const char *value = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, TS_MIN_POSITION_HEADER);
    if (ts_position_requested(value, out) == 0)
        return true;
    *refused = respond_error(h, conn, 400, "invalid_header", TS_MIN_POSITION_INVALID,
                             TS_MIN_POSITION_HEADER);
    return false;
}

static enum MHD_Result handle_read(ts_http *h, struct MHD_Connection *conn, request *req) {
    char id[TS_UUID_LEN + 1] = "";
    ts_read *rd = &req->read;
    long limit, offset;
    uint64_t min = 0;
    enum MHD_Result refused;
    switch (req->match.route) {
    case TS_ROUTE_HEALTHZ:
        if (ts_replies_failed(h->replies))
            return respond(h, conn, 503,
                           json_pack("{s:s, s:s}", "status", "failing", "reason", "kafka_fatal"),
                           NULL, NULL);
        return respond(h, conn, 200,
                       json_pack("{s:s, s:s}", "status", "ok", "mode",
                                 ts_keys_protected(h->keys) ? "protected" : "open"),
                       NULL, NULL);
    case TS_ROUTE_READYZ: { /* a probe, not traffic: not counted in requests by class */
        const char *names[TS_READY_MAX];
        return ts_statusd_respond_ready(conn, names, not_ready(h, names));
    }
    case TS_ROUTE_METRICS: {
        const char *names[TS_READY_MAX];
        atomic_store_explicit(&h->metrics.ready, not_ready(h, names) == 0, memory_order_relaxed);
        atomic_store_explicit(&h->metrics.requests_cut, ts_guard_cut_total(h->guard),
                              memory_order_relaxed);
        atomic_store_explicit(&h->metrics.db_deadlines, ts_pg_watch_cuts(), memory_order_relaxed);
        return ts_statusd_respond_metrics(conn, ts_metrics_render(&h->metrics));
    }
    case TS_ROUTE_OPENAPI: return respond_document(h, conn);
    case TS_ROUTE_LIST_EVENTS:
        if (!read_page(conn, &limit, &offset))
            return respond_bad_page(h, conn);
        if (!min_position(h, conn, &min, &refused))
            return refused;
        *rd = (ts_read){.kind = TS_READ_UPCOMING, .limit = limit, .offset = offset};
        break;
    case TS_ROUTE_GET_EVENT: {
        bool paged = read_page(conn, &limit, &offset);
        if (path_uuid(req, id))
            return respond_error(h, conn, 400, "invalid_field", "Invalid event id", "id");
        if (!paged)
            return respond_bad_page(h, conn);
        if (!min_position(h, conn, &min, &refused))
            return refused;
        /* attendees' names and emails: open mode, or a key for the event */
        *rd = (ts_read){.kind = TS_READ_EVENT,
                        .attendees = sees_attendees(req),
                        .limit = limit,
                        .offset = offset};
        break;
    }
    case TS_ROUTE_WAITLIST: {
        bool paged = read_page(conn, &limit, &offset);
        if (path_uuid(req, id))
            return respond_error(h, conn, 400, "invalid_field", "Invalid event id", "id");
        if (!paged)
            return respond_bad_page(h, conn);
        /* names and emails: an organizer's */
        if (!organizer_allowed(h, conn, req, "The waitlist needs an organizer key", &refused))
            return refused;
        if (!min_position(h, conn, &min, &refused))
            return refused;
        *rd = (ts_read){.kind = TS_READ_WAITLIST, .limit = limit, .offset = offset};
        break;
    }
    case TS_ROUTE_STATS:
        if (path_uuid(req, id))
            return respond_error(h, conn, 400, "invalid_field", "Invalid event id", "id");
        if (!min_position(h, conn, &min, &refused))
            return refused;
        *rd = (ts_read){.kind = TS_READ_STATS};
        break;
    case TS_ROUTE_GET_COMMAND:
        if (path_uuid(req, id))
            return respond_error(h, conn, 400, "invalid_field", "Invalid command id", "id");
        *rd = (ts_read){.kind = TS_READ_COMMAND};
        break;
    default: return respond_error(h, conn, 500, "internal", "Unhandled route", NULL);
    }
    strcpy(rd->id, id);
    rd->min_position = min;
    return start_read(h, conn, req);
}

/* Hands req->read to the read pool; the request is answered when it is
 * resumed (respond_read). 503 at once when the pool's queue is full. */
static enum MHD_Result start_read(ts_http *h, struct MHD_Connection *conn, request *req) {
    req->reading = ts_readers_submit(h->readers, &req->read, conn);
    if (req->reading)
        return MHD_YES;
    return respond(h, conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                   ts_error_body("unavailable", "Too many reads waiting, retry later", NULL),
                   MHD_HTTP_HEADER_RETRY_AFTER, "1");
}

/* The answer of a read, once the pool has it. A command not applied yet
 * but waited for here is pending, not unknown. */
static enum MHD_Result respond_read(ts_http *h, struct MHD_Connection *conn, request *req) {
    ts_read *rd = &req->read;
    req->reading = false;
    json_t *body = rd->body;
    unsigned status = rd->status;
    rd->body = NULL;
    if (rd->kind == TS_READ_COMMAND && status == 404 && ts_replies_is_pending(h->replies, rd->id)) {
        json_decref(body);
        body = json_pack("{s:s, s:s}", "command_id", rd->id, "status", "pending");
        status = 200;
    }
    if (req->submitted) /* a write answered with what it changed */
        ts_histogram_observe(&h->metrics.write_latency,
                             (long)(ts_monotonic_ms() - req->started_ms));
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
        return respond(h, conn, status, body, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    /* the position of a write answered so (its reply's), or of a command
     * found done (the primary's when it was read, past the command) */
    char position[TS_LSN_TEXT_MAX];
    const char *header = NULL;
    if (req->submitted) {
        header = position_header(&req->answer.reply, position);
    } else if (rd->position) {
        ts_lsn_format(rd->position, position);
        header = TS_POSITION_HEADER;
    }
    return respond(h, conn, status, body, header, position);
}

/* X-Forwarded-For, every header of that name joined with ", ". */
typedef struct xff_buf {
    char text[1024];
    size_t len;
} xff_buf;

static enum MHD_Result add_xff(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value) {
    (void)kind;
    xff_buf *x = cls;
    if (!value || strcasecmp(key, "X-Forwarded-For") != 0)
        return MHD_YES;
    /* The rightmost entries are the trusted ones (each proxy appends): on
     * overflow the left part goes, never the header a proxy added last. */
    if (x->len + strlen(value) + 3 >= sizeof x->text)
        x->len = 0;
    if (x->len + strlen(value) + 3 < sizeof x->text)
        x->len += (size_t)snprintf(x->text + x->len, sizeof x->text - x->len, "%s%s",
                                   x->len ? ", " : "", value);
    return MHD_YES;
}

/* The client's address, worked out on first use (idempotency keys and rate
 * limits need it; most requests in open mode do not). */
static const char *client_of(ts_http *h, struct MHD_Connection *conn, request *req) {
    if (req->client[0])
        return req->client;
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    xff_buf xff = {.len = 0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, add_xff, &xff);
    if (!info || ts_client_address(h->proxies, info->client_addr, xff.len ? xff.text : NULL,
                                   req->client, sizeof req->client))
        snprintf(req->client, sizeof req->client, "unknown");
    return req->client;
}

/* Fills the envelope of a command: ids, time, reply address. With an
 * Idempotency-Key (`key`, NULL when none) the command id (and a new event's
 * id) derive from the key, the client (its organizer key, else its
 * address) and the route with its canonical event id — so a retry is the
 * same command and gets the first outcome, and nobody else's key can name
 * it — and the command carries the digest of the body, so the same key
 * with another request is refused by the worker. 0, or -1 when out of
 * memory (the body, parsed already, cannot fail otherwise). */
static int envelope(ts_http *h, struct MHD_Connection *conn, request *req, const char *key,
                    ts_command *c) {
    if (key) {
        char name[512];
        snprintf(name, sizeof name, "%s:%s\n%d\n%s\n%s", req->has_key ? "key" : "addr",
                 req->has_key ? req->key_id : client_of(h, conn, req), (int)req->match.route,
                 c->event_id, key);
        ts_uuid_v5(idempotency_ns, name, c->command_id);
        /* the body, and what the path names beyond the route and the
         * event: a hold's id (the same key for another hold is another
         * request) */
        const char *hold = c->type == TS_CMD_CONFIRM_HOLD || c->type == TS_CMD_RELEASE_HOLD
                               ? c->u.hold_ref.hold_id
                               : NULL;
        if (ts_request_digest(req->body ? req->body : "", req->len, hold, &c->request_sha256))
            return -1;
    } else {
        ts_uuid_new(c->command_id);
    }
    c->issued_at_ms = ts_now_ms();
    snprintf(c->reply_topic, sizeof c->reply_topic, "%s", h->cfg->topic_replies);
    c->reply_partition = ts_replies_partition(h->replies);
    return 0;
}

/* A new cancel token in req->token and its digest in *digest: true, or
 * false with a 503 sent (*refused). */
static bool new_token(ts_http *h, struct MHD_Connection *conn, request *req, ts_digest *digest,
                      enum MHD_Result *refused) {
    if (ts_new_cancel_token(req->token)) {
        *refused = respond_error(h, conn, 503, "unavailable", "No randomness, retry later", NULL);
        return false;
    }
    *digest = ts_digest_of(req->token);
    return true;
}

/* Whether this write is allowed (in protected mode, who may do it): true,
 * or false with the refusal sent (*refused). Sets what protected mode adds
 * to the command (the cancel token of a registration, a place on the
 * waitlist or a confirmed hold) and drops what it does not use. */
static bool write_allowed(ts_http *h, struct MHD_Connection *conn, request *req, ts_command *cmd,
                          enum MHD_Result *refused) {
    if (!req->protected_mode) {
        /* the original contract: cancel by user id alone, no tokens */
        if (cmd->type == TS_CMD_CANCEL)
            cmd->u.cancel.token_sha256.present = false;
        return true;
    }
    switch (cmd->type) {
    case TS_CMD_CREATE_EVENT:
        if (!req->has_key)
            *refused =
                respond_unauthorized(h, conn, false, "Creating an event needs an organizer key");
        else if (req->key != TS_KEY_COVERS)
            *refused = respond_forbidden(h, conn, "This key may not create events");
        else
            return true;
        return false;
    case TS_CMD_REGISTER: return new_token(h, conn, req, &cmd->u.reg.cancel_token_sha256, refused);
    case TS_CMD_CONFIRM_HOLD:
        return new_token(h, conn, req, &cmd->u.hold_ref.cancel_token_sha256, refused);
    case TS_CMD_UPDATE_EVENT:
        return organizer_allowed(h, conn, req, "Changing an event needs an organizer key", refused);
    case TS_CMD_CANCEL_EVENT:
        return organizer_allowed(h, conn, req, "Cancelling an event needs an organizer key",
                                 refused);
    case TS_CMD_PLACE_HOLD:
    case TS_CMD_RELEASE_HOLD: /* public: the hold's id is the capability */
    case TS_CMD_EXPIRE_HOLD:  /* the worker's own, never from HTTP */
    case TS_CMD_COUNT_: return true;
    case TS_CMD_CANCEL:
        if (req->key == TS_KEY_COVERS) { /* an organizer: no token needed */
            cmd->u.cancel.token_sha256.present = false;
            return true;
        }
        if (cmd->u.cancel.token_sha256.present) /* the worker compares it */
            return true;
        if (req->has_key)
            *refused = respond_forbidden(h, conn, "This key does not cover this event");
        else
            *refused = respond_unauthorized(
                h, conn, false, "Cancelling needs the registration's token or an organizer key");
        return false;
    }
    return true;
}

static enum MHD_Result handle_write(ts_http *h, struct MHD_Connection *conn, request *req) {
    if (req->too_big)
        return respond_error(h, conn, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large",
                             "Request body too large", NULL);
    ts_command cmd;
    ts_bad_request why;
    memset(&cmd, 0, sizeof cmd);
    const char *body = req->body ? req->body : "";
    int rc = 0;
    switch (req->match.route) {
    case TS_ROUTE_CREATE_EVENT:
        cmd.type = TS_CMD_CREATE_EVENT;
        rc = ts_request_create_event(body, req->len, &cmd, &why);
        break;
    case TS_ROUTE_REGISTER:
        cmd.type = TS_CMD_REGISTER;
        rc = ts_request_register(body, req->len, &cmd, &why);
        break;
    case TS_ROUTE_CANCEL:
        cmd.type = TS_CMD_CANCEL;
        rc = ts_request_cancel(body, req->len, &cmd, &why);
        break;
    case TS_ROUTE_UPDATE_EVENT:
        cmd.type = TS_CMD_UPDATE_EVENT;
        rc = ts_request_update_event(body, req->len, &cmd, &why);
        break;
    case TS_ROUTE_CANCEL_EVENT: cmd.type = TS_CMD_CANCEL_EVENT; break; /* no body */
    case TS_ROUTE_PLACE_HOLD:
        cmd.type = TS_CMD_PLACE_HOLD;
        rc = ts_request_place_hold(body, req->len, &cmd, &why);
        cmd.u.hold.ttl_ms = (int64_t)h->cfg->hold_ttl_s * 1000;
        break;
    case TS_ROUTE_CONFIRM_HOLD: cmd.type = TS_CMD_CONFIRM_HOLD; break; /* a body is ignored */
    case TS_ROUTE_RELEASE_HOLD: cmd.type = TS_CMD_RELEASE_HOLD; break;
    default: return respond_error(h, conn, 500, "internal", "Unhandled route", NULL);
    }
    if (cmd.type != TS_CMD_CREATE_EVENT && path_uuid(req, cmd.event_id))
        return respond_error(h, conn, 400, "invalid_field", "Invalid event id", "id");
    if ((cmd.type == TS_CMD_CONFIRM_HOLD || cmd.type == TS_CMD_RELEASE_HOLD) &&
        ts_uuid_normalize(req->match.param2, cmd.u.hold_ref.hold_id))
        return respond_error(h, conn, 400, "invalid_field", "Invalid hold id", "hold_id");
    if (rc)
        return respond_error(h, conn, 400, why.code, why.message, why.field);
    ts_violation rule; /* the rules the worker holds every producer to */
    if (ts_validate_command(&cmd, &rule))
        return respond_error(h, conn, 400, "invalid_field", rule.message, rule.field);
    enum MHD_Result refused;
    if (!write_allowed(h, conn, req, &cmd, &refused))
        return refused;
    const char *key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Idempotency-Key");
    if (key && (key[0] == '\0' || strlen(key) > 200))
        return respond_error(h, conn, 400, "invalid_header",
                             "Idempotency-Key must be 1 to 200 characters", "Idempotency-Key");
    if (envelope(h, conn, req, key, &cmd))
        return MHD_NO; /* out of memory: nothing can be sent */
    if (cmd.type == TS_CMD_CREATE_EVENT) {
        if (key)
            ts_uuid_v5(event_ns, cmd.command_id, cmd.event_id);
        else
            ts_uuid_new(cmd.event_id);
    }
    req->submitted = true;
    if (ts_replies_submit(h->replies, &cmd, conn, &req->answer) == TS_WAIT_PENDING)
        return MHD_YES; /* suspended: on_request is called again with the answer */
    ts_histogram_observe(&h->metrics.write_latency, (long)(ts_monotonic_ms() - req->started_ms));
    return respond_answer(h, conn, req);
}

/* ------------------------------------------------------------ admission */

static enum MHD_Result add_length(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value) {
    (void)kind;
    *(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + 4; /* ": " and CRLF */
    return MHD_YES;
}

/* The event the route names, canonical, or NULL. */
static const char *route_event(const request *req, char out[TS_UUID_LEN + 1]) {
    switch (req->match.route) {
    case TS_ROUTE_GET_EVENT:
    case TS_ROUTE_REGISTER:
    case TS_ROUTE_CANCEL:
    case TS_ROUTE_STATS:
    case TS_ROUTE_UPDATE_EVENT:
    case TS_ROUTE_CANCEL_EVENT:
    case TS_ROUTE_WAITLIST:
    case TS_ROUTE_PLACE_HOLD:
    case TS_ROUTE_CONFIRM_HOLD:
    case TS_ROUTE_RELEASE_HOLD: return ts_uuid_normalize(req->match.param, out) == 0 ? out : NULL;
    default: return NULL;
    }
}

/* Whether the Authorization header, in protected mode, is acceptable: none
 * (the route decides later whether it needs a key), or a known organizer
 * key, whose coverage and id go to req->key and req->key_id. False, with a
 * 401 sent (*refused), for a header that is not a known key's. */
static bool key_accepted(ts_http *h, struct MHD_Connection *conn, request *req,
                         enum MHD_Result *refused) {
    const char *auth =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!auth)
        return true;
    char event[TS_UUID_LEN + 1];
    if (strncasecmp(auth, "Bearer ", 7) == 0) {
        const char *key = auth + 7 + strspn(auth + 7, " ");
        req->key = ts_keys_check(h->keys, key, route_event(req, event), req->key_id);
        req->has_key = req->key != TS_KEY_UNKNOWN;
    }
    if (!req->has_key)
        *refused = respond_unauthorized(h, conn, true, "Unknown or revoked organizer key");
    return req->has_key;
}

/* Whether a write is within its rate limit: takes a token from its key's
 * bucket, or its address's. False, with a 429 sent (*refused), when the
 * bucket is empty. */
static bool within_rate(ts_http *h, struct MHD_Connection *conn, request *req,
                        enum MHD_Result *refused) {
    const rate_limit *l = req->has_key ? &h->per_key : &h->per_address;
    if (!l->buckets || (!l->always && !req->protected_mode))
        return true;
    char key[TS_CLIENT_ADDR_MAX + 8];
    if (req->has_key)
        snprintf(key, sizeof key, "%s", req->key_id);
    else
        ts_client_limit_key(client_of(h, conn, req), key, sizeof key);
    int wait_s = ts_ratelimit_take(l->buckets, key, ts_monotonic_ms());
    if (wait_s == 0)
        return true;
    char retry[16];
    snprintf(retry, sizeof retry, "%d", wait_s);
    atomic_fetch_add_explicit(&h->metrics.rate_limited, 1, memory_order_relaxed);
    *refused = respond(h, conn, MHD_HTTP_TOO_MANY_REQUESTS,
                       ts_error_body("rate_limited", "Too many requests, retry later", NULL),
                       MHD_HTTP_HEADER_RETRY_AFTER, retry);
    return false;
}

/* Whether the request is admitted on what is decided on the headers alone,
 * before any body is read: sizes (414, 431, and 413 on a Content-Length
 * over the limit), the key (401), the rate limit (429). True to go on;
 * false with the refusal sent (*refused). */
static bool admitted(ts_http *h, struct MHD_Connection *conn, const char *url, request *req,
                     enum MHD_Result *refused) {
    size_t url_len = strlen(url), header_len = 0;
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, add_length, &url_len);
    MHD_get_connection_values(conn, MHD_HEADER_KIND, add_length, &header_len);
    if (url_len > (size_t)h->cfg->max_url_bytes) {
        *refused = respond_error(h, conn, MHD_HTTP_URI_TOO_LONG, "uri_too_long",
                                 "Request URI too long", NULL);
        return false;
    }
    if (header_len > (size_t)h->cfg->max_header_bytes) {
        *refused = respond_error(h, conn, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE,
                                 "headers_too_large", "Request headers too large", NULL);
        return false;
    }
    const char *length =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length && strtoull(length, NULL, 10) > (unsigned long long)h->cfg->max_body_bytes) {
        *refused = respond_error(h, conn, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large",
                                 "Request body too large", NULL);
        return false;
    }
    ts_route_id route = req->match.route;
    if (route == TS_ROUTE_HEALTHZ || route == TS_ROUTE_METRICS || route == TS_ROUTE_OPENAPI ||
        route == TS_ROUTE_READYZ || route == TS_ROUTE_NONE)
        return true; /* public in every mode, whatever key comes with them */
    req->protected_mode = ts_keys_protected(h->keys);
    if (req->protected_mode && !key_accepted(h, conn, req, refused))
        return false;
    return !ts_route_is_write(route) || within_rate(h, conn, req, refused);
}

/* ------------------------------------------------------------ libmicrohttpd */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
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
        enum MHD_Result refused;
        if (!admitted(h, conn, url, req, &refused)) {
            req->too_big = true; /* any body that still comes is dropped */
            return refused;
        }
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
    if (req->reading) /* resumed by the read pool */
        return respond_read(h, conn, req);
    if (req->submitted) { /* resumed: the answer is in */
        int64_t now = ts_monotonic_ms();
        ts_histogram_observe(&h->metrics.write_latency, (long)(now - req->started_ms));
        ts_histogram_observe(&h->metrics.resume, (long)(now - req->answer.resolved_ms));
        return respond_answer(h, conn, req);
    }

    if (req->match.route == TS_ROUTE_NONE) {
        if (req->match.allow[0])
            return respond(h, conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                           ts_error_body("method_not_allowed", "Method not allowed", NULL),
                           MHD_HTTP_HEADER_ALLOW, req->match.allow);
        return respond_error(h, conn, MHD_HTTP_NOT_FOUND, "not_found", "Not found", NULL);
    }
    if (ts_route_is_write(req->match.route))
        return handle_write(h, conn, req);
    return handle_read(h, conn, req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    ts_http *h = cls;
    (void)toe;
    ts_guard_request_done(h->guard, conn);
    request *req = *con_cls;
    if (req) {
        json_decref(req->read.body);
        free(req->body);
        free(req);
        *con_cls = NULL;
    }
}

/* A rate limit from its settings: -1 takes protected mode's default and
 * applies in protected mode only; 0 is off; a value set applies always. */
static int make_limit(rate_limit *l, int per_s, int burst, int default_per_s, int default_burst,
                      char *err, size_t errlen) {
    l->always = per_s > 0;
    if (per_s == 0)
        return 0;
    double rate = per_s > 0 ? per_s : default_per_s;
    double size = burst > 0 ? burst : burst == 0 ? 1 : default_burst;
    if (!(l->buckets = ts_ratelimit_new(rate, size, RATE_SLOTS))) {
        snprintf(err, errlen, "out of memory for the rate limits");
        return -1;
    }
    return 0;
}

/* The listen address: cfg->http_bind (numeric, or a name such as
 * "localhost") with cfg->http_port. 0, or -1 with `err` set. */
static int listen_address(const ts_config *cfg, struct sockaddr_storage *out, char *err,
                          size_t errlen) {
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    char port[8];
    snprintf(port, sizeof port, "%d", cfg->http_port);
    int rc = getaddrinfo(cfg->http_bind, port, &hints, &ai);
    if (rc || !ai) {
        snprintf(err, errlen, "TS_HTTP_BIND %s: %s", cfg->http_bind, gai_strerror(rc));
        return -1;
    }
    memset(out, 0, sizeof *out);
    memcpy(out, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    return 0;
}

/* Every connection is a descriptor: make room for TS_MAX_CONNECTIONS. */
static void raise_fd_limit(int connections) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl))
        return;
    rlim_t want = (rlim_t)connections + 1024;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want)
            ts_warn("api", "event=fd_limit limit=%llu connections=%d",
                    (unsigned long long)rl.rlim_cur, connections);
    }
}

static void free_parts(ts_http *h) {
    ts_readers_stop(h->readers);
    ts_guard_stop(h->guard);
    ts_keys_stop(h->keys);
    ts_proxies_free(h->proxies);
    ts_ratelimit_free(h->per_address.buckets);
    ts_ratelimit_free(h->per_key.buckets);
    free(h);
}

ts_http *ts_http_start(const ts_config *cfg, char *err, size_t errlen) {
    ts_http *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->cfg = cfg;
    struct sockaddr_storage addr;
    if (listen_address(cfg, &addr, err, errlen) ||
        ts_proxies_parse(cfg->trusted_proxies, &h->proxies, err, errlen) ||
        make_limit(&h->per_address, cfg->rate_writes_per_s, cfg->rate_burst, PROTECTED_WRITES_PER_S,
                   PROTECTED_BURST, err, errlen) ||
        make_limit(&h->per_key, cfg->rate_key_writes_per_s, cfg->rate_key_burst,
                   PROTECTED_KEY_WRITES_PER_S, PROTECTED_KEY_BURST, err, errlen) ||
        !(h->keys = ts_keys_start(cfg, err, errlen))) {
        free_parts(h);
        return NULL;
    }
    if (!(h->guard = ts_guard_start(cfg->request_timeout_s))) {
        snprintf(err, errlen, "cannot start the request guard");
        free_parts(h);
        return NULL;
    }
    if (!(h->readers = ts_readers_start(cfg, &h->metrics, err, errlen))) {
        free_parts(h);
        return NULL;
    }
    h->replies = ts_replies_start(cfg, &h->metrics, err, errlen);
    if (!h->replies) {
        free_parts(h);
        return NULL;
    }
    if (!(h->ready = ts_ready_start(cfg, h->replies, err, errlen))) {
        ts_replies_stop(h->replies);
        free_parts(h);
        return NULL;
    }
    /* The per-address cap is libmicrohttpd's, fixed at start: the mode at
     * start decides its default. */
    int per_ip = cfg->max_connections_per_ip >= 0 ? cfg->max_connections_per_ip
                 : ts_keys_protected(h->keys)     ? PROTECTED_CONNECTIONS_PER_IP
                                                  : 0;
    /* libmicrohttpd clears a connection's memory pool for each request: 32
     * kB by default, 9% of the ingress's CPU in a burst. 16 kB holds the
     * default header limit (8 kB); bodies are streamed out of it. */
    size_t memory = cfg->max_header_bytes <= 12288 ? 16384 : (size_t)cfg->max_header_bytes + 4096;
    raise_fd_limit(cfg->max_connections);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG | (addr.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    h->daemon = MHD_start_daemon(
        flags, (uint16_t)cfg->http_port, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->http_threads,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->idle_timeout_s, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)cfg->max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)per_ip,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096u, MHD_OPTION_CONNECTION_MEMORY_LIMIT, memory,
        MHD_OPTION_NOTIFY_CONNECTION, ts_guard_notify, h->guard, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, h, MHD_OPTION_END);
    if (!h->daemon) {
        snprintf(err, errlen, "cannot listen on %s port %d", cfg->http_bind, cfg->http_port);
        ts_ready_stop(h->ready);
        ts_replies_stop(h->replies);
        free_parts(h);
        return NULL;
    }
    ts_info("api", "event=listening bind=%s port=%d threads=%d mode=%s per_ip_connections=%d",
            cfg->http_bind, cfg->http_port, cfg->http_threads,
            ts_keys_protected(h->keys) ? "protected" : "open", per_ip);
    return h;
}

void ts_http_stop(ts_http *h) {
    if (!h)
        return;
    /* Not ready from now on (for connections kept alive: new ones are no
     * longer accepted); stop accepting; answer what is in flight; close. */
    atomic_store(&h->draining, true);
    MHD_socket listener = MHD_quiesce_daemon(h->daemon);
    if (listener != MHD_INVALID_SOCKET)
        close(listener);
    ts_replies_drain(h->replies);
    ts_readers_drain(h->readers); /* after the writes: an event change's answer is a read */
    MHD_stop_daemon(h->daemon);
    ts_ready_stop(h->ready); /* before the replies it asks about */
    ts_replies_stop(h->replies);
    free_parts(h);
}
