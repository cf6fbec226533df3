/* SPDX-License-Identifier: Apache-2.0 */
/* ts_registry.c — see ts_registry.h. One libcurl easy handle per client,
 * so that successive calls reuse its connection; every call sets all its
 * options again (curl_easy_reset), so a call never inherits another's body
 * or headers. The schemas fetched are kept in an array sorted by id. */
#include "ts_registry.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct cached {
    int32_t id;
    char *schema;
} cached;

struct ts_registry {
    char *url; /* the API's base, without a trailing '/' */
    long timeout_ms;
    CURL *curl;
    char curl_err[CURL_ERROR_SIZE];
    cached *cache; /* sorted by id */
    size_t ncache, cache_cap;
};

/* An answer's body, NUL-terminated, bounded by TS_REGISTRY_MAX_RESPONSE. */
typedef struct body {
    char *data;
    size_t len;
    bool too_big, no_memory;
} body;

/* curl_global_init is not safe to race with anything else of libcurl's:
 * called once, whichever thread gets here first. Never undone (curl's
 * global state lives as long as the process). */
static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;
static void global_init(void) {
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

const char *ts_registry_status_name(ts_registry_status s) {
    switch (s) {
    case TS_REGISTRY_OK: return "ok";
    case TS_REGISTRY_NOT_FOUND: return "not found";
    case TS_REGISTRY_UNAVAILABLE: return "unavailable";
    case TS_REGISTRY_ERROR: return "error";
    }
    return "?";
}

ts_registry *ts_registry_new(const char *url, int timeout_ms, char *err, size_t errlen) {
    if (!url || (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0)) {
        snprintf(err, errlen, "schema registry URL '%s': expected http://... or https://...",
                 url ? url : "");
        return NULL;
    }
    if (timeout_ms <= 0) {
        snprintf(err, errlen, "schema registry: a timeout of %d ms", timeout_ms);
        return NULL;
    }
    if (pthread_once(&global_once, global_init) != 0 || global_rc != CURLE_OK) {
        snprintf(err, errlen, "schema registry: libcurl cannot start: %s",
                 curl_easy_strerror(global_rc));
        return NULL;
    }
    ts_registry *r = calloc(1, sizeof *r);
    if (!r || !(r->url = strdup(url)) || !(r->curl = curl_easy_init())) {
        snprintf(err, errlen, "schema registry: out of memory");
        ts_registry_free(r);
        return NULL;
    }
    size_t n = strlen(r->url);
    while (n > 0 && r->url[n - 1] == '/')
        r->url[--n] = '\0';
    r->timeout_ms = timeout_ms;
    return r;
}

void ts_registry_free(ts_registry *r) {
    if (!r)
        return;
    for (size_t i = 0; i < r->ncache; i++)
        free(r->cache[i].schema);
    free(r->cache);
    if (r->curl)
        curl_easy_cleanup(r->curl);
    free(r->url);
    free(r);
}

/* ------------------------------------------------------------ HTTP */

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *arg) {
    body *b = arg;
    size_t add = size * nmemb; /* size is 1: curl hands bytes */
    if (add > TS_REGISTRY_MAX_RESPONSE - b->len) {
        b->too_big = true;
        return 0; /* curl stops: CURLE_WRITE_ERROR */
    }
    char *data = realloc(b->data, b->len + add + 1);
    if (!data) {
        b->no_memory = true;
        return 0;
    }
    memcpy(data + b->len, ptr, add);
    b->len += add;
    data[b->len] = '\0';
    b->data = data;
    return add;
}

/* One request: GET, or POST of `post` (JSON). Its HTTP status in *http and
 * its body in *b (caller frees b->data) when the registry answered
 * (TS_REGISTRY_OK); otherwise why not, in `err`. */
static ts_registry_status perform(ts_registry *r, const char *url, const char *post, long *http,
                                  body *b, char *err, size_t errlen) {
    CURL *c = r->curl;
    struct curl_slist *headers =
        curl_slist_append(NULL, "Accept: application/vnd.schemaregistry.v1+json, application/json");
    if (headers && post) {
        struct curl_slist *more =
            curl_slist_append(headers, "Content-Type: application/vnd.schemaregistry.v1+json");
        if (!more) {
            curl_slist_free_all(headers);
            headers = NULL;
        } else {
            headers = more;
        }
    }
    if (!headers) {
        snprintf(err, errlen, "schema registry: out of memory");
        return TS_REGISTRY_ERROR;
    }
    curl_easy_reset(c); /* the connection stays; the options go */
    r->curl_err[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->curl_err);
    /* no SIGALRM for the resolver's timeout: signals are the process's */
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, r->timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, r->timeout_ms);
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85 */
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE, (long)TS_REGISTRY_MAX_RESPONSE);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    if (post) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(post));
    }
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(headers);
    if (b->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
        snprintf(err, errlen, "schema registry: %s: an answer over %d bytes", url,
                 TS_REGISTRY_MAX_RESPONSE);
        return TS_REGISTRY_ERROR;
    }
    if (b->no_memory || rc == CURLE_OUT_OF_MEMORY) {
        snprintf(err, errlen, "schema registry: %s: out of memory", url);
        return TS_REGISTRY_ERROR;
    }
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "schema registry unavailable: %s: %s", url,
                 r->curl_err[0] ? r->curl_err : curl_easy_strerror(rc));
        return TS_REGISTRY_UNAVAILABLE;
    }
    *http = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, http);
    return TS_REGISTRY_OK;
}

/* Adds to the message in `err`. */
__attribute__((format(printf, 3, 4))) static void append(char *err, size_t errlen, const char *fmt,
                                                         ...) {
    size_t n = strnlen(err, errlen);
    if (n + 1 >= errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - n, fmt, ap);
    va_end(ap);
}

/* An answer other than 2xx: what it means, said in `err` with the
 * registry's own message and error code when it gave them. A 404 means
 * "not found" only with `not_found_code` (the API's code for what was
 * looked up; 0: none): a 404 without it is a URL that is not a
 * registry's. */
static ts_registry_status failed(const char *url, long http, const body *b, long not_found_code,
                                 char *err, size_t errlen) {
    json_t *j = b->data ? json_loadb(b->data, b->len, 0, NULL) : NULL;
    const char *message = json_string_value(json_object_get(j, "message"));
    json_int_t code = json_integer_value(json_object_get(j, "error_code"));
    ts_registry_status s = TS_REGISTRY_ERROR;
    if (http == 404 && not_found_code && code == not_found_code)
        s = TS_REGISTRY_NOT_FOUND;
    else if (http >= 500 || http == 408 || http == 429)
        s = TS_REGISTRY_UNAVAILABLE;
    snprintf(err, errlen, "schema registry%s: %s: HTTP %ld",
             s == TS_REGISTRY_UNAVAILABLE ? " unavailable" : "", url, http);
    if (code)
        append(err, errlen, " (error_code %lld)", (long long)code);
    if (message)
        append(err, errlen, ": %.300s", message);
    json_decref(j);
    return s;
}

/* ------------------------------------------------------------ schemas by id */

/* Where `id` is in the cache, or where it would go (*found false). */
static size_t cache_find(const ts_registry *r, int32_t id, bool *found) {
    size_t lo = 0, hi = r->ncache;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->cache[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < r->ncache && r->cache[lo].id == id;
    return lo;
}

/* Keeps `schema` (taken over) for `id` at `at`. -1 without memory (then
 * `schema` is freed). */
static int cache_insert(ts_registry *r, size_t at, int32_t id, char *schema) {
    if (r->ncache == r->cache_cap) {
        size_t cap = r->cache_cap ? r->cache_cap * 2 : 16;
        cached *c = realloc(r->cache, cap * sizeof *c);
        if (!c) {
            free(schema);
            return -1;
        }
        r->cache = c;
        r->cache_cap = cap;
    }
    memmove(r->cache + at + 1, r->cache + at, (r->ncache - at) * sizeof *r->cache);
    r->cache[at] = (cached){id, schema};
    r->ncache++;
    return 0;
}

/* The "schema" of a 200 answer to /schemas/ids/{id}, copied; NULL with
 * `err` set. */
static char *schema_of(const char *url, const body *b, char *err, size_t errlen) {
    json_error_t jerr;
    json_t *j = b->data ? json_loadb(b->data, b->len, 0, &jerr) : NULL;
    json_t *s = json_object_get(j, "schema");
    char *copy = NULL;
    if (!json_is_string(s)) {
        snprintf(err, errlen, "schema registry: %s: an answer without a \"schema\" string", url);
    } else if (strlen(json_string_value(s)) != json_string_length(s)) {
        snprintf(err, errlen, "schema registry: %s: a schema with a NUL character", url);
    } else if (!(copy = strdup(json_string_value(s)))) {
        snprintf(err, errlen, "schema registry: out of memory");
    }
    json_decref(j);
    return copy;
}

ts_registry_status ts_registry_schema(ts_registry *r, int32_t id, const char **schema_json,
                                      char *err, size_t errlen) {
    *schema_json = NULL;
    if (id < 1) {
        snprintf(err, errlen, "schema registry: no schema has the id %d", (int)id);
        return TS_REGISTRY_NOT_FOUND;
    }
    bool found;
    size_t at = cache_find(r, id, &found);
    if (found) {
        *schema_json = r->cache[at].schema;
        return TS_REGISTRY_OK;
    }
    char *url = malloc(strlen(r->url) + 32);
    if (!url) {
        snprintf(err, errlen, "schema registry: out of memory");
        return TS_REGISTRY_ERROR;
    }
    snprintf(url, strlen(r->url) + 32, "%s/schemas/ids/%d", r->url, (int)id);
    body b = {0};
    long http = 0;
    ts_registry_status s = perform(r, url, NULL, &http, &b, err, errlen);
    if (s == TS_REGISTRY_OK && http != 200) {
        s = failed(url, http, &b, 40403, err, errlen);
    } else if (s == TS_REGISTRY_OK) {
        char *schema = schema_of(url, &b, err, errlen);
        if (!schema || cache_insert(r, at, id, schema)) {
            if (schema)
                snprintf(err, errlen, "schema registry: out of memory");
            s = TS_REGISTRY_ERROR;
        } else {
            *schema_json = r->cache[at].schema;
        }
    }
    free(b.data);
    free(url);
    return s;
}

/* ------------------------------------------------------------ registering */

ts_registry_status ts_registry_register(ts_registry *r, const char *subject,
                                        const char *schema_json, int32_t *id, char *err,
                                        size_t errlen) {
    *id = 0;
    ts_registry_status s = TS_REGISTRY_ERROR;
    char *escaped = curl_easy_escape(r->curl, subject, 0);
    size_t url_size = strlen(r->url) + (escaped ? strlen(escaped) : 0) + 32;
    char *url = escaped ? malloc(url_size) : NULL;
    json_t *req = json_object(), *answer = NULL;
    char *post = NULL;
    body b = {0};
    long http = 0;
    if (!url || !req) {
        snprintf(err, errlen, "schema registry: out of memory");
        goto done;
    }
    snprintf(url, url_size, "%s/subjects/%s/versions", r->url, escaped);
    /* The text without the whitespace around it: what standard
     * serializers send for a schema read from a file (confluent-kafka's
     * strips it), and a registry that matches schemas by their text
     * (Apicurio) must see the same. json_stringn: UTF-8, as JSON is. */
    size_t start = strspn(schema_json, " \t\r\n"), end = strlen(schema_json);
    while (end > start && strchr(" \t\r\n", schema_json[end - 1]))
        end--;
    if (json_object_set_new(req, "schema", json_stringn(schema_json + start, end - start)) ||
        !(post = json_dumps(req, JSON_COMPACT))) {
        snprintf(err, errlen, "schema registry: the schema of %s is not UTF-8 text (or no memory)",
                 subject);
        goto done;
    }
    s = perform(r, url, post, &http, &b, err, errlen);
    if (s != TS_REGISTRY_OK)
        goto done;
    if (http != 200) {
        s = failed(url, http, &b, 0, err, errlen); /* a 404 here is an error */
        goto done;
    }
    answer = b.data ? json_loadb(b.data, b.len, 0, NULL) : NULL;
    json_t *jid = json_object_get(answer, "id");
    json_int_t v = json_integer_value(jid);
    if (!json_is_integer(jid) || v < 1 || v > INT32_MAX) {
        snprintf(err, errlen, "schema registry: %s: an answer without an id", url);
        s = TS_REGISTRY_ERROR;
        goto done;
    }
    *id = (int32_t)v;
done:
    json_decref(answer);
    json_decref(req);
    free(post);
    curl_free(escaped);
    free(url);
    free(b.data);
    return s;
}
