/* SPDX-License-Identifier: Apache-2.0 */
/* Authenticated Kafka: the real turnstile-api and turnstile-worker talking
 * to the broker only through the stack's SASL/SCRAM listener (credentials
 * from TS_KAFKA_PROPERTY_* or a TS_KAFKA_CONFIG_FILE) serve a request end
 * to end; with a wrong password, or no cluster, each stops at start with a
 * clear error and a non-zero exit, and the password is in no output.
 *
 * The harness itself (topics, its own clients) stays on the plain
 * listener. The listener, user and password are scripts/stack's:
 * TS_KAFKA_SASL_PORT, TS_KAFKA_SASL_USER, TS_KAFKA_SASL_PASSWORD, with the
 * same defaults. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"
#include "http_client.h"
#include "ts_time.h"
#include "ts_uuid.h"

/* The services give up on Kafka after 10 s (their start check); a wrong
 * password is refused at once, so 15 s is ample either way. */
#define EXIT_WITHIN_MS 15000
#define ASSIGNED_WITHIN_MS 30000
#define ENV_MAX 8

static it_env env;
static char sasl_brokers[64];
static const char *sasl_user;
static const char *sasl_password;
static char wrong_password[64];

static const char *env_or(const char *name, const char *def) {
    const char *v = getenv(name);
    return v && *v ? v : def;
}

static int setup(void **state) {
    (void)state;
    if (it_setup(&env, 1, 1))
        return -1;
    snprintf(sasl_brokers, sizeof sasl_brokers, "127.0.0.1:%s",
             env_or("TS_KAFKA_SASL_PORT", "9094"));
    sasl_user = env_or("TS_KAFKA_SASL_USER", "turnstile");
    sasl_password = env_or("TS_KAFKA_SASL_PASSWORD", "turnstile-secret");
    /* a string that appears nowhere unless something prints the password */
    snprintf(wrong_password, sizeof wrong_password, "wrong-pw-%d-%lld", (int)getpid(),
             (long long)ts_now_ms());
    return 0;
}

static int teardown(void **state) {
    (void)state;
    it_teardown(&env);
    return 0;
}

/* "NAME=value" lines for a child, NULL-terminated; lines[] holds them
 * (ptrs points into it: filled in place, never copied). */
typedef struct env_list {
    char lines[ENV_MAX][1200];
    const char *ptrs[ENV_MAX + 1];
    int n;
} env_list;

static void env_add(env_list *l, const char *name, const char *value) {
    assert_true(l->n < ENV_MAX);
    snprintf(l->lines[l->n], sizeof l->lines[l->n], "%s=%s", name, value);
    l->ptrs[l->n] = l->lines[l->n];
    l->ptrs[++l->n] = NULL;
}

/* The SASL listener with `password`, through TS_KAFKA_PROPERTY_*, logging
 * at `level`. */
static void sasl_env(env_list *l, const char *password, const char *level) {
    env_add(l, "TS_KAFKA_BROKERS", sasl_brokers);
    env_add(l, "TS_KAFKA_PROPERTY_security.protocol", "SASL_PLAINTEXT");
    env_add(l, "TS_KAFKA_PROPERTY_sasl.mechanism", "SCRAM-SHA-256");
    env_add(l, "TS_KAFKA_PROPERTY_sasl.username", sasl_user);
    env_add(l, "TS_KAFKA_PROPERTY_sasl.password", password);
    env_add(l, "TS_LOG_LEVEL", level);
}

/* Sets `l` in this process for the children started next; restore_env
 * puts back what was there before. */
typedef struct saved_env {
    char name[ENV_MAX][128];
    char *old[ENV_MAX]; /* NULL: was unset */
    int n;
} saved_env;

static saved_env apply_env(const env_list *l) {
    saved_env s = {.n = l->n};
    for (int i = 0; i < l->n; i++) {
        size_t n = strcspn(l->lines[i], "=");
        snprintf(s.name[i], sizeof s.name[i], "%.*s", (int)n, l->lines[i]);
        const char *old = getenv(s.name[i]);
        s.old[i] = old ? strdup(old) : NULL;
        assert_int_equal(setenv(s.name[i], l->lines[i] + n + 1, 1), 0);
    }
    return s;
}

static void restore_env(saved_env *s) {
    for (int i = 0; i < s->n; i++) {
        if (s->old[i])
            setenv(s->name[i], s->old[i], 1);
        else
            unsetenv(s->name[i]);
        free(s->old[i]);
    }
}

/* Worker `i` with `l` in its environment (it_start_worker takes none). */
static void start_worker_with(int i, const env_list *l) {
    saved_env s = apply_env(l);
    it_start_worker(&env, i);
    restore_env(&s);
}

/* Waits for worker i to exit by itself; its exit status. */
static int await_worker_exit(int i, int timeout_ms) {
    int64_t deadline = ts_monotonic_ms() + timeout_ms;
    for (;;) {
        int st;
        if (waitpid(env.workers[i], &st, WNOHANG) == env.workers[i]) {
            env.workers[i] = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        if (ts_monotonic_ms() > deadline)
            fail_msg("worker %d still running after %d ms (see %s)", i, timeout_ms,
                     it_worker_log(&env, i));
        struct timespec ts = {0, 20 * 1000000L}; /* between two looks */
        nanosleep(&ts, NULL);
    }
}

/* The whole file, NUL-terminated; the caller frees it. */
static char *slurp(const char *path) {
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t cap = 4096, len = 0, n;
    char *buf = malloc(cap);
    assert_non_null(buf);
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    buf[len] = '\0';
    fclose(f);
    return buf;
}

/* POST /api/events then a registration, both 201, and the registration
 * in PostgreSQL: the request went API -> Kafka -> worker -> PostgreSQL ->
 * Kafka -> API, every Kafka hop authenticated. */
static void create_and_register(const char *base, const char *title) {
    char url[256], body[512], when[TS_ISO8601_LEN + 1], id[TS_UUID_LEN + 1];
    ts_time_format_iso8601(ts_now_ms() + 30LL * 86400000, when);
    snprintf(url, sizeof url, "%s/api/events", base);
    snprintf(body, sizeof body,
             "{\"title\":\"%s\",\"starts_at\":\"%s\",\"location\":\"Hall S\",\"capacity\":5}",
             title, when);
    it_http_result r = it_http("POST", url, body, NULL);
    assert_int_equal(r.status, 201);
    assert_int_equal(ts_uuid_normalize(it_json_str(&r, "id"), id), 0);
    it_http_free(&r);

    snprintf(url, sizeof url, "%s/api/events/%s/register", base, id);
    r = it_http("POST", url, "{\"name\":\"Ada\",\"email\":\"ada@example.org\"}", NULL);
    assert_int_equal(r.status, 201);
    assert_int_equal(strlen(it_json_str(&r, "user_id")), TS_UUID_LEN);
    it_http_free(&r);
    const char *params[] = {id};
    assert_int_equal(
        it_query_ll(&env, "SELECT count(*) FROM registrations WHERE event_id = $1", 1, params), 1);
}

/* Runs a worker (slot `w`) and an API (slot `a`) with `l`, serves a
 * request through them, stops both, and checks the worker's log holds no
 * password. */
static void serve_through_sasl(int w, int a, const env_list *l, const char *title) {
    start_worker_with(w, l);
    /* its consumer is in the group: commands will not wait for a rebalance */
    it_await_worker_log(&env, w, "event=assigned partition=0", ASSIGNED_WITHIN_MS);
    char base[64];
    it_start_api_env(&env, a, 0, l->ptrs, base, sizeof base);
    create_and_register(base, title);
    assert_int_equal(it_stop_api(&env, a, SIGTERM), 0);
    assert_int_equal(it_stop_worker(&env, w, SIGTERM), 0);
    char *log = slurp(it_worker_log(&env, w));
    assert_null(strstr(log, sasl_password));
    free(log);
}

static void the_services_work_through_the_sasl_listener_alone(void **state) {
    (void)state;
    env_list l = {.n = 0};
    /* the default level, whatever this run's: what an operator would see */
    sasl_env(&l, sasl_password, "info");
    serve_through_sasl(0, 0, &l, "Over SASL");
}

static void a_kafka_config_file_gives_the_same_credentials(void **state) {
    (void)state;
    char path[] = "/tmp/ts-sasl-XXXXXX";
    int fd = mkstemp(path); /* mode 0600, as a file of secrets should be */
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    fprintf(f,
            "# librdkafka properties for turnstile\n"
            "security.protocol=SASL_PLAINTEXT\n"
            "\n"
            "sasl.mechanism = SCRAM-SHA-256\n"
            "sasl.username=%s\n"
            "sasl.password=%s\n",
            sasl_user, sasl_password);
    assert_int_equal(fclose(f), 0);
    env_list l = {.n = 0};
    env_add(&l, "TS_KAFKA_BROKERS", sasl_brokers);
    env_add(&l, "TS_KAFKA_CONFIG_FILE", path);
    env_add(&l, "TS_LOG_LEVEL", "info");
    serve_through_sasl(1, 1, &l, "Over SASL, from a file");
    unlink(path);
}

static void a_wrong_password_stops_the_api_with_a_clear_error(void **state) {
    (void)state;
    env_list l = {.n = 0};
    sasl_env(&l, wrong_password, "info");
    char out[8192];
    int rc = it_run_api_to_exit(&env, l.ptrs, EXIT_WITHIN_MS, out, sizeof out);
    if (rc == -1)
        fail_msg("turnstile-api still running after %d ms with a wrong password; it said:\n%s",
                 EXIT_WITHIN_MS, out);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(out, "event=kafka_unavailable"));
    assert_non_null(strstr(out, "authentication"));
    char who[128];
    snprintf(who, sizeof who, "SCRAM-SHA-256 as user '%s'", sasl_user);
    assert_non_null(strstr(out, who));
    if (strstr(out, wrong_password))
        fail_msg("the password is in turnstile-api's output:\n%s", out);
}

static void a_wrong_password_stops_the_worker_with_a_clear_error(void **state) {
    (void)state;
    env_list l = {.n = 0};
    /* librdkafka's debug lines too (they include its configuration) */
    sasl_env(&l, wrong_password, "debug");
    env_add(&l, "TS_KAFKA_PROPERTY_debug", "security,broker,conf");
    start_worker_with(2, &l);
    int rc = await_worker_exit(2, EXIT_WITHIN_MS);
    char *log = slurp(it_worker_log(&env, 2));
    if (rc == 0 || !strstr(log, "event=kafka_unavailable") || !strstr(log, "authentication"))
        fail_msg("worker exit %d; expected non-zero and an authentication error:\n%s", rc, log);
    if (strstr(log, wrong_password))
        fail_msg("the password is in turnstile-worker's log %s", it_worker_log(&env, 2));
    free(log);
}

/* A port nobody listens on now. */
static int closed_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void no_cluster_stops_the_worker_after_its_timeout(void **state) {
    (void)state;
    env_list l = {.n = 0};
    char brokers[64];
    snprintf(brokers, sizeof brokers, "127.0.0.1:%d", closed_port());
    env_add(&l, "TS_KAFKA_BROKERS", brokers);
    env_add(&l, "TS_LOG_LEVEL", "info");
    start_worker_with(3, &l);
    int rc = await_worker_exit(3, EXIT_WITHIN_MS);
    char *log = slurp(it_worker_log(&env, 3));
    char want[128];
    snprintf(want, sizeof want, "Kafka unreachable at %s after 10000 ms", brokers);
    if (rc == 0 || !strstr(log, want))
        fail_msg("worker exit %d; expected non-zero and '%s':\n%s", rc, want, log);
    free(log);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_services_work_through_the_sasl_listener_alone),
        cmocka_unit_test(a_kafka_config_file_gives_the_same_credentials),
        cmocka_unit_test(a_wrong_password_stops_the_api_with_a_clear_error),
        cmocka_unit_test(a_wrong_password_stops_the_worker_with_a_clear_error),
        cmocka_unit_test(no_cluster_stops_the_worker_after_its_timeout),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
