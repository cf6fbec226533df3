/* SPDX-License-Identifier: Apache-2.0 */
/* ts_validate.c — see ts_validate.h. */
#include "ts_validate.h"

#include <string.h>

int ts_validate_text(const char *s) {
    int visible = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            return -1;
        if (*p != ' ')
            visible = 1;
    }
    return visible ? 0 : -1;
}

int ts_validate_email(const char *email) {
    size_t len = strlen(email);
    const char *at = strchr(email, '@');
    if (len < 3 || len > TS_EMAIL_MAX || !at || at == email || strchr(at + 1, '@'))
        return -1;
    for (const unsigned char *p = (const unsigned char *)email; *p; p++)
        if (*p <= ' ' || *p == 0x7f)
            return -1;
    const char *dot = strrchr(at + 1, '.');
    /* "a@b.c": a dot inside the domain, neither first nor last. */
    return dot && dot > at + 1 && dot[1] ? 0 : -1;
}

static int fail(ts_violation *why, const char *field, const char *message) {
    why->field = field;
    why->message = message;
    return -1;
}

/* years 1970..9999: what ISO 8601 text and the database both hold */
#define TIME_MAX_MS 253402300799999LL

static int validate_person(const char *name, const char *email, ts_violation *why) {
    if (ts_validate_text(name))
        return fail(why, "name", "name must be a non-empty string");
    if (ts_validate_email(email))
        return fail(why, "email", "email must be a valid email address");
    return 0;
}

static int validate_update(const ts_command *cmd, ts_violation *why) {
    if (!cmd->u.update.has_title && !cmd->u.update.has_description && !cmd->u.update.has_location &&
        !cmd->u.update.has_starts_at && !cmd->u.update.has_capacity)
        return fail(why, "body", "an update must change at least one field");
    if (cmd->u.update.has_title && ts_validate_text(cmd->u.update.title))
        return fail(why, "title", "title must be a non-empty string");
    /* a description, as in a creation: any text (lines included), or ""
     * to clear it */
    if (cmd->u.update.has_location && ts_validate_text(cmd->u.update.location))
        return fail(why, "location", "location must be a non-empty string");
    if (cmd->u.update.has_capacity &&
        (cmd->u.update.capacity < 1 || cmd->u.update.capacity > TS_CAPACITY_MAX))
        return fail(why, "capacity", "capacity must be an integer >= 1");
    if (cmd->u.update.has_starts_at &&
        (cmd->u.update.starts_at_ms < 0 || cmd->u.update.starts_at_ms > TIME_MAX_MS))
        return fail(why, "starts_at", "starts_at must be between 1970 and 9999");
    return 0;
}

int ts_validate_command(const ts_command *cmd, ts_violation *why) {
    /* room for a hold's time to live after it, within what the database holds */
    if (cmd->issued_at_ms < 0 || cmd->issued_at_ms > TIME_MAX_MS - TS_HOLD_TTL_MAX_MS)
        return fail(why, "issued_at", "issued_at must be between 1970 and 9999");
    switch (cmd->type) {
    case TS_CMD_CREATE_EVENT:
        if (ts_validate_text(cmd->u.create.title))
            return fail(why, "title", "title must be a non-empty string");
        if (ts_validate_text(cmd->u.create.location))
            return fail(why, "location", "location must be a non-empty string");
        if (cmd->u.create.capacity < 1 || cmd->u.create.capacity > TS_CAPACITY_MAX)
            return fail(why, "capacity", "capacity must be an integer >= 1");
        if (cmd->u.create.starts_at_ms < 0 || cmd->u.create.starts_at_ms > TIME_MAX_MS)
            return fail(why, "starts_at", "starts_at must be between 1970 and 9999");
        return 0;
    case TS_CMD_REGISTER: return validate_person(cmd->u.reg.name, cmd->u.reg.email, why);
    case TS_CMD_PLACE_HOLD:
        if (cmd->u.hold.ttl_ms < TS_HOLD_TTL_MIN_MS || cmd->u.hold.ttl_ms > TS_HOLD_TTL_MAX_MS)
            return fail(why, "ttl_ms", "ttl_ms must be between 1 s and 24 h");
        return validate_person(cmd->u.hold.name, cmd->u.hold.email, why);
    case TS_CMD_UPDATE_EVENT: return validate_update(cmd, why);
    /* ids were checked to be UUIDs when decoded */
    case TS_CMD_CANCEL:
    case TS_CMD_CONFIRM_HOLD:
    case TS_CMD_RELEASE_HOLD:
    case TS_CMD_EXPIRE_HOLD:
    case TS_CMD_CANCEL_EVENT: return 0;
    case TS_CMD_COUNT_: break;
    }
    return fail(why, "type", "unknown command type");
}
