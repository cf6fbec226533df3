/* SPDX-License-Identifier: Apache-2.0 */
/* ratelimit.h — token buckets per key (a client address, an organizer key):
 * the ingress answers 429 with Retry-After when a key's bucket is empty.
 *
 * Memory is one fixed table allocated by ts_ratelimit_new(), whatever the
 * number of distinct keys seen; nothing is allocated afterwards. Time is
 * passed in by the caller (monotonic milliseconds), so the module reads no
 * clock and the tests need not sleep. Every call but new and free is
 * thread-safe. */
#ifndef TS_RATELIMIT_H
#define TS_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

/* Keys longer than this many bytes are cut to their first
 * TS_RATELIMIT_KEY_MAX bytes: two keys that differ only beyond it share a
 * bucket. Callers with long keys (API keys) pass a short id or a digest. */
#define TS_RATELIMIT_KEY_MAX 63

typedef struct ts_ratelimit ts_ratelimit;

/* A limiter whose buckets refill `per_s` tokens per second and hold at most
 * `burst`; `slots` is the size of the fixed table (how many keys it can
 * remember at once; a few times the number of clients expected to be active
 * within burst/per_s seconds). The caller frees it with ts_ratelimit_free().
 * Returns NULL on out of memory, or when per_s <= 0, burst < 1 or
 * slots == 0 (a limiter that never refills or never allows is a
 * configuration error; "no limit" is the caller not calling). */
ts_ratelimit *ts_ratelimit_new(double per_s, double burst, size_t slots);

/* Frees `rl` (NULL is a no-op). No call may be in progress. */
void ts_ratelimit_free(ts_ratelimit *rl);

/* Takes one token from `key`'s bucket at monotonic time `now_ms`. A key not
 * seen before (or forgotten, see ratelimit.c) starts with a full bucket.
 * Returns 0 when the request is allowed; otherwise the whole seconds (>= 1,
 * rounded up) until a token will be there, for Retry-After. A refused call
 * takes nothing. `now_ms` earlier than a key's last call counts as no time
 * passed, so callers on several threads need not order their clock reads.
 * Thread-safe; O(1). */
int ts_ratelimit_take(ts_ratelimit *rl, const char *key, int64_t now_ms);

/* How many keys the table holds now (never more than `slots`); for metrics
 * and tests. Thread-safe. */
size_t ts_ratelimit_keys(ts_ratelimit *rl);

#endif
