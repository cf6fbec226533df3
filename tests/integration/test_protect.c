/* SPDX-License-Identifier: Apache-2.0 */
/* Integration: the API's protected mode — organizer keys made by
 * turnstile-admin, what a key allows, cancel tokens, rate limits per client
 * address and per key, and idempotency keys scoped to the client, the path
 * and the body — against the real binaries, broker and PostgreSQL.
 *
 * Organizer keys in a database turn every auto/loopback API on it
 * protected, so this suite runs on a database of its own
 * (turnstile_test_protect under scripts/test, made afresh at start) and leaves the shared one
 * without keys for the other suites.
 *
 * Several tests use loopback source addresses other than 127.0.0.1 (all of
 * 127.0.0.0/8 is loopback on Linux) to be distinct clients.
 *
 * The tests run in order and build on each other: the open phase (no key
 * yet), the first key and the switches of mode, then the protected API. */
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
#include "ts_time.h"
#include "ts_uuid.h"

#define OWN_DB "protect" /* turnstile_test_protect under scripts/test */
/* The contract: a key created or revoked takes effect within 1 s. We poll
 * for up to this long and print the time it took. */
#define KEY_EFFECT_MS 2000
#define KEY_MAX 256

static it_env env;
static char open_api[64];    /* slot 0, reply partition 1: auto, loopback */
static char prot_api[64];    /* slot 1, reply partition 2: TS_AUTH=on, generous rates */
static char limited_api[64]; /* slot 0 again, later: TS_AUTH=on, 5 writes/s */

/* Keys, made by the tests as they go. */
static char org_key[KEY_MAX];     /* "organizer-main": all events, no --events */
static char org_all_key[KEY_MAX]; /* "organizer-all": --events all */
static char e1_key[KEY_MAX];      /* "staff-e1": --events <e1> */
static char e2_key[KEY_MAX];      /* "staff-e2": --events <e2> */
static char e1[TS_UUID_LEN + 1], e2[TS_UUID_LEN + 1];

static long long count1(const char *sql, const char *a) {
    const char *p[] = {a};
    return it_query_ll(&env, sql, 1, p);
}

static long long count2(const char *sql, const char *a, const char *b) {
    const char *p[] = {a, b};
    return it_query_ll(&env, sql, 2, p);
}

static long long registered(const char *event_id, const char *user_id) {
    return count2("SELECT count(*) FROM registrations WHERE event_id = $1 AND user_id = $2",
                  event_id, user_id);
}

/* Rows, in any table of the database, whose text holds `secret` as it is
 * or hex-encoded (a bytea column). */
static long long rows_holding(const char *secret) {
    PGresult *t = PQexec(env.pg, "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables"
                                 " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')");
    assert_int_equal(PQresultStatus(t), PGRES_TUPLES_OK);
    assert_true(PQntuples(t) > 0);
    long long rows = 0;
    for (int i = 0; i < PQntuples(t); i++) {
        char sql[512];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM %s AS x WHERE strpos(x::text, $1) > 0"
                 " OR strpos(x::text, encode(convert_to($1, 'UTF8'), 'hex')) > 0",
                 PQgetvalue(t, i, 0));
        rows += count1(sql, secret);
    }
    PQclear(t);
    return rows;
}

/* ------------------------------------------------------------ HTTP */

typedef struct call {
    const char *key;      /* organizer key (Authorization: Bearer), or NULL */
    const char *idem;     /* Idempotency-Key, or NULL */
    const char *source;   /* local address, or NULL */
    const char *raw_auth; /* a whole Authorization header instead of key, or NULL */
} call;

static it_http_result http(const char *method, const char *base, const char *path, const char *body,
                           call c) {
    char url[512], auth[KEY_MAX + 64], idem[256];
    const char *headers[3] = {NULL, NULL, NULL};
    int n = 0;
    snprintf(url, sizeof url, "%s%s", base, path);
    if (c.raw_auth) {
        headers[n++] = c.raw_auth;
    } else if (c.key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", c.key);
        headers[n++] = auth;
    }
    if (c.idem) {
        snprintf(idem, sizeof idem, "Idempotency-Key: %s", c.idem);
        headers[n++] = idem;
    }
    it_http_opts o = {.headers = headers, .source = c.source, .timeout_ms = 30000};
    return it_http_ex(method, url, body, &o);
}

static void iso_in_days(int days, char out[TS_ISO8601_LEN + 1]) {
    ts_time_format_iso8601(ts_now_ms() + (int64_t)days * 86400000, out);
}

static void event_body(const char *title, int capacity, char *out, size_t cap) {
    char when[TS_ISO8601_LEN + 1];
    iso_in_days(30, when);
    snprintf(out, cap,
             "{\"title\":\"%s\",\"starts_at\":\"%s\",\"location\":\"Hall P\",\"capacity\":%d}",
             title, when, capacity);
}

/* POST /api/events with `key` (or none), expecting 201; the id in id[37]. */
static void create_event(const char *base, const char *key, const char *title, int capacity,
                         char id[TS_UUID_LEN + 1]) {
    char body[512];
    event_body(title, capacity, body, sizeof body);
    it_http_result r = http("POST", base, "/api/events", body, (call){.key = key});
    if (r.status != 201)
        fail_msg("create event: status %ld, body %s", r.status, r.body ? r.body : "");
    assert_int_equal(ts_uuid_normalize(it_json_str(&r, "id"), id), 0);
    it_http_free(&r);
}

static it_http_result do_register(const char *base, const char *event_id, const char *name,
                                  const char *email, call c) {
    char path[128], body[256];
    snprintf(path, sizeof path, "/api/events/%s/register", event_id);
    snprintf(body, sizeof body, "{\"name\":\"%s\",\"email\":\"%s\"}", name, email);
    return http("POST", base, path, body, c);
}

/* A registration that must succeed; its user id in uid, its cancel token
 * (if any) in token[33]. */
static void register_ok(const char *base, const char *event_id, const char *name, const char *email,
                        char uid[TS_UUID_LEN + 1], char token[33]) {
    it_http_result r = do_register(base, event_id, name, email, (call){0});
    if (r.status != 201)
        fail_msg("register %s: status %ld, body %s", email, r.status, r.body ? r.body : "");
    if (uid)
        snprintf(uid, TS_UUID_LEN + 1, "%s", it_json_str(&r, "user_id"));
    if (token)
        snprintf(token, 33, "%s", it_json_str(&r, "cancel_token"));
    it_http_free(&r);
}

static it_http_result do_cancel(const char *base, const char *event_id, const char *user_id,
                                const char *token, call c) {
    char path[128], body[256];
    snprintf(path, sizeof path, "/api/events/%s/cancel", event_id);
    if (token)
        snprintf(body, sizeof body, "{\"userId\":\"%s\",\"token\":\"%s\"}", user_id, token);
    else
        snprintf(body, sizeof body, "{\"userId\":\"%s\"}", user_id);
    return http("POST", base, path, body, c);
}

/* An error answer: status, {"error": <non-empty>, "code": code}; for 401
 * a WWW-Authenticate: Bearer challenge too. Frees r. */
static void expect_refusal(it_http_result r, long status, const char *code) {
    if (r.status != status || strcmp(it_json_str(&r, "code"), code) != 0)
        fail_msg("expected %ld %s, got %ld %s", status, code, r.status, r.body ? r.body : "");
    assert_true(strlen(it_json_str(&r, "error")) > 0);
    if (status == 401) {
        const char *challenge = it_http_header(&r, "WWW-Authenticate");
        if (!challenge || strncmp(challenge, "Bearer", 6) != 0)
            fail_msg("401 without a WWW-Authenticate: Bearer challenge (got '%s')",
                     challenge ? challenge : "(none)");
    }
    it_http_free(&r);
}

static void expect_status(it_http_result r, long status) {
    if (r.status != status)
        fail_msg("expected %ld, got %ld %s", status, r.status, r.body ? r.body : "");
    it_http_free(&r);
}

/* Registers `email` on an open-mode API: the answer must be exactly the
 * original service's {"user_id": ...} with only the lifecycle's "status"
 * added (no cancel token).
 * The user id in uid[37]. */
static void register_as_before(const char *base, const char *event_id, const char *name,
                               const char *email, char uid[TS_UUID_LEN + 1]) {
    char expect[128];
    it_http_result r = do_register(base, event_id, name, email, (call){0});
    assert_int_equal(r.status, 201);
    ts_uuid_for_email(email, uid);
    snprintf(expect, sizeof expect, "{\"user_id\":\"%s\",\"status\":\"registered\"}", uid);
    assert_string_equal(r.body, expect);
    it_http_free(&r);
}

/* Stops API slot i, which must be running, with SIGTERM: exit status 0. */
static void stop_api(int i) {
    assert_true(env.apis[i] > 0);
    assert_int_equal(it_stop_api(&env, i, SIGTERM), 0);
}

/* Makes API slot i free for a new instance, whatever a failed test left. */
static void free_slot(int i) {
    if (env.apis[i] > 0)
        it_stop_api(&env, i, SIGKILL);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The mode /healthz reports, in out[cap] ("" if it did not answer 200). */
static void mode_of(const char *base, char *out, size_t cap) {
    it_http_result r = http("GET", base, "/healthz", NULL, (call){0});
    snprintf(out, cap, "%s", r.status == 200 ? it_json_str(&r, "mode") : "");
    if (r.status == 200)
        assert_string_equal(it_json_str(&r, "status"), "ok");
    it_http_free(&r);
}

/* Polls /healthz until it reports `mode`; returns the ms it took. */
static int64_t await_mode(const char *base, const char *mode, int timeout_ms) {
    int64_t t0 = ts_monotonic_ms();
    char now[32];
    for (;;) {
        mode_of(base, now, sizeof now);
        if (strcmp(now, mode) == 0)
            return ts_monotonic_ms() - t0;
        if (ts_monotonic_ms() - t0 > timeout_ms)
            fail_msg("/healthz still says mode '%s' %d ms later, not '%s'", now, timeout_ms, mode);
        sleep_ms(20); /* between two polls */
    }
}

/* Polls GET `path` with `key` until the answer is (401 == want_401);
 * returns the ms it took. */
static int64_t await_key(const char *base, const char *key, const char *path, bool want_401) {
    int64_t t0 = ts_monotonic_ms();
    for (;;) {
        it_http_result r = http("GET", base, path, NULL, (call){.key = key});
        long status = r.status;
        it_http_free(&r);
        if (status != 0 && (status == 401) == want_401)
            return ts_monotonic_ms() - t0;
        if (ts_monotonic_ms() - t0 > KEY_EFFECT_MS)
            fail_msg("GET %s with the key still %ld %d ms later", path, status, KEY_EFFECT_MS);
        sleep_ms(20); /* between two polls */
    }
}

/* ------------------------------------------------------------ admin */

/* turnstile-admin keys create --name NAME [--events EVENT]: the key it
 * printed, which must be one line and nothing else. */
static void create_key(const char *name, const char *events, char key[KEY_MAX]) {
    char out[1024];
    const char *with[] = {"keys", "create", "--name", name, "--events", events, NULL};
    const char *without[] = {"keys", "create", "--name", name, NULL};
    assert_int_equal(it_admin(events ? with : without, out, sizeof out), 0);
    size_t len = strlen(out);
    if (len && out[len - 1] == '\n')
        out[--len] = '\0';
    if (len && out[len - 1] == '\r')
        out[--len] = '\0';
    if (len < 16 || len >= KEY_MAX || strpbrk(out, " \t\r\n"))
        fail_msg("keys create printed more or less than one key: '%s'", out);
    strcpy(key, out);
}

static void revoke_key(const char *id_or_name) {
    char out[1024];
    const char *args[] = {"keys", "revoke", id_or_name, NULL};
    assert_int_equal(it_admin(args, out, sizeof out), 0);
}

static void list_keys(char *out, size_t cap) {
    const char *args[] = {"keys", "list", NULL};
    assert_int_equal(it_admin(args, out, cap), 0);
}

/* The API of the protected tests, started on first use (after the first
 * keys exist): TS_AUTH=on, and rate limits far above what the tests send. */
static const char *prot(void) {
    if (!prot_api[0]) {
        const char *extra[] = {"TS_AUTH=on",
                               "TS_RATE_WRITES_PER_S=100000",
                               "TS_RATE_BURST=100000",
                               "TS_RATE_KEY_WRITES_PER_S=100000",
                               "TS_RATE_KEY_BURST=100000",
                               NULL};
        it_start_api_env(&env, 1, 2, extra, prot_api, sizeof prot_api);
        await_mode(prot_api, "protected", 5000);
    }
    return prot_api;
}

/* ------------------------------------------------------------ setup */

static int setup(void **state) {
    (void)state;
    if (it_own_database(OWN_DB))
        return -1;
    if (it_setup(&env, 4, 3)) /* reply partition 0: this test; 1, 2: the APIs */
        return -1;
    it_start_worker(&env, 0);
    const char *extra[] = {"TS_AUTH=auto", "TS_HTTP_BIND=127.0.0.1", NULL};
    it_start_api_env(&env, 0, 1, extra, open_api, sizeof open_api);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    it_teardown(&env);
    return 0;
}

/* ------------------------------------------------------------ open mode */

static void on_loopback_without_keys_the_api_is_open_and_answers_as_before(void **state) {
    (void)state;
    char mode[32], id[TS_UUID_LEN + 1], uid[TS_UUID_LEN + 1], path[128];
    mode_of(open_api, mode, sizeof mode);
    assert_string_equal(mode, "open");
    create_event(open_api, NULL, "Open house", 100, id);

    /* the register answer is exactly what it was: no cancel token */
    register_as_before(open_api, id, "Ada", "ada@open.example", uid);

    /* anyone reads the attendees, and cancels with the user id alone */
    snprintf(path, sizeof path, "/api/events/%s", id);
    it_http_result r = http("GET", open_api, path, NULL, (call){0});
    assert_int_equal(r.status, 200);
    json_t *regs = json_object_get(r.json, "registrations");
    assert_int_equal(json_array_size(regs), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(regs, 0), "email")),
                        "ada@open.example");
    it_http_free(&r);
    r = do_cancel(open_api, id, uid, NULL, (call){0});
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"ok\":true}");
    it_http_free(&r);
    assert_int_equal(registered(id, uid), 0);

    /* no rate limit unless set: 40 writes at once from one address */
    enum { N = 40 };
    it_http_request *reqs = calloc(N, sizeof *reqs);
    for (int i = 0; i < N; i++) {
        char email[64];
        snprintf(email, sizeof email, "o%d@open.example", i);
        it_http_registration(&reqs[i], open_api, id, "O", email);
    }
    it_http_burst(reqs, N, N);
    for (int i = 0; i < N; i++) {
        if (reqs[i].result.status != 201)
            fail_msg("open mode, write %d of a burst: %ld %s", i, reqs[i].result.status,
                     reqs[i].result.body ? reqs[i].result.body : "");
        it_http_free(&reqs[i].result);
    }
    free(reqs);
}

/* Idempotency keys in open mode: the client is its address. */
static void in_open_mode_an_idempotency_key_is_one_command_per_address_path_and_body(void **state) {
    (void)state;
    char id[TS_UUID_LEN + 1], upper[TS_UUID_LEN + 1], key[64], path[128];
    char a[TS_UUID_LEN + 1], b[TS_UUID_LEN + 1];
    create_event(open_api, NULL, "Idempotent open", 10, id);
    char unique[TS_UUID_LEN + 1];
    ts_uuid_new(unique);
    snprintf(key, sizeof key, "reg-%s", unique);
    const call from_a = {.idem = key, .source = "127.0.0.2"};
    const call from_b = {.idem = key, .source = "127.0.0.3"};

    it_http_result r = do_register(open_api, id, "A", "a@idem.example", from_a);
    assert_int_equal(r.status, 201);
    snprintf(a, sizeof a, "%s", it_json_str(&r, "user_id"));
    it_http_free(&r);
    /* the same again: the first outcome */
    r = do_register(open_api, id, "A", "a@idem.example", from_a);
    assert_int_equal(r.status, 201);
    assert_string_equal(it_json_str(&r, "user_id"), a);
    it_http_free(&r);
    /* the event id in upper case is the same path */
    for (size_t i = 0; i <= TS_UUID_LEN; i++)
        upper[i] = (char)(id[i] >= 'a' && id[i] <= 'f' ? id[i] - 'a' + 'A' : id[i]);
    r = do_register(open_api, upper, "A", "a@idem.example", from_a);
    assert_int_equal(r.status, 201);
    assert_string_equal(it_json_str(&r, "user_id"), a);
    it_http_free(&r);
    /* the same key with another body: refused, and not applied */
    expect_refusal(do_register(open_api, id, "A2", "a2@idem.example", from_a), 422,
                   "idempotency_key_reused");
    char a2[TS_UUID_LEN + 1];
    ts_uuid_for_email("a2@idem.example", a2);
    assert_int_equal(registered(id, a2), 0);
    /* another address reusing the key is another command, and really applied */
    r = do_register(open_api, id, "B", "b@idem.example", from_b);
    if (r.status != 201)
        fail_msg("another address, same key: %ld %s", r.status, r.body ? r.body : "");
    snprintf(b, sizeof b, "%s", it_json_str(&r, "user_id"));
    it_http_free(&r);
    assert_string_not_equal(a, b);
    assert_int_equal(registered(id, a), 1);
    assert_int_equal(registered(id, b), 1);
    assert_int_equal(count1("SELECT count(*) FROM registrations WHERE event_id = $1", id), 2);

    /* /api/events and /api/events/ with one key and one body: one event */
    char body[512], title[64], first[TS_UUID_LEN + 1], create_key_[64];
    snprintf(title, sizeof title, "Once %s", unique);
    event_body(title, 5, body, sizeof body);
    snprintf(create_key_, sizeof create_key_, "create-%s", unique);
    const call create_from_a = {.idem = create_key_, .source = "127.0.0.2"};
    r = http("POST", open_api, "/api/events", body, create_from_a);
    assert_int_equal(r.status, 201);
    snprintf(first, sizeof first, "%s", it_json_str(&r, "id"));
    it_http_free(&r);
    r = http("POST", open_api, "/api/events/", body, create_from_a);
    assert_int_equal(r.status, 201);
    assert_string_equal(it_json_str(&r, "id"), first);
    it_http_free(&r);
    assert_int_equal(count1("SELECT count(*) FROM events WHERE title = $1", title), 1);
    snprintf(path, sizeof path, "/api/events/%s", first);
    expect_status(http("GET", open_api, path, NULL, (call){0}), 200);
}

static void a_public_bind_without_a_key_refuses_to_start_and_names_the_fix(void **state) {
    (void)state;
    char err[8192];
    const char *extra[] = {"TS_HTTP_BIND=0.0.0.0", "TS_AUTH=auto", "TS_REPLY_PARTITION=2", NULL};
    int rc = it_run_api_to_exit(&env, extra, 30000, err, sizeof err);
    if (rc == -1)
        fail_msg("turnstile-api on 0.0.0.0 with no key was still running after 30 s");
    if (rc == 0 || rc >= 128)
        fail_msg("turnstile-api on 0.0.0.0 with no key: exit status %d (stderr: %s)", rc, err);
    if (!strstr(err, "turnstile-admin keys create") || !strstr(err, "TS_AUTH=off"))
        fail_msg("the refusal does not name the fix; stderr was: %s", err);
}

/* ------------------------------------------------------------ keys */

static void a_key_created_while_the_api_runs_turns_it_protected_within_a_second(void **state) {
    (void)state;
    char id[TS_UUID_LEN + 1], body[512];
    create_key("first-organizer", NULL, org_key);
    int64_t took = await_mode(open_api, "protected", KEY_EFFECT_MS);
    printf("protected %lld ms after the key was made\n", (long long)took);
    /* and it is: creating an event needs the key now */
    event_body("Needs a key", 5, body, sizeof body);
    expect_refusal(http("POST", open_api, "/api/events", body, (call){0}), 401, "unauthorized");
    await_key(open_api, org_key, "/api/events", false);
    create_event(open_api, org_key, "With the key", 5, id);
}

static void only_the_hash_of_a_key_is_stored_and_the_list_never_shows_it(void **state) {
    (void)state;
    assert_int_equal(count1("SELECT count(*) FROM api_keys WHERE lower(key_sha256::text) IN"
                            " (encode(sha256(convert_to($1, 'UTF8')), 'hex'),"
                            "  '\\x' || encode(sha256(convert_to($1, 'UTF8')), 'hex'))",
                            org_key),
                     1);
    assert_int_equal(rows_holding(org_key), 0);
    char out[16384];
    list_keys(out, sizeof out);
    assert_non_null(strstr(out, "first-organizer"));
    assert_null(strstr(out, org_key));
}

static void revoking_the_last_key_turns_the_api_open_again_within_a_second(void **state) {
    (void)state;
    revoke_key("first-organizer");
    int64_t took = await_mode(open_api, "open", KEY_EFFECT_MS);
    printf("open again %lld ms after the last key was revoked\n", (long long)took);
    char id[TS_UUID_LEN + 1];
    create_event(open_api, NULL, "Open again", 5, id);
    stop_api(0);
}

static void with_keys_a_public_bind_starts_protected_and_ts_auth_off_stays_open(void **state) {
    (void)state;
    char url[64], mode[32], uid[TS_UUID_LEN + 1];
    create_key("organizer-main", NULL, org_key);
    create_key("organizer-all", "all", org_all_key);

    const char *public_bind[] = {"TS_HTTP_BIND=0.0.0.0", "TS_AUTH=auto", NULL};
    free_slot(0);
    it_start_api_env(&env, 0, 1, public_bind, url, sizeof url);
    mode_of(url, mode, sizeof mode);
    assert_string_equal(mode, "protected");
    stop_api(0);

    const char *off[] = {"TS_AUTH=off", NULL};
    it_start_api_env(&env, 0, 1, off, url, sizeof url);
    mode_of(url, mode, sizeof mode);
    assert_string_equal(mode, "open");
    char id[TS_UUID_LEN + 1];
    create_event(url, NULL, "Off", 5, id);
    register_as_before(url, id, "Off", "off@open.example", uid);
    expect_status(do_cancel(url, id, uid, NULL, (call){0}), 200);
    assert_int_equal(registered(id, uid), 0);
    stop_api(0);
}

static void check_429(const it_http_result *r);

/* A burst of n registrations for event_id from `source` on `api`; the
 * number refused with 429 (each checked), every other one must be 201. */
static int burst_from(const char *api, const char *event_id, const char *source, int n,
                      const char *tag);

static void writes_are_rate_limited_by_default_when_protected_and_when_set_when_open(void **state) {
    (void)state;
    enum { N = 40 };
    char url[64], id[TS_UUID_LEN + 1];
    const char *on[] = {"TS_AUTH=on", NULL};
    free_slot(0);
    it_start_api_env(&env, 0, 1, on, url, sizeof url);
    await_key(url, org_key, "/api/events", false);
    create_event(url, org_key, "Default limits", 1000, id);
    /* 40 at once from one address: over the default burst (20) */
    int limited_n = burst_from(url, id, "127.0.0.5", N, "default");
    printf("protected, default limits: %d of %d limited\n", limited_n, N);
    assert_true(limited_n >= 1);
    stop_api(0);

    const char *off_with_limits[] = {"TS_AUTH=off", "TS_RATE_WRITES_PER_S=5", "TS_RATE_BURST=5",
                                     NULL};
    it_start_api_env(&env, 0, 1, off_with_limits, url, sizeof url);
    limited_n = burst_from(url, id, "127.0.0.5", N, "open-set");
    printf("open, limits set: %d of %d limited\n", limited_n, N);
    assert_true(limited_n >= N / 2);
    stop_api(0);
}

/* ------------------------------------------------------------ protected mode */

static void creating_an_event_needs_a_key_that_covers_all_events(void **state) {
    (void)state;
    const char *api = prot();
    char body[512];
    event_body("Keyed", 5, body, sizeof body);
    expect_refusal(http("POST", api, "/api/events", body, (call){0}), 401, "unauthorized");
    expect_refusal(http("POST", api, "/api/events", body, (call){.key = "not-a-key-0123456789"}),
                   401, "unauthorized");
    expect_refusal(
        http("POST", api, "/api/events", body, (call){.raw_auth = "Authorization: Basic dTpw"}),
        401, "unauthorized");
    create_event(api, org_key, "Event one", 50, e1);
    create_event(api, org_all_key, "Event two", 50, e2);

    create_key("staff-e1", e1, e1_key);
    create_key("staff-e2", e2, e2_key);
    char path[128];
    snprintf(path, sizeof path, "/api/events/%s", e1);
    await_key(api, e1_key, path, false);
    snprintf(path, sizeof path, "/api/events/%s", e2);
    await_key(api, e2_key, path, false);
    expect_refusal(http("POST", api, "/api/events", body, (call){.key = e1_key}), 403, "forbidden");
}

/* GET /api/events/:id, checked to be the public body: the event's fields
 * and count, and nothing of its attendees. Frees r. */
static void expect_public_event(it_http_result r, const char *id, long long count,
                                const char *const *secrets) {
    if (r.status != 200)
        fail_msg("public read: %ld %s", r.status, r.body ? r.body : "");
    assert_string_equal(it_json_str(&r, "id"), id);
    assert_true(strlen(it_json_str(&r, "title")) > 0);
    assert_true(strlen(it_json_str(&r, "starts_at")) > 0);
    assert_true(strlen(it_json_str(&r, "location")) > 0);
    assert_true(json_is_integer(json_object_get(r.json, "capacity")));
    assert_int_equal(json_integer_value(json_object_get(r.json, "registered")), count);
    if (json_object_get(r.json, "registrations"))
        fail_msg("a public read lists registrations: %s", r.body);
    for (; *secrets; secrets++)
        if (strstr(r.body, *secrets))
            fail_msg("a public read shows '%s': %s", *secrets, r.body);
    it_http_free(&r);
}

/* GET /api/events/:id with a key for it: registrations with names and
 * emails; returns whether `email` is among them. Frees r. */
static bool full_event_lists(it_http_result r, const char *email) {
    if (r.status != 200)
        fail_msg("organizer read: %ld %s", r.status, r.body ? r.body : "");
    json_t *regs = json_object_get(r.json, "registrations");
    assert_true(json_is_array(regs));
    bool found = false;
    for (size_t i = 0; i < json_array_size(regs); i++) {
        json_t *g = json_array_get(regs, i);
        assert_true(json_is_string(json_object_get(g, "id")));
        assert_true(json_is_string(json_object_get(g, "name")));
        assert_true(json_is_string(json_object_get(g, "registered_at")));
        const char *e = json_string_value(json_object_get(g, "email"));
        assert_non_null(e);
        if (!strcmp(e, email))
            found = true;
    }
    it_http_free(&r);
    return found;
}

static void an_event_read_without_its_key_shows_counts_and_no_attendee(void **state) {
    (void)state;
    const char *api = prot();
    char id[TS_UUID_LEN + 1], path[128];
    create_event(api, org_key, "Private party", 10, id);
    register_ok(api, id, "Ada Secretname", "ada.secret@private.example", NULL, NULL);
    register_ok(api, id, "Bob Hiddenname", "bob.hidden@private.example", NULL, NULL);
    const char *secrets[] = {"Secretname", "ada.secret", "Hiddenname", "bob.hidden", NULL};
    snprintf(path, sizeof path, "/api/events/%s", id);

    expect_public_event(http("GET", api, path, NULL, (call){0}), id, 2, secrets);
    /* a key for other events only sees what anyone sees */
    expect_public_event(http("GET", api, path, NULL, (call){.key = e1_key}), id, 2, secrets);
    /* a key covering the event: everything */
    assert_true(full_event_lists(http("GET", api, path, NULL, (call){.key = org_key}),
                                 "ada.secret@private.example"));
    assert_true(full_event_lists(http("GET", api, path, NULL, (call){.key = org_all_key}),
                                 "bob.hidden@private.example"));
    register_ok(api, e1, "Cy Scoped", "cy@private.example", NULL, NULL);
    snprintf(path, sizeof path, "/api/events/%s", e1);
    assert_true(full_event_lists(http("GET", api, path, NULL, (call){.key = e1_key}),
                                 "cy@private.example"));
    const char *cy[] = {"Scoped", "cy@private", NULL};
    expect_public_event(http("GET", api, path, NULL, (call){.key = e2_key}), e1, 1, cy);
    /* nor does the list of events show anyone */
    it_http_result r = http("GET", api, "/api/events?limit=10000", NULL, (call){0});
    assert_int_equal(r.status, 200);
    for (const char *const *s = secrets; *s; s++)
        assert_null(strstr(r.body, *s));
    it_http_free(&r);
}

static bool is_token(const char *t) {
    if (strlen(t) != 32)
        return false;
    for (; *t; t++)
        if (!((*t >= '0' && *t <= '9') || (*t >= 'a' && *t <= 'f')))
            return false;
    return true;
}

static void only_the_cancel_token_or_an_organizer_key_cancels_a_registration(void **state) {
    (void)state;
    const char *api = prot();
    char id[TS_UUID_LEN + 1], other[TS_UUID_LEN + 1], victim[TS_UUID_LEN + 1];
    char token[33], bystander_token[33], computed[TS_UUID_LEN + 1];
    create_event(api, org_key, "Tokens", 10, id);
    create_event(api, org_key, "Elsewhere", 10, other);

    it_http_result r = do_register(api, id, "Victim", "victim@token.example", (call){0});
    if (r.status != 201)
        fail_msg("register: %ld %s", r.status, r.body ? r.body : "");
    snprintf(victim, sizeof victim, "%s", it_json_str(&r, "user_id"));
    snprintf(token, sizeof token, "%s", it_json_str(&r, "cancel_token"));
    if (!is_token(token))
        fail_msg("no cancel token of 32 lowercase hex digits: %s", r.body);
    it_http_free(&r);
    register_ok(api, id, "Bystander", "bystander@token.example", NULL, bystander_token);
    assert_true(is_token(bystander_token));
    assert_string_not_equal(token, bystander_token);
    assert_int_equal(rows_holding(token), 0);
    assert_int_equal(rows_holding(bystander_token), 0);

    /* anyone can compute the victim's user id: the same email elsewhere */
    register_ok(api, other, "Attacker", "victim@token.example", computed, NULL);
    assert_string_equal(computed, victim);

    /* the attacker: no token, a made-up one, someone else's */
    expect_refusal(do_cancel(api, id, computed, NULL, (call){0}), 401, "unauthorized");
    expect_refusal(do_cancel(api, id, computed, "0123456789abcdef0123456789abcdef", (call){0}), 403,
                   "forbidden");
    expect_refusal(do_cancel(api, id, computed, bystander_token, (call){0}), 403, "forbidden");
    /* a key for other events and no token */
    expect_refusal(do_cancel(api, id, computed, NULL, (call){.key = e1_key}), 403, "forbidden");
    assert_int_equal(registered(id, victim), 1);
    char path[128];
    snprintf(path, sizeof path, "/api/events/%s", id);
    assert_true(full_event_lists(http("GET", api, path, NULL, (call){.key = org_key}),
                                 "victim@token.example"));

    /* the victim, with the token */
    r = do_cancel(api, id, victim, token, (call){0});
    assert_int_equal(r.status, 200);
    assert_true(json_is_true(json_object_get(r.json, "ok")));
    it_http_free(&r);
    assert_int_equal(registered(id, victim), 0);

    /* organizers cancel without a token: a key for the event, or for all */
    char bystander[TS_UUID_LEN + 1], cy[TS_UUID_LEN + 1];
    ts_uuid_for_email("bystander@token.example", bystander);
    expect_status(do_cancel(api, id, bystander, NULL, (call){.key = org_all_key}), 200);
    assert_int_equal(registered(id, bystander), 0);
    register_ok(api, e1, "Cy Two", "cy2@token.example", cy, NULL);
    expect_refusal(do_cancel(api, e1, cy, NULL, (call){.key = e2_key}), 403, "forbidden");
    assert_int_equal(registered(e1, cy), 1);
    expect_status(do_cancel(api, e1, cy, NULL, (call){.key = e1_key}), 200);
    assert_int_equal(registered(e1, cy), 0);
}

static void an_unknown_or_revoked_key_is_refused_on_every_api_route(void **state) {
    (void)state;
    const char *api = prot();
    char key[KEY_MAX], byid[KEY_MAX], path[128], uid[TS_UUID_LEN + 1];
    create_key("short-lived", NULL, key);
    create_key("short-lived-too", e1, byid);
    snprintf(path, sizeof path, "/api/events/%s", e1);
    await_key(api, key, "/api/events", false);
    await_key(api, byid, path, false);

    revoke_key("short-lived");
    int64_t took = await_key(api, key, "/api/events", true);
    printf("a revoked key refused %lld ms after the revocation\n", (long long)took);
    /* by its id, as `keys list` shows it: the first field of its line */
    char out[16384], id[128] = "";
    list_keys(out, sizeof out);
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n"))
        if (strstr(line, "short-lived-too"))
            sscanf(line, " %127[^ \t,|]", id);
    assert_true(id[0] != '\0');
    assert_string_not_equal(id, "short-lived-too");
    revoke_key(id);
    await_key(api, byid, path, true);

    ts_uuid_for_email("nobody@revoked.example", uid);
    const char *keys[] = {key, byid, "0000000000000000000000000000000000000000", NULL};
    for (const char *const *k = keys; *k; k++) {
        call c = {.key = *k};
        char p[160];
        expect_refusal(http("GET", api, "/api/events", NULL, c), 401, "unauthorized");
        snprintf(p, sizeof p, "/api/events/%s", e1);
        expect_refusal(http("GET", api, p, NULL, c), 401, "unauthorized");
        snprintf(p, sizeof p, "/api/events/%s/stats", e1);
        expect_refusal(http("GET", api, p, NULL, c), 401, "unauthorized");
        snprintf(p, sizeof p, "/api/commands/%s", e1);
        expect_refusal(http("GET", api, p, NULL, c), 401, "unauthorized");
        expect_refusal(do_register(api, e1, "R", "r@revoked.example", c), 401, "unauthorized");
        expect_refusal(do_cancel(api, e1, uid, NULL, c), 401, "unauthorized");
        char body[512];
        event_body("Revoked", 5, body, sizeof body);
        expect_refusal(http("POST", api, "/api/events", body, c), 401, "unauthorized");
        /* the service's own routes answer whatever key comes with them */
        it_http_result doc = http("GET", api, "/openapi.json", NULL, c);
        assert_int_equal(doc.status, 200);
        assert_non_null(json_object_get(doc.json, "paths"));
        it_http_free(&doc);
    }
    char r_uid[TS_UUID_LEN + 1];
    ts_uuid_for_email("r@revoked.example", r_uid);
    assert_int_equal(registered(e1, r_uid), 0);
}

/* Idempotency keys in protected mode: an organizer's key is the client,
 * from whatever address it comes. */
static void in_protected_mode_an_idempotency_key_belongs_to_the_organizer_key(void **state) {
    (void)state;
    const char *api = prot();
    char unique[TS_UUID_LEN + 1], idem[64], title[64], body[512], first[TS_UUID_LEN + 1];
    ts_uuid_new(unique);
    snprintf(idem, sizeof idem, "create-%s", unique);
    snprintf(title, sizeof title, "Retried %s", unique);
    event_body(title, 5, body, sizeof body);

    it_http_result r = http("POST", api, "/api/events", body,
                            (call){.key = org_key, .idem = idem, .source = "127.0.0.2"});
    assert_int_equal(r.status, 201);
    snprintf(first, sizeof first, "%s", it_json_str(&r, "id"));
    it_http_free(&r);
    r = http("POST", api, "/api/events/", body,
             (call){.key = org_key, .idem = idem, .source = "127.0.0.3"});
    assert_int_equal(r.status, 201);
    assert_string_equal(it_json_str(&r, "id"), first);
    it_http_free(&r);
    assert_int_equal(count1("SELECT count(*) FROM events WHERE title = $1", title), 1);

    char other_body[512];
    event_body("Something else", 5, other_body, sizeof other_body);
    expect_refusal(http("POST", api, "/api/events", other_body,
                        (call){.key = org_key, .idem = idem, .source = "127.0.0.2"}),
                   422, "idempotency_key_reused");
    assert_int_equal(count1("SELECT count(*) FROM events WHERE title = $1", "Something else"), 0);
    /* another organizer's key with the same idempotency key: its own event */
    r = http("POST", api, "/api/events", other_body,
             (call){.key = org_all_key, .idem = idem, .source = "127.0.0.2"});
    assert_int_equal(r.status, 201);
    assert_string_not_equal(it_json_str(&r, "id"), first);
    it_http_free(&r);
    assert_int_equal(count1("SELECT count(*) FROM events WHERE title = $1", "Something else"), 1);
}

/* A retried registration (its answer lost) is the first outcome, and the
 * token it returns cancels it: otherwise its owner could never cancel. */
static void a_retried_registration_gets_its_user_id_and_a_token_that_cancels_it(void **state) {
    (void)state;
    const char *api = prot();
    char id[TS_UUID_LEN + 1], unique[TS_UUID_LEN + 1], idem[64], uid[TS_UUID_LEN + 1];
    char token[33];
    create_event(api, org_key, "Retry", 10, id);
    ts_uuid_new(unique);
    snprintf(idem, sizeof idem, "reg-%s", unique);
    call c = {.idem = idem, .source = "127.0.0.2"};
    it_http_result r = do_register(api, id, "Retry", "retry@token.example", c);
    assert_int_equal(r.status, 201);
    snprintf(uid, sizeof uid, "%s", it_json_str(&r, "user_id"));
    it_http_free(&r);
    r = do_register(api, id, "Retry", "retry@token.example", c);
    assert_int_equal(r.status, 201);
    assert_string_equal(it_json_str(&r, "user_id"), uid);
    snprintf(token, sizeof token, "%s", it_json_str(&r, "cancel_token"));
    if (!is_token(token))
        fail_msg("the retry's answer has no cancel token: %s", r.body);
    it_http_free(&r);
    assert_int_equal(registered(id, uid), 1);
    expect_status(do_cancel(api, id, uid, token, (call){0}), 200);
    assert_int_equal(registered(id, uid), 0);
}

/* ------------------------------------------------------------ rate limits */

static const char *limited(void) {
    if (!limited_api[0]) {
        free_slot(0);
        const char *extra[] = {"TS_AUTH=on",
                               "TS_RATE_WRITES_PER_S=5",
                               "TS_RATE_BURST=5",
                               "TS_RATE_KEY_WRITES_PER_S=5",
                               "TS_RATE_KEY_BURST=5",
                               "TS_TRUSTED_PROXIES=127.0.0.1",
                               NULL};
        it_start_api_env(&env, 0, 1, extra, limited_api, sizeof limited_api);
        await_mode(limited_api, "protected", 5000);
        await_key(limited_api, org_key, "/api/events", false);
    }
    return limited_api;
}

/* A 429 as the contract says: code rate_limited, Retry-After >= 1 s. */
static void check_429(const it_http_result *r) {
    assert_string_equal(it_json_str(r, "code"), "rate_limited");
    const char *ra = it_http_header(r, "Retry-After");
    if (!ra)
        fail_msg("429 without Retry-After: %s", r->body);
    char *end;
    long s = strtol(ra, &end, 10);
    if (end == ra || *end || s < 1)
        fail_msg("Retry-After '%s' is not a whole number of seconds >= 1", ra);
}

/* The answers of reqs[from..to), which must each be 201 or a checked 429:
 * the number of 429s, and of 201s in *created when not NULL. Frees them. */
static int tally(it_http_request *reqs, int from, int to, const char *what, int *created) {
    int limited_n = 0;
    for (int i = from; i < to; i++) {
        it_http_result *r = &reqs[i].result;
        if (r->status == 429) {
            check_429(r);
            limited_n++;
        } else if (r->status == 201) {
            if (created)
                (*created)++;
        } else {
            fail_msg("%s, write %d: %ld %s", what, i - from, r->status, r->body ? r->body : "");
        }
        it_http_free(r);
    }
    return limited_n;
}

/* reqs[from..to) must all be 201. Frees them. */
static void all_created(it_http_request *reqs, int from, int to, const char *what) {
    for (int i = from; i < to; i++) {
        it_http_result *r = &reqs[i].result;
        if (r->status != 201)
            fail_msg("%s, write %d: %ld %s", what, i - from, r->status, r->body ? r->body : "");
        it_http_free(r);
    }
}

static void a_client_over_its_write_rate_gets_429_while_another_address_is_served(void **state) {
    (void)state;
    enum { NA = 50, NB = 8 };
    const char *api = limited();
    char id[TS_UUID_LEN + 1];
    create_event(prot(), org_key, "Rush", 1000, id);
    it_http_request *reqs = calloc(NA + NB, sizeof *reqs);
    /* A: 50 writes in 1 s, ten times its rate; B: one every 250 ms, under
     * its 5 a second, for 2 s, at the same time */
    for (int i = 0; i < NA + NB; i++) {
        char email[64];
        bool a = i < NA;
        snprintf(email, sizeof email, "%s%d@rush.example", a ? "a" : "b", i);
        it_http_registration(&reqs[i], api, id, a ? "A" : "B", email);
        strcpy(reqs[i].source, a ? "127.0.0.2" : "127.0.0.3");
        reqs[i].due_ms = a ? i * 20L : 125L + (i - NA) * 250L;
    }
    it_http_paced(reqs, NA + NB);
    int created = 0, limited_n = tally(reqs, 0, NA, "A at ten times its rate", &created);
    all_created(reqs, NA, NA + NB, "B at its own rate");
    free(reqs);
    printf("A: %d of %d accepted, %d limited\n", created, NA, limited_n);
    assert_true(created >= 1);
    assert_true(limited_n > NA / 2);
    /* a refused write left nothing behind */
    assert_int_equal(count1("SELECT count(*) FROM registrations WHERE event_id = $1", id),
                     created + NB);
}

static void x_forwarded_for_names_the_client_only_from_a_trusted_proxy(void **state) {
    (void)state;
    enum { N = 5 };
    const char *api = limited();
    char id[TS_UUID_LEN + 1];
    create_event(prot(), org_key, "Proxied", 1000, id);

    /* from the trusted proxy: two clients behind it, a burst each, at once */
    it_http_request *reqs = calloc(4 * N, sizeof *reqs);
    for (int i = 0; i < 2 * N; i++) {
        char email[64];
        snprintf(email, sizeof email, "x%d@proxy.example", i);
        it_http_registration(&reqs[i], api, id, "X", email);
        snprintf(reqs[i].header, sizeof reqs[i].header, "X-Forwarded-For: 198.51.100.%d",
                 i < N ? 7 : 8);
        strcpy(reqs[i].source, "127.0.0.1");
    }
    it_http_paced(reqs, 2 * N);
    all_created(reqs, 0, 2 * N, "behind the proxy, within its own burst");
    /* and each client behind it is limited on its own */
    for (int i = 0; i < 2 * N; i++) {
        char email[64];
        snprintf(email, sizeof email, "y%d@proxy.example", i);
        it_http_registration(&reqs[i], api, id, "Y", email);
        snprintf(reqs[i].header, sizeof reqs[i].header, "X-Forwarded-For: 198.51.100.7");
        strcpy(reqs[i].source, "127.0.0.1");
    }
    it_http_paced(reqs, 2 * N);
    int limited_n = tally(reqs, 0, 2 * N, "behind the proxy, over its burst", NULL);
    /* 10 at once on a bucket emptied a moment ago: half at least refused */
    assert_true(limited_n >= N);

    /* from an untrusted peer, X-Forwarded-For is ignored: one bucket */
    for (int i = 0; i < 4 * N; i++) {
        char email[64];
        snprintf(email, sizeof email, "z%d@proxy.example", i);
        it_http_registration(&reqs[i], api, id, "Z", email);
        snprintf(reqs[i].header, sizeof reqs[i].header, "X-Forwarded-For: 203.0.113.%d", i + 1);
        strcpy(reqs[i].source, "127.0.0.4");
    }
    it_http_paced(reqs, 4 * N);
    int created = 0;
    limited_n = tally(reqs, 0, 4 * N, "untrusted peer", &created);
    free(reqs);
    printf("untrusted peer, 20 addresses claimed: %d accepted, %d limited\n", created, limited_n);
    assert_true(created >= 1);
    assert_true(limited_n >= 2 * N); /* a burst of 5 and a second's refill at most */
}

static void an_organizer_key_over_its_write_rate_gets_429_from_any_address(void **state) {
    (void)state;
    enum { N = 20, OTHER = 3 };
    const char *api = limited();
    await_key(api, org_all_key, "/api/events", false);
    it_http_request *reqs = calloc(N + OTHER, sizeof *reqs);
    char unique[TS_UUID_LEN + 1];
    ts_uuid_new(unique);
    for (int i = 0; i < N + OTHER; i++) {
        char title[64];
        snprintf(title, sizeof title, "Key rate %s %d", unique, i);
        reqs[i].method = "POST";
        snprintf(reqs[i].url, sizeof reqs[i].url, "%s/api/events", api);
        event_body(title, 5, reqs[i].body, sizeof reqs[i].body);
        /* each from an address of its own: only the key's bucket is shared */
        snprintf(reqs[i].source, sizeof reqs[i].source, "127.0.1.%d", i + 1);
        snprintf(reqs[i].header, sizeof reqs[i].header, "Authorization: Bearer %s",
                 i < N ? org_key : org_all_key);
        reqs[i].due_ms = i < N ? 0 : 100L * (i - N);
    }
    it_http_paced(reqs, N + OTHER);
    int created = 0, limited_n = tally(reqs, 0, N, "the busy key", &created);
    all_created(reqs, N, N + OTHER, "the other organizer");
    free(reqs);
    printf("one key from %d addresses: %d accepted, %d limited\n", N, created, limited_n);
    assert_true(created >= 1);
    assert_true(limited_n >= N / 2);
    char like[64];
    snprintf(like, sizeof like, "Key rate %s %%", unique);
    assert_int_equal(count1("SELECT count(*) FROM events WHERE title LIKE $1", like),
                     created + OTHER);
}

static int burst_from(const char *api, const char *event_id, const char *source, int n,
                      const char *tag) {
    it_http_request *reqs = calloc((size_t)n, sizeof *reqs);
    for (int i = 0; i < n; i++) {
        char email[64];
        snprintf(email, sizeof email, "%s%d@burst.example", tag, i);
        it_http_registration(&reqs[i], api, event_id, "Burst", email);
        snprintf(reqs[i].source, sizeof reqs[i].source, "%s", source);
    }
    it_http_paced(reqs, (size_t)n);
    int limited_n = tally(reqs, 0, n, tag, NULL);
    free(reqs);
    return limited_n;
}

static void the_apis_drain_and_exit_zero_on_sigterm(void **state) {
    (void)state;
    stop_api(0);
    stop_api(1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(on_loopback_without_keys_the_api_is_open_and_answers_as_before),
        cmocka_unit_test(in_open_mode_an_idempotency_key_is_one_command_per_address_path_and_body),
        cmocka_unit_test(a_public_bind_without_a_key_refuses_to_start_and_names_the_fix),
        cmocka_unit_test(a_key_created_while_the_api_runs_turns_it_protected_within_a_second),
        cmocka_unit_test(only_the_hash_of_a_key_is_stored_and_the_list_never_shows_it),
        cmocka_unit_test(revoking_the_last_key_turns_the_api_open_again_within_a_second),
        cmocka_unit_test(with_keys_a_public_bind_starts_protected_and_ts_auth_off_stays_open),
        cmocka_unit_test(writes_are_rate_limited_by_default_when_protected_and_when_set_when_open),
        cmocka_unit_test(creating_an_event_needs_a_key_that_covers_all_events),
        cmocka_unit_test(an_event_read_without_its_key_shows_counts_and_no_attendee),
        cmocka_unit_test(only_the_cancel_token_or_an_organizer_key_cancels_a_registration),
        cmocka_unit_test(an_unknown_or_revoked_key_is_refused_on_every_api_route),
        cmocka_unit_test(in_protected_mode_an_idempotency_key_belongs_to_the_organizer_key),
        cmocka_unit_test(a_retried_registration_gets_its_user_id_and_a_token_that_cancels_it),
        cmocka_unit_test(a_client_over_its_write_rate_gets_429_while_another_address_is_served),
        cmocka_unit_test(x_forwarded_for_names_the_client_only_from_a_trusted_proxy),
        cmocka_unit_test(an_organizer_key_over_its_write_rate_gets_429_from_any_address),
        cmocka_unit_test(the_apis_drain_and_exit_zero_on_sigterm),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
