/* SPDX-License-Identifier: Apache-2.0 */
/* ts_codec.c — ts_command / ts_reply / ts_change <-> Avro single-object
 * messages.
 *
 * Each command type has its own schema, so the fingerprint in a message's
 * header says which command it is (and whether it is a command, a reply or
 * a change of the event stream at all). avro-c does the binary encoding through
 * its generic values; one value per schema is kept and reset between calls,
 * so steady-state encoding and decoding allocate little. Every field that
 * comes off the wire is checked against the fixed buffers of ts_command
 * before it is copied. */
#include "ts_codec.h"

#include <avro.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_avro.h"
#include "ts_embedded.h"
#include "ts_uuid.h"

/* The slots before S_CURRENT_END are the current schemas, written and
 * read; the ones after, older versions, only read. */
enum {
    S_CREATE,
    S_REGISTER,
    S_CANCEL,
    S_PLACE_HOLD,
    S_CONFIRM_HOLD,
    S_RELEASE_HOLD,
    S_EXPIRE_HOLD,
    S_UPDATE_EVENT,
    S_CANCEL_EVENT,
    S_REPLY,
    S_CHANGE,
    S_CURRENT_END,
    S_CREATE_V1 = S_CURRENT_END,
    S_REGISTER_V1,
    S_REGISTER_V2,
    S_CANCEL_V1,
    S_REPLY_V1,
    S_REPLY_V2,
    S_REPLY_V3,
    S_COUNT
};

static const struct {
    const char *file;
    int kind;             /* the current slot of the same record */
    ts_command_type type; /* the command the record is; 0 for a reply or a change */
} schema_files[S_COUNT] = {
    [S_CREATE] = {"create_event.avsc", S_CREATE, TS_CMD_CREATE_EVENT},
    [S_REGISTER] = {"register.avsc", S_REGISTER, TS_CMD_REGISTER},
    [S_CANCEL] = {"cancel.avsc", S_CANCEL, TS_CMD_CANCEL},
    [S_PLACE_HOLD] = {"place_hold.avsc", S_PLACE_HOLD, TS_CMD_PLACE_HOLD},
    [S_CONFIRM_HOLD] = {"confirm_hold.avsc", S_CONFIRM_HOLD, TS_CMD_CONFIRM_HOLD},
    [S_RELEASE_HOLD] = {"release_hold.avsc", S_RELEASE_HOLD, TS_CMD_RELEASE_HOLD},
    [S_EXPIRE_HOLD] = {"expire_hold.avsc", S_EXPIRE_HOLD, TS_CMD_EXPIRE_HOLD},
    [S_UPDATE_EVENT] = {"update_event.avsc", S_UPDATE_EVENT, TS_CMD_UPDATE_EVENT},
    [S_CANCEL_EVENT] = {"cancel_event.avsc", S_CANCEL_EVENT, TS_CMD_CANCEL_EVENT},
    [S_REPLY] = {"reply.avsc", S_REPLY, 0},
    [S_CHANGE] = {"change.avsc", S_CHANGE, 0},
    [S_CREATE_V1] = {"create_event.v1.avsc", S_CREATE, TS_CMD_CREATE_EVENT},
    [S_REGISTER_V1] = {"register.v1.avsc", S_REGISTER, TS_CMD_REGISTER},
    [S_REGISTER_V2] = {"register.v2.avsc", S_REGISTER, TS_CMD_REGISTER},
    [S_CANCEL_V1] = {"cancel.v1.avsc", S_CANCEL, TS_CMD_CANCEL},
    [S_REPLY_V1] = {"reply.v1.avsc", S_REPLY, 0},
    [S_REPLY_V2] = {"reply.v2.avsc", S_REPLY, 0},
    [S_REPLY_V3] = {"reply.v3.avsc", S_REPLY, 0},
};

typedef struct slot {
    avro_schema_t schema;
    avro_value_iface_t *iface;
    avro_value_t value;
    uint64_t fingerprint;
} slot;

/* A schema learned from a registry. A copy of one of the codec's reads
 * into that slot's value (`resolver` NULL); another version of a known
 * record is read through avro-c's resolved writer into a value of the
 * slot's schema less the fields the writer lacks (`reader`), and the
 * decoders read those as absent, that is as their defaults. */
typedef struct learned {
    int32_t id;
    int slot; /* -1: unknown, `why` says why */
    char why[160];
    avro_schema_t writer, reader;
    avro_value_iface_t *reader_iface, *resolver;
    avro_value_t reader_value, resolved;
} learned;

struct ts_codec {
    slot s[S_COUNT];
    avro_reader_t reader;
    avro_writer_t writer;
    learned *learned;
    size_t nlearned;
};

/* avro-c allocates a string's declared length before it reads the bytes. A
 * corrupt length must fail cleanly rather than ask for gigabytes, so no
 * single allocation may exceed this (valid messages are a few KiB). */
#define AVRO_ALLOC_LIMIT (1u << 20)

static void *bounded_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    (void)ud;
    (void)osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    if (nsize > AVRO_ALLOC_LIMIT)
        return NULL;
    return realloc(ptr, nsize);
}

static pthread_once_t allocator_once = PTHREAD_ONCE_INIT;
static void install_allocator(void) {
    avro_set_allocator(bounded_alloc, NULL);
}

ts_codec *ts_codec_new(char *err, size_t errlen) {
    pthread_once(&allocator_once, install_allocator);
    ts_codec *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (int i = 0; i < S_COUNT; i++) {
        const ts_embedded *e = ts_embedded_find(ts_embedded_schemas, schema_files[i].file);
        if (!e) {
            snprintf(err, errlen, "schema %s is not compiled in", schema_files[i].file);
            goto fail;
        }
        if (avro_schema_from_json_length(e->data, e->len, &c->s[i].schema)) {
            snprintf(err, errlen, "schema %s: %s", e->name, avro_strerror());
            goto fail;
        }
        if (ts_avro_fingerprint(e->data, &c->s[i].fingerprint, err, errlen))
            goto fail;
        c->s[i].iface = avro_generic_class_from_schema(c->s[i].schema);
        if (!c->s[i].iface || avro_generic_value_new(c->s[i].iface, &c->s[i].value)) {
            snprintf(err, errlen, "schema %s: %s", e->name, avro_strerror());
            goto fail;
        }
    }
    c->reader = avro_reader_memory("", 0);
    c->writer = avro_writer_memory("", 0);
    if (!c->reader || !c->writer) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    return c;
fail:
    ts_codec_free(c);
    return NULL;
}

static void learned_free(learned *l) {
    if (l->resolved.self)
        avro_value_decref(&l->resolved);
    if (l->resolver)
        avro_value_iface_decref(l->resolver);
    if (l->reader_value.self)
        avro_value_decref(&l->reader_value);
    if (l->reader_iface)
        avro_value_iface_decref(l->reader_iface);
    if (l->reader)
        avro_schema_decref(l->reader);
    if (l->writer)
        avro_schema_decref(l->writer);
}

void ts_codec_free(ts_codec *c) {
    if (!c)
        return;
    for (size_t i = 0; i < c->nlearned; i++)
        learned_free(&c->learned[i]);
    free(c->learned);
    for (int i = 0; i < S_COUNT; i++) {
        if (c->s[i].iface) {
            if (c->s[i].value.self)
                avro_value_decref(&c->s[i].value);
            avro_value_iface_decref(c->s[i].iface);
        }
        if (c->s[i].schema)
            avro_schema_decref(c->s[i].schema);
    }
    if (c->reader)
        avro_reader_free(c->reader);
    if (c->writer)
        avro_writer_free(c->writer);
    free(c);
}

/* The current slot of a command type, or -1. */
static int slot_of(ts_command_type type) {
    for (int i = 0; i < S_CURRENT_END; i++)
        if (schema_files[i].type != 0 && schema_files[i].type == type)
            return i;
    return -1;
}

uint64_t ts_codec_command_fingerprint(const ts_codec *c, ts_command_type type) {
    int i = slot_of(type);
    return i < 0 ? 0 : c->s[i].fingerprint;
}

uint64_t ts_codec_reply_fingerprint(const ts_codec *c) {
    return c->s[S_REPLY].fingerprint;
}

/* ------------------------------------------------------------------ encoding */

static int set_string(avro_value_t *rec, const char *name, const char *s) {
    avro_value_t f;
    return avro_value_get_by_name(rec, name, &f, NULL) || avro_value_set_string(&f, s);
}

static int set_long(avro_value_t *rec, const char *name, int64_t v) {
    avro_value_t f;
    return avro_value_get_by_name(rec, name, &f, NULL) || avro_value_set_long(&f, v);
}

static int set_bool(avro_value_t *rec, const char *name, bool v) {
    avro_value_t f;
    return avro_value_get_by_name(rec, name, &f, NULL) || avro_value_set_boolean(&f, v);
}

/* A ["null", "string"] union: NULL means null. */
static int set_optional_string(avro_value_t *rec, const char *name, const char *s) {
    avro_value_t f, branch;
    if (avro_value_get_by_name(rec, name, &f, NULL) ||
        avro_value_set_branch(&f, s ? 1 : 0, &branch))
        return -1;
    return s ? avro_value_set_string(&branch, s) : avro_value_set_null(&branch);
}

/* A ["null", "long"] union: null unless `present`. */
static int set_optional_long(avro_value_t *rec, const char *name, bool present, int64_t v) {
    avro_value_t f, branch;
    if (avro_value_get_by_name(rec, name, &f, NULL) ||
        avro_value_set_branch(&f, present ? 1 : 0, &branch))
        return -1;
    return present ? avro_value_set_long(&branch, v) : avro_value_set_null(&branch);
}

/* A ["null", "bytes"] union holding a digest, or null. A schema without the
 * field (ExpireHold has no request_sha256) takes only an absent digest. */
static int set_optional_digest(avro_value_t *rec, const char *name, const ts_digest *d) {
    avro_value_t f, branch;
    if (avro_value_get_by_name(rec, name, &f, NULL))
        return d->present ? -1 : 0;
    if (avro_value_set_branch(&f, d->present ? 1 : 0, &branch))
        return -1;
    return d->present ? avro_value_set_bytes(&branch, (void *)d->bytes, sizeof d->bytes)
                      : avro_value_set_null(&branch);
}

/* Writes v's body after a header of `hlen` bytes already in buf. */
static ts_codec_status write_body(ts_codec *c, avro_value_t *v, size_t hlen, uint8_t *buf,
                                  size_t cap, size_t *len) {
    avro_writer_memory_set_dest(c->writer, (const char *)buf + hlen, (int64_t)(cap - hlen));
    if (avro_value_write(c->writer, v))
        return TS_CODEC_TOO_BIG;
    *len = hlen + (size_t)avro_writer_tell(c->writer);
    return TS_CODEC_OK;
}

static ts_codec_status finish(ts_codec *c, avro_value_t *v, uint64_t fp, uint8_t *buf, size_t cap,
                              size_t *len) {
    if (cap < TS_AVRO_HEADER_LEN)
        return TS_CODEC_TOO_BIG;
    ts_avro_write_header(buf, fp);
    return write_body(c, v, TS_AVRO_HEADER_LEN, buf, cap, len);
}

static ts_codec_status finish_registry(ts_codec *c, avro_value_t *v, int32_t id, uint8_t *buf,
                                       size_t cap, size_t *len) {
    if (cap < TS_REGISTRY_HEADER_LEN)
        return TS_CODEC_TOO_BIG;
    uint32_t u = (uint32_t)id;
    buf[0] = 0;
    buf[1] = (uint8_t)(u >> 24);
    buf[2] = (uint8_t)(u >> 16);
    buf[3] = (uint8_t)(u >> 8);
    buf[4] = (uint8_t)u;
    return write_body(c, v, TS_REGISTRY_HEADER_LEN, buf, cap, len);
}

/* The optional fields of an UpdateEvent: null unless set. */
static int encode_update(avro_value_t *v, const ts_command *cmd) {
    const bool has_title = cmd->u.update.has_title, has_description = cmd->u.update.has_description,
               has_location = cmd->u.update.has_location;
    return set_optional_string(v, "title", has_title ? cmd->u.update.title : NULL) ||
           set_optional_string(v, "description",
                               has_description ? cmd->u.update.description : NULL) ||
           set_optional_string(v, "location", has_location ? cmd->u.update.location : NULL) ||
           set_optional_long(v, "starts_at", cmd->u.update.has_starts_at,
                             cmd->u.update.starts_at_ms) ||
           set_optional_long(v, "capacity", cmd->u.update.has_capacity, cmd->u.update.capacity);
}

ts_codec_status ts_codec_encode_command(ts_codec *c, const ts_command *cmd, uint8_t *buf,
                                        size_t cap, size_t *len) {
    int i = slot_of(cmd->type);
    if (i < 0)
        return TS_CODEC_INVALID;
    avro_value_t *v = &c->s[i].value;
    avro_value_reset(v);

    avro_value_t reply_to, branch;
    int rc = set_string(v, "command_id", cmd->command_id) ||
             set_long(v, "issued_at", cmd->issued_at_ms) ||
             set_string(v, "event_id", cmd->event_id) ||
             set_optional_digest(v, "request_sha256", &cmd->request_sha256) ||
             avro_value_get_by_name(v, "reply_to", &reply_to, NULL);
    if (!rc && cmd->reply_topic[0]) {
        rc = avro_value_set_branch(&reply_to, 1, &branch) ||
             set_string(&branch, "topic", cmd->reply_topic);
        avro_value_t part;
        rc = rc || avro_value_get_by_name(&branch, "partition", &part, NULL) ||
             avro_value_set_int(&part, cmd->reply_partition);
    } else if (!rc) {
        rc = avro_value_set_branch(&reply_to, 0, &branch) || avro_value_set_null(&branch);
    }

    switch (cmd->type) {
    case TS_CMD_CREATE_EVENT:
        rc =
            rc || set_string(v, "title", cmd->u.create.title) ||
            set_optional_string(v, "description",
                                cmd->u.create.has_description ? cmd->u.create.description : NULL) ||
            set_long(v, "starts_at", cmd->u.create.starts_at_ms) ||
            set_string(v, "location", cmd->u.create.location) ||
            set_long(v, "capacity", cmd->u.create.capacity);
        break;
    case TS_CMD_REGISTER:
        rc = rc || set_string(v, "name", cmd->u.reg.name) ||
             set_string(v, "email", cmd->u.reg.email) ||
             set_optional_digest(v, "cancel_token_sha256", &cmd->u.reg.cancel_token_sha256) ||
             set_bool(v, "waitlist", cmd->u.reg.waitlist);
        break;
    case TS_CMD_CANCEL:
        rc = rc || set_string(v, "user_id", cmd->u.cancel.user_id) ||
             set_optional_digest(v, "token_sha256", &cmd->u.cancel.token_sha256);
        break;
    case TS_CMD_PLACE_HOLD:
        rc = rc || set_string(v, "name", cmd->u.hold.name) ||
             set_string(v, "email", cmd->u.hold.email) || set_long(v, "ttl_ms", cmd->u.hold.ttl_ms);
        break;
    case TS_CMD_CONFIRM_HOLD:
        rc = rc || set_string(v, "hold_id", cmd->u.hold_ref.hold_id) ||
             set_optional_digest(v, "cancel_token_sha256", &cmd->u.hold_ref.cancel_token_sha256);
        break;
    case TS_CMD_RELEASE_HOLD:
    case TS_CMD_EXPIRE_HOLD:
        /* only a confirmation gives a registration, and so a token */
        rc = rc || cmd->u.hold_ref.cancel_token_sha256.present ||
             set_string(v, "hold_id", cmd->u.hold_ref.hold_id);
        break;
    case TS_CMD_UPDATE_EVENT: rc = rc || encode_update(v, cmd); break;
    case TS_CMD_CANCEL_EVENT:
    case TS_CMD_COUNT_: break;
    }
    if (rc)
        return TS_CODEC_INVALID;
    return finish(c, v, c->s[i].fingerprint, buf, cap, len);
}

/* The reply's record in the slot's value; 0, or -1 for what it cannot hold. */
static int fill_reply(ts_codec *c, const ts_reply *r) {
    avro_value_t *v = &c->s[S_REPLY].value;
    avro_value_reset(v);
    avro_value_t outcome;
    /* a position past Avro's long is past any WAL there is (8 EiB) */
    if ((unsigned)r->outcome >= TS_OUT_COUNT_ || r->position < 0 || r->commit_lsn > INT64_MAX)
        return -1;
    int rc = set_string(v, "command_id", r->command_id) || set_string(v, "event_id", r->event_id) ||
             avro_value_get_by_name(v, "outcome", &outcome, NULL) ||
             avro_value_set_enum(&outcome, (int)r->outcome) ||
             set_optional_string(v, "user_id", r->user_id[0] ? r->user_id : NULL) ||
             set_optional_string(v, "message", r->message[0] ? r->message : NULL) ||
             set_long(v, "applied_at", r->applied_at_ms) ||
             set_optional_long(v, "position", r->position != 0, r->position) ||
             set_optional_string(v, "hold_id", r->hold_id[0] ? r->hold_id : NULL) ||
             set_optional_long(v, "expires_at", r->expires_at_ms != 0, r->expires_at_ms) ||
             set_long(v, "commit_lsn", (int64_t)r->commit_lsn);
    return rc ? -1 : 0;
}

ts_codec_status ts_codec_encode_reply(ts_codec *c, const ts_reply *r, uint8_t *buf, size_t cap,
                                      size_t *len) {
    if (fill_reply(c, r))
        return TS_CODEC_INVALID;
    return finish(c, &c->s[S_REPLY].value, c->s[S_REPLY].fingerprint, buf, cap, len);
}

ts_codec_status ts_codec_encode_reply_registry(ts_codec *c, const ts_reply *r, int32_t schema_id,
                                               uint8_t *buf, size_t cap, size_t *len) {
    if (schema_id < 0 || fill_reply(c, r))
        return TS_CODEC_INVALID;
    return finish_registry(c, &c->s[S_REPLY].value, schema_id, buf, cap, len);
}

/* ------------------------------------------------------------------ decoding */

typedef struct decoder {
    avro_value_t *rec;
    char *err;
    size_t errlen;
    ts_codec_status status; /* the first failure wins */
} decoder;

static void reject(decoder *d, ts_codec_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reject(decoder *d, ts_codec_status st, const char *fmt, ...) {
    if (d->status != TS_CODEC_OK)
        return;
    d->status = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->err, d->errlen, fmt, ap);
    va_end(ap);
}

/* Copies a string into dst[cap]; it must fit and hold no NUL byte. */
static void copy_string(decoder *d, avro_value_t *f, const char *name, char *dst, size_t cap) {
    const char *s;
    size_t size; /* avro-c counts the terminating NUL */
    if (avro_value_get_string(f, &s, &size) || size == 0) {
        reject(d, TS_CODEC_CORRUPT, "%s: not a string", name);
        return;
    }
    size_t n = size - 1;
    if (memchr(s, '\0', n)) {
        reject(d, TS_CODEC_INVALID, "%s: contains a NUL byte", name);
    } else if (n >= cap) {
        reject(d, TS_CODEC_INVALID, "%s: longer than %zu bytes", name, cap - 1);
    } else {
        memcpy(dst, s, n);
        dst[n] = '\0';
    }
}

static void get_string(decoder *d, const char *name, char *dst, size_t cap) {
    avro_value_t f;
    if (avro_value_get_by_name(d->rec, name, &f, NULL))
        reject(d, TS_CODEC_CORRUPT, "%s: missing", name);
    else
        copy_string(d, &f, name, dst, cap);
}

/* Copies a UUID string `f` in canonical form into dst. */
static void copy_uuid(decoder *d, avro_value_t *f, const char *name, char dst[TS_UUID_LEN + 1]) {
    char raw[64] = "";
    copy_string(d, f, name, raw, sizeof raw);
    if (d->status == TS_CODEC_OK && ts_uuid_normalize(raw, dst))
        reject(d, TS_CODEC_INVALID, "%s: not a UUID", name);
}

static void get_uuid(decoder *d, const char *name, char dst[TS_UUID_LEN + 1]) {
    avro_value_t f;
    if (avro_value_get_by_name(d->rec, name, &f, NULL))
        reject(d, TS_CODEC_CORRUPT, "%s: missing", name);
    else
        copy_uuid(d, &f, name, dst);
}

static int64_t get_long(decoder *d, const char *name) {
    avro_value_t f;
    int64_t v = 0;
    if (avro_value_get_by_name(d->rec, name, &f, NULL) || avro_value_get_long(&f, &v))
        reject(d, TS_CODEC_CORRUPT, "%s: not a long", name);
    return v;
}

/* An enum's symbol index: one of the writer schema's symbols (avro-c
 * checks none: an older version's index past its own symbols is corrupt),
 * and one of the `count` this codec knows. */
static int get_enum(decoder *d, const char *name, int count) {
    avro_value_t f;
    int v = -1;
    if (avro_value_get_by_name(d->rec, name, &f, NULL) || avro_value_get_enum(&f, &v) || v < 0 ||
        v >= avro_schema_enum_number_of_symbols(avro_value_get_schema(&f)) || v >= count)
        reject(d, TS_CODEC_CORRUPT, "%s: not a known symbol", name);
    return v;
}

/* Whether the writer's schema has the field: one added in a later version
 * is absent from an older message, and reads as its default. */
static bool has_field(decoder *d, const char *name) {
    avro_value_t f;
    return avro_value_get_by_name(d->rec, name, &f, NULL) == 0;
}

/* A boolean field added later, false when absent. */
static bool get_added_bool(decoder *d, const char *name) {
    avro_value_t f;
    int v = 0;
    if (!has_field(d, name))
        return false;
    if (avro_value_get_by_name(d->rec, name, &f, NULL) || avro_value_get_boolean(&f, &v))
        reject(d, TS_CODEC_CORRUPT, "%s: not a boolean", name);
    return v != 0;
}

/* A ["null", T] union: returns its branch in *branch, or 0 when null or
 * absent (a writer's schema without it: its default, null). */
static int get_branch(decoder *d, const char *name, avro_value_t *branch) {
    avro_value_t f;
    int disc = 0;
    if (!has_field(d, name))
        return 0;
    if (avro_value_get_by_name(d->rec, name, &f, NULL) || avro_value_get_discriminant(&f, &disc) ||
        avro_value_get_current_branch(&f, branch)) {
        reject(d, TS_CODEC_CORRUPT, "%s: not a union", name);
        return 0;
    }
    return disc == 1;
}

static void get_optional_string(decoder *d, const char *name, char *dst, size_t cap,
                                bool *present) {
    avro_value_t branch;
    *present = get_branch(d, name, &branch);
    dst[0] = '\0';
    if (*present)
        copy_string(d, &branch, name, dst, cap);
}

/* A ["null", uuid] union into dst, "" when null. */
static bool get_optional_uuid(decoder *d, const char *name, char dst[TS_UUID_LEN + 1]) {
    avro_value_t branch;
    dst[0] = '\0';
    if (!get_branch(d, name, &branch))
        return false;
    copy_uuid(d, &branch, name, dst);
    return true;
}

/* A ["null", "long"] union: its value, or 0 with *present false. */
static int64_t get_optional_long(decoder *d, const char *name, bool *present) {
    avro_value_t branch;
    int64_t v = 0;
    *present = get_branch(d, name, &branch);
    if (*present && avro_value_get_long(&branch, &v))
        reject(d, TS_CODEC_CORRUPT, "%s: not a long", name);
    return v;
}

/* A ["null", "bytes"] digest added in a later version of the schema: absent
 * from an older message (the default, null), else null or 32 bytes. */
static void get_optional_digest(decoder *d, const char *name, ts_digest *out) {
    avro_value_t f, branch;
    out->present = false;
    if (avro_value_get_by_name(d->rec, name, &f, NULL))
        return; /* an older writer's schema */
    int disc = 0;
    if (avro_value_get_discriminant(&f, &disc) || avro_value_get_current_branch(&f, &branch)) {
        reject(d, TS_CODEC_CORRUPT, "%s: not a union", name);
        return;
    }
    if (disc != 1)
        return;
    const void *bytes;
    size_t size;
    if (avro_value_get_bytes(&branch, &bytes, &size)) {
        reject(d, TS_CODEC_CORRUPT, "%s: not bytes", name);
    } else if (size != TS_SHA256_LEN) {
        reject(d, TS_CODEC_INVALID, "%s: %zu bytes, not a SHA-256 (32)", name, size);
    } else {
        memcpy(out->bytes, bytes, size);
        out->present = true;
    }
}

/* Reads the body after the header into the slot's value; the body must be
 * consumed exactly.
 *
 * avro-c 1.11 allocates a string's buffer before it reads the bytes, and
 * leaks it when the input ends early. So a first pass skips through the
 * body (avro_skip_data: bounds-checked, no allocation), and the decoding
 * pass only runs on a body whose every length fits. */
static ts_codec_status read_body(ts_codec *c, avro_schema_t writer, avro_value_t *value,
                                 avro_value_t *dest, const uint8_t *body, size_t len, decoder *d) {
    char extra;
    avro_reader_memory_set_source(c->reader, (const char *)body, (int64_t)len);
    if (avro_skip_data(c->reader, writer)) {
        reject(d, TS_CODEC_CORRUPT, "body does not decode: %s", avro_strerror());
        return d->status;
    }
    if (avro_read(c->reader, &extra, 1) == 0) {
        reject(d, TS_CODEC_CORRUPT, "trailing bytes after the body");
        return d->status;
    }
    avro_value_reset(dest);
    avro_reader_memory_set_source(c->reader, (const char *)body, (int64_t)len);
    if (avro_value_read(c->reader, value))
        reject(d, TS_CODEC_CORRUPT, "body does not decode: %s", avro_strerror());
    return d->status;
}

static int header(const void *msg, size_t len, uint64_t *fp, decoder *d) {
    if (ts_avro_read_header(msg, len, fp)) {
        reject(d, TS_CODEC_NO_HEADER, "not an Avro single-object message (%zu bytes)", len);
        return -1;
    }
    return 0;
}

/* Which of the three families a slot's record belongs to. */
enum family { F_COMMAND, F_REPLY, F_CHANGE };

static enum family family_of(int i) {
    int kind = schema_files[i].kind;
    return kind == S_REPLY ? F_REPLY : kind == S_CHANGE ? F_CHANGE : F_COMMAND;
}

static const char *const family_names[] = {"a command", "a reply", "a change"};

static learned *find_learned(ts_codec *c, int32_t id) {
    for (size_t i = 0; i < c->nlearned; i++)
        if (c->learned[i].id == id)
            return &c->learned[i];
    return NULL;
}

/* A registry-framed message: its body read with the learned schema of its
 * id, into d->rec. The slot's index, or -1 with d's status set. */
static int open_registry(ts_codec *c, const uint8_t *msg, size_t len, enum family family,
                         decoder *d) {
    int32_t id = (int32_t)ts_codec_registry_id(msg, len);
    learned *l = id < 0 ? NULL : find_learned(c, id);
    if (id < 0) {
        reject(d, TS_CODEC_NO_HEADER, "registry framing shorter than its header (%zu bytes)", len);
        return -1;
    }
    if (!l) {
        reject(d, TS_CODEC_SCHEMA_NEEDED, "schema id %d not learned", id);
        return -1;
    }
    if (l->slot < 0) {
        reject(d, TS_CODEC_UNKNOWN_SCHEMA, "schema id %d: %s", id, l->why);
        return -1;
    }
    if (family_of(l->slot) != family) {
        reject(d, TS_CODEC_UNKNOWN_SCHEMA, "schema id %d is %s, not %s", id,
               family_names[family_of(l->slot)], family_names[family]);
        return -1;
    }
    const uint8_t *body = msg + TS_REGISTRY_HEADER_LEN;
    size_t blen = len - TS_REGISTRY_HEADER_LEN;
    slot *s = &c->s[l->slot];
    if (!l->resolver) {
        d->rec = &s->value;
        return read_body(c, s->schema, &s->value, &s->value, body, blen, d) == TS_CODEC_OK ? l->slot
                                                                                           : -1;
    }
    d->rec = &l->reader_value;
    return read_body(c, l->writer, &l->resolved, &l->reader_value, body, blen, d) == TS_CODEC_OK
               ? l->slot
               : -1;
}

/* Reads a message into the value of its writer's schema: a single-object
 * message into the slot its fingerprint names, among those of the family
 * (of any version); a registry-framed one as open_registry does. Sets
 * d->rec to the record read. The slot's index, or -1 with d's status and
 * message set. */
static int open_message(ts_codec *c, const void *msg, size_t len, enum family family, decoder *d) {
    if (len > 0 && *(const uint8_t *)msg == 0)
        return open_registry(c, msg, len, family, d);
    uint64_t fp;
    if (header(msg, len, &fp, d))
        return -1;
    for (int i = 0; i < S_COUNT; i++)
        if (family_of(i) == family && c->s[i].fingerprint == fp) {
            d->rec = &c->s[i].value;
            return read_body(c, c->s[i].schema, &c->s[i].value, &c->s[i].value,
                             (const uint8_t *)msg + TS_AVRO_HEADER_LEN, len - TS_AVRO_HEADER_LEN,
                             d) == TS_CODEC_OK
                       ? i
                       : -1;
        }
    reject(d, TS_CODEC_UNKNOWN_SCHEMA, "unknown schema fingerprint %016llx",
           (unsigned long long)fp);
    return -1;
}

/* ------------------------------------------------------------------ the registry's schemas */

int64_t ts_codec_registry_id(const void *msg, size_t len) {
    const uint8_t *b = msg;
    if (len < TS_REGISTRY_HEADER_LEN || b[0] != 0)
        return -1;
    return (int64_t)(((uint32_t)b[1] << 24) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 8) |
                     (uint32_t)b[4]);
}

/* A record's full name: namespace.name, or name. */
static void full_name(avro_schema_t s, char *out, size_t cap) {
    const char *ns = avro_schema_namespace(s), *name = avro_schema_type_name(s);
    snprintf(out, cap, "%s%s%s", ns ? ns : "", ns && *ns ? "." : "", name ? name : "");
}

/* The current slot of the record named like `writer`, or -1. */
static int slot_named(ts_codec *c, avro_schema_t writer) {
    char want[256], have[256];
    if (!is_avro_record(writer))
        return -1;
    full_name(writer, want, sizeof want);
    for (int i = 0; i < S_CURRENT_END; i++) {
        full_name(c->s[i].schema, have, sizeof have);
        if (strcmp(want, have) == 0)
            return i;
    }
    return -1;
}

/* Slot i's schema less the top-level fields `writer` lacks (each must have
 * a default): avro-c's resolution knows no defaults, so the reader side
 * must not ask for them. NULL with err set when a field the writer lacks
 * has no default. */
static avro_schema_t reader_for(int i, avro_schema_t writer, char *err, size_t errlen) {
    const ts_embedded *e = ts_embedded_find(ts_embedded_schemas, schema_files[i].file);
    json_error_t jerr;
    json_t *root = json_loadb(e->data, e->len, 0, &jerr);
    json_t *fields = json_object_get(root, "fields"), *kept = json_array();
    avro_schema_t out = NULL;
    size_t k;
    json_t *f;
    if (!root || !json_is_array(fields) || !kept) {
        snprintf(err, errlen, "%s: cannot be parsed again", e->name);
        goto done;
    }
    json_array_foreach(fields, k, f) {
        const char *name = json_string_value(json_object_get(f, "name"));
        if (name && avro_schema_record_field_get_index(writer, name) >= 0) {
            json_array_append(kept, f);
        } else if (!json_object_get(f, "default")) {
            snprintf(err, errlen, "field %s has no default and the writer's schema lacks it",
                     name ? name : "?");
            goto done;
        }
    }
    json_object_set(root, "fields", kept);
    char *text = json_dumps(root, JSON_COMPACT);
    if (!text || avro_schema_from_json_length(text, strlen(text), &out)) {
        snprintf(err, errlen, "%s: %s", e->name, text ? avro_strerror() : "out of memory");
        out = NULL;
    }
    free(text);
done:
    json_decref(kept);
    json_decref(root);
    return out;
}

/* Fills l (its id set, the rest zero) for `json`: l->slot, or -1 and
 * l->why when the codec cannot read it. */
static void learn(ts_codec *c, learned *l, const char *json) {
    char err[sizeof l->why] = "";
    uint64_t fp;
    l->slot = -1;
    if (avro_schema_from_json_length(json, strlen(json), &l->writer)) {
        snprintf(l->why, sizeof l->why, "not a schema: %s", avro_strerror());
        l->writer = NULL;
        return;
    }
    if (ts_avro_fingerprint(json, &fp, err, sizeof err) == 0)
        for (int i = 0; i < S_COUNT; i++)
            if (c->s[i].fingerprint == fp) {
                l->slot = i; /* one of the codec's own: read as it */
                return;
            }
    int i = slot_named(c, l->writer);
    if (i < 0) {
        char name[128] = "";
        if (is_avro_record(l->writer))
            full_name(l->writer, name, sizeof name);
        snprintf(l->why, sizeof l->why, "%s%s is no record of turnstile's", name[0] ? "" : "a ",
                 name[0] ? name : avro_schema_type_name(l->writer));
        return;
    }
    l->reader = reader_for(i, l->writer, err, sizeof err);
    if (l->reader)
        l->reader_iface = avro_generic_class_from_schema(l->reader);
    if (l->reader_iface && avro_generic_value_new(l->reader_iface, &l->reader_value) == 0) {
        l->resolver = avro_resolved_writer_new(l->writer, l->reader);
        if (!l->resolver)
            snprintf(err, sizeof err, "%s", avro_strerror());
    }
    if (l->resolver && avro_resolved_writer_new_value(l->resolver, &l->resolved) == 0) {
        avro_resolved_writer_set_dest(&l->resolved, &l->reader_value);
        l->slot = i;
        return;
    }
    char name[128];
    full_name(l->writer, name, sizeof name);
    snprintf(l->why, sizeof l->why, "%s cannot be read as turnstile's: %s", name,
             err[0] ? err : avro_strerror());
}

bool ts_codec_knows_schema(const ts_codec *c, int32_t id) {
    return find_learned((ts_codec *)c, id) != NULL;
}

ts_codec_status ts_codec_learn_schema(ts_codec *c, int32_t id, const char *json, char *err,
                                      size_t errlen) {
    learned *l = find_learned(c, id);
    if (!l) {
        if (c->nlearned == TS_CODEC_LEARNED_MAX) {
            snprintf(err, errlen, "schema id %d: more than %d registry schemas", id,
                     TS_CODEC_LEARNED_MAX);
            return TS_CODEC_UNKNOWN_SCHEMA;
        }
        if (!c->learned) {
            c->learned = calloc(TS_CODEC_LEARNED_MAX, sizeof *c->learned);
            if (!c->learned) {
                snprintf(err, errlen, "out of memory");
                return TS_CODEC_UNKNOWN_SCHEMA;
            }
        }
        l = &c->learned[c->nlearned++];
        l->id = id;
        learn(c, l, json);
    }
    if (l->slot < 0) {
        snprintf(err, errlen, "schema id %d: %s", id, l->why);
        return TS_CODEC_UNKNOWN_SCHEMA;
    }
    return TS_CODEC_OK;
}

/* The optional fields of an UpdateEvent, at least one of them set. */
static void decode_update(decoder *d, ts_command *out) {
    get_optional_string(d, "title", out->u.update.title, sizeof out->u.update.title,
                        &out->u.update.has_title);
    get_optional_string(d, "description", out->u.update.description,
                        sizeof out->u.update.description, &out->u.update.has_description);
    get_optional_string(d, "location", out->u.update.location, sizeof out->u.update.location,
                        &out->u.update.has_location);
    out->u.update.starts_at_ms = get_optional_long(d, "starts_at", &out->u.update.has_starts_at);
    out->u.update.capacity = get_optional_long(d, "capacity", &out->u.update.has_capacity);
    if (out->u.update.has_title && !out->u.update.title[0])
        reject(d, TS_CODEC_INVALID, "title: empty");
    if (out->u.update.has_location && !out->u.update.location[0])
        reject(d, TS_CODEC_INVALID, "location: empty");
    int64_t capacity = out->u.update.capacity;
    if (out->u.update.has_capacity && (capacity < 1 || capacity > TS_CAPACITY_MAX))
        reject(d, TS_CODEC_INVALID, "capacity: %lld is not within 1..%ld", (long long)capacity,
               TS_CAPACITY_MAX);
    if (!out->u.update.has_title && !out->u.update.has_description && !out->u.update.has_location &&
        !out->u.update.has_starts_at && !out->u.update.has_capacity)
        reject(d, TS_CODEC_INVALID,
               "update: no field set (title, description, location, starts_at or capacity)");
}

ts_codec_status ts_codec_decode_command(ts_codec *c, const void *msg, size_t len, ts_command *out,
                                        char *err, size_t errlen) {
    decoder d = {.err = err, .errlen = errlen, .status = TS_CODEC_OK};
    int i = open_message(c, msg, len, F_COMMAND, &d);
    if (i < 0)
        return d.status;
    memset(out, 0, sizeof *out);
    out->type = schema_files[i].type;
    out->registry_framed = *(const uint8_t *)msg == 0;
    get_uuid(&d, "command_id", out->command_id);
    out->issued_at_ms = get_long(&d, "issued_at");
    get_uuid(&d, "event_id", out->event_id);
    get_optional_digest(&d, "request_sha256", &out->request_sha256);

    avro_value_t reply_to;
    if (get_branch(&d, "reply_to", &reply_to)) {
        avro_value_t f;
        decoder sub = d;
        sub.rec = &reply_to;
        get_string(&sub, "topic", out->reply_topic, sizeof out->reply_topic);
        int32_t part = -1;
        if (avro_value_get_by_name(&reply_to, "partition", &f, NULL) ||
            avro_value_get_int(&f, &part))
            reject(&sub, TS_CODEC_CORRUPT, "reply_to.partition: not an int");
        else if (part < 0)
            reject(&sub, TS_CODEC_INVALID, "reply_to.partition: negative");
        else if (!out->reply_topic[0])
            reject(&sub, TS_CODEC_INVALID, "reply_to.topic: empty");
        out->reply_partition = part;
        d.status = sub.status;
    }

    switch (out->type) {
    case TS_CMD_CREATE_EVENT:
        get_string(&d, "title", out->u.create.title, sizeof out->u.create.title);
        get_optional_string(&d, "description", out->u.create.description,
                            sizeof out->u.create.description, &out->u.create.has_description);
        out->u.create.starts_at_ms = get_long(&d, "starts_at");
        get_string(&d, "location", out->u.create.location, sizeof out->u.create.location);
        out->u.create.capacity = get_long(&d, "capacity");
        break;
    case TS_CMD_REGISTER:
        get_string(&d, "name", out->u.reg.name, sizeof out->u.reg.name);
        get_string(&d, "email", out->u.reg.email, sizeof out->u.reg.email);
        get_optional_digest(&d, "cancel_token_sha256", &out->u.reg.cancel_token_sha256);
        out->u.reg.waitlist = get_added_bool(&d, "waitlist");
        break;
    case TS_CMD_CANCEL:
        get_uuid(&d, "user_id", out->u.cancel.user_id);
        get_optional_digest(&d, "token_sha256", &out->u.cancel.token_sha256);
        break;
    case TS_CMD_PLACE_HOLD:
        get_string(&d, "name", out->u.hold.name, sizeof out->u.hold.name);
        get_string(&d, "email", out->u.hold.email, sizeof out->u.hold.email);
        out->u.hold.ttl_ms = get_long(&d, "ttl_ms");
        if (out->u.hold.ttl_ms < TS_HOLD_TTL_MIN_MS || out->u.hold.ttl_ms > TS_HOLD_TTL_MAX_MS)
            reject(&d, TS_CODEC_INVALID, "ttl_ms: %lld is not within %ld..%ld",
                   (long long)out->u.hold.ttl_ms, TS_HOLD_TTL_MIN_MS, TS_HOLD_TTL_MAX_MS);
        break;
    case TS_CMD_CONFIRM_HOLD:
    case TS_CMD_RELEASE_HOLD:
    case TS_CMD_EXPIRE_HOLD:
        get_uuid(&d, "hold_id", out->u.hold_ref.hold_id);
        get_optional_digest(&d, "cancel_token_sha256", &out->u.hold_ref.cancel_token_sha256);
        break;
    case TS_CMD_UPDATE_EVENT: decode_update(&d, out); break;
    case TS_CMD_CANCEL_EVENT:
    case TS_CMD_COUNT_: break;
    }
    return d.status;
}

ts_codec_status ts_codec_decode_reply(ts_codec *c, const void *msg, size_t len, ts_reply *out,
                                      char *err, size_t errlen) {
    decoder d = {.err = err, .errlen = errlen, .status = TS_CODEC_OK};
    int i = open_message(c, msg, len, F_REPLY, &d);
    if (i < 0)
        return d.status;
    memset(out, 0, sizeof *out);
    get_uuid(&d, "command_id", out->command_id);
    get_uuid(&d, "event_id", out->event_id);
    out->outcome = (ts_outcome)get_enum(&d, "outcome", TS_OUT_COUNT_);
    get_optional_uuid(&d, "user_id", out->user_id);
    bool present;
    get_optional_string(&d, "message", out->message, sizeof out->message, &present);
    out->applied_at_ms = get_long(&d, "applied_at");
    /* added in version 3 */
    if (has_field(&d, "position")) {
        out->position = get_optional_long(&d, "position", &present);
        if (present && out->position < 1)
            reject(&d, TS_CODEC_INVALID, "position: %lld is not positive",
                   (long long)out->position);
    }
    if (has_field(&d, "hold_id"))
        get_optional_uuid(&d, "hold_id", out->hold_id);
    if (has_field(&d, "expires_at"))
        out->expires_at_ms = get_optional_long(&d, "expires_at", &present);
    /* added in version 4 */
    if (has_field(&d, "commit_lsn")) {
        int64_t lsn = get_long(&d, "commit_lsn");
        if (lsn < 0)
            reject(&d, TS_CODEC_INVALID, "commit_lsn: %lld is negative", (long long)lsn);
        else
            out->commit_lsn = (uint64_t)lsn;
    }
    return d.status;
}

/* ------------------------------------------------------------------ the event stream */

/* The optional fields of a change, as bits. */
enum {
    C_USER = 1 << 0,
    C_NAME = 1 << 1,
    C_EMAIL = 1 << 2,
    C_POSITION = 1 << 3,
    C_HOLD = 1 << 4,
    C_EXPIRES = 1 << 5,
    C_TITLE = 1 << 6,
    C_DESCRIPTION = 1 << 7,
    C_LOCATION = 1 << 8,
    C_STARTS = 1 << 9,
    C_CAPACITY = 1 << 10,
    C_PERSON = C_USER | C_NAME | C_EMAIL,
    C_EVENT_FIELDS = C_TITLE | C_DESCRIPTION | C_LOCATION | C_STARTS | C_CAPACITY,
};

static const char *const change_field_names[] = {
    "user_id", "name",        "email",    "position",  "hold_id",  "expires_at",
    "title",   "description", "location", "starts_at", "capacity",
};

/* What each type must carry (ts_change in ts_codec.h); an EventUpdated
 * carries at least one of the event's fields. */
static const unsigned change_requires[TS_CH_COUNT_] = {
    [TS_CH_EVENT_CREATED] = C_TITLE | C_LOCATION | C_STARTS | C_CAPACITY,
    [TS_CH_EVENT_UPDATED] = 0,
    [TS_CH_EVENT_CANCELLED] = 0,
    [TS_CH_REGISTERED] = C_PERSON,
    [TS_CH_WAITLISTED] = C_PERSON | C_POSITION,
    [TS_CH_PROMOTED] = C_PERSON,
    [TS_CH_REGISTRATION_CANCELLED] = C_USER,
    [TS_CH_HOLD_PLACED] = C_PERSON | C_HOLD | C_EXPIRES,
    [TS_CH_HOLD_CONFIRMED] = C_USER | C_HOLD,
    [TS_CH_HOLD_RELEASED] = C_USER | C_HOLD,
    [TS_CH_HOLD_EXPIRED] = C_USER | C_HOLD,
};

/* The rules of a change, whether about to be written or just read: what
 * one encodes, the other decodes. 0, or -1 with `err` set. */
static int check_change(const ts_change *ch, char *err, size_t errlen) {
    char uuid[TS_UUID_LEN + 1];
    if ((unsigned)ch->type >= TS_CH_COUNT_) {
        snprintf(err, errlen, "type: not a known symbol");
        return -1;
    }
    const char *type = ts_change_type_name(ch->type);
    const struct {
        const char *name, *value;
        size_t max;
        bool uuid;
    } strings[] = {
        {"event_id", ch->event_id, TS_UUID_LEN, true},
        {"command_id", ch->command_id, TS_UUID_LEN, true},
        {"user_id", ch->user_id, TS_UUID_LEN, true},
        {"hold_id", ch->hold_id, TS_UUID_LEN, true},
        {"name", ch->name, TS_NAME_MAX, false},
        {"email", ch->email, TS_EMAIL_MAX, false},
        {"title", ch->title, TS_TITLE_MAX, false},
        {"description", ch->description, TS_DESCRIPTION_MAX, false},
        {"location", ch->location, TS_LOCATION_MAX, false},
    };
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        const char *s = strings[i].value;
        if (!s && i < 2) {
            snprintf(err, errlen, "%s: missing", strings[i].name);
            return -1;
        }
        if (s && strings[i].uuid && ts_uuid_normalize(s, uuid)) {
            snprintf(err, errlen, "%s: not a UUID", strings[i].name);
            return -1;
        }
        if (s && strlen(s) > strings[i].max) {
            snprintf(err, errlen, "%s: longer than %zu bytes", strings[i].name, strings[i].max);
            return -1;
        }
    }
    if (ch->seq < 1) {
        snprintf(err, errlen, "seq: %lld is not positive", (long long)ch->seq);
        return -1;
    }
    if (ch->has_position && ch->position < 1) {
        snprintf(err, errlen, "position: %lld is not positive", (long long)ch->position);
        return -1;
    }
    unsigned has = (ch->user_id ? C_USER : 0) | (ch->name ? C_NAME : 0) |
                   (ch->email ? C_EMAIL : 0) | (ch->has_position ? C_POSITION : 0) |
                   (ch->hold_id ? C_HOLD : 0) | (ch->has_expires_at ? C_EXPIRES : 0) |
                   (ch->title ? C_TITLE : 0) | (ch->description ? C_DESCRIPTION : 0) |
                   (ch->location ? C_LOCATION : 0) | (ch->has_starts_at ? C_STARTS : 0) |
                   (ch->has_capacity ? C_CAPACITY : 0);
    unsigned missing = change_requires[ch->type] & ~has;
    for (size_t i = 0; missing; i++, missing >>= 1)
        if (missing & 1) {
            snprintf(err, errlen, "%s: missing from a %s change", change_field_names[i], type);
            return -1;
        }
    if (ch->type == TS_CH_EVENT_UPDATED && !(has & C_EVENT_FIELDS)) {
        snprintf(err, errlen, "%s: no field of the event set", type);
        return -1;
    }
    return 0;
}

ts_codec_status ts_codec_encode_change(ts_codec *c, const ts_change *ch, uint8_t *buf, size_t cap,
                                       size_t *len) {
    char err[128];
    if (check_change(ch, err, sizeof err))
        return TS_CODEC_INVALID;
    avro_value_t *v = &c->s[S_CHANGE].value;
    avro_value_reset(v);
    avro_value_t type;
    int rc = set_string(v, "event_id", ch->event_id) || set_long(v, "seq", ch->seq) ||
             avro_value_get_by_name(v, "type", &type, NULL) ||
             avro_value_set_enum(&type, (int)ch->type) ||
             set_long(v, "occurred_at", ch->occurred_at_ms) ||
             set_string(v, "command_id", ch->command_id) ||
             set_optional_string(v, "user_id", ch->user_id) ||
             set_optional_string(v, "name", ch->name) ||
             set_optional_string(v, "email", ch->email) ||
             set_optional_long(v, "position", ch->has_position, ch->position) ||
             set_optional_string(v, "hold_id", ch->hold_id) ||
             set_optional_long(v, "expires_at", ch->has_expires_at, ch->expires_at_ms) ||
             set_optional_string(v, "title", ch->title) ||
             set_optional_string(v, "description", ch->description) ||
             set_optional_string(v, "location", ch->location) ||
             set_optional_long(v, "starts_at", ch->has_starts_at, ch->starts_at_ms) ||
             set_optional_long(v, "capacity", ch->has_capacity, ch->capacity);
    if (rc)
        return TS_CODEC_INVALID;
    return finish(c, v, c->s[S_CHANGE].fingerprint, buf, cap, len);
}

/* A ["null", "string"] field of a change into its buffer: the buffer, or
 * NULL when null. */
static const char *get_change_string(decoder *d, const char *name, char *dst, size_t cap) {
    bool present;
    get_optional_string(d, name, dst, cap, &present);
    return present ? dst : NULL;
}

ts_codec_status ts_codec_decode_change(ts_codec *c, const void *msg, size_t len, ts_change_buf *out,
                                       char *err, size_t errlen) {
    decoder d = {.err = err, .errlen = errlen, .status = TS_CODEC_OK};
    int i = open_message(c, msg, len, F_CHANGE, &d);
    if (i < 0)
        return d.status;
    memset(out, 0, sizeof *out);
    ts_change *ch = &out->change;
    get_uuid(&d, "event_id", out->event_id);
    ch->event_id = out->event_id;
    ch->seq = get_long(&d, "seq");
    ch->type = (ts_change_type)get_enum(&d, "type", TS_CH_COUNT_);
    ch->occurred_at_ms = get_long(&d, "occurred_at");
    get_uuid(&d, "command_id", out->command_id);
    ch->command_id = out->command_id;
    ch->user_id = get_optional_uuid(&d, "user_id", out->user_id) ? out->user_id : NULL;
    ch->name = get_change_string(&d, "name", out->name, sizeof out->name);
    ch->email = get_change_string(&d, "email", out->email, sizeof out->email);
    ch->position = get_optional_long(&d, "position", &ch->has_position);
    ch->hold_id = get_optional_uuid(&d, "hold_id", out->hold_id) ? out->hold_id : NULL;
    ch->expires_at_ms = get_optional_long(&d, "expires_at", &ch->has_expires_at);
    ch->title = get_change_string(&d, "title", out->title, sizeof out->title);
    ch->description =
        get_change_string(&d, "description", out->description, sizeof out->description);
    ch->location = get_change_string(&d, "location", out->location, sizeof out->location);
    ch->starts_at_ms = get_optional_long(&d, "starts_at", &ch->has_starts_at);
    ch->capacity = get_optional_long(&d, "capacity", &ch->has_capacity);
    if (d.status == TS_CODEC_OK && check_change(ch, err, errlen))
        d.status = TS_CODEC_INVALID;
    return d.status;
}

/* ------------------------------------------------------------------ names */

const char *ts_codec_status_name(ts_codec_status st) {
    switch (st) {
    case TS_CODEC_OK: return "ok";
    case TS_CODEC_NO_HEADER: return "no_header";
    case TS_CODEC_UNKNOWN_SCHEMA: return "unknown_schema";
    case TS_CODEC_CORRUPT: return "corrupt";
    case TS_CODEC_INVALID: return "invalid";
    case TS_CODEC_TOO_BIG: return "too_big";
    case TS_CODEC_SCHEMA_NEEDED: return "schema_needed";
    }
    return "unknown";
}

const char *ts_outcome_name(ts_outcome o) {
    static const char *const names[TS_OUT_COUNT_] = {
        "CREATED",
        "REGISTERED",
        "CANCELLED",
        "EVENT_NOT_FOUND",
        "PAST_EVENT",
        "EVENT_FULL",
        "ALREADY_REGISTERED",
        "REGISTRATION_NOT_FOUND",
        "INVALID",
        "FORBIDDEN",
        "IDEMPOTENCY_KEY_REUSED",
        "WAITLISTED",
        "ALREADY_WAITLISTED",
        "HELD",
        "ALREADY_HELD",
        "HOLD_NOT_FOUND",
        "HOLD_EXPIRED",
        "RELEASED",
        "UPDATED",
        "CAPACITY_BELOW_TAKEN",
        "EVENT_CANCELLED",
    };
    return (unsigned)o < TS_OUT_COUNT_ ? names[o] : "UNKNOWN";
}

const char *ts_outcome_message(ts_outcome o) {
    static const char *const messages[TS_OUT_COUNT_] = {
        [TS_OUT_EVENT_NOT_FOUND] = "Event not found",
        [TS_OUT_PAST_EVENT] = "Cannot register for past events",
        [TS_OUT_EVENT_FULL] = "Event is full",
        [TS_OUT_ALREADY_REGISTERED] = "User already registered",
        [TS_OUT_REGISTRATION_NOT_FOUND] = "Registration not found",
        [TS_OUT_INVALID] = "Invalid command",
        [TS_OUT_FORBIDDEN] = "Invalid cancel token",
        [TS_OUT_IDEMPOTENCY_KEY_REUSED] = "Idempotency-Key reused with a different request",
        [TS_OUT_ALREADY_WAITLISTED] = "User already on the waitlist",
        [TS_OUT_ALREADY_HELD] = "User already holds a seat",
        [TS_OUT_HOLD_NOT_FOUND] = "Hold not found",
        [TS_OUT_HOLD_EXPIRED] = "Hold expired",
        [TS_OUT_CAPACITY_BELOW_TAKEN] = "Capacity is below the seats taken",
        [TS_OUT_EVENT_CANCELLED] = "Event is cancelled",
    };
    return (unsigned)o < TS_OUT_COUNT_ ? messages[o] : NULL;
}

int ts_outcome_parse(const char *name, ts_outcome *out) {
    for (int o = 0; o < TS_OUT_COUNT_; o++)
        if (strcmp(name, ts_outcome_name((ts_outcome)o)) == 0) {
            *out = (ts_outcome)o;
            return 0;
        }
    return -1;
}

/* As processed_commands.kind stores them. */
const char *ts_command_type_name(ts_command_type t) {
    static const char *const names[TS_CMD_COUNT_] = {
        [TS_CMD_CREATE_EVENT] = "create_event",
        [TS_CMD_REGISTER] = "register",
        [TS_CMD_CANCEL] = "cancel",
        [TS_CMD_PLACE_HOLD] = "place_hold",
        [TS_CMD_CONFIRM_HOLD] = "confirm_hold",
        [TS_CMD_RELEASE_HOLD] = "release_hold",
        [TS_CMD_EXPIRE_HOLD] = "expire_hold",
        [TS_CMD_UPDATE_EVENT] = "update_event",
        [TS_CMD_CANCEL_EVENT] = "cancel_event",
    };
    return (unsigned)t < TS_CMD_COUNT_ && names[t] ? names[t] : "unknown";
}

const char *ts_change_type_name(ts_change_type t) {
    static const char *const names[TS_CH_COUNT_] = {
        "EventCreated",  "EventUpdated", "EventCancelled",        "Registered",
        "Waitlisted",    "Promoted",     "RegistrationCancelled", "HoldPlaced",
        "HoldConfirmed", "HoldReleased", "HoldExpired",
    };
    return (unsigned)t < TS_CH_COUNT_ ? names[t] : "unknown";
}
