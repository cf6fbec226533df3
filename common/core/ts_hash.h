/* SPDX-License-Identifier: Apache-2.0 */
/* ts_hash.h — the one string hash of the in-memory tables (the API's
 * waiting requests, the worker's keys of a batch): 32-bit FNV-1a. Fast on
 * short keys such as UUIDs, and good enough where an attacker cannot
 * choose many colliding keys cheaply (keys are ours or random UUIDs; the
 * rate limiter, whose keys an attacker does choose, uses a keyed hash).
 * Pure; thread-safe. */
#ifndef TS_HASH_H
#define TS_HASH_H

#include <stddef.h>
#include <stdint.h>

static inline uint32_t ts_fnv1a(const void *data, size_t len) {
    const uint8_t *p = data;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

#endif
