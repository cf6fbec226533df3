/* SPDX-License-Identifier: Apache-2.0 */
/* ts_codec.h — commands and replies, in C and on the wire.
 *
 * ts_command and ts_reply are plain structs with fixed-size buffers (the
 * limits of ts_limits.h), so a batch of them needs no allocation. The codec
 * turns them into Avro single-object messages (the schemas of schemas/, compiled in)
 * and back. It writes the current version of each schema (NAME.avsc) and
 * reads every version (NAME.vN.avsc too): a field added later is absent
 * from an older message and reads as its default. A ts_codec holds avro-c state reused across
 * calls: it is NOT thread-safe; give each thread its own. */
#ifndef TS_CODEC_H
#define TS_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ts_limits.h"

typedef enum ts_command_type {
    TS_CMD_CREATE_EVENT = 1,
    TS_CMD_REGISTER,
    TS_CMD_CANCEL,
    TS_CMD_PLACE_HOLD,   /* hold a seat for a while; the hold's id is the command id */
    TS_CMD_CONFIRM_HOLD, /* the held seat becomes a registration */
    TS_CMD_RELEASE_HOLD, /* the held seat is given back */
    TS_CMD_EXPIRE_HOLD,  /* the sweeper's: a hold that should have expired by issued_at */
    TS_CMD_UPDATE_EVENT, /* title, description, location, starts_at, capacity */
    TS_CMD_CANCEL_EVENT,
    TS_CMD_COUNT_
} ts_command_type;

/* A hold's time to live, in milliseconds: a PlaceHold outside it is invalid. */
#define TS_HOLD_TTL_MIN_MS 1000L
#define TS_HOLD_TTL_MAX_MS 86400000L

#define TS_SHA256_LEN 32

/* An optional SHA-256 digest: a ["null", "bytes"] field of 32 bytes. */
typedef struct ts_digest {
    bool present;
    uint8_t bytes[TS_SHA256_LEN];
} ts_digest;

typedef struct ts_command {
    ts_command_type type;
    bool registry_framed; /* it came in the Schema Registry's framing: so goes its reply */
    char command_id[TS_UUID_LEN + 1];
    int64_t issued_at_ms;
    char reply_topic[TS_TOPIC_MAX + 1]; /* "" when no reply is wanted */
    int32_t reply_partition;
    char event_id[TS_UUID_LEN + 1];
    ts_digest request_sha256; /* the request behind an idempotency key's command id */
    union {
        struct {
            char title[TS_TITLE_MAX + 1];
            bool has_description;
            char description[TS_DESCRIPTION_MAX + 1];
            int64_t starts_at_ms;
            char location[TS_LOCATION_MAX + 1];
            int64_t capacity;
        } create;
        struct {
            char name[TS_NAME_MAX + 1];
            char email[TS_EMAIL_MAX + 1];
            ts_digest cancel_token_sha256; /* of the token the registrant gets */
            bool waitlist;                 /* a full event puts them on its waitlist */
        } reg;
        struct {
            char name[TS_NAME_MAX + 1];
            char email[TS_EMAIL_MAX + 1];
            int64_t ttl_ms; /* TS_HOLD_TTL_MIN_MS .. TS_HOLD_TTL_MAX_MS */
        } hold;
        struct {
            char hold_id[TS_UUID_LEN + 1];
            ts_digest cancel_token_sha256; /* confirm: of the registration's token */
        } hold_ref; /* TS_CMD_CONFIRM_HOLD, TS_CMD_RELEASE_HOLD, TS_CMD_EXPIRE_HOLD */
        struct {
            bool has_title, has_description, has_location, has_starts_at, has_capacity;
            char title[TS_TITLE_MAX + 1];
            char description[TS_DESCRIPTION_MAX + 1]; /* "" clears it */
            char location[TS_LOCATION_MAX + 1];
            int64_t starts_at_ms;
            int64_t capacity;
        } update;
        struct {
            char user_id[TS_UUID_LEN + 1];
            ts_digest token_sha256; /* present: must match the registration's */
        } cancel;
    } u;
} ts_command;

/* In the order of the symbols of the Outcome enum in schemas/reply.avsc. */
typedef enum ts_outcome {
    TS_OUT_CREATED = 0,
    TS_OUT_REGISTERED,
    TS_OUT_CANCELLED,
    TS_OUT_EVENT_NOT_FOUND,
    TS_OUT_PAST_EVENT,
    TS_OUT_EVENT_FULL,
    TS_OUT_ALREADY_REGISTERED,
    TS_OUT_REGISTRATION_NOT_FOUND,
    TS_OUT_INVALID,
    TS_OUT_FORBIDDEN,              /* a cancel token that does not match */
    TS_OUT_IDEMPOTENCY_KEY_REUSED, /* a command id seen with another request */
    TS_OUT_WAITLISTED,             /* on the waitlist, at reply.position */
    TS_OUT_ALREADY_WAITLISTED,
    TS_OUT_HELD,           /* a seat held: reply.hold_id, reply.expires_at_ms */
    TS_OUT_ALREADY_HELD,   /* the person holds a seat of the event already */
    TS_OUT_HOLD_NOT_FOUND, /* no such hold, or it was released or confirmed */
    TS_OUT_HOLD_EXPIRED,
    TS_OUT_RELEASED,             /* a hold given back */
    TS_OUT_UPDATED,              /* an event changed */
    TS_OUT_CAPACITY_BELOW_TAKEN, /* a capacity below its registrations and holds */
    TS_OUT_EVENT_CANCELLED,      /* refused: the event is cancelled */
    TS_OUT_COUNT_
} ts_outcome;

typedef struct ts_reply {
    char command_id[TS_UUID_LEN + 1];
    char event_id[TS_UUID_LEN + 1];
    ts_outcome outcome;
    char user_id[TS_UUID_LEN + 1];    /* "" for none */
    char message[TS_MESSAGE_MAX + 1]; /* "" for none */
    int64_t applied_at_ms;
    int64_t position;              /* WAITLISTED: 1-based place in line; 0 for none */
    char hold_id[TS_UUID_LEN + 1]; /* HELD: the hold's id; "" for none */
    int64_t expires_at_ms;         /* HELD: when it expires; 0 for none */
    /* PostgreSQL's WAL position (ts_lsn.h) at or past the commit of the
     * transaction that applied the command: a replica that has replayed
     * this far shows its effect. 0: not known (an INVALID reply applied
     * nothing; a worker before version 4 of the reply did not say). At
     * most INT64_MAX (Avro's long). */
    uint64_t commit_lsn;
} ts_reply;

/* The event stream (turnstile.events, schemas/change.avsc): one record per
 * state change, with a per-event sequence number that grows by one. In the
 * order of the ChangeType enum's symbols. */
typedef enum ts_change_type {
    TS_CH_EVENT_CREATED = 0,
    TS_CH_EVENT_UPDATED,
    TS_CH_EVENT_CANCELLED,
    TS_CH_REGISTERED,
    TS_CH_WAITLISTED,
    TS_CH_PROMOTED,
    TS_CH_REGISTRATION_CANCELLED,
    TS_CH_HOLD_PLACED,
    TS_CH_HOLD_CONFIRMED,
    TS_CH_HOLD_RELEASED,
    TS_CH_HOLD_EXPIRED,
    TS_CH_COUNT_
} ts_change_type;

/* A change. Strings are borrowed (NULL: absent, a null in the record);
 * which are set depends on the type:
 *   EventCreated      title, description (may be NULL), location, starts_at, capacity
 *   EventUpdated      the fields the update set (description "" = cleared)
 *   EventCancelled    -
 *   Registered        user_id, name, email
 *   Waitlisted        user_id, name, email, position
 *   Promoted          user_id, name, email (from the waitlist to a seat)
 *   RegistrationCancelled  user_id; position when it left the waitlist
 *   HoldPlaced        user_id, name, email, hold_id, expires_at
 *   HoldConfirmed, HoldReleased, HoldExpired   user_id, hold_id */
typedef struct ts_change {
    ts_change_type type;
    const char *event_id;
    int64_t seq;            /* 1, 2, 3, ... per event */
    int64_t occurred_at_ms; /* the issue time of the command that made it */
    const char *command_id; /* that command */
    const char *user_id, *name, *email, *hold_id;
    const char *title, *description, *location;
    bool has_position, has_expires_at, has_starts_at, has_capacity;
    int64_t position, expires_at_ms, starts_at_ms, capacity;
} ts_change;

/* A decoded change: the record and the buffers its strings point into. */
typedef struct ts_change_buf {
    ts_change change;
    char event_id[TS_UUID_LEN + 1], command_id[TS_UUID_LEN + 1];
    char user_id[TS_UUID_LEN + 1], hold_id[TS_UUID_LEN + 1];
    char name[TS_NAME_MAX + 1], email[TS_EMAIL_MAX + 1];
    char title[TS_TITLE_MAX + 1], description[TS_DESCRIPTION_MAX + 1];
    char location[TS_LOCATION_MAX + 1];
} ts_change_buf;

typedef enum ts_codec_status {
    TS_CODEC_OK = 0,
    TS_CODEC_NO_HEADER,      /* shorter than a header, or no magic bytes */
    TS_CODEC_UNKNOWN_SCHEMA, /* fingerprint of no schema this codec reads */
    TS_CODEC_CORRUPT,        /* the body does not decode with its schema */
    TS_CODEC_INVALID,        /* decodes, but a field does not fit its rules */
    TS_CODEC_TOO_BIG,        /* encoding: the buffer is too small */
    TS_CODEC_SCHEMA_NEEDED,  /* registry framing, a schema id not learned yet */
} ts_codec_status;

typedef struct ts_codec ts_codec;

/* Parses the compiled-in schemas. Returns NULL with `err` set on failure.
 * Caller frees with ts_codec_free(). */
ts_codec *ts_codec_new(char *err, size_t errlen);
void ts_codec_free(ts_codec *codec);

/* Encode into buf[0..cap); *len gets the message length. TS_CODEC_INVALID
 * for what the schema cannot hold (an ExpireHold with a request_sha256, a
 * cancel token on a release or an expiry). */
ts_codec_status ts_codec_encode_command(ts_codec *codec, const ts_command *cmd, uint8_t *buf,
                                        size_t cap, size_t *len);
ts_codec_status ts_codec_encode_reply(ts_codec *codec, const ts_reply *reply, uint8_t *buf,
                                      size_t cap, size_t *len);

/* Decode a message. On failure `err` says what is wrong (for the DLQ's
 * reason header) and *out is unspecified. Never reads past msg[len). */
ts_codec_status ts_codec_decode_command(ts_codec *codec, const void *msg, size_t len,
                                        ts_command *out, char *err, size_t errlen);
ts_codec_status ts_codec_decode_reply(ts_codec *codec, const void *msg, size_t len, ts_reply *out,
                                      char *err, size_t errlen);

/* The event stream's records. Encoding checks what decoding does, so
 * every record written can be read: TS_CODEC_INVALID for a change without
 * what its type needs (the table above; an EventUpdated sets at least one
 * field), a seq or position below 1, a malformed UUID or a string longer
 * than ts_change_buf holds. */
ts_codec_status ts_codec_encode_change(ts_codec *codec, const ts_change *change, uint8_t *buf,
                                       size_t cap, size_t *len);
ts_codec_status ts_codec_decode_change(ts_codec *codec, const void *msg, size_t len,
                                       ts_change_buf *out, char *err, size_t errlen);
const char *ts_change_type_name(ts_change_type type); /* "Registered", as in the schema */

/* The Schema Registry's framing (the Confluent wire format, which every
 * standard Kafka Avro serializer writes): a 0x00 byte, the writer schema's
 * registry id (4 bytes, big-endian), then the Avro binary body. Decoding
 * takes either framing, by the first byte. The codec does no I/O: a
 * registry-framed message whose schema id it has not learned decodes to
 * TS_CODEC_SCHEMA_NEEDED; the caller fetches that schema from the registry
 * (ts_registry.h), hands it to ts_codec_learn_schema and decodes again. */
#define TS_REGISTRY_HEADER_LEN 5
#define TS_CODEC_LEARNED_MAX 256 /* registry schemas a codec remembers at most */

/* The schema id of a registry-framed message; -1 when msg is not one. */
int64_t ts_codec_registry_id(const void *msg, size_t len);

/* Whether the codec has learned schema `id` (as readable or as unknown). */
bool ts_codec_knows_schema(const ts_codec *codec, int32_t id);

/* Teaches the codec registry schema `id`, given as its JSON text. A schema
 * whose Parsing Canonical Form is one of the codec's (any version) reads
 * as that one. Another version of a record the codec knows (a producer's
 * newer schema with fields added, or an older one lacking some) is
 * resolved against the codec's current schema by Avro's rules: fields the
 * codec does not know are skipped, and a field the writer lacks reads as
 * its default (one without a default makes the schema incompatible).
 * Returns TS_CODEC_OK, or TS_CODEC_UNKNOWN_SCHEMA with `err` saying why
 * (not a record the codec knows, incompatible, not a schema, or
 * TS_CODEC_LEARNED_MAX reached); an id found unknown is remembered as such
 * and needs no second fetch. */
ts_codec_status ts_codec_learn_schema(ts_codec *codec, int32_t id, const char *schema_json,
                                      char *err, size_t errlen);

/* A reply in the registry's framing, for a command that came in it:
 * `schema_id` is the registry's id of schemas/reply.avsc. */
ts_codec_status ts_codec_encode_reply_registry(ts_codec *codec, const ts_reply *reply,
                                               int32_t schema_id, uint8_t *buf, size_t cap,
                                               size_t *len);

/* Fingerprint of the schema written for a command type, or for replies. */
uint64_t ts_codec_command_fingerprint(const ts_codec *codec, ts_command_type type);
uint64_t ts_codec_reply_fingerprint(const ts_codec *codec);

const char *ts_codec_status_name(ts_codec_status status);
const char *ts_outcome_name(ts_outcome outcome);
/* The human message of a refusal, in the original service's words ("Event
 * is full"); NULL for the outcomes that are not refusals. */
const char *ts_outcome_message(ts_outcome outcome);
/* The outcome named `name` (as ts_outcome_name gives it). 0, or -1. */
int ts_outcome_parse(const char *name, ts_outcome *out);
const char *ts_command_type_name(ts_command_type type);

#endif
