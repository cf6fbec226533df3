/* SPDX-License-Identifier: Apache-2.0 */
/* keys.c — see keys.h.
 *
 * A snapshot is an array of the active keys sorted by digest, replaced as
 * a whole under a write lock after every read; a lookup hashes the key it
 * is given and searches the snapshot under the read lock. */
#include "keys.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clientaddr.h"
#include "ts_log.h"
#include "ts_pg.h"
#include "ts_secret.h"
#include "ts_time.h"

typedef struct key_entry {
    uint8_t digest[TS_SHA256_LEN];
    char id[TS_UUID_LEN + 1];
    int nevents; /* -1: every event */
    char (*events)[TS_UUID_LEN + 1];
} key_entry;

typedef struct snapshot {
    key_entry *keys;
    int n;
} snapshot;

struct ts_keys {
    const ts_config *cfg;
    bool loopback;
    pthread_rwlock_t lock;
    snapshot snap;           /* under lock */
    _Atomic int64_t read_ms; /* monotonic: when the snapshot was last read whole */
    atomic_bool protected_mode;
    atomic_bool stop;
    pthread_t thread;
    bool thread_started;
    PGconn *conn; /* the thread's own */
};

/* A snapshot older than this is not trusted to say a key is still valid: a
 * key revoked while the keys could not be read must not live on. Every key
 * is refused then (fail closed); the mode stays as it was. */
#define KEYS_STALE_MS 30000

static void snapshot_free(snapshot *s) {
    for (int i = 0; i < s->n; i++)
        free(s->keys[i].events);
    free(s->keys);
    s->keys = NULL;
    s->n = 0;
}

static int by_digest(const void *a, const void *b) {
    return memcmp(((const key_entry *)a)->digest, ((const key_entry *)b)->digest, TS_SHA256_LEN);
}

/* Parses "{uuid,uuid}" (PostgreSQL's text form of uuid[]) into e->events. */
static int parse_events(const char *text, key_entry *e) {
    size_t len = strlen(text);
    int max = (int)(len / TS_UUID_LEN) + 1;
    e->events = calloc((size_t)max, sizeof *e->events);
    if (!e->events)
        return -1;
    e->nevents = 0;
    const char *p = text + (*text == '{');
    while (*p && *p != '}' && e->nevents < max) {
        size_t n = strcspn(p, ",}");
        if (n == TS_UUID_LEN) {
            memcpy(e->events[e->nevents], p, TS_UUID_LEN);
            e->events[e->nevents++][TS_UUID_LEN] = '\0';
        }
        p += n + (p[n] == ',');
    }
    return 0;
}

/* A hex digit's value, or -1. */
static int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The bytes of a SHA-256 in lowercase hex (PostgreSQL's encode(.., 'hex')).
 * 0, or -1 if `hex` is not exactly that. */
static int parse_digest(const char *hex, uint8_t out[TS_SHA256_LEN]) {
    if (strlen(hex) != 2 * (size_t)TS_SHA256_LEN)
        return -1;
    for (size_t b = 0; b < TS_SHA256_LEN; b++) {
        int hi = hex_value(hex[2 * b]), lo = hex_value(hex[2 * b + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[b] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static void connect_db(ts_keys *ks) {
    char err[512];
    ks->conn = ts_pg_connect_bounded(ks->cfg->pg_dsn, "turnstile-api-keys", ks->cfg->pg_timeout_ms,
                                     err, sizeof err);
    if (!ks->conn)
        ts_warn("api", "event=keys_db_unavailable err=\"%s\"", err);
}

/* Reads the active keys into a new snapshot and swaps it in. 0, or -1 with
 * the last snapshot kept: a read cut short (the database, or memory) must
 * never look like fewer keys, which could turn a protected ingress open. */
static int refresh(ts_keys *ks) {
    if (!ks->conn || PQstatus(ks->conn) != CONNECTION_OK) {
        if (ks->conn)
            PQfinish(ks->conn);
        ks->conn = NULL;
        connect_db(ks);
        if (!ks->conn)
            return -1;
    }
    /* a read of the keys must not wait long on a hung database */
    ts_pg_watch watch;
    ts_pg_watch_begin(&watch, ks->conn, ks->cfg->pg_timeout_ms);
    PGresult *res = PQexec(ks->conn, "SELECT encode(key_sha256, 'hex'), id,"
                                     " coalesce(events::text, '') FROM api_keys"
                                     " WHERE revoked_at IS NULL");
    ts_pg_watch_end(&watch);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        /* before the first migration the table is missing: no key exists */
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        bool no_table = state && !strcmp(state, "42P01");
        if (!no_table)
            ts_warn("api", "event=keys_read_failed err=\"%s\"", PQerrorMessage(ks->conn));
        PQclear(res);
        if (!no_table)
            return -1;
        res = NULL;
    }
    snapshot s = {0};
    int rows = res ? PQntuples(res) : 0;
    if (rows && !(s.keys = calloc((size_t)rows, sizeof *s.keys))) {
        PQclear(res);
        return -1;
    }
    for (int i = 0; i < rows; i++) {
        key_entry *e = &s.keys[s.n];
        snprintf(e->id, sizeof e->id, "%s", PQgetvalue(res, i, 1));
        /* cannot fail (key_sha256 holds 32 bytes), but a key misread is skipped */
        if (parse_digest(PQgetvalue(res, i, 0), e->digest)) {
            ts_warn("api", "event=key_skipped id=%s reason=bad_digest", e->id);
            continue;
        }
        const char *events = PQgetvalue(res, i, 2);
        e->nevents = -1;
        if (*events && parse_events(events, e)) {
            PQclear(res);
            snapshot_free(&s);
            return -1;
        }
        s.n++;
    }
    PQclear(res);
    if (s.n)
        qsort(s.keys, (size_t)s.n, sizeof *s.keys, by_digest);
    pthread_rwlock_wrlock(&ks->lock);
    snapshot old = ks->snap;
    ks->snap = s;
    pthread_rwlock_unlock(&ks->lock);
    snapshot_free(&old);
    atomic_store(&ks->read_ms, ts_monotonic_ms());

    bool was = atomic_load(&ks->protected_mode);
    bool now = strcmp(ks->cfg->auth, "on") == 0 ||
               (strcmp(ks->cfg->auth, "off") != 0 && (!ks->loopback || s.n > 0));
    atomic_store(&ks->protected_mode, now);
    if (was != now)
        ts_info("api", "event=mode mode=%s keys=%d", now ? "protected" : "open", s.n);
    return 0;
}

static void *run(void *arg) {
    ts_keys *ks = arg;
    while (!atomic_load(&ks->stop)) {
        struct timespec tick = {0, TS_KEYS_REFRESH_MS * 1000000L};
        nanosleep(&tick, NULL);
        if (!atomic_load(&ks->stop))
            refresh(ks);
    }
    return NULL;
}

ts_keys *ts_keys_start(const ts_config *cfg, char *err, size_t errlen) {
    ts_keys *ks = calloc(1, sizeof *ks);
    if (!ks) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (pthread_rwlock_init(&ks->lock, NULL) != 0) {
        snprintf(err, errlen, "cannot make the keys' lock");
        free(ks);
        return NULL;
    }
    ks->cfg = cfg;
    ks->loopback = ts_address_is_loopback(cfg->http_bind);
    /* until a read says otherwise, protected: fail closed */
    atomic_store(&ks->protected_mode, strcmp(cfg->auth, "off") != 0);
    int loaded = refresh(ks);
    if (!ks->loopback && !strcmp(cfg->auth, "auto") && (loaded != 0 || ks->snap.n == 0)) {
        snprintf(err, errlen,
                 "refusing to serve %s without organizer keys (%s): create one with "
                 "`turnstile-admin keys create --name NAME`, or set TS_AUTH=off to serve "
                 "openly (anyone may then create events, list attendees and cancel)",
                 cfg->http_bind, loaded ? "the database did not answer" : "none exists");
        ts_keys_stop(ks);
        return NULL;
    }
    if (pthread_create(&ks->thread, NULL, run, ks)) {
        snprintf(err, errlen, "cannot start the keys thread");
        ts_keys_stop(ks);
        return NULL;
    }
    ks->thread_started = true;
    ts_info("api", "event=mode mode=%s bind=%s auth=%s",
            ts_keys_protected(ks) ? "protected" : "open", cfg->http_bind, cfg->auth);
    return ks;
}

void ts_keys_stop(ts_keys *ks) {
    if (!ks)
        return;
    atomic_store(&ks->stop, true);
    if (ks->thread_started)
        pthread_join(ks->thread, NULL);
    if (ks->conn)
        PQfinish(ks->conn);
    snapshot_free(&ks->snap);
    pthread_rwlock_destroy(&ks->lock);
    free(ks);
}

bool ts_keys_protected(ts_keys *ks) {
    return atomic_load(&ks->protected_mode);
}

ts_key_check ts_keys_check(ts_keys *ks, const char *key, const char *event_id,
                           char key_id[TS_UUID_LEN + 1]) {
    key_entry probe;
    ts_sha256(key, strlen(key), probe.digest);
    ts_key_check result = TS_KEY_UNKNOWN;
    if (ts_monotonic_ms() - atomic_load(&ks->read_ms) > KEYS_STALE_MS)
        return TS_KEY_UNKNOWN;
    pthread_rwlock_rdlock(&ks->lock);
    const key_entry *e = ks->snap.n ? bsearch(&probe, ks->snap.keys, (size_t)ks->snap.n,
                                              sizeof *ks->snap.keys, by_digest)
                                    : NULL;
    if (e) {
        memcpy(key_id, e->id, TS_UUID_LEN + 1);
        result = e->nevents < 0 ? TS_KEY_COVERS : TS_KEY_ELSEWHERE;
        for (int i = 0; event_id && i < e->nevents && result != TS_KEY_COVERS; i++)
            if (!strcmp(e->events[i], event_id))
                result = TS_KEY_COVERS;
    }
    pthread_rwlock_unlock(&ks->lock);
    return result;
}
