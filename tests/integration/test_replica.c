/* SPDX-License-Identifier: Apache-2.0 */
/* Integration: reads from a streaming replica (TS_PG_READ_DSN), with
 * read-your-writes. The real worker and APIs on the stack's PostgreSQL
 * and its replica (TS_PG_REPLICA=1 scripts/stack up):
 *   - a replica that has replayed what a read must see serves it (the
 *     API's metrics say where each read went);
 *   - with the replica's replay paused, a write's answer is visible to
 *     the next read through the same API at once (the primary serves it,
 *     and the fallback is counted), and through another API when the read
 *     carries the write's X-Turnstile-Position as X-Turnstile-Min-Position
 *     (without it, that API serves the replica's older state: the header
 *     is what carries the guarantee across instances); a write answered
 *     202 and followed to its outcome is covered the same way;
 *   - a replica down (a closed port) or hung (a frozen proxy) costs no
 *     read: each is answered from the primary within its deadline, and
 *     /readyz stays 200; a replica that answers again serves again.
 * The replica replicates the whole cluster, so this test's own database,
 * created on the primary, appears on it by itself.
 *
 * TS_TEST_PG_REPLICA_DSN names the replica as the services reach it (its
 * dbname is replaced by this test's database), TS_TEST_PG_REPLICA_ADMIN_DSN
 * a superuser's connection to it (pausing replay takes one); scripts/test
 * sets both. Without the first the test is skipped, saying so; the replay
 * is resumed whatever happens. */
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
#include "tcpproxy.h"
#include "ts_lsn.h"
#include "ts_time.h"
#include "ts_uuid.h"

#define SKIPPED 77 /* ctest's SKIP_RETURN_CODE for this test */
#define WAIT_MS 30000
#define PG_TIMEOUT_MS 4000 /* the APIs' TS_PG_TIMEOUT_MS here */

static it_env env;
static PGconn *admin;          /* a superuser's, on the replica */
static char read_dsn[1024];    /* TS_PG_READ_DSN=the replica, this test's database */
static char replica_host[256]; /* as the services reach it */
static int replica_port;
static char database[128]; /* this test's */

/* ------------------------------------------------------------ the replica */

/* One value of a query on `c`, in out[cap]; fails the test on an error. */
static void query_value(PGconn *c, const char *sql, const char *param, char *out, size_t cap) {
    const char *params[] = {param};
    PGresult *r = PQexecParams(c, sql, param ? 1 : 0, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    snprintf(out, cap, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
}

static uint64_t replayed(void) {
    char text[TS_LSN_TEXT_MAX + 8];
    uint64_t lsn = 0;
    query_value(admin, "SELECT pg_last_wal_replay_lsn()::text", NULL, text, sizeof text);
    assert_int_equal(ts_lsn_parse(text, &lsn), 0);
    return lsn;
}

/* Until the replica has replayed `lsn`: the moment a read there shows
 * everything committed before it. */
static void await_replayed(uint64_t lsn) {
    int64_t deadline = ts_monotonic_ms() + WAIT_MS;
    while (replayed() < lsn) {
        if (ts_monotonic_ms() > deadline) {
            char want[TS_LSN_TEXT_MAX], have[TS_LSN_TEXT_MAX];
            ts_lsn_format(lsn, want);
            ts_lsn_format(replayed(), have);
            fail_msg("the replica replayed %s, not %s, within %d ms", have, want, WAIT_MS);
        }
        struct timespec t = {0, 5 * 1000000L};
        nanosleep(&t, NULL);
    }
}

/* Pauses the replica's replay, and waits until it is paused indeed (it
 * pauses at the next record: the primary is given one). */
static void pause_replay(void) {
    PGresult *r = PQexec(admin, "SELECT pg_wal_replay_pause()");
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("pg_wal_replay_pause(): %s", PQerrorMessage(admin));
    PQclear(r);
    char state[32];
    int64_t deadline = ts_monotonic_ms() + WAIT_MS;
    for (;;) {
        query_value(admin, "SELECT pg_get_wal_replay_pause_state()", NULL, state, sizeof state);
        if (!strcmp(state, "paused"))
            return;
        if (ts_monotonic_ms() > deadline)
            fail_msg("the replica's replay is '%s', not paused, after %d ms", state, WAIT_MS);
        it_query_ll(&env, "SELECT txid_current()", 0, NULL); /* a commit record to stop at */
        struct timespec t = {0, 5 * 1000000L};
        nanosleep(&t, NULL);
    }
}

static void resume_replay(void) {
    if (!admin)
        return;
    PGresult *r = PQexec(admin, "SELECT pg_wal_replay_resume()");
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fprintf(stderr, "could not resume the replica's replay: %s", PQerrorMessage(admin));
    PQclear(r);
}

/* The primary's position now: past everything committed so far. */
static uint64_t primary_now(void) {
    PGresult *r = PQexec(env.pg, "SELECT pg_current_wal_insert_lsn()::text");
    uint64_t lsn = 0;
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(ts_lsn_parse(PQgetvalue(r, 0, 0), &lsn), 0);
    PQclear(r);
    return lsn;
}

/* ------------------------------------------------------------ setup */

/* `dsn` with `keyword` replaced by `value` (a later keyword wins). */
static void dsn_with(const char *dsn, const char *keyword, const char *value, char *out,
                     size_t cap) {
    int n = snprintf(out, cap, "%s %s='%s'", dsn, keyword, value);
    assert_true(n > 0 && (size_t)n < cap);
}

/* The value of `keyword` in a connection string, in out[cap] ("" if none). */
static void dsn_value(const char *dsn, const char *keyword, char *out, size_t cap) {
    PQconninfoOption *opts = PQconninfoParse(dsn, NULL);
    out[0] = '\0';
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (!strcmp(o->keyword, keyword) && o->val)
            snprintf(out, cap, "%s", o->val);
    PQconninfoFree(opts);
}

static int setup(void **state) {
    (void)state;
    const char *replica = getenv("TS_TEST_PG_REPLICA_DSN");
    const char *admin_dsn = getenv("TS_TEST_PG_REPLICA_ADMIN_DSN");
    if (!admin_dsn || !*admin_dsn) {
        fprintf(stderr, "TS_TEST_PG_REPLICA_DSN is set but not TS_TEST_PG_REPLICA_ADMIN_DSN, a"
                        " superuser's connection to the replica (see scripts/test)\n");
        return -1;
    }
    if (it_own_database("replica"))
        return -1;
    dsn_value(getenv("TS_PG_DSN"), "dbname", database, sizeof database);
    char port[16];
    dsn_value(replica, "host", replica_host, sizeof replica_host);
    dsn_value(replica, "port", port, sizeof port);
    replica_port = atoi(port);
    if (!replica_host[0] || replica_port <= 0) {
        fprintf(stderr, "TS_TEST_PG_REPLICA_DSN must name a host and a port\n");
        return -1;
    }
    char dsn[sizeof read_dsn - 16];
    dsn_with(replica, "dbname", database, dsn, sizeof dsn);
    snprintf(read_dsn, sizeof read_dsn, "TS_PG_READ_DSN=%s", dsn);
    admin = PQconnectdb(admin_dsn);
    if (PQstatus(admin) != CONNECTION_OK) {
        fprintf(stderr, "the replica (TS_TEST_PG_REPLICA_ADMIN_DSN): %s", PQerrorMessage(admin));
        return -1;
    }
    resume_replay(); /* a run killed midway may have left it paused */
    /* three API instances, each on a reply partition of its own */
    if (it_setup(&env, 2, 3))
        return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    resume_replay();
    it_teardown(&env);
    PQfinish(admin);
    return 0;
}

/* What a failed test may have left: replay paused, APIs running. */
static void fresh(void) {
    resume_replay();
    for (int i = 0; i < IT_MAX_APIS; i++)
        if (env.apis[i])
            it_stop_api(&env, i, SIGKILL);
    if (!env.workers[0])
        it_start_worker(&env, 0);
}

/* An API on the replica (`dsn_setting`, a TS_PG_READ_DSN=... entry). */
/* TS_PG_READ_DSN=the replica as TS_TEST_PG_REPLICA_DSN names it, but at
 * host:port, in out[cap]. */
static void replica_at(const char *host, const char *port, char *out, size_t cap) {
    char at_host[1024];
    dsn_with(read_dsn + strlen("TS_PG_READ_DSN="), "host", host, at_host, sizeof at_host);
    dsn_with(at_host, "port", port, out + strlen("TS_PG_READ_DSN="),
             cap - strlen("TS_PG_READ_DSN="));
    memcpy(out, "TS_PG_READ_DSN=", strlen("TS_PG_READ_DSN="));
}

static void start_api(int i, const char *dsn_setting, const char *more, char *base, size_t cap) {
    const char *extra[] = {dsn_setting, "TS_PG_TIMEOUT_MS=4000", more, NULL};
    it_start_api_env(&env, i, i, extra, base, cap);
}

/* ------------------------------------------------------------ HTTP */

/* A metric's value in an API's /metrics (`name` with its labels), or -1
 * when it is not there. */
static double metric(const char *base, const char *name) {
    char url[256];
    snprintf(url, sizeof url, "%s/metrics", base);
    it_http_result r = it_http("GET", url, NULL, NULL);
    double v = -1;
    size_t n = strlen(name);
    for (const char *p = r.status == 200 ? r.body : NULL; p && *p;
         p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, name, n) && p[n] == ' ')
            v = strtod(p + n + 1, NULL);
    it_http_free(&r);
    return v;
}

#define REPLICA_READS "turnstile_reads_total{database=\"replica\"}"
#define PRIMARY_READS "turnstile_reads_total{database=\"primary\"}"
#define LAG_FALLBACKS "turnstile_read_fallbacks_total{reason=\"lag\"}"
#define DOWN_FALLBACKS "turnstile_read_fallbacks_total{reason=\"unavailable\"}"

/* Where an API's reads went so far. */
typedef struct counts {
    double replica, primary, lag, down;
} counts;

static counts counted(const char *base) {
    counts c = {metric(base, REPLICA_READS), metric(base, PRIMARY_READS),
                metric(base, LAG_FALLBACKS), metric(base, DOWN_FALLBACKS)};
    assert_true(c.replica >= 0 && c.primary >= 0 && c.lag >= 0 && c.down >= 0);
    return c;
}

/* A request with an optional X-Turnstile-Min-Position; the response's
 * headers are kept. */
static it_http_result request(const char *method, const char *base, const char *path,
                              const char *body, const char *min_position) {
    char url[256], header[128];
    snprintf(url, sizeof url, "%s%s", base, path);
    snprintf(header, sizeof header, "X-Turnstile-Min-Position: %s",
             min_position ? min_position : "");
    const char *headers[] = {header, NULL};
    it_http_opts opts = {.headers = min_position ? headers : NULL, .timeout_ms = 30000};
    return it_http_ex(method, url, body, &opts);
}

/* The X-Turnstile-Position of a response, parsed; fails the test without
 * one. Its text in text[TS_LSN_TEXT_MAX] when text is not NULL. */
static uint64_t position_of(const it_http_result *r, char *text) {
    const char *h = it_http_header(r, "X-Turnstile-Position");
    if (!h)
        fail_msg("no X-Turnstile-Position in a %ld answer: %s", r->status, r->body);
    uint64_t lsn = 0;
    if (ts_lsn_parse(h, &lsn))
        fail_msg("X-Turnstile-Position '%s' is not a position", h);
    if (text)
        snprintf(text, TS_LSN_TEXT_MAX, "%s", h);
    return lsn;
}

static uint64_t create_event(const char *base, const char *title, int capacity,
                             char id[TS_UUID_LEN + 1]) {
    char when[TS_ISO8601_LEN + 1], body[256];
    ts_time_format_iso8601(ts_now_ms() + 30LL * 86400000, when);
    snprintf(body, sizeof body,
             "{\"title\":\"%s\",\"starts_at\":\"%s\",\"location\":\"Hall\",\"capacity\":%d}", title,
             when, capacity);
    it_http_result r = request("POST", base, "/api/events", body, NULL);
    assert_int_equal(r.status, 201);
    assert_int_equal(ts_uuid_normalize(it_json_str(&r, "id"), id), 0);
    uint64_t lsn = position_of(&r, NULL);
    it_http_free(&r);
    return lsn;
}

/* GET /api/events/:id/stats: total_registrations, or -1 for another answer. */
static long long registrations(const char *base, const char *id, const char *min_position) {
    char path[128];
    snprintf(path, sizeof path, "/api/events/%s/stats", id);
    it_http_result r = request("GET", base, path, NULL, min_position);
    long long n = r.status == 200 && r.json
                      ? json_integer_value(json_object_get(r.json, "total_registrations"))
                      : -1;
    if (r.status != 200)
        fprintf(stderr, "stats: %ld %s\n", r.status, r.body);
    it_http_free(&r);
    return n;
}

/* ------------------------------------------------------------ tests */

/* A replica that has replayed a write serves the reads after it; the
 * replies carry their commit's position, which the API hands on. */
static void a_current_replica_serves_the_reads(void **state) {
    (void)state;
    fresh();
    char a[64], id[TS_UUID_LEN + 1];
    start_api(0, read_dsn, NULL, a, sizeof a);
    uint64_t before = primary_now();
    uint64_t created = create_event(a, "Replica", 10, id);
    /* the commit's position: past what was committed before the write,
     * not past what the primary has now */
    assert_true(created > before);
    assert_true(created <= primary_now());
    /* a command straight through Kafka: its reply carries its position */
    ts_command reg = it_registration(&env, id, "Ada", "ada@example.org");
    it_produce(&env, &reg);
    ts_reply reply = it_await_reply(&env, reg.command_id, 1, WAIT_MS);
    assert_int_equal(reply.outcome, TS_OUT_REGISTERED);
    assert_true(reply.commit_lsn > created);
    assert_true(reply.commit_lsn <= primary_now());

    await_replayed(created);
    counts c0 = counted(a);
    char path[128];
    snprintf(path, sizeof path, "/api/events/%s", id);
    it_http_result r = request("GET", a, path, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(it_json_str(&r, "title"), "Replica");
    it_http_free(&r);
    r = request("GET", a, "/api/events?limit=5", NULL, NULL);
    assert_int_equal(r.status, 200);
    it_http_free(&r);
    counts c1 = counted(a);
    assert_true(c1.replica == c0.replica + 2);
    assert_true(c1.primary == c0.primary);
    assert_true(c1.lag == c0.lag && c1.down == c0.down);

    /* a position the replica has not reached, asked for: the primary */
    char beyond[TS_LSN_TEXT_MAX];
    ts_lsn_format(primary_now() + (UINT64_C(1) << 40), beyond);
    assert_int_equal(registrations(a, id, beyond), 1);
    counts c2 = counted(a);
    assert_true(c2.primary == c1.primary + 1 && c2.lag == c1.lag + 1);
    assert_true(c2.replica == c1.replica);
    assert_int_equal(it_stop_api(&env, 0, SIGTERM), 0); /* drained; under ASan: no leak */
}

/* With the replica's replay paused, a client still reads its own writes:
 * through the same API at once, through another one with the position. */
static void a_client_reads_its_own_writes_while_the_replica_lags(void **state) {
    (void)state;
    fresh();
    char a[64], b[64], c[64], id[TS_UUID_LEN + 1];
    start_api(0, read_dsn, NULL, a, sizeof a);
    start_api(1, read_dsn, NULL, b, sizeof b);
    start_api(2, read_dsn, "TS_REPLY_TIMEOUT_MS=1", c, sizeof c); /* answers writes 202 */
    uint64_t created = create_event(a, "Lagging", 10, id);
    await_replayed(created);
    assert_int_equal(registrations(b, id, NULL), 0); /* B has answered no write: the replica */

    pause_replay();
    uint64_t paused_at = replayed();
    char path[160], position[TS_LSN_TEXT_MAX];
    snprintf(path, sizeof path, "/api/events/%s/register", id);
    counts a0 = counted(a);
    it_http_result r =
        request("POST", a, path, "{\"name\":\"Grace\",\"email\":\"grace@example.org\"}", NULL);
    assert_int_equal(r.status, 201);
    uint64_t registered = position_of(&r, position);
    it_http_free(&r);
    assert_true(registered > paused_at);

    /* the same API, at once: the registration (from the primary) */
    assert_int_equal(registrations(a, id, NULL), 1);
    snprintf(path, sizeof path, "/api/events/%s", id);
    r = request("GET", a, path, NULL, NULL);
    assert_int_equal(r.status, 200);
    json_t *list = json_object_get(r.json, "registrations");
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "email")),
                        "grace@example.org");
    it_http_free(&r);
    counts a1 = counted(a);
    assert_true(a1.primary == a0.primary + 2 && a1.lag == a0.lag + 2);
    assert_true(a1.replica == a0.replica);

    /* another API: without the position, the replica's older state (it
     * has seen no write: nothing tells it otherwise); with it, the write */
    counts b0 = counted(b);
    assert_int_equal(registrations(b, id, NULL), 0);
    assert_int_equal(registrations(b, id, position), 1);
    counts b1 = counted(b);
    assert_true(b1.replica == b0.replica + 1);
    assert_true(b1.primary == b0.primary + 1 && b1.lag == b0.lag + 1);
    /* a position that is none: 400 naming the header */
    r = request("GET", b, path, NULL, "0/16B3748 ");
    assert_int_equal(r.status, 400);
    assert_string_equal(it_json_str(&r, "code"), "invalid_header");
    assert_string_equal(it_json_str(&r, "field"), "X-Turnstile-Min-Position");
    it_http_free(&r);

    /* an event changed is answered with the event read after the change */
    r = request("PATCH", a, path, "{\"title\":\"Renamed\"}", NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(it_json_str(&r, "title"), "Renamed");
    assert_true(position_of(&r, NULL) > registered);
    it_http_free(&r);

    /* a write answered 202, followed to its outcome: the outcome carries a
     * position past it, and the API that answered it reads it. The worker
     * is stopped while it is sent: a lone command is applied in about 2 ms,
     * and its reply could beat the 1 ms deadline (201). */
    snprintf(path, sizeof path, "/api/events/%s/register", id);
    assert_int_equal(it_stop_worker(&env, 0, SIGTERM), 0);
    r = request("POST", c, path, "{\"name\":\"Alan\",\"email\":\"alan@example.org\"}", NULL);
    it_start_worker(&env, 0);
    assert_int_equal(r.status, 202);
    char location[256];
    snprintf(location, sizeof location, "%s", r.location);
    it_http_free(&r);
    int64_t deadline = ts_monotonic_ms() + WAIT_MS;
    for (;;) {
        r = request("GET", c, location, NULL, NULL);
        assert_int_equal(r.status, 200);
        if (!strcmp(it_json_str(&r, "status"), "done"))
            break;
        assert_null(it_http_header(&r, "X-Turnstile-Position")); /* pending: none */
        it_http_free(&r);
        assert_true(ts_monotonic_ms() < deadline);
        struct timespec t = {0, 10 * 1000000L};
        nanosleep(&t, NULL);
    }
    assert_string_equal(it_json_str(&r, "outcome"), "REGISTERED");
    assert_true(position_of(&r, NULL) > registered);
    it_http_free(&r);
    counts c0 = counted(c);
    assert_int_equal(registrations(c, id, NULL), 2);
    counts c1 = counted(c);
    assert_true(c1.primary == c0.primary + 1 && c1.lag == c0.lag + 1);

    /* all the while the replica stayed where it was paused */
    assert_true(replayed() == paused_at);
    resume_replay();
    await_replayed(primary_now());
    counts b2 = counted(b);
    assert_int_equal(registrations(b, id, NULL), 2);
    assert_int_equal(registrations(b, id, position), 2);
    counts b3 = counted(b);
    assert_true(b3.replica == b2.replica + 2 && b3.primary == b2.primary);
    for (int i = 0; i < 3; i++)
        assert_int_equal(it_stop_api(&env, i, SIGTERM), 0); /* drained; under ASan: no leak */
}

/* /readyz answers 200: a replica is not something reads need. */
static void assert_ready(const char *base) {
    char url[256];
    snprintf(url, sizeof url, "%s/readyz", base);
    int64_t deadline = ts_monotonic_ms() + WAIT_MS; /* a fresh API's probes: a few ms */
    for (;;) {
        it_http_result r = it_http("GET", url, NULL, NULL);
        long status = r.status;
        it_http_free(&r);
        if (status == 200)
            return;
        if (ts_monotonic_ms() > deadline)
            fail_msg("/readyz answers %ld", status);
        struct timespec t = {0, 20 * 1000000L};
        nanosleep(&t, NULL);
    }
}

/* Reads, each answered right and within the deadline; the longest in ms. */
static int64_t read_all(const char *base, const char *id, int n, long long want) {
    int64_t longest = 0;
    for (int i = 0; i < n; i++) {
        int64_t t0 = ts_monotonic_ms();
        assert_int_equal(registrations(base, id, NULL), want);
        int64_t took = ts_monotonic_ms() - t0;
        longest = took > longest ? took : longest;
    }
    assert_true(longest < PG_TIMEOUT_MS);
    return longest;
}

/* A replica that is down, or that hangs, costs no read: the primary
 * answers each, within its deadline; the API stays ready. */
static void a_replica_down_or_hung_leaves_the_reads_to_the_primary(void **state) {
    (void)state;
    fresh();
    char a[64], id[TS_UUID_LEN + 1];
    /* a closed port: refused at once */
    char dsn[1200], port[16];
    it_proxy *gone = it_proxy_start(replica_host, replica_port);
    assert_non_null(gone);
    snprintf(port, sizeof port, "%d", it_proxy_port(gone));
    it_proxy_stop(gone); /* nobody listens there now */
    replica_at("127.0.0.1", port, dsn, sizeof dsn);
    start_api(0, dsn, NULL, a, sizeof a);
    create_event(a, "Down", 10, id);
    int64_t longest = read_all(a, id, 5, 0);
    counts c = counted(a);
    assert_true(c.replica == 0 && c.primary >= 5 && c.down >= 5);
    assert_ready(a);
    fprintf(stderr, "replica down: 5 reads from the primary, the longest %lld ms\n",
            (long long)longest);
    assert_int_equal(it_stop_api(&env, 0, SIGTERM), 0); /* drained; under ASan: no leak */

    /* a proxy that stops forwarding: a replica that hangs */
    it_proxy *proxy = it_proxy_start(replica_host, replica_port);
    assert_non_null(proxy);
    snprintf(port, sizeof port, "%d", it_proxy_port(proxy));
    replica_at("127.0.0.1", port, dsn, sizeof dsn);
    start_api(0, dsn, NULL, a, sizeof a);
    await_replayed(primary_now());
    read_all(a, id, 2, 0);
    counts h0 = counted(a);
    assert_true(h0.replica == 2);
    it_proxy_freeze(proxy, true);
    longest = read_all(a, id, 6, 0);
    counts h1 = counted(a);
    assert_true(h1.replica == h0.replica && h1.primary == h0.primary + 6);
    assert_true(h1.down >= h0.down + 6);
    assert_ready(a);
    fprintf(stderr, "replica hung: 6 reads from the primary, the longest %lld ms\n",
            (long long)longest);
    /* once it answers again, it serves again (after its rest) */
    it_proxy_freeze(proxy, false);
    int64_t deadline = ts_monotonic_ms() + WAIT_MS;
    while (counted(a).replica == h1.replica) {
        assert_true(ts_monotonic_ms() < deadline);
        read_all(a, id, 1, 0);
        struct timespec t = {0, 100 * 1000000L};
        nanosleep(&t, NULL);
    }
    assert_int_equal(it_stop_api(&env, 0, SIGTERM), 0); /* drained; under ASan: no leak */
    it_proxy_stop(proxy);
}

int main(void) {
    const char *replica = getenv("TS_TEST_PG_REPLICA_DSN");
    if (!replica || !*replica) {
        fprintf(stderr, "integration.replica: skipped: no replica configured"
                        " (TS_TEST_PG_REPLICA_DSN is not set; scripts/test sets it after"
                        " TS_PG_REPLICA=1 scripts/stack up)\n");
        return SKIPPED;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_current_replica_serves_the_reads),
        cmocka_unit_test(a_client_reads_its_own_writes_while_the_replica_lags),
        cmocka_unit_test(a_replica_down_or_hung_leaves_the_reads_to_the_primary),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
