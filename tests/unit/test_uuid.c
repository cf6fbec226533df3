/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of ts_uuid. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <uuid/uuid.h>

#include "ts_uuid.h"

static void new_uuids_are_version_4_and_distinct(void **state) {
    (void)state;
    char a[TS_UUID_LEN + 1], b[TS_UUID_LEN + 1], n[TS_UUID_LEN + 1];
    ts_uuid_new(a);
    ts_uuid_new(b);
    assert_string_not_equal(a, b);
    assert_int_equal(a[14], '4');
    assert_int_equal(ts_uuid_normalize(a, n), 0);
    assert_string_equal(a, n);
}

static void normalize_lowercases_and_rejects_non_uuids(void **state) {
    (void)state;
    char out[TS_UUID_LEN + 1];
    assert_int_equal(ts_uuid_normalize("5A1F0C3E-2B4D-4E6F-8A9B-0C1D2E3F4A5B", out), 0);
    assert_string_equal(out, "5a1f0c3e-2b4d-4e6f-8a9b-0c1d2e3f4a5b");
    const char *bad[] = {"",
                         "abc",
                         "5a1f0c3e2b4d4e6f8a9b0c1d2e3f4a5b",
                         "5a1f0c3e-2b4d-4e6f-8a9b-0c1d2e3f4a5",
                         "5a1f0c3e-2b4d-4e6f-8a9b-0c1d2e3f4a5bb",
                         "zzzzzzzz-2b4d-4e6f-8a9b-0c1d2e3f4a5b",
                         "{5a1f0c3e-2b4d-4e6f-8a9b-0c1d2e3f4a}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(ts_uuid_normalize(bad[i], out), -1);
}

static void an_email_has_one_user_id_whatever_its_case(void **state) {
    (void)state;
    char a[TS_UUID_LEN + 1], b[TS_UUID_LEN + 1], c[TS_UUID_LEN + 1];
    ts_uuid_for_email("Ada@Example.org", a);
    ts_uuid_for_email("ada@example.ORG", b);
    ts_uuid_for_email("eve@example.org", c);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_int_equal(a[14], '5'); /* name-based, SHA-1 */
}

static void v5_matches_the_rfc_example(void **state) {
    (void)state;
    /* RFC 4122 / 9562 namespace DNS, name "www.example.com" */
    char out[TS_UUID_LEN + 1];
    ts_uuid_v5("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "www.example.com", out);
    assert_string_equal(out, "2ed6657d-e927-568b-95e1-2665a8aea6a2");
}

static void parse_agrees_with_libuuid(void **state) {
    (void)state;
    for (int i = 0; i < 10000; i++) {
        uuid_t u, mine, theirs;
        char text[TS_UUID_LEN + 1];
        uuid_generate_random(u);
        if (i % 2)
            uuid_unparse_upper(u, text);
        else
            uuid_unparse_lower(u, text);
        assert_int_equal(ts_uuid_parse(text, mine), 0);
        assert_int_equal(uuid_parse(text, theirs), 0);
        assert_memory_equal(mine, theirs, 16);
        assert_memory_equal(mine, u, 16);
    }
}

static void parse_rejects_what_is_not_a_uuid(void **state) {
    (void)state;
    const char good[] = "0f8e2c1a-4b3d-4e5f-8a9b-0c1d2e3f4a5b";
    unsigned char out[16];
    assert_int_equal(ts_uuid_parse(good, out), 0);
    /* every position, with a character that does not belong there */
    for (size_t i = 0; i < TS_UUID_LEN; i++) {
        char bad[sizeof good];
        memcpy(bad, good, sizeof good);
        bad[i] = good[i] == '-' ? '0' : (i % 2 ? 'g' : '-');
        assert_int_equal(ts_uuid_parse(bad, out), -1);
        bad[i] = '\0'; /* and cut short there */
        assert_int_equal(ts_uuid_parse(bad, out), -1);
    }
    assert_int_equal(ts_uuid_parse("0f8e2c1a-4b3d-4e5f-8a9b-0c1d2e3f4a5b0", out), -1);
    assert_int_equal(ts_uuid_parse("{0f8e2c1a-4b3d-4e5f-8a9b-0c1d2e3f4a5}", out), -1);
    assert_int_equal(ts_uuid_parse("", out), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(new_uuids_are_version_4_and_distinct),
        cmocka_unit_test(normalize_lowercases_and_rejects_non_uuids),
        cmocka_unit_test(an_email_has_one_user_id_whatever_its_case),
        cmocka_unit_test(v5_matches_the_rfc_example),
        cmocka_unit_test(parse_agrees_with_libuuid),
        cmocka_unit_test(parse_rejects_what_is_not_a_uuid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
