/* SPDX-License-Identifier: Apache-2.0 */
/* request.c — see request.h.
 *
 * One field table per command says what each field must be; one walker
 * checks a body against it and copies the values into the command. The
 * rules on the values themselves (ts_validate) are the ones the worker
 * applies to commands from any producer. */
#include "request.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_secret.h"
#include "ts_time.h"
#include "ts_uuid.h"
#include "ts_validate.h"

typedef enum kind { STRING, TEXT, EMAIL, TIME, COUNT, UUID, SECRET, BOOL } kind;

/* What a JSON null given for a field means. */
typedef enum nulls {
    NULL_ABSENT,  /* as if the field were not there */
    NULL_CLEARS,  /* an optional string set to "" (present: an update clears it) */
    NULL_REFUSED, /* a 400 naming the field: it cannot be cleared */
} nulls;

typedef struct field {
    const char *name;
    const char *alias; /* accepted too, e.g. user_id for userId */
    kind kind;
    bool required;
    size_t offset;     /* in ts_command */
    size_t cap;        /* buffer size, for strings */
    size_t present_at; /* offset of a bool set when an optional field is there, or 0 */
    const char *missing_message;
    nulls nulls;
} field_rule;

#define CMD(f) offsetof(ts_command, f)
#define CAP(f) sizeof(((ts_command *)0)->f)

static const field_rule create_fields[] = {
    {"title", NULL, TEXT, true, CMD(u.create.title), CAP(u.create.title), 0, NULL, NULL_ABSENT},
    {"starts_at", NULL, TIME, true, CMD(u.create.starts_at_ms), 0, 0, NULL, NULL_ABSENT},
    {"location", NULL, TEXT, true, CMD(u.create.location), CAP(u.create.location), 0, NULL,
     NULL_ABSENT},
    {"capacity", NULL, COUNT, true, CMD(u.create.capacity), 0, 0, NULL, NULL_ABSENT},
    {"description", NULL, STRING, false, CMD(u.create.description), CAP(u.create.description),
     CMD(u.create.has_description), NULL, NULL_ABSENT},
};

static const field_rule register_fields[] = {
    {"name", NULL, TEXT, true, CMD(u.reg.name), CAP(u.reg.name), 0, NULL, NULL_ABSENT},
    {"email", NULL, EMAIL, true, CMD(u.reg.email), CAP(u.reg.email), 0, NULL, NULL_ABSENT},
    {"waitlist", NULL, BOOL, false, CMD(u.reg.waitlist), 0, 0, NULL, NULL_ABSENT},
};

static const field_rule hold_fields[] = {
    {"name", NULL, TEXT, true, CMD(u.hold.name), CAP(u.hold.name), 0, NULL, NULL_ABSENT},
    {"email", NULL, EMAIL, true, CMD(u.hold.email), CAP(u.hold.email), 0, NULL, NULL_ABSENT},
};

/* An update: the fields of a creation, each optional; at least one. A null
 * description clears it; the others cannot be cleared. */
static const field_rule update_fields[] = {
    {"title", NULL, TEXT, false, CMD(u.update.title), CAP(u.update.title), CMD(u.update.has_title),
     NULL, NULL_REFUSED},
    {"starts_at", NULL, TIME, false, CMD(u.update.starts_at_ms), 0, CMD(u.update.has_starts_at),
     NULL, NULL_REFUSED},
    {"location", NULL, TEXT, false, CMD(u.update.location), CAP(u.update.location),
     CMD(u.update.has_location), NULL, NULL_REFUSED},
    {"capacity", NULL, COUNT, false, CMD(u.update.capacity), 0, CMD(u.update.has_capacity), NULL,
     NULL_REFUSED},
    {"description", NULL, STRING, false, CMD(u.update.description), CAP(u.update.description),
     CMD(u.update.has_description), NULL, NULL_CLEARS},
};

/* A secret is kept as its digest only (`offset` is a ts_digest's). */
#define TOKEN_MAX 256

static const field_rule cancel_fields[] = {
    {"userId", "user_id", UUID, true, CMD(u.cancel.user_id), CAP(u.cancel.user_id), 0,
     "userId required", NULL_ABSENT},
    {"token", NULL, SECRET, false, CMD(u.cancel.token_sha256), TOKEN_MAX + 1, 0, NULL, NULL_ABSENT},
};

static int bad(ts_bad_request *why, const char *code, const char *field, const char *fmt,
               const char *arg) {
    why->code = code;
    why->field = field;
    snprintf(why->message, sizeof why->message, fmt, arg);
    return -1;
}

static int set_field(const field_rule *f, json_t *v, ts_command *cmd, ts_bad_request *why) {
    char *dst = (char *)cmd + f->offset;
    const char *s = json_string_value(v);
    /* JSON allows "\u0000" in a string and the parser keeps it (a body is
     * refused naming the field it is in); no field takes one */
    if (s && memchr(s, '\0', json_string_length(v)))
        return bad(why, "invalid_field", f->name, "%s must not contain NUL", f->name);
    switch (f->kind) {
    case SECRET:
        if (!s || !*s || json_string_length(v) > TOKEN_MAX)
            return bad(why, "invalid_field", f->name, "%s must be a non-empty string", f->name);
        *(ts_digest *)dst = ts_digest_of(s);
        return 0;
    case STRING:
    case TEXT:
    case EMAIL:
    case UUID:
        if (!s)
            return bad(why, "invalid_field", f->name, "%s must be a string", f->name);
        if (json_string_length(v) >= f->cap && f->kind != UUID) {
            char msg[96];
            snprintf(msg, sizeof msg, "%%s must be at most %zu bytes", f->cap - 1);
            return bad(why, "invalid_field", f->name, msg, f->name);
        }
        if (f->kind == TEXT && ts_validate_text(s))
            return bad(why, "invalid_field", f->name, "%s must be a non-empty string", f->name);
        if (f->kind == EMAIL && ts_validate_email(s))
            return bad(why, "invalid_field", f->name, "%s must be a valid email address", f->name);
        if (f->kind == UUID) {
            if (ts_uuid_normalize(s, dst))
                return bad(why, "invalid_field", f->name, "%s must be a UUID", f->name);
        } else {
            strcpy(dst, s);
        }
        return 0;
    case TIME: {
        int64_t ms;
        if (!s || ts_time_parse_iso8601(s, &ms))
            return bad(why, "invalid_field", f->name,
                       "%s must be an ISO 8601 date-time, e.g. 2030-01-31T18:00:00Z", f->name);
        *(int64_t *)dst = ms;
        return 0;
    }
    case BOOL:
        if (!json_is_boolean(v))
            return bad(why, "invalid_field", f->name, "%s must be true or false", f->name);
        *(bool *)dst = json_is_true(v);
        return 0;
    case COUNT: {
        /* An integer however it is written: 250 and 250.0 are one number
         * in JSON, as in JSON Schema's "integer" and in the original
         * service's JavaScript; 1.5 is not an integer. */
        double real = json_is_real(v) ? json_real_value(v) : 0;
        json_int_t n = json_is_integer(v)                             ? json_integer_value(v)
                       : real >= 1 && real <= (double)TS_CAPACITY_MAX ? (json_int_t)real
                                                                      : 0;
        if (n < 1 || n > TS_CAPACITY_MAX || (json_is_real(v) && (double)n != real))
            return bad(why, "invalid_field", f->name, "%s must be an integer >= 1", f->name);
        *(int64_t *)dst = n;
        return 0;
    }
    }
    return -1;
}

static int parse(const char *body, size_t len, const field_rule *fields, size_t n, ts_command *cmd,
                 ts_bad_request *why) {
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!root)
        return bad(why, "invalid_json", NULL, "Invalid JSON body: %s", jerr.text);
    int rc = 0;
    if (!json_is_object(root)) {
        rc = bad(why, "invalid_json", NULL, "%s", "Body must be a JSON object");
        goto done;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        const field_rule *f = &fields[i];
        json_t *v = json_object_get(root, f->name);
        if (!v && f->alias)
            v = json_object_get(root, f->alias);
        if (v && json_is_null(v) && f->nulls == NULL_CLEARS) {
            *((char *)cmd + f->offset) = '\0';
            *(bool *)((char *)cmd + f->present_at) = true;
            continue;
        }
        if (v && json_is_null(v) && f->nulls == NULL_REFUSED) {
            /* the message of a value of the wrong type */
            rc = set_field(f, v, cmd, why);
            continue;
        }
        if (!v || json_is_null(v)) {
            if (f->required)
                rc = f->missing_message
                         ? bad(why, "missing_field", f->name, "%s", f->missing_message)
                         : bad(why, "missing_field", f->name, "%s is required", f->name);
            continue;
        }
        rc = set_field(f, v, cmd, why);
        if (rc == 0 && f->present_at)
            *(bool *)((char *)cmd + f->present_at) = true;
    }
done:
    json_decref(root);
    return rc;
}

int ts_request_create_event(const char *body, size_t len, ts_command *cmd, ts_bad_request *why) {
    return parse(body, len, create_fields, sizeof create_fields / sizeof create_fields[0], cmd,
                 why);
}

int ts_request_register(const char *body, size_t len, ts_command *cmd, ts_bad_request *why) {
    return parse(body, len, register_fields, sizeof register_fields / sizeof register_fields[0],
                 cmd, why);
}

int ts_request_cancel(const char *body, size_t len, ts_command *cmd, ts_bad_request *why) {
    return parse(body, len, cancel_fields, sizeof cancel_fields / sizeof cancel_fields[0], cmd,
                 why);
}

int ts_request_place_hold(const char *body, size_t len, ts_command *cmd, ts_bad_request *why) {
    return parse(body, len, hold_fields, sizeof hold_fields / sizeof hold_fields[0], cmd, why);
}

int ts_request_update_event(const char *body, size_t len, ts_command *cmd, ts_bad_request *why) {
    if (parse(body, len, update_fields, sizeof update_fields / sizeof update_fields[0], cmd, why))
        return -1;
    if (!cmd->u.update.has_title && !cmd->u.update.has_description && !cmd->u.update.has_location &&
        !cmd->u.update.has_starts_at && !cmd->u.update.has_capacity)
        return bad(why, "missing_field", NULL, "%s",
                   "At least one of title, description, location, starts_at, capacity is "
                   "required");
    return 0;
}

int ts_request_digest(const char *body, size_t len, const char *bound, ts_digest *out) {
    char *canon;
    if (len == 0) {
        canon = strdup("");
    } else {
        json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
        canon = root ? json_dumps(root, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        json_decref(root);
    }
    if (!canon)
        return -1;
    if (!bound) {
        *out = ts_digest_of(canon);
        free(canon);
        return 0;
    }
    /* the path's part first, on a line of its own: no body can forge it */
    size_t n = strlen(bound) + 1 + strlen(canon) + 1;
    char *text = malloc(n);
    if (text)
        snprintf(text, n, "%s\n%s", bound, canon);
    free(canon);
    if (!text)
        return -1;
    *out = ts_digest_of(text);
    free(text);
    return 0;
}
