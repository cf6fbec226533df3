/* SPDX-License-Identifier: Apache-2.0 */
/* stream.c — see stream.h.
 *
 * Delivery is followed per command: each command whose records are queued
 * has an entry, in its partition's list ordered by offset, that counts its
 * records not yet acknowledged (plus one while they are being queued).
 * An entry leaves the list when its count reaches zero, so the head of a
 * partition's list is the lowest command still waiting, and the partition's
 * watermark is that command's offset; with an empty list it is `covered`,
 * the offset below which every command's records were queued (the end of
 * the last committed batch, or of the last recovery). A record that could
 * not be queued, or that the broker refused, keeps its entry forever: the
 * watermark never passes it, and the relay is failed (nothing more is
 * stored; the worker exits and the next owner publishes it again).
 *
 * Everything here runs on the worker's thread, delivery reports included
 * (rd_kafka_poll is only called from here): no locks. Only the counters
 * of /metrics are read elsewhere (relaxed atomics). */
#include "stream.h"

#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ts_kafka.h"
#include "ts_limits.h"
#include "ts_log.h"
#include "ts_pg.h"
#include "ts_prometheus.h"
#include "ts_time.h"

#define MAX_PARTITIONS 1024     /* as the consumer's: a partition beyond it is never applied */
#define STORE_EVERY_MS 1000     /* a partition's watermark is stored this often at most */
#define RECONNECT_EVERY_MS 5000 /* no connection: the store tries again this often */
#define RECOVER_PAGE 100        /* outbox rows per recovery query (its LIMIT) */
#define QUEUE_WAIT_MS 100       /* the producer's queue full: serve reports this long, retry */

enum stmt { ST_STREAM_OFFSET, ST_RECOVER, ST_STORE, ST_PRUNE, ST_COUNT_ };

static const struct {
    const char *name;
    const char *sql;
} stmts[ST_COUNT_] = {
    [ST_STREAM_OFFSET] = {"stream_offset", "SELECT stream_offset FROM consumer_offsets"
                                           " WHERE topic = $1 AND kafka_partition = $2"},
    /* A page of the outbox rows of a partition that hold records of
     * commands in [$3, $4), by offset. Binary results: bigint, bigint,
     * bytea (the frames of sql/005's stream_outbox). */
    [ST_RECOVER] = {"stream_recover",
                    "SELECT first_offset, last_offset, records FROM stream_outbox"
                    " WHERE topic = $1 AND kafka_partition = $2 AND last_offset >= $3"
                    " AND first_offset < $4 ORDER BY first_offset LIMIT 100"},
    /* Only ever forward: a slower writer (an old owner of the partition)
     * cannot move it back. */
    [ST_STORE] = {"stream_store",
                  "UPDATE consumer_offsets SET stream_offset = $3"
                  " WHERE topic = $1 AND kafka_partition = $2 AND stream_offset < $3"},
    /* The outbox keeps only what may still have to be published. */
    [ST_PRUNE] = {"stream_prune", "DELETE FROM stream_outbox WHERE topic = $1"
                                  " AND kafka_partition = $2 AND last_offset < $3"},
};

typedef struct part_state part_state;

/* A command with records queued and not all acknowledged. */
typedef struct entry {
    int64_t offset;
    int refs; /* records not acknowledged, plus one while its records are being queued */
    part_state *part;
    struct entry *prev, *next;
} entry;

struct part_state {
    bool seen;       /* recovered once: covered and stored mean something */
    bool following;  /* the worker's now: its batches move covered */
    int64_t covered; /* every command below it has had its records queued */
    int64_t stored;  /* the stream offset the database holds (at least) */
    entry *head, *tail;
};

struct ts_stream {
    const ts_config *cfg;
    rd_kafka_t *producer;
    PGconn *conn;
    int64_t reconnect_ms; /* no connection: when the store may try again */
    int64_t stored_ms;    /* the last round of stores */
    atomic_bool failed;
    part_state parts[MAX_PARTITIONS];
    /* for /metrics (relaxed) */
    atomic_ulong published;
    atomic_ulong recovered;
    atomic_long pending;
};

static void count(atomic_ulong *c, unsigned long n) {
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static void gauge(atomic_long *g, long delta) {
    atomic_fetch_add_explicit(g, delta, memory_order_relaxed);
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    (void)nanosleep(&ts, NULL); /* a signal cuts it short: the caller looks at the stop flag */
}

/* The relay cannot go on; said once. */
static void fail(ts_stream *s, const char *event, const char *detail) {
    if (!atomic_exchange(&s->failed, true))
        ts_error("worker", "event=%s topic=%s err=\"%s\" action=exit", event, s->cfg->topic_events,
                 detail);
}

bool ts_stream_failed(const ts_stream *s) {
    return atomic_load(&s->failed);
}

/* ------------------------------------------------------------ entries */

/* A new entry for command `offset` of `ps`, holding its queuing reference,
 * in offset order (at the tail but after a recovery that goes back). */
static entry *entry_new(part_state *ps, int64_t offset) {
    entry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->offset = offset;
    e->refs = 1;
    e->part = ps;
    entry *after = ps->tail;
    while (after && after->offset > offset)
        after = after->prev;
    e->prev = after;
    e->next = after ? after->next : ps->head;
    if (e->next)
        e->next->prev = e;
    else
        ps->tail = e;
    if (after)
        after->next = e;
    else
        ps->head = e;
    return e;
}

static void entry_unref(entry *e) {
    if (--e->refs > 0)
        return;
    part_state *ps = e->part;
    if (e->prev)
        e->prev->next = e->next;
    else
        ps->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        ps->tail = e->prev;
    free(e);
}

/* The lowest offset whose records are not all acknowledged. */
static int64_t watermark(const part_state *ps) {
    return ps->head ? ps->head->offset : ps->covered;
}

/* ------------------------------------------------------------ producing */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    ts_stream *s = opaque;
    entry *e = m->_private;
    gauge(&s->pending, -1);
    if (m->err) { /* its entry keeps the reference: the watermark stays below it */
        char detail[256];
        snprintf(detail, sizeof detail, "a record of partition %d offset %lld: %s",
                 (int)(e ? e->part - s->parts : -1), (long long)(e ? e->offset : -1),
                 rd_kafka_err2str(m->err));
        fail(s, "stream_record_not_delivered", detail);
        return;
    }
    count(&s->published, 1);
    if (e)
        entry_unref(e);
}

static void on_error(rd_kafka_t *rk, int code, const char *reason, void *opaque) {
    ts_stream *s = opaque;
    if (code != RD_KAFKA_RESP_ERR__FATAL) { /* librdkafka recovers: retries, reconnects */
        ts_warn("worker", "event=stream_kafka_error err=\"%s\"", reason);
        return;
    }
    char why[512], detail[600];
    rd_kafka_resp_err_t e = rd_kafka_fatal_error(rk, why, sizeof why);
    snprintf(detail, sizeof detail, "fatal producer error %s: %s", rd_kafka_err2name(e), why);
    fail(s, "stream_fatal", detail);
}

static void producer_setup(rd_kafka_conf_t *conf, void *arg) {
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_opaque(conf, arg);
}

/* Queues one record of entry e's command, waiting (serving delivery
 * reports) while the producer's queue is full. 0, or -1 when stopping or
 * failed: then e keeps the record's reference, so the watermark stays
 * below it (the record is in the outbox). */
static int queue_record(ts_stream *s, entry *e, const char *key, size_t keylen, const void *bytes,
                        size_t len, const volatile sig_atomic_t *stop) {
    e->refs++;
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            s->producer, RD_KAFKA_V_TOPIC(s->cfg->topic_events), RD_KAFKA_V_KEY(key, keylen),
            RD_KAFKA_V_VALUE((void *)bytes, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_OPAQUE(e), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            gauge(&s->pending, 1);
            return 0;
        }
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            char detail[256];
            snprintf(detail, sizeof detail, "a record of partition %d offset %lld: %s",
                     (int)(e->part - s->parts), (long long)e->offset, rd_kafka_err2str(err));
            fail(s, "stream_record_not_queued", detail);
            return -1;
        }
        if (*stop || ts_stream_failed(s))
            return -1;
        rd_kafka_poll(s->producer, QUEUE_WAIT_MS);
    }
}

/* Queues records in order, one entry per run of records of one command.
 * The caller passes each record's command; *cur is the entry of the run
 * being queued (NULL at first), and the caller unrefs it at the end. */
static int queue_in_run(ts_stream *s, entry **cur, int32_t partition, int64_t offset,
                        const char *key, size_t keylen, const void *bytes, size_t len,
                        const volatile sig_atomic_t *stop) {
    if (partition < 0 || partition >= MAX_PARTITIONS) {
        fail(s, "stream_bad_partition", "a record of a partition the worker never applies");
        return -1;
    }
    part_state *ps = &s->parts[partition];
    if (!*cur || (*cur)->part != ps || (*cur)->offset != offset) {
        if (*cur)
            entry_unref(*cur);
        if (!(*cur = entry_new(ps, offset))) {
            fail(s, "stream_out_of_memory", "no memory to follow a record");
            return -1;
        }
    }
    return queue_record(s, *cur, key, keylen, bytes, len, stop);
}

void ts_stream_publish(ts_stream *s, const ts_batch_part *parts, size_t nparts,
                       const ts_stream_msg *msgs, size_t n, const volatile sig_atomic_t *stop) {
    entry *cur = NULL;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = queue_in_run(s, &cur, msgs[i].partition, msgs[i].offset, msgs[i].event_id,
                          strlen(msgs[i].event_id), msgs[i].bytes, msgs[i].len, stop);
    if (cur)
        entry_unref(cur);
    if (rc == 0) /* else covered stays: the records not queued are above it */
        for (size_t i = 0; i < nparts; i++) {
            int32_t p = parts[i].partition;
            if (p >= 0 && p < MAX_PARTITIONS && s->parts[p].following &&
                parts[i].next > s->parts[p].covered)
                s->parts[p].covered = parts[i].next;
        }
    rd_kafka_poll(s->producer, 0);
}

/* ------------------------------------------------------------ PostgreSQL */

static void disconnect(ts_stream *s) {
    if (s->conn)
        PQfinish(s->conn);
    s->conn = NULL;
    s->reconnect_ms = ts_monotonic_ms() + RECONNECT_EVERY_MS;
}

static int connect_db(ts_stream *s, char *err, size_t errlen) {
    disconnect(s);
    s->conn = ts_pg_connect_bounded(s->cfg->pg_dsn, "turnstile-worker-stream",
                                    s->cfg->pg_timeout_ms, err, errlen);
    if (!s->conn) {
        err[strcspn(err, "\n")] = '\0'; /* libpq's messages go on for lines */
        return -1;
    }
    for (int i = 0; i < ST_COUNT_; i++) {
        PGresult *res = PQprepare(s->conn, stmts[i].name, stmts[i].sql, 0, NULL);
        bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok) {
            snprintf(err, errlen, "prepare %s: %s", stmts[i].name, PQerrorMessage(s->conn));
            err[strcspn(err, "\n")] = '\0';
        }
        PQclear(res);
        if (!ok) {
            disconnect(s);
            return -1;
        }
    }
    return 0;
}

/* A statement's failure: `err` says why; a lost connection is dropped. */
static void statement_failed(ts_stream *s, const char *what, char *err, size_t errlen) {
    snprintf(err, errlen, "%s: %s", what, PQerrorMessage(s->conn));
    err[strcspn(err, "\n")] = '\0';
    if (PQstatus(s->conn) != CONNECTION_OK)
        disconnect(s);
}

static int64_t be64(const char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | (uint8_t)p[i];
    return (int64_t)v;
}

/* The partition's stored stream offset (0 without a row). */
static int stored_offset(ts_stream *s, int32_t p, int64_t *out, char *err, size_t errlen) {
    char part[16];
    snprintf(part, sizeof part, "%d", p);
    const char *values[] = {s->cfg->topic_commands, part};
    PGresult *res = ts_pg_exec_prepared_within(
        s->conn, s->cfg->pg_timeout_ms, stmts[ST_STREAM_OFFSET].name, 2, values, NULL, NULL, 0);
    int rc = -1;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        statement_failed(s, "stream offset", err, errlen);
    } else {
        *out = PQntuples(res) ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
        rc = 0;
    }
    PQclear(res);
    return rc;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Queues the records of one outbox row (sql/005's frames: offset, event
 * id, length, record) whose command is in [from, to), in order. A frame
 * that does not fit is said and the rest of the row skipped: nothing can
 * publish it, and stopping on it would stop the partition for good. */
static int replay_row(ts_stream *s, int32_t p, int64_t from, int64_t to, const uint8_t *frames,
                      size_t len, unsigned long *records, const volatile sig_atomic_t *stop) {
    enum { HEAD = 8 + TS_UUID_LEN + 4 };
    entry *cur = NULL;
    int rc = 0;
    for (size_t at = 0; at < len && rc == 0;) {
        uint32_t n = len - at >= HEAD ? be32(frames + at + 8 + TS_UUID_LEN) : 0;
        if (len - at < HEAD || n == 0 || n > len - at - HEAD) {
            ts_error("worker", "event=stream_record_corrupt partition=%d at=%zu", p, at);
            break;
        }
        int64_t offset = be64((const char *)frames + at);
        if (offset >= from && offset < to) {
            rc = queue_in_run(s, &cur, p, offset, (const char *)frames + at + 8, TS_UUID_LEN,
                              frames + at + HEAD, n, stop);
            if (rc == 0)
                (*records)++;
        }
        at += HEAD + (size_t)n;
    }
    if (cur)
        entry_unref(cur);
    return rc;
}

/* Queues every record of partition p's commands in [from, to), by offset.
 * 0, or -1 with `err` set (or when stopping or failed). */
static int replay(ts_stream *s, int32_t p, int64_t from, int64_t to, unsigned long *records,
                  const volatile sig_atomic_t *stop, char *err, size_t errlen) {
    char part[16], lo[24], hi[24];
    snprintf(part, sizeof part, "%d", p);
    snprintf(hi, sizeof hi, "%lld", (long long)to);
    for (int64_t at = from; at < to;) {
        snprintf(lo, sizeof lo, "%lld", (long long)at);
        const char *values[] = {s->cfg->topic_commands, part, lo, hi};
        PGresult *res = ts_pg_exec_prepared_within(
            s->conn, s->cfg->pg_timeout_ms, stmts[ST_RECOVER].name, 4, values, NULL, NULL, 1);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            statement_failed(s, "stream records", err, errlen);
            PQclear(res);
            return -1;
        }
        int rows = PQntuples(res), rc = 0;
        for (int r = 0; r < rows && rc == 0; r++) {
            if (PQgetlength(res, r, 0) != 8 || PQgetlength(res, r, 1) != 8) {
                snprintf(err, errlen, "stream records: a row of unexpected types");
                rc = -1;
                break;
            }
            int64_t last = be64(PQgetvalue(res, r, 1));
            rc = replay_row(s, p, from, to, (const uint8_t *)PQgetvalue(res, r, 2),
                            (size_t)PQgetlength(res, r, 2), records, stop);
            if (rc)
                snprintf(err, errlen, "stopped");
            at = last + 1;
        }
        PQclear(res);
        if (rc)
            return -1;
        if (rows < RECOVER_PAGE)
            break;
    }
    return 0;
}

int ts_stream_recover(ts_stream *s, int32_t p, int64_t next, const volatile sig_atomic_t *stop) {
    if (p < 0 || p >= MAX_PARTITIONS)
        return 0; /* never applied: nothing of it to publish */
    part_state *ps = &s->parts[p];
    if (ps->following && ps->covered >= next)
        return 0; /* nobody else applied anything of it meanwhile */
    int backoff = 100;
    while (!*stop && !ts_stream_failed(s)) {
        char err[512] = "";
        int64_t from = ps->covered;
        unsigned long records = 0;
        /* Following it already: another worker applied [covered, next)
         * (this one was fenced), and may have died before publishing. Else
         * from where the last owner's records all reached the topic. */
        if ((s->conn || connect_db(s, err, sizeof err) == 0) &&
            (ps->following || stored_offset(s, p, &from, err, sizeof err) == 0) &&
            replay(s, p, from, next, &records, stop, err, sizeof err) == 0) {
            if (!ps->following && (!ps->seen || from > ps->stored))
                ps->stored = from;
            ps->seen = ps->following = true;
            if (next > ps->covered)
                ps->covered = next;
            count(&s->recovered, records);
            ts_info("worker",
                    "event=stream_recovered partition=%d from_offset=%lld to_offset=%lld"
                    " records=%lu",
                    p, (long long)from, (long long)next, records);
            rd_kafka_poll(s->producer, 0);
            return 0;
        }
        if (*stop || ts_stream_failed(s))
            break;
        ts_warn("worker", "event=stream_recover_failed partition=%d retry_ms=%d err=\"%s\"", p,
                backoff, err);
        sleep_ms(backoff);
        backoff = backoff < 5000 ? backoff * 2 : 5000;
    }
    return -1;
}

void ts_stream_release(ts_stream *s, int32_t p) {
    if (p >= 0 && p < MAX_PARTITIONS)
        s->parts[p].following = false;
}

/* Stores every watermark that moved. Never after a failure: a record may
 * be missing below the watermark then, and only the outbox has it. */
static void store_watermarks(ts_stream *s) {
    if (ts_stream_failed(s))
        return;
    char err[512];
    if (!s->conn) {
        if (ts_monotonic_ms() < s->reconnect_ms)
            return;
        if (connect_db(s, err, sizeof err)) {
            ts_warn("worker", "event=stream_store_failed err=\"%s\"", err);
            return;
        }
    }
    for (int32_t p = 0; p < MAX_PARTITIONS; p++) {
        part_state *ps = &s->parts[p];
        int64_t w = watermark(ps);
        if (!ps->seen || w <= ps->stored)
            continue;
        char part[16], offset[24];
        snprintf(part, sizeof part, "%d", p);
        snprintf(offset, sizeof offset, "%lld", (long long)w);
        const char *values[] = {s->cfg->topic_commands, part, offset};
        PGresult *res = ts_pg_exec_prepared_within(s->conn, s->cfg->pg_timeout_ms,
                                                   stmts[ST_STORE].name, 3, values, NULL, NULL, 0);
        bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
        if (!ok) { /* the next round tries again: the watermark only lags */
            statement_failed(s, "store", err, sizeof err);
            ts_warn("worker", "event=stream_store_failed partition=%d err=\"%s\"", p, err);
            return;
        }
        ps->stored = w;
        res = ts_pg_exec_prepared_within(s->conn, s->cfg->pg_timeout_ms, stmts[ST_PRUNE].name, 3,
                                         values, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) { /* pruned next time */
            statement_failed(s, "prune", err, sizeof err);
            ts_warn("worker", "event=stream_prune_failed partition=%d err=\"%s\"", p, err);
        }
        PQclear(res);
    }
}

void ts_stream_poll(ts_stream *s) {
    rd_kafka_poll(s->producer, 0);
    int64_t now = ts_monotonic_ms();
    if (now - s->stored_ms < STORE_EVERY_MS)
        return;
    s->stored_ms = now;
    store_watermarks(s);
}

void ts_stream_drain(ts_stream *s, int timeout_ms) {
    s->reconnect_ms = 0; /* the last chance to store: no waiting for the next attempt */
    rd_kafka_resp_err_t e = rd_kafka_flush(s->producer, timeout_ms);
    if (e) /* what is left is in the outbox: the next owner publishes it again */
        ts_warn("worker", "event=stream_not_drained left=%d err=\"%s\"",
                rd_kafka_outq_len(s->producer), rd_kafka_err2str(e));
    store_watermarks(s);
}

/* ------------------------------------------------------------ setup */

/* The topic must exist: records for a missing one would wait forever. A
 * cluster that does not answer is not an error here (the worker checked
 * it at start; librdkafka keeps trying). */
static int check_topic(ts_stream *s, char *err, size_t errlen) {
    const struct rd_kafka_metadata *md;
    rd_kafka_resp_err_t e = rd_kafka_metadata(s->producer, 1, NULL, &md, 5000);
    if (e) {
        ts_warn("worker", "event=stream_topic_unchecked topic=%s err=\"%s\"", s->cfg->topic_events,
                rd_kafka_err2str(e));
        return 0;
    }
    bool found = false;
    for (int t = 0; t < md->topic_cnt && !found; t++)
        found = !strcmp(md->topics[t].topic, s->cfg->topic_events) && !md->topics[t].err;
    rd_kafka_metadata_destroy(md);
    if (!found)
        snprintf(err, errlen, "topic %s does not exist (turnstile-admin topics creates it)",
                 s->cfg->topic_events);
    return found ? 0 : -1;
}

ts_stream *ts_stream_new(const ts_config *cfg, char *err, size_t errlen) {
    ts_stream *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->cfg = cfg;
    /* A record waits as long as it takes (0: no timeout): a record given up
     * while the worker goes on would be a gap. Idempotence keeps each
     * partition's records in order and once each through retries. Nobody
     * waits on a record, so they are sent in large batches (a 50 ms
     * linger): one record per registration, sent as it comes, cost the
     * broker (on the same cores in bench/run) twice its CPU per request. */
    const char *pairs[] = {
        "enable.idempotence", "true",  "acks", "all", "message.timeout.ms", "0", "linger.ms", "50",
        "batch.num.messages", "10000", NULL,
    };
    s->producer = ts_kafka_new(cfg, RD_KAFKA_PRODUCER, "turnstile-worker-stream", pairs,
                               producer_setup, s, err, errlen);
    if (!s->producer || check_topic(s, err, errlen) || connect_db(s, err, errlen)) {
        ts_stream_free(s);
        return NULL;
    }
    return s;
}

void ts_stream_free(ts_stream *s) {
    if (!s)
        return;
    if (s->producer) /* before the entries: a report it still serves may name one */
        rd_kafka_destroy(s->producer);
    if (s->conn)
        PQfinish(s->conn);
    for (int p = 0; p < MAX_PARTITIONS; p++)
        for (entry *e = s->parts[p].head, *next; e; e = next) {
            next = e->next;
            free(e);
        }
    free(s);
}

void ts_stream_metrics_print(const ts_stream *s, FILE *out) {
    long pending = atomic_load_explicit(&s->pending, memory_order_relaxed);
    const ts_metric_row rows[] = {
        {"turnstile_worker_stream_records_total",
         "Event stream records published (acknowledged by the broker).", "counter",
         atomic_load_explicit(&s->published, memory_order_relaxed)},
        {"turnstile_worker_stream_pending", "Event stream records queued, not yet acknowledged.",
         "gauge", (unsigned long)(pending > 0 ? pending : 0)},
        {"turnstile_worker_stream_recovered_total",
         "Event stream records queued again from the outbox on taking a partition.", "counter",
         atomic_load_explicit(&s->recovered, memory_order_relaxed)},
    };
    ts_metric_rows_print(out, rows, sizeof rows / sizeof rows[0]);
}
