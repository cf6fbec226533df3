/* SPDX-License-Identifier: Apache-2.0 */
/* ts_uuid.h — UUIDs as the 36-character lowercase text used everywhere in
 * turnstile (JSON, Avro, SQL). The parser is turnstile's own (libuuid's was
 * a quarter of the worker's CPU, see ts_uuid.c); generating, name-based
 * ids and formatting are libuuid's. Thread-safe. */
#ifndef TS_UUID_H
#define TS_UUID_H

#include "ts_limits.h"

/* The 16 bytes of a UUID in the 8-4-4-4-12 hex form (either case).
 * Returns 0, or -1 if `in` is not exactly that. */
int ts_uuid_parse(const char *in, unsigned char out[16]);

/* A new random (version 4) UUID. */
void ts_uuid_new(char out[TS_UUID_LEN + 1]);

/* Copies `in` to `out` in canonical lowercase form. Returns 0, or -1 if
 * `in` is not a UUID in the 8-4-4-4-12 hex form. */
int ts_uuid_normalize(const char *in, char out[TS_UUID_LEN + 1]);

/* A name-based (version 5) UUID of `name` in the namespace `ns` (a UUID
 * text). The same inputs always give the same UUID. */
void ts_uuid_v5(const char *ns, const char *name, char out[TS_UUID_LEN + 1]);

/* The user id of an email address: version 5 of its ASCII-lowercased form
 * in turnstile's user namespace. Stable per email, case-insensitively. */
void ts_uuid_for_email(const char *email, char out[TS_UUID_LEN + 1]);

#endif
