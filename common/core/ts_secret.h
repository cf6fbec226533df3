/* SPDX-License-Identifier: Apache-2.0 */
/* ts_secret.h — the secrets of protected mode: organizer keys, cancel
 * tokens, and the SHA-256 digests they are stored as.
 *
 * A key or a token is random (getrandom(2)) and shown once; only its
 * SHA-256 is kept. Being 128 or more random bits, neither needs a salt or a
 * slow hash: nobody can guess one, and a digest gives nothing back. Pure
 * but for the random source; thread-safe. */
#ifndef TS_SECRET_H
#define TS_SECRET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ts_codec.h"

#define TS_TOKEN_LEN 32   /* a cancel token: 128 bits as lowercase hex */
#define TS_API_KEY_LEN 68 /* an organizer key: "tsk_" + 256 bits as hex */

/* out[32] = SHA-256 of data[0..len). */
void ts_sha256(const void *data, size_t len, uint8_t out[TS_SHA256_LEN]);

/* The digest of a text (a token or a key as the client sends it). */
ts_digest ts_digest_of(const char *text);

/* True when both are present and equal; constant time in the bytes. */
bool ts_digest_equal(const ts_digest *a, const ts_digest *b);

/* `n` bytes as lowercase hex into out[2n + 1]. */
void ts_hex(const uint8_t *bytes, size_t n, char *out);

/* Fills buf[0..n) from the kernel's random source. 0, or -1. */
int ts_random_bytes(void *buf, size_t n);

/* A new cancel token into out[TS_TOKEN_LEN + 1]. 0, or -1. */
int ts_new_cancel_token(char out[TS_TOKEN_LEN + 1]);

/* A new organizer key into out[TS_API_KEY_LEN + 1]. 0, or -1. */
int ts_new_api_key(char out[TS_API_KEY_LEN + 1]);

#endif
