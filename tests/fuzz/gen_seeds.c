/* SPDX-License-Identifier: Apache-2.0 */
/* gen_seeds.c — writes the seed corpus of fuzz_codec: one valid message of
 * every command type, of a few replies and of every change type, encoded
 * by the codec itself. Run once, by hand, when a schema changes:
 *
 *   build-fuzz/tests/fuzz/fuzz_gen_seeds tests/fuzz/corpus/codec
 *
 * (scripts/fuzz does not run it: the committed seeds are what CI uses). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_registry_ids.h"
#include "ts_avro.h"
#include "ts_codec.h"

#define EVENT_ID "5a1f0c3e-2b4d-4e6f-8a9b-0c1d2e3f4a5b"
#define COMMAND_ID "0b6f3a52-8e2d-4c1a-9f0e-7d6c5b4a3921"
#define USER_ID "7c9e6679-7425-40de-944b-e07fc1f90ae7"
#define HOLD_ID "1e0d2c3b-4a59-4687-9a8b-7c6d5e4f3a21"

static const char *dir;
static int failures;

static void put(const char *name, ts_codec_status st, const uint8_t *buf, size_t len) {
    if (st != TS_CODEC_OK) {
        fprintf(stderr, "gen_seeds: %s: %s\n", name, ts_codec_status_name(st));
        failures++;
        return;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.avro", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        failures++;
    }
}

static ts_command command(ts_command_type type) {
    ts_command c;
    memset(&c, 0, sizeof c);
    c.type = type;
    strcpy(c.command_id, COMMAND_ID);
    c.issued_at_ms = 1764034980123;
    strcpy(c.reply_topic, "turnstile.replies");
    c.reply_partition = 3;
    strcpy(c.event_id, EVENT_ID);
    switch (type) {
    case TS_CMD_CREATE_EVENT:
        strcpy(c.u.create.title, "Conf\xc3\xa9rence");
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
        memset(c.reply_topic, 0, sizeof c.reply_topic);
        c.reply_partition = 0;
        break;
    case TS_CMD_UPDATE_EVENT:
        c.u.update.has_title = true;
        strcpy(c.u.update.title, "Moved");
        c.u.update.has_description = true;
        c.u.update.has_starts_at = true;
        c.u.update.starts_at_ms = 1893459600000;
        c.u.update.has_capacity = true;
        c.u.update.capacity = 250;
        break;
    case TS_CMD_CANCEL_EVENT:
    case TS_CMD_COUNT_: break;
    }
    c.request_sha256.present = type != TS_CMD_CANCEL && type != TS_CMD_EXPIRE_HOLD;
    if (c.request_sha256.present)
        for (int i = 0; i < TS_SHA256_LEN; i++)
            c.request_sha256.bytes[i] = (uint8_t)i;
    return c;
}

static ts_change change(ts_change_type type) {
    ts_change c;
    memset(&c, 0, sizeof c);
    c.type = type;
    c.event_id = EVENT_ID;
    c.seq = 42;
    c.occurred_at_ms = 1764034980123;
    c.command_id = COMMAND_ID;
    switch (type) {
    case TS_CH_EVENT_CREATED:
        c.title = "Launch";
        c.description = "Doors at six";
        c.location = "Lyon";
        c.has_starts_at = true;
        c.starts_at_ms = 1893456000000;
        c.has_capacity = true;
        c.capacity = 100;
        c.seq = 1;
        break;
    case TS_CH_EVENT_UPDATED:
        c.description = "";
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

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    char err[256] = "";
    ts_codec *codec = ts_codec_new(err, sizeof err);
    if (!codec) {
        fprintf(stderr, "gen_seeds: %s\n", err);
        return 1;
    }
    static uint8_t buf[TS_MESSAGE_BYTES_MAX];
    size_t len = 0;
    char name[128];
    for (int t = TS_CMD_CREATE_EVENT; t < TS_CMD_COUNT_; t++) {
        ts_command c = command((ts_command_type)t);
        ts_codec_status st = ts_codec_encode_command(codec, &c, buf, sizeof buf, &len);
        snprintf(name, sizeof name, "command-%s", ts_command_type_name((ts_command_type)t));
        put(name, st, buf, len);
    }
    static const ts_outcome outcomes[] = {TS_OUT_REGISTERED, TS_OUT_WAITLISTED, TS_OUT_HELD,
                                          TS_OUT_EVENT_FULL};
    for (size_t i = 0; i < sizeof outcomes / sizeof outcomes[0]; i++) {
        ts_reply r;
        memset(&r, 0, sizeof r);
        strcpy(r.command_id, COMMAND_ID);
        strcpy(r.event_id, EVENT_ID);
        r.outcome = outcomes[i];
        r.applied_at_ms = 1764034980456;
        r.commit_lsn = 0x16B3748; /* the transaction's position in the WAL */
        if (r.outcome != TS_OUT_EVENT_FULL)
            strcpy(r.user_id, USER_ID);
        else
            strcpy(r.message, "Event is full");
        if (r.outcome == TS_OUT_WAITLISTED)
            r.position = 2;
        if (r.outcome == TS_OUT_HELD) {
            strcpy(r.hold_id, HOLD_ID);
            r.expires_at_ms = 1764035580123;
        }
        ts_codec_status st = ts_codec_encode_reply(codec, &r, buf, sizeof buf, &len);
        snprintf(name, sizeof name, "reply-%s", ts_outcome_name(r.outcome));
        put(name, st, buf, len);
    }
    for (int t = 0; t < TS_CH_COUNT_; t++) {
        ts_change c = change((ts_change_type)t);
        ts_codec_status st = ts_codec_encode_change(codec, &c, buf, sizeof buf, &len);
        snprintf(name, sizeof name, "change-%s", ts_change_type_name((ts_change_type)t));
        put(name, st, buf, len);
    }
    /* in the registry's framing: the Register above by its own id, by the
     * newer version's (its added field null) and by the older's (without
     * waitlist, its last byte); a reply by its id */
    if (fuzz_learn_registry_ids(codec, err, sizeof err)) {
        fprintf(stderr, "gen_seeds: %s\n", err);
        ts_codec_free(codec);
        return 1;
    }
    static const struct {
        const char *name;
        int32_t id;
        int extra; /* bytes added (1) or removed (-1) after the body */
    } framed[] = {{"registry-Register", 2, 0},
                  {"registry-Register-newer", FUZZ_ID_REGISTER_NEWER, 1},
                  {"registry-Register-older", FUZZ_ID_REGISTER_OLDER, -1}};
    static uint8_t out[TS_MESSAGE_BYTES_MAX + 8];
    for (size_t i = 0; i < sizeof framed / sizeof framed[0]; i++) {
        ts_command c = command(TS_CMD_REGISTER);
        c.u.reg.waitlist = false; /* the older version's default */
        ts_codec_status st = ts_codec_encode_command(codec, &c, buf, sizeof buf, &len);
        size_t n = len - TS_AVRO_HEADER_LEN + TS_REGISTRY_HEADER_LEN;
        out[0] = 0;
        for (int b = 0; b < 4; b++)
            out[1 + b] = (uint8_t)((uint32_t)framed[i].id >> (24 - 8 * b));
        memcpy(out + TS_REGISTRY_HEADER_LEN, buf + TS_AVRO_HEADER_LEN, len - TS_AVRO_HEADER_LEN);
        if (framed[i].extra > 0)
            out[n++] = 0; /* the added union's null branch */
        else if (framed[i].extra < 0)
            n--;
        put(framed[i].name, st, out, n);
    }
    ts_reply r = {
        .outcome = TS_OUT_REGISTERED, .applied_at_ms = 1764034980456, .commit_lsn = 0x16B3748};
    strcpy(r.command_id, COMMAND_ID);
    strcpy(r.event_id, EVENT_ID);
    strcpy(r.user_id, USER_ID);
    put("registry-reply", ts_codec_encode_reply_registry(codec, &r, 10, buf, sizeof buf, &len), buf,
        len);
    ts_codec_free(codec);
    return failures ? 1 : 0;
}
