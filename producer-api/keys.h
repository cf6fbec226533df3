/* SPDX-License-Identifier: Apache-2.0 */
/* keys.h — the organizer keys the ingress accepts, and so its mode.
 *
 * Open mode (the original service's contract, byte for byte) holds only
 * while the ingress listens on loopback, TS_AUTH is not "on", and no key
 * exists; TS_AUTH=off forces it. Otherwise the ingress is protected. Keys
 * are made by `turnstile-admin keys create` and live in PostgreSQL as their
 * SHA-256; a thread of this module reads the active ones every
 * TS_KEYS_REFRESH_MS on a connection of its own, so a key revoked (or
 * made) is seen within that time and a slow database never holds up an
 * HTTP thread: lookups read the last snapshot. A snapshot that could not be
 * read again for 30 s accepts no key (fail closed: a key revoked meanwhile
 * must not live on). Thread-safe. */
#ifndef TS_KEYS_H
#define TS_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#include "ts_config.h"
#include "ts_limits.h"

#define TS_KEYS_REFRESH_MS 500

typedef struct ts_keys ts_keys;

typedef enum ts_key_check {
    TS_KEY_UNKNOWN = 0, /* no such active key: 401 */
    TS_KEY_COVERS,      /* the key covers what was asked */
    TS_KEY_ELSEWHERE,   /* a valid key, for other events: 403 where a key is needed */
} ts_key_check;

/* Reads the keys once (waiting at most a few seconds for PostgreSQL) and
 * starts the refreshing thread. Refuses to start (NULL, `err` naming the
 * fix) when the listen address is not loopback, TS_AUTH is "auto" and no
 * key exists: such an ingress would be open to anyone. If the first read
 * fails on loopback, the ingress starts protected and turns open once a
 * read shows no key. */
ts_keys *ts_keys_start(const ts_config *cfg, char *err, size_t errlen);

/* Stops the thread, closes its connection and frees. NULL is a no-op. */
void ts_keys_stop(ts_keys *ks);

/* True in protected mode. */
bool ts_keys_protected(ts_keys *ks);

/* Checks a bearer key against `event_id` (a canonical UUID), or against
 * every event when `event_id` is NULL. On a valid key, key_id gets the
 * key's id (it scopes idempotency keys and rate limits). */
ts_key_check ts_keys_check(ts_keys *ks, const char *key, const char *event_id,
                           char key_id[TS_UUID_LEN + 1]);

#endif
