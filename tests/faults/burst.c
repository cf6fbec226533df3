/* SPDX-License-Identifier: Apache-2.0 */
/* burst.c — see burst.h. One thread per client, each with one libcurl
 * handle (a keep-alive connection, made again by libcurl when it drops);
 * the operations are drawn, in order, from one shared sequence, so the
 * journal's order is the order they were started in. */
#include "burst.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ts_time.h"

#define FB_REQUEST_TIMEOUT_MS 15000L /* longer than the API's reply deadline (5 s) */
#define FB_RETRY_AFTER_CAP_MS 2000
#define FB_RECONNECT_MS 100 /* after a refused or dropped connection */
#define FB_POLL_MS 100      /* between two reads of a 202's Location */

struct fb_burst {
    fb_config cfg;
    pthread_mutex_t lock; /* guards everything below but `ops` entries a client owns */
    char urls[FB_MAX_URLS][128];
    int nurls;
    fb_op *ops;
    size_t nops, cap;
    int claimed;                     /* burst operations handed out */
    char (*events)[TS_UUID_LEN + 1]; /* the base events; [0] is the hot one */
    size_t *pool;                    /* registrations answered 201, not yet cancelled */
    size_t npool;
    unsigned rng;
    long finished;
    pthread_t *threads;
    int nthreads; /* started and not yet joined */
};

typedef struct answer {
    long status;
    char *body;
    size_t len;
    char location[256];
    char retry_after[16];
} answer;

static void pause_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static unsigned next_rand(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return (*s >> 16) & 0x7fff;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg) {
    answer *a = arg;
    size_t n = size * nmemb;
    char *p = realloc(a->body, a->len + n + 1);
    if (!p)
        return 0;
    a->body = p;
    memcpy(a->body + a->len, data, n);
    a->len += n;
    a->body[a->len] = '\0';
    return n;
}

static void header_value(const char *line, size_t n, const char *name, char *out, size_t cap) {
    size_t k = strlen(name);
    if (n > k && strncasecmp(line, name, k) == 0)
        snprintf(out, cap, "%.*s", (int)strcspn(line + k, "\r\n"), line + k);
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg) {
    answer *a = arg;
    size_t n = size * nmemb;
    header_value(data, n, "Location: ", a->location, sizeof a->location);
    header_value(data, n, "Retry-After: ", a->retry_after, sizeof a->retry_after);
    return n;
}

/* One HTTP exchange on the client's handle. 0 with *a filled, or -1 when
 * no answer came (refused, dropped, timed out). */
static int exchange(CURL *c, const char *method, const char *url, const char *body, const char *key,
                    answer *a) {
    memset(a, 0, sizeof *a);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    char idem[96];
    if (key) {
        snprintf(idem, sizeof idem, "Idempotency-Key: %s", key);
        h = curl_slist_append(h, idem);
    }
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, FB_REQUEST_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(h);
    if (rc != CURLE_OK) {
        free(a->body);
        a->body = NULL;
        return -1;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
    return 0;
}

static void url_at(fb_burst *b, int i, char *out, size_t cap) {
    pthread_mutex_lock(&b->lock);
    snprintf(out, cap, "%s", b->urls[i % b->nurls]);
    pthread_mutex_unlock(&b->lock);
}

/* The final answer's ids and code, from its JSON body (an answer's, or
 * the `result` of a done command). */
static void take_result(fb_op *op, long status, json_t *body) {
    op->status = status;
    const char *code = json_string_value(json_object_get(body, "code"));
    snprintf(op->code, sizeof op->code, "%s", code ? code : "");
    const char *id =
        json_string_value(json_object_get(body, op->kind == FB_CREATE ? "id" : "user_id"));
    if (id && status / 100 == 2)
        ts_uuid_normalize(id, op->result_id);
}

/* Reads a 202's Location until the command is done. True with the op's
 * final answer set, false at the deadline. */
static bool await_done(fb_burst *b, CURL *c, fb_op *op, const char *location, int *url_index,
                       int64_t deadline) {
    while (ts_monotonic_ms() < deadline) {
        char base[128], url[512];
        url_at(b, *url_index, base, sizeof base);
        snprintf(url, sizeof url, "%s%s", base, location);
        answer a;
        if (exchange(c, "GET", url, NULL, NULL, &a)) {
            ++*url_index;
            pause_ms(FB_RECONNECT_MS);
            continue;
        }
        json_t *j = a.status == 200 ? json_loads(a.body ? a.body : "", 0, NULL) : NULL;
        const char *st = json_string_value(json_object_get(j, "status"));
        bool done = st && strcmp(st, "done") == 0;
        if (done)
            take_result(op, (long)json_integer_value(json_object_get(j, "http_status")),
                        json_object_get(j, "result"));
        json_decref(j);
        free(a.body);
        if (done)
            return true;
        pause_ms(FB_POLL_MS);
    }
    return false;
}

/* Runs one operation to its final answer, as the README tells clients to. */
static void perform(fb_burst *b, CURL *c, fb_op *op, int url_index) {
    char path[160], body[256];
    json_t *j;
    if (op->kind == FB_CREATE) {
        snprintf(path, sizeof path, "/api/events");
        j = json_pack("{s:s, s:s, s:s, s:i}", "title", op->text, "starts_at",
                      "2031-06-01T18:00:00Z", "location", "Fault Hall", "capacity", op->capacity);
    } else if (op->kind == FB_REGISTER) {
        snprintf(path, sizeof path, "/api/events/%s/register", op->event_id);
        j = json_pack("{s:s, s:s}", "name", "Fan", "email", op->text);
    } else {
        snprintf(path, sizeof path, "/api/events/%s/cancel", op->event_id);
        j = json_pack("{s:s}", "userId", op->user_id);
    }
    char *text = json_dumps(j, JSON_COMPACT);
    snprintf(body, sizeof body, "%s", text ? text : "");
    free(text);
    json_decref(j);

    op->t_start = ts_monotonic_ms();
    int64_t deadline = op->t_start + b->cfg.deadline_ms;
    while (ts_monotonic_ms() < deadline) {
        char base[128], url[300];
        url_at(b, url_index, base, sizeof base);
        snprintf(url, sizeof url, "%s%s", base, path);
        op->attempts++;
        answer a;
        if (exchange(c, "POST", url, body, op->key, &a)) {
            op->ndropped++; /* the next instance, if there are several */
            url_index++;
            pause_ms(FB_RECONNECT_MS);
            continue;
        }
        if (a.status == 503) {
            op->n503++;
            long wait = atol(a.retry_after) * 1000;
            free(a.body);
            pause_ms(wait < 100                     ? 100
                     : wait > FB_RETRY_AFTER_CAP_MS ? FB_RETRY_AFTER_CAP_MS
                                                    : wait);
            continue;
        }
        if (a.status == 202) {
            op->n202++;
            char location[256];
            snprintf(location, sizeof location, "%s", a.location);
            free(a.body);
            if (await_done(b, c, op, location, &url_index, deadline))
                break;
            continue; /* the deadline passed: the loop ends */
        }
        json_t *r = json_loads(a.body ? a.body : "", JSON_DECODE_ANY, NULL);
        take_result(op, a.status, r);
        json_decref(r);
        free(a.body);
        break;
    }
    op->t_end = ts_monotonic_ms();
}

/* The next operation of the burst, decided now (a cancellation needs a
 * registration answered 201 before), or NULL when all are handed out. */
static fb_op *claim(fb_burst *b) {
    pthread_mutex_lock(&b->lock);
    fb_op *op = NULL;
    if (b->claimed < b->cfg.ops) {
        size_t i = b->nops++;
        b->claimed++;
        op = &b->ops[i];
        memset(op, 0, sizeof *op);
        ts_uuid_new(op->key);
        unsigned r = next_rand(&b->rng) % 100;
        if (r < 5) {
            op->kind = FB_CREATE;
            op->capacity = 5;
            snprintf(op->text, sizeof op->text, "fault %u op %zu", b->cfg.seed, i);
        } else if (r < 20 && b->npool > 0) {
            size_t k = next_rand(&b->rng) % b->npool;
            const fb_op *reg = &b->ops[b->pool[k]];
            b->pool[k] = b->pool[--b->npool];
            op->kind = FB_CANCEL;
            snprintf(op->event_id, sizeof op->event_id, "%s", reg->event_id);
            snprintf(op->text, sizeof op->text, "%s", reg->text);
            snprintf(op->user_id, sizeof op->user_id, "%s", reg->user_id);
        } else {
            op->kind = FB_REGISTER;
            int e = next_rand(&b->rng) % 100 < 40 || b->cfg.events < 2
                        ? 0
                        : 1 + (int)(next_rand(&b->rng) % (unsigned)(b->cfg.events - 1));
            snprintf(op->event_id, sizeof op->event_id, "%s", b->events[e]);
            snprintf(op->text, sizeof op->text, "f%ux%zu@faults.example", b->cfg.seed, i);
            ts_uuid_for_email(op->text, op->user_id);
        }
    }
    pthread_mutex_unlock(&b->lock);
    return op;
}

static void finish(fb_burst *b, fb_op *op) {
    pthread_mutex_lock(&b->lock);
    if (op->kind == FB_REGISTER && op->status == 201)
        b->pool[b->npool++] = (size_t)(op - b->ops);
    b->finished++;
    pthread_mutex_unlock(&b->lock);
}

typedef struct client {
    fb_burst *b;
    int index;
} client;

static void *run_client(void *arg) {
    client *me = arg;
    CURL *c = curl_easy_init();
    fb_op *op;
    while (c && (op = claim(me->b))) {
        perform(me->b, c, op, me->index);
        finish(me->b, op);
    }
    curl_easy_cleanup(c);
    free(me);
    return NULL;
}

fb_burst *fb_start(const fb_config *cfg, const char *const *urls, int nurls) {
    curl_global_init(CURL_GLOBAL_ALL);
    fb_burst *b = calloc(1, sizeof *b);
    b->cfg = *cfg;
    pthread_mutex_init(&b->lock, NULL);
    b->nurls = nurls < FB_MAX_URLS ? nurls : FB_MAX_URLS;
    for (int i = 0; i < b->nurls; i++)
        snprintf(b->urls[i], sizeof b->urls[i], "%s", urls[i]);
    b->cap = (size_t)cfg->events + (size_t)cfg->ops;
    b->ops = calloc(b->cap, sizeof *b->ops);
    b->pool = calloc(b->cap, sizeof *b->pool);
    b->events = calloc((size_t)cfg->events, sizeof *b->events);
    b->threads = calloc((size_t)cfg->clients, sizeof *b->threads);
    b->rng = cfg->seed;
    if (!b->ops || !b->pool || !b->events || !b->threads) {
        fb_free(b);
        return NULL;
    }

    /* the base events, one at a time, each an operation of the journal */
    CURL *c = curl_easy_init();
    for (int e = 0; e < cfg->events; e++) {
        fb_op *op = &b->ops[b->nops++];
        op->kind = FB_CREATE;
        ts_uuid_new(op->key);
        snprintf(op->text, sizeof op->text, "fault %u base %d", cfg->seed, e);
        op->capacity = e == 0 ? cfg->hot_capacity : cfg->ops + 1; /* the others never fill */
        perform(b, c, op, 0);
        b->finished++;
        if (op->status != 201) {
            fprintf(stderr,
                    "burst: base event %d: HTTP %ld %s after %lld ms (%d attempts, %d dropped, "
                    "%d 503, %d 202)\n",
                    e, op->status, op->code, (long long)(op->t_end - op->t_start), op->attempts,
                    op->ndropped, op->n503, op->n202);
            curl_easy_cleanup(c);
            fb_free(b);
            return NULL;
        }
        snprintf(b->events[e], sizeof b->events[e], "%s", op->result_id);
    }
    curl_easy_cleanup(c);
    for (int i = 0; i < cfg->clients; i++) {
        client *me = malloc(sizeof *me);
        me->b = b;
        me->index = i;
        if (pthread_create(&b->threads[b->nthreads], NULL, run_client, me) == 0)
            b->nthreads++;
        else
            free(me);
    }
    return b;
}

void fb_set_url(fb_burst *b, int i, const char *url) {
    pthread_mutex_lock(&b->lock);
    snprintf(b->urls[i], sizeof b->urls[i], "%s", url);
    pthread_mutex_unlock(&b->lock);
}

long fb_finished(fb_burst *b) {
    pthread_mutex_lock(&b->lock);
    long n = b->finished;
    pthread_mutex_unlock(&b->lock);
    return n;
}

void fb_join(fb_burst *b) {
    for (; b->nthreads > 0; b->nthreads--)
        pthread_join(b->threads[b->nthreads - 1], NULL);
}

const fb_op *fb_ops(const fb_burst *b, size_t *n) {
    *n = b->nops;
    return b->ops;
}

const char *fb_hot_event(const fb_burst *b) {
    return b->events[0];
}

void fb_free(fb_burst *b) {
    if (!b)
        return;
    fb_join(b);
    pthread_mutex_destroy(&b->lock);
    free(b->ops);
    free(b->pool);
    free(b->events);
    free(b->threads);
    free(b);
}
