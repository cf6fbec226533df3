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
#include <avro.h>
#include <cmocka.h>

#include "ts_avro.h"
#include "ts_codec.h"
#include "ts_embedded.h"

#define EVENT_ID "5a1f0c3e-2b4d-4e6f-8a9b-0c1d2e3f4a5b"
#define COMMAND_ID "0b6f3a52-8e2d-4c1a-9f0e-7d6c5b4a3921"
#define USER_ID "7c9e6679-7425-40de-944b-e07fc1f90ae7"
#define HOLD_ID "1e0d2c3b-4a59-4687-9a8b-7c6d5e4f3a21"

/* Every command type, for the tests that go through them all. */
static const ts_command_type all_types[] = {
    TS_CMD_CREATE_EVENT, TS_CMD_REGISTER,     TS_CMD_CANCEL,
    TS_CMD_PLACE_HOLD,   TS_CMD_CONFIRM_HOLD, TS_CMD_RELEASE_HOLD,
    TS_CMD_EXPIRE_HOLD,  TS_CMD_UPDATE_EVENT, TS_CMD_CANCEL_EVENT,
};
#define N_TYPES (sizeof all_types / sizeof all_types[0])

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
        c.u.reg.waitlist = true;
        break;
    case TS_CMD_CANCEL:
        strcpy(c.u.cancel.user_id, USER_ID);
        c.u.cancel.token_sha256.present = true;
        memset(c.u.cancel.token_sha256.bytes, 0xcd, TS_SHA256_LEN);
        break;
    case TS_CMD_PLACE_HOLD:
        strcpy(c.u.hold.name, "Grace Hopper");
        strcpy(c.u.hold.email, "grace@example.org");
        c.u.hold.ttl_ms = 600000;
        break;
    case TS_CMD_CONFIRM_HOLD:
        strcpy(c.u.hold_ref.hold_id, HOLD_ID);
        c.u.hold_ref.cancel_token_sha256.present = true;
        memset(c.u.hold_ref.cancel_token_sha256.bytes, 0xef, TS_SHA256_LEN);
        break;
    case TS_CMD_RELEASE_HOLD: strcpy(c.u.hold_ref.hold_id, HOLD_ID); break;
    case TS_CMD_EXPIRE_HOLD:
        strcpy(c.u.hold_ref.hold_id, HOLD_ID);
        memset(c.reply_topic, 0, sizeof c.reply_topic); /* the sweeper wants no reply */
        c.reply_partition = 0;
        break;
    case TS_CMD_UPDATE_EVENT:
        c.u.update.has_title = true;
        strcpy(c.u.update.title, "Conférence, moved");
        c.u.update.has_description = true; /* "": cleared */
        c.u.update.has_starts_at = true;
        c.u.update.starts_at_ms = 1893459600000;
        c.u.update.has_capacity = true;
        c.u.update.capacity = 250;
        break;
    case TS_CMD_CANCEL_EVENT:
    case TS_CMD_COUNT_: break;
    }
    /* ExpireHold's schema has no request digest */
    c.request_sha256.present = type != TS_CMD_CANCEL && type != TS_CMD_EXPIRE_HOLD;
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
    for (size_t i = 0; i < N_TYPES; i++) {
        ts_command in = sample(all_types[i]), out;
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
    assert_true(fp == 0x6785cce5a869481aULL);
}

/* Each command type is written with its own schema: the fingerprints
 * Apache Avro for Java gives (tests/vectors/fingerprints.txt). */
static void each_command_type_has_its_own_schema(void **state) {
    static const struct {
        ts_command_type type;
        uint64_t fp;
    } want[] = {
        {TS_CMD_CREATE_EVENT, 0x5e76c402ce847f78ULL}, {TS_CMD_REGISTER, 0xa198fc8733c34c64ULL},
        {TS_CMD_CANCEL, 0xaae4bd7d162dc044ULL},       {TS_CMD_PLACE_HOLD, 0xd61d0c43e8a47f25ULL},
        {TS_CMD_CONFIRM_HOLD, 0x1f7edf42049c76c2ULL}, {TS_CMD_RELEASE_HOLD, 0x2360e0bd007ee3d9ULL},
        {TS_CMD_EXPIRE_HOLD, 0x0c2f1407f27233b2ULL},  {TS_CMD_UPDATE_EVENT, 0x41e03ebb9e09bd87ULL},
        {TS_CMD_CANCEL_EVENT, 0x8c55da1a036508d3ULL},
    };
    assert_int_equal(sizeof want / sizeof want[0], N_TYPES);
    for (size_t i = 0; i < N_TYPES; i++) {
        ts_command in = sample(want[i].type);
        uint8_t buf[TS_MESSAGE_BYTES_MAX];
        size_t len = encode(*state, &in, buf, sizeof buf);
        uint64_t fp;
        assert_int_equal(ts_avro_read_header(buf, len, &fp), 0);
        assert_true(fp == want[i].fp);
        assert_true(ts_codec_command_fingerprint(*state, want[i].type) == want[i].fp);
    }
    assert_true(ts_codec_command_fingerprint(*state, TS_CMD_COUNT_) == 0);
}

static void every_truncation_is_rejected(void **state) {
    for (size_t t = 0; t < N_TYPES; t++) {
        ts_command in = sample(all_types[t]), out;
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
    raw_long(&r, 0);   /* request_sha256: null */
    raw_long(&r, 0);   /* cancel_token_sha256: null */
    r.b[r.n++] = 0x00; /* waitlist: false */
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
    r.n -= 3;        /* drop the two nulls and the waitlist */
    raw_long(&r, 1); /* request_sha256: bytes */
    raw_bytes(&r, "0123456789abcdef", 16);
    raw_long(&r, 0);
    r.b[r.n++] = 0x00;
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
    uint8_t buf[TS_MESSAGE_BYTES_MAX];
    unsigned seed = 12345;
    int rejected = 0;
    for (int iter = 0; iter < 30000; iter++) {
        ts_command in = sample(all_types[(size_t)iter % N_TYPES]), out;
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

/* Register as producers wrote it before the waitlist (register.v2.avsc):
 * it still decodes, as a registration that is not waitlisted. */
static void a_register_without_the_waitlist_field_is_not_waitlisted(void **state) {
    raw r = register_with_name(*state, "Ada", 3, EVENT_ID);
    r.n -= 1; /* no waitlist */
    ts_avro_write_header(r.b, 0x54cadd850b4534f8ULL);
    ts_command out;
    char err[256];
    assert_int_equal(ts_codec_decode_command(*state, r.b, r.n, &out, err, sizeof err), TS_CODEC_OK);
    assert_int_equal(out.type, TS_CMD_REGISTER);
    assert_string_equal(out.u.reg.name, "Ada");
    assert_false(out.u.reg.waitlist);
    /* and the current version with waitlist = true */
    r = register_with_name(*state, "Ada", 3, EVENT_ID);
    r.b[r.n - 1] = 0x01;
    assert_int_equal(ts_codec_decode_command(*state, r.b, r.n, &out, err, sizeof err), TS_CODEC_OK);
    assert_true(out.u.reg.waitlist);
}

static ts_reply sample_reply(ts_outcome outcome) {
    ts_reply r;
    memset(&r, 0, sizeof r);
    strcpy(r.command_id, COMMAND_ID);
    strcpy(r.event_id, EVENT_ID);
    r.outcome = outcome;
    r.applied_at_ms = 1764034980999;
    return r;
}

static void a_reply_carries_position_hold_and_expiry(void **state) {
    ts_reply in[3], out;
    in[0] = sample_reply(TS_OUT_WAITLISTED);
    strcpy(in[0].user_id, USER_ID);
    in[0].position = 17;
    in[1] = sample_reply(TS_OUT_HELD);
    strcpy(in[1].user_id, USER_ID);
    strcpy(in[1].hold_id, COMMAND_ID);
    in[1].expires_at_ms = 1764035580123;
    in[2] = sample_reply(TS_OUT_CAPACITY_BELOW_TAKEN);
    strcpy(in[2].message, ts_outcome_message(TS_OUT_CAPACITY_BELOW_TAKEN));
    for (size_t i = 0; i < 3; i++) {
        uint8_t buf[TS_MESSAGE_BYTES_MAX];
        size_t len;
        char err[256];
        assert_int_equal(ts_codec_encode_reply(*state, &in[i], buf, sizeof buf, &len), TS_CODEC_OK);
        assert_int_equal(ts_codec_decode_reply(*state, buf, len, &out, err, sizeof err),
                         TS_CODEC_OK);
        assert_memory_equal(&in[i], &out, sizeof out);
    }
    /* a negative position is no place in line */
    in[0].position = -1;
    uint8_t buf[TS_MESSAGE_BYTES_MAX];
    size_t len;
    assert_int_equal(ts_codec_encode_reply(*state, &in[0], buf, sizeof buf, &len),
                     TS_CODEC_INVALID);
}

/* The commit position goes through as it is, from 0 (not known) to the
 * largest an Avro long holds; beyond that (past any WAL there is) it
 * cannot be written, and a negative one read is refused. */
static void a_reply_carries_its_commit_position(void **state) {
    const uint64_t lsns[] = {0, 1, 0x16B3748, UINT64_C(0x1A0000000B), INT64_MAX};
    for (size_t i = 0; i < sizeof lsns / sizeof lsns[0]; i++) {
        ts_reply in = sample_reply(TS_OUT_REGISTERED), out;
        strcpy(in.user_id, USER_ID);
        in.commit_lsn = lsns[i];
        uint8_t buf[TS_MESSAGE_BYTES_MAX];
        size_t len;
        char err[256];
        assert_int_equal(ts_codec_encode_reply(*state, &in, buf, sizeof buf, &len), TS_CODEC_OK);
        memset(&out, 0x5a, sizeof out);
        assert_int_equal(ts_codec_decode_reply(*state, buf, len, &out, err, sizeof err),
                         TS_CODEC_OK);
        assert_memory_equal(&in, &out, sizeof out);
    }
    ts_reply in = sample_reply(TS_OUT_REGISTERED);
    in.commit_lsn = (uint64_t)INT64_MAX + 1;
    uint8_t buf[TS_MESSAGE_BYTES_MAX];
    size_t len;
    assert_int_equal(ts_codec_encode_reply(*state, &in, buf, sizeof buf, &len), TS_CODEC_INVALID);
    in.commit_lsn = UINT64_MAX;
    assert_int_equal(ts_codec_encode_reply(*state, &in, buf, sizeof buf, &len), TS_CODEC_INVALID);
}

/* The reply's first fields, up to applied_at, by hand; the versions differ
 * only in what follows and in the outcomes they know. */
static raw reply_start(uint64_t fp, int outcome) {
    raw r = {.n = TS_AVRO_HEADER_LEN};
    ts_avro_write_header(r.b, fp);
    raw_string(&r, COMMAND_ID);
    raw_string(&r, EVENT_ID);
    raw_long(&r, outcome);
    raw_long(&r, 1); /* user_id */
    raw_string(&r, USER_ID);
    raw_long(&r, 0); /* message: null */
    raw_long(&r, 1764034980999);
    return r;
}

/* What workers of before wrote (reply.v1.avsc, reply.v2.avsc,
 * reply.v3.avsc) still decodes, the fields added since reading as none. */
static void replies_of_older_versions_still_decode(void **state) {
    const struct {
        uint64_t fp;
        ts_outcome outcome;
        bool v3; /* with position, hold_id and expires_at (null here) */
    } older[] = {
        {0x65596c1c4ab133feULL, TS_OUT_REGISTERED, false},
        {0x1722c40a28cb319aULL, TS_OUT_IDEMPOTENCY_KEY_REUSED, false},
        {0x53a5f117ee1ae0e4ULL, TS_OUT_EVENT_CANCELLED, true},
    };
    for (size_t i = 0; i < sizeof older / sizeof older[0]; i++) {
        raw r = reply_start(older[i].fp, older[i].outcome);
        if (older[i].v3) {
            raw_long(&r, 0); /* position: null */
            raw_long(&r, 0); /* hold_id: null */
            raw_long(&r, 0); /* expires_at: null */
        }
        ts_reply out;
        memset(&out, 0x5a, sizeof out);
        char err[256];
        assert_int_equal(ts_codec_decode_reply(*state, r.b, r.n, &out, err, sizeof err),
                         TS_CODEC_OK);
        assert_int_equal(out.outcome, older[i].outcome);
        assert_string_equal(out.user_id, USER_ID);
        assert_int_equal(out.applied_at_ms, 1764034980999);
        assert_int_equal(out.position, 0);
        assert_string_equal(out.hold_id, "");
        assert_int_equal(out.expires_at_ms, 0);
        assert_true(out.commit_lsn == 0); /* not known */
    }
    /* an outcome v2 did not have is corrupt in a v2 reply */
    raw r = reply_start(0x1722c40a28cb319aULL, TS_OUT_WAITLISTED);
    ts_reply out;
    char err[256];
    assert_int_equal(ts_codec_decode_reply(*state, r.b, r.n, &out, err, sizeof err),
                     TS_CODEC_CORRUPT);
    /* the current version: a position of 0 is none, so it is refused */
    r = reply_start(ts_codec_reply_fingerprint(*state), TS_OUT_WAITLISTED);
    raw_long(&r, 1); /* position */
    raw_long(&r, 0);
    raw_long(&r, 0); /* hold_id: null */
    raw_long(&r, 0); /* expires_at: null */
    raw_long(&r, 0); /* commit_lsn */
    assert_int_equal(ts_codec_decode_reply(*state, r.b, r.n, &out, err, sizeof err),
                     TS_CODEC_INVALID);
    assert_non_null(strstr(err, "position"));
    /* and a negative commit position is none either */
    r = reply_start(ts_codec_reply_fingerprint(*state), TS_OUT_REGISTERED);
    raw_long(&r, 0);  /* position: null */
    raw_long(&r, 0);  /* hold_id: null */
    raw_long(&r, 0);  /* expires_at: null */
    raw_long(&r, -5); /* commit_lsn */
    assert_int_equal(ts_codec_decode_reply(*state, r.b, r.n, &out, err, sizeof err),
                     TS_CODEC_INVALID);
    assert_non_null(strstr(err, "commit_lsn"));
}

static ts_codec_status decode_sample(ts_codec *codec, const ts_command *in, char *err,
                                     size_t errlen) {
    uint8_t buf[TS_MESSAGE_BYTES_MAX];
    size_t len = encode(codec, in, buf, sizeof buf);
    ts_command out;
    return ts_codec_decode_command(codec, buf, len, &out, err, errlen);
}

static void a_hold_ttl_outside_its_bounds_is_invalid(void **state) {
    const struct {
        int64_t ttl_ms;
        ts_codec_status want;
    } cases[] = {
        {TS_HOLD_TTL_MIN_MS, TS_CODEC_OK},
        {TS_HOLD_TTL_MAX_MS, TS_CODEC_OK},
        {TS_HOLD_TTL_MIN_MS - 1, TS_CODEC_INVALID},
        {TS_HOLD_TTL_MAX_MS + 1, TS_CODEC_INVALID},
        {0, TS_CODEC_INVALID},
        {-600000, TS_CODEC_INVALID},
        {INT64_MAX, TS_CODEC_INVALID},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ts_command in = sample(TS_CMD_PLACE_HOLD);
        in.u.hold.ttl_ms = cases[i].ttl_ms;
        char err[256] = "";
        assert_int_equal(decode_sample(*state, &in, err, sizeof err), cases[i].want);
        if (cases[i].want != TS_CODEC_OK)
            assert_non_null(strstr(err, "ttl_ms"));
    }
}

static void an_update_must_change_something_within_the_rules(void **state) {
    char err[256];
    /* nothing to change */
    ts_command in = sample(TS_CMD_UPDATE_EVENT);
    memset(&in.u.update, 0, sizeof in.u.update);
    assert_int_equal(decode_sample(*state, &in, err, sizeof err), TS_CODEC_INVALID);
    assert_non_null(strstr(err, "update"));
    /* any one field is enough; an empty description clears it */
    for (int field = 0; field < 5; field++) {
        memset(&in.u.update, 0, sizeof in.u.update);
        in.u.update.has_title = field == 0;
        strcpy(in.u.update.title, field == 0 ? "New title" : "");
        in.u.update.has_description = field == 1;
        in.u.update.has_location = field == 2;
        strcpy(in.u.update.location, field == 2 ? "Nantes" : "");
        in.u.update.has_starts_at = field == 3;
        in.u.update.has_capacity = field == 4;
        in.u.update.capacity = field == 4 ? TS_CAPACITY_MAX : 0;
        uint8_t buf[TS_MESSAGE_BYTES_MAX];
        size_t len = encode(*state, &in, buf, sizeof buf);
        ts_command out;
        assert_int_equal(ts_codec_decode_command(*state, buf, len, &out, err, sizeof err),
                         TS_CODEC_OK);
        assert_memory_equal(&in, &out, sizeof in);
    }
    /* an empty title or location, a capacity out of range */
    const struct {
        const char *field;
        bool title, location;
        int64_t capacity;
    } bad[] = {
        {"title", true, false, 1},
        {"location", false, true, 1},
        {"capacity", false, false, 0},
        {"capacity", false, false, -3},
        {"capacity", false, false, TS_CAPACITY_MAX + 1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&in.u.update, 0, sizeof in.u.update);
        in.u.update.has_title = bad[i].title;
        in.u.update.has_location = bad[i].location;
        in.u.update.has_capacity = true;
        in.u.update.capacity = bad[i].capacity;
        assert_int_equal(decode_sample(*state, &in, err, sizeof err), TS_CODEC_INVALID);
        assert_non_null(strstr(err, bad[i].field));
    }
    /* a title longer than the limit */
    memset(&in.u.update, 0, sizeof in.u.update);
    in.u.update.has_title = true;
    memset(in.u.update.title, 't', TS_TITLE_MAX);
    assert_int_equal(decode_sample(*state, &in, err, sizeof err), TS_CODEC_OK);
    in.u.update.title[TS_TITLE_MAX] = 't'; /* runs on into description, all NULs */
    assert_int_equal(decode_sample(*state, &in, err, sizeof err), TS_CODEC_INVALID);
    assert_non_null(strstr(err, "title"));
}

static void a_malformed_hold_id_is_invalid(void **state) {
    ts_command_type types[] = {TS_CMD_CONFIRM_HOLD, TS_CMD_RELEASE_HOLD, TS_CMD_EXPIRE_HOLD};
    for (size_t i = 0; i < 3; i++) {
        ts_command in = sample(types[i]);
        const char *bad[] = {"", "not-a-uuid", "1e0d2c3b-4a59-4687-9a8b-7c6d5e4f3a2"};
        for (size_t b = 0; b < 3; b++) {
            strcpy(in.u.hold_ref.hold_id, bad[b]);
            char err[256];
            assert_int_equal(decode_sample(*state, &in, err, sizeof err), TS_CODEC_INVALID);
            assert_non_null(strstr(err, "hold_id"));
        }
        /* upper case is still a UUID, stored in lower case */
        strcpy(in.u.hold_ref.hold_id, "1E0D2C3B-4A59-4687-9A8B-7C6D5E4F3A21");
        uint8_t buf[TS_MESSAGE_BYTES_MAX];
        size_t len = encode(*state, &in, buf, sizeof buf);
        ts_command out;
        char err[256];
        assert_int_equal(ts_codec_decode_command(*state, buf, len, &out, err, sizeof err),
                         TS_CODEC_OK);
        assert_string_equal(out.u.hold_ref.hold_id, HOLD_ID);
    }
}

/* A field a command's schema lacks cannot be written: no digest on an
 * ExpireHold, no cancel token on a release. */
static void what_a_schema_lacks_is_not_encoded(void **state) {
    uint8_t buf[TS_MESSAGE_BYTES_MAX];
    size_t len;
    ts_command in = sample(TS_CMD_EXPIRE_HOLD);
    in.request_sha256.present = true;
    assert_int_equal(ts_codec_encode_command(*state, &in, buf, sizeof buf, &len), TS_CODEC_INVALID);
    in = sample(TS_CMD_RELEASE_HOLD);
    in.u.hold_ref.cancel_token_sha256.present = true;
    assert_int_equal(ts_codec_encode_command(*state, &in, buf, sizeof buf, &len), TS_CODEC_INVALID);
    in.type = TS_CMD_COUNT_;
    assert_int_equal(ts_codec_encode_command(*state, &in, buf, sizeof buf, &len), TS_CODEC_INVALID);
}

static ts_change sample_change(ts_change_type type) {
    ts_change c;
    memset(&c, 0, sizeof c);
    c.type = type;
    c.event_id = EVENT_ID;
    c.seq = 42;
    c.occurred_at_ms = 1764034980123;
    c.command_id = COMMAND_ID;
    switch (type) {
    case TS_CH_EVENT_CREATED:
        c.title = "Conférence ✓";
        c.location = "Lyon";
        c.has_starts_at = true;
        c.starts_at_ms = 1893456000000;
        c.has_capacity = true;
        c.capacity = 100;
        c.seq = 1;
        break;
    case TS_CH_EVENT_UPDATED:
        c.description = ""; /* cleared */
        c.has_capacity = true;
        c.capacity = 120;
        break;
    case TS_CH_WAITLISTED:
        c.has_position = true;
        c.position = 3;
        /* fall through */
    case TS_CH_REGISTERED:
    case TS_CH_PROMOTED:
        c.user_id = USER_ID;
        c.name = "Ada Lovelace";
        c.email = "Ada@Example.org";
        break;
    case TS_CH_HOLD_PLACED:
        c.user_id = USER_ID;
        c.name = "Grace Hopper";
        c.email = "grace@example.org";
        c.hold_id = HOLD_ID;
        c.has_expires_at = true;
        c.expires_at_ms = 1764035580123;
        break;
    case TS_CH_REGISTRATION_CANCELLED: c.user_id = USER_ID; break;
    case TS_CH_HOLD_CONFIRMED:
    case TS_CH_HOLD_RELEASED:
    case TS_CH_HOLD_EXPIRED:
        c.user_id = USER_ID;
        c.hold_id = HOLD_ID;
        break;
    case TS_CH_EVENT_CANCELLED:
    case TS_CH_COUNT_: break;
    }
    return c;
}

static void assert_same_string(const char *a, const char *b) {
    if (!a || !b)
        assert_true(a == b);
    else
        assert_string_equal(a, b);
}

static void assert_same_change(const ts_change *a, const ts_change *b) {
    assert_int_equal(a->type, b->type);
    assert_same_string(a->event_id, b->event_id);
    assert_int_equal(a->seq, b->seq);
    assert_int_equal(a->occurred_at_ms, b->occurred_at_ms);
    assert_same_string(a->command_id, b->command_id);
    const char *const sa[] = {a->user_id, a->name,        a->email,   a->hold_id,
                              a->title,   a->description, a->location};
    const char *const sb[] = {b->user_id, b->name,        b->email,   b->hold_id,
                              b->title,   b->description, b->location};
    for (size_t i = 0; i < sizeof sa / sizeof sa[0]; i++)
        assert_same_string(sa[i], sb[i]);
    assert_int_equal(a->has_position, b->has_position);
    assert_int_equal(a->has_expires_at, b->has_expires_at);
    assert_int_equal(a->has_starts_at, b->has_starts_at);
    assert_int_equal(a->has_capacity, b->has_capacity);
    assert_int_equal(a->position, b->position);
    assert_int_equal(a->expires_at_ms, b->expires_at_ms);
    assert_int_equal(a->starts_at_ms, b->starts_at_ms);
    assert_int_equal(a->capacity, b->capacity);
}

static void every_change_type_round_trips(void **state) {
    for (int t = 0; t < TS_CH_COUNT_; t++) {
        ts_change in = sample_change((ts_change_type)t);
        uint8_t buf[TS_MESSAGE_BYTES_MAX];
        size_t len;
        assert_int_equal(ts_codec_encode_change(*state, &in, buf, sizeof buf, &len), TS_CODEC_OK);
        uint64_t fp;
        assert_int_equal(ts_avro_read_header(buf, len, &fp), 0);
        assert_true(fp == 0xb3e5f69d2b9ed2c5ULL); /* Apache Avro for Java's */
        ts_change_buf out;
        char err[256] = "";
        assert_int_equal(ts_codec_decode_change(*state, buf, len, &out, err, sizeof err),
                         TS_CODEC_OK);
        assert_same_change(&in, &out.change);
        /* the strings point into the buffer, not into the codec */
        assert_ptr_equal(out.change.event_id, out.event_id);
        /* every truncation is rejected */
        for (size_t cut = 0; cut < len; cut++) {
            uint8_t *part = malloc(cut ? cut : 1);
            memcpy(part, buf, cut);
            assert_int_not_equal(ts_codec_decode_change(*state, part, cut, &out, err, sizeof err),
                                 TS_CODEC_OK);
            free(part);
        }
    }
}

/* A change without what its type needs is never written, nor read. */
static void a_change_missing_what_its_type_needs_is_invalid(void **state) {
    uint8_t buf[TS_MESSAGE_BYTES_MAX];
    size_t len;
    ts_change c = sample_change(TS_CH_HOLD_PLACED);
    c.hold_id = NULL;
    assert_int_equal(ts_codec_encode_change(*state, &c, buf, sizeof buf, &len), TS_CODEC_INVALID);
    c = sample_change(TS_CH_EVENT_UPDATED);
    c.description = NULL;
    c.has_capacity = false;
    assert_int_equal(ts_codec_encode_change(*state, &c, buf, sizeof buf, &len), TS_CODEC_INVALID);
    c = sample_change(TS_CH_REGISTERED);
    c.seq = 0;
    assert_int_equal(ts_codec_encode_change(*state, &c, buf, sizeof buf, &len), TS_CODEC_INVALID);
    c = sample_change(TS_CH_REGISTERED);
    c.user_id = "not-a-uuid";
    assert_int_equal(ts_codec_encode_change(*state, &c, buf, sizeof buf, &len), TS_CODEC_INVALID);
    c = sample_change(TS_CH_REGISTERED);
    c.type = TS_CH_COUNT_;
    assert_int_equal(ts_codec_encode_change(*state, &c, buf, sizeof buf, &len), TS_CODEC_INVALID);

    /* by hand: a Registered change with every optional field null */
    raw r = {.n = TS_AVRO_HEADER_LEN};
    ts_avro_write_header(r.b, 0xb3e5f69d2b9ed2c5ULL);
    raw_string(&r, EVENT_ID);
    raw_long(&r, 7);
    raw_long(&r, TS_CH_REGISTERED);
    raw_long(&r, 1764034980123);
    raw_string(&r, COMMAND_ID);
    for (int i = 0; i < 11; i++)
        raw_long(&r, 0);
    ts_change_buf out;
    char err[256];
    assert_int_equal(ts_codec_decode_change(*state, r.b, r.n, &out, err, sizeof err),
                     TS_CODEC_INVALID);
    assert_non_null(strstr(err, "user_id"));
    /* an EventCancelled needs none of them */
    r.b[TS_AVRO_HEADER_LEN + 1 + TS_UUID_LEN + 1] = 2 * TS_CH_EVENT_CANCELLED;
    assert_int_equal(ts_codec_decode_change(*state, r.b, r.n, &out, err, sizeof err), TS_CODEC_OK);
    assert_int_equal(out.change.type, TS_CH_EVENT_CANCELLED);
    assert_null(out.change.user_id);
    assert_null(out.change.description);
    /* a symbol the enum does not have */
    r.b[TS_AVRO_HEADER_LEN + 1 + TS_UUID_LEN + 1] = 2 * TS_CH_COUNT_;
    assert_int_equal(ts_codec_decode_change(*state, r.b, r.n, &out, err, sizeof err),
                     TS_CODEC_CORRUPT);
}

/* A change is neither a command nor a reply, and the other way round. */
static void a_change_is_not_a_command(void **state) {
    uint8_t buf[TS_MESSAGE_BYTES_MAX];
    size_t len;
    ts_change c = sample_change(TS_CH_REGISTERED);
    assert_int_equal(ts_codec_encode_change(*state, &c, buf, sizeof buf, &len), TS_CODEC_OK);
    ts_command cmd;
    ts_reply reply;
    char err[256];
    assert_int_equal(ts_codec_decode_command(*state, buf, len, &cmd, err, sizeof err),
                     TS_CODEC_UNKNOWN_SCHEMA);
    assert_int_equal(ts_codec_decode_reply(*state, buf, len, &reply, err, sizeof err),
                     TS_CODEC_UNKNOWN_SCHEMA);
    ts_command in = sample(TS_CMD_REGISTER);
    len = encode(*state, &in, buf, sizeof buf);
    ts_change_buf out;
    assert_int_equal(ts_codec_decode_change(*state, buf, len, &out, err, sizeof err),
                     TS_CODEC_UNKNOWN_SCHEMA);
}

/* The symbols of an enum of a compiled-in schema, by index. */
static const char *enum_symbol(const char *file, const char *field, int index) {
    for (const ts_embedded *e = ts_embedded_schemas; e->name; e++) {
        if (strcmp(e->name, file) != 0)
            continue;
        avro_schema_t schema;
        assert_int_equal(avro_schema_from_json_length(e->data, e->len, &schema), 0);
        avro_schema_t en = avro_schema_record_field_get(schema, field);
        assert_non_null(en);
        const char *symbol =
            index < avro_schema_enum_number_of_symbols(en) ? avro_schema_enum_get(en, index) : NULL;
        static char copy[64];
        if (symbol)
            snprintf(copy, sizeof copy, "%s", symbol);
        avro_schema_decref(schema);
        return symbol ? copy : NULL;
    }
    fail_msg("%s is not compiled in", file);
    return NULL;
}

static void names_follow_the_schemas(void **state) {
    (void)state;
    for (int o = 0; o < TS_OUT_COUNT_; o++) {
        const char *name = ts_outcome_name((ts_outcome)o);
        assert_string_equal(name, enum_symbol("reply.avsc", "outcome", o));
        ts_outcome back;
        assert_int_equal(ts_outcome_parse(name, &back), 0);
        assert_int_equal(back, o);
    }
    assert_null(enum_symbol("reply.avsc", "outcome", TS_OUT_COUNT_));
    ts_outcome back;
    assert_int_equal(ts_outcome_parse("NOPE", &back), -1);
    for (int t = 0; t < TS_CH_COUNT_; t++)
        assert_string_equal(ts_change_type_name((ts_change_type)t),
                            enum_symbol("change.avsc", "type", t));
    assert_null(enum_symbol("change.avsc", "type", TS_CH_COUNT_));

    /* as processed_commands.kind stores them */
    const char *kinds[] = {"create_event", "register",     "cancel",
                           "place_hold",   "confirm_hold", "release_hold",
                           "expire_hold",  "update_event", "cancel_event"};
    for (size_t i = 0; i < N_TYPES; i++)
        assert_string_equal(ts_command_type_name(all_types[i]), kinds[i]);
    assert_string_equal(ts_command_type_name(TS_CMD_COUNT_), "unknown");

    /* the refusals have a message, the successes none */
    const ts_outcome quiet[] = {TS_OUT_CREATED,    TS_OUT_REGISTERED, TS_OUT_CANCELLED,
                                TS_OUT_WAITLISTED, TS_OUT_HELD,       TS_OUT_RELEASED,
                                TS_OUT_UPDATED};
    for (size_t i = 0; i < sizeof quiet / sizeof quiet[0]; i++)
        assert_null(ts_outcome_message(quiet[i]));
    assert_string_equal(ts_outcome_message(TS_OUT_ALREADY_WAITLISTED),
                        "User already on the waitlist");
    assert_string_equal(ts_outcome_message(TS_OUT_ALREADY_HELD), "User already holds a seat");
    assert_string_equal(ts_outcome_message(TS_OUT_HOLD_NOT_FOUND), "Hold not found");
    assert_string_equal(ts_outcome_message(TS_OUT_HOLD_EXPIRED), "Hold expired");
    assert_string_equal(ts_outcome_message(TS_OUT_CAPACITY_BELOW_TAKEN),
                        "Capacity is below the seats taken");
    assert_string_equal(ts_outcome_message(TS_OUT_EVENT_CANCELLED), "Event is cancelled");
}

static void the_largest_update_and_change_fit_the_message_limit(void **state) {
    ts_command in = sample(TS_CMD_UPDATE_EVENT);
    in.u.update.has_location = true;
    memset(in.u.update.title, 't', TS_TITLE_MAX);
    memset(in.u.update.description, 'd', TS_DESCRIPTION_MAX);
    memset(in.u.update.location, 'l', TS_LOCATION_MAX);
    memset(in.reply_topic, 'r', TS_TOPIC_MAX);
    uint8_t buf[TS_MESSAGE_BYTES_MAX];
    size_t len = encode(*state, &in, buf, sizeof buf);
    assert_true(len <= TS_MESSAGE_BYTES_MAX);
    ts_command out;
    char err[256];
    assert_int_equal(ts_codec_decode_command(*state, buf, len, &out, err, sizeof err), TS_CODEC_OK);
    assert_memory_equal(&in, &out, sizeof in);

    /* a change with every field at its longest */
    static char name[TS_NAME_MAX + 1], email[TS_EMAIL_MAX + 1], title[TS_TITLE_MAX + 1],
        description[TS_DESCRIPTION_MAX + 1], location[TS_LOCATION_MAX + 1];
    memset(name, 'n', TS_NAME_MAX);
    memset(email, 'e', TS_EMAIL_MAX);
    memset(title, 't', TS_TITLE_MAX);
    memset(description, 'd', TS_DESCRIPTION_MAX);
    memset(location, 'l', TS_LOCATION_MAX);
    ts_change c = sample_change(TS_CH_EVENT_UPDATED);
    c.seq = INT64_MAX;
    c.user_id = USER_ID;
    c.hold_id = HOLD_ID;
    c.name = name;
    c.email = email;
    c.title = title;
    c.description = description;
    c.location = location;
    c.has_position = c.has_expires_at = c.has_starts_at = c.has_capacity = true;
    c.position = c.expires_at_ms = c.starts_at_ms = c.capacity = INT64_MAX;
    assert_int_equal(ts_codec_encode_change(*state, &c, buf, sizeof buf, &len), TS_CODEC_OK);
    ts_change_buf cb;
    assert_int_equal(ts_codec_decode_change(*state, buf, len, &cb, err, sizeof err), TS_CODEC_OK);
    assert_same_change(&c, &cb.change);
    /* one byte more than a field holds is refused before it is written */
    static char longer[TS_DESCRIPTION_MAX + 2];
    memset(longer, 'd', TS_DESCRIPTION_MAX + 1);
    c.description = longer;
    assert_int_equal(ts_codec_encode_change(*state, &c, buf, sizeof buf, &len), TS_CODEC_INVALID);
}

/* ------------------------------------------------------------ registry framing */

/* The message in the registry's framing: 0x00, the id, the same body. */
static size_t reframe(const uint8_t *msg, size_t len, int32_t id, uint8_t *out) {
    out[0] = 0;
    out[1] = (uint8_t)((uint32_t)id >> 24);
    out[2] = (uint8_t)((uint32_t)id >> 16);
    out[3] = (uint8_t)((uint32_t)id >> 8);
    out[4] = (uint8_t)id;
    memcpy(out + TS_REGISTRY_HEADER_LEN, msg + TS_AVRO_HEADER_LEN, len - TS_AVRO_HEADER_LEN);
    return len - TS_AVRO_HEADER_LEN + TS_REGISTRY_HEADER_LEN;
}

static const char *schema_text(const char *file) {
    const ts_embedded *e = ts_embedded_find(ts_embedded_schemas, file);
    if (!e)
        fail_msg("%s is not compiled in", file);
    return e ? e->data : NULL;
}

/* register.avsc with its fields array edited: `drop` removed, `add` (a
 * field's JSON) appended. The caller frees. */
static char *register_schema_variant(const char *drop, const char *add) {
    const char *base = schema_text("register.avsc");
    char *out = malloc(strlen(base) + (add ? strlen(add) : 0) + 8);
    assert_non_null(out);
    strcpy(out, base);
    if (drop) {
        char key[64];
        snprintf(key, sizeof key, "{\"name\": \"%s\"", drop);
        char *at = strstr(out, key);
        assert_non_null(at);
        /* the field runs to its closing brace and the comma before the next one */
        char *end = strstr(at, "}");
        assert_non_null(end);
        end++;
        while (*end == ',' || *end == ' ' || *end == '\n')
            end++;
        memmove(at, end, strlen(end) + 1);
        /* a last field dropped leaves a comma before the array's end */
        char *close = strrchr(out, ']');
        char *p = close;
        while (p > out && (p[-1] == ' ' || p[-1] == '\n'))
            p--;
        if (p[-1] == ',')
            p[-1] = ' ';
    }
    if (add) {
        char *close = strrchr(out, ']');
        char tail[64];
        strcpy(tail, close);
        sprintf(close, ", %s%s", add, tail);
    }
    return out;
}

static void the_registry_id_is_read_from_the_framing(void **state) {
    (void)state;
    const uint8_t framed[] = {0, 0, 0, 1, 0x2a, 2}, single[] = {0xc3, 0x01, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(ts_codec_registry_id(framed, sizeof framed), 298);
    assert_int_equal(ts_codec_registry_id(framed, 4), -1); /* shorter than its header */
    assert_int_equal(ts_codec_registry_id(single, sizeof single), -1);
}

static void a_registry_framed_command_decodes_once_its_schema_is_learned(void **state) {
    char err[256] = "";
    ts_command in = sample(TS_CMD_REGISTER), out;
    uint8_t buf[TS_MESSAGE_BYTES_MAX], framed[TS_MESSAGE_BYTES_MAX];
    size_t n = reframe(buf, encode(*state, &in, buf, sizeof buf), 7, framed);
    assert_int_equal(ts_codec_decode_command(*state, framed, n, &out, err, sizeof err),
                     TS_CODEC_SCHEMA_NEEDED);
    assert_false(ts_codec_knows_schema(*state, 7));
    assert_int_equal(
        ts_codec_learn_schema(*state, 7, schema_text("register.avsc"), err, sizeof err),
        TS_CODEC_OK);
    assert_true(ts_codec_knows_schema(*state, 7));
    assert_int_equal(ts_codec_decode_command(*state, framed, n, &out, err, sizeof err),
                     TS_CODEC_OK);
    assert_true(out.registry_framed);
    out.registry_framed = false;
    assert_memory_equal(&in, &out, sizeof in);
    /* the single-object message still decodes, and says so */
    n = encode(*state, &in, buf, sizeof buf);
    assert_int_equal(ts_codec_decode_command(*state, buf, n, &out, err, sizeof err), TS_CODEC_OK);
    assert_false(out.registry_framed);
    /* every truncation of the framed one is refused, never read past */
    n = reframe(buf, n, 7, framed);
    for (size_t cut = 0; cut < n; cut++) {
        uint8_t *part = malloc(cut ? cut : 1);
        memcpy(part, framed, cut);
        ts_codec_status st = ts_codec_decode_command(*state, part, cut, &out, err, sizeof err);
        assert_int_equal(st, cut < TS_REGISTRY_HEADER_LEN ? TS_CODEC_NO_HEADER : TS_CODEC_CORRUPT);
        free(part);
    }
}

static void a_newer_producer_schema_with_an_added_field_is_resolved(void **state) {
    char err[256] = "";
    char *newer = register_schema_variant(
        NULL, "{\"name\": \"referrer\", \"type\": [\"null\", \"string\"], \"default\": null}");
    assert_int_equal(ts_codec_learn_schema(*state, 8, newer, err, sizeof err), TS_CODEC_OK);
    ts_command in = sample(TS_CMD_REGISTER), out;
    uint8_t buf[TS_MESSAGE_BYTES_MAX], framed[TS_MESSAGE_BYTES_MAX];
    size_t n = reframe(buf, encode(*state, &in, buf, sizeof buf), 8, framed);
    /* the added field, last: the union's second branch, the string "x" */
    framed[n++] = 2;
    framed[n++] = 2;
    framed[n++] = 'x';
    assert_int_equal(ts_codec_decode_command(*state, framed, n, &out, err, sizeof err),
                     TS_CODEC_OK);
    out.registry_framed = false;
    assert_memory_equal(&in, &out, sizeof in);
    /* without the added field's bytes the body ends early */
    assert_int_equal(ts_codec_decode_command(*state, framed, n - 3, &out, err, sizeof err),
                     TS_CODEC_CORRUPT);
    free(newer);
}

static void an_older_producer_schema_lacking_a_defaulted_field_reads_its_default(void **state) {
    char err[256] = "";
    char *older = register_schema_variant("waitlist", NULL);
    assert_int_equal(ts_codec_learn_schema(*state, 9, older, err, sizeof err), TS_CODEC_OK);
    ts_command in = sample(TS_CMD_REGISTER), out;
    in.u.reg.waitlist = false;
    uint8_t buf[TS_MESSAGE_BYTES_MAX], framed[TS_MESSAGE_BYTES_MAX];
    size_t n = reframe(buf, encode(*state, &in, buf, sizeof buf), 9, framed);
    n--; /* waitlist, the last field, a boolean: one byte the older writer never wrote */
    assert_int_equal(ts_codec_decode_command(*state, framed, n, &out, err, sizeof err),
                     TS_CODEC_OK);
    out.registry_framed = false;
    assert_memory_equal(&in, &out, sizeof in);
    free(older);
}

static void schemas_it_cannot_read_are_unknown_and_remembered(void **state) {
    char err[256] = "";
    /* email has no default: a writer without it cannot be read */
    char *no_email = register_schema_variant("email", NULL);
    assert_int_equal(ts_codec_learn_schema(*state, 10, no_email, err, sizeof err),
                     TS_CODEC_UNKNOWN_SCHEMA);
    assert_non_null(strstr(err, "email"));
    free(no_email);
    assert_int_equal(
        ts_codec_learn_schema(*state, 11,
                              "{\"type\":\"record\",\"name\":\"Order\",\"namespace\":"
                              "\"shop\",\"fields\":[{\"name\":\"id\",\"type\":\"long\"}]}",
                              err, sizeof err),
        TS_CODEC_UNKNOWN_SCHEMA);
    assert_non_null(strstr(err, "shop.Order"));
    assert_int_equal(ts_codec_learn_schema(*state, 12, "\"string\"", err, sizeof err),
                     TS_CODEC_UNKNOWN_SCHEMA);
    assert_int_equal(ts_codec_learn_schema(*state, 13, "{not json", err, sizeof err),
                     TS_CODEC_UNKNOWN_SCHEMA);
    assert_non_null(strstr(err, "not a schema"));
    /* a message of such an id is an unknown schema, not a schema to fetch again */
    ts_command in = sample(TS_CMD_REGISTER), out;
    uint8_t buf[TS_MESSAGE_BYTES_MAX], framed[TS_MESSAGE_BYTES_MAX];
    size_t n = reframe(buf, encode(*state, &in, buf, sizeof buf), 11, framed);
    assert_int_equal(ts_codec_decode_command(*state, framed, n, &out, err, sizeof err),
                     TS_CODEC_UNKNOWN_SCHEMA);
    assert_int_equal(
        ts_codec_learn_schema(*state, 11, "\"ignored: known already\"", err, sizeof err),
        TS_CODEC_UNKNOWN_SCHEMA);
}

static void a_reply_goes_back_in_the_registry_framing(void **state) {
    char err[256] = "";
    ts_reply r = {.outcome = TS_OUT_WAITLISTED, .applied_at_ms = 1764034980999, .position = 4};
    strcpy(r.command_id, COMMAND_ID);
    strcpy(r.event_id, EVENT_ID);
    strcpy(r.user_id, USER_ID);
    uint8_t buf[TS_MESSAGE_BYTES_MAX];
    size_t len = 0;
    assert_int_equal(ts_codec_encode_reply_registry(*state, &r, 21, buf, sizeof buf, &len),
                     TS_CODEC_OK);
    assert_int_equal(ts_codec_registry_id(buf, len), 21);
    ts_reply out;
    assert_int_equal(ts_codec_decode_reply(*state, buf, len, &out, err, sizeof err),
                     TS_CODEC_SCHEMA_NEEDED);
    assert_int_equal(ts_codec_learn_schema(*state, 21, schema_text("reply.avsc"), err, sizeof err),
                     TS_CODEC_OK);
    assert_int_equal(ts_codec_decode_reply(*state, buf, len, &out, err, sizeof err), TS_CODEC_OK);
    assert_memory_equal(&r, &out, sizeof r);
    /* a reply's schema id is no command's */
    ts_command cmd;
    assert_int_equal(ts_codec_decode_command(*state, buf, len, &cmd, err, sizeof err),
                     TS_CODEC_UNKNOWN_SCHEMA);
    assert_non_null(strstr(err, "not a command"));
    assert_int_equal(ts_codec_encode_reply_registry(*state, &r, -1, buf, sizeof buf, &len),
                     TS_CODEC_INVALID);
}

static void the_learned_schemas_are_bounded(void **state) {
    (void)state;
    char err[256];
    ts_codec *c = ts_codec_new(err, sizeof err);
    assert_non_null(c);
    for (int32_t id = 0; id < TS_CODEC_LEARNED_MAX; id++)
        assert_int_equal(ts_codec_learn_schema(c, id, schema_text("cancel.avsc"), err, sizeof err),
                         TS_CODEC_OK);
    assert_int_equal(
        ts_codec_learn_schema(c, TS_CODEC_LEARNED_MAX, schema_text("cancel.avsc"), err, sizeof err),
        TS_CODEC_UNKNOWN_SCHEMA);
    assert_non_null(strstr(err, "more than"));
    ts_codec_free(c);
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
        cmocka_unit_test(each_command_type_has_its_own_schema),
        cmocka_unit_test(a_register_without_the_waitlist_field_is_not_waitlisted),
        cmocka_unit_test(a_reply_carries_position_hold_and_expiry),
        cmocka_unit_test(replies_of_older_versions_still_decode),
        cmocka_unit_test(a_reply_carries_its_commit_position),
        cmocka_unit_test(a_hold_ttl_outside_its_bounds_is_invalid),
        cmocka_unit_test(an_update_must_change_something_within_the_rules),
        cmocka_unit_test(a_malformed_hold_id_is_invalid),
        cmocka_unit_test(what_a_schema_lacks_is_not_encoded),
        cmocka_unit_test(every_change_type_round_trips),
        cmocka_unit_test(a_change_missing_what_its_type_needs_is_invalid),
        cmocka_unit_test(a_change_is_not_a_command),
        cmocka_unit_test(names_follow_the_schemas),
        cmocka_unit_test(the_largest_update_and_change_fit_the_message_limit),
        cmocka_unit_test(the_registry_id_is_read_from_the_framing),
        cmocka_unit_test(a_registry_framed_command_decodes_once_its_schema_is_learned),
        cmocka_unit_test(a_newer_producer_schema_with_an_added_field_is_resolved),
        cmocka_unit_test(an_older_producer_schema_lacking_a_defaulted_field_reads_its_default),
        cmocka_unit_test(schemas_it_cannot_read_are_unknown_and_remembered),
        cmocka_unit_test(a_reply_goes_back_in_the_registry_framing),
        cmocka_unit_test(the_learned_schemas_are_bounded),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
