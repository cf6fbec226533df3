/* SPDX-License-Identifier: Apache-2.0 */
/* ratelimit.c — see ratelimit.h.
 *
 * The table is open-addressed and never grows: a key lives in one of the
 * PROBES slots from its home slot on. A call looks at those slots only, so
 * it is O(1) whatever the table holds. A key not there takes, in order:
 *   - an empty slot, or one whose bucket has refilled to full since its last
 *     use. Forgetting such a key loses nothing: it would start full again
 *     anyway, exactly as a key never seen;
 *   - else the least recently used of the probed slots. This is the only
 *     place the table forgets a key that has spent tokens, which hands that
 *     key a fresh burst.
 * The trade-off of that eviction: an attacker holding many addresses could
 * try to push an abuser's empty bucket out so the abuser gets a new burst.
 * To do so the attacker must fill every slot of the abuser's probe window
 * with buckets that are not full and used after the abuser's last call, and
 * then send a key whose window covers it. The hash is keyed with a secret
 * per-table seed, so the windows are unknown and the only way is to keep
 * the whole table busy: a bucket that gave k tokens is full again after
 * k / per_s seconds, so keeping all `slots` buckets non-full costs about
 * slots * per_s requests a second (65536 slots at 10/s: 655,360 requests a
 * second, each from a distinct key), and it buys the abuser one burst per
 * eviction, while an abuser that keeps calling stays most recently used.
 * The table is sized so that is far beyond what one ingress serves; below
 * that, an active abuser is never forgotten.
 *
 * Why a keyed hash: with a public hash (FNV-1a) an attacker could choose
 * keys (addresses in their ranges) that all land in one window, and then
 * evict a chosen key with PROBES requests, or make every call probe the
 * same crowded slots. SipHash-2-4 with a 128-bit seed from getrandom()
 * makes the slot of a key unpredictable from outside.
 *
 * One mutex guards the table: the ingress has 2-4 threads and the work
 * under the lock is a few comparisons over PROBES slots (the hash is
 * computed before taking it); striped locks would have to agree on windows
 * that straddle stripes, for no measurable gain. */
#include "ratelimit.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define PROBES 8
/* Token counts are sums of elapsed_ms * per_s / 1000: allow for rounding so
 * that exactly 1 / per_s seconds always gives exactly one token. */
#define EPS 1e-9

typedef struct slot {
    uint64_t used;   /* the table's call counter at this key's last call; 0: empty */
    int64_t last_ms; /* the time `tokens` was brought up to */
    double tokens;
    uint8_t len;
    char key[TS_RATELIMIT_KEY_MAX];
} slot;

struct ts_ratelimit {
    pthread_mutex_t lock;
    double per_s;
    double burst;
    size_t nslots;
    size_t nkeys;   /* occupied slots */
    uint64_t calls; /* orders the slots' last use, for LRU */
    uint8_t seed[16];
    slot *table;
};

/* SipHash-2-4 (Aumasson, Bernstein), the reference algorithm. */
#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static uint64_t load64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t siphash24(const uint8_t k[16], const uint8_t *in, size_t len) {
    uint64_t k0 = load64(k), k1 = load64(k + 8);
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    const uint8_t *end = in + len - len % 8;
    for (; in != end; in += 8) {
        uint64_t m = load64(in);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < len % 8; i++)
        b |= (uint64_t)in[i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* Fills the seed from the kernel. Should getrandom() fail (it does not on
 * Linux >= 3.17), the clocks and addresses are hashed instead: the limiter
 * still works and stays bounded, only its keys become guessable. */
static void seed_table(ts_ratelimit *rl) {
    size_t got = 0;
    while (got < sizeof rl->seed) {
        ssize_t n = getrandom(rl->seed + got, sizeof rl->seed - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got == sizeof rl->seed)
        return;
    struct timespec mono, real;
    clock_gettime(CLOCK_MONOTONIC, &mono);
    clock_gettime(CLOCK_REALTIME, &real);
    uint64_t stir[5] = {(uint64_t)mono.tv_sec, (uint64_t)mono.tv_nsec, (uint64_t)real.tv_nsec,
                        (uint64_t)getpid(), (uint64_t)(uintptr_t)rl};
    static const uint8_t zero[16];
    uint64_t a = siphash24(zero, (const uint8_t *)stir, sizeof stir);
    stir[0] ^= a;
    uint64_t b = siphash24(zero, (const uint8_t *)stir, sizeof stir);
    memcpy(rl->seed, &a, 8);
    memcpy(rl->seed + 8, &b, 8);
}

ts_ratelimit *ts_ratelimit_new(double per_s, double burst, size_t slots) {
    if (!(per_s > 0 && per_s <= DBL_MAX) || !(burst >= 1 && burst <= DBL_MAX) || slots == 0)
        return NULL;
    ts_ratelimit *rl = calloc(1, sizeof *rl);
    if (!rl)
        return NULL;
    rl->table = calloc(slots, sizeof *rl->table);
    if (!rl->table || pthread_mutex_init(&rl->lock, NULL) != 0) {
        free(rl->table);
        free(rl);
        return NULL;
    }
    rl->per_s = per_s;
    rl->burst = burst;
    rl->nslots = slots;
    seed_table(rl);
    return rl;
}

void ts_ratelimit_free(ts_ratelimit *rl) {
    if (!rl)
        return;
    pthread_mutex_destroy(&rl->lock);
    free(rl->table);
    free(rl);
}

/* The slot's tokens at now_ms, without changing it. A clock read earlier
 * than the last one (another thread got the lock first) adds nothing. */
static double tokens_at(const ts_ratelimit *rl, const slot *s, int64_t now_ms) {
    double t = s->tokens;
    if (now_ms > s->last_ms)
        t += (double)(now_ms - s->last_ms) * rl->per_s / 1000.0;
    return t > rl->burst ? rl->burst : t;
}

int ts_ratelimit_take(ts_ratelimit *rl, const char *key, int64_t now_ms) {
    if (!key)
        key = "";
    size_t len = strnlen(key, TS_RATELIMIT_KEY_MAX);
    uint64_t h = siphash24(rl->seed, (const uint8_t *)key, len);
    size_t home = (size_t)(h % rl->nslots);
    size_t probes = rl->nslots < PROBES ? rl->nslots : PROBES;

    pthread_mutex_lock(&rl->lock);
    slot *found = NULL, *reusable = NULL, *lru = NULL;
    for (size_t i = 0; i < probes; i++) {
        slot *s = &rl->table[(home + i) % rl->nslots];
        if (s->used == 0) {
            if (!reusable)
                reusable = s;
            continue;
        }
        if (s->len == len && memcmp(s->key, key, len) == 0) {
            found = s;
            break;
        }
        if (!reusable && tokens_at(rl, s, now_ms) >= rl->burst - EPS)
            reusable = s;
        if (!lru || s->used < lru->used)
            lru = s;
    }
    if (!found) {
        found = reusable ? reusable : lru;
        if (found->used == 0)
            rl->nkeys++;
        memcpy(found->key, key, len);
        found->len = (uint8_t)len;
        found->tokens = rl->burst;
        found->last_ms = now_ms;
    }
    found->tokens = tokens_at(rl, found, now_ms);
    if (now_ms > found->last_ms)
        found->last_ms = now_ms;
    found->used = ++rl->calls;

    int wait_s = 0;
    if (found->tokens >= 1 - EPS) {
        found->tokens = found->tokens > 1 ? found->tokens - 1 : 0;
    } else {
        double secs = (1 - found->tokens) / rl->per_s - EPS;
        if (secs >= (double)INT_MAX) {
            wait_s = INT_MAX;
        } else {
            wait_s = (int)secs; /* rounded up, at least 1 */
            if (wait_s < secs || wait_s < 1)
                wait_s++;
        }
    }
    pthread_mutex_unlock(&rl->lock);
    return wait_s;
}

size_t ts_ratelimit_keys(ts_ratelimit *rl) {
    pthread_mutex_lock(&rl->lock);
    size_t n = rl->nkeys;
    pthread_mutex_unlock(&rl->lock);
    return n;
}
