/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of ts_time: ISO 8601 in and out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ts_time.h"

static int64_t parse(const char *s) {
    int64_t ms = -1;
    assert_int_equal(ts_time_parse_iso8601(s, &ms), 0);
    return ms;
}

static void utc_times_parse_to_epoch_milliseconds(void **state) {
    (void)state;
    assert_true(parse("1970-01-01T00:00:00Z") == 0);
    assert_true(parse("2030-01-01T00:00:00Z") == 1893456000000LL);
    assert_true(parse("2030-01-01T00:00:00.250Z") == 1893456000250LL);
    assert_true(parse("2030-01-01T00:00:00.123456789Z") == 1893456000123LL);
    assert_true(parse("2030-01-01 00:00:00") == 1893456000000LL);
    assert_true(parse("2030-01-01T00:00Z") == 1893456000000LL);
    assert_true(parse("2024-02-29T12:00:00Z") == 1709208000000LL);
}

static void offsets_are_applied(void **state) {
    (void)state;
    assert_true(parse("2030-01-01T02:00:00+02:00") == 1893456000000LL);
    assert_true(parse("2029-12-31T19:30:00-0430") == 1893456000000LL);
}

static void malformed_and_impossible_times_are_rejected(void **state) {
    (void)state;
    const char *bad[] = {"",
                         "tomorrow",
                         "2030-01-01",
                         "2030-13-01T00:00:00Z",
                         "2030-02-30T00:00:00Z",
                         "2023-02-29T00:00:00Z",
                         "2030-01-01T24:00:00Z",
                         "2030-01-01T00:60:00Z",
                         "2030-01-01T00:00:00.Z",
                         "2030-01-01T00:00:00Zjunk",
                         "2030-01-01T00:00:00+25:00",
                         "20300101T000000Z",
                         "2030-1-01T00:00:00Z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms;
        assert_int_equal(ts_time_parse_iso8601(bad[i], &ms), -1);
    }
}

static void formatting_round_trips(void **state) {
    (void)state;
    char out[TS_ISO8601_LEN + 1];
    ts_time_format_iso8601(1893456000250LL, out);
    assert_string_equal(out, "2030-01-01T00:00:00.250Z");
    assert_true(parse(out) == 1893456000250LL);
    ts_time_format_iso8601(-1, out);
    assert_string_equal(out, "1969-12-31T23:59:59.999Z");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(utc_times_parse_to_epoch_milliseconds),
        cmocka_unit_test(offsets_are_applied),
        cmocka_unit_test(malformed_and_impossible_times_are_rejected),
        cmocka_unit_test(formatting_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
