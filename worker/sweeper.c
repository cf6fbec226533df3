/* SPDX-License-Identifier: Apache-2.0 */
/* sweeper.c — see sweeper.h.
 *
 * One thread (ts_periodic), its own PostgreSQL connection and its own codec; the
 * producer is the worker's (librdkafka's producers are thread-safe). The
 * holds asked for lately are kept in two generations of a small hash set
 * (the current one and the one before, swapped every
 * TS_SWEEPER_RESEND_MS), each entry with the time it was asked for: an
 * entry counts while it is younger than TS_SWEEPER_RESEND_MS, and a full
 * generation only costs commands sent again (the worker answers them with
 * their first outcome). */
#include "sweeper.h"

#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ts_codec.h"
#include "ts_hash.h"
#include "ts_log.h"
#include "ts_periodic.h"
#include "ts_pg.h"
#include "ts_prometheus.h"
#include "ts_time.h"
#include "ts_uuid.h"

#define SWEEP_LIMIT 1000 /* holds per sweep, the longest past their expiry first */
#define SENT_SLOTS 32768 /* per generation: a power of two */
#define BACKOFF_MAX_MS 5000

static const char sweep_sql[] =
    "SELECT hold_id, event_id, (extract(epoch from expires_at)*1000)::bigint FROM holds"
    " WHERE state = 'held' AND expires_at < $1 ORDER BY expires_at LIMIT 1000";

typedef struct sent_slot {
    unsigned char id[16];
    bool used;
    int64_t at_ms; /* monotonic: when its command was produced */
} sent_slot;

typedef struct sent_set {
    sent_slot *slots; /* SENT_SLOTS, open addressing */
    size_t used;
} sent_set;

struct ts_sweeper {
    const ts_config *cfg;
    rd_kafka_t *producer;
    ts_codec *codec;
    PGconn *conn; /* the thread's, as all below but the counters */
    ts_periodic *thread;
    int backoff;      /* ms, after failed sweeps */
    sent_set sent[2]; /* [0] current, [1] the generation before */
    int64_t rotated_ms;
    uint8_t buf[TS_MESSAGE_BYTES_MAX];
    /* for /metrics (relaxed) */
    atomic_ulong sweeps;
    atomic_ulong requested;
    atomic_ulong errors;
};

static void count(atomic_ulong *c, unsigned long n) {
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

void ts_sweeper_command_id(const char *hold_id, char out[TS_UUID_LEN + 1]) {
    char name[sizeof "expire:" + TS_UUID_LEN];
    snprintf(name, sizeof name, "expire:%s", hold_id);
    ts_uuid_v5(TS_SWEEPER_NAMESPACE, name, out);
}

/* ------------------------------------------------------------ sent set */

/* The slot of `id` in `set`, or the free slot where it would go; NULL
 * when it is not there and the set is too full to take it. */
static sent_slot *sent_slot_of(sent_set *set, const unsigned char id[16]) {
    size_t mask = SENT_SLOTS - 1;
    for (size_t i = ts_fnv1a(id, 16) & mask, n = 0; n < SENT_SLOTS; i = (i + 1) & mask, n++) {
        sent_slot *slot = &set->slots[i];
        if (!slot->used)
            return set->used < SENT_SLOTS * 3 / 4 ? slot : NULL;
        if (!memcmp(slot->id, id, 16))
            return slot;
    }
    return NULL;
}

static bool sent_lately(ts_sweeper *s, const unsigned char id[16], int64_t now) {
    for (int g = 0; g < 2; g++) {
        sent_slot *slot = sent_slot_of(&s->sent[g], id);
        if (slot && slot->used && now - slot->at_ms < TS_SWEEPER_RESEND_MS)
            return true;
    }
    return false;
}

static void sent_note(ts_sweeper *s, const unsigned char id[16], int64_t now) {
    sent_slot *slot = sent_slot_of(&s->sent[0], id);
    if (!slot)
        return; /* full: it may be asked for again before its time */
    if (!slot->used) {
        memcpy(slot->id, id, 16);
        slot->used = true;
        s->sent[0].used++;
    }
    slot->at_ms = now;
}

/* Every TS_SWEEPER_RESEND_MS the current generation becomes the one
 * before, and the one before (all of it older than that) is emptied. */
static void sent_rotate(ts_sweeper *s, int64_t now) {
    if (now - s->rotated_ms < TS_SWEEPER_RESEND_MS)
        return;
    s->rotated_ms = now;
    sent_set old = s->sent[1];
    s->sent[1] = s->sent[0];
    memset(old.slots, 0, SENT_SLOTS * sizeof *old.slots);
    old.used = 0;
    s->sent[0] = old;
}

/* ------------------------------------------------------------ a sweep */

static int connect_db(ts_sweeper *s, char *err, size_t errlen) {
    s->conn = ts_pg_connect_bounded(s->cfg->pg_dsn, "turnstile-worker-sweeper",
                                    s->cfg->pg_timeout_ms, err, errlen);
    if (!s->conn)
        return -1;
    PGresult *res = PQprepare(s->conn, "sweep", sweep_sql, 0, NULL);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        snprintf(err, errlen, "prepare sweep: %s", PQerrorMessage(s->conn));
    PQclear(res);
    if (!ok) {
        PQfinish(s->conn);
        s->conn = NULL;
    }
    return ok ? 0 : -1;
}

/* Produces the ExpireHold command of one hold, issued at now_ms. 0, or -1
 * (logged): it is asked for again at the next sweep. */
static int request_expiry(ts_sweeper *s, const char *hold_id, const char *event_id,
                          int64_t now_ms) {
    ts_command cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = TS_CMD_EXPIRE_HOLD;
    cmd.issued_at_ms = now_ms;
    ts_sweeper_command_id(hold_id, cmd.command_id);
    memcpy(cmd.event_id, event_id, TS_UUID_LEN);
    memcpy(cmd.u.hold_ref.hold_id, hold_id, TS_UUID_LEN);
    size_t len;
    ts_codec_status st = ts_codec_encode_command(s->codec, &cmd, s->buf, sizeof s->buf, &len);
    if (st != TS_CODEC_OK) {
        ts_error("worker", "event=sweep_encode_failed hold_id=%s err=%s", hold_id,
                 ts_codec_status_name(st));
        return -1;
    }
    rd_kafka_resp_err_t e =
        rd_kafka_producev(s->producer, RD_KAFKA_V_TOPIC(s->cfg->topic_commands),
                          RD_KAFKA_V_KEY(cmd.event_id, TS_UUID_LEN), RD_KAFKA_V_VALUE(s->buf, len),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (e) {
        ts_warn("worker", "event=sweep_produce_failed hold_id=%s err=\"%s\"", hold_id,
                rd_kafka_err2str(e));
        return -1;
    }
    ts_debug("worker", "event=hold_expiry_requested hold_id=%s event_id=%s command_id=%s", hold_id,
             event_id, cmd.command_id);
    return 0;
}

/* One sweep: the holds past their expiry now, each asked to expire unless
 * it was lately. 0, or -1 with `err` set (a database failure). */
static int sweep(ts_sweeper *s, char *err, size_t errlen) {
    if (!s->conn && connect_db(s, err, errlen))
        return -1;
    int64_t now = ts_now_ms(), mono = ts_monotonic_ms();
    char now_text[TS_ISO8601_LEN + 1];
    ts_time_format_iso8601(now, now_text);
    const char *values[] = {now_text};
    PGresult *res = ts_pg_exec_prepared_within(s->conn, s->cfg->pg_timeout_ms, "sweep", 1, values,
                                               NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "sweep: %s", PQerrorMessage(s->conn));
        PQclear(res);
        PQfinish(s->conn); /* whatever went wrong, a new connection next time */
        s->conn = NULL;
        return -1;
    }
    count(&s->sweeps, 1);
    sent_rotate(s, mono);
    unsigned long requested = 0;
    for (int r = 0; r < PQntuples(res); r++) {
        const char *hold_id = PQgetvalue(res, r, 0), *event_id = PQgetvalue(res, r, 1);
        unsigned char id[16];
        if (PQgetlength(res, r, 0) != TS_UUID_LEN || PQgetlength(res, r, 1) != TS_UUID_LEN ||
            ts_uuid_parse(hold_id, id))
            continue; /* uuid columns: cannot happen */
        /* The worker compares issued_at with expires_at in milliseconds:
         * asked before they differ there, the hold would not expire, and
         * the same command id would say so every time after. */
        if (now <= strtoll(PQgetvalue(res, r, 2), NULL, 10) || sent_lately(s, id, mono))
            continue;
        if (request_expiry(s, hold_id, event_id, now) == 0) {
            sent_note(s, id, mono);
            requested++;
        }
    }
    PQclear(res);
    if (requested) {
        count(&s->requested, requested);
        ts_info("worker", "event=holds_expiry_requested count=%lu", requested);
    }
    return 0;
}

/* ------------------------------------------------------------ the thread */

/* A sweep, and the wait before the next: the interval, or longer after
 * failures (doubling from 250 ms up to BACKOFF_MAX_MS). */
static long run(ts_periodic *thread, void *arg) {
    (void)thread;
    ts_sweeper *s = arg;
    char err[512];
    int wait = s->cfg->sweep_interval_ms;
    if (sweep(s, err, sizeof err)) {
        count(&s->errors, 1);
        s->backoff = s->backoff ? s->backoff * 2 : 250;
        if (s->backoff > BACKOFF_MAX_MS)
            s->backoff = BACKOFF_MAX_MS;
        if (s->backoff > wait)
            wait = s->backoff;
        err[strcspn(err, "\n")] = '\0'; /* libpq's messages go on for lines */
        ts_warn("worker", "event=sweep_failed retry_ms=%d err=\"%s\"", wait, err);
    } else {
        s->backoff = 0;
    }
    return wait;
}

static void sweeper_free(ts_sweeper *s) {
    if (s->conn)
        PQfinish(s->conn);
    ts_codec_free(s->codec);
    free(s->sent[0].slots);
    free(s->sent[1].slots);
    free(s);
}

ts_sweeper *ts_sweeper_start(const ts_config *cfg, rd_kafka_t *producer, char *err, size_t errlen) {
    ts_sweeper *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "sweeper: out of memory");
        return NULL;
    }
    s->cfg = cfg;
    s->producer = producer;
    s->sent[0].slots = calloc(SENT_SLOTS, sizeof *s->sent[0].slots);
    s->sent[1].slots = calloc(SENT_SLOTS, sizeof *s->sent[1].slots);
    if (!s->sent[0].slots || !s->sent[1].slots) {
        snprintf(err, errlen, "sweeper: out of memory");
        sweeper_free(s);
        return NULL;
    }
    if (!(s->codec = ts_codec_new(err, errlen))) {
        sweeper_free(s);
        return NULL;
    }
    char why[128];
    if (!(s->thread = ts_periodic_start(run, s, why, sizeof why))) {
        snprintf(err, errlen, "sweeper: %s", why);
        sweeper_free(s);
        return NULL;
    }
    ts_info("worker", "event=sweeper_started interval_ms=%d", cfg->sweep_interval_ms);
    return s;
}

void ts_sweeper_stop(ts_sweeper *s) {
    if (!s)
        return;
    ts_periodic_stop(s->thread);
    rd_kafka_resp_err_t e = rd_kafka_flush(s->producer, 5000);
    if (e) /* the holds are still held: the next sweeper asks again */
        ts_warn("worker", "event=sweeper_flush_failed err=\"%s\"", rd_kafka_err2str(e));
    sweeper_free(s);
    ts_info("worker", "event=sweeper_stopped");
}

void ts_sweeper_metrics_print(const ts_sweeper *s, FILE *out) {
    const ts_metric_row rows[] = {
        {"turnstile_worker_sweeps_total", "Sweeps for holds past their expiry.", "counter",
         atomic_load_explicit(&s->sweeps, memory_order_relaxed)},
        {"turnstile_worker_hold_expiries_requested_total",
         "ExpireHold commands the sweeper produced.", "counter",
         atomic_load_explicit(&s->requested, memory_order_relaxed)},
        {"turnstile_worker_sweep_errors_total", "Sweeps that failed (the database).", "counter",
         atomic_load_explicit(&s->errors, memory_order_relaxed)},
    };
    ts_metric_rows_print(out, rows, sizeof rows / sizeof rows[0]);
}
