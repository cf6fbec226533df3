/* SPDX-License-Identifier: Apache-2.0 */
/* http_client.c — see http_client.h. */
#include "http_client.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg) {
    it_http_result *r = arg;
    size_t n = size * nmemb;
    char *p = realloc(r->body, r->len + n + 1);
    if (!p)
        return 0;
    r->body = p;
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg) {
    it_http_result *r = arg;
    size_t n = size * nmemb;
    if (n > 10 && strncasecmp(data, "Location: ", 10) == 0)
        snprintf(r->location, sizeof r->location, "%.*s", (int)strcspn(data + 10, "\r\n"),
                 data + 10);
    if (n > 13 && strncasecmp(data, "Retry-After: ", 13) == 0)
        snprintf(r->retry_after, sizeof r->retry_after, "%.*s", (int)strcspn(data + 13, "\r\n"),
                 data + 13);
    return n;
}

static CURL *make(const char *method, const char *url, const char *body, struct curl_slist *headers,
                  it_http_result *r) {
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    return c;
}

static void finish(CURL *c, it_http_result *r) {
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    if (r->body)
        r->json = json_loads(r->body, JSON_DECODE_ANY, NULL);
}

it_http_result it_http(const char *method, const char *url, const char *body,
                       const char *const *headers) {
    it_http_result r = {0};
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    for (; headers && *headers; headers++)
        h = curl_slist_append(h, *headers);
    CURL *c = make(method, url, body, h, &r);
    if (curl_easy_perform(c) == CURLE_OK)
        finish(c, &r);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    return r;
}

void it_http_free(it_http_result *r) {
    free(r->body);
    free(r->headers);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

void it_http_registration(it_http_request *req, const char *base, const char *event_id,
                          const char *name, const char *email) {
    req->method = "POST";
    snprintf(req->url, sizeof req->url, "%s/api/events/%s/register", base, event_id);
    json_t *body = json_pack("{s:s, s:s}", "name", name, "email", email);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    snprintf(req->body, sizeof req->body, "%s", text ? text : "");
    free(text);
    json_decref(body);
}

void it_http_burst(it_http_request *reqs, size_t n, int concurrency) {
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)concurrency);
    struct curl_slist **headers = calloc(n, sizeof *headers);
    CURL **handles = calloc(n, sizeof *handles);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t i = 0; i < n; i++) {
        memset(&reqs[i].result, 0, sizeof reqs[i].result);
        headers[i] = curl_slist_append(NULL, "Content-Type: application/json");
        if (reqs[i].header[0])
            headers[i] = curl_slist_append(headers[i], reqs[i].header);
        handles[i] = make(reqs[i].method, reqs[i].url, reqs[i].body[0] ? reqs[i].body : NULL,
                          headers[i], &reqs[i].result);
        curl_easy_setopt(handles[i], CURLOPT_PRIVATE, &reqs[i]);
        curl_multi_add_handle(m, handles[i]);
    }
    int running = 1;
    while (running) {
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            it_http_request *req;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&req);
            struct timespec t;
            clock_gettime(CLOCK_MONOTONIC, &t);
            req->seconds = (double)(t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9;
            if (msg->data.result == CURLE_OK)
                finish(msg->easy_handle, &req->result);
        }
        if (running)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    for (size_t i = 0; i < n; i++) {
        curl_multi_remove_handle(m, handles[i]);
        curl_easy_cleanup(handles[i]);
        curl_slist_free_all(headers[i]);
    }
    free(handles);
    free(headers);
    curl_multi_cleanup(m);
}

const char *it_json_str(const it_http_result *r, const char *key) {
    const char *s = json_string_value(json_object_get(r->json, key));
    return s ? s : "";
}

/* ------------------------------------------------------------ with options */

/* on_header, and every header line kept in r->headers. */
static size_t on_header_kept(char *data, size_t size, size_t nmemb, void *arg) {
    it_http_result *r = arg;
    size_t n = on_header(data, size, nmemb, arg);
    size_t have = r->headers ? strlen(r->headers) : 0;
    char *p = realloc(r->headers, have + n + 1);
    if (!p)
        return 0;
    r->headers = p;
    memcpy(r->headers + have, data, n);
    r->headers[have + n] = '\0';
    return n;
}

static void set_options(CURL *c, it_http_result *r, const char *source, long timeout_ms) {
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header_kept);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
    if (timeout_ms > 0)
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    if (source && *source) {
        char iface[64];
        snprintf(iface, sizeof iface, "host!%s", source);
        curl_easy_setopt(c, CURLOPT_INTERFACE, iface);
    }
}

it_http_result it_http_ex(const char *method, const char *url, const char *body,
                          const it_http_opts *opts) {
    it_http_result r = {0};
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    for (const char *const *p = opts ? opts->headers : NULL; p && *p; p++)
        h = curl_slist_append(h, *p);
    CURL *c = make(method, url, body, h, &r);
    set_options(c, &r, opts ? opts->source : NULL, opts ? opts->timeout_ms : 0);
    if (curl_easy_perform(c) == CURLE_OK)
        finish(c, &r);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    return r;
}

const char *it_http_header(const it_http_result *r, const char *name) {
    static char value[1024];
    size_t n = strlen(name);
    for (const char *line = r->headers; line && *line;) {
        size_t len = strcspn(line, "\r\n");
        if (len > n && strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            snprintf(value, sizeof value, "%.*s", (int)(len - (size_t)(v - line)), v);
            return value; /* the last response's, for a 100 Continue before it */
        }
        line += len;
        line += strspn(line, "\r\n");
    }
    return NULL;
}

void it_http_paced(it_http_request *reqs, size_t n) {
    CURLM *m = curl_multi_init();
    struct curl_slist **headers = calloc(n, sizeof *headers);
    CURL **handles = calloc(n, sizeof *handles);
    size_t *order = calloc(n, sizeof *order); /* by due time */
    for (size_t i = 0; i < n; i++) {
        size_t j = i;
        for (; j > 0 && reqs[order[j - 1]].due_ms > reqs[i].due_ms; j--)
            order[j] = order[j - 1];
        order[j] = i;
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t next = 0, done = 0;
    while (done < n) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        long now = (long)(t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
        for (; next < n && reqs[order[next]].due_ms <= now; next++) {
            size_t i = order[next];
            memset(&reqs[i].result, 0, sizeof reqs[i].result);
            headers[i] = curl_slist_append(NULL, "Content-Type: application/json");
            if (reqs[i].header[0])
                headers[i] = curl_slist_append(headers[i], reqs[i].header);
            handles[i] = make(reqs[i].method, reqs[i].url, reqs[i].body[0] ? reqs[i].body : NULL,
                              headers[i], &reqs[i].result);
            set_options(handles[i], &reqs[i].result, reqs[i].source, 0);
            curl_easy_setopt(handles[i], CURLOPT_PRIVATE, &reqs[i]);
            curl_multi_add_handle(m, handles[i]);
        }
        int running;
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            it_http_request *req;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&req);
            clock_gettime(CLOCK_MONOTONIC, &t);
            /* from when it was due, not from the start of the run */
            req->seconds = (double)(t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 -
                           (double)req->due_ms / 1000.0;
            if (msg->data.result == CURLE_OK)
                finish(msg->easy_handle, &req->result);
            done++;
        }
        long wait = 100;
        if (next < n && reqs[order[next]].due_ms - now < wait)
            wait = reqs[order[next]].due_ms - now;
        if (done < n)
            curl_multi_poll(m, NULL, 0, wait > 0 ? (int)wait : 0, NULL);
    }
    for (size_t i = 0; i < n; i++) {
        curl_multi_remove_handle(m, handles[i]);
        curl_easy_cleanup(handles[i]);
        curl_slist_free_all(headers[i]);
    }
    free(order);
    free(handles);
    free(headers);
    curl_multi_cleanup(m);
}
