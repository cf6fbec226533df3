/* SPDX-License-Identifier: Apache-2.0 */
/* Integration: what operators watch. /readyz on both services (ready once
 * their backends answer; not ready, naming why, while PostgreSQL hangs,
 * for a worker that owns no partition, and from the start of a drain),
 * the worker's lag per partition (it grows while the database hangs and
 * falls to 0 once the backlog is applied), metrics in base units with the
 * build's version and commit, and the deploy/ files, whose every metric
 * must be in the real /metrics of both services. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"
#include "http_client.h"
#include "tcpproxy.h"
#include "ts_time.h"
#include "ts_uuid.h"

#define WAIT_MS 60000

static it_env env;
static it_proxy *proxy;
static char proxied_dsn[1024]; /* TS_PG_DSN through the proxy */
static char api[64];           /* API 0, straight to PostgreSQL */

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

static void pause_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static void worker_url(int i, const char *path, char *url, size_t cap) {
    snprintf(url, cap, "http://127.0.0.1:%d%s", env.worker_ports[i], path);
}

/* GET base+/readyz: its status (0: no answer) and, when not ready, the
 * names it gives joined by commas in why[cap]. */
static long readyz(const char *base, char *why, size_t cap) {
    char url[256];
    snprintf(url, sizeof url, "%s/readyz", base);
    it_http_opts quick = {.timeout_ms = 3000};
    it_http_result r = it_http_ex("GET", url, NULL, &quick);
    why[0] = '\0';
    if (r.status == 200) {
        assert_string_equal(it_json_str(&r, "status"), "ready");
    } else if (r.status == 503) {
        assert_string_equal(it_json_str(&r, "status"), "not_ready");
        json_t *list = json_object_get(r.json, "not_ready");
        assert_true(json_is_array(list) && json_array_size(list) > 0);
        size_t i;
        json_t *v;
        json_array_foreach(list, i, v) {
            size_t len = strlen(why);
            snprintf(why + len, cap - len, "%s%s", len ? "," : "", json_string_value(v));
        }
    }
    long status = r.status;
    it_http_free(&r);
    return status;
}

/* Waits up to timeout_ms for /readyz to answer `status`, naming `name`
 * among what is not ready when it is not NULL. */
static void await_readyz(const char *base, long status, const char *name, int timeout_ms) {
    int64_t deadline = ts_monotonic_ms() + timeout_ms;
    char why[256];
    long got;
    while ((got = readyz(base, why, sizeof why)) != status || (name && !strstr(why, name))) {
        if (ts_monotonic_ms() > deadline)
            fail_msg("%s/readyz: %ld [%s], not %ld [%s] after %d ms", base, got, why, status,
                     name ? name : "", timeout_ms);
        pause_ms(50);
    }
}

static char *scrape(const char *base) {
    char url[256];
    snprintf(url, sizeof url, "%s/metrics", base);
    it_http_result r = it_http("GET", url, NULL, NULL);
    assert_int_equal(r.status, 200);
    char *text = strdup(r.body);
    it_http_free(&r);
    return text;
}

/* The sum of every sample of `name` (any labels) in a page; -1 if none. */
static double sum_of(const char *page, const char *name) {
    size_t n = strlen(name);
    double sum = -1;
    for (const char *p = page; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, name, n) != 0 || (p[n] != ' ' && p[n] != '{'))
            continue;
        const char *v = strchr(p, ' ');
        sum = (sum < 0 ? 0 : sum) + strtod(v + 1, NULL);
    }
    return sum;
}

/* Waits until the worker's summed lag is `at_least` (or, when exact, is
 * exactly it). Returns it. */
static double await_lag(int worker, double want, bool exact, int timeout_ms) {
    char base[64];
    worker_url(worker, "", base, sizeof base);
    int64_t deadline = ts_monotonic_ms() + timeout_ms;
    for (;;) {
        char *page = scrape(base);
        double lag = sum_of(page, "turnstile_worker_lag_messages");
        free(page);
        if (exact ? lag == want : lag >= want)
            return lag;
        if (ts_monotonic_ms() > deadline)
            fail_msg("worker %d's lag is %g, not %s%g, after %d ms", worker, lag,
                     exact ? "" : ">= ", want, timeout_ms);
        pause_ms(100);
    }
}

/* ------------------------------------------------------------ ready */

static void both_services_are_ready_once_their_backends_answer(void **state) {
    (void)state;
    it_start_worker(&env, 0);
    it_start_api(&env, 0, 0, api, sizeof api);
    char worker[64];
    worker_url(0, "", worker, sizeof worker);
    await_readyz(api, 200, NULL, WAIT_MS);
    await_readyz(worker, 200, NULL, WAIT_MS);
    /* ready is ready: a write goes through */
    char url[128];
    snprintf(url, sizeof url, "%s/api/events", api);
    it_http_result r = it_http("POST", url,
                               "{\"title\":\"Ops\",\"starts_at\":\"2031-01-01T10:00:00Z\","
                               "\"location\":\"Hall\",\"capacity\":5}",
                               NULL);
    assert_int_equal(r.status, 201);
    it_http_free(&r);
    /* both partitions owned and settled: a lag for each (once their ends
     * are known: within a second), 0 once the write is applied */
    await_lag(0, 0, true, WAIT_MS);
    char *page = scrape(worker);
    assert_non_null(strstr(page, "\nturnstile_ready 1\n"));
    assert_non_null(strstr(page, "\nturnstile_worker_lag_messages{partition=\"0\"} 0\n"));
    assert_non_null(strstr(page, "\nturnstile_worker_lag_messages{partition=\"1\"} 0\n"));
    free(page);
    page = scrape(api);
    assert_non_null(strstr(page, "\nturnstile_ready 1\n"));
    free(page);
}

/* Every counter ends in _total; every histogram is in seconds, with the
 * buckets from 1 ms to 10 s; the build is named. */
static void check_units(const char *page) {
    int histograms = 0;
    for (const char *p = page; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        char name[128], type[32];
        if (sscanf(p, "# TYPE %127s %31s", name, type) != 2)
            continue;
        size_t n = strlen(name);
        if (!strcmp(type, "counter") && (n < 6 || strcmp(name + n - 6, "_total") != 0))
            fail_msg("counter %s does not end in _total", name);
        if (n > 3 && !strcmp(name + n - 3, "_ms"))
            fail_msg("%s is in milliseconds", name);
        if (!strcmp(type, "histogram")) {
            histograms++;
            if (n < 8 || strcmp(name + n - 8, "_seconds") != 0)
                fail_msg("histogram %s does not end in _seconds", name);
            const char *bounds[] = {"0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
                                    "0.25",  "0.5",    "1",     "2.5",  "5",     "10",   "+Inf"};
            for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++) {
                char bucket[192];
                snprintf(bucket, sizeof bucket, "\n%s_bucket{le=\"%s\"} ", name, bounds[i]);
                if (!strstr(page, bucket))
                    fail_msg("%s has no bucket le=\"%s\"", name, bounds[i]);
            }
        }
    }
    assert_true(histograms >= 2);
    char build[256];
    snprintf(build, sizeof build, "\nturnstile_build_info{version=\"%s\",commit=\"%s\"} 1\n",
             TS_VERSION, TS_COMMIT);
    if (!strstr(page, build))
        fail_msg("no %s", build + 1);
}

static void metrics_are_in_base_units_and_name_the_build(void **state) {
    (void)state;
    char worker[64];
    worker_url(0, "", worker, sizeof worker);
    char *page = scrape(api);
    check_units(page);
    free(page);
    page = scrape(worker);
    check_units(page);
    free(page);
}

/* ------------------------------------------------------------ deploy/ */

static void save(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

/* tests/tools/check_deploy.py parses deploy/'s alert rules and dashboard
 * and finds each metric (and label) they name in the pages scraped now. */
static void the_deploy_files_name_only_what_the_services_expose(void **state) {
    (void)state;
    char worker[64], api_page[64], worker_page[64];
    worker_url(0, "", worker, sizeof worker);
    snprintf(api_page, sizeof api_page, "/tmp/%s-api.metrics", env.cfg.topic_prefix);
    snprintf(worker_page, sizeof worker_page, "/tmp/%s-worker.metrics", env.cfg.topic_prefix);
    char *page = scrape(api);
    save(api_page, page);
    free(page);
    page = scrape(worker);
    save(worker_page, page);
    free(page);
    char command[1024];
    snprintf(command, sizeof command,
             "%s/tests/tools/check_deploy.py --api %s --worker %s %s/deploy/"
             "prometheus-alerts.yml %s/deploy/grafana-dashboard.json",
             TS_SOURCE_DIR, api_page, worker_page, TS_SOURCE_DIR, TS_SOURCE_DIR);
    int rc = system(command);
    assert_true(WIFEXITED(rc));
    assert_int_equal(WEXITSTATUS(rc), 0);
    /* and the check is no formality: a misspelt metric, a label it lacks */
    char broken[64];
    snprintf(broken, sizeof broken, "/tmp/%s-broken.yml", env.cfg.topic_prefix);
    save(broken, "groups:\n  - name: t\n    rules:\n"
                 "      - alert: A\n        expr: turnstile_worker_lags_messages > 1\n"
                 "        labels: {severity: page}\n"
                 "        annotations: {summary: s, description: d}\n"
                 "      - alert: B\n        expr: turnstile_ready{partition=\"1\"} == 0\n"
                 "        labels: {severity: page}\n"
                 "        annotations: {summary: s, description: d}\n");
    snprintf(command, sizeof command,
             "%s/tests/tools/check_deploy.py --api %s --worker %s %s 2>&1"
             " | grep -c -e 'turnstile_worker_lags_messages is in neither'"
             " -e 'turnstile_ready has no label partition' | grep -qx 2",
             TS_SOURCE_DIR, api_page, worker_page, broken);
    rc = system(command);
    assert_true(WIFEXITED(rc));
    assert_int_equal(WEXITSTATUS(rc), 0);
    unlink(broken);
    unlink(api_page);
    unlink(worker_page);
}

/* ------------------------------------------------------------ not ready */

#define HUNG_COMMANDS 30

/* PostgreSQL hangs under an API and a worker: both say "database" at once
 * (their /readyz never waits on it), /healthz stays 200, and the worker's
 * lag grows by what comes meanwhile; once it answers, both are ready again
 * and the lag falls back to 0. */
static void a_hung_database_makes_both_not_ready_and_the_lag_grow(void **state) {
    (void)state;
    assert_int_equal(it_stop_worker(&env, 0, SIGTERM), 0); /* worker 1 alone owns all */
    const char *extra[] = {proxied_dsn, "TS_PG_TIMEOUT_MS=2000", NULL};
    it_start_worker_env(&env, 1, extra);
    char hung_api[64], worker[64];
    it_start_api_env(&env, 1, 1, extra, hung_api, sizeof hung_api);
    worker_url(1, "", worker, sizeof worker);
    await_readyz(worker, 200, NULL, WAIT_MS);
    await_readyz(hung_api, 200, NULL, WAIT_MS);

    char event[TS_UUID_LEN + 1];
    ts_uuid_new(event);
    ts_command c = it_command(&env, TS_CMD_CREATE_EVENT, event);
    strcpy(c.u.create.title, "Lag");
    strcpy(c.u.create.location, "Hall");
    c.u.create.starts_at_ms = ts_now_ms() + 30LL * 86400000;
    c.u.create.capacity = 100;
    it_produce(&env, &c);
    assert_int_equal(it_await_reply(&env, c.command_id, 1, WAIT_MS).outcome, TS_OUT_CREATED);
    await_lag(1, 0, true, WAIT_MS);

    it_proxy_freeze(proxy, true);
    ts_command regs[HUNG_COMMANDS];
    for (int i = 0; i < HUNG_COMMANDS; i++) {
        char email[64];
        snprintf(email, sizeof email, "lag%d@example.com", i);
        regs[i] = it_registration(&env, event, "Lag", email);
    }
    it_produce_many(&env, regs, HUNG_COMMANDS);
    /* the question to PostgreSQL is cut at its 2 s deadline */
    await_readyz(worker, 503, "database", WAIT_MS);
    await_readyz(hung_api, 503, "database", WAIT_MS);
    int64_t t = ts_monotonic_ms();
    char why[256];
    assert_int_equal(readyz(hung_api, why, sizeof why), 503);
    assert_true(ts_monotonic_ms() - t < 1000); /* answered from what the probe found */
    char url[128];
    snprintf(url, sizeof url, "%s/healthz", worker);
    it_http_result r = it_http("GET", url, NULL, NULL);
    assert_int_equal(r.status, 200); /* alive: waiting on the database is no fault of its own */
    it_http_free(&r);
    assert_true(await_lag(1, HUNG_COMMANDS, false, WAIT_MS) >= HUNG_COMMANDS);
    char *page = scrape(worker);
    assert_non_null(strstr(page, "\nturnstile_ready 0\n"));
    free(page);

    it_proxy_freeze(proxy, false);
    for (int i = 0; i < HUNG_COMMANDS; i++)
        assert_int_equal(it_await_reply(&env, regs[i].command_id, 1, WAIT_MS).outcome,
                         TS_OUT_REGISTERED);
    await_lag(1, 0, true, WAIT_MS);
    await_readyz(worker, 200, NULL, WAIT_MS);
    await_readyz(hung_api, 200, NULL, WAIT_MS);
    assert_int_equal(it_stop_api(&env, 1, SIGTERM), 0);
}

/* Three workers for two partitions: one of them owns none, and says so. */
static void a_worker_that_owns_no_partition_is_not_ready(void **state) {
    (void)state;
    it_start_worker(&env, 2);
    it_start_worker(&env, 3);
    char urls[3][64];
    int slots[3] = {1, 2, 3};
    for (int i = 0; i < 3; i++)
        worker_url(slots[i], "", urls[i], sizeof urls[i]);
    int64_t deadline = ts_monotonic_ms() + WAIT_MS;
    for (;;) {
        int ready = 0, idle = 0;
        char why[256];
        for (int i = 0; i < 3; i++) {
            long status = readyz(urls[i], why, sizeof why);
            ready += status == 200;
            idle += status == 503 && !strcmp(why, "no_partitions");
        }
        if (ready == 2 && idle == 1)
            break;
        if (ts_monotonic_ms() > deadline)
            fail_msg("%d ready and %d without partitions, not 2 and 1", ready, idle);
        pause_ms(100);
    }
    assert_int_equal(it_stop_worker(&env, 2, SIGTERM), 0);
    assert_int_equal(it_stop_worker(&env, 3, SIGTERM), 0);
}

/* ------------------------------------------------------------ draining */

/* A connection kept alive: a request on it, its status (0: none), its
 * body in body[cap]. */
static long keepalive_get(int fd, const char *path, char *body, size_t cap) {
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
        return 0;
    char buf[4096];
    size_t len = 0, want = 0;
    buf[0] = '\0';
    for (;;) {
        const char *end = strstr(buf, "\r\n\r\n");
        if (end && !want) {
            const char *cl = strstr(buf, "Content-Length: ");
            want = (size_t)(end - buf) + 4 + (cl ? strtoul(cl + 16, NULL, 10) : 0);
        }
        if (want && len >= want)
            break;
        ssize_t got = recv(fd, buf + len, sizeof buf - len - 1, 0);
        if (got <= 0)
            return 0;
        len += (size_t)got;
        buf[len] = '\0';
    }
    snprintf(body, cap, "%s", strstr(buf, "\r\n\r\n") + 4);
    return strtol(buf + 9, NULL, 10); /* "HTTP/1.1 200 OK" */
}

typedef struct write_arg {
    char url[128];
    long status;
} write_arg;

static void *one_write(void *arg) {
    write_arg *w = arg;
    it_http_result r = it_http("POST", w->url,
                               "{\"title\":\"Drain\",\"starts_at\":\"2031-01-01T10:00:00Z\","
                               "\"location\":\"Hall\",\"capacity\":5}",
                               NULL);
    w->status = r.status;
    it_http_free(&r);
    return NULL;
}

/* SIGTERM: /readyz is 503 "draining" while in-flight work finishes, on
 * the API (a keep-alive connection: new ones are refused at once) and on
 * the worker (its transaction hung on the database). */
static void readyz_answers_503_from_the_start_of_a_drain(void **state) {
    (void)state;
    /* the API: a write waits, until its deadline, for a reply that no
     * worker sends (none runs now) */
    assert_int_equal(it_stop_worker(&env, 1, SIGTERM), 0);
    const char *extra[] = {"TS_REPLY_TIMEOUT_MS=4000", NULL};
    char drain_api[64];
    it_start_api_env(&env, 2, 1, extra, drain_api, sizeof drain_api);
    await_readyz(drain_api, 200, NULL, WAIT_MS);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)env.api_ports[2])};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char body[1024];
    assert_int_equal(keepalive_get(fd, "/readyz", body, sizeof body), 200);
    write_arg w = {.status = 0};
    snprintf(w.url, sizeof w.url, "%s/api/events", drain_api);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, one_write, &w), 0);
    pause_ms(500); /* the write is waiting */
    assert_int_equal(kill(env.apis[2], SIGTERM), 0);
    pause_ms(500); /* main() has seen it (it looks every 100 ms) */
    assert_int_equal(keepalive_get(fd, "/readyz", body, sizeof body), 503);
    assert_non_null(strstr(body, "\"draining\""));
    close(fd);
    pthread_join(t, NULL);
    assert_int_equal(w.status, 202); /* the write in flight is answered, at its deadline */
    assert_int_equal(it_stop_api(&env, 2, 0), 0);

    /* the worker: its transaction waits on a database that hangs */
    const char *slow[] = {proxied_dsn, "TS_PG_TIMEOUT_MS=8000", NULL};
    it_start_worker_env(&env, 1, slow);
    char worker[64];
    worker_url(1, "", worker, sizeof worker);
    await_readyz(worker, 200, NULL, WAIT_MS);
    it_proxy_freeze(proxy, true);
    char event[TS_UUID_LEN + 1];
    ts_uuid_new(event);
    ts_command c = it_command(&env, TS_CMD_CREATE_EVENT, event);
    strcpy(c.u.create.title, "Drain");
    strcpy(c.u.create.location, "Hall");
    c.u.create.starts_at_ms = ts_now_ms() + 30LL * 86400000;
    c.u.create.capacity = 10;
    it_produce(&env, &c);
    await_lag(1, 1, false, WAIT_MS); /* polled, not applied: the transaction hangs */
    assert_int_equal(kill(env.workers[1], SIGTERM), 0);
    await_readyz(worker, 503, "draining", 2000);
    char url[128];
    snprintf(url, sizeof url, "%s/healthz", worker);
    it_http_result r = it_http("GET", url, NULL, NULL);
    assert_int_equal(r.status, 200); /* alive while it drains */
    it_http_free(&r);
    it_proxy_freeze(proxy, false);
    assert_int_equal(it_stop_worker(&env, 1, 0), 0);
}

static void the_services_stop(void **state) {
    (void)state;
    assert_int_equal(it_stop_api(&env, 0, SIGTERM), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(both_services_are_ready_once_their_backends_answer),
        cmocka_unit_test(metrics_are_in_base_units_and_name_the_build),
        cmocka_unit_test(the_deploy_files_name_only_what_the_services_expose),
        cmocka_unit_test(a_hung_database_makes_both_not_ready_and_the_lag_grow),
        cmocka_unit_test(a_worker_that_owns_no_partition_is_not_ready),
        cmocka_unit_test(readyz_answers_503_from_the_start_of_a_drain),
        cmocka_unit_test(the_services_stop),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
