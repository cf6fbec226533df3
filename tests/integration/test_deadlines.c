/* SPDX-License-Identifier: Apache-2.0 */
/* Integration: a PostgreSQL that accepts connections and never answers
 * (a proxy that stops forwarding: what a stopped server or a dead network
 * path looks like). The API keeps answering writes, /healthz and /metrics,
 * and answers the reads that need the database 503 within their deadline,
 * or at once when too many wait; the worker cuts its transaction at the
 * deadline, says so in /metrics, applies nothing meanwhile, and applies
 * every command once when the database answers again. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "harness.h"
#include "http_client.h"
#include "tcpproxy.h"
#include "ts_time.h"
#include "ts_uuid.h"

#define WAIT_MS 60000
#define PG_TIMEOUT_MS 4000 /* the services' TS_PG_TIMEOUT_MS here */

static it_env env;
static it_proxy *proxy;
static char proxied_dsn[1024]; /* TS_PG_DSN through the proxy */

static int setup(void **state) {
    (void)state;
    const char *dsn = getenv("TS_PG_DSN") ? getenv("TS_PG_DSN") : IT_DEFAULT_DSN;
    char through[sizeof proxied_dsn - 16];
    if (!(proxy = it_proxy_to_database(dsn, through, sizeof through)))
        return -1;
    snprintf(proxied_dsn, sizeof proxied_dsn, "TS_PG_DSN=%s", through);
    return it_setup(&env, 2, 2);
}

static int teardown(void **state) {
    (void)state;
    it_proxy_freeze(proxy, false);
    it_teardown(&env);
    it_proxy_stop(proxy);
    return 0;
}

/* What a failed test may have left: the proxy frozen, processes running. */
static void fresh(void) {
    it_proxy_freeze(proxy, false);
    for (int i = 0; i < IT_MAX_APIS; i++)
        if (env.apis[i])
            it_stop_api(&env, i, SIGKILL);
    for (int i = 0; i < IT_MAX_WORKERS; i++)
        if (env.workers[i])
            it_stop_worker(&env, i, SIGKILL);
}

/* A metric's value in a Prometheus page, or -1 when it is not there. */
static double metric(const char *page, const char *name) {
    size_t n = strlen(name);
    for (const char *p = page; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, name, n) && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

static double scrape(const char *base, const char *name) {
    char url[256];
    snprintf(url, sizeof url, "%s/metrics", base);
    it_http_result r = it_http("GET", url, NULL, NULL);
    double v = r.status == 200 ? metric(r.body, name) : -1; /* -1: not up yet */
    it_http_free(&r);
    return v;
}

/* Waits up to timeout_ms for a metric to reach `at_least`. */
static void await_metric(const char *base, const char *name, double at_least, int timeout_ms) {
    int64_t deadline = ts_monotonic_ms() + timeout_ms;
    double v;
    while ((v = scrape(base, name)) < at_least) {
        if (ts_monotonic_ms() > deadline)
            fail_msg("%s is %g, not %g, after %d ms", name, v, at_least, timeout_ms);
        struct timespec t = {0, 50 * 1000000L};
        nanosleep(&t, NULL);
    }
}

typedef struct burst_arg {
    it_http_request *reqs;
    size_t n;
} burst_arg;

static void *run_burst(void *arg) {
    burst_arg *b = arg;
    it_http_burst(b->reqs, b->n, (int)b->n);
    return NULL;
}

#define READS 10

static void a_hung_database_leaves_writes_healthz_and_metrics_answering(void **state) {
    (void)state;
    fresh();
    it_start_worker(&env, 0); /* the worker's database answers: only the API's hangs */
    const char *extra[] = {proxied_dsn, "TS_PG_TIMEOUT_MS=4000", "TS_READ_THREADS=2",
                           "TS_READ_QUEUE=2", NULL};
    char base[128], url[256];
    it_start_api_env(&env, 0, 1, extra, base, sizeof base);
    snprintf(url, sizeof url, "%s/api/events", base);
    const char *create = "{\"title\":\"Deadlines\",\"starts_at\":\"2031-01-01T10:00:00Z\","
                         "\"location\":\"Hall\",\"capacity\":50}";
    it_http_result r = it_http("POST", url, create, NULL);
    assert_int_equal(r.status, 201);
    char id[TS_UUID_LEN + 1], event_url[256];
    snprintf(id, sizeof id, "%s", it_json_str(&r, "id"));
    it_http_free(&r);
    snprintf(event_url, sizeof event_url, "%s/api/events/%s", base, id);
    r = it_http("GET", event_url, NULL, NULL);
    assert_int_equal(r.status, 200); /* through the proxy, while it forwards */
    it_http_free(&r);

    it_proxy_freeze(proxy, true);
    /* Ten reads at once: two run (and hang on the database), two wait, the
     * other six are refused at once (or up to two more, when the threads
     * had not taken their reads yet as the others came: a loaded machine). */
    it_http_request reads[READS];
    memset(reads, 0, sizeof reads);
    for (int i = 0; i < READS; i++) {
        reads[i].method = "GET";
        snprintf(reads[i].url, sizeof reads[i].url, "%s", event_url);
    }
    burst_arg b = {reads, READS};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, run_burst, &b), 0);
    await_metric(base, "turnstile_reads_refused_total", READS - 4, WAIT_MS);

    /* While reads hang on the database: /healthz, a write and /metrics. */
    it_http_opts quick = {.timeout_ms = 3000};
    snprintf(url, sizeof url, "%s/healthz", base);
    r = it_http_ex("GET", url, NULL, &quick);
    assert_int_equal(r.status, 200);
    it_http_free(&r);
    snprintf(url, sizeof url, "%s/api/events", base);
    r = it_http_ex("POST", url, create, &quick);
    assert_int_equal(r.status, 201);
    it_http_free(&r);
    assert_true(scrape(base, "turnstile_reads_waiting") >= 1); /* still hung: the test is real */

    pthread_join(t, NULL);
    int refused = 0;
    for (int i = 0; i < READS; i++) {
        /* every read answered 503 with Retry-After: at once, or at its deadline */
        assert_int_equal(reads[i].result.status, 503);
        assert_string_equal(reads[i].result.retry_after, "1");
        refused += strstr(reads[i].result.body, "Too many reads") != NULL;
        assert_true(reads[i].seconds < 2.0 * PG_TIMEOUT_MS / 1000);
        it_http_free(&reads[i].result);
    }
    assert_in_range(refused, READS - 4, READS - 2);
    /* the two running: cut by the deadline, or their connection attempt
     * timed out; the two queued: past their deadline when a thread came */
    assert_int_equal(scrape(base, "turnstile_reads_failed_total"), READS - refused);

    /* The database answers again: so do the reads. */
    it_proxy_freeze(proxy, false);
    int64_t deadline = ts_monotonic_ms() + WAIT_MS;
    for (;;) {
        r = it_http("GET", event_url, NULL, NULL);
        long status = r.status;
        it_http_free(&r);
        if (status == 200)
            break;
        assert_int_equal(status, 503);
        assert_true(ts_monotonic_ms() < deadline);
    }
    assert_int_equal(it_stop_api(&env, 0, SIGTERM), 0);
    assert_int_equal(it_stop_worker(&env, 0, SIGTERM), 0);
}

/* Sessions ended by the server (pg_terminate_backend, a restart) cost the
 * next read nothing: its thread remakes the connection and asks again. */
static void reads_after_their_sessions_were_terminated_are_answered(void **state) {
    (void)state;
    fresh();
    it_start_worker(&env, 0);
    const char *extra[] = {"TS_READ_THREADS=1", NULL}; /* one connection: the one ended */
    char base[128], url[256];
    it_start_api_env(&env, 0, 1, extra, base, sizeof base);
    snprintf(url, sizeof url, "%s/api/events", base);
    it_http_result r = it_http("POST", url,
                               "{\"title\":\"Ended\",\"starts_at\":\"2031-01-01T10:00:00Z\","
                               "\"location\":\"Hall\",\"capacity\":5}",
                               NULL);
    assert_int_equal(r.status, 201);
    snprintf(url, sizeof url, "%s/api/events/%s/stats", base, it_json_str(&r, "id"));
    it_http_free(&r);
    for (int round = 0; round < 3; round++) {
        r = it_http("GET", url, NULL, NULL);
        assert_int_equal(r.status, 200);
        it_http_free(&r);
        assert_true(it_query_ll(&env,
                                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                " WHERE application_name = 'turnstile-api'"
                                " AND datname = current_database()",
                                0, NULL) >= 1); /* there was a session to end */
    }
    r = it_http("GET", url, NULL, NULL);
    assert_int_equal(r.status, 200);
    it_http_free(&r);
    assert_int_equal(it_stop_api(&env, 0, SIGTERM), 0);
    assert_int_equal(it_stop_worker(&env, 0, SIGTERM), 0);
}

#define HUNG_COMMANDS 20

static void
a_worker_whose_database_hangs_applies_nothing_until_it_answers_then_all_once(void **state) {
    (void)state;
    fresh();
    const char *extra[] = {proxied_dsn, "TS_PG_TIMEOUT_MS=4000", NULL};
    it_start_worker_env(&env, 1, extra);
    char worker[64];
    snprintf(worker, sizeof worker, "http://127.0.0.1:%d", env.worker_ports[1]);
    await_metric(worker, "turnstile_worker_partitions", 2, WAIT_MS); /* all of them: it is alone */

    char event[TS_UUID_LEN + 1];
    ts_uuid_new(event);
    ts_command c = it_command(&env, TS_CMD_CREATE_EVENT, event);
    strcpy(c.u.create.title, "Hung");
    strcpy(c.u.create.location, "Hall");
    c.u.create.starts_at_ms = ts_now_ms() + 30LL * 86400000;
    c.u.create.capacity = 100;
    it_produce(&env, &c);
    assert_int_equal(it_await_reply(&env, c.command_id, 1, WAIT_MS).outcome, TS_OUT_CREATED);

    it_proxy_freeze(proxy, true);
    ts_command regs[HUNG_COMMANDS];
    for (int i = 0; i < HUNG_COMMANDS; i++) {
        char email[64];
        snprintf(email, sizeof email, "hung%d@example.com", i);
        regs[i] = it_registration(&env, event, "Hung", email);
    }
    it_produce_many(&env, regs, HUNG_COMMANDS);
    /* the transaction is cut at the deadline and retried, visibly */
    await_metric(worker, "turnstile_worker_database_deadlines_total", 1, WAIT_MS);
    await_metric(worker, "turnstile_worker_database_unavailable", 1, WAIT_MS);
    const char *p[] = {event};
    assert_int_equal(it_query_ll(&env,
                                 "SELECT count(*) FROM processed_commands WHERE event_id = $1"
                                 " AND kind = 'register'",
                                 1, p),
                     0); /* never mistaken for success */
    char url[128];
    snprintf(url, sizeof url, "%s/healthz", worker);
    it_http_result r = it_http("GET", url, NULL, NULL);
    assert_int_equal(r.status, 200); /* waiting on the database is not a failure of the worker */
    it_http_free(&r);

    it_proxy_freeze(proxy, false);
    for (int i = 0; i < HUNG_COMMANDS; i++)
        assert_int_equal(it_await_reply(&env, regs[i].command_id, 1, WAIT_MS).outcome,
                         TS_OUT_REGISTERED);
    assert_int_equal(
        it_query_ll(&env, "SELECT count(*) FROM registrations WHERE event_id = $1", 1, p),
        HUNG_COMMANDS);
    assert_int_equal(it_query_ll(&env, "SELECT registered FROM events WHERE id = $1", 1, p),
                     HUNG_COMMANDS);
    await_metric(worker, "turnstile_worker_commands_total{outcome=\"REGISTERED\"}", HUNG_COMMANDS,
                 WAIT_MS);
    assert_int_equal(scrape(worker, "turnstile_worker_database_unavailable"), 0);
    assert_int_equal(it_stop_worker(&env, 1, SIGTERM), 0);
}

/* A fatal error of the worker's idempotent producer (librdkafka's test
 * hook): the reason is logged and the worker exits non-zero, for its
 * supervisor to start anew. */
static void a_fatal_kafka_error_stops_the_worker_with_a_failure(void **state) {
    (void)state;
    fresh();
    const char *extra[] = {"TS_FAILPOINT_KAFKA_FATAL_MS=1500", NULL};
    it_start_worker_env(&env, 2, extra);
    it_await_worker_log(&env, 2, "event=kafka_fatal", WAIT_MS);
    it_await_worker_log(&env, 2, "OUT_OF_ORDER_SEQUENCE_NUMBER", WAIT_MS);
    it_await_worker_log(&env, 2, "event=stopping reason=kafka_fatal", WAIT_MS);
    assert_int_equal(it_stop_worker(&env, 2, 0), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_hung_database_leaves_writes_healthz_and_metrics_answering),
        cmocka_unit_test(reads_after_their_sessions_were_terminated_are_answered),
        cmocka_unit_test(
            a_worker_whose_database_hangs_applies_nothing_until_it_answers_then_all_once),
        cmocka_unit_test(a_fatal_kafka_error_stops_the_worker_with_a_failure),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
