/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: common/core/ts_pgarray.c, PostgreSQL's binary array format, byte
 * for byte (the worker's integration tests send them to a real server). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "ts_pgarray.h"

static uint32_t get32(const char *p) {
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

static int64_t get64(const char *p) {
    return (int64_t)((uint64_t)get32(p) << 32 | get32(p + 4));
}

static void an_empty_array_has_no_dimension(void **state) {
    (void)state;
    ts_pgarray a = {0};
    ts_pgarray_reset(&a, TS_OID_UUID);
    int len = -1;
    const char *b = ts_pgarray_finish(&a, &len);
    assert_non_null(b);
    assert_int_equal(len, 12);
    assert_int_equal(get32(b), 0);     /* ndim */
    assert_int_equal(get32(b + 4), 0); /* no NULLs */
    assert_int_equal(get32(b + 8), TS_OID_UUID);
    ts_pgarray_free(&a);
}

static void integers_are_big_endian_with_their_lengths(void **state) {
    (void)state;
    ts_pgarray a = {0};
    ts_pgarray_reset(&a, TS_OID_INT4);
    ts_pgarray_int4(&a, 1);
    ts_pgarray_int4(&a, -2);
    int len;
    const char *b = ts_pgarray_finish(&a, &len);
    assert_non_null(b);
    assert_int_equal(len, 20 + 2 * 8);
    assert_int_equal(get32(b), 1); /* ndim */
    assert_int_equal(get32(b + 8), TS_OID_INT4);
    assert_int_equal(get32(b + 12), 2); /* elements */
    assert_int_equal(get32(b + 16), 1); /* lower bound */
    assert_int_equal(get32(b + 20), 4);
    assert_int_equal(get32(b + 24), 1);
    assert_int_equal(get32(b + 28), 4);
    assert_int_equal(get32(b + 32), 0xfffffffeu);

    ts_pgarray_reset(&a, TS_OID_INT8);
    ts_pgarray_int8(&a, INT64_C(1) << 40);
    b = ts_pgarray_finish(&a, &len);
    assert_int_equal(len, 20 + 12);
    assert_int_equal(get32(b + 20), 8);
    assert_int_equal(get64(b + 24), INT64_C(1) << 40);
    ts_pgarray_free(&a);
}

static void text_and_nulls(void **state) {
    (void)state;
    ts_pgarray a = {0};
    ts_pgarray_reset(&a, TS_OID_TEXT);
    ts_pgarray_text(&a, "Ada \"quoted\", {braced}\\");
    ts_pgarray_text(&a, NULL);
    ts_pgarray_text(&a, "");
    int len;
    const char *b = ts_pgarray_finish(&a, &len);
    assert_non_null(b);
    assert_int_equal(get32(b + 4), 1); /* has NULLs */
    assert_int_equal(get32(b + 12), 3);
    size_t n = strlen("Ada \"quoted\", {braced}\\");
    assert_int_equal(get32(b + 20), n);
    assert_memory_equal(b + 24, "Ada \"quoted\", {braced}\\", n); /* as is, no escaping */
    assert_int_equal(get32(b + 24 + n), 0xffffffffu);             /* NULL */
    assert_int_equal(get32(b + 28 + n), 0);                       /* '' */
    assert_int_equal(len, (int)(32 + n));
    ts_pgarray_free(&a);
}

static void bytea_elements_are_raw_bytes_and_nulls(void **state) {
    (void)state;
    ts_pgarray a = {0};
    ts_pgarray_reset(&a, TS_OID_BYTEA);
    ts_pgarray_bytea(&a, "\x00\xff\x10", 3);
    ts_pgarray_bytea(&a, NULL, 0);
    int len;
    const char *b = ts_pgarray_finish(&a, &len);
    assert_non_null(b);
    assert_int_equal(get32(b + 4), 1);  /* has NULLs */
    assert_int_equal(get32(b + 8), 17); /* bytea */
    assert_int_equal(get32(b + 12), 2);
    assert_int_equal(get32(b + 20), 3);
    assert_memory_equal(b + 24, "\x00\xff\x10", 3);
    assert_int_equal(get32(b + 27), 0xffffffffu);
    assert_int_equal(len, 31);
    /* another element type in a bytea array fails it */
    ts_pgarray_text(&a, "x");
    assert_null(ts_pgarray_finish(&a, &len));
    ts_pgarray_free(&a);
}

static void uuids_and_timestamps(void **state) {
    (void)state;
    ts_pgarray a = {0};
    ts_pgarray_reset(&a, TS_OID_UUID);
    ts_pgarray_uuid(&a, "00112233-4455-6677-8899-AABBCCDDEEFF");
    ts_pgarray_null(&a);
    int len;
    const char *b = ts_pgarray_finish(&a, &len);
    assert_non_null(b);
    assert_int_equal(len, 20 + 20 + 4);
    assert_int_equal(get32(b + 20), 16);
    assert_memory_equal(b + 24, "\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff",
                        16);
    assert_int_equal(get32(b + 40), 0xffffffffu);

    /* microseconds since 2000-01-01T00:00:00Z */
    ts_pgarray_reset(&a, TS_OID_TIMESTAMPTZ);
    ts_pgarray_timestamptz_ms(&a, INT64_C(946684800000));
    ts_pgarray_timestamptz_ms(&a, 0);
    ts_pgarray_timestamptz_ms(&a, INT64_C(946684800001));
    b = ts_pgarray_finish(&a, &len);
    assert_non_null(b);
    assert_int_equal(get64(b + 24), 0);
    assert_int_equal(get64(b + 36), -INT64_C(946684800000000));
    assert_int_equal(get64(b + 48), 1000);
    ts_pgarray_free(&a);
}

static void a_wrong_value_fails_the_whole_array(void **state) {
    (void)state;
    ts_pgarray a = {0};
    int len;
    ts_pgarray_reset(&a, TS_OID_UUID);
    ts_pgarray_uuid(&a, "00112233-4455-6677-8899-aabbccddeeff");
    ts_pgarray_uuid(&a, "not a uuid");
    assert_null(ts_pgarray_finish(&a, &len));
    assert_int_equal(a.error, TS_PGARRAY_INVALID);

    ts_pgarray_reset(&a, TS_OID_UUID); /* a reset forgets the failure */
    assert_non_null(ts_pgarray_finish(&a, &len));
    ts_pgarray_int4(&a, 7); /* not of the array's type */
    assert_null(ts_pgarray_finish(&a, &len));
    assert_int_equal(a.error, TS_PGARRAY_INVALID);
    ts_pgarray_free(&a);
}

static void it_grows_past_its_first_buffer(void **state) {
    (void)state;
    ts_pgarray a = {0};
    ts_pgarray_reset(&a, TS_OID_INT8);
    for (int64_t i = 0; i < 10000; i++)
        ts_pgarray_int8(&a, i);
    int len;
    const char *b = ts_pgarray_finish(&a, &len);
    assert_non_null(b);
    assert_int_equal(len, 20 + 10000 * 12);
    assert_int_equal(get32(b + 12), 10000);
    assert_int_equal(get64(b + 20 + 9999 * 12 + 4), 9999);
    ts_pgarray_free(&a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(an_empty_array_has_no_dimension),
        cmocka_unit_test(integers_are_big_endian_with_their_lengths),
        cmocka_unit_test(text_and_nulls),
        cmocka_unit_test(uuids_and_timestamps),
        cmocka_unit_test(bytea_elements_are_raw_bytes_and_nulls),
        cmocka_unit_test(a_wrong_value_fails_the_whole_array),
        cmocka_unit_test(it_grows_past_its_first_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
