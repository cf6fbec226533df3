/* SPDX-License-Identifier: Apache-2.0 */
/* Integration over HTTP: the real turnstile-api and turnstile-worker
 * binaries on the real broker and PostgreSQL, driven through the API's
 * port as a client of the original service would. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "harness.h"
#include "http_client.h"
#include "routes.h"
#include "ts_time.h"
#include "ts_uuid.h"

static it_env env;
static char base[64];

static int setup(void **state) {
    (void)state;
    if (it_setup(&env, 4, 1))
        return -1;
    it_start_worker(&env, 0);
    it_start_api(&env, 0, 0, base, sizeof base);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    it_teardown(&env);
    return 0;
}

static it_http_result post(const char *path, const char *body) {
    char url[256];
    snprintf(url, sizeof url, "%s%s", base, path);
    return it_http("POST", url, body, NULL);
}

static it_http_result get(const char *path) {
    char url[256];
    snprintf(url, sizeof url, "%s%s", base, path);
    return it_http("GET", url, NULL, NULL);
}

static void iso_in_days(int days, char out[TS_ISO8601_LEN + 1]) {
    ts_time_format_iso8601(ts_now_ms() + (int64_t)days * 86400000, out);
}

/* POST /api/events; returns the new id in id[37]. */
static void create_event(const char *title, const char *location, int days, int capacity,
                         char id[TS_UUID_LEN + 1]) {
    char when[TS_ISO8601_LEN + 1], body[512];
    iso_in_days(days, when);
    snprintf(body, sizeof body,
             "{\"title\":\"%s\",\"starts_at\":\"%s\",\"location\":\"%s\",\"capacity\":%d}", title,
             when, location, capacity);
    it_http_result r = post("/api/events", body);
    assert_int_equal(r.status, 201);
    assert_int_equal(ts_uuid_normalize(it_json_str(&r, "id"), id), 0);
    it_http_free(&r);
}

static long do_register(const char *id, const char *name, const char *email, char *user_id) {
    char path[128], body[256];
    snprintf(path, sizeof path, "/api/events/%s/register", id);
    snprintf(body, sizeof body, "{\"name\":\"%s\",\"email\":\"%s\"}", name, email);
    it_http_result r = post(path, body);
    long status = r.status;
    if (user_id)
        snprintf(user_id, TS_UUID_LEN + 1, "%s", it_json_str(&r, "user_id"));
    it_http_free(&r);
    return status;
}

static void expect_error(it_http_result r, long status, const char *error, const char *field) {
    assert_int_equal(r.status, status);
    assert_non_null(r.json);
    if (error)
        assert_string_equal(it_json_str(&r, "error"), error);
    else
        assert_true(strlen(it_json_str(&r, "error")) > 0);
    assert_true(strlen(it_json_str(&r, "code")) > 0);
    if (field)
        assert_string_equal(it_json_str(&r, "field"), field);
    it_http_free(&r);
}

static void stats(const char *id, long long *total, long long *remaining, double *pct) {
    char path[128];
    snprintf(path, sizeof path, "/api/events/%s/stats", id);
    it_http_result r = get(path);
    assert_int_equal(r.status, 200);
    *total = json_integer_value(json_object_get(r.json, "total_registrations"));
    *remaining = json_integer_value(json_object_get(r.json, "remaining_capacity"));
    *pct = json_number_value(json_object_get(r.json, "percentage_used"));
    it_http_free(&r);
}

/* GET /openapi.json: JSON, the document of every route the router knows
 * (the unit tests compare it with the code in detail). */
static void the_openapi_document_is_served_with_every_route(void **state) {
    (void)state;
    char url[128];
    snprintf(url, sizeof url, "%s/openapi.json", base);
    it_http_result r = it_http_ex("GET", url, NULL, &(it_http_opts){0});
    assert_int_equal(r.status, 200);
    assert_string_equal(it_http_header(&r, "Content-Type"), "application/json");
    assert_non_null(r.json);
    assert_string_equal(it_json_str(&r, "openapi"), "3.1.0");
    json_t *paths = json_object_get(r.json, "paths");
    for (size_t i = 0; i < ts_route_count(); i++) {
        const char *method, *pattern;
        ts_route_id id;
        ts_route_at(i, &method, &pattern, &id);
        char path[128], lower[16];
        size_t n = 0, k;
        for (const char *p = pattern; *p && n + 2 < sizeof path; p++) {
            if (*p == ':') { /* ":id" -> "{id}" */
                path[n++] = '{';
                while (p[1] && p[1] != '/' && n + 2 < sizeof path)
                    path[n++] = *++p;
                path[n++] = '}';
            } else {
                path[n++] = *p;
            }
        }
        path[n] = '\0';
        for (k = 0; method[k] && k + 1 < sizeof lower; k++)
            lower[k] = (char)(method[k] - 'A' + 'a');
        lower[k] = '\0';
        if (!json_object_get(json_object_get(paths, path), lower))
            fail_msg("/openapi.json has no %s %s", method, path);
    }
    it_http_free(&r);
}

static void an_event_is_created_read_back_and_listed(void **state) {
    (void)state;
    char id[TS_UUID_LEN + 1], path[128];
    create_event("Launch", "Hall A", 30, 3, id);
    snprintf(path, sizeof path, "/api/events/%s", id);
    it_http_result r = get(path);
    assert_int_equal(r.status, 200);
    assert_string_equal(it_json_str(&r, "id"), id);
    assert_string_equal(it_json_str(&r, "title"), "Launch");
    assert_string_equal(it_json_str(&r, "location"), "Hall A");
    assert_int_equal(json_integer_value(json_object_get(r.json, "capacity")), 3);
    assert_true(json_is_array(json_object_get(r.json, "registrations")));
    assert_int_equal(json_array_size(json_object_get(r.json, "registrations")), 0);
    it_http_free(&r);
}

static void upcoming_events_are_sorted_by_start_then_location(void **state) {
    (void)state;
    char a[TS_UUID_LEN + 1], b[TS_UUID_LEN + 1], c[TS_UUID_LEN + 1], past[TS_UUID_LEN + 1];
    char when[TS_ISO8601_LEN + 1], body[256];
    /* b and c start at the same instant: location breaks the tie */
    iso_in_days(400, when);
    snprintf(body, sizeof body,
             "{\"title\":\"B\",\"starts_at\":\"%s\",\"location\":\"Zurich\",\"capacity\":1}", when);
    it_http_result r = post("/api/events", body);
    assert_int_equal(r.status, 201);
    ts_uuid_normalize(it_json_str(&r, "id"), b);
    it_http_free(&r);
    snprintf(body, sizeof body,
             "{\"title\":\"C\",\"starts_at\":\"%s\",\"location\":\"Amsterdam\",\"capacity\":1}",
             when);
    r = post("/api/events", body);
    assert_int_equal(r.status, 201);
    ts_uuid_normalize(it_json_str(&r, "id"), c);
    it_http_free(&r);
    create_event("A", "Berlin", 399, 1, a);
    create_event("Past", "Rome", -2, 1, past);

    r = get("/api/events?limit=10000");
    assert_int_equal(r.status, 200);
    assert_true(json_is_array(r.json));
    int pos_a = -1, pos_b = -1, pos_c = -1, pos_past = -1;
    const char *prev = "";
    for (size_t i = 0; i < json_array_size(r.json); i++) {
        json_t *e = json_array_get(r.json, i);
        const char *id = json_string_value(json_object_get(e, "id"));
        const char *starts = json_string_value(json_object_get(e, "starts_at"));
        assert_true(strcmp(prev, starts) <= 0); /* ISO 8601 UTC sorts as text */
        prev = starts;
        if (!strcmp(id, a))
            pos_a = (int)i;
        if (!strcmp(id, b))
            pos_b = (int)i;
        if (!strcmp(id, c))
            pos_c = (int)i;
        if (!strcmp(id, past))
            pos_past = (int)i;
    }
    assert_true(pos_a >= 0 && pos_b >= 0 && pos_c >= 0);
    assert_int_equal(pos_past, -1);
    assert_true(pos_a < pos_c && pos_c < pos_b);
    it_http_free(&r);
}

static void the_original_edge_cases_over_http(void **state) {
    (void)state;
    char id[TS_UUID_LEN + 1], past[TS_UUID_LEN + 1], uid[TS_UUID_LEN + 1], path[128];
    long long total, remaining;
    double pct;
    create_event("Small", "Room 1", 10, 3, id);
    stats(id, &total, &remaining, &pct);
    assert_int_equal(total, 0);
    assert_int_equal(remaining, 3);
    assert_true(pct == 0.0);

    assert_int_equal(do_register(id, "Ada", "ada@example.org", uid), 201);
    /* duplicate, also with another case */
    snprintf(path, sizeof path, "/api/events/%s/register", id);
    expect_error(post(path, "{\"name\":\"Ada\",\"email\":\"ADA@example.org\"}"), 400,
                 "User already registered", NULL);
    assert_int_equal(do_register(id, "Bob", "bob@example.org", NULL), 201);
    stats(id, &total, &remaining, &pct);
    assert_int_equal(total, 2);
    assert_int_equal(remaining, 1);
    assert_true(pct == 66.67);
    assert_int_equal(do_register(id, "Cy", "cy@example.org", NULL), 201);
    /* full */
    expect_error(post(path, "{\"name\":\"Dee\",\"email\":\"dee@example.org\"}"), 400,
                 "Event is full", NULL);
    /* cancel, then the seat is free again */
    char body[128];
    snprintf(path, sizeof path, "/api/events/%s/cancel", id);
    snprintf(body, sizeof body, "{\"userId\":\"%s\"}", uid);
    it_http_result r = post(path, body);
    assert_int_equal(r.status, 200);
    assert_true(json_is_true(json_object_get(r.json, "ok")));
    it_http_free(&r);
    expect_error(post(path, body), 404, "Registration not found", NULL);
    stats(id, &total, &remaining, &pct);
    assert_int_equal(total, 2);
    assert_int_equal(remaining, 1);
    assert_int_equal(do_register(id, "Dee", "dee@example.org", NULL), 201);
    /* re-register after cancelling: full again now */
    snprintf(path, sizeof path, "/api/events/%s/register", id);
    expect_error(post(path, "{\"name\":\"Ada\",\"email\":\"ada@example.org\"}"), 400,
                 "Event is full", NULL);
    stats(id, &total, &remaining, &pct);
    assert_int_equal(total, 3);
    assert_int_equal(remaining, 0);
    assert_true(pct == 100.0);

    /* past event */
    create_event("Yesterday", "Room 2", -1, 10, past);
    snprintf(path, sizeof path, "/api/events/%s/register", past);
    expect_error(post(path, "{\"name\":\"Ada\",\"email\":\"ada@example.org\"}"), 400,
                 "Cannot register for past events", NULL);

    /* the event lists its registrations oldest first */
    snprintf(path, sizeof path, "/api/events/%s", id);
    r = get(path);
    json_t *regs = json_object_get(r.json, "registrations");
    assert_int_equal(json_array_size(regs), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(regs, 0), "email")),
                        "bob@example.org");
    assert_string_equal(json_string_value(json_object_get(json_array_get(regs, 2), "email")),
                        "dee@example.org");
    it_http_free(&r);
    /* paged */
    snprintf(path, sizeof path, "/api/events/%s?limit=1&offset=1", id);
    r = get(path);
    regs = json_object_get(r.json, "registrations");
    assert_int_equal(json_array_size(regs), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(regs, 0), "email")),
                        "cy@example.org");
    it_http_free(&r);
}

static void unknown_events_and_registrations_are_404(void **state) {
    (void)state;
    char unknown[TS_UUID_LEN + 1], path[128], body[128];
    ts_uuid_new(unknown);
    snprintf(path, sizeof path, "/api/events/%s", unknown);
    expect_error(get(path), 404, "Event not found", NULL);
    snprintf(path, sizeof path, "/api/events/%s/stats", unknown);
    expect_error(get(path), 404, "Event not found", NULL);
    snprintf(path, sizeof path, "/api/events/%s/register", unknown);
    expect_error(post(path, "{\"name\":\"A\",\"email\":\"a@example.org\"}"), 404, "Event not found",
                 NULL);
    snprintf(path, sizeof path, "/api/events/%s/cancel", unknown);
    snprintf(body, sizeof body, "{\"userId\":\"%s\"}", unknown);
    expect_error(post(path, body), 404, "Registration not found", NULL);
}

static void bad_input_is_a_clear_4xx_and_nothing_else(void **state) {
    (void)state;
    char id[TS_UUID_LEN + 1], path[128];
    create_event("Input", "Lab", 5, 10, id);
    snprintf(path, sizeof path, "/api/events/%s/register", id);
    expect_error(post("/api/events", "{\"title\":"), 400, NULL, NULL);
    expect_error(post("/api/events", "not json"), 400, NULL, NULL);
    expect_error(post("/api/events", "[]"), 400, NULL, NULL);
    expect_error(post("/api/events", ""), 400, NULL, NULL);
    expect_error(post("/api/events", "{\"title\":\"T\",\"starts_at\":\"2030-01-01T00:00:00Z\","
                                     "\"location\":\"L\",\"capacity\":\"ten\"}"),
                 400, NULL, "capacity");
    expect_error(post("/api/events", "{\"title\":\"T\",\"starts_at\":\"yesterday\","
                                     "\"location\":\"L\",\"capacity\":1}"),
                 400, NULL, "starts_at");
    expect_error(post("/api/events", "{\"title\":\"T\",\"starts_at\":\"1960-01-01T00:00:00Z\","
                                     "\"location\":\"L\",\"capacity\":1}"),
                 400, "starts_at must be between 1970 and 9999", "starts_at");
    expect_error(post("/api/events", "{\"starts_at\":\"2030-01-01T00:00:00Z\","
                                     "\"location\":\"L\",\"capacity\":1}"),
                 400, NULL, "title");
    expect_error(post(path, "{\"name\":\"A\",\"email\":\"not-an-email\"}"), 400, NULL, "email");
    expect_error(post(path, "{\"email\":\"a@example.org\"}"), 400, NULL, "name");
    expect_error(post(path, "{\"name\":42,\"email\":\"a@example.org\"}"), 400, NULL, "name");
    expect_error(post("/api/events/not-a-uuid/register", "{\"name\":\"A\",\"email\":\"a@b.co\"}"),
                 400, "Invalid event id", "id");
    expect_error(get("/api/events/not-a-uuid"), 400, "Invalid event id", "id");
    expect_error(get("/api/events/not-a-uuid/stats"), 400, "Invalid event id", "id");
    snprintf(path, sizeof path, "/api/events/%s/cancel", id);
    expect_error(post(path, "{}"), 400, "userId required", "userId");
    expect_error(post(path, "{\"userId\":\"x\"}"), 400, NULL, "userId");
    expect_error(get("/api/nowhere"), 404, "Not found", NULL);
    expect_error(get("/api/events?limit=lots"), 400, NULL, NULL);

    char url[256];
    snprintf(url, sizeof url, "%s/api/events", base);
    it_http_result r = it_http("DELETE", url, NULL, NULL);
    assert_int_equal(r.status, 405);
    assert_string_equal(it_json_str(&r, "code"), "method_not_allowed");
    it_http_free(&r);

    /* a huge body: 413, and the service goes on */
    size_t big = 1 << 20;
    char *huge = malloc(big + 1);
    memset(huge, 'x', big);
    huge[big] = '\0';
    expect_error(post("/api/events", huge), 413, NULL, NULL);
    free(huge);

    /* nothing of the above reached the event */
    long long total, remaining;
    double pct;
    stats(id, &total, &remaining, &pct);
    assert_int_equal(total, 0);
    assert_int_equal(do_register(id, "Still", "still@example.org", NULL), 201);
}

/* The largest body accepted (TS_MAX_BODY_BYTES, 16 kB) goes through whole,
 * whatever the HTTP server's per-connection memory. */
static void a_body_of_the_largest_size_accepted_is_taken_whole(void **state) {
    (void)state;
    enum { MAX = 16384 };
    char starts[TS_ISO8601_LEN + 1];
    iso_in_days(30, starts);
    char *body = malloc(MAX + 1);
    int n = snprintf(body, MAX + 1,
                     "{\"title\":\"Big\",\"location\":\"Hall\",\"capacity\":5,"
                     "\"starts_at\":\"%s\",\"description\":\"",
                     starts);
    for (int i = 0; i < 1000; i++) /* the longest description: 2,000 bytes of UTF-8 */
        n += snprintf(body + n, MAX + 1 - (size_t)n, "\\u00e9");
    n += snprintf(body + n, MAX + 1 - (size_t)n, "\"}");
    memset(body + n, ' ', (size_t)(MAX - n)); /* JSON whitespace, to the limit */
    body[MAX] = '\0';
    assert_int_equal(strlen(body), MAX);
    it_http_result r = post("/api/events", body);
    assert_int_equal(r.status, 201);
    char path[128];
    snprintf(path, sizeof path, "/api/events/%s", it_json_str(&r, "id"));
    it_http_free(&r);
    r = get(path);
    assert_int_equal(r.status, 200);
    const char *d = it_json_str(&r, "description");
    assert_int_equal(strlen(d), 2000); /* é is two bytes of UTF-8 */
    assert_memory_equal(d + 1998, "\xc3\xa9", 2);
    it_http_free(&r);

    body[MAX - 1] = '\0'; /* one byte over: 413 */
    char *over = malloc(MAX + 2);
    snprintf(over, MAX + 2, "%s  ", body);
    expect_error(post("/api/events", over), 413, NULL, NULL);
    free(over);
    free(body);
}

static void a_retried_request_with_an_idempotency_key_gets_the_first_outcome(void **state) {
    (void)state;
    char id[TS_UUID_LEN + 1], url[256], key[80], uid1[TS_UUID_LEN + 1];
    create_event("Idem", "Hall", 5, 1, id);
    char unique[TS_UUID_LEN + 1];
    ts_uuid_new(unique);
    snprintf(key, sizeof key, "Idempotency-Key: %s", unique);
    const char *headers[] = {key, NULL};
    snprintf(url, sizeof url, "%s/api/events/%s/register", base, id);
    it_http_result r1 =
        it_http("POST", url, "{\"name\":\"A\",\"email\":\"a@example.org\"}", headers);
    assert_int_equal(r1.status, 201);
    snprintf(uid1, sizeof uid1, "%s", it_json_str(&r1, "user_id"));
    /* the retry is the same command: 201 again, not "already registered" */
    it_http_result r2 =
        it_http("POST", url, "{\"name\":\"A\",\"email\":\"a@example.org\"}", headers);
    assert_int_equal(r2.status, 201);
    assert_string_equal(it_json_str(&r2, "user_id"), uid1);
    it_http_free(&r1);
    it_http_free(&r2);
    /* and it is still one registration */
    long long total, remaining;
    double pct;
    stats(id, &total, &remaining, &pct);
    assert_int_equal(total, 1);

    /* creating an event with a key twice gives one event */
    snprintf(url, sizeof url, "%s/api/events", base);
    const char *body = "{\"title\":\"Once\",\"starts_at\":\"2031-01-01T00:00:00Z\","
                       "\"location\":\"X\",\"capacity\":5}";
    r1 = it_http("POST", url, body, headers);
    r2 = it_http("POST", url, body, headers);
    assert_int_equal(r1.status, 201);
    assert_int_equal(r2.status, 201);
    assert_string_equal(it_json_str(&r1, "id"), it_json_str(&r2, "id"));
    it_http_free(&r1);
    it_http_free(&r2);
}

/* 1,000 people, 100 seats, all at once: exactly 100 are in. */
static void a_thousand_concurrent_registrations_for_a_hundred_seats(void **state) {
    (void)state;
    enum { N = 1000, SEATS = 100 };
    char id[TS_UUID_LEN + 1];
    create_event("Burst", "Arena", 20, SEATS, id);
    it_http_request *reqs = calloc(N, sizeof *reqs);
    for (int i = 0; i < N; i++) {
        char name[32], email[64];
        snprintf(name, sizeof name, "Person %d", i);
        snprintf(email, sizeof email, "p%d@burst.example", i);
        it_http_registration(&reqs[i], base, id, name, email);
    }
    int64_t t0 = ts_monotonic_ms();
    it_http_burst(reqs, N, N);
    int64_t wall = ts_monotonic_ms() - t0;
    int created = 0, full = 0, other = 0;
    for (int i = 0; i < N; i++) {
        long s = reqs[i].result.status;
        if (s == 201) {
            char expect[TS_UUID_LEN + 1], email[64];
            snprintf(email, sizeof email, "p%d@burst.example", i);
            ts_uuid_for_email(email, expect);
            assert_string_equal(it_json_str(&reqs[i].result, "user_id"), expect);
            created++;
        } else if (s == 400 && !strcmp(it_json_str(&reqs[i].result, "error"), "Event is full")) {
            full++;
        } else {
            fprintf(stderr, "request %d: status %ld body %s\n", i, s,
                    reqs[i].result.body ? reqs[i].result.body : "");
            other++;
        }
        it_http_free(&reqs[i].result);
    }
    free(reqs);
    printf("burst: %d requests, %d accepted, %d full, %d other, %lld ms\n", N, created, full, other,
           (long long)wall);
    assert_int_equal(created, SEATS);
    assert_int_equal(full, N - SEATS);
    assert_int_equal(other, 0);
    long long total, remaining;
    double pct;
    stats(id, &total, &remaining, &pct);
    assert_int_equal(total, SEATS);
    assert_int_equal(remaining, 0);
    const char *p[] = {id};
    assert_int_equal(
        it_query_ll(&env, "SELECT count(*) FROM registrations WHERE event_id = $1", 1, p), SEATS);
}

/* An instance whose reply deadline is 1 ms answers 202 with a Location,
 * and the command's resource reports the outcome once applied. The worker
 * is stopped while the write is sent: a reply within the millisecond
 * (a lone command is applied in about two) would answer it 201. */
static void past_the_deadline_a_write_is_202_and_can_be_followed(void **state) {
    (void)state;
    char slow[64], id[TS_UUID_LEN + 1], url[256];
    create_event("Later", "Annex", 9, 5, id);
    setenv("TS_REPLY_TIMEOUT_MS", "1", 1);
    it_start_api(&env, 1, 0, slow, sizeof slow);
    unsetenv("TS_REPLY_TIMEOUT_MS");
    assert_int_equal(it_stop_worker(&env, 0, SIGTERM), 0);
    snprintf(url, sizeof url, "%s/api/events/%s/register", slow, id);
    it_http_result r =
        it_http("POST", url, "{\"name\":\"L\",\"email\":\"late@example.org\"}", NULL);
    it_start_worker(&env, 0);
    assert_int_equal(r.status, 202);
    char location[256];
    snprintf(location, sizeof location, "%s", r.location);
    assert_non_null(strstr(location, "/api/commands/"));
    assert_string_equal(it_json_str(&r, "status"), "pending");
    it_http_free(&r);
    /* follow it, from the other instance too: the outcome is in PostgreSQL */
    snprintf(url, sizeof url, "%s%s", base, location);
    int64_t deadline = ts_monotonic_ms() + 60000;
    for (;;) {
        r = it_http("GET", url, NULL, NULL);
        if (r.status == 200 && !strcmp(it_json_str(&r, "status"), "done"))
            break;
        it_http_free(&r);
        assert_true(ts_monotonic_ms() < deadline);
        struct timespec ts = {0, 20 * 1000000L}; /* between two polls */
        nanosleep(&ts, NULL);
    }
    assert_string_equal(it_json_str(&r, "outcome"), "REGISTERED");
    assert_int_equal(json_integer_value(json_object_get(r.json, "http_status")), 201);
    char expect[TS_UUID_LEN + 1];
    ts_uuid_for_email("late@example.org", expect);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r.json, "result"), "user_id")), expect);
    it_http_free(&r);
    snprintf(url, sizeof url, "%s/api/commands/%s", base, id); /* an id of no command */
    expect_error(it_http("GET", url, NULL, NULL), 404, "Command not found", NULL);
    assert_int_equal(it_stop_api(&env, 1, SIGTERM), 0);
}

/* An instance allowed one waiting request at a time refuses the others at
 * once with 503 and Retry-After; none of them is applied. */
static void an_overloaded_instance_answers_503_with_retry_after(void **state) {
    (void)state;
    enum { N = 40 };
    char busy[64], id[TS_UUID_LEN + 1];
    create_event("Busy", "Annex", 9, 100, id);
    setenv("TS_MAX_PENDING", "1", 1);
    it_start_api(&env, 1, 0, busy, sizeof busy);
    unsetenv("TS_MAX_PENDING");
    it_http_request *reqs = calloc(N, sizeof *reqs);
    for (int i = 0; i < N; i++) {
        char email[64];
        snprintf(email, sizeof email, "b%d@busy.example", i);
        it_http_registration(&reqs[i], busy, id, "B", email);
    }
    it_http_burst(reqs, N, N);
    int ok = 0, refused = 0;
    for (int i = 0; i < N; i++) {
        it_http_result *r = &reqs[i].result;
        if (r->status == 201) {
            ok++;
        } else {
            assert_int_equal(r->status, 503);
            assert_string_equal(r->retry_after, "1");
            assert_string_equal(it_json_str(r, "code"), "unavailable");
            refused++;
        }
        it_http_free(r);
    }
    free(reqs);
    assert_true(ok >= 1);
    assert_true(refused >= 1);
    long long total, remaining;
    double pct;
    stats(id, &total, &remaining, &pct);
    assert_int_equal(total, ok); /* a refused request left nothing behind */
    assert_int_equal(it_stop_api(&env, 1, SIGTERM), 0);
}

/* The value of a sample line "NAME VALUE" (not of its # HELP line). */
static unsigned long metric(const char *body, const char *name) {
    char needle[160];
    snprintf(needle, sizeof needle, "\n%s", name);
    const char *p = strstr(body, needle);
    return p ? strtoul(p + strlen(needle), NULL, 10) : 0;
}

/* /metrics counts the writes, and times each stage of their way. */
static void metrics_count_writes_and_time_their_stages(void **state) {
    (void)state;
    it_http_result r = get("/metrics");
    assert_int_equal(r.status, 200);
    unsigned long writes = metric(r.body, "turnstile_write_latency_seconds_count ");
    assert_true(writes >= 1000); /* the burst alone was 1,000 */
    /* every reply matched to a request here is timed */
    assert_int_equal(metric(r.body, "turnstile_command_to_applied_seconds_count "),
                     metric(r.body, "turnstile_replies_received_total ") -
                         metric(r.body, "turnstile_replies_unmatched_total "));
    assert_true(metric(r.body, "turnstile_resume_seconds_bucket{le=\"+Inf\"} ") >= 1000);
    unsigned long produced = metric(r.body, "turnstile_commands_produced_total ");
    assert_true(produced >= 1000 && produced <= writes);
    /* the burst's commands, sent while others waited, went out batched */
    assert_true(metric(r.body, "turnstile_commands_sent_at_once_total ") < produced);
    it_http_free(&r);
}

/* A write while no other waits for its reply goes out at once (no
 * linger); a burst's are batched (above). */
static void a_lone_write_is_sent_at_once(void **state) {
    (void)state;
    it_http_result r = get("/metrics");
    unsigned long before = metric(r.body, "turnstile_commands_sent_at_once_total ");
    it_http_free(&r);
    char id[TS_UUID_LEN + 1];
    create_event("Alone", "Room 1", 30, 5, id);
    r = get("/metrics");
    assert_int_equal(metric(r.body, "turnstile_commands_sent_at_once_total "), before + 1);
    it_http_free(&r);
}

static void the_api_drains_and_exits_zero_on_sigterm(void **state) {
    (void)state;
    assert_int_equal(it_stop_api(&env, 0, SIGTERM), 0);
    assert_int_equal(it_stop_worker(&env, 0, SIGTERM), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_openapi_document_is_served_with_every_route),
        cmocka_unit_test(an_event_is_created_read_back_and_listed),
        cmocka_unit_test(upcoming_events_are_sorted_by_start_then_location),
        cmocka_unit_test(the_original_edge_cases_over_http),
        cmocka_unit_test(unknown_events_and_registrations_are_404),
        cmocka_unit_test(bad_input_is_a_clear_4xx_and_nothing_else),
        cmocka_unit_test(a_body_of_the_largest_size_accepted_is_taken_whole),
        cmocka_unit_test(a_retried_request_with_an_idempotency_key_gets_the_first_outcome),
        cmocka_unit_test(a_thousand_concurrent_registrations_for_a_hundred_seats),
        cmocka_unit_test(past_the_deadline_a_write_is_202_and_can_be_followed),
        cmocka_unit_test(an_overloaded_instance_answers_503_with_retry_after),
        cmocka_unit_test(metrics_count_writes_and_time_their_stages),
        cmocka_unit_test(a_lone_write_is_sent_at_once),
        cmocka_unit_test(the_api_drains_and_exits_zero_on_sigterm),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
