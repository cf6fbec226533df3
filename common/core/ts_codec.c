/* SPDX-License-Identifier: Apache-2.0 */
/* ts_codec.c — ts_command / ts_reply <-> Avro single-object messages.
 *
 * Each command type has its own schema, so the fingerprint in a message's
 * header says which command it is. avro-c does the binary encoding through
 * its generic values; one value per schema is kept and reset between calls,
 * so steady-state encoding and decoding allocate little. Every field that
 * comes off the wire is checked against the fixed buffers of ts_command
 * before it is copied. */
#include "ts_codec.h"

#include <avro.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_avro.h"
#include "ts_embedded.h"
#include "ts_uuid.h"

/* The slots up to S_REPLY are the current schemas, written and read; the
 * ones after, older versions, only read. */
enum {
    S_CREATE,
    S_REGISTER,
    S_CANCEL,
    S_REPLY,
    S_CREATE_V1,
    S_REGISTER_V1,
    S_CANCEL_V1,
    S_REPLY_V1,
    S_COUNT
};

static const struct {
    const char *file;
    int kind; /* the current slot of the same record */
} schema_files[S_COUNT] = {
    [S_CREATE] = {"create_event.avsc", S_CREATE},
    [S_REGISTER] = {"register.avsc", S_REGISTER},
    [S_CANCEL] = {"cancel.avsc", S_CANCEL},
    [S_REPLY] = {"reply.avsc", S_REPLY},
    [S_CREATE_V1] = {"create_event.v1.avsc", S_CREATE},
    [S_REGISTER_V1] = {"register.v1.avsc", S_REGISTER},
    [S_CANCEL_V1] = {"cancel.v1.avsc", S_CANCEL},
    [S_REPLY_V1] = {"reply.v1.avsc", S_REPLY},
};

typedef struct slot {
    avro_schema_t schema;
    avro_value_iface_t *iface;
    avro_value_t value;
    uint64_t fingerprint;
} slot;

struct ts_codec {
    slot s[S_COUNT];
    avro_reader_t reader;
    avro_writer_t writer;
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

static const ts_embedded *find_schema(const char *name) {
    for (const ts_embedded *e = ts_embedded_schemas; e->name; e++)
        if (strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

ts_codec *ts_codec_new(char *err, size_t errlen) {
    pthread_once(&allocator_once, install_allocator);
    ts_codec *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (int i = 0; i < S_COUNT; i++) {
        const ts_embedded *e = find_schema(schema_files[i].file);
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

void ts_codec_free(ts_codec *c) {
    if (!c)
        return;
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

static int slot_of(ts_command_type type) {
    switch (type) {
    case TS_CMD_CREATE_EVENT: return S_CREATE;
    case TS_CMD_REGISTER: return S_REGISTER;
    case TS_CMD_CANCEL: return S_CANCEL;
    }
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

/* A ["null", "string"] union: NULL means null. */
static int set_optional_string(avro_value_t *rec, const char *name, const char *s) {
    avro_value_t f, branch;
    if (avro_value_get_by_name(rec, name, &f, NULL) ||
        avro_value_set_branch(&f, s ? 1 : 0, &branch))
        return -1;
    return s ? avro_value_set_string(&branch, s) : avro_value_set_null(&branch);
}

/* A ["null", "bytes"] union holding a digest, or null. */
static int set_optional_digest(avro_value_t *rec, const char *name, const ts_digest *d) {
    avro_value_t f, branch;
    if (avro_value_get_by_name(rec, name, &f, NULL) ||
        avro_value_set_branch(&f, d->present ? 1 : 0, &branch))
        return -1;
    return d->present ? avro_value_set_bytes(&branch, (void *)d->bytes, sizeof d->bytes)
                      : avro_value_set_null(&branch);
}

static ts_codec_status finish(ts_codec *c, avro_value_t *v, uint64_t fp, uint8_t *buf, size_t cap,
                              size_t *len) {
    if (cap < TS_AVRO_HEADER_LEN)
        return TS_CODEC_TOO_BIG;
    ts_avro_write_header(buf, fp);
    avro_writer_memory_set_dest(c->writer, (const char *)buf + TS_AVRO_HEADER_LEN,
                                (int64_t)(cap - TS_AVRO_HEADER_LEN));
    if (avro_value_write(c->writer, v))
        return TS_CODEC_TOO_BIG;
    *len = TS_AVRO_HEADER_LEN + (size_t)avro_writer_tell(c->writer);
    return TS_CODEC_OK;
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
             set_optional_digest(v, "cancel_token_sha256", &cmd->u.reg.cancel_token_sha256);
        break;
    case TS_CMD_CANCEL:
        rc = rc || set_string(v, "user_id", cmd->u.cancel.user_id) ||
             set_optional_digest(v, "token_sha256", &cmd->u.cancel.token_sha256);
        break;
    }
    if (rc)
        return TS_CODEC_INVALID;
    return finish(c, v, c->s[i].fingerprint, buf, cap, len);
}

ts_codec_status ts_codec_encode_reply(ts_codec *c, const ts_reply *r, uint8_t *buf, size_t cap,
                                      size_t *len) {
    avro_value_t *v = &c->s[S_REPLY].value;
    avro_value_reset(v);
    avro_value_t outcome;
    if ((unsigned)r->outcome >= TS_OUT_COUNT_)
        return TS_CODEC_INVALID;
    int rc = set_string(v, "command_id", r->command_id) || set_string(v, "event_id", r->event_id) ||
             avro_value_get_by_name(v, "outcome", &outcome, NULL) ||
             avro_value_set_enum(&outcome, (int)r->outcome) ||
             set_optional_string(v, "user_id", r->user_id[0] ? r->user_id : NULL) ||
             set_optional_string(v, "message", r->message[0] ? r->message : NULL) ||
             set_long(v, "applied_at", r->applied_at_ms);
    if (rc)
        return TS_CODEC_INVALID;
    return finish(c, v, c->s[S_REPLY].fingerprint, buf, cap, len);
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

static void get_uuid(decoder *d, const char *name, char dst[TS_UUID_LEN + 1]) {
    char raw[64] = "";
    get_string(d, name, raw, sizeof raw);
    if (d->status == TS_CODEC_OK && ts_uuid_normalize(raw, dst))
        reject(d, TS_CODEC_INVALID, "%s: not a UUID", name);
}

static int64_t get_long(decoder *d, const char *name) {
    avro_value_t f;
    int64_t v = 0;
    if (avro_value_get_by_name(d->rec, name, &f, NULL) || avro_value_get_long(&f, &v))
        reject(d, TS_CODEC_CORRUPT, "%s: not a long", name);
    return v;
}

/* A ["null", T] union: returns its branch in *branch, or 0 when null. */
static int get_branch(decoder *d, const char *name, avro_value_t *branch) {
    avro_value_t f;
    int disc = 0;
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
static ts_codec_status read_body(ts_codec *c, slot *s, const uint8_t *body, size_t len,
                                 decoder *d) {
    char extra;
    avro_reader_memory_set_source(c->reader, (const char *)body, (int64_t)len);
    if (avro_skip_data(c->reader, s->schema)) {
        reject(d, TS_CODEC_CORRUPT, "body does not decode: %s", avro_strerror());
        return d->status;
    }
    if (avro_read(c->reader, &extra, 1) == 0) {
        reject(d, TS_CODEC_CORRUPT, "trailing bytes after the body");
        return d->status;
    }
    avro_value_reset(&s->value);
    avro_reader_memory_set_source(c->reader, (const char *)body, (int64_t)len);
    if (avro_value_read(c->reader, &s->value))
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

/* Reads a message's header and body into the slot of the schema its
 * fingerprint names, among the commands' (or the replies', when `reply`),
 * of any version. The slot's index, or -1 with d's status and message
 * set. */
static int open_message(ts_codec *c, const void *msg, size_t len, bool reply, decoder *d) {
    uint64_t fp;
    if (header(msg, len, &fp, d))
        return -1;
    for (int i = 0; i < S_COUNT; i++)
        if ((schema_files[i].kind == S_REPLY) == reply && c->s[i].fingerprint == fp)
            return read_body(c, &c->s[i], (const uint8_t *)msg + TS_AVRO_HEADER_LEN,
                             len - TS_AVRO_HEADER_LEN, d) == TS_CODEC_OK
                       ? i
                       : -1;
    reject(d, TS_CODEC_UNKNOWN_SCHEMA, "unknown schema fingerprint %016llx",
           (unsigned long long)fp);
    return -1;
}

ts_codec_status ts_codec_decode_command(ts_codec *c, const void *msg, size_t len, ts_command *out,
                                        char *err, size_t errlen) {
    decoder d = {.err = err, .errlen = errlen, .status = TS_CODEC_OK};
    int i = open_message(c, msg, len, false, &d);
    if (i < 0)
        return d.status;
    memset(out, 0, sizeof *out);
    d.rec = &c->s[i].value;
    int kind = schema_files[i].kind;
    out->type = kind == S_CREATE     ? TS_CMD_CREATE_EVENT
                : kind == S_REGISTER ? TS_CMD_REGISTER
                                     : TS_CMD_CANCEL;
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
        break;
    case TS_CMD_CANCEL:
        get_uuid(&d, "user_id", out->u.cancel.user_id);
        get_optional_digest(&d, "token_sha256", &out->u.cancel.token_sha256);
        break;
    }
    return d.status;
}

ts_codec_status ts_codec_decode_reply(ts_codec *c, const void *msg, size_t len, ts_reply *out,
                                      char *err, size_t errlen) {
    decoder d = {.err = err, .errlen = errlen, .status = TS_CODEC_OK};
    int i = open_message(c, msg, len, true, &d);
    if (i < 0)
        return d.status;
    memset(out, 0, sizeof *out);
    d.rec = &c->s[i].value;
    get_uuid(&d, "command_id", out->command_id);
    get_uuid(&d, "event_id", out->event_id);
    avro_value_t f;
    int outcome = -1;
    if (avro_value_get_by_name(d.rec, "outcome", &f, NULL) || avro_value_get_enum(&f, &outcome) ||
        outcome < 0 || outcome >= TS_OUT_COUNT_)
        reject(&d, TS_CODEC_CORRUPT, "outcome: not a known symbol");
    out->outcome = (ts_outcome)outcome;
    avro_value_t branch;
    if (get_branch(&d, "user_id", &branch)) {
        char raw[64] = "";
        copy_string(&d, &branch, "user_id", raw, sizeof raw);
        if (d.status == TS_CODEC_OK && ts_uuid_normalize(raw, out->user_id))
            reject(&d, TS_CODEC_INVALID, "user_id: not a UUID");
    }
    bool has_message;
    get_optional_string(&d, "message", out->message, sizeof out->message, &has_message);
    out->applied_at_ms = get_long(&d, "applied_at");
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

const char *ts_command_type_name(ts_command_type t) {
    switch (t) {
    case TS_CMD_CREATE_EVENT: return "create_event";
    case TS_CMD_REGISTER: return "register";
    case TS_CMD_CANCEL: return "cancel";
    }
    return "unknown";
}
