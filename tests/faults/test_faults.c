/* SPDX-License-Identifier: Apache-2.0 */
/* test_faults.c — the fault matrix: each fault applied during a burst of
 * registrations, cancellations and event creations from clients that
 * retry as the README says (burst.h), then the journal checked against
 * PostgreSQL and the commands topic (check.h): every acknowledged write
 * stored once, every answer the stored outcome, never oversold, offsets
 * and processed_commands consistent.
 *
 * It runs on the stack's "faults" instance (TS_STACK=faults scripts/stack:
 * PostgreSQL on 5433, three brokers, topics at 3 replicas with
 * min.insync.replicas 2), whose brokers and PostgreSQL it may stop; it
 * never touches the default instance. Each run has a database
 * (turnstile_faults) and topics of its own.
 *
 *   TS_FAULTS_LONG=1     the long version (tests/faults/run): 100,000
 *                        operations with 20 worker kills, and bigger bursts
 *                        of TS_FAULTS_RUNS (3) runs for every other fault
 *   TS_FAULTS_RESULTS    a file to append one JSON line per run to
 *   TS_FAULTS_SEED       the seed of the bursts and the kill points */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <cmocka.h>

#include "burst.h"
#include "check.h"
#include "harness.h"
#include "http_client.h"
#include "tcpproxy.h"
#include "ts_time.h"

#define FAULTS_DB "turnstile_faults"
#define PARTITIONS 6
#define MAX_ENDS 64
#define SETTLE_MS 180000   /* for the worker to catch up after the burst */
#define PROGRESS_MS 600000 /* for a burst to reach a point where a fault is due */

static char base_dsn[1024]; /* TS_PG_DSN of the faults instance, before a run's database */
static bool long_mode;
static unsigned seed;
/* TS_FAULTS_STACK=default: the process faults only (worker, API, storm,
 * PostgreSQL connections and hang), on whatever TS_KAFKA_BROKERS and
 * TS_PG_DSN name, topics at one replica; for working on the tests. */
static bool default_stack;

typedef struct run {
    it_env env;
    char urls[2][64];
    int napis;
    it_proxy *proxy;
    fb_burst *burst;
    fb_config cfg;
    int64_t ends[MAX_ENDS]; /* when each fault applied ended (monotonic ms) */
    int nends;
    int restarts; /* services that exited by themselves and were started again */
} run;

static run R;
/* The APIs of a run claim their reply partitions themselves (the
 * scale-out test); else API i is given partition 1 + i. */
static bool claimed_partitions;

/* ------------------------------------------------------------ the stack */

/* Runs `TS_STACK=faults scripts/stack ARGS`; its exit status. */
static int stack(const char *fmt, ...) {
    char args[256], cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "TS_STACK=faults %s/scripts/stack %s", TS_SOURCE_DIR, args);
    int rc = system(cmd);
    return rc == -1 ? -1 : WEXITSTATUS(rc);
}

/* If `line` is "export NAME=value" (value perhaps in double quotes),
 * sets NAME to value in this process's environment. */
static void take_export(const char *line, const char *name, bool *found) {
    char head[64];
    snprintf(head, sizeof head, "export %s=", name);
    if (strncmp(line, head, strlen(head)) != 0)
        return;
    char value[1024];
    snprintf(value, sizeof value, "%s", line + strlen(head));
    value[strcspn(value, "\n")] = '\0';
    size_t len = strlen(value);
    char *v = value;
    if (len >= 2 && value[0] == '"' && value[len - 1] == '"') {
        value[len - 1] = '\0';
        v++;
    }
    setenv(name, v, 1);
    *found = true;
}

/* The faults instance's TS_KAFKA_BROKERS and TS_PG_DSN, read from the
 * lines `scripts/stack env` prints (never evaluated: only those two
 * assignments are taken), into this process's environment; children
 * inherit them. */
static int load_stack_env(void) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "TS_STACK=faults %s/scripts/stack env", TS_SOURCE_DIR);
    FILE *p = popen(cmd, "r");
    bool brokers = false, dsn = false;
    char line[1200];
    while (p && fgets(line, sizeof line, p)) {
        take_export(line, "TS_KAFKA_BROKERS", &brokers);
        take_export(line, "TS_PG_DSN", &dsn);
    }
    if (!p || pclose(p) != 0 || !brokers || !dsn) {
        fprintf(stderr, "`TS_STACK=faults scripts/stack env` did not name the faults instance: "
                        "is it up (TS_STACK=faults scripts/stack up)?\n");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ a run */

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Starts API i (again), with the run's settings. */
static void start_api(int i) {
    it_start_api(&R.env, i, claimed_partitions ? -1 : 1 + i, R.urls[i], sizeof R.urls[i]);
}

/* What scripts/run's supervisor does: an API or a worker that exited by
 * itself (e.g. at a fatal error of its idempotent producer, on purpose) is
 * started again, and said so. */
static void supervise(void) {
    int status;
    for (int i = 0; i < R.napis; i++)
        if (R.env.apis[i] > 0 && waitpid(R.env.apis[i], &status, WNOHANG) == R.env.apis[i]) {
            printf("API %d exited by itself (status %d), started again\n", i,
                   WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
            R.env.apis[i] = 0;
            start_api(i);
            fb_set_url(R.burst, i, R.urls[i]);
            R.restarts++;
        }
    for (int i = 0; i < IT_MAX_WORKERS; i++)
        if (R.env.workers[i] > 0 &&
            waitpid(R.env.workers[i], &status, WNOHANG) == R.env.workers[i]) {
            printf("worker %d exited by itself (status %d, see %s), started again\n", i,
                   WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
                   it_worker_log(&R.env, i));
            R.env.workers[i] = 0;
            it_start_worker(&R.env, i);
            R.restarts++;
        }
}

/* sleep_ms, supervising meanwhile (for a fault's length or pace). */
static void hold_ms(long ms) {
    int64_t until = ts_monotonic_ms() + ms;
    while (ts_monotonic_ms() < until) {
        supervise();
        sleep_ms(50);
    }
}

/* Starts worker i and waits until its /healthz answers. A worker that
 * exits at start is started again (up to 5 times): on a cluster of three
 * brokers a topic made a moment ago may not be known yet to the broker it
 * asks, and it refuses to start, as under scripts/run's supervisor. */
static void start_worker_ready(int i) {
    for (int attempt = 0; attempt < 5; attempt++) {
        it_start_worker(&R.env, i);
        char url[64];
        snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", R.env.worker_ports[i]);
        int64_t deadline = ts_monotonic_ms() + 30000;
        while (ts_monotonic_ms() < deadline) {
            it_http_result h = it_http("GET", url, NULL, NULL);
            long status = h.status;
            it_http_free(&h);
            if (status == 200)
                return;
            if (waitpid(R.env.workers[i], NULL, WNOHANG) == R.env.workers[i]) {
                R.env.workers[i] = 0;
                printf("worker %d exited at start, started again (see %s)\n", i,
                       it_worker_log(&R.env, i));
                break;
            }
            sleep_ms(50);
        }
    }
    fail_msg("worker %d did not start (see %s)", i, it_worker_log(&R.env, i));
}

/* Starts a run: a fresh database, topics, `workers` workers, `apis` APIs
 * (behind a hanging-capable proxy to PostgreSQL when `proxy`). */
static void run_begin(int ops, int workers, int apis, bool proxy) {
    memset(&R, 0, sizeof R);
    setenv("TS_PG_DSN", base_dsn, 1);
    assert_int_equal(it_own_database(FAULTS_DB), 0);
    assert_int_equal(it_setup_replicated(&R.env, PARTITIONS, 1 + apis, default_stack ? 1 : 3,
                                         default_stack ? 1 : 2),
                     0);
    char children_dsn[1200];
    snprintf(children_dsn, sizeof children_dsn, "%s", R.env.cfg.pg_dsn);
    if (proxy) /* the last host and port win */
        assert_non_null(
            R.proxy = it_proxy_to_database(R.env.cfg.pg_dsn, children_dsn, sizeof children_dsn));
    setenv("TS_PG_DSN", children_dsn, 1);
    for (int i = 0; i < workers; i++)
        start_worker_ready(i);
    for (int i = 0; i < apis; i++)
        start_api(i);
    R.napis = apis;
    R.cfg = (fb_config){.ops = ops,
                        .clients = 32,
                        .hot_capacity = 100,
                        .events = 4,
                        .deadline_ms = 180000,
                        .seed = seed++};
    const char *urls[] = {R.urls[0], R.urls[1]};
    R.burst = fb_start(&R.cfg, urls, apis);
    for (int i = 0; i < workers; i++) /* one that exited at start explains a stalled burst */
        if (waitpid(R.env.workers[i], NULL, WNOHANG) == R.env.workers[i])
            fail_msg("worker %d exited at start (see %s)", i, it_worker_log(&R.env, i));
    assert_non_null(R.burst);
}

/* Waits until `fraction` of the burst has its final answers. */
static void await_progress(double fraction) {
    long target = (long)(fraction * R.cfg.ops) + R.cfg.events;
    int64_t deadline = ts_monotonic_ms() + PROGRESS_MS;
    while (fb_finished(R.burst) < target) {
        if (ts_monotonic_ms() > deadline)
            fail_msg("the burst did not reach %.0f%% within %d s", fraction * 100,
                     PROGRESS_MS / 1000);
        supervise();
        sleep_ms(5);
    }
}

static void fault_ended(void) {
    if (R.nends < MAX_ENDS)
        R.ends[R.nends++] = ts_monotonic_ms();
}

/* The partition of the hot event (that of its creation, applied already). */
static int hot_partition(void) {
    const char *p[] = {fb_hot_event(R.burst)};
    return (int)it_query_ll(&R.env,
                            "SELECT kafka_partition FROM processed_commands WHERE event_id = $1"
                            " AND kind = 'create_event'",
                            1, p);
}

/* Ends the run: the burst finished, the journal checked, a JSON line
 * written, everything stopped; then the test's verdict. */
static void run_end(const char *fault, int expected_faults) {
    await_progress(1.0);
    fb_join(R.burst);
    size_t n;
    const fb_op *ops = fb_ops(R.burst, &n);
    fc_result res;
    int problems = fc_check(&R.env, ops, n, SETTLE_MS, &res);
    long recover = -1;
    for (int i = 0; i < R.nends; i++) {
        long t = fc_recovery_ms(ops, n, R.ends[i]);
        if (t < 0 || recover < 0 || t > recover)
            recover = t < 0 ? (recover < 0 ? -1 : recover) : t;
    }
    long stall = fc_longest_stall_ms(ops, n);
    res.restarts = R.restarts;
    if (R.restarts)
        printf("%s: %d service(s) exited by themselves and were started again\n", fault,
               R.restarts);
    printf("%s: %d fault(s), %ld operations, %ld acknowledged, %ld stored, %ld lost, %ld "
           "doubled, %ld oversold, %ld mismatched, %ld unanswered, %ld errors, %ld offset "
           "problems, %ld dead letters; %ld commands; recovered in %ld ms, longest stall %ld ms, "
           "settled in %ld ms\n",
           fault, R.nends, res.ops, res.acknowledged, res.stored, res.lost, res.doubled,
           res.oversold, res.mismatched, res.unanswered, res.errors, res.offsets_bad,
           res.dead_letters, res.commands, recover, stall, res.settle_ms);
    fc_record(getenv("TS_FAULTS_RESULTS"), fault, &res, recover, stall, R.nends);
    fb_free(R.burst);
    R.burst = NULL;
    it_teardown(&R.env);
    memset(&R.env, 0, sizeof R.env);
    it_proxy_stop(R.proxy);
    R.proxy = NULL;
    if (problems)
        fail_msg("%s: %d problem(s):\n%s", fault, problems, res.problems);
    assert_int_equal(R.nends, expected_faults);
    /* the burst went through: most writes acknowledged (the rest refused
     * as full, nothing else), and the service recovered after each fault */
    assert_true(res.acknowledged > res.ops / 2);
    assert_true(recover >= 0);
}

static int runs(void) {
    const char *r = getenv("TS_FAULTS_RUNS");
    return long_mode ? (r && atoi(r) > 0 ? atoi(r) : 3) : 1;
}

static int burst_ops(void) {
    return long_mode ? 20000 : 3000;
}

/* ------------------------------------------------------------ the faults */

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* kill -9 of the worker at random points of the burst (20 of 100,000
 * operations in the long version), restarted at once each time. */
static void the_worker_killed_at_random_points_loses_and_doubles_nothing(void **state) {
    (void)state;
    int kills = long_mode ? 20 : 3;
    run_begin(long_mode ? 100000 : 4000, 1, 1, false);
    double at[20];
    unsigned s = R.cfg.seed;
    for (int i = 0; i < kills; i++)
        at[i] = 0.05 + 0.85 * (double)rand_r(&s) / RAND_MAX;
    qsort(at, (size_t)kills, sizeof at[0], by_value);
    for (int i = 0; i < kills; i++) {
        await_progress(at[i]);
        assert_int_equal(it_stop_worker(&R.env, 0, SIGKILL), 128 + SIGKILL);
        it_start_worker(&R.env, 0);
        fault_ended();
    }
    run_end("worker kill -9", kills);
}

/* kill -9 of one of two APIs mid-burst: its clients' connections drop and
 * they go on with the other, or with it once restarted. */
static void the_api_killed_mid_burst_loses_and_doubles_nothing(void **state) {
    (void)state;
    for (int r = 0; r < runs(); r++) {
        run_begin(burst_ops(), 1, 2, false);
        await_progress(0.4);
        assert_int_equal(it_stop_api(&R.env, 0, SIGKILL), 128 + SIGKILL);
        start_api(0);
        fb_set_url(R.burst, 0, R.urls[0]);
        fault_ended();
        run_end("API kill -9", 1);
    }
}

/* A gauge of API i's /metrics; -1 when it does not answer or lacks it. */
static long api_gauge(int i, const char *name) {
    char url[96], needle[128];
    snprintf(url, sizeof url, "%s/metrics", R.urls[i]);
    snprintf(needle, sizeof needle, "\n%s ", name);
    it_http_result h = it_http("GET", url, NULL, NULL);
    const char *p = h.status == 200 && h.body ? strstr(h.body, needle) : NULL;
    long v = p ? strtol(p + strlen(needle), NULL, 10) : -1;
    it_http_free(&h);
    return v;
}

/* The reply partition API i claimed, awaited (an instance that cannot
 * claim one shares one and says so in /metrics; here each can). */
static int claimed_partition(int i) {
    int64_t deadline = ts_monotonic_ms() + 30000;
    while (api_gauge(i, "turnstile_reply_partition_claimed") != 1) {
        if (ts_monotonic_ms() > deadline)
            fail_msg("API %d claimed no reply partition within 30 s", i);
        hold_ms(20);
    }
    return (int)api_gauge(i, "turnstile_reply_partition");
}

/* The reply partitions' lock key, as the README gives it; $1 the topic. */
#define CLAIM_KEY "('x' || left(md5($1), 8))::bit(32)::int"

/* Takes the claim of `partition` from the API holding it: its claim's
 * session terminated, and the partition's lock taken by this process's
 * session, which waits for the terminated one to let go. The API finds
 * its claim lost within a second, its partition taken: it moves to a free
 * one. */
static void take_claim_of(int partition) {
    char p[16];
    snprintf(p, sizeof p, "%d", partition);
    const char *params[] = {R.env.cfg.topic_replies, p};
    assert_int_equal(it_query_ll(&R.env,
                                 "SELECT count(pg_terminate_backend(pid)) FROM pg_locks"
                                 " WHERE locktype = 'advisory' AND objsubid = 2"
                                 " AND classid = (" CLAIM_KEY ")::oid AND objid = ($2::int)::oid",
                                 2, params),
                     1);
    assert_int_equal(it_query_ll(&R.env,
                                 "SELECT count(*) FROM (SELECT pg_advisory_lock(" CLAIM_KEY
                                 ", $2::int)) l",
                                 2, params),
                     1);
}

/* Scale-out with no hand configuration: two APIs and three workers started
 * with the same settings (no TS_REPLY_PARTITION), each API claiming a reply
 * partition of its own; mid-burst one API and one worker are killed -9, a
 * fourth worker joins, and the API is started again with the same
 * settings: it claims a partition again, and the other keeps its own
 * throughout. Last, the other API's claim is taken from it (its session
 * terminated, its partition locked here): it moves to the free partition
 * while its requests are under way, none of them lost. */
static void apis_and_workers_scaled_out_with_one_setting_lose_and_double_nothing(void **state) {
    (void)state;
    assert_true(IT_MAX_WORKERS >= 4);
    for (int r = 0; r < runs(); r++) {
        claimed_partitions = true;
        run_begin(burst_ops(), 3, 2, false);
        int p0 = claimed_partition(0), p1 = claimed_partition(1);
        printf("scale-out: the APIs claimed reply partitions %d and %d\n", p0, p1);
        assert_true(p0 >= 0 && p0 <= 2 && p1 >= 0 && p1 <= 2); /* the topic has 1 + 2 */
        assert_int_not_equal(p0, p1);
        await_progress(0.3);
        assert_int_equal(it_stop_api(&R.env, 0, SIGKILL), 128 + SIGKILL);
        assert_int_equal(it_stop_worker(&R.env, 1, SIGKILL), 128 + SIGKILL);
        fault_ended();
        await_progress(0.4); /* the burst goes on with what is left */
        start_worker_ready(3);
        fault_ended();
        start_api(0);
        fb_set_url(R.burst, 0, R.urls[0]);
        int again = claimed_partition(0);
        printf("scale-out: API 0 started again claimed reply partition %d\n", again);
        assert_true(again >= 0 && again <= 2);
        assert_int_not_equal(again, p1);
        fault_ended();
        /* joining took nothing from the live instance */
        assert_int_equal(claimed_partition(1), p1);
        await_progress(0.6);
        take_claim_of(p1);
        int64_t deadline = ts_monotonic_ms() + 30000;
        int moved;
        while ((moved = (int)api_gauge(1, "turnstile_reply_partition")) == p1 ||
               api_gauge(1, "turnstile_reply_partition_claimed") != 1) {
            if (ts_monotonic_ms() > deadline)
                fail_msg("API 1 did not move from reply partition %d within 30 s", p1);
            hold_ms(20);
        }
        printf("scale-out: API 1, its claim taken, moved from reply partition %d to %d\n", p1,
               moved);
        /* the one partition free: neither its old one nor API 0's */
        assert_int_equal(moved, 3 - p1 - again);
        char p[16];
        snprintf(p, sizeof p, "%d", p1);
        const char *params[] = {R.env.cfg.topic_replies, p};
        assert_int_equal(it_query_ll(&R.env,
                                     "SELECT pg_advisory_unlock(" CLAIM_KEY ", $2::int)::int", 2,
                                     params),
                         1);
        fault_ended();
        run_end("scale-out: API and worker kill -9, worker added, a claim taken", 4);
        claimed_partitions = false;
    }
}

/* Two workers fighting over the partitions: one started or stopped (by
 * turns SIGTERM and SIGKILL) every 1.5 s while the burst lasts (in the CI
 * version three bursts' worth of operations, for the storm to have time).
 * Each start and stop is a fault that ends at once. */
static void two_workers_in_a_rebalance_storm_lose_and_double_nothing(void **state) {
    (void)state;
    for (int r = 0; r < runs(); r++) {
        run_begin(long_mode ? burst_ops() : 3 * burst_ops(), 1, 1, false);
        int step = 0;
        long total = R.cfg.ops + R.cfg.events;
        await_progress(0.1);
        while (fb_finished(R.burst) < total * 8 / 10) {
            switch (step++ % 4) {
            case 0: it_start_worker(&R.env, 1); break;
            case 1: assert_int_equal(it_stop_worker(&R.env, 0, SIGKILL), 128 + SIGKILL); break;
            case 2: it_start_worker(&R.env, 0); break;
            default: it_stop_worker(&R.env, 1, SIGTERM); break;
            }
            fault_ended();
            hold_ms(1500); /* the storm's pace, not a wait for anything */
        }
        if (!R.env.workers[0])
            it_start_worker(&R.env, 0);
        printf("rebalance storm: %d starts and stops\n", step);
        assert_true(step >= 4); /* a storm, not a breeze: every kind of step taken */
        run_end("rebalance storm", step);
    }
}

/* Every PostgreSQL connection of the worker and the API killed
 * (pg_terminate_backend), three times in the burst. */
static void postgresql_connections_killed_mid_burst_lose_and_double_nothing(void **state) {
    (void)state;
    for (int r = 0; r < runs(); r++) {
        run_begin(burst_ops(), 1, 1, false);
        for (double at = 0.3; at < 0.8; at += 0.2) {
            await_progress(at);
            long long killed =
                it_query_ll(&R.env,
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                            " WHERE datname = current_database() AND pid <> pg_backend_pid()",
                            0, NULL);
            assert_true(killed >= 1);
            fault_ended();
        }
        run_end("PostgreSQL connections killed", 3);
    }
}

/* PostgreSQL stops answering for 10 s: the proxy between it and the
 * services stops forwarding (connections open, nothing answered). */
static void postgresql_hung_for_10_s_loses_and_doubles_nothing(void **state) {
    (void)state;
    for (int r = 0; r < runs(); r++) {
        run_begin(burst_ops(), 1, 1, true);
        await_progress(0.3);
        it_proxy_freeze(R.proxy, true);
        hold_ms(10000); /* the fault's length */
        it_proxy_freeze(R.proxy, false);
        fault_ended();
        run_end("PostgreSQL hung 10 s", 1);
    }
}

/* PostgreSQL restarted (pg_ctlcluster restart -m fast) mid-burst. The
 * fault "ends" when the restart is issued: its time to recover includes
 * the restart itself. */
static void postgresql_restarted_mid_burst_loses_and_doubles_nothing(void **state) {
    (void)state;
    for (int r = 0; r < runs(); r++) {
        run_begin(burst_ops(), 1, 1, false);
        await_progress(0.4);
        fault_ended();
        assert_int_equal(stack("pg restart"), 0);
        run_end("PostgreSQL restart", 1);
    }
}

/* Waits until every partition of the commands topic has its 3 replicas in
 * sync again (after a broker came back). */
static void await_full_isr(void) {
    int64_t deadline = ts_monotonic_ms() + 120000;
    for (;;) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_t *t = rd_kafka_topic_new(R.env.producer, R.env.cfg.topic_commands, NULL);
        bool full = false;
        if (rd_kafka_metadata(R.env.producer, 0, t, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            full = md->topic_cnt == 1 && md->topics[0].partition_cnt == PARTITIONS;
            for (int k = 0; full && k < md->topics[0].partition_cnt; k++)
                full = md->topics[0].partitions[k].isr_cnt == 3;
            rd_kafka_metadata_destroy(md);
        }
        rd_kafka_topic_destroy(t);
        if (full)
            return;
        if (ts_monotonic_ms() > deadline)
            fail_msg("the commands topic's replicas were not all in sync within 120 s");
        sleep_ms(200);
    }
}

/* The broker leading the hot partition stopped (SIGSTOP) for 10 s. */
static void the_hot_partitions_leader_paused_for_10_s_loses_and_doubles_nothing(void **state) {
    (void)state;
    for (int r = 0; r < runs(); r++) {
        run_begin(burst_ops(), 1, 1, false);
        await_full_isr();
        int leader = it_partition_leader(&R.env, R.env.cfg.topic_commands, hot_partition());
        assert_true(leader >= 1);
        await_progress(0.3);
        assert_int_equal(stack("kafka %d pause", leader), 0);
        hold_ms(10000); /* the fault's length */
        assert_int_equal(stack("kafka %d resume", leader), 0);
        fault_ended();
        await_full_isr();
        run_end("broker paused 10 s", 1);
    }
}

/* kill -9 of the broker leading the hot partition; restarted once another
 * has taken the lead. Its time to recover counts from the kill: the
 * cluster serves again once a new leader is elected. */
static void the_hot_partitions_leader_killed_loses_and_doubles_nothing(void **state) {
    (void)state;
    for (int r = 0; r < runs(); r++) {
        run_begin(burst_ops(), 1, 1, false);
        await_full_isr();
        int partition = hot_partition();
        int leader = it_partition_leader(&R.env, R.env.cfg.topic_commands, partition);
        assert_true(leader >= 1);
        await_progress(0.3);
        assert_int_equal(stack("kafka %d kill", leader), 0);
        fault_ended();
        int64_t deadline = ts_monotonic_ms() + 60000;
        int now;
        while ((now = it_partition_leader(&R.env, R.env.cfg.topic_commands, partition)) < 1 ||
               now == leader) {
            if (ts_monotonic_ms() > deadline)
                fail_msg("no new leader for partition %d within 60 s", partition);
            sleep_ms(100);
        }
        printf("leader kill: partition %d moved from broker %d to %d\n", partition, leader, now);
        await_progress(0.6);
        assert_int_equal(stack("kafka %d start", leader), 0);
        await_full_isr();
        run_end("leader kill -9 (3 brokers)", 1);
    }
}

static int cleanup(void **state) {
    (void)state;
    claimed_partitions = false;
    if (R.proxy)
        it_proxy_freeze(R.proxy, false);
    if (R.burst) { /* a failed test: let its clients end (their deadline) */
        fb_free(R.burst);
        R.burst = NULL;
    }
    if (R.env.producer)
        it_teardown(&R.env);
    memset(&R.env, 0, sizeof R.env);
    it_proxy_stop(R.proxy);
    R.proxy = NULL;
    for (int n = 1; n <= 3 && !default_stack; n++) /* a broker a failed test left stopped */
        (void)stack("kafka %d resume >/dev/null 2>&1; true", n);
    return 0;
}

/* argv[1], if given: run only the tests whose name matches this pattern
 * (cmocka's * and ?), e.g. "*worker*". */
int main(int argc, char **argv) {
    long_mode = getenv("TS_FAULTS_LONG") && atoi(getenv("TS_FAULTS_LONG")) == 1;
    seed =
        getenv("TS_FAULTS_SEED") ? (unsigned)atol(getenv("TS_FAULTS_SEED")) : (unsigned)ts_now_ms();
    printf("fault matrix: seed %u (TS_FAULTS_SEED), %s version\n", seed, long_mode ? "long" : "CI");
    default_stack = getenv("TS_FAULTS_STACK") && !strcmp(getenv("TS_FAULTS_STACK"), "default");
    if (!default_stack && load_stack_env())
        return 1;
    const char *dsn = getenv("TS_PG_DSN");
    snprintf(base_dsn, sizeof base_dsn, "%s",
             dsn ? dsn
                 : "host=127.0.0.1 port=5432 dbname=turnstile user=turnstile"
                   " password=turnstile");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(the_worker_killed_at_random_points_loses_and_doubles_nothing,
                                  cleanup),
        cmocka_unit_test_teardown(the_api_killed_mid_burst_loses_and_doubles_nothing, cleanup),
        cmocka_unit_test_teardown(
            apis_and_workers_scaled_out_with_one_setting_lose_and_double_nothing, cleanup),
        cmocka_unit_test_teardown(two_workers_in_a_rebalance_storm_lose_and_double_nothing,
                                  cleanup),
        cmocka_unit_test_teardown(postgresql_connections_killed_mid_burst_lose_and_double_nothing,
                                  cleanup),
        cmocka_unit_test_teardown(postgresql_hung_for_10_s_loses_and_doubles_nothing, cleanup),
        cmocka_unit_test_teardown(postgresql_restarted_mid_burst_loses_and_doubles_nothing,
                                  cleanup),
        cmocka_unit_test_teardown(
            the_hot_partitions_leader_paused_for_10_s_loses_and_doubles_nothing, cleanup),
        cmocka_unit_test_teardown(the_hot_partitions_leader_killed_loses_and_doubles_nothing,
                                  cleanup),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
