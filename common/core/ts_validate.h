/* SPDX-License-Identifier: Apache-2.0 */
/* ts_validate.h — the rules a command must follow, whoever wrote it.
 *
 * The ingress checks requests with these rules (a 400 naming the field) and
 * the worker checks every command it consumes with the same rules (a
 * command that breaks one goes to the dead-letter topic), so a command
 * produced straight to Kafka by another service is held to the same
 * standard as one that came through HTTP. Pure functions; thread-safe. */
#ifndef TS_VALIDATE_H
#define TS_VALIDATE_H

#include "ts_codec.h"

/* A violated rule: the field at fault and a human message. */
typedef struct ts_violation {
    const char *field;
    const char *message;
} ts_violation;

/* Returns 0 if `cmd` follows every rule, or -1 with *why filled. */
int ts_validate_command(const ts_command *cmd, ts_violation *why);

/* A plausible email address: one '@', non-empty local part, a dot in the
 * domain, no spaces or control characters, at most TS_EMAIL_MAX bytes. */
int ts_validate_email(const char *email);

/* Non-empty after trimming spaces, and free of control characters. */
int ts_validate_text(const char *s);

#endif
