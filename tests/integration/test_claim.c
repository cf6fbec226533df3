/* SPDX-License-Identifier: Apache-2.0 */
/* Integration: the claim of a reply partition (producer-api/claim.c) on
 * the real PostgreSQL. Claimants get different partitions; one that ends
 * frees its partition for the next; none free is said so; a terminated
 * session is noticed and its partition taken again; a lock taken in plain
 * SQL with the documented key keeps the claimants off that partition. Each
 * run claims partitions of a topic name of its own: locks of other runs
 * never meet its. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "claim.h"
#include "harness.h"
#include "ts_time.h"

#define TIMEOUT_MS 5000

static const char *dsn;
static char topic[64];

static ts_claim *claimant(void) {
    ts_claim *c = ts_claim_new(dsn, topic, TIMEOUT_MS);
    assert_non_null(c);
    return c;
}

static int take(ts_claim *c, int first, int partitions) {
    char err[512] = "";
    int got = ts_claim_take(c, first, partitions, err, sizeof err);
    if (got == TS_CLAIM_DB_DOWN)
        fail_msg("claim: %s", err);
    return got;
}

/* Takes until `want` comes, up to TIMEOUT_MS: the server frees a closed
 * session's locks once its backend has seen the connection close, a moment
 * after the client's PQfinish. */
static void await_take(ts_claim *c, int partitions, int want) {
    int64_t deadline = ts_monotonic_ms() + TIMEOUT_MS;
    int got;
    while ((got = take(c, -1, partitions)) != want) {
        assert_int_equal(got, TS_CLAIM_NONE_FREE);
        if (ts_monotonic_ms() > deadline)
            fail_msg("partition %d was not freed within %d ms", want, TIMEOUT_MS);
        struct timespec t = {0, 10 * 1000000L}; /* between two tries */
        nanosleep(&t, NULL);
    }
}

static PGconn *plain_session(void) {
    PGconn *pg = PQconnectdb(dsn);
    assert_int_equal(PQstatus(pg), CONNECTION_OK);
    return pg;
}

/* The first column of the first row of `sql` with the topic and a partition. */
static char *ask(PGconn *pg, const char *sql, int partition, char *out, size_t cap) {
    char p[16];
    snprintf(p, sizeof p, "%d", partition);
    const char *params[] = {topic, p};
    PGresult *r = PQexecParams(pg, sql, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(pg));
    snprintf(out, cap, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return out;
}

static void two_claimants_get_two_partitions_and_a_third_the_one_freed(void **state) {
    (void)state;
    ts_claim *a = claimant(), *b = claimant(), *c = claimant();
    assert_int_equal(take(a, -1, 2), 0);
    assert_int_equal(take(b, -1, 2), 1);
    assert_int_equal(ts_claim_held(a), 0);
    assert_int_equal(ts_claim_held(b), 1);
    /* more claimants than partitions: the third holds none */
    assert_int_equal(take(c, -1, 2), TS_CLAIM_NONE_FREE);
    assert_int_equal(ts_claim_held(c), -1);
    char err[256];
    assert_true(ts_claim_keep(a, err, sizeof err));
    assert_true(ts_claim_keep(b, err, sizeof err));
    ts_claim_free(a); /* an instance that ends: its session with it */
    await_take(c, 2, 0);
    assert_true(ts_claim_keep(c, err, sizeof err));
    assert_true(ts_claim_keep(b, err, sizeof err)); /* b never lost its own */
    ts_claim_free(b);
    ts_claim_free(c);
}

static void a_claimant_takes_the_partition_it_asks_for_first_when_free(void **state) {
    (void)state;
    ts_claim *a = claimant(), *b = claimant();
    assert_int_equal(take(a, 2, 4), 2);
    assert_int_equal(take(b, 2, 4), 0); /* taken: the lowest free one */
    /* TS_REPLY_PARTITION's way: that partition alone */
    ts_claim *c = claimant();
    assert_int_equal(take(c, 2, 0), TS_CLAIM_NONE_FREE);
    assert_int_equal(take(c, 3, 0), 3);
    ts_claim_free(a);
    ts_claim_free(b);
    ts_claim_free(c);
}

static void a_terminated_session_is_noticed_and_its_partition_taken_again(void **state) {
    (void)state;
    ts_claim *a = claimant();
    assert_int_equal(take(a, -1, 3), 0);
    PGconn *pg = plain_session();
    char out[32];
    ask(pg,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory'"
        " AND objsubid = 2 AND classid = (('x' || left(md5($1), 8))::bit(32)::int)::oid"
        " AND objid = ($2::int)::oid",
        0, out, sizeof out);
    assert_string_equal(out, "1");
    char err[256] = "";
    /* pg_terminate_backend signals; the backend ends a moment later */
    int64_t deadline = ts_monotonic_ms() + TIMEOUT_MS;
    while (ts_claim_keep(a, err, sizeof err)) {
        if (ts_monotonic_ms() > deadline)
            fail_msg("the terminated session was not noticed within %d ms", TIMEOUT_MS);
        struct timespec t = {0, 10 * 1000000L}; /* between two checks */
        nanosleep(&t, NULL);
    }
    assert_int_equal(ts_claim_held(a), -1);
    /* its partition is free again: taken again, first */
    assert_int_equal(take(a, 0, 3), 0);
    assert_true(ts_claim_keep(a, err, sizeof err));
    PQfinish(pg);
    ts_claim_free(a);
}

/* The key as the README gives it, for a service of its own reading replies:
 * a partition it holds so is left alone. */
static void a_lock_taken_in_sql_with_the_documented_key_is_left_alone(void **state) {
    (void)state;
    PGconn *pg = plain_session();
    char out[32];
    assert_string_equal(ask(pg,
                            "SELECT pg_try_advisory_lock(('x' || left(md5($1), 8))::bit(32)::int,"
                            " $2::int)",
                            0, out, sizeof out),
                        "t");
    ts_claim *a = claimant();
    assert_int_equal(take(a, 0, 2), 1);
    ts_claim_free(a);
    PQfinish(pg);
}

static void a_database_that_does_not_answer_is_said_so(void **state) {
    (void)state;
    /* a port nobody listens on; a later keyword of a connection string wins */
    char nowhere[1100];
    snprintf(nowhere, sizeof nowhere, "%s host=127.0.0.1 port=1", dsn);
    ts_claim *a = ts_claim_new(nowhere, topic, TIMEOUT_MS);
    assert_non_null(a);
    char err[512] = "";
    assert_int_equal(ts_claim_take(a, -1, 2, err, sizeof err), TS_CLAIM_DB_DOWN);
    assert_non_null(strstr(err, "connect"));
    assert_int_equal(ts_claim_held(a), -1);
    ts_claim_free(a);
}

int main(void) {
    dsn = getenv("TS_PG_DSN") ? getenv("TS_PG_DSN") : IT_DEFAULT_DSN;
    snprintf(topic, sizeof topic, "claim%dx%lld.replies", (int)getpid(), (long long)ts_now_ms());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(two_claimants_get_two_partitions_and_a_third_the_one_freed),
        cmocka_unit_test(a_claimant_takes_the_partition_it_asks_for_first_when_free),
        cmocka_unit_test(a_terminated_session_is_noticed_and_its_partition_taken_again),
        cmocka_unit_test(a_lock_taken_in_sql_with_the_documented_key_is_left_alone),
        cmocka_unit_test(a_database_that_does_not_answer_is_said_so),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
