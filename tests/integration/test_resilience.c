/* SPDX-License-Identifier: Apache-2.0 */
/* Integration: turnstile under the conditions it exists for — a burst
 * produced straight to Kafka by another service, a worker killed in the
 * middle of a burst, and several API instances and workers at once. */
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
#include "ts_pg.h"
#include "ts_time.h"
#include "ts_uuid.h"

#define WAIT_MS 120000

static it_env env;

static int setup(void **state) {
    (void)state;
    if (it_setup(&env, 6, 3)) /* reply partition 0: this test; 1, 2: the APIs */
        return -1;
    it_start_worker(&env, 0);
    return 0;
}

static void allow_connections(bool allow);
static void freeze_broker(bool freeze);
static pid_t frozen_broker;

static int teardown(void **state) {
    (void)state;
    if (env.pg)
        allow_connections(true); /* whatever a failed test left behind */
    if (frozen_broker)
        freeze_broker(false);
    it_teardown(&env);
    return 0;
}

static void create_event_via_kafka(char id[TS_UUID_LEN + 1], int capacity) {
    ts_uuid_new(id);
    ts_command c = it_command(&env, TS_CMD_CREATE_EVENT, id);
    strcpy(c.u.create.title, "Resilience");
    strcpy(c.u.create.location, "Stadium");
    c.u.create.starts_at_ms = ts_now_ms() + 30LL * 86400000;
    c.u.create.capacity = capacity;
    it_produce(&env, &c);
    assert_int_equal(it_await_reply(&env, c.command_id, 1, WAIT_MS).outcome, TS_OUT_CREATED);
}

static long long count_for(const char *sql, const char *event_id) {
    const char *p[] = {event_id};
    return it_query_ll(&env, sql, 1, p);
}

/* Another service produces Avro commands to Kafka itself and reads the
 * outcomes from its reply partition. */
static void a_burst_produced_straight_to_kafka_is_answered_on_the_reply_topic(void **state) {
    (void)state;
    enum { N = 1000, SEATS = 100 };
    char id[TS_UUID_LEN + 1];
    create_event_via_kafka(id, SEATS);
    ts_command *cmds = calloc(N, sizeof *cmds);
    for (int i = 0; i < N; i++) {
        char email[64];
        snprintf(email, sizeof email, "k%d@direct.example", i);
        cmds[i] = it_registration(&env, id, "Fan", email);
    }
    int64_t t0 = ts_monotonic_ms();
    it_produce_many(&env, cmds, N);
    int registered = 0, full = 0;
    for (int i = 0; i < N; i++) {
        ts_reply r = it_await_reply(&env, cmds[i].command_id, 1, WAIT_MS);
        assert_string_equal(r.event_id, id);
        if (r.outcome == TS_OUT_REGISTERED) {
            /* one partition, in order: the first SEATS take the seats */
            assert_true(i < SEATS);
            registered++;
        } else {
            assert_int_equal(r.outcome, TS_OUT_EVENT_FULL);
            full++;
        }
    }
    printf("kafka burst: %d commands, %d registered, %d full, %lld ms\n", N, registered, full,
           (long long)(ts_monotonic_ms() - t0));
    assert_int_equal(registered, SEATS);
    assert_int_equal(full, N - SEATS);
    assert_int_equal(count_for("SELECT count(*) FROM registrations WHERE event_id = $1", id),
                     SEATS);
    free(cmds);
}

/* The worker is killed (SIGKILL) twice in the middle of a burst and
 * restarted. Afterwards the state must be what applying the commands one
 * by one in partition order gives: nothing lost, nothing applied twice,
 * never over capacity. */
static void killing_the_worker_mid_burst_loses_and_doubles_nothing(void **state) {
    (void)state;
    enum { EVENTS = 2, UNIQUE = 1500, DUPLICATES = 200, REDELIVERED = 100 };
    const int capacity[EVENTS] = {700, 400};
    char ids[EVENTS][TS_UUID_LEN + 1];
    for (int e = 0; e < EVENTS; e++)
        create_event_via_kafka(ids[e], capacity[e]);

    /* per event: UNIQUE people, then DUPLICATES of them again (new command
     * ids), interleaved; then REDELIVERED commands sent a second time */
    size_t per_event = UNIQUE + DUPLICATES + REDELIVERED;
    size_t total = EVENTS * per_event;
    ts_command *cmds = calloc(total, sizeof *cmds);
    size_t n = 0;
    for (int e = 0; e < EVENTS; e++) {
        size_t start = n;
        for (int i = 0; i < UNIQUE + DUPLICATES; i++) {
            char email[64];
            int who = i < UNIQUE ? i : (i - UNIQUE) * 7;
            snprintf(email, sizeof email, "e%d-p%d@crash.example", e, who);
            cmds[n++] = it_registration(&env, ids[e], "Fan", email);
        }
        for (int i = 0; i < REDELIVERED; i++)
            cmds[n++] = cmds[start + (size_t)i * 13];
    }
    assert_int_equal(n, total);
    it_produce_many(&env, cmds, total);

    const char *applied_sql =
        "SELECT count(*) FROM processed_commands WHERE event_id = ANY($1::uuid[])";
    char array[128];
    snprintf(array, sizeof array, "{%s,%s}", ids[0], ids[1]);
    const char *p[] = {array};
    size_t distinct = EVENTS * (UNIQUE + DUPLICATES) + EVENTS; /* + the two creates */
    int kills = 0;
    for (double at = 0.25; at < 0.7; at += 0.35) {
        int64_t deadline = ts_monotonic_ms() + WAIT_MS;
        while (it_query_ll(&env, applied_sql, 1, p) < (long long)(at * (double)distinct)) {
            assert_true(ts_monotonic_ms() < deadline);
            struct timespec ts = {0, 5 * 1000000L};
            nanosleep(&ts, NULL);
        }
        assert_int_equal(it_stop_worker(&env, 0, SIGKILL), 128 + SIGKILL);
        kills++;
        long long applied = it_query_ll(&env, applied_sql, 1, p);
        printf("crash: killed the worker with %lld of %zu commands applied\n", applied, distinct);
        it_start_worker(&env, 0);
    }
    int64_t deadline = ts_monotonic_ms() + WAIT_MS;
    while (it_query_ll(&env, applied_sql, 1, p) < (long long)distinct) {
        assert_true(ts_monotonic_ms() < deadline);
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    /* no command applied twice: every distinct command exactly once */
    assert_int_equal(it_query_ll(&env, applied_sql, 1, p), (long long)distinct);
    assert_int_equal(kills, 2);

    for (int e = 0; e < EVENTS; e++) {
        /* serial application, in the order produced (one key: one partition,
         * in order): the first `capacity` distinct people get the seats */
        char(*expected)[TS_UUID_LEN + 1] = calloc((size_t)capacity[e], sizeof *expected);
        int seats = 0;
        for (size_t i = 0; i < total && seats < capacity[e]; i++) {
            if (strcmp(cmds[i].event_id, ids[e]) != 0)
                continue;
            char uid[TS_UUID_LEN + 1];
            ts_uuid_for_email(cmds[i].u.reg.email, uid);
            int seen = 0;
            for (int k = 0; k < seats && !seen; k++)
                seen = !strcmp(expected[k], uid);
            if (!seen)
                strcpy(expected[seats++], uid);
        }
        long long regs =
            count_for("SELECT count(*) FROM registrations WHERE event_id = $1", ids[e]);
        printf("crash: event %d: capacity %d, registrations %lld\n", e, capacity[e], regs);
        assert_int_equal(regs, capacity[e]);
        assert_int_equal(count_for("SELECT registered FROM events WHERE id = $1", ids[e]),
                         capacity[e]);
        assert_int_equal(
            count_for("SELECT max(seat) FROM registrations WHERE event_id = $1", ids[e]),
            capacity[e]);
        /* every REGISTERED outcome has its row, and no row lacks one */
        assert_int_equal(count_for("SELECT count(*) FROM processed_commands WHERE event_id = $1"
                                   " AND outcome = 'REGISTERED'",
                                   ids[e]),
                         capacity[e]);
        assert_int_equal(count_for("SELECT count(*) FROM registrations r JOIN processed_commands"
                                   " c ON c.command_id = r.command_id AND c.outcome ="
                                   " 'REGISTERED' WHERE r.event_id = $1",
                                   ids[e]),
                         capacity[e]);
        for (int k = 0; k < seats; k++) {
            const char *q[] = {ids[e], expected[k]};
            assert_int_equal(it_query_ll(&env,
                                         "SELECT count(*) FROM registrations WHERE event_id = $1"
                                         " AND user_id = $2",
                                         2, q),
                             1);
        }
        free(expected);
    }
    free(cmds);
}

/* ALTER DATABASE ... ALLOW_CONNECTIONS must come from another database. */
static void allow_connections(bool allow) {
    char dsn[600], err[512], sql[256];
    snprintf(dsn, sizeof dsn, "%s dbname=postgres", env.cfg.pg_dsn); /* the last dbname wins */
    PGconn *admin = ts_pg_connect(dsn, "turnstile-test", err, sizeof err);
    if (!admin)
        fail_msg("%s", err);
    snprintf(sql, sizeof sql, "ALTER DATABASE %s ALLOW_CONNECTIONS %s", PQdb(env.pg),
             allow ? "true" : "false");
    PGresult *res = PQexec(admin, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(admin));
    PQclear(res);
    PQfinish(admin);
}

/* PostgreSQL refuses the worker (its connection killed, new ones refused)
 * while commands keep coming: the worker waits the outage out and applies
 * every one of them afterwards, none skipped. */
static void a_database_outage_is_waited_out_and_nothing_is_skipped(void **state) {
    (void)state;
    enum { N = 200 };
    char id[TS_UUID_LEN + 1];
    create_event_via_kafka(id, 1000);
    allow_connections(false);
    long long killed = it_query_ll(&env,
                                   "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                   " WHERE application_name = 'turnstile-worker'"
                                   " AND datname = current_database()",
                                   0, NULL);
    assert_true(killed >= 1);

    ts_command *cmds = calloc(N, sizeof *cmds);
    for (int i = 0; i < N; i++) {
        char email[64];
        snprintf(email, sizeof email, "o%d@outage.example", i);
        cmds[i] = it_registration(&env, id, "Fan", email);
    }
    it_produce_many(&env, cmds, N);
    /* the worker has met the outage: it retries instead of going on */
    it_await_worker_log(&env, 0, "event=pg_unavailable", WAIT_MS);
    allow_connections(true);

    for (int i = 0; i < N; i++)
        assert_int_equal(it_await_reply(&env, cmds[i].command_id, 1, WAIT_MS).outcome,
                         TS_OUT_REGISTERED);
    assert_int_equal(count_for("SELECT count(*) FROM registrations WHERE event_id = $1", id), N);
    free(cmds);
}

/* The broker of scripts/stack, stopped (SIGSTOP) or let go on: to the
 * clients it is there, it answers nothing. */
static void freeze_broker(bool freeze) {
    if (!freeze) {
        kill(frozen_broker, SIGCONT);
        frozen_broker = 0;
        return;
    }
    const char *state = getenv("TURNSTILE_STATE");
    char path[512];
    snprintf(path, sizeof path, "%s/kafka.pid", state && *state ? state : "/var/lib/turnstile");
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("the broker's pid file %s: cannot read it", path);
    long pid = 0;
    int got = fscanf(f, "%ld", &pid);
    fclose(f);
    if (got != 1 || pid <= 1 || kill((pid_t)pid, SIGSTOP))
        fail_msg("cannot stop the broker (pid %ld from %s)", pid, path);
    frozen_broker = (pid_t)pid;
}

/* Kafka stops answering while clients write: each gets 503 with
 * Retry-After once its deadline passes — never a 201 for a command Kafka
 * has not taken, never a request left hanging. Retried with the same
 * Idempotency-Key once Kafka is back, every one is answered and each person
 * is registered once, whether or not Kafka had kept the first attempt. */
/* A fatal error of the API's idempotent producer (raised on purpose with
 * librdkafka's test hook, TS_FAILPOINT_KAFKA_FATAL_MS): the reason is
 * logged and the API exits non-zero, for its supervisor to start anew. */
static void a_fatal_kafka_error_stops_the_api_with_a_failure(void **state) {
    (void)state;
    char err[16384];
    const char *extra[] = {"TS_FAILPOINT_KAFKA_FATAL_MS=1000", "TS_REPLY_PARTITION=2", NULL};
    int rc = it_run_api_to_exit(&env, extra, 30000, err, sizeof err);
    if (rc == -1)
        fail_msg("turnstile-api was still running 30 s after a fatal Kafka error");
    if (rc != 1)
        fail_msg("turnstile-api after a fatal Kafka error: exit status %d (stderr: %s)", rc, err);
    if (!strstr(err, "event=kafka_fatal") || !strstr(err, "OUT_OF_ORDER_SEQUENCE_NUMBER"))
        fail_msg("the fatal error and its reason are not in the log: %s", err);
}

static void when_kafka_stops_answering_writes_get_503_and_retries_apply_once(void **state) {
    (void)state;
    enum { N = 40 };
    char url[64];
    setenv("TS_REPLY_TIMEOUT_MS", "1500", 1);
    it_start_api(&env, 0, 1, url, sizeof url);
    unsetenv("TS_REPLY_TIMEOUT_MS");

    char id[TS_UUID_LEN + 1];
    create_event_via_kafka(id, 100);

    it_http_request *reqs = calloc(N, sizeof *reqs);
    for (int i = 0; i < N; i++) {
        char name[32], email[64];
        snprintf(name, sizeof name, "Patient %d", i);
        snprintf(email, sizeof email, "p%d@frozen.example", i);
        it_http_registration(&reqs[i], url, id, name, email);
        snprintf(reqs[i].header, sizeof reqs[i].header, "Idempotency-Key: frozen-%d", i);
    }
    freeze_broker(true);
    it_http_burst(reqs, N, N);
    freeze_broker(false);
    for (int i = 0; i < N; i++) {
        it_http_result *res = &reqs[i].result;
        assert_int_equal(res->status, 503);
        assert_string_not_equal(res->retry_after, "");
        assert_true(reqs[i].seconds < 10.0);
        it_http_free(res);
        memset(res, 0, sizeof *res);
    }

    /* Kafka is back. The clients do as they were told: the same request,
     * the same key, after Retry-After, until it is answered. */
    int done[N] = {0}, left = N, rounds = 0;
    int64_t give_up = ts_monotonic_ms() + WAIT_MS;
    while (left > 0 && ts_monotonic_ms() < give_up) {
        it_http_request *again = calloc(N, sizeof *again);
        int map[N], k = 0;
        for (int i = 0; i < N; i++)
            if (!done[i]) {
                again[k] = reqs[i];
                memset(&again[k].result, 0, sizeof again[k].result);
                map[k++] = i;
            }
        it_http_burst(again, (size_t)k, N);
        rounds++;
        int retry_after = 0;
        for (int j = 0; j < k; j++) {
            it_http_result *res = &again[j].result;
            if (res->status == 503) {
                retry_after = atoi(res->retry_after);
            } else {
                int i = map[j];
                char email[64], expect[TS_UUID_LEN + 1];
                snprintf(email, sizeof email, "p%d@frozen.example", i);
                ts_uuid_for_email(email, expect);
                assert_int_equal(res->status, 201);
                assert_string_equal(it_json_str(res, "user_id"), expect);
                done[i] = 1;
                left--;
            }
            it_http_free(res);
        }
        free(again);
        if (left > 0) { /* as the 503 said */
            struct timespec ts = {retry_after > 0 ? retry_after : 1, 0};
            nanosleep(&ts, NULL);
        }
    }
    fprintf(stderr, "all %d answered 201 after %d round(s) of retries\n", N, rounds);
    assert_int_equal(left, 0);
    free(reqs);
    assert_int_equal(count_for("SELECT count(*) FROM registrations WHERE event_id = $1", id), N);
    assert_int_equal(count_for("SELECT registered FROM events WHERE id = $1", id), N);
    assert_int_equal(it_stop_api(&env, 0, SIGTERM), 0);
}

/* Two API instances (each its own reply partition) and two workers: every
 * request gets its own answer, and neither instance sees the other's
 * replies. */
static void two_apis_and_two_workers_answer_every_request_its_own(void **state) {
    (void)state;
    enum { EVENTS = 3, SEATS = 50, PER_EVENT = 200 };
    char urls[2][64];
    it_start_worker(&env, 1);
    it_start_api(&env, 0, 1, urls[0], sizeof urls[0]);
    it_start_api(&env, 1, 2, urls[1], sizeof urls[1]);

    char ids[EVENTS][TS_UUID_LEN + 1];
    for (int e = 0; e < EVENTS; e++) {
        char url[128];
        snprintf(url, sizeof url, "%s/api/events", urls[e % 2]);
        it_http_result r = it_http("POST", url,
                                   "{\"title\":\"Twin\",\"starts_at\":\"2032-05-01T10:00:00Z\","
                                   "\"location\":\"Hall\",\"capacity\":50}",
                                   NULL);
        assert_int_equal(r.status, 201);
        ts_uuid_normalize(it_json_str(&r, "id"), ids[e]);
        it_http_free(&r);
    }
    size_t n = EVENTS * PER_EVENT;
    it_http_request *reqs = calloc(n, sizeof *reqs);
    for (size_t i = 0; i < n; i++) {
        char name[32], email[64];
        snprintf(name, sizeof name, "Twin %zu", i);
        snprintf(email, sizeof email, "t%zu@twin.example", i);
        it_http_registration(&reqs[i], urls[i % 2], ids[i % EVENTS], name, email);
    }
    it_http_burst(reqs, n, 400);
    int accepted[EVENTS] = {0};
    for (size_t i = 0; i < n; i++) {
        it_http_result *r = &reqs[i].result;
        if (r->status == 201) {
            char email[64], expect[TS_UUID_LEN + 1];
            snprintf(email, sizeof email, "t%zu@twin.example", i);
            ts_uuid_for_email(email, expect);
            assert_string_equal(it_json_str(r, "user_id"), expect); /* its own answer */
            accepted[i % EVENTS]++;
        } else {
            assert_int_equal(r->status, 400);
            assert_string_equal(it_json_str(r, "error"), "Event is full");
        }
        it_http_free(r);
    }
    free(reqs);
    for (int e = 0; e < EVENTS; e++)
        assert_int_equal(accepted[e], SEATS);

    /* each instance matched every reply it read: none read another's */
    for (int a = 0; a < 2; a++) {
        char url[128];
        snprintf(url, sizeof url, "%s/metrics", urls[a]);
        it_http_result r = it_http("GET", url, NULL, NULL);
        assert_int_equal(r.status, 200);
        if (!strstr(r.body, "turnstile_replies_unmatched_total 0\n"))
            fprintf(stderr, "metrics of API %d:\n%s\n", a, r.body);
        assert_non_null(strstr(r.body, "turnstile_replies_unmatched_total 0\n"));
        assert_null(strstr(r.body, "turnstile_replies_received_total 0\n"));
        it_http_free(&r);
    }
    assert_int_equal(it_stop_api(&env, 0, SIGTERM), 0);
    assert_int_equal(it_stop_api(&env, 1, SIGTERM), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_burst_produced_straight_to_kafka_is_answered_on_the_reply_topic),
        cmocka_unit_test(killing_the_worker_mid_burst_loses_and_doubles_nothing),
        cmocka_unit_test(a_database_outage_is_waited_out_and_nothing_is_skipped),
        cmocka_unit_test(two_apis_and_two_workers_answer_every_request_its_own),
        cmocka_unit_test(when_kafka_stops_answering_writes_get_503_and_retries_apply_once),
        cmocka_unit_test(a_fatal_kafka_error_stops_the_api_with_a_failure),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
