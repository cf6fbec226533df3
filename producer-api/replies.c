/* SPDX-License-Identifier: Apache-2.0 */
/* replies.c — see replies.h.
 *
 * A waiter is one command sent from here. It is referenced twice: by the
 * table (until its reply arrives, or it expires) and by the producer's
 * delivery report; it is freed when both let go. It points at the
 * request's answer and connection while the request waits ("attached");
 * once the request has been answered it is detached and never touches the
 * request again. The table, the queues and the waiters are under one
 * mutex; the work under it is a few pointer moves (encoding and producing
 * a command are done outside it).
 *
 * A request is answered:
 *   - by the reply, when it comes in time;
 *   - 202 at the deadline, when Kafka has acknowledged the command (it will
 *     be applied; GET /api/commands/:id follows it);
 *   - 503 when Kafka refuses it or does not acknowledge it: the producer's
 *     message timeout is the reply deadline (1 s at least), so an
 *     unacknowledged command is given up, never sent later. */
#include "replies.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "claim.h"
#include "ts_hash.h"
#include "ts_kafka.h"
#include "ts_log.h"
#include "ts_periodic.h"
#include "ts_time.h"

#define BUCKETS 65536
#define LATE_MS (INT64_C(10) * 60 * 1000) /* how long a 202'd command is remembered */

typedef struct waiter {
    char command_id[TS_UUID_LEN + 1];
    struct MHD_Connection *conn; /* NULL once detached */
    ts_answer *answer;           /* NULL once detached */
    bool suspended;
    bool delivered;
    bool expired; /* the deadline passed before the delivery report */
    bool in_table;
    int refs;
    int64_t due;          /* monotonic ms: the reply deadline, or the late expiry */
    int64_t issued_at_ms; /* the command's issue time (wall clock) */
    struct waiter *hnext;
    struct waiter *prev, *next; /* in `waiting` or `late` */
    struct queue *queue;
} waiter;

typedef struct queue {
    waiter *head, *tail;
} queue;

struct ts_replies {
    const ts_config *cfg;
    ts_metrics *metrics;
    rd_kafka_t *producer; /* with TS_LINGER_MS: the commands of a burst, batched */
    rd_kafka_t *prompt;   /* with no linger: a command when none waits (NULL: linger 0) */
    rd_kafka_t *consumer;
    pthread_t thread;
    bool thread_started; /* pthread_t has no "none" value to test */
    pthread_mutex_t lock;
    waiter *table[BUCKETS];
    queue waiting; /* attached, by deadline (= by submission: one fixed timeout) */
    queue late;    /* answered 202, waiting for the reply, by expiry */
    long attached;
    long nlate; /* waiters in `late` */
    bool draining;
    atomic_bool stop;                /* set by ts_replies_stop, read by the thread */
    atomic_llong brokers_down_since; /* 0 when Kafka is reachable */
    atomic_bool fatal;               /* the producer hit a fatal error */
    atomic_llong loop_ms;            /* monotonic: the thread's last round (for /readyz) */
    int64_t failpoint_ms;            /* TS_FAILPOINT_KAFKA_FATAL_MS: when to raise one; 0: never */
    ts_codec *codec;                 /* the thread's own, for replies */
    /* the reply partition (see "The reply partition" below) */
    atomic_int partition; /* the one new commands name: handed to the HTTP threads, seq_cst */
    bool automatic;       /* TS_REPLY_PARTITION unset: claimed, and moved if need be */
    int partitions;       /* the reply topic's, as its metadata said last */
    ts_claim *claim;      /* the claimer's, like the fields below */
    ts_periodic *claimer;
    int64_t moved_ms; /* monotonic: when commands last moved to another partition; 0: not since
                       * the partitions left behind were let go */
    int said;         /* the claim's state last logged (enum said) */
};

/* ------------------------------------------------------------ helpers */

static uint32_t bucket(const char *command_id) {
    return ts_fnv1a(command_id, strlen(command_id)) % BUCKETS;
}

static void enqueue(queue *q, waiter *w) {
    w->queue = q;
    w->prev = q->tail;
    w->next = NULL;
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
}

static void dequeue(waiter *w) {
    queue *q = w->queue;
    if (!q)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    w->queue = NULL;
    w->prev = w->next = NULL;
}

static void table_remove(ts_replies *r, waiter *w) {
    if (!w->in_table)
        return;
    if (w->queue == &r->late)
        r->nlate--;
    waiter **p = &r->table[bucket(w->command_id)];
    while (*p && *p != w)
        p = &(*p)->hnext;
    if (*p)
        *p = w->hnext;
    w->in_table = false;
    dequeue(w);
}

/* Lets go of `refs` of the waiter's references; the last one frees it.
 * Under the lock. */
static void release(waiter *w, int refs) {
    w->refs -= refs;
    if (w->refs == 0)
        free(w);
}

/* Writes the final answer and wakes the request; detaches the waiter. */
static void resolve(ts_replies *r, waiter *w, ts_wait_result result, const ts_reply *reply) {
    if (!w->answer)
        return;
    w->answer->result = result;
    w->answer->resolved_ms = ts_monotonic_ms();
    if (reply)
        w->answer->reply = *reply;
    if (w->suspended)
        MHD_resume_connection(w->conn);
    w->answer = NULL;
    w->conn = NULL;
    r->attached--;
    atomic_fetch_sub_explicit(&r->metrics->waiting, 1, memory_order_relaxed);
    if (result == TS_WAIT_ACCEPTED)
        atomic_fetch_add_explicit(&r->metrics->accepted_202, 1, memory_order_relaxed);
}

/* A 202'd command stays known (pending) until its reply, LATE_MS, or until
 * TS_MAX_PENDING newer ones push it out: a worker down for long must not
 * make this table grow without bound. */
static void make_late(ts_replies *r, waiter *w) {
    resolve(r, w, TS_WAIT_ACCEPTED, NULL);
    dequeue(w);
    w->due = ts_monotonic_ms() + LATE_MS;
    enqueue(&r->late, w);
    if (++r->nlate > r->cfg->max_pending) {
        waiter *oldest = r->late.head;
        table_remove(r, oldest);
        release(oldest, 1);
    }
}

/* ------------------------------------------------------------ callbacks */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    ts_replies *r = opaque;
    waiter *w = m->_private;
    int refs = 1; /* the delivery report's reference */
    pthread_mutex_lock(&r->lock);
    if (m->err) {
        atomic_fetch_add_explicit(&r->metrics->produce_failures, 1, memory_order_relaxed);
        ts_warn("api", "event=produce_failed command_id=%s err=\"%s\"", w->command_id,
                rd_kafka_err2str(m->err));
        if (w->answer) {
            resolve(r, w, TS_WAIT_UNAVAILABLE, NULL);
            table_remove(r, w);
            refs++; /* and the table's */
        }
    } else {
        atomic_store(&r->brokers_down_since, 0);
        ts_histogram_observe(&r->metrics->produced, (long)(ts_now_ms() - w->issued_at_ms));
        w->delivered = true;
        if (w->expired && w->answer)
            make_late(r, w);
    }
    release(w, refs);
    pthread_mutex_unlock(&r->lock);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    ts_replies *r = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) { /* the idempotent producer cannot go on */
        char why[512];
        rd_kafka_resp_err_t e = rd_kafka_fatal_error(rk, why, sizeof why);
        ts_error("api", "event=kafka_fatal err=%s reason=\"%s\"", rd_kafka_err2name(e), why);
        atomic_store(&r->fatal, true);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        long long zero = 0;
        atomic_compare_exchange_strong(&r->brokers_down_since, &zero, ts_monotonic_ms());
    }
    ts_warn("api", "event=kafka_error err=\"%s\"", reason);
}

/* ------------------------------------------------------------ the thread */

static void on_reply(ts_replies *r, const rd_kafka_message_t *m) {
    ts_reply reply;
    char err[256];
    if (ts_codec_decode_reply(r->codec, m->payload, m->len, &reply, err, sizeof err)) {
        ts_warn("api", "event=bad_reply offset=%lld err=\"%s\"", (long long)m->offset, err);
        return;
    }
    atomic_fetch_add_explicit(&r->metrics->replies_received, 1, memory_order_relaxed);
    int64_t now = ts_now_ms();
    pthread_mutex_lock(&r->lock);
    waiter *w = r->table[bucket(reply.command_id)], *late = NULL;
    for (; w; w = w->hnext) {
        if (strcmp(w->command_id, reply.command_id) != 0)
            continue;
        if (w->answer)
            break;
        if (!late)
            late = w;
    }
    if (!w)
        w = late; /* nobody waits any more: forget the 202'd command */
    if (w) {
        /* wall clocks of one machine or of synchronised ones */
        ts_histogram_observe(&r->metrics->to_applied,
                             (long)(reply.applied_at_ms - w->issued_at_ms));
        ts_histogram_observe(&r->metrics->to_reply, (long)(now - reply.applied_at_ms));
        resolve(r, w, TS_WAIT_REPLIED, &reply);
        table_remove(r, w);
        release(w, 1);
    } else {
        atomic_fetch_add_explicit(&r->metrics->replies_unmatched, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&r->lock);
}

static void expire(ts_replies *r) {
    int64_t now = ts_monotonic_ms();
    pthread_mutex_lock(&r->lock);
    waiter *w;
    while ((w = r->waiting.head) && w->due <= now) {
        if (w->delivered) {
            make_late(r, w);
        } else { /* the delivery report decides, within the message timeout */
            w->expired = true;
            dequeue(w);
        }
    }
    while ((w = r->late.head) && w->due <= now) {
        table_remove(r, w);
        release(w, 1);
    }
    pthread_mutex_unlock(&r->lock);
}

/* While Kafka is down, ask for metadata now and then: it answers again. */
static void probe_brokers(ts_replies *r) {
    long long since = atomic_load(&r->brokers_down_since);
    if (!since || ts_monotonic_ms() - since < 1000)
        return;
    const struct rd_kafka_metadata *md;
    if (rd_kafka_metadata(r->producer, 0, NULL, &md, 500) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_metadata_destroy(md);
        atomic_store(&r->brokers_down_since, 0);
        ts_info("api", "event=kafka_reachable");
    } else {
        atomic_store(&r->brokers_down_since, ts_monotonic_ms());
    }
}

static void *run(void *arg) {
    ts_replies *r = arg;
    while (!atomic_load(&r->stop)) {
        atomic_store(&r->loop_ms, ts_monotonic_ms());
        rd_kafka_message_t *m = rd_kafka_consumer_poll(r->consumer, 5);
        if (m) {
            if (!m->err)
                on_reply(r, m);
            else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                ts_warn("api", "event=reply_consume_error err=\"%s\"", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
        }
        rd_kafka_poll(r->producer, 0);
        if (r->prompt)
            rd_kafka_poll(r->prompt, 0);
        expire(r);
        probe_brokers(r);
        if (r->failpoint_ms && ts_monotonic_ms() >= r->failpoint_ms) {
            r->failpoint_ms = 0;
            rd_kafka_test_fatal_error(r->producer, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                      "raised by TS_FAILPOINT_KAFKA_FATAL_MS");
        }
    }
    return NULL;
}

bool ts_replies_failed(ts_replies *r) {
    return atomic_load(&r->fatal);
}

/* ------------------------------------------------------------ readiness */

#define READER_STALLED_MS 5000 /* the thread's round takes ms; a probe 1 s at most */

/* Whether `topic` is known to the cluster, through `rk`; with a leader for
 * `partition` when it is >= 0. */
static bool topic_served(rd_kafka_t *rk, const char *topic, int32_t partition, int timeout_ms) {
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md;
    bool ok = false;
    if (t && rd_kafka_metadata(rk, 0, t, &md, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        ok = md->topic_cnt == 1 && !md->topics[0].err;
        if (ok && partition >= 0) {
            ok = false;
            for (int i = 0; i < md->topics[0].partition_cnt; i++)
                if (md->topics[0].partitions[i].id == partition)
                    ok = md->topics[0].partitions[i].leader >= 0;
        }
        rd_kafka_metadata_destroy(md);
    }
    if (t)
        rd_kafka_topic_destroy(t);
    return ok;
}

/* Whether the reader has the reply partition assigned, and has fetched from
 * it: librdkafka knows its high watermark only from a fetch response. */
static bool partition_read(ts_replies *r, int32_t partition) {
    const char *topic = r->cfg->topic_replies;
    rd_kafka_topic_partition_list_t *assigned = NULL;
    bool ok = rd_kafka_assignment(r->consumer, &assigned) == RD_KAFKA_RESP_ERR_NO_ERROR &&
              rd_kafka_topic_partition_list_find(assigned, topic, partition) != NULL;
    if (assigned)
        rd_kafka_topic_partition_list_destroy(assigned);
    int64_t low, high;
    return ok &&
           rd_kafka_get_watermark_offsets(r->consumer, topic, partition, &low, &high) ==
               RD_KAFKA_RESP_ERR_NO_ERROR &&
           high >= 0;
}

unsigned ts_replies_probe(ts_replies *r, int timeout_ms) {
    unsigned failing = 0;
    int32_t partition = ts_replies_partition(r);
    if (!topic_served(r->producer, r->cfg->topic_commands, -1, timeout_ms))
        failing |= TS_REPLIES_KAFKA;
    if (!topic_served(r->consumer, r->cfg->topic_replies, partition, timeout_ms) ||
        !partition_read(r, partition) ||
        ts_monotonic_ms() - atomic_load(&r->loop_ms) > READER_STALLED_MS)
        failing |= TS_REPLIES_PARTITION;
    return failing;
}

int32_t ts_replies_partition(ts_replies *r) {
    return atomic_load(&r->partition);
}

/* ------------------------------------------------------------ setup */

static rd_kafka_t *reply_reader(const ts_config *cfg, char *err, size_t errlen) {
    /* a group id librdkafka needs, never joined: partitions are assigned
     * by hand, nothing is committed */
    char group[64];
    if (cfg->reply_partition >= 0)
        snprintf(group, sizeof group, "turnstile-api-%d", cfg->reply_partition);
    else
        snprintf(group, sizeof group, "turnstile-api");
    const char *pairs[] = {"group.id",
                           group,
                           "enable.auto.commit",
                           "false",
                           "fetch.wait.max.ms",
                           "5",
                           "fetch.error.backoff.ms",
                           "50",
                           NULL};
    return ts_kafka_new(cfg, RD_KAFKA_CONSUMER, "turnstile-api", pairs, NULL, NULL, err, errlen);
}

/* ------------------------------------------------------------ the reply partition
 *
 * TS_REPLY_PARTITION set: that partition, for good. Its lock (claim.h) is
 * taken too when it is free, so that instances choosing for themselves
 * leave it alone; held by another session, it is shared, and said so.
 *
 * Unset: the lowest free partition is claimed at start, PostgreSQL asked
 * for up to TS_PG_TIMEOUT_MS. None free (more instances than partitions)
 * or no answer: a partition drawn at random, shared, said in a warning;
 * the claimer goes on trying every second, its partition first, and moves
 * new commands to the partition it gets. It also checks every second that
 * the claim is still held. Lost (the connection dropped: PostgreSQL
 * restarted, the session terminated), the same partition is taken again
 * when it is free, else another free one, and new commands move there.
 *
 * A partition left behind is read on until no request can wait for a reply
 * on it any more — each is answered by its deadline or its delivery
 * report: the drain's bound — then let go. A command answered 202 meanwhile
 * needs no reply: GET /api/commands/:id reads the database. */

#define CLAIM_CHECK_MS 1000
#define METADATA_WAIT_MS 5000

enum said { SAID_NOTHING, SAID_CLAIMED, SAID_SHARED, SAID_NO_DATABASE };

/* How many partitions the reply topic has, asked until wait_ms has passed
 * (a topic just made may not be known to the broker asked yet). 0, with
 * `err` set, when it is not known by then. */
static int reply_topic_partitions(ts_replies *r, int wait_ms, char *err, size_t errlen) {
    rd_kafka_topic_t *t = rd_kafka_topic_new(r->consumer, r->cfg->topic_replies, NULL);
    int64_t give_up = ts_monotonic_ms() + wait_ms;
    int n = 0;
    while (t) {
        const struct rd_kafka_metadata *md;
        rd_kafka_resp_err_t e = rd_kafka_metadata(r->consumer, 0, t, &md, METADATA_WAIT_MS);
        if (!e) {
            e = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
            n = e ? 0 : md->topics[0].partition_cnt;
            rd_kafka_metadata_destroy(md);
        }
        if (n > 0)
            break;
        if (ts_monotonic_ms() >= give_up) {
            snprintf(err, errlen, "reply topic %s: %s", r->cfg->topic_replies,
                     e ? rd_kafka_err2str(e) : "no partitions");
            break;
        }
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (t)
        rd_kafka_topic_destroy(t);
    else
        snprintf(err, errlen, "reply topic %s: cannot make its handle", r->cfg->topic_replies);
    return n;
}

static bool assigned(ts_replies *r, int32_t partition) {
    rd_kafka_topic_partition_list_t *l = NULL;
    bool found = rd_kafka_assignment(r->consumer, &l) == RD_KAFKA_RESP_ERR_NO_ERROR &&
                 rd_kafka_topic_partition_list_find(l, r->cfg->topic_replies, partition);
    if (l)
        rd_kafka_topic_partition_list_destroy(l);
    return found;
}

/* Starts reading `partition` at its current end, read before any command
 * names it: "end" resolved later could skip a fast reply. A topic just
 * made, or a broker just restarted, has no leader for a moment: asked
 * again until wait_ms has passed. A partition read already (left a moment
 * ago, not let go yet) is read on from where it is. 0, or -1 with `err`. */
static int read_from_end(ts_replies *r, int32_t partition, int wait_ms, char *err, size_t errlen) {
    const char *topic = r->cfg->topic_replies;
    if (assigned(r, partition))
        return 0;
    int64_t low, high;
    rd_kafka_resp_err_t e;
    int64_t give_up = ts_monotonic_ms() + wait_ms;
    while ((e = rd_kafka_query_watermark_offsets(r->consumer, topic, partition, &low, &high,
                                                 METADATA_WAIT_MS)) &&
           ts_monotonic_ms() < give_up) {
        ts_warn("api", "event=reply_partition_not_ready partition=%d err=\"%s\"", partition,
                rd_kafka_err2str(e));
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (e) {
        snprintf(err, errlen, "reply topic %s partition %d: %s", topic, partition,
                 rd_kafka_err2str(e));
        return -1;
    }
    /* incremental: the partitions read already are read on */
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = high;
    rd_kafka_error_t *error = rd_kafka_incremental_assign(r->consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (error) {
        snprintf(err, errlen, "assign: %s", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
        return -1;
    }
    return 0;
}

static void use_partition(ts_replies *r, int32_t partition) {
    atomic_store(&r->partition, partition);
    atomic_store_explicit(&r->metrics->reply_partition, partition, memory_order_relaxed);
}

/* Lets go of the partitions left behind once no request can wait on them:
 * each is answered by its deadline, or by its delivery report within the
 * producer's message timeout (the reply deadline, 1 s at least), and the
 * drain's 3 s more. */
static void let_go(ts_replies *r) {
    int64_t bound =
        (r->cfg->reply_timeout_ms < 1000 ? 1000 : (int64_t)r->cfg->reply_timeout_ms) + 3000;
    if (!r->moved_ms || ts_monotonic_ms() - r->moved_ms < bound)
        return;
    int32_t current = ts_replies_partition(r);
    rd_kafka_topic_partition_list_t *now = NULL, *left = rd_kafka_topic_partition_list_new(4);
    if (rd_kafka_assignment(r->consumer, &now) == RD_KAFKA_RESP_ERR_NO_ERROR)
        for (int i = 0; i < now->cnt; i++)
            if (now->elems[i].partition != current)
                rd_kafka_topic_partition_list_add(left, now->elems[i].topic,
                                                  now->elems[i].partition);
    rd_kafka_error_t *error = left->cnt ? rd_kafka_incremental_unassign(r->consumer, left) : NULL;
    if (error) { /* tried again in a second */
        ts_warn("api", "event=reply_partition_unassign_failed err=\"%s\"",
                rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    } else {
        for (int i = 0; i < left->cnt; i++)
            ts_info("api", "event=reply_partition_left partition=%d", left->elems[i].partition);
        r->moved_ms = 0;
    }
    if (now)
        rd_kafka_topic_partition_list_destroy(now);
    rd_kafka_topic_partition_list_destroy(left);
}

/* Says what a claim came to (`got`: ts_claim_take's answer), when it
 * changed since it was last said, and shows it in /metrics. */
static void say(ts_replies *r, int got, const char *err) {
    int32_t partition = ts_replies_partition(r);
    atomic_store_explicit(&r->metrics->reply_claimed, got >= 0, memory_order_relaxed);
    enum said now = got >= 0                    ? SAID_CLAIMED
                    : got == TS_CLAIM_NONE_FREE ? SAID_SHARED
                                                : SAID_NO_DATABASE;
    if ((int)now == r->said)
        return;
    r->said = (int)now;
    if (now == SAID_CLAIMED)
        ts_info("api", "event=reply_partition_claimed topic=%s partition=%d", r->cfg->topic_replies,
                partition);
    else if (now == SAID_SHARED && r->automatic)
        ts_warn("api",
                "event=reply_partition_shared topic=%s partition=%d partitions=%d"
                " reason=\"every partition is claimed: more instances than partitions\"",
                r->cfg->topic_replies, partition, r->partitions);
    else if (now == SAID_SHARED)
        ts_warn("api",
                "event=reply_partition_shared topic=%s partition=%d"
                " reason=\"TS_REPLY_PARTITION is claimed by another instance\"",
                r->cfg->topic_replies, partition);
    else
        ts_warn("api",
                "event=reply_partition_unclaimed topic=%s partition=%d err=\"%s\""
                " reason=\"PostgreSQL does not answer: the partition may be shared; claimed"
                " once it answers\"",
                r->cfg->topic_replies, partition, err);
}

/* The claimer's round (every CLAIM_CHECK_MS). */
static long keep_claim(ts_periodic *t, void *arg) {
    (void)t;
    ts_replies *r = arg;
    char err[512] = "";
    let_go(r);
    int32_t current = ts_replies_partition(r);
    if (ts_claim_held(r->claim) >= 0) {
        if (ts_claim_keep(r->claim, err, sizeof err))
            return CLAIM_CHECK_MS;
        ts_warn("api", "event=reply_partition_claim_lost partition=%d err=\"%s\"", current, err);
        atomic_store_explicit(&r->metrics->reply_claimed, 0, memory_order_relaxed);
        r->said = SAID_NOTHING; /* what comes of it is said */
    }
    int n;
    if (r->automatic && (n = reply_topic_partitions(r, 0, err, sizeof err)) > 0)
        r->partitions = n; /* partitions may be added */
    int got = ts_claim_take(r->claim, current, r->automatic ? r->partitions : 0, err, sizeof err);
    if (got >= 0 && got != current) {
        if (read_from_end(r, got, 0, err, sizeof err) == 0) {
            ts_info("api", "event=reply_partition_moved from=%d to=%d", current, got);
            use_partition(r, got);
            r->moved_ms = ts_monotonic_ms();
        } else { /* let it go, and stay where it is: tried again next round */
            ts_warn("api", "event=reply_partition_not_moved to=%d err=\"%s\"", got, err);
            ts_claim_release(r->claim);
            return CLAIM_CHECK_MS;
        }
    }
    say(r, got, err);
    return CLAIM_CHECK_MS;
}

/* The partition to start with; 0, or -1 with `err` set (no reply topic). */
static int first_partition(ts_replies *r, char *err, size_t errlen) {
    const ts_config *cfg = r->cfg;
    r->said = SAID_NOTHING;
    if (!r->automatic) { /* its lock is the claimer's to take */
        use_partition(r, cfg->reply_partition);
        return 0;
    }
    if (!(r->partitions = reply_topic_partitions(r, 30000, err, errlen)))
        return -1;
    char why[512] = "";
    int got;
    int64_t give_up = ts_monotonic_ms() + cfg->pg_timeout_ms;
    while ((got = ts_claim_take(r->claim, -1, r->partitions, why, sizeof why)) ==
               TS_CLAIM_DB_DOWN &&
           ts_monotonic_ms() < give_up) {
        struct timespec ts = {0, 250 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (got >= 0) {
        use_partition(r, got);
    } else { /* spread the instances that could not claim one over the partitions */
        unsigned seed = (unsigned)ts_now_ms() ^ ((unsigned)getpid() << 16);
        use_partition(r, rand_r(&seed) % r->partitions);
    }
    say(r, got, why);
    return 0;
}

static void producer_setup(rd_kafka_conf_t *conf, void *arg) {
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_opaque(conf, arg);
}

/* The commands' producer: with TS_LINGER_MS (`prompt` false), or with no
 * linger at all. */
static rd_kafka_t *command_producer(ts_replies *r, bool prompt, char *err, size_t errlen) {
    const ts_config *cfg = r->cfg;
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%d",
             cfg->reply_timeout_ms < 1000 ? 1000 : cfg->reply_timeout_ms);
    const char *pairs[] = {
        /* not acknowledged by the deadline: given up, and answered 503 */
        "message.timeout.ms",
        timeout,
        "queue.buffering.max.messages",
        "200000",
        prompt ? "linger.ms" : NULL,
        "0",
        NULL,
    };
    return ts_kafka_new(cfg, RD_KAFKA_PRODUCER, "turnstile-api", pairs, producer_setup, r, err,
                        errlen);
}

/* Learns where the commands topic's partitions are before the first request:
 * otherwise the first commands wait in the producer for that metadata (seen
 * here: the first 1,024 requests after a start acknowledged in 0.5-1 s). */
static void learn_commands_topic(ts_replies *r, rd_kafka_t *producer) {
    rd_kafka_topic_t *t = rd_kafka_topic_new(producer, r->cfg->topic_commands, NULL);
    const struct rd_kafka_metadata *md;
    if (t && rd_kafka_metadata(producer, 0, t, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR)
        rd_kafka_metadata_destroy(md);
    if (t)
        rd_kafka_topic_destroy(t);
}

ts_replies *ts_replies_start(const ts_config *cfg, ts_metrics *metrics, char *err, size_t errlen) {
    ts_replies *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (pthread_mutex_init(&r->lock, NULL) != 0) {
        snprintf(err, errlen, "cannot make the replies' lock");
        free(r);
        return NULL;
    }
    r->cfg = cfg;
    r->metrics = metrics;
    r->automatic = cfg->reply_partition < 0;
    if (!(r->codec = ts_codec_new(err, errlen)) ||
        !(r->claim = ts_claim_new(cfg->pg_dsn, cfg->topic_replies, cfg->pg_timeout_ms)) ||
        !(r->producer = command_producer(r, false, err, errlen)) ||
        (cfg->linger_ms > 0 && !(r->prompt = command_producer(r, true, err, errlen))) ||
        !(r->consumer = reply_reader(cfg, err, errlen)) || first_partition(r, err, errlen) ||
        read_from_end(r, ts_replies_partition(r), 30000, err, errlen)) {
        if (!r->claim)
            snprintf(err, errlen, "out of memory");
        ts_replies_stop(r);
        return NULL;
    }
    learn_commands_topic(r, r->producer);
    if (r->prompt)
        learn_commands_topic(r, r->prompt);
    /* A failure on purpose, for the tests: a fatal producer error this
     * many ms after the start (librdkafka's own test hook). */
    const char *failpoint = getenv("TS_FAILPOINT_KAFKA_FATAL_MS");
    char *end;
    long after_ms = failpoint ? strtol(failpoint, &end, 10) : 0;
    if (failpoint && *end == '\0' && after_ms > 0)
        r->failpoint_ms = ts_monotonic_ms() + after_ms;
    if (pthread_create(&r->thread, NULL, run, r)) {
        snprintf(err, errlen, "cannot start the reply thread");
        ts_replies_stop(r);
        return NULL;
    }
    r->thread_started = true;
    if (!(r->claimer = ts_periodic_start(keep_claim, r, err, errlen))) {
        ts_replies_stop(r);
        return NULL;
    }
    ts_info("api", "event=replies_ready topic=%s partition=%d chosen=%s", cfg->topic_replies,
            ts_replies_partition(r), r->automatic ? "automatic" : "TS_REPLY_PARTITION");
    return r;
}

/* ------------------------------------------------------------ requests */

/* Each libmicrohttpd thread encodes with a codec of its own. */
static pthread_key_t codec_key;
static pthread_once_t codec_once = PTHREAD_ONCE_INIT;
static void free_codec(void *c) {
    ts_codec_free(c);
}
static bool codec_key_made; /* written once, in pthread_once */
static void make_codec_key(void) {
    codec_key_made = pthread_key_create(&codec_key, free_codec) == 0;
}

/* The calling thread's codec, made on first use; NULL if it cannot be. */
static ts_codec *thread_codec(void) {
    if (pthread_once(&codec_once, make_codec_key) != 0 || !codec_key_made)
        return NULL;
    ts_codec *c = pthread_getspecific(codec_key);
    if (c)
        return c;
    char err[256];
    if (!(c = ts_codec_new(err, sizeof err))) {
        ts_error("api", "event=codec_failed err=\"%s\"", err);
        return NULL;
    }
    if (pthread_setspecific(codec_key, c) != 0) {
        ts_codec_free(c);
        return NULL;
    }
    return c;
}

/* Which producer sends a command. Batching adapts to the load, as a group
 * commit does: a command sent while no other is waiting for its reply goes
 * out at once, through the producer with no linger; one sent while others
 * wait goes through the one with TS_LINGER_MS, and the commands of a burst
 * go out together. A lone registration thus waits for no timer, and a
 * burst's commands arrive at the worker together, for one transaction,
 * at a fraction of the requests for the broker and the API. Commands sent
 * through both at once are concurrent requests, whose order was never
 * defined: a client's next command goes out only once its last is
 * answered, and answered means in Kafka (applied, or acknowledged for a
 * 202). */
static rd_kafka_t *producer_for(ts_replies *r, bool alone) {
    return alone && r->prompt ? r->prompt : r->producer;
}

/* The answer when Kafka does not take the command: 503, at once. */
static ts_wait_result unavailable(ts_replies *r, ts_answer *answer) {
    atomic_fetch_add_explicit(&r->metrics->produce_failures, 1, memory_order_relaxed);
    answer->result = TS_WAIT_UNAVAILABLE;
    return answer->result;
}

ts_wait_result ts_replies_submit(ts_replies *r, const ts_command *cmd, struct MHD_Connection *conn,
                                 ts_answer *answer) {
    memset(answer, 0, sizeof *answer);
    strcpy(answer->command_id, cmd->command_id);

    long long down = atomic_load(&r->brokers_down_since);
    if (down && ts_monotonic_ms() - down < 1000)
        return unavailable(r, answer); /* fast: Kafka is known to be down */

    uint8_t buf[TS_MESSAGE_BYTES_MAX];
    size_t len;
    ts_codec *codec = thread_codec();
    if (!codec || ts_codec_encode_command(codec, cmd, buf, sizeof buf, &len))
        return unavailable(r, answer);

    waiter *w = calloc(1, sizeof *w);
    if (!w)
        return unavailable(r, answer);
    strcpy(w->command_id, cmd->command_id);
    w->conn = conn;
    w->answer = answer;
    w->refs = 2; /* the table's and the delivery report's */
    w->due = ts_monotonic_ms() + r->cfg->reply_timeout_ms;
    w->issued_at_ms = cmd->issued_at_ms;

    pthread_mutex_lock(&r->lock);
    if (r->draining || r->attached >= r->cfg->max_pending) {
        pthread_mutex_unlock(&r->lock);
        free(w); /* nobody else has seen it */
        return unavailable(r, answer);
    }
    rd_kafka_t *producer = producer_for(r, r->attached == 0);
    uint32_t h = bucket(w->command_id);
    w->hnext = r->table[h];
    r->table[h] = w;
    w->in_table = true;
    enqueue(&r->waiting, w);
    r->attached++;
    atomic_fetch_add_explicit(&r->metrics->waiting, 1, memory_order_relaxed);
    pthread_mutex_unlock(&r->lock);

    rd_kafka_resp_err_t e = rd_kafka_producev(
        producer, RD_KAFKA_V_TOPIC(r->cfg->topic_commands),
        RD_KAFKA_V_KEY(cmd->event_id, strlen(cmd->event_id)), RD_KAFKA_V_VALUE(buf, len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(w), RD_KAFKA_V_END);

    pthread_mutex_lock(&r->lock);
    if (e) {
        ts_warn("api", "event=produce_refused err=\"%s\"", rd_kafka_err2str(e));
        if (w->answer) { /* nothing can have answered it: no report will come */
            w->answer = NULL;
            r->attached--;
            atomic_fetch_sub_explicit(&r->metrics->waiting, 1, memory_order_relaxed);
        }
        table_remove(r, w);
        release(w, 2); /* the table's, and the report's: none will come */
        pthread_mutex_unlock(&r->lock);
        return unavailable(r, answer);
    }
    atomic_fetch_add_explicit(&r->metrics->commands_produced, 1, memory_order_relaxed);
    if (producer == r->prompt)
        atomic_fetch_add_explicit(&r->metrics->commands_at_once, 1, memory_order_relaxed);
    ts_wait_result result = TS_WAIT_PENDING;
    if (w->answer) { /* not answered yet: wait for it */
        MHD_suspend_connection(conn);
        w->suspended = true;
    } else { /* answered already: a fast delivery report or reply, or the drain */
        result = answer->result;
    }
    pthread_mutex_unlock(&r->lock);
    return result;
}

bool ts_replies_is_pending(ts_replies *r, const char *command_id) {
    pthread_mutex_lock(&r->lock);
    waiter *w = r->table[bucket(command_id)];
    while (w && strcmp(w->command_id, command_id) != 0)
        w = w->hnext;
    pthread_mutex_unlock(&r->lock);
    return w != NULL;
}

void ts_replies_drain(ts_replies *r) {
    pthread_mutex_lock(&r->lock);
    r->draining = true;
    pthread_mutex_unlock(&r->lock);
    /* Every attached request is answered by its deadline, or by its
     * delivery report shortly after. */
    int64_t give_up = ts_monotonic_ms() + r->cfg->reply_timeout_ms + 3000;
    for (;;) {
        pthread_mutex_lock(&r->lock);
        long left = r->attached;
        pthread_mutex_unlock(&r->lock);
        if (left == 0 || ts_monotonic_ms() > give_up)
            break;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&r->lock);
    for (int i = 0; i < BUCKETS; i++)
        for (waiter *w = r->table[i]; w; w = w->hnext)
            resolve(r, w, TS_WAIT_UNAVAILABLE, NULL);
    pthread_mutex_unlock(&r->lock);
}

void ts_replies_stop(ts_replies *r) {
    if (!r)
        return;
    ts_periodic_stop(r->claimer); /* before the consumer it assigns */
    if (r->thread_started) {
        atomic_store(&r->stop, true);
        pthread_join(r->thread, NULL);
    }
    if (r->producer) {
        rd_kafka_flush(r->producer, 5000);
        rd_kafka_destroy(r->producer); /* serves the last delivery reports */
    }
    if (r->prompt) {
        rd_kafka_flush(r->prompt, 5000);
        rd_kafka_destroy(r->prompt);
    }
    if (r->consumer) {
        rd_kafka_consumer_close(r->consumer);
        rd_kafka_destroy(r->consumer);
    }
    /* The producer, and every delivery report, is gone: what the table
     * holds, only the table holds. */
    for (int i = 0; i < BUCKETS; i++) {
        waiter *w = r->table[i];
        while (w) {
            waiter *next = w->hnext;
            free(w);
            w = next;
        }
    }
    ts_codec_free(r->codec);
    ts_claim_free(r->claim); /* the partition is free for another instance */
    pthread_mutex_destroy(&r->lock);
    free(r);
}
