/* SPDX-License-Identifier: Apache-2.0 */
/* ts_uuid.c — see ts_uuid.h. */
#include "ts_uuid.h"

#include <string.h>
#include <uuid/uuid.h>

/* The namespace of users' ids (ts_uuid_for_email). Fixed forever: changing
 * it changes every user id. */
static const char users_ns[] = "6f1b4a52-3c4e-5d8a-9b7e-2a1c0d9e8f71";

/* A hex digit's value, or -1. */
static int hex(unsigned char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20; /* ASCII lowercase */
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* libuuid's uuid_parse() converts each byte with strtoul(); this one reads
 * the digits directly, and was a quarter of the worker's CPU when it was
 * libuuid's (every id of every command passes here). */
int ts_uuid_parse(const char *in, unsigned char out[16]) {
    size_t k = 0;
    for (size_t i = 0; i < TS_UUID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (in[i] != '-')
                return -1;
            continue;
        }
        int hi = hex((unsigned char)in[i]);
        int lo = hi < 0 ? -1 : hex((unsigned char)in[i + 1]);
        if (lo < 0)
            return -1;
        out[k++] = (unsigned char)(hi << 4 | lo);
        i++;
    }
    return in[TS_UUID_LEN] == '\0' ? 0 : -1;
}

void ts_uuid_new(char out[TS_UUID_LEN + 1]) {
    uuid_t u;
    uuid_generate_random(u);
    uuid_unparse_lower(u, out);
}

int ts_uuid_normalize(const char *in, char out[TS_UUID_LEN + 1]) {
    uuid_t u;
    if (ts_uuid_parse(in, u) != 0)
        return -1;
    uuid_unparse_lower(u, out);
    return 0;
}

void ts_uuid_v5(const char *ns, const char *name, char out[TS_UUID_LEN + 1]) {
    uuid_t nsu, u;
    if (ts_uuid_parse(ns, nsu) != 0)
        uuid_clear(nsu);
    uuid_generate_sha1(u, nsu, name, strlen(name));
    uuid_unparse_lower(u, out);
}

void ts_uuid_for_email(const char *email, char out[TS_UUID_LEN + 1]) {
    char lower[TS_EMAIL_MAX + 1];
    size_t i;
    for (i = 0; email[i] && i < TS_EMAIL_MAX; i++) {
        char c = email[i];
        lower[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    lower[i] = '\0';
    ts_uuid_v5(users_ns, lower, out);
}
