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

int ts_validate_command(const ts_command *cmd, ts_violation *why) {
    switch (cmd->type) {
    case TS_CMD_CREATE_EVENT:
        if (ts_validate_text(cmd->u.create.title))
            return fail(why, "title", "title must be a non-empty string");
        if (ts_validate_text(cmd->u.create.location))
            return fail(why, "location", "location must be a non-empty string");
        if (cmd->u.create.capacity < 1 || cmd->u.create.capacity > TS_CAPACITY_MAX)
            return fail(why, "capacity", "capacity must be an integer >= 1");
        /* years 1970..9999: what ISO 8601 text and the database both hold */
        if (cmd->u.create.starts_at_ms < 0 || cmd->u.create.starts_at_ms > 253402300799999LL)
            return fail(why, "starts_at", "starts_at must be between 1970 and 9999");
        return 0;
    case TS_CMD_REGISTER:
        if (ts_validate_text(cmd->u.reg.name))
            return fail(why, "name", "name must be a non-empty string");
        if (ts_validate_email(cmd->u.reg.email))
            return fail(why, "email", "email must be a valid email address");
        return 0;
    case TS_CMD_CANCEL: return 0; /* user_id was checked to be a UUID when decoded */
    }
    return fail(why, "type", "unknown command type");
}
