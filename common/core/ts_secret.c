/* SPDX-License-Identifier: Apache-2.0 */
/* ts_secret.c — see ts_secret.h. SHA-256 is OpenSSL's (libcrypto). */
#include "ts_secret.h"

#include <errno.h>
#include <openssl/sha.h>
#include <string.h>
#include <sys/random.h>

void ts_sha256(const void *data, size_t len, uint8_t out[TS_SHA256_LEN]) {
    SHA256(data, len, out);
}

ts_digest ts_digest_of(const char *text) {
    ts_digest d = {.present = true};
    ts_sha256(text, strlen(text), d.bytes);
    return d;
}

bool ts_digest_equal(const ts_digest *a, const ts_digest *b) {
    if (!a->present || !b->present)
        return false;
    uint8_t diff = 0;
    for (int i = 0; i < TS_SHA256_LEN; i++)
        diff |= (uint8_t)(a->bytes[i] ^ b->bytes[i]);
    return diff == 0;
}

void ts_hex(const uint8_t *bytes, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

int ts_random_bytes(void *buf, size_t n) {
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

int ts_new_cancel_token(char out[TS_TOKEN_LEN + 1]) {
    uint8_t raw[TS_TOKEN_LEN / 2];
    if (ts_random_bytes(raw, sizeof raw))
        return -1;
    ts_hex(raw, sizeof raw, out);
    return 0;
}

int ts_new_api_key(char out[TS_API_KEY_LEN + 1]) {
    uint8_t raw[32];
    if (ts_random_bytes(raw, sizeof raw))
        return -1;
    memcpy(out, "tsk_", 4);
    ts_hex(raw, sizeof raw, out + 4);
    return 0;
}
