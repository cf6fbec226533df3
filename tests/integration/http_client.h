/* http_client.h — a small HTTP client for the integration tests, on
 * libcurl: one request at a time, or a burst of many at once. */
#ifndef TS_HTTP_CLIENT_H
#define TS_HTTP_CLIENT_H

#include <jansson.h>
#include <stddef.h>

typedef struct it_http_result {
    long status;   /* 0 when no HTTP answer came */
    char *body;    /* NUL-terminated */
    size_t len;
    json_t *json;  /* the body parsed, or NULL */
    char location[256];
    char retry_after[16];
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
    double seconds;   /* time from start to answer */
} it_http_request;

/* Makes `req` a registration: POST base/api/events/<event_id>/register
 * with {"name": name, "email": email}. */
void it_http_registration(it_http_request *req, const char *base, const char *event_id,
                          const char *name, const char *email);

/* Runs all the requests with up to `concurrency` at once. */
void it_http_burst(it_http_request *reqs, size_t n, int concurrency);

/* A string member of the JSON body, or "" */
const char *it_json_str(const it_http_result *r, const char *key);

#endif
