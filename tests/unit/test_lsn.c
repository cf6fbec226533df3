/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of ts_lsn: PostgreSQL's text form of WAL positions, both
 * ways, exactly as pg_lsn takes and prints it, and the highest position
 * kept by several threads. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "ts_lsn.h"

static void positions_parse_as_postgresql_prints_them(void **state) {
    (void)state;
    const struct {
        const char *text;
        uint64_t lsn;
    } good[] = {
        {"0/0", 0},
        {"0/16B3748", 0x16B3748},
        {"0/16b3748", 0x16B3748}, /* either case, as pg_lsn takes it */
        {"1/0", UINT64_C(1) << 32},
        {"00000001/00000002", (UINT64_C(1) << 32) | 2}, /* leading zeros */
        {"A/FFFFFFFF", UINT64_C(0xAFFFFFFFF)},
        {"FFFFFFFF/FFFFFFFF", UINT64_MAX},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint64_t out = 7;
        assert_int_equal(ts_lsn_parse(good[i].text, &out), 0);
        assert_true(out == good[i].lsn);
    }
}

static void anything_else_is_refused(void **state) {
    (void)state;
    const char *bad[] = {
        "",     "/",           "0/",          "/0",    "0",     "16B3748", "0//1",  "0/1/2", " 0/1",
        "0/1 ", "0 /1",        "0/ 1",        "+0/1",  "-0/1",  "0/-1",    "0x0/1", "0/0x1", "G/1",
        "0/1G", "123456789/0", "0/123456789", "0/1\n", "0.5/1", "0/1;",    "０/1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t out = 7;
        if (ts_lsn_parse(bad[i], &out) == 0)
            fail_msg("'%s' parsed", bad[i]);
        assert_true(out == 7); /* untouched */
    }
    uint64_t out = 7;
    assert_int_equal(ts_lsn_parse(NULL, &out), -1);
    /* a value with a NUL inside is cut there, as a C string is */
    assert_int_equal(ts_lsn_parse("0/1\0garbage", &out), 0);
    assert_true(out == 1);
}

static void formatting_is_postgresql_s_and_round_trips(void **state) {
    (void)state;
    char text[TS_LSN_TEXT_MAX];
    ts_lsn_format(0, text);
    assert_string_equal(text, "0/0");
    ts_lsn_format(0x16B3748, text);
    assert_string_equal(text, "0/16B3748");
    ts_lsn_format((UINT64_C(0x1A) << 32) | 0xB, text);
    assert_string_equal(text, "1A/B");
    ts_lsn_format(UINT64_MAX, text);
    assert_string_equal(text, "FFFFFFFF/FFFFFFFF");
    uint64_t x = UINT64_C(0x9E3779B97F4A7C15);
    for (int i = 0; i < 10000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t lsn = i % 3 == 0 ? x >> (i % 64) : x, back = 0;
        ts_lsn_format(lsn, text);
        assert_int_equal(ts_lsn_parse(text, &back), 0);
        assert_true(back == lsn);
    }
}

/* Positions order as the WAL does: the high half first, as integers, not
 * as text ("0/A" is past "0/9", "1/0" past "0/FFFFFFFF"). */
static void positions_compare_as_integers(void **state) {
    (void)state;
    const char *ascending[] = {"0/0", "0/9", "0/A", "0/10", "0/FFFFFFFF", "1/0", "1/1", "A/0"};
    for (size_t i = 1; i < sizeof ascending / sizeof ascending[0]; i++) {
        uint64_t a, b;
        assert_int_equal(ts_lsn_parse(ascending[i - 1], &a), 0);
        assert_int_equal(ts_lsn_parse(ascending[i], &b), 0);
        assert_true(a < b);
    }
}

static void raising_keeps_the_highest(void **state) {
    (void)state;
    _Atomic uint64_t at = 0;
    assert_true(ts_lsn_raise(&at, 5) == 5);
    assert_true(ts_lsn_raise(&at, 3) == 5); /* never lowered */
    assert_true(ts_lsn_raise(&at, 0) == 5);
    assert_true(ts_lsn_raise(&at, 9) == 9);
    assert_true(atomic_load(&at) == 9);
}

typedef struct racer {
    _Atomic uint64_t *at;
    uint64_t base;
} racer;

static void *raise_many(void *arg) {
    racer *r = arg;
    for (uint64_t i = 0; i < 100000; i++)
        ts_lsn_raise(r->at, r->base + i * 4);
    return NULL;
}

/* Four threads raising at once: the highest any of them offered wins. */
static void raising_from_threads_keeps_the_highest(void **state) {
    (void)state;
    _Atomic uint64_t at = 0;
    pthread_t t[4];
    racer r[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (racer){&at, (uint64_t)i};
        assert_int_equal(pthread_create(&t[i], NULL, raise_many, &r[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_true(atomic_load(&at) == 3 + 99999 * 4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(positions_parse_as_postgresql_prints_them),
        cmocka_unit_test(anything_else_is_refused),
        cmocka_unit_test(formatting_is_postgresql_s_and_round_trips),
        cmocka_unit_test(positions_compare_as_integers),
        cmocka_unit_test(raising_keeps_the_highest),
        cmocka_unit_test(raising_from_threads_keeps_the_highest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
