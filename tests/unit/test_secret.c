/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of ts_secret: the digest is SHA-256, tokens and keys have
 * their documented shapes and do not repeat. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "ts_secret.h"

static void the_digest_is_sha256(void **state) {
    (void)state;
    ts_digest d = ts_digest_of("abc"); /* FIPS 180-2's first example */
    char hex[2 * TS_SHA256_LEN + 1];
    ts_hex(d.bytes, TS_SHA256_LEN, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_true(d.present);
}

static void digests_compare_equal_only_when_both_are_present_and_alike(void **state) {
    (void)state;
    ts_digest a = ts_digest_of("token"), b = ts_digest_of("token"), c = ts_digest_of("tokem");
    ts_digest none = {0};
    assert_true(ts_digest_equal(&a, &b));
    assert_false(ts_digest_equal(&a, &c));
    assert_false(ts_digest_equal(&a, &none));
    assert_false(ts_digest_equal(&none, &none));
}

static void a_cancel_token_is_128_bits_of_lowercase_hex_and_never_repeats(void **state) {
    (void)state;
    char a[TS_TOKEN_LEN + 1], b[TS_TOKEN_LEN + 1];
    assert_int_equal(ts_new_cancel_token(a), 0);
    assert_int_equal(ts_new_cancel_token(b), 0);
    assert_int_equal(strlen(a), 32);
    assert_int_equal(strspn(a, "0123456789abcdef"), 32);
    assert_string_not_equal(a, b);
}

static void an_organizer_key_is_prefixed_and_256_bits(void **state) {
    (void)state;
    char k[TS_API_KEY_LEN + 1];
    assert_int_equal(ts_new_api_key(k), 0);
    assert_int_equal(strlen(k), TS_API_KEY_LEN);
    assert_memory_equal(k, "tsk_", 4);
    assert_int_equal(strspn(k + 4, "0123456789abcdef"), 64);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_digest_is_sha256),
        cmocka_unit_test(digests_compare_equal_only_when_both_are_present_and_alike),
        cmocka_unit_test(a_cancel_token_is_128_bits_of_lowercase_hex_and_never_repeats),
        cmocka_unit_test(an_organizer_key_is_prefixed_and_256_bits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
