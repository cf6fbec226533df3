/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the ingress's token buckets. Time is passed explicitly:
 * nothing sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <cmocka.h>

#include "ratelimit.h"

#define T0 1000000 /* a monotonic time far from 0, as a real clock gives */

/* Takes from `key` until refused; returns how many were allowed. */
static int drain(ts_ratelimit *rl, const char *key, int64_t now_ms) {
    int n = 0;
    while (ts_ratelimit_take(rl, key, now_ms) == 0)
        n++;
    return n;
}

static void a_burst_is_allowed_then_refused(void **state) {
    (void)state;
    ts_ratelimit *rl = ts_ratelimit_new(10, 20, 1024);
    assert_non_null(rl);
    for (int i = 0; i < 20; i++)
        assert_int_equal(ts_ratelimit_take(rl, "192.0.2.1", T0), 0);
    assert_int_not_equal(ts_ratelimit_take(rl, "192.0.2.1", T0), 0);
    assert_int_not_equal(ts_ratelimit_take(rl, "192.0.2.1", T0), 0);
    ts_ratelimit_free(rl);
}

static void tokens_refill_with_time_up_to_the_burst(void **state) {
    (void)state;
    ts_ratelimit *rl = ts_ratelimit_new(10, 20, 1024);
    assert_int_equal(drain(rl, "k", T0), 20);
    /* 10/s: one token every 100 ms, none before. */
    assert_int_not_equal(ts_ratelimit_take(rl, "k", T0 + 99), 0);
    assert_int_equal(ts_ratelimit_take(rl, "k", T0 + 100), 0);
    assert_int_not_equal(ts_ratelimit_take(rl, "k", T0 + 100), 0);
    assert_int_equal(drain(rl, "k", T0 + 600), 5);
    /* A long pause gives the burst back, never more. */
    assert_int_equal(drain(rl, "k", T0 + 3600 * 1000), 20);
    ts_ratelimit_free(rl);
}

static void a_refused_call_takes_nothing(void **state) {
    (void)state;
    ts_ratelimit *rl = ts_ratelimit_new(1, 1, 64);
    assert_int_equal(ts_ratelimit_take(rl, "k", T0), 0);
    for (int i = 1; i < 1000; i++)
        assert_int_not_equal(ts_ratelimit_take(rl, "k", T0 + i), 0);
    assert_int_equal(ts_ratelimit_take(rl, "k", T0 + 1000), 0);
    ts_ratelimit_free(rl);
}

static void retry_after_is_the_whole_seconds_until_a_token(void **state) {
    (void)state;
    ts_ratelimit *rl = ts_ratelimit_new(0.5, 1, 64);
    assert_int_equal(ts_ratelimit_take(rl, "slow", T0), 0);
    assert_int_equal(ts_ratelimit_take(rl, "slow", T0), 2);
    assert_int_equal(ts_ratelimit_take(rl, "slow", T0 + 1000), 1);
    assert_int_equal(ts_ratelimit_take(rl, "slow", T0 + 1001), 1);
    assert_int_equal(ts_ratelimit_take(rl, "slow", T0 + 2000), 0);
    ts_ratelimit_free(rl);

    /* Faster than one a second: still at least 1. */
    rl = ts_ratelimit_new(10, 1, 64);
    assert_int_equal(ts_ratelimit_take(rl, "fast", T0), 0);
    assert_int_equal(ts_ratelimit_take(rl, "fast", T0), 1);
    ts_ratelimit_free(rl);

    /* Slow rates round up: 0.3/s needs 3.33 s, so 4. */
    rl = ts_ratelimit_new(0.3, 2, 64);
    assert_int_equal(drain(rl, "k", T0), 2);
    assert_int_equal(ts_ratelimit_take(rl, "k", T0), 4);
    ts_ratelimit_free(rl);
}

static void keys_have_buckets_of_their_own(void **state) {
    (void)state;
    ts_ratelimit *rl = ts_ratelimit_new(1, 3, 1024);
    assert_int_equal(drain(rl, "198.51.100.7", T0), 3);
    assert_int_equal(drain(rl, "198.51.100.8", T0), 3);
    assert_int_equal(drain(rl, "2001:db8:1:2::/64", T0), 3);
    assert_int_equal(drain(rl, "", T0), 3);
    assert_int_equal(ts_ratelimit_keys(rl), 4);
    ts_ratelimit_free(rl);
}

static void keys_beyond_63_bytes_are_cut(void **state) {
    (void)state;
    ts_ratelimit *rl = ts_ratelimit_new(1, 2, 64);
    char a[100], b[100];
    memset(a, 'x', 99);
    a[99] = '\0';
    memcpy(b, a, sizeof a);
    b[80] = 'y'; /* differs after byte 63: the same bucket */
    assert_int_equal(ts_ratelimit_take(rl, a, T0), 0);
    assert_int_equal(ts_ratelimit_take(rl, b, T0), 0);
    assert_int_not_equal(ts_ratelimit_take(rl, a, T0), 0);
    b[62] = 'y'; /* differs within 63 bytes: another */
    assert_int_equal(ts_ratelimit_take(rl, b, T0), 0);
    ts_ratelimit_free(rl);
}

static void a_table_full_of_distinct_keys_still_limits_a_hot_key(void **state) {
    (void)state;
    ts_ratelimit *rl = ts_ratelimit_new(1, 5, 16);
    assert_int_equal(drain(rl, "hot", T0), 5);
    /* Many more distinct keys than slots, each taking one token, between
     * the hot key's attempts: the hot key stays refused throughout. */
    char key[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
        assert_int_equal(ts_ratelimit_take(rl, key, T0), 0);
        if (i % 4 == 0)
            assert_int_not_equal(ts_ratelimit_take(rl, "hot", T0), 0);
    }
    assert_int_not_equal(ts_ratelimit_take(rl, "hot", T0), 0);
    ts_ratelimit_free(rl);
}

static void a_refilled_bucket_is_forgotten_before_an_empty_one(void **state) {
    (void)state;
    /* Four slots, one probe window: "hot" spends its burst of 10 (10 s to
     * refill); then a new key every 400 ms takes one token (1 s to refill).
     * "hot" soon is the least recently used, but a refilled bucket is always
     * there to be reused instead. */
    ts_ratelimit *rl = ts_ratelimit_new(1, 10, 4);
    assert_int_equal(drain(rl, "hot", T0), 10);
    char key[32];
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(ts_ratelimit_take(rl, key, T0 + 100 + 400 * i), 0);
    }
    /* 8 s on, "hot" has 8 tokens back, not a fresh burst of 10. */
    assert_int_equal(drain(rl, "hot", T0 + 8000), 8);
    ts_ratelimit_free(rl);
}

static void thousands_of_distinct_keys_do_not_grow_memory(void **state) {
    (void)state;
    ts_ratelimit *rl = ts_ratelimit_new(10, 20, 256);
    char key[64];
    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof key, "2001:db8:%x:%x::/64", i >> 16, i & 0xffff);
        assert_int_equal(ts_ratelimit_take(rl, key, T0 + i), 0);
        assert_true(ts_ratelimit_keys(rl) <= 256);
    }
    assert_true(ts_ratelimit_keys(rl) > 0);
    ts_ratelimit_free(rl);
}

static void bad_parameters_give_no_limiter(void **state) {
    (void)state;
    assert_null(ts_ratelimit_new(0, 10, 16));
    assert_null(ts_ratelimit_new(-1, 10, 16));
    assert_null(ts_ratelimit_new(10, 0.5, 16));
    assert_null(ts_ratelimit_new(10, 10, 0));
    ts_ratelimit_free(NULL);
}

static void a_clock_read_out_of_order_adds_no_tokens(void **state) {
    (void)state;
    ts_ratelimit *rl = ts_ratelimit_new(1, 1, 16);
    assert_int_equal(ts_ratelimit_take(rl, "k", T0 + 5000), 0);
    assert_int_not_equal(ts_ratelimit_take(rl, "k", T0), 0);
    assert_int_not_equal(ts_ratelimit_take(rl, "k", T0 + 5999), 0);
    assert_int_equal(ts_ratelimit_take(rl, "k", T0 + 6000), 0);
    ts_ratelimit_free(rl);
}

#define THREADS 4
#define PHASES 100 /* many starts in step: many chances for a race to show */
#define TRIES 200  /* per thread and phase, far more than the tokens */

typedef struct hammer {
    ts_ratelimit *rl;
    atomic_int *arrived; /* per phase: threads ready to start it */
    int allowed[PHASES]; /* phase p runs at T0 + 250 ms * p */
} hammer;

static void *hammer_one_key(void *arg) {
    hammer *h = arg;
    for (int phase = 0; phase < PHASES; phase++) {
        /* A thread arrives once done with the phase before; all start
         * together once all have arrived. Spinning, not a barrier: a barrier
         * wakes the threads one by one, and the first awake would take every
         * token alone. */
        atomic_fetch_add(&h->arrived[phase], 1);
        while (atomic_load(&h->arrived[phase]) < THREADS)
            sched_yield();
        for (int i = 0; i < TRIES; i++)
            if (ts_ratelimit_take(h->rl, "one", T0 + 250 * phase) == 0)
                h->allowed[phase]++;
    }
    return NULL;
}

static void four_threads_on_one_key_get_exactly_the_burst_and_the_refill(void **state) {
    (void)state;
    /* 100/s, burst 50: 50 at T0, then 25 refilled every 250 ms. */
    ts_ratelimit *rl = ts_ratelimit_new(100, 50, 1024);
    atomic_int arrived[PHASES];
    for (int p = 0; p < PHASES; p++)
        atomic_init(&arrived[p], 0);
    hammer h[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        h[i] = (hammer){.rl = rl, .arrived = arrived};
        assert_int_equal(pthread_create(&t[i], NULL, hammer_one_key, &h[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    /* A phase starts only when every thread has finished the one before,
     * so each phase's count is exact, not only the total. */
    int total = 0;
    for (int phase = 0; phase < PHASES; phase++) {
        int allowed = 0;
        for (int i = 0; i < THREADS; i++)
            allowed += h[i].allowed[phase];
        assert_int_equal(allowed, phase == 0 ? 50 : 25);
        total += allowed;
    }
    assert_int_equal(total, 50 + 25 * (PHASES - 1));
    ts_ratelimit_free(rl);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_burst_is_allowed_then_refused),
        cmocka_unit_test(tokens_refill_with_time_up_to_the_burst),
        cmocka_unit_test(a_refused_call_takes_nothing),
        cmocka_unit_test(retry_after_is_the_whole_seconds_until_a_token),
        cmocka_unit_test(keys_have_buckets_of_their_own),
        cmocka_unit_test(keys_beyond_63_bytes_are_cut),
        cmocka_unit_test(a_table_full_of_distinct_keys_still_limits_a_hot_key),
        cmocka_unit_test(a_refilled_bucket_is_forgotten_before_an_empty_one),
        cmocka_unit_test(thousands_of_distinct_keys_do_not_grow_memory),
        cmocka_unit_test(bad_parameters_give_no_limiter),
        cmocka_unit_test(a_clock_read_out_of_order_adds_no_tokens),
        cmocka_unit_test(four_threads_on_one_key_get_exactly_the_burst_and_the_refill),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
