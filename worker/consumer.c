/* SPDX-License-Identifier: Apache-2.0 */
/* consumer.c — see consumer.h.
 *
 * The loop takes what the consumer has (up to TS_BATCH_MAX messages, or
 * TS_BATCH_WAIT_MS after the first), groups it by partition, and hands it
 * to the applier as one transaction that also moves every partition's
 * stored offset (one commit per poll, however many partitions: a burst
 * spread over many events costs no more commits than one hot event). Where
 * each partition resumes is the offset stored in PostgreSQL with the data;
 * Kafka's committed offsets only feed lag monitoring. An assigned partition
 * starts paused at its stored offset (read once in the rebalance callback),
 * and the loop reads the stored offset again, seeks there and resumes it; a
 * partition whose stored offset is not known is never applied.
 *
 *   - a message that does not decode, or breaks a rule, goes to the
 *     dead-letter topic (with the reason in headers, and an INVALID reply
 *     when it has a readable reply address) and is skipped; the partition
 *     keeps flowing. Producers are not trusted: a command whose Kafka key
 *     is not its event id (it would break "one event, one partition, one
 *     writer", which lets the worker decide without locks) and one that
 *     asks for its reply on a topic outside TS_REPLY_TOPICS, or on a
 *     partition that topic lacks, are dead letters too.
 *   - dead letters have a producer of their own; the source offset moves
 *     only once the broker has acknowledged them (at least once), but the
 *     loop never waits for replies: an address that swallows them cannot
 *     stall a partition.
 *   - a database outage is retried in place, with backoff: never skipped.
 *   - a statement refused by the database (a constraint) is retried one
 *     command per transaction, so that one bad command goes to the
 *     dead-letter topic and the others are applied.
 *   - a fenced partition (another worker moved its offset) is dropped from
 *     the batch and re-read from the stored offset; the others go on.
 *   - the event stream (stream.c): after each commit the batch's records
 *     go to PREFIX.events; whenever a partition's stored offset is read
 *     (assignment, fencing), what its commands below it may not have
 *     published yet is published again first. A relay that cannot go on
 *     (a fatal producer error) stops the worker with a non-zero exit. */
#include "consumer.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apply.h"
#include "lag.h"
#include "stream.h"
#include "ts_codec.h"
#include "ts_kafka.h"
#include "ts_log.h"
#include "ts_embedded.h"
#include "ts_pg.h"
#include "ts_registry.h"
#include "ts_statusd.h"
#include "ts_time.h"
#include "ts_uuid.h"
#include "ts_validate.h"

#define MAX_PARTITIONS 1024
#define SLOW_BATCH_MS 100 /* a transaction this long is logged */
#define MAX_REPLY_TOPICS 16
#define DLQ_TIMEOUT_MS 10000          /* a dead letter unacknowledged this long: retried */
#define REPLY_METADATA_EVERY_MS 10000 /* a reply partition unknown: look again, this often */

/* A topic replies may go to, and its partition count (0: not known). */
typedef struct reply_topic {
    char name[TS_TOPIC_MAX + 1];
    int32_t partitions;
} reply_topic;

typedef struct partition_state {
    bool owned;
    bool offset_known; /* `next` read, and the consumer sought there: it may be applied */
    int64_t next;      /* the offset stored in PostgreSQL */
    /* A gap: a message beyond the offset expected (owned_runs). The
     * partition is read again from its stored offset (reread); a gap met
     * again at the same offset (gap_at) is real (a transaction's marker,
     * aborted records) and is let through. */
    bool reread;
    int64_t gap_at; /* -1: none met */
} partition_state;

/* Where the worker's time goes, in microseconds: waiting for Kafka,
 * decoding, in PostgreSQL (committed transactions), replying, queuing the
 * event stream's records. */
enum stage { STAGE_POLL, STAGE_DECODE, STAGE_APPLY, STAGE_REPLY, STAGE_STREAM, STAGE_COUNT_ };
static const char *const stage_names[STAGE_COUNT_] = {"poll", "decode", "apply", "reply", "stream"};

/* Counters for /metrics; written by the worker's thread, read by the
 * status server's.
 *
 * Atomics in worker/ follow the project's one rule (producer-api/metrics.h
 * states it for all): a counter or gauge that only /metrics reads (these,
 * and the applier's count of undone batches) is updated and read with
 * memory_order_relaxed, spelled out (count(), gauge(), counter(),
 * atomic_load_explicit): it orders nothing, and a scrape may see one a
 * moment ahead of another. A value that hands state from one thread to
 * another (dlq_failed, from the dead-letter delivery callback) uses the
 * default, sequentially consistent, operations. */
typedef struct worker_metrics {
    atomic_ulong batches;
    atomic_ulong stage_us[STAGE_COUNT_];
    atomic_ulong applied[TS_OUT_COUNT_];
    atomic_ulong replayed;
    atomic_ulong dead_letters;
    atomic_ulong fenced;
    atomic_ulong retries;
    atomic_ulong gaps;
    atomic_long partitions;
    atomic_long db_unavailable;       /* 1 while a database failure is being retried */
    atomic_long registry_unavailable; /* 1 while the Schema Registry is asked again */
    atomic_ulong registry_fetches;
    ts_histogram command_age; /* produced -> polled here (Kafka's CreateTime) */
    ts_histogram transaction; /* a committed transaction, BEGIN to COMMIT */
} worker_metrics;

struct ts_worker {
    worker_metrics metrics;
    bool offsets_dirty; /* committed to PostgreSQL, not yet to Kafka */
    int64_t offsets_committed_ms;
    const ts_config *cfg;
    rd_kafka_t *consumer;
    rd_kafka_t *producer;    /* replies */
    rd_kafka_t *dlq;         /* dead letters */
    atomic_long dlq_failed;  /* dead letters the broker did not take (handed over: seq_cst) */
    atomic_bool kafka_fatal; /* a client of the worker cannot go on (set by its error callback) */
    int64_t failpoint_ms;    /* TS_FAILPOINT_KAFKA_FATAL_MS: when to raise one (0: never) */
    bool dlq_sent;           /* dead letters sent since the last acknowledgement */
    reply_topic reply_topics[MAX_REPLY_TOPICS];
    int nreply_topics;
    int64_t reply_metadata_ms;  /* when the partition counts were last asked for */
    int32_t command_partitions; /* of the commands topic (0: not known) */
    ts_codec *codec;
    ts_registry *registry;   /* NULL: no TS_SCHEMA_REGISTRY_URL */
    int32_t reply_schema_id; /* the registry's id of reply.avsc; -1 until asked */
    ts_applier *applier;
    ts_stream *stream; /* the event stream's relay */
    ts_lag *lag;       /* what the status thread sees of parts[] (lag.h) */
    partition_state parts[MAX_PARTITIONS];
    bool unsettled; /* some owned partition's offset is unknown: settle_partitions() */
    bool rereads;   /* some partition met a gap: reread_gaps() */
    volatile sig_atomic_t *stop;
    rd_kafka_message_t **msgs;
    rd_kafka_message_t **grouped;
    ts_batch_item *items;
    ts_batch_part *batch_parts; /* a batch's runs of one partition: TS_BATCH_MAX at most */
    uint8_t reply_buf[TS_MESSAGE_BYTES_MAX];
};

/* A counter or gauge of the metrics: relaxed (see worker_metrics). */
static void count(atomic_ulong *c, unsigned long n) {
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static void gauge(atomic_long *g, long delta) {
    atomic_fetch_add_explicit(g, delta, memory_order_relaxed);
}

static unsigned long counter(const atomic_ulong *c) {
    return atomic_load_explicit(c, memory_order_relaxed);
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    (void)nanosleep(&ts, NULL); /* a signal cuts it short: the caller looks at the stop flag */
}

/* Reconnects until PostgreSQL answers or the worker is told to stop. */
static int reconnect(ts_worker *w) {
    int backoff = 100;
    char err[512];
    while (!*w->stop) {
        if (ts_applier_reconnect(w->applier, err, sizeof err) == 0) {
            ts_info("worker", "event=pg_reconnected");
            return 0;
        }
        ts_warn("worker", "event=pg_unavailable retry_ms=%d err=\"%s\"", backoff, err);
        sleep_ms(backoff);
        backoff = backoff < 5000 ? backoff * 2 : 5000;
    }
    return -1;
}

static void commit_offsets(ts_worker *w, bool now);

_Static_assert(MAX_PARTITIONS <= TS_LAG_PARTITIONS, "lag.h tracks every partition");

/* Shows partition p's state to /metrics and /readyz (lag.h): call it
 * whenever p is assigned, settled, moved or revoked. */
static void publish(ts_worker *w, int32_t p) {
    const partition_state *s = &w->parts[p];
    ts_lag_set(w->lag, p,
               !s->owned         ? TS_LAG_NOT_OWNED
               : s->offset_known ? s->next
                                 : TS_LAG_UNSETTLED);
}

/* ------------------------------------------------------------ assignment */

static int load_offset(ts_worker *w, int32_t p, int64_t *next) {
    char err[512];
    while (!*w->stop) {
        bool ok = ts_applier_load_offset(w->applier, w->cfg->topic_commands, p, next, err,
                                         sizeof err) == 0;
        atomic_store_explicit(&w->metrics.db_unavailable, !ok, memory_order_relaxed);
        if (ok)
            return 0;
        ts_warn("worker", "event=load_offset_failed partition=%d err=\"%s\"", p, err);
        if (reconnect(w))
            break;
    }
    return -1;
}

/* Where an assigned partition starts fetching: its stored offset, read
 * once here, so that the consumer never looks an offset up. A logical
 * start (OFFSET_END, say) is resolved by an offset lookup that can land
 * after the seek settle_partitions() makes, and librdkafka 2.0 then moves
 * the fetch position to the looked-up offset: the worker would be handed
 * messages beyond its stored offset, and apply them over the ones between.
 * When PostgreSQL does not answer (one try, within TS_PG_TIMEOUT_MS: the
 * callback does not wait out an outage), the start is the partition's
 * beginning: a late lookup can then only land before the stored offset,
 * where owned_runs() drops what was applied already. */
static int64_t assign_offset(ts_worker *w, int32_t p, bool *db_ok) {
    int64_t next;
    char err[512];
    if (*db_ok &&
        ts_applier_load_offset(w->applier, w->cfg->topic_commands, p, &next, err, sizeof err) == 0)
        return next;
    if (*db_ok)
        ts_warn("worker", "event=assign_offset_unknown partition=%d start=beginning err=\"%s\"", p,
                err);
    *db_ok = false; /* the rest start at their beginning too: settle_partitions() retries */
    return RD_KAFKA_OFFSET_BEGINNING;
}

/* Assigned partitions start paused, at their stored offset (or their
 * beginning: assign_offset); nothing of theirs is applied until the main
 * loop has had the event stream catch up, sought the stored offset again
 * (another worker may have moved it since; librdkafka may also drop an
 * assign offset that a pause follows closely) and resumed them
 * (settle_partitions). */
static void on_assign(ts_worker *w, rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts) {
    bool db_ok = true;
    for (int i = 0; i < parts->cnt; i++) {
        int32_t p = parts->elems[i].partition;
        parts->elems[i].offset =
            p >= 0 && p < MAX_PARTITIONS ? assign_offset(w, p, &db_ok) : RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, parts);
    if (e) {
        ts_error("worker", "event=assign_failed err=\"%s\"", rd_kafka_err2str(e));
        return;
    }
    e = rd_kafka_pause_partitions(rk, parts);
    for (int i = 0; i < parts->cnt; i++) {
        int32_t p = parts->elems[i].partition;
        if (e || parts->elems[i].err) /* it flows: dropped until sought */
            ts_warn("worker", "event=pause_failed partition=%d err=\"%s\"", p,
                    rd_kafka_err2str(e ? e : parts->elems[i].err));
        if (p < 0 || p >= MAX_PARTITIONS)
            continue; /* assigned and paused, never applied */
        if (!w->parts[p].owned)
            gauge(&w->metrics.partitions, 1);
        w->parts[p] = (partition_state){.owned = true, .gap_at = -1};
        publish(w, p);
        w->unsettled = true;
        ts_info("worker", "event=assigning partition=%d", p);
    }
}

static void on_revoke(ts_worker *w, rd_kafka_t *rk, const rd_kafka_topic_partition_list_t *parts) {
    commit_offsets(w, true); /* before the partitions go */
    for (int i = 0; i < parts->cnt; i++) {
        int32_t p = parts->elems[i].partition;
        if (p >= 0 && p < MAX_PARTITIONS && w->parts[p].owned) {
            w->parts[p] = (partition_state){.owned = false};
            publish(w, p);
            gauge(&w->metrics.partitions, -1);
        }
        ts_stream_release(w->stream, p);
        ts_info("worker", "event=revoked partition=%d", p);
    }
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, NULL);
    if (e)
        ts_error("worker", "event=unassign_failed err=\"%s\"", rd_kafka_err2str(e));
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
        on_assign(opaque, rk, parts);
    else
        on_revoke(opaque, rk, parts);
}

/* ------------------------------------------------------------ setup */

static void on_dlq_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    ts_worker *w = opaque;
    if (m->err) {
        atomic_fetch_add(&w->dlq_failed, 1);
        ts_error("worker", "event=dlq_not_delivered err=\"%s\"", rd_kafka_err2str(m->err));
    }
}

/* Every client of the worker reports here. A fatal error (the idempotent
 * producer's sequence broken, say) means the client cannot go on: the
 * reason is logged and the loop stops the worker with a non-zero exit, for
 * its supervisor to start it anew. Whatever was committed is in
 * PostgreSQL; its replies can be read there (GET /api/commands/:id). */
static void on_kafka_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    ts_worker *w = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_resp_err_t e = rd_kafka_fatal_error(rk, why, sizeof why);
        ts_error("worker", "event=kafka_fatal client=%s err=%s reason=\"%s\"", rd_kafka_name(rk),
                 rd_kafka_err2name(e), why);
        atomic_store(&w->kafka_fatal, true);
        return;
    }
    ts_warn("worker", "event=kafka_error client=%s err=\"%s\"", rd_kafka_name(rk), reason);
}

static void producer_setup(rd_kafka_conf_t *conf, void *arg) {
    rd_kafka_conf_set_error_cb(conf, on_kafka_error);
    rd_kafka_conf_set_opaque(conf, arg);
}

static void dlq_setup(rd_kafka_conf_t *conf, void *arg) {
    producer_setup(conf, arg);
    rd_kafka_conf_set_dr_msg_cb(conf, on_dlq_delivery);
}

static int parse_reply_topics(ts_worker *w, char *err, size_t errlen) {
    char list[sizeof w->cfg->reply_topics];
    snprintf(list, sizeof list, "%s", w->cfg->reply_topics);
    char *save = NULL;
    for (char *t = strtok_r(list, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        if (w->nreply_topics == MAX_REPLY_TOPICS || strlen(t) > TS_TOPIC_MAX) {
            snprintf(err, errlen, "TS_REPLY_TOPICS: at most %d topics of %d bytes",
                     MAX_REPLY_TOPICS, TS_TOPIC_MAX);
            return -1;
        }
        snprintf(w->reply_topics[w->nreply_topics++].name, TS_TOPIC_MAX + 1, "%s", t);
    }
    return 0;
}

/* Asks the cluster how many partitions each reply topic, and the commands
 * topic, has. A topic it does not know keeps 0 (not known: any partition
 * is let through). */
static void learn_partitions(ts_worker *w) {
    const struct rd_kafka_metadata *md;
    w->reply_metadata_ms = ts_monotonic_ms();
    if (rd_kafka_metadata(w->producer, 1, NULL, &md, 2000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    for (int i = 0; i < w->nreply_topics; i++)
        for (int t = 0; t < md->topic_cnt; t++)
            if (!strcmp(md->topics[t].topic, w->reply_topics[i].name) && !md->topics[t].err)
                w->reply_topics[i].partitions = md->topics[t].partition_cnt;
    for (int t = 0; t < md->topic_cnt; t++)
        if (!strcmp(md->topics[t].topic, w->cfg->topic_commands) && !md->topics[t].err)
            w->command_partitions = md->topics[t].partition_cnt;
    rd_kafka_metadata_destroy(md);
}

/* NULL when the command may have its reply where it asks (or wants none);
 * else why not, and *reason the dead letter's reason. */
static const char *reply_address_problem(ts_worker *w, const ts_command *cmd, const char **reason) {
    if (!cmd->reply_topic[0])
        return NULL;
    reply_topic *t = NULL;
    for (int i = 0; i < w->nreply_topics && !t; i++)
        if (!strcmp(w->reply_topics[i].name, cmd->reply_topic))
            t = &w->reply_topics[i];
    if (!t) {
        *reason = "reply_topic_not_allowed";
        return "reply_to.topic is not one of the worker's reply topics (TS_REPLY_TOPICS)";
    }
    if ((t->partitions == 0 || cmd->reply_partition >= t->partitions) &&
        ts_monotonic_ms() - w->reply_metadata_ms >= REPLY_METADATA_EVERY_MS)
        learn_partitions(w); /* it may have grown */
    if (cmd->reply_partition < 0 || (t->partitions > 0 && cmd->reply_partition >= t->partitions)) {
        *reason = "invalid";
        return "reply_to.partition: the reply topic has no such partition";
    }
    return NULL;
}

/* The Kafka key must be the command's event id (as text, in any case). */
static bool key_matches(const rd_kafka_message_t *m, const ts_command *cmd) {
    char key[TS_UUID_LEN + 1], canon[TS_UUID_LEN + 1];
    if (!m->key || m->key_len != TS_UUID_LEN)
        return false;
    memcpy(key, m->key, TS_UUID_LEN);
    key[TS_UUID_LEN] = '\0';
    return ts_uuid_normalize(key, canon) == 0 && strcmp(canon, cmd->event_id) == 0;
}

/* NULL when the command is in the partition its event belongs to: the one
 * Kafka's murmur2 partitioner (the project's producers', and Java
 * clients' default) gives its event id, as text in canonical lowercase
 * form. Else why not, in `why`. A producer that hashes otherwise (another
 * partitioner, an event id in capitals) would split an event's commands
 * over two partitions, so over two workers deciding its seats at once. */
static const char *partition_problem(ts_worker *w, const rd_kafka_message_t *m,
                                     const ts_command *cmd, char *why, size_t whylen) {
    int32_t n = w->command_partitions;
    if (n <= 0)
        return NULL; /* not known yet: the key check still holds */
    int32_t want =
        rd_kafka_msg_partitioner_murmur2(NULL, cmd->event_id, strlen(cmd->event_id), n, NULL, NULL);
    if (want == m->partition)
        return NULL;
    snprintf(why, whylen,
             "event %s belongs in partition %d of %d (murmur2 of the lowercase event id), not %d",
             cmd->event_id, want, n, m->partition);
    return why;
}

static void consumer_setup(rd_kafka_conf_t *conf, void *arg) {
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_error_cb(conf, on_kafka_error);
    rd_kafka_conf_set_opaque(conf, arg);
}

/* The replies' producer and the dead letters' own. 0, or -1 with `err`. */
static int new_producers(ts_worker *w, char *err, size_t errlen) {
    /* A batch's replies are produced together, right after its commit: they
     * are a batch already, and waiting longer only delays every client. */
    char reply_linger[16];
    snprintf(reply_linger, sizeof reply_linger, "%d", w->cfg->reply_linger_ms);
    const char *producer_pairs[] = {"linger.ms", reply_linger, NULL};
    w->producer = ts_kafka_new(w->cfg, RD_KAFKA_PRODUCER, "turnstile-worker", producer_pairs,
                               producer_setup, w, err, errlen);
    if (!w->producer)
        return -1;
    char dlq_timeout[16];
    snprintf(dlq_timeout, sizeof dlq_timeout, "%d", DLQ_TIMEOUT_MS);
    const char *dlq_pairs[] = {"linger.ms", "0", "message.timeout.ms", dlq_timeout, NULL};
    w->dlq = ts_kafka_new(w->cfg, RD_KAFKA_PRODUCER, "turnstile-worker-dlq", dlq_pairs, dlq_setup,
                          w, err, errlen);
    return w->dlq ? 0 : -1;
}

/* The consumer, subscribed to the commands topic. 0, or -1 with `err`. */
static int new_consumer(ts_worker *w, char *err, size_t errlen) {
    /* clang-format off */
    const char *pairs[] = {
        "group.id", w->cfg->group_id,
        "enable.auto.commit", "false",
        "enable.auto.offset.store", "false",
        "auto.offset.reset", "earliest",
        "isolation.level", "read_committed",
        /* a dead worker's partitions move on within seconds */
        "session.timeout.ms", "6000",
        "heartbeat.interval.ms", "1500",
        "fetch.wait.max.ms", "50",
        /* The prefetch bounds the worker's memory whatever the backlog.
         * Draining 200,000 commands, librdkafka's defaults (100,000
         * messages, 64 MB) held 92 MB of RSS, 20,000 messages 51-55 MB at
         * the same rate; 10,000 (40 MB) starved the worker (19,500
         * commands/s against 30,800). */
        "queued.min.messages", "20000",
        "queued.max.messages.kbytes", "16384",
        NULL,
    };
    /* clang-format on */
    w->consumer = ts_kafka_new(w->cfg, RD_KAFKA_CONSUMER, "turnstile-worker", pairs, consumer_setup,
                               w, err, errlen);
    if (!w->consumer)
        return -1;
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, w->cfg->topic_commands, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(w->consumer, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) {
        snprintf(err, errlen, "subscribe %s: %s", w->cfg->topic_commands, rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

ts_worker *ts_worker_new(const ts_config *cfg, char *err, size_t errlen) {
    ts_worker *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->cfg = cfg;
    size_t max = (size_t)cfg->batch_max;
    /* (clang-tidy takes the size of a message pointer for a mistake) */
    w->msgs = calloc(max, sizeof *w->msgs);       // NOLINT(bugprone-sizeof-expression)
    w->grouped = calloc(max, sizeof *w->grouped); // NOLINT(bugprone-sizeof-expression)
    w->items = calloc(max, sizeof *w->items);
    w->batch_parts = calloc(max, sizeof *w->batch_parts);
    if (!w->msgs || !w->grouped || !w->items || !w->batch_parts) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    w->reply_schema_id = -1;
    if (cfg->schema_registry_url[0] &&
        !(w->registry = ts_registry_new(cfg->schema_registry_url, cfg->schema_registry_timeout_ms,
                                        err, errlen)))
        goto fail;
    if (!(w->codec = ts_codec_new(err, errlen)) ||
        !(w->applier = ts_applier_new(cfg->pg_dsn, cfg->migrate, cfg->pg_timeout_ms, err, errlen)))
        goto fail;
    ts_applier_set_optimism_pause(w->applier, (unsigned)cfg->optimism_pause);
    if (!(w->stream = ts_stream_new(cfg, err, errlen)) || new_producers(w, err, errlen) ||
        parse_reply_topics(w, err, errlen))
        goto fail;
    learn_partitions(w);
    if (new_consumer(w, err, errlen) ||
        !(w->lag = ts_lag_start(w->consumer, cfg->topic_commands, err, errlen)))
        goto fail;
    /* A failure on purpose, for the tests: a fatal error of the replies'
     * producer this many ms after the start (librdkafka's own test hook). */
    const char *failpoint = getenv("TS_FAILPOINT_KAFKA_FATAL_MS");
    char *end;
    long after_ms = failpoint ? strtol(failpoint, &end, 10) : 0;
    if (failpoint && *end == '\0' && after_ms > 0)
        w->failpoint_ms = ts_monotonic_ms() + after_ms;
    return w;
fail:
    ts_worker_free(w);
    return NULL;
}

/* Waits for a producer's messages; what is left after timeout_ms is
 * lost, and said so (a reply's outcome is in PostgreSQL still). */
static void flush(rd_kafka_t *producer, const char *what, int timeout_ms) {
    rd_kafka_resp_err_t e = rd_kafka_flush(producer, timeout_ms);
    if (e)
        ts_warn("worker", "event=flush_failed what=%s left=%d err=\"%s\"", what,
                rd_kafka_outq_len(producer), rd_kafka_err2str(e));
}

void ts_worker_free(ts_worker *w) {
    if (!w)
        return;
    ts_lag_stop(w->lag); /* before the consumer it asks with */
    if (w->consumer)
        rd_kafka_destroy(w->consumer);
    if (w->producer) {
        flush(w->producer, "replies", 10000);
        rd_kafka_destroy(w->producer);
    }
    if (w->dlq) {
        flush(w->dlq, "dead_letters", DLQ_TIMEOUT_MS);
        rd_kafka_destroy(w->dlq);
    }
    ts_stream_free(w->stream); /* after the consumer: its revocation names the stream */
    ts_applier_free(w->applier);
    ts_codec_free(w->codec);
    ts_registry_free(w->registry);
    free(w->msgs);
    free(w->grouped);
    free(w->items);
    free(w->batch_parts);
    free(w);
}

/* ------------------------------------------------------------ output */

static void send_reply(ts_worker *w, const ts_command *cmd, const ts_reply *r) {
    if (!cmd->reply_topic[0])
        return;
    size_t len;
    /* in the framing the command came in: its producer reads that one */
    ts_codec_status st =
        cmd->registry_framed
            ? ts_codec_encode_reply_registry(w->codec, r, w->reply_schema_id, w->reply_buf,
                                             sizeof w->reply_buf, &len)
            : ts_codec_encode_reply(w->codec, r, w->reply_buf, sizeof w->reply_buf, &len);
    if (st) {
        ts_error("worker", "event=reply_encode_failed command_id=%s", r->command_id);
        return;
    }
    rd_kafka_resp_err_t e = rd_kafka_producev(
        w->producer, RD_KAFKA_V_TOPIC(cmd->reply_topic), RD_KAFKA_V_PARTITION(cmd->reply_partition),
        RD_KAFKA_V_KEY(r->command_id, strlen(r->command_id)), RD_KAFKA_V_VALUE(w->reply_buf, len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (e) /* the outcome is in PostgreSQL; GET /api/commands/:id finds it */
        ts_warn("worker", "event=reply_not_sent command_id=%s err=%s", r->command_id,
                rd_kafka_err2str(e));
}

/* An INVALID reply to a command set aside, when enough of it was read to
 * know who asked (a command id, an event id and a reply address). */
static void reply_invalid(ts_worker *w, const ts_command *cmd, const char *message) {
    const char *reason;
    if (!cmd->command_id[0] || !cmd->event_id[0] || reply_address_problem(w, cmd, &reason))
        return;
    ts_reply r = {.outcome = TS_OUT_INVALID, .applied_at_ms = ts_now_ms()};
    strcpy(r.command_id, cmd->command_id);
    strcpy(r.event_id, cmd->event_id);
    snprintf(r.message, sizeof r.message, "%s", message);
    send_reply(w, cmd, &r);
}

/* A dead letter's headers: why, and where it came from. NULL if one could
 * not be added. */
static rd_kafka_headers_t *dead_letter_headers(const rd_kafka_message_t *m, const char *reason,
                                               const char *detail) {
    char part[16], off[24];
    snprintf(part, sizeof part, "%d", m->partition);
    snprintf(off, sizeof off, "%lld", (long long)m->offset);
    const char *const headers[][2] = {
        {"ts-reason", reason},
        {"ts-detail", detail},
        {"ts-source-topic", rd_kafka_topic_name(m->rkt)},
        {"ts-source-partition", part},
        {"ts-source-offset", off},
    };
    enum { NHEADERS = sizeof headers / sizeof headers[0] };
    rd_kafka_headers_t *h = rd_kafka_headers_new(NHEADERS);
    for (size_t i = 0; i < NHEADERS; i++)
        if (rd_kafka_header_add(h, headers[i][0], -1, headers[i][1], -1)) {
            rd_kafka_headers_destroy(h);
            return NULL;
        }
    return h;
}

/* Sends a message to the dead-letter topic. The offset that passes it
 * moves only after dead_letters_acknowledged(). */
static void dead_letter(ts_worker *w, const rd_kafka_message_t *m, const char *reason,
                        const char *detail) {
    rd_kafka_headers_t *h = dead_letter_headers(m, reason, detail);
    rd_kafka_resp_err_t e =
        !h ? RD_KAFKA_RESP_ERR__FAIL
           : rd_kafka_producev(w->dlq, RD_KAFKA_V_TOPIC(w->cfg->topic_dlq),
                               RD_KAFKA_V_KEY(m->key, m->key_len),
                               RD_KAFKA_V_VALUE(m->payload, m->len), RD_KAFKA_V_HEADERS(h),
                               RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (e) { /* the headers are still ours */
        if (h)
            rd_kafka_headers_destroy(h);
        atomic_fetch_add(&w->dlq_failed, 1);
        ts_error("worker", "event=dlq_failed partition=%d offset=%lld err=%s", m->partition,
                 (long long)m->offset, rd_kafka_err2str(e));
        return;
    }
    w->dlq_sent = true;
    count(&w->metrics.dead_letters, 1);
    ts_warn("worker", "event=dead_letter partition=%d offset=%lld reason=%s detail=\"%s\"",
            m->partition, (long long)m->offset, reason, detail);
}

/* True once every dead letter sent so far is acknowledged; false if one
 * failed or is still unacknowledged after DLQ_TIMEOUT_MS (then the batch
 * is not applied: its partitions are read again, the dead letters sent
 * again). Waits on the dead-letter producer alone: replies never hold the
 * loop up. */
static bool dead_letters_acknowledged(ts_worker *w) {
    if (!w->dlq_sent && atomic_load(&w->dlq_failed) == 0)
        return true;
    w->dlq_sent = false;
    int64_t give_up = ts_monotonic_ms() + DLQ_TIMEOUT_MS + 1000;
    while (rd_kafka_outq_len(w->dlq) > 0 && ts_monotonic_ms() < give_up && !*w->stop)
        rd_kafka_poll(w->dlq, 5);
    bool ok = rd_kafka_outq_len(w->dlq) == 0 && atomic_exchange(&w->dlq_failed, 0) == 0;
    if (!ok)
        ts_error("worker", "event=dlq_unacknowledged action=retry_batch");
    return ok;
}

/* ------------------------------------------------------------ a batch */

/* Decodes and checks msgs[0..n) into items[0..n); sends the bad ones away. */
static void prepare(ts_worker *w, rd_kafka_message_t **msgs, ts_batch_item *items, size_t n) {
    for (size_t i = 0; i < n; i++) {
        ts_batch_item *it = &items[i];
        char why[256];
        memset(it, 0, sizeof *it);
        it->partition = msgs[i]->partition;
        it->offset = msgs[i]->offset;
        ts_codec_status st = ts_codec_decode_command(w->codec, msgs[i]->payload, msgs[i]->len,
                                                     &it->cmd, why, sizeof why);
        ts_violation v;
        if (st == TS_CODEC_SCHEMA_NEEDED) { /* learn_schemas() found none */
            st = TS_CODEC_UNKNOWN_SCHEMA;
            snprintf(why, sizeof why, "schema id %lld: %s",
                     (long long)ts_codec_registry_id(msgs[i]->payload, msgs[i]->len),
                     w->registry ? "not in the Schema Registry"
                                 : "no Schema Registry (TS_SCHEMA_REGISTRY_URL)");
        }
        if (st != TS_CODEC_OK) {
            it->skip = true;
            dead_letter(w, msgs[i], ts_codec_status_name(st), why);
            /* a readable reply address gets an answer, so no client waits */
            if (st == TS_CODEC_INVALID)
                reply_invalid(w, &it->cmd, why);
            continue;
        }
        const char *reason = "invalid", *problem = reply_address_problem(w, &it->cmd, &reason);
        if (problem) { /* no reply: the address is the problem */
            it->skip = true;
            dead_letter(w, msgs[i], reason, problem);
        } else if (!key_matches(msgs[i], &it->cmd)) {
            it->skip = true;
            dead_letter(w, msgs[i], "key_mismatch", "the Kafka key must be the event_id");
            reply_invalid(w, &it->cmd, "The Kafka key must be the command's event_id");
        } else if (partition_problem(w, msgs[i], &it->cmd, why, sizeof why)) {
            it->skip = true;
            dead_letter(w, msgs[i], "wrong_partition", why);
            reply_invalid(w, &it->cmd,
                          "Produce with the murmur2 partitioner, keyed by the lowercase event_id");
        } else if (ts_validate_command(&it->cmd, &v)) {
            it->skip = true;
            snprintf(why, sizeof why, "%s: %s", v.field, v.message);
            dead_letter(w, msgs[i], "invalid", why);
            reply_invalid(w, &it->cmd, v.message);
        } else if (it->cmd.type == TS_CMD_REGISTER) {
            ts_uuid_for_email(it->cmd.u.reg.email, it->user_id);
        } else if (it->cmd.type == TS_CMD_PLACE_HOLD) {
            ts_uuid_for_email(it->cmd.u.hold.email, it->user_id);
        }
    }
}

/* Reads partition p's stored offset (retrying while PostgreSQL is down),
 * has the event stream catch up with it, and seeks the consumer there. 0,
 * or -1 when stopping, the relay failed or librdkafka refuses the seek:
 * then p's offset is unknown (nothing of it is applied) until
 * settle_partitions() tries again, so a caller that only wants p re-read
 * has nothing more to do on failure. */
static int seek_to_stored(ts_worker *w, int32_t p) {
    int64_t next;
    int rc = -1;
    /* the stream first: what p's commands below `next` published is out
     * (again) before anything p applies from here */
    if (load_offset(w, p, &next) == 0 && ts_stream_recover(w->stream, p, next, w->stop) == 0) {
        w->parts[p].next = next;
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, w->cfg->topic_commands, p)->offset = next;
        rd_kafka_error_t *e = rd_kafka_seek_partitions(w->consumer, l, 5000);
        if (e) {
            ts_error("worker", "event=seek_failed partition=%d err=\"%s\"", p,
                     rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        } else {
            rc = 0;
        }
        rd_kafka_topic_partition_list_destroy(l);
    }
    if (rc) {
        w->parts[p].offset_known = false;
        w->unsettled = true;
    }
    publish(w, p);
    return rc;
}

static int resume(ts_worker *w, int32_t p) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, w->cfg->topic_commands, p);
    rd_kafka_resp_err_t e = rd_kafka_resume_partitions(w->consumer, l);
    if (!e)
        e = l->elems[0].err;
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        ts_error("worker", "event=resume_failed partition=%d err=\"%s\"", p, rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

/* Every owned partition whose offset is unknown (assigned since the last
 * batch, or a seek that failed): its stored offset read, the consumer
 * sought there, the partition resumed; from then on it may be applied. */
static void settle_partitions(ts_worker *w) {
    if (!w->unsettled)
        return;
    w->unsettled = false;
    for (int32_t p = 0; p < MAX_PARTITIONS && !*w->stop; p++) {
        partition_state *s = &w->parts[p];
        if (!s->owned || s->offset_known || seek_to_stored(w, p))
            continue;
        if (resume(w, p)) {
            w->unsettled = true;
            continue;
        }
        s->offset_known = true;
        publish(w, p);
        ts_info("worker", "event=assigned partition=%d next_offset=%lld", p, (long long)s->next);
    }
}

/* Applies the parts as one transaction, retrying in place while the
 * database is unavailable. */
static ts_apply_status apply_retrying(ts_worker *w, ts_batch_part *parts, size_t nparts, char *err,
                                      size_t errlen) {
    int backoff = 100;
    for (;;) {
        for (size_t i = 0; i < nparts; i++)
            parts[i].expected = w->parts[parts[i].partition].next;
        ts_apply_status st = ts_applier_apply(w->applier, w->cfg->topic_commands, parts, nparts,
                                              w->items, err, errlen);
        atomic_store_explicit(&w->metrics.db_unavailable, st == TS_APPLY_RETRY,
                              memory_order_relaxed);
        if (st != TS_APPLY_RETRY || *w->stop)
            return st;
        count(&w->metrics.retries, 1);
        ts_warn("worker", "event=apply_retry parts=%zu retry_ms=%d err=\"%s\"", nparts, backoff,
                err);
        sleep_ms(backoff);
        backoff = backoff < 5000 ? backoff * 2 : 5000;
        if (ts_applier_connection_lost(w->applier) && reconnect(w))
            return TS_APPLY_RETRY;
    }
}

/* The event stream's records of the transaction just committed, queued in
 * order behind what the relay published of those partitions before. */
static void relay(ts_worker *w, const ts_batch_part *parts, size_t nparts) {
    int64_t t = ts_monotonic_us();
    const ts_stream_msg *msgs;
    size_t n = ts_applier_stream(w->applier, &msgs);
    ts_stream_publish(w->stream, parts, nparts, msgs, n, w->stop);
    count(&w->metrics.stage_us[STAGE_STREAM], (unsigned long)(ts_monotonic_us() - t));
}

static void committed(ts_worker *w, const ts_batch_part *part) {
    w->parts[part->partition].next = part->next;
    publish(w, part->partition);
    for (size_t i = part->first; i < part->first + part->count; i++) {
        ts_batch_item *it = &w->items[i];
        if (it->skip)
            continue;
        if (it->replayed)
            count(&w->metrics.replayed, 1);
        else if ((unsigned)it->reply.outcome < TS_OUT_COUNT_)
            count(&w->metrics.applied[it->reply.outcome], 1);
        send_reply(w, &it->cmd, &it->reply);
    }
    w->offsets_dirty = true;
}

/* Kafka's committed offsets are for lag monitoring only (resuming uses the
 * offsets in PostgreSQL): once a second is enough, and spares the broker a
 * commit per transaction. */
static void commit_offsets(ts_worker *w, bool now) {
    int64_t t = ts_monotonic_ms();
    if (!w->offsets_dirty || (!now && t - w->offsets_committed_ms < 1000))
        return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    for (int32_t p = 0; p < MAX_PARTITIONS; p++)
        if (w->parts[p].owned && w->parts[p].offset_known)
            rd_kafka_topic_partition_list_add(l, w->cfg->topic_commands, p)->offset =
                w->parts[p].next;
    rd_kafka_resp_err_t e =
        l->cnt ? rd_kafka_commit(w->consumer, l, 1) : RD_KAFKA_RESP_ERR_NO_ERROR;
    if (e) /* lag monitoring is behind; the offsets that matter are in PostgreSQL */
        ts_warn("worker", "event=kafka_commit_failed partitions=%d err=\"%s\"", l->cnt,
                rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(l);
    w->offsets_dirty = false;
    w->offsets_committed_ms = t;
}

/* A part the database refuses: one command per transaction, so that the
 * command it refuses goes to the dead-letter topic and the others apply. */
static void apply_one_by_one(ts_worker *w, const ts_batch_part *part, rd_kafka_message_t **msgs) {
    char err[512];
    for (size_t i = part->first; i < part->first + part->count && !*w->stop; i++) {
        ts_batch_part one = {
            .partition = part->partition, .next = w->items[i].offset + 1, .first = i, .count = 1};
        ts_apply_status st = apply_retrying(w, &one, 1, err, sizeof err);
        if (st == TS_APPLY_REJECTED) {
            dead_letter(w, msgs[i], "rejected", err);
            w->items[i].skip = true;
            if (!dead_letters_acknowledged(w)) {
                seek_to_stored(w, part->partition);
                return;
            }
            /* its client gets an answer now, not a 202 that never ends */
            reply_invalid(w, &w->items[i].cmd, "Refused by the database");
            st = apply_retrying(w, &one, 1, err, sizeof err);
        }
        if (st == TS_APPLY_OK) {
            committed(w, &one);
            relay(w, &one, 1);
        } else {
            if (st == TS_APPLY_FENCED)
                seek_to_stored(w, part->partition);
            return;
        }
    }
}

/* Whether m, the next message of its partition here, may be applied after
 * `expected`: the consumer must hand over every offset from the stored one
 * on, and a message beyond the one expected means the ones between did not
 * come (librdkafka moving a fetch position under a seek, say): applying it
 * would store an offset past commands never applied. Its partition is read
 * again from the stored offset after this batch (reread_gaps); the gap is
 * believed when it is met there again, as transaction markers and aborted
 * records leave real ones (a producer of commands that uses transactions
 * pays a second read per gap). */
static bool in_sequence(ts_worker *w, partition_state *ps, int32_t p, int64_t expected,
                        int64_t offset) {
    if (offset <= expected)
        return true;
    count(&w->metrics.gaps, 1);
    if (ps->gap_at == expected) {
        ts_info("worker", "event=offset_gap partition=%d expected=%lld got=%lld action=believed", p,
                (long long)expected, (long long)offset);
        ps->gap_at = -1;
        return true;
    }
    ts_warn("worker", "event=offset_gap partition=%d expected=%lld got=%lld action=reread", p,
            (long long)expected, (long long)offset);
    ps->reread = true;
    ps->gap_at = expected;
    w->rereads = true;
    return false;
}

/* Asks the registry until it answers, backing off as for a database
 * outage (a message is never dead-lettered for a registry that cannot be
 * asked). TS_REGISTRY_OK or TS_REGISTRY_NOT_FOUND; UNAVAILABLE only when
 * stopping. */
static ts_registry_status ask_registry(ts_worker *w, int32_t id, const char **json) {
    int backoff = 100;
    char err[512];
    for (;;) {
        count(&w->metrics.registry_fetches, 1);
        ts_registry_status st =
            id >= 0 ? ts_registry_schema(w->registry, id, json, err, sizeof err)
                    : ts_registry_register(w->registry, "turnstile.reply.Reply", *json,
                                           &w->reply_schema_id, err, sizeof err);
        bool down = st == TS_REGISTRY_UNAVAILABLE || st == TS_REGISTRY_ERROR;
        atomic_store_explicit(&w->metrics.registry_unavailable, down, memory_order_relaxed);
        if (!down || *w->stop)
            return down ? TS_REGISTRY_UNAVAILABLE : st;
        ts_warn("worker", "event=registry_unavailable schema_id=%d retry_ms=%d err=\"%s\"", id,
                backoff, err);
        sleep_ms(backoff);
        backoff = backoff < 5000 ? backoff * 2 : 5000;
    }
}

/* The schemas of the registry-framed messages among msgs[0..n) that the
 * codec has not learned yet, fetched and learned; and, once, the id of the
 * replies' schema, for their answers (registered under its record's name,
 * which gives the id it has when it is there already). 0, or -1 when
 * stopping (the registry unreachable): nothing of the batch is applied. */
static int learn_schemas(ts_worker *w, rd_kafka_message_t **msgs, size_t n) {
    if (!w->registry)
        return 0;
    bool framed = false;
    for (size_t i = 0; i < n; i++) {
        int64_t id = ts_codec_registry_id(msgs[i]->payload, msgs[i]->len);
        if (id < 0 || id > INT32_MAX)
            continue;
        framed = true;
        if (ts_codec_knows_schema(w->codec, (int32_t)id))
            continue;
        const char *json = NULL;
        ts_registry_status st = ask_registry(w, (int32_t)id, &json);
        if (st == TS_REGISTRY_UNAVAILABLE)
            return -1;
        char err[256];
        if (st == TS_REGISTRY_OK &&
            ts_codec_learn_schema(w->codec, (int32_t)id, json, err, sizeof err) != TS_CODEC_OK)
            ts_warn("worker", "event=schema_unknown schema_id=%d err=\"%s\"", (int)id, err);
    }
    if (framed && w->reply_schema_id < 0) {
        const char *text = ts_embedded_find(ts_embedded_schemas, "reply.avsc")->data;
        if (ask_registry(w, -1, &text) != TS_REGISTRY_OK)
            return -1;
        ts_info("worker", "event=reply_schema schema_id=%d", w->reply_schema_id);
    }
    return 0;
}

/* Keeps, in place, the messages this worker may apply: those of partitions
 * it owns whose stored offset it knows (the fence of exactly-once: an
 * offset not read is never applied), from that offset on (below it:
 * applied already, a redelivery after a seek), with no gap (in_sequence).
 * Lists their runs of one partition in w->batch_parts. Returns the number
 * of runs; *kept, of messages. */
static size_t owned_runs(ts_worker *w, rd_kafka_message_t **msgs, size_t n, size_t *kept) {
    ts_batch_part *parts = w->batch_parts;
    size_t nparts = 0, k = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t p = msgs[i]->partition;
        if (p < 0 || p >= MAX_PARTITIONS || !w->parts[p].owned || !w->parts[p].offset_known ||
            msgs[i]->offset < w->parts[p].next || w->parts[p].reread)
            continue;
        bool run_open = nparts > 0 && parts[nparts - 1].partition == p;
        if (!in_sequence(w, &w->parts[p], p, run_open ? parts[nparts - 1].next : w->parts[p].next,
                         msgs[i]->offset))
            continue;
        msgs[k++] = msgs[i];
        if (nparts == 0 || parts[nparts - 1].partition != p)
            parts[nparts++] = (ts_batch_part){.partition = p, .first = k - 1};
        parts[nparts - 1].count++;
        parts[nparts - 1].next = msgs[i]->offset + 1;
    }
    *kept = k;
    return nparts;
}

/* A committed batch: its partitions move on, its commands are answered. */
static void batch_committed(ts_worker *w, size_t nparts, size_t kept, int64_t t0, int64_t t1) {
    count(&w->metrics.batches, 1);
    count(&w->metrics.stage_us[STAGE_APPLY], (unsigned long)(t1 - t0));
    ts_histogram_observe_us(&w->metrics.transaction, (long)(t1 - t0));
    if (t1 - t0 >= (int64_t)SLOW_BATCH_MS * 1000)
        ts_warn("worker", "event=slow_batch ms=%lld commands=%zu partitions=%zu",
                (long long)(t1 - t0) / 1000, kept, nparts);
    for (size_t i = 0; i < nparts; i++)
        committed(w, &w->batch_parts[i]);
    count(&w->metrics.stage_us[STAGE_REPLY], (unsigned long)(ts_monotonic_us() - t1));
    relay(w, w->batch_parts, nparts);
}

/* A batch the database refused: each part again, one command at a time. */
static void batch_rejected(ts_worker *w, rd_kafka_message_t **msgs, size_t nparts, size_t kept,
                           const char *err) {
    ts_warn("worker", "event=batch_rejected parts=%zu count=%zu err=\"%s\"", nparts, kept, err);
    for (size_t i = 0; i < nparts; i++)
        apply_one_by_one(w, &w->batch_parts[i], msgs);
}

/* A fenced batch: the partitions another worker moved are dropped and
 * re-read from their stored offset. Returns the number of parts left. */
static size_t drop_fenced(ts_worker *w, size_t nparts) {
    ts_batch_part *parts = w->batch_parts;
    size_t left = 0;
    for (size_t i = 0; i < nparts; i++) {
        if (parts[i].fenced) {
            count(&w->metrics.fenced, 1);
            ts_warn("worker", "event=fenced partition=%d", parts[i].partition);
            seek_to_stored(w, parts[i].partition);
        } else {
            parts[left++] = parts[i];
        }
    }
    return left;
}

/* Applies msgs[0..n) — runs of one partition each, in offset order within
 * a partition — in one transaction. */
static void process_batch(ts_worker *w, rd_kafka_message_t **msgs, size_t n) {
    size_t kept, nparts = owned_runs(w, msgs, n, &kept);
    if (nparts == 0)
        return;
    int64_t t = ts_monotonic_us();
    if (learn_schemas(w, msgs, kept)) { /* stopping: nothing applied, nothing moved */
        for (size_t i = 0; i < nparts; i++)
            w->parts[w->batch_parts[i].partition].offset_known = false;
        w->unsettled = true;
        return;
    }
    prepare(w, msgs, w->items, kept);
    count(&w->metrics.stage_us[STAGE_DECODE], (unsigned long)(ts_monotonic_us() - t));
    if (!dead_letters_acknowledged(w)) { /* nothing applied: read it all again */
        for (size_t i = 0; i < nparts; i++)
            seek_to_stored(w, w->batch_parts[i].partition);
        return;
    }
    char err[512];
    while (nparts > 0) {
        int64_t t0 = ts_monotonic_us();
        ts_apply_status st = apply_retrying(w, w->batch_parts, nparts, err, sizeof err);
        switch (st) {
        case TS_APPLY_OK: batch_committed(w, nparts, kept, t0, ts_monotonic_us()); return;
        case TS_APPLY_RETRY: return; /* stopping during an outage: nothing was written */
        case TS_APPLY_REJECTED: batch_rejected(w, msgs, nparts, kept, err); return;
        case TS_APPLY_FENCED: nparts = drop_fenced(w, nparts); break; /* the rest goes on */
        }
    }
}

/* Partitions that met a gap (in_sequence) read again from their stored
 * offset: what this batch applied of them before the gap is stored by now. */
static void reread_gaps(ts_worker *w) {
    if (!w->rereads)
        return;
    w->rereads = false;
    for (int32_t p = 0; p < MAX_PARTITIONS; p++)
        if (w->parts[p].reread) {
            w->parts[p].reread = false;
            if (w->parts[p].owned && w->parts[p].offset_known)
                seek_to_stored(w, p);
        }
}

/* Groups w->msgs[0..n) by partition, keeping each partition's offset order
 * (a stable pass), into w->grouped, and copies that list back to w->msgs
 * for process_batch to compact in place (w->grouped keeps every message
 * for destroying). */
static void group_by_partition(ts_worker *w, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!w->msgs[i])
            continue;
        int32_t p = w->msgs[i]->partition;
        for (size_t j = i; j < n; j++)
            if (w->msgs[j] && w->msgs[j]->partition == p) {
                w->grouped[k++] = w->msgs[j];
                w->msgs[j] = NULL;
            }
    }
    memcpy(w->msgs, w->grouped, k * sizeof *w->grouped); // NOLINT(bugprone-sizeof-expression)
}

/* ------------------------------------------------------------ metrics */

void ts_worker_metrics_print(ts_worker *w, FILE *f) {
    ts_metric_head(f, "turnstile_worker_commands_total", "Commands applied, by outcome.",
                   "counter");
    for (int o = 0; o < TS_OUT_COUNT_; o++)
        fprintf(f, "turnstile_worker_commands_total{outcome=\"%s\"} %lu\n",
                ts_outcome_name((ts_outcome)o), counter(&w->metrics.applied[o]));
    const ts_metric_row rows[] = {
        {"turnstile_worker_batches_total", "Transactions committed.", "counter",
         counter(&w->metrics.batches)},
        {"turnstile_worker_replayed_total",
         "Commands seen again, answered with their first outcome.", "counter",
         counter(&w->metrics.replayed)},
        {"turnstile_worker_dead_letters_total", "Messages sent to the dead-letter topic.",
         "counter", counter(&w->metrics.dead_letters)},
        {"turnstile_worker_fenced_total", "Batches refused: another worker owns the partition.",
         "counter", counter(&w->metrics.fenced)},
        {"turnstile_worker_retries_total", "Transactions retried after a database failure.",
         "counter", counter(&w->metrics.retries)},
        {"turnstile_worker_offset_gaps_total",
         "Messages beyond the offset expected (read again; believed when met twice).", "counter",
         counter(&w->metrics.gaps)},
        {"turnstile_worker_optimistic_conflicts_total",
         "Batches tried without lookups, undone: a command or registration was stored already.",
         "counter", ts_applier_conflicts(w->applier)},
        {"turnstile_worker_partitions", "Partitions assigned to this worker.", "gauge",
         (unsigned long)atomic_load_explicit(&w->metrics.partitions, memory_order_relaxed)},
        {"turnstile_worker_database_unavailable",
         "1 while a database failure is being retried (nothing is skipped meanwhile).", "gauge",
         (unsigned long)atomic_load_explicit(&w->metrics.db_unavailable, memory_order_relaxed)},
        {"turnstile_worker_registry_unavailable",
         "1 while the Schema Registry is asked again for a schema (the batch waits).", "gauge",
         (unsigned long)atomic_load_explicit(&w->metrics.registry_unavailable,
                                             memory_order_relaxed)},
        {"turnstile_worker_registry_requests_total",
         "Requests to the Schema Registry (schemas are kept once learned).", "counter",
         counter(&w->metrics.registry_fetches)},
        {"turnstile_worker_database_deadlines_total",
         "Calls to PostgreSQL cut at TS_PG_TIMEOUT_MS: no answer (then retried).", "counter",
         ts_pg_watch_cuts()},
    };
    ts_metric_rows_print(f, rows, sizeof rows / sizeof rows[0]);
    ts_histogram_print(f, "turnstile_worker_command_age_seconds",
                       "A command's age when polled here: produced to received (seconds).",
                       &w->metrics.command_age);
    ts_histogram_print(f, "turnstile_worker_transaction_seconds",
                       "A committed transaction (seconds).", &w->metrics.transaction);
    ts_metric_head(f, "turnstile_worker_seconds_total",
                   "The worker's time: waiting for Kafka (poll), decoding, in committed"
                   " transactions (apply), replying, queuing the event stream's records.",
                   "counter");
    for (int s = 0; s < STAGE_COUNT_; s++)
        fprintf(f, "turnstile_worker_seconds_total{stage=\"%s\"} %.6f\n", stage_names[s],
                (double)counter(&w->metrics.stage_us[s]) / 1e6);
    ts_lag_metrics_print(w->lag, f);
    ts_stream_metrics_print(w->stream, f);
}

void ts_worker_assignment(ts_worker *w, int *owned, int *settled) {
    ts_lag_assignment(w->lag, owned, settled);
}

rd_kafka_t *ts_worker_producer(ts_worker *w) {
    return w->producer;
}

const char *ts_worker_failure(ts_worker *w) {
    if (atomic_load(&w->kafka_fatal))
        return "kafka_fatal";
    if (ts_stream_failed(w->stream))
        return "stream_failed";
    return NULL;
}

/* ------------------------------------------------------------ the loop */

/* A command's age when it reaches the worker: Kafka's CreateTime to now. */
static void observe_age(ts_worker *w, const rd_kafka_message_t *m) {
    rd_kafka_timestamp_type_t type;
    int64_t produced = rd_kafka_message_timestamp(m, &type);
    if (type == RD_KAFKA_TIMESTAMP_CREATE_TIME)
        ts_histogram_observe(&w->metrics.command_age, (long)(ts_now_ms() - produced));
}

/* Takes what the consumer has into w->msgs: up to TS_BATCH_MAX messages,
 * what came within TS_BATCH_WAIT_MS of the first, and then whatever is
 * already there, without waiting: what arrived while the last transaction
 * ran goes into the next one whole (group commit), so a batch needs no
 * wait to grow with the load. Returns how many. */
static size_t collect(ts_worker *w) {
    size_t n = 0;
    int64_t deadline = 0;
    while (n < (size_t)w->cfg->batch_max && !*w->stop) {
        int timeout = 100;
        if (n > 0) {
            int64_t left = deadline - ts_monotonic_ms();
            timeout = left > 0 ? (int)left : 0;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(w->consumer, timeout);
        if (!m) {
            /* a partition assigned meanwhile stays paused until the loop
             * settles it: an idle poll hands over to it */
            if (n > 0 || w->unsettled)
                break;
            rd_kafka_poll(w->producer, 0);
            ts_stream_poll(w->stream); /* the watermarks move on while idle too */
            if (ts_stream_failed(w->stream) || atomic_load(&w->kafka_fatal) ||
                (w->failpoint_ms && ts_monotonic_ms() >= w->failpoint_ms))
                break;
            continue;
        }
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                ts_warn("worker", "event=consume_error err=\"%s\"", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        if (n == 0)
            deadline = ts_monotonic_ms() + w->cfg->batch_wait_ms;
        observe_age(w, m);
        w->msgs[n++] = m;
    }
    return n;
}

int ts_worker_run(ts_worker *w, volatile sig_atomic_t *stop) {
    w->stop = stop;
    int rc = 0;
    ts_info("worker", "event=started topic=%s group=%s events_topic=%s", w->cfg->topic_commands,
            w->cfg->group_id, w->cfg->topic_events);
    while (!*stop) {
        settle_partitions(w);
        int64_t t = ts_monotonic_us();
        size_t n = collect(w);
        count(&w->metrics.stage_us[STAGE_POLL], (unsigned long)(ts_monotonic_us() - t));
        group_by_partition(w, n);
        process_batch(w, w->msgs, n);
        reread_gaps(w);
        for (size_t i = 0; i < n; i++)
            rd_kafka_message_destroy(w->grouped[i]);
        commit_offsets(w, false);
        rd_kafka_poll(w->producer, 0);
        rd_kafka_poll(w->dlq, 0); /* its error callback */
        ts_stream_poll(w->stream);
        /* The relay cannot go on (logged with the reason): the worker stops,
         * what it committed is in the outbox, and the next owner of its
         * partitions publishes it. Going on would leave a gap. */
        if (ts_stream_failed(w->stream)) {
            ts_error("worker", "event=stopping reason=stream_failed");
            rc = -1;
            break;
        }
        if (atomic_load(&w->kafka_fatal)) {
            ts_error("worker", "event=stopping reason=kafka_fatal");
            rc = -1;
            break;
        }
        if (w->failpoint_ms && ts_monotonic_ms() >= w->failpoint_ms) {
            w->failpoint_ms = 0;
            rd_kafka_test_fatal_error(w->producer, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                      "raised by TS_FAILPOINT_KAFKA_FATAL_MS");
        }
    }
    ts_info("worker", "event=draining");
    rd_kafka_resp_err_t e = rd_kafka_consumer_close(w->consumer);
    if (e) /* the group sees the worker leave at its session timeout */
        ts_warn("worker", "event=close_failed err=\"%s\"", rd_kafka_err2str(e));
    flush(w->producer, "replies", 10000);
    if (rc == 0)
        ts_stream_drain(w->stream, 10000);
    return rc;
}
