/* SPDX-License-Identifier: Apache-2.0 */
/* http_client.h — a small HTTP client for the integration tests, on
 * libcurl: one request at a time, or a burst of many at once. */
#ifndef TS_HTTP_CLIENT_H
#define TS_HTTP_CLIENT_H

#include <jansson.h>
#include <stddef.h>

typedef struct it_http_result {
    long status; /* 0 when no HTTP answer came */
    char *body;  /* NUL-terminated */
    size_t len;
    json_t *json; /* the body parsed, or NULL */
    char location[256];
    char retry_after[16];
    char *headers; /* every response header line, kept by it_http_ex and
                    * it_http_paced only (see it_http_header); else NULL */
} it_http_result;

/* One request; `headers` is a NULL-terminated list of "Name: value". */
it_http_result it_http(const char *method, const char *url, const char *body,
                       const char *const *headers);
void it_http_free(it_http_result *r);

typedef struct it_http_request {
    const char *method;
    char url[256];
    char body[512];
    char header[128]; /* one extra header, or "" */
    it_http_result result;
    double seconds; /* time from start to answer */
    /* it_http_paced only (it_http_burst ignores them): */
    char source[32]; /* local address to connect from, e.g. "127.0.0.2"; "" any */
    long due_ms;     /* when to send it, in ms from the start of the run */
} it_http_request;

/* Makes `req` a registration: POST base/api/events/<event_id>/register
 * with {"name": name, "email": email}. */
void it_http_registration(it_http_request *req, const char *base, const char *event_id,
                          const char *name, const char *email);

/* Runs all the requests with up to `concurrency` at once. */
void it_http_burst(it_http_request *reqs, size_t n, int concurrency);

/* A string member of the JSON body, or "" */
const char *it_json_str(const it_http_result *r, const char *key);

/* Options of it_http_ex. */
typedef struct it_http_opts {
    const char *const *headers; /* NULL-terminated "Name: value" list, or NULL */
    const char *source;         /* local address to connect from (the whole of
                                 * 127.0.0.0/8 is loopback on Linux), or NULL */
    long timeout_ms;            /* the whole request; 0: 60 s */
} it_http_opts;

/* One request, as it_http, with options; the response's headers are kept
 * (it_http_header). Every call is a connection of its own. */
it_http_result it_http_ex(const char *method, const char *url, const char *body,
                          const it_http_opts *opts);

/* The value of the response header `name` (case-insensitive), as kept by
 * it_http_ex or it_http_paced, or NULL if there was none. Points into a
 * static buffer overwritten by the next call. */
const char *it_http_header(const it_http_result *r, const char *name);

/* Runs the requests concurrently, each sent at its due_ms from the start
 * (whatever the others are doing), each on a fresh connection from its
 * source address; the response headers are kept, and `seconds` counts from
 * the request's due time. */
void it_http_paced(it_http_request *reqs, size_t n);

#endif
