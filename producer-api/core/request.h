/* SPDX-License-Identifier: Apache-2.0 */
/* request.h — turning a request's JSON body into a command, with the
 * contract's error messages. Pure; thread-safe. */
#ifndef TS_REQUEST_H
#define TS_REQUEST_H

#include <stddef.h>

#include "ts_codec.h"

/* Why a request is refused: HTTP 400, with a JSON body naming `field`. */
typedef struct ts_bad_request {
    const char *code;  /* machine code: invalid_json, missing_field, invalid_field */
    const char *field; /* NULL when the body as a whole is at fault */
    char message[160];
} ts_bad_request;

/* Each fills the type-specific part of *cmd (and nothing else) from the
 * JSON text body[0..len). Returns 0, or -1 with *why filled. */
int ts_request_create_event(const char *body, size_t len, ts_command *cmd, ts_bad_request *why);
int ts_request_register(const char *body, size_t len, ts_command *cmd, ts_bad_request *why);
int ts_request_cancel(const char *body, size_t len, ts_command *cmd, ts_bad_request *why);
/* {name, email}, as a registration's; the hold's ttl is the caller's. */
int ts_request_place_hold(const char *body, size_t len, ts_command *cmd, ts_bad_request *why);
/* Any of title, description, location, starts_at, capacity (at least one;
 * each as in a creation; a null description clears it: "" with
 * has_description). Other fields are ignored, as in a creation. */
int ts_request_update_event(const char *body, size_t len, ts_command *cmd, ts_bad_request *why);

/* The SHA-256 of a request: its JSON body in a canonical form (keys sorted,
 * no whitespace; an empty body is ""), so that the same request sent
 * again, however formatted, has the same digest — what an idempotency key
 * is bound to. `bound`, when not NULL, is what the path names beyond the
 * route and the event (a hold's id): it is digested too, before the body.
 * With `bound` NULL the digest is the canonical body's alone. 0, or -1 if
 * the body is not JSON or memory runs out. */
int ts_request_digest(const char *body, size_t len, const char *bound, ts_digest *out);

#endif
