/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of ts_codec: every message type round-trips, and input that
 * is truncated, corrupt, of an unknown schema or breaking a field's rules is
 * rejected with an error — never a crash (these also run under ASan/UBSan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ts_avro.h"
#include "ts_codec.h"

static int setup(void **state) {
    char err[256];
    *state = ts_codec_new(err, sizeof err);
    if (!*state)
        fprintf(stderr, "codec: %s\n", err);
    return *state ? 0 : -1;
}

static int teardown(void **state) {
    ts_codec_free(*state);
    return 0;
}

static ts_command sample(ts_command_type type) {
    ts_command c;
    memset(&c, 0, sizeof c);
    c.type = type;
    strcpy(c.command_id, "0b6f3a52-8e2d-4c1a-9f0e-7d6c5b4a3921");
    c.issued_at_ms = 1764034980123;
    strcpy(c.reply_topic, "turnstile.replies");
    c.reply_partition = 3;
    strcpy(c.event_id, "5a1f0c3e-2b4d-4e6f-8a9b-0c1d2e3f4a5b");
    switch (type) {
    case TS_CMD_CREATE_EVENT:
        strcpy(c.u.create.title, "Conférence ✓");
        c.u.create.has_description = true;
        strcpy(c.u.create.description, "A \"quoted\" description");
        c.u.create.starts_at_ms = 1893456000000;
        strcpy(c.u.create.location, "Lyon");
        c.u.create.capacity = 100000;
        break;
    case TS_CMD_REGISTER:
        strcpy(c.u.reg.name, "Ada Lovelace");
        strcpy(c.u.reg.email, "Ada@Example.org");
        c.u.reg.cancel_token_sha256.present = true;
        memset(c.u.reg.cancel_token_sha256.bytes, 0xab, TS_SHA256_LEN);
        break;
    case TS_CMD_CANCEL:
        strcpy(c.u.cancel.user_id, "7c9e6679-7425-40de-944b-e07fc1f90ae7");
        c.u.cancel.token_sha256.present = true;
        memset(c.u.cancel.token_sha256.bytes, 0xcd, TS_SHA256_LEN);
        break;
    }
    c.request_sha256.present = type != TS_CMD_CANCEL;
    if (c.request_sha256.present)
        for (int i = 0; i < TS_SHA256_LEN; i++)
            c.request_sha256.bytes[i] = (uint8_t)i;
    return c;
}

static size_t encode(ts_codec *codec, const ts_command *c, uint8_t *buf, size_t cap) {
    size_t len = 0;
    assert_int_equal(ts_codec_encode_command(codec, c, buf, cap, &len), TS_CODEC_OK);
    return len;
}

static void every_command_type_round_trips(void **state) {
    ts_command_type types[] = {TS_CMD_CREATE_EVENT, TS_CMD_REGISTER, TS_CMD_CANCEL};
    for (size_t i = 0; i < 3; i++) {
        ts_command in = sample(types[i]), out;
        uint8_t buf[TS_MESSAGE_BYTES_MAX];
        size_t len = encode(*state, &in, buf, sizeof buf);
        char err[256] = "";
        assert_int_equal(ts_codec_decode_command(*state, buf, len, &out, err, sizeof err),
                         TS_CODEC_OK);
        assert_memory_equal(&in, &out, sizeof in);
    }
}

static void a_command_without_reply_address_or_description_round_trips(void **state) {
    ts_command in = sample(TS_CMD_CREATE_EVENT), out;
    memset(in.reply_topic, 0, sizeof in.reply_topic);
    in.reply_partition = 0;
    in.u.create.has_description = false;
    memset(in.u.create.description, 0, sizeof in.u.create.description);
    uint8_t buf[TS_MESSAGE_BYTES_MAX];
    size_t len = encode(*state, &in, buf, sizeof buf);
    char err[256];
    assert_int_equal(ts_codec_decode_command(*state, buf, len, &out, err, sizeof err), TS_CODEC_OK);
    assert_memory_equal(&in, &out, sizeof in);
}

static void a_reply_round_trips_with_and_without_optional_fields(void **state) {
    ts_reply in, out;
    memset(&in, 0, sizeof in);
    strcpy(in.command_id, "0b6f3a52-8e2d-4c1a-9f0e-7d6c5b4a3921");
    strcpy(in.event_id, "5a1f0c3e-2b4d-4e6f-8a9b-0c1d2e3f4a5b");
    in.outcome = TS_OUT_REGISTERED;
    strcpy(in.user_id, "7c9e6679-7425-40de-944b-e07fc1f90ae7");
    in.applied_at_ms = 1764034980999;
    for (int round = 0; round < 2; round++) {
        uint8_t buf[TS_MESSAGE_BYTES_MAX];
        size_t len;
        char err[256];
        assert_int_equal(ts_codec_encode_reply(*state, &in, buf, sizeof buf, &len), TS_CODEC_OK);
        assert_int_equal(ts_codec_decode_reply(*state, buf, len, &out, err, sizeof err),
                         TS_CODEC_OK);
        assert_memory_equal(&in, &out, sizeof in);
        in.outcome = TS_OUT_EVENT_FULL;
        memset(in.user_id, 0, sizeof in.user_id);
        strcpy(in.message, "Event is full");
    }
}

static void uuids_are_normalised_to_lowercase(void **state) {
    ts_command in = sample(TS_CMD_REGISTER), out;
    strcpy(in.event_id, "5A1F0C3E-2B4D-4E6F-8A9B-0C1D2E3F4A5B");
    uint8_t buf[TS_MESSAGE_BYTES_MAX];
    size_t len = encode(*state, &in, buf, sizeof buf);
    char err[256];
    assert_int_equal(ts_codec_decode_command(*state, buf, len, &out, err, sizeof err), TS_CODEC_OK);
    assert_string_equal(out.event_id, "5a1f0c3e-2b4d-4e6f-8a9b-0c1d2e3f4a5b");
}

static void the_header_carries_the_schema_fingerprint(void **state) {
    ts_command in = sample(TS_CMD_CANCEL);
    uint8_t buf[TS_MESSAGE_BYTES_MAX];
    size_t len = encode(*state, &in, buf, sizeof buf);
    uint64_t fp;
    assert_int_equal(ts_avro_read_header(buf, len, &fp), 0);
    assert_true(fp == ts_codec_command_fingerprint(*state, TS_CMD_CANCEL));
    assert_true(fp != ts_codec_command_fingerprint(*state, TS_CMD_REGISTER));
    /* the value Apache Avro for Java gives (tests/vectors/fingerprints.txt) */
    assert_true(fp == 0xaae4bd7d162dc044ULL);
    /* and a reply's header carries the reply schema's */
    ts_reply r;
    memset(&r, 0, sizeof r);
    strcpy(r.command_id, in.command_id);
    strcpy(r.event_id, in.event_id);
    r.outcome = TS_OUT_CANCELLED;
    assert_int_equal(ts_codec_encode_reply(*state, &r, buf, sizeof buf, &len), TS_CODEC_OK);
    assert_int_equal(ts_avro_read_header(buf, len, &fp), 0);
    assert_true(fp == ts_codec_reply_fingerprint(*state));
    assert_true(fp == 0x1722c40a28cb319aULL);
}

static void every_truncation_is_rejected(void **state) {
    ts_command_type types[] = {TS_CMD_CREATE_EVENT, TS_CMD_REGISTER, TS_CMD_CANCEL};
    for (size_t t = 0; t < 3; t++) {
        ts_command in = sample(types[t]), out;
        uint8_t buf[TS_MESSAGE_BYTES_MAX];
        size_t len = encode(*state, &in, buf, sizeof buf);
        for (size_t cut = 0; cut < len; cut++) {
            /* a copy of exactly `cut` bytes, so ASan sees any over-read */
            uint8_t *part = malloc(cut ? cut : 1);
            memcpy(part, buf, cut);
            char err[256] = "";
            ts_codec_status st = ts_codec_decode_command(*state, part, cut, &out, err, sizeof err);
            assert_int_not_equal(st, TS_CODEC_OK);
            assert_true(strlen(err) > 0);
            assert_int_equal(st, cut < TS_AVRO_HEADER_LEN ? TS_CODEC_NO_HEADER : TS_CODEC_CORRUPT);
            free(part);
        }
    }
}

static void trailing_bytes_are_rejected(void **state) {
    ts_command in = sample(TS_CMD_REGISTER), out;
    uint8_t buf[TS_MESSAGE_BYTES_MAX];
    size_t len = encode(*state, &in, buf, sizeof buf);
    buf[len] = 0;
    char err[256];
    assert_int_equal(ts_codec_decode_command(*state, buf, len + 1, &out, err, sizeof err),
                     TS_CODEC_CORRUPT);
}

static void an_unknown_fingerprint_is_rejected(void **state) {
    ts_command in = sample(TS_CMD_REGISTER), out;
    uint8_t buf[TS_MESSAGE_BYTES_MAX];
    size_t len = encode(*state, &in, buf, sizeof buf);
    buf[5] ^= 0x40;
    char err[256];
    assert_int_equal(ts_codec_decode_command(*state, buf, len, &out, err, sizeof err),
                     TS_CODEC_UNKNOWN_SCHEMA);
    assert_non_null(strstr(err, "fingerprint"));
    /* a reply is not a command, and a command is not a reply */
    ts_reply r;
    assert_int_equal(ts_codec_decode_reply(*state, buf, len, &r, err, sizeof err),
                     TS_CODEC_UNKNOWN_SCHEMA);
}

static void garbage_without_magic_is_rejected(void **state) {
    const char *text = "{\"title\": \"not avro\"}";
    ts_command out;
    char err[256];
    assert_int_equal(ts_codec_decode_command(*state, text, strlen(text), &out, err, sizeof err),
                     TS_CODEC_NO_HEADER);
    assert_int_equal(ts_codec_decode_command(*state, NULL, 0, &out, err, sizeof err),
                     TS_CODEC_NO_HEADER);
}

/* Writes Avro binary by hand, to build messages the encoder refuses to. */
typedef struct raw {
    uint8_t b[8192];
    size_t n;
} raw;

static void raw_long(raw *r, int64_t v) {
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    while (z & ~0x7fULL) {
        r->b[r->n++] = (uint8_t)((z & 0x7f) | 0x80);
        z >>= 7;
    }
    r->b[r->n++] = (uint8_t)z;
}

static void raw_bytes(raw *r, const void *p, size_t len) {
    raw_long(r, (int64_t)len);
    memcpy(r->b + r->n, p, len);
    r->n += len;
}

static void raw_string(raw *r, const char *s) {
    raw_bytes(r, s, strlen(s));
}

/* A Register command whose name is `name` (name_len bytes). */
static raw register_with_name(ts_codec *codec, const char *name, size_t name_len,
                              const char *event_id) {
    raw r = {.n = 0};
    ts_avro_write_header(r.b, ts_codec_command_fingerprint(codec, TS_CMD_REGISTER));
    r.n = TS_AVRO_HEADER_LEN;
    raw_string(&r, "0b6f3a52-8e2d-4c1a-9f0e-7d6c5b4a3921");
    raw_long(&r, 1764034980123);
    raw_long(&r, 0); /* reply_to: null */
    raw_string(&r, event_id);
    raw_bytes(&r, name, name_len);
    raw_string(&r, "a@b.org");
    raw_long(&r, 0); /* request_sha256: null */
    raw_long(&r, 0); /* cancel_token_sha256: null */
    return r;
}

/* The first version of Register (register.v1.avsc, before the digests):
 * what producers wrote before the schema grew. */
static void a_message_of_an_older_schema_version_still_decodes(void **state) {
    raw r = {.n = 0};
    ts_avro_write_header(r.b, 0x23151c6ba2b10e96ULL); /* Apache Avro for Java's value */
    r.n = TS_AVRO_HEADER_LEN;
    raw_string(&r, "0b6f3a52-8e2d-4c1a-9f0e-7d6c5b4a3921");
    raw_long(&r, 1764034980123);
    raw_long(&r, 0); /* reply_to: null */
    raw_string(&r, "5a1f0c3e-2b4d-4e6f-8a9b-0c1d2e3f4a5b");
    raw_string(&r, "Ada");
    raw_string(&r, "a@b.org");
    ts_command out;
    char err[256];
    assert_int_equal(ts_codec_decode_command(*state, r.b, r.n, &out, err, sizeof err), TS_CODEC_OK);
    assert_int_equal(out.type, TS_CMD_REGISTER);
    assert_string_equal(out.u.reg.email, "a@b.org");
    /* the fields added since read as their default */
    assert_false(out.request_sha256.present);
    assert_false(out.u.reg.cancel_token_sha256.present);
    /* and the current version's body without them is too short */
    ts_avro_write_header(r.b, ts_codec_command_fingerprint(*state, TS_CMD_REGISTER));
    assert_int_equal(ts_codec_decode_command(*state, r.b, r.n, &out, err, sizeof err),
                     TS_CODEC_CORRUPT);
}

static void a_digest_that_is_not_32_bytes_is_invalid(void **state) {
    raw r = register_with_name(*state, "Ada", 3, "5a1f0c3e-2b4d-4e6f-8a9b-0c1d2e3f4a5b");
    r.n -= 2;        /* drop the two nulls */
    raw_long(&r, 1); /* request_sha256: bytes */
    raw_bytes(&r, "0123456789abcdef", 16);
    raw_long(&r, 0);
    ts_command out;
    char err[256];
    assert_int_equal(ts_codec_decode_command(*state, r.b, r.n, &out, err, sizeof err),
                     TS_CODEC_INVALID);
    assert_non_null(strstr(err, "request_sha256"));
}

static void an_overlong_field_is_invalid(void **state) {
    char name[TS_NAME_MAX + 2];
    memset(name, 'n', sizeof name);
    raw r = register_with_name(*state, name, sizeof name, "5a1f0c3e-2b4d-4e6f-8a9b-0c1d2e3f4a5b");
    ts_command out;
    char err[256];
    assert_int_equal(ts_codec_decode_command(*state, r.b, r.n, &out, err, sizeof err),
                     TS_CODEC_INVALID);
    assert_non_null(strstr(err, "name"));
    /* exactly the limit is fine */
    r = register_with_name(*state, name, TS_NAME_MAX, "5a1f0c3e-2b4d-4e6f-8a9b-0c1d2e3f4a5b");
    assert_int_equal(ts_codec_decode_command(*state, r.b, r.n, &out, err, sizeof err), TS_CODEC_OK);
    assert_int_equal(strlen(out.u.reg.name), TS_NAME_MAX);
}

static void a_nul_byte_inside_a_string_is_invalid(void **state) {
    raw r = register_with_name(*state, "Ada\0Eve", 7, "5a1f0c3e-2b4d-4e6f-8a9b-0c1d2e3f4a5b");
    ts_command out;
    char err[256];
    assert_int_equal(ts_codec_decode_command(*state, r.b, r.n, &out, err, sizeof err),
                     TS_CODEC_INVALID);
    assert_non_null(strstr(err, "NUL"));
}

static void a_malformed_uuid_is_invalid(void **state) {
    raw r = register_with_name(*state, "Ada", 3, "not-a-uuid");
    ts_command out;
    char err[256];
    assert_int_equal(ts_codec_decode_command(*state, r.b, r.n, &out, err, sizeof err),
                     TS_CODEC_INVALID);
    assert_non_null(strstr(err, "event_id"));
}

static void absurd_lengths_and_union_branches_are_corrupt(void **state) {
    ts_command out;
    char err[256];
    /* a string that claims 2^62 bytes */
    raw r = {.n = TS_AVRO_HEADER_LEN};
    ts_avro_write_header(r.b, ts_codec_command_fingerprint(*state, TS_CMD_CANCEL));
    raw_long(&r, (int64_t)1 << 62);
    assert_int_equal(ts_codec_decode_command(*state, r.b, r.n, &out, err, sizeof err),
                     TS_CODEC_CORRUPT);
    /* a negative length */
    r.n = TS_AVRO_HEADER_LEN;
    raw_long(&r, -5);
    assert_int_equal(ts_codec_decode_command(*state, r.b, r.n, &out, err, sizeof err),
                     TS_CODEC_CORRUPT);
    /* a union branch that does not exist */
    r.n = TS_AVRO_HEADER_LEN;
    raw_string(&r, "0b6f3a52-8e2d-4c1a-9f0e-7d6c5b4a3921");
    raw_long(&r, 1);
    raw_long(&r, 7);
    assert_int_equal(ts_codec_decode_command(*state, r.b, r.n, &out, err, sizeof err),
                     TS_CODEC_CORRUPT);
    /* a varint that never ends */
    r.n = TS_AVRO_HEADER_LEN;
    memset(r.b + r.n, 0xff, 16);
    r.n += 16;
    assert_int_equal(ts_codec_decode_command(*state, r.b, r.n, &out, err, sizeof err),
                     TS_CODEC_CORRUPT);
}

/* Random corruption of valid messages: whatever the bytes, decoding either
 * succeeds or returns an error; the sanitizers watch the rest. */
static void random_corruption_never_crashes(void **state) {
    ts_command_type types[] = {TS_CMD_CREATE_EVENT, TS_CMD_REGISTER, TS_CMD_CANCEL};
    uint8_t buf[TS_MESSAGE_BYTES_MAX];
    unsigned seed = 12345;
    int rejected = 0;
    for (int iter = 0; iter < 20000; iter++) {
        ts_command in = sample(types[iter % 3]), out;
        size_t len = encode(*state, &in, buf, sizeof buf);
        int flips = 1 + (int)(rand_r(&seed) % 4);
        for (int f = 0; f < flips; f++) {
            size_t at = TS_AVRO_HEADER_LEN + rand_r(&seed) % (len - TS_AVRO_HEADER_LEN);
            buf[at] = (uint8_t)rand_r(&seed);
        }
        size_t cut = rand_r(&seed) % 8 == 0 ? rand_r(&seed) % len : len;
        uint8_t *copy = malloc(cut ? cut : 1);
        memcpy(copy, buf, cut);
        char err[256];
        ts_codec_status st = ts_codec_decode_command(*state, copy, cut, &out, err, sizeof err);
        assert_true(st == TS_CODEC_OK || st == TS_CODEC_CORRUPT || st == TS_CODEC_INVALID ||
                    st == TS_CODEC_NO_HEADER);
        rejected += st != TS_CODEC_OK;
        free(copy);
    }
    assert_true(rejected > 1000);
}

static void a_buffer_too_small_is_reported(void **state) {
    ts_command in = sample(TS_CMD_CREATE_EVENT);
    uint8_t buf[64];
    size_t len;
    assert_int_equal(ts_codec_encode_command(*state, &in, buf, sizeof buf, &len), TS_CODEC_TOO_BIG);
    assert_int_equal(ts_codec_encode_command(*state, &in, buf, 4, &len), TS_CODEC_TOO_BIG);
}

static void the_largest_command_fits_the_message_limit(void **state) {
    ts_command in = sample(TS_CMD_CREATE_EVENT);
    memset(in.u.create.title, 't', TS_TITLE_MAX);
    memset(in.u.create.description, 'd', TS_DESCRIPTION_MAX);
    memset(in.u.create.location, 'l', TS_LOCATION_MAX);
    memset(in.reply_topic, 'r', TS_TOPIC_MAX);
    uint8_t buf[TS_MESSAGE_BYTES_MAX];
    size_t len = encode(*state, &in, buf, sizeof buf);
    assert_true(len <= TS_MESSAGE_BYTES_MAX);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_command_type_round_trips),
        cmocka_unit_test(a_command_without_reply_address_or_description_round_trips),
        cmocka_unit_test(a_reply_round_trips_with_and_without_optional_fields),
        cmocka_unit_test(uuids_are_normalised_to_lowercase),
        cmocka_unit_test(the_header_carries_the_schema_fingerprint),
        cmocka_unit_test(every_truncation_is_rejected),
        cmocka_unit_test(trailing_bytes_are_rejected),
        cmocka_unit_test(an_unknown_fingerprint_is_rejected),
        cmocka_unit_test(garbage_without_magic_is_rejected),
        cmocka_unit_test(an_overlong_field_is_invalid),
        cmocka_unit_test(a_nul_byte_inside_a_string_is_invalid),
        cmocka_unit_test(a_malformed_uuid_is_invalid),
        cmocka_unit_test(a_message_of_an_older_schema_version_still_decodes),
        cmocka_unit_test(a_digest_that_is_not_32_bytes_is_invalid),
        cmocka_unit_test(absurd_lengths_and_union_branches_are_corrupt),
        cmocka_unit_test(random_corruption_never_crashes),
        cmocka_unit_test(a_buffer_too_small_is_reported),
        cmocka_unit_test(the_largest_command_fits_the_message_limit),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
