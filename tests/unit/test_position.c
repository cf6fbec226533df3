/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of position.h: the X-Turnstile-Min-Position header a read
 * may carry, where a read goes given the positions it must see, and how
 * long a failed replica rests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "position.h"

static void no_header_asks_for_nothing(void **state) {
    (void)state;
    uint64_t out = 7;
    assert_int_equal(ts_position_requested(NULL, &out), 0);
    assert_true(out == 0);
}

/* What X-Turnstile-Position gives (PostgreSQL's form) is taken back. */
static void a_position_as_the_api_gives_it_is_taken(void **state) {
    (void)state;
    uint64_t out = 7;
    assert_int_equal(ts_position_requested("0/16B3748", &out), 0);
    assert_true(out == 0x16B3748);
    assert_int_equal(ts_position_requested("1A/0", &out), 0);
    assert_true(out == UINT64_C(0x1A00000000));
    assert_int_equal(ts_position_requested("0/0", &out), 0); /* no demand, said outright */
    assert_true(out == 0);
    assert_int_equal(ts_position_requested("ffffffff/ffffffff", &out), 0);
    assert_true(out == UINT64_MAX); /* beyond any replica: the primary answers */
}

/* Anything else is a 400 naming the header: never read as 0, which would
 * send the read to a replica that may not have the client's writes. */
static void anything_else_is_invalid(void **state) {
    (void)state;
    const char *bad[] = {"",       " ",     "0",         "16B3748",     "0/",
                         "/1",     "0/1 ",  " 0/1",      "0/1,0/2",     "0/1, 0/2",
                         "-1/0",   "0x1/0", "1/0x0",     "123456789/0", "0/123456789",
                         "latest", "0/1/2", "0:16B3748", "0/16B3748\r", "0/16B3748\t"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t out = 7;
        if (ts_position_requested(bad[i], &out) == 0)
            fail_msg("'%s' taken as a position", bad[i]);
    }
}

static void the_message_names_the_header(void **state) {
    (void)state;
    assert_non_null(strstr(TS_MIN_POSITION_INVALID, TS_MIN_POSITION_HEADER));
    assert_non_null(strstr(TS_MIN_POSITION_INVALID, TS_POSITION_HEADER));
}

static void a_read_goes_to_the_replica_only_when_it_has_replayed_enough(void **state) {
    (void)state;
    /* no replica, or one resting: the primary, whatever the positions */
    assert_int_equal(ts_position_target(false, false, 0, 0), TS_TARGET_PRIMARY);
    assert_int_equal(ts_position_target(false, false, 5, 9), TS_TARGET_PRIMARY);
    assert_int_equal(ts_position_target(true, true, 0, 9), TS_TARGET_PRIMARY);
    /* nothing needed (no write answered here, no header): the replica */
    assert_int_equal(ts_position_target(true, false, 0, 0), TS_TARGET_REPLICA);
    /* replayed at or past what is needed: the replica, without asking */
    assert_int_equal(ts_position_target(true, false, 0x16B3748, 0x16B3748), TS_TARGET_REPLICA);
    assert_int_equal(ts_position_target(true, false, 0x16B3748, 0x16B3749), TS_TARGET_REPLICA);
    /* behind by one byte, or never asked: ask it again */
    assert_int_equal(ts_position_target(true, false, 0x16B3748, 0x16B3747), TS_TARGET_ASK_REPLICA);
    assert_int_equal(ts_position_target(true, false, 1, 0), TS_TARGET_ASK_REPLICA);
    /* positions compare as the WAL orders them, the high half first */
    assert_int_equal(ts_position_target(true, false, UINT64_C(1) << 32, 0xFFFFFFFF),
                     TS_TARGET_ASK_REPLICA);
    assert_int_equal(ts_position_target(true, false, UINT64_MAX, UINT64_MAX - 1),
                     TS_TARGET_ASK_REPLICA);
}

static void a_failed_replica_rests_longer_each_time_up_to_30_s(void **state) {
    (void)state;
    int rest = ts_replica_rest_ms(0);
    assert_int_equal(rest, 1000);
    const int want[] = {2000, 4000, 8000, 16000, 30000, 30000, 30000};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        rest = ts_replica_rest_ms(rest);
        assert_int_equal(rest, want[i]);
    }
    assert_int_equal(ts_replica_rest_ms(-5), 1000);
    assert_int_equal(ts_replica_rest_ms(29999), 30000);
    assert_int_equal(ts_replica_rest_ms(1 << 30), 30000); /* never overflows */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(no_header_asks_for_nothing),
        cmocka_unit_test(a_position_as_the_api_gives_it_is_taken),
        cmocka_unit_test(anything_else_is_invalid),
        cmocka_unit_test(the_message_names_the_header),
        cmocka_unit_test(a_read_goes_to_the_replica_only_when_it_has_replayed_enough),
        cmocka_unit_test(a_failed_replica_rests_longer_each_time_up_to_30_s),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
