/* SPDX-License-Identifier: Apache-2.0 */
/* check.c — see check.h. The database's rows are read once into sorted
 * string sets (a burst is up to a few hundred thousand rows), then every
 * operation of the journal is looked up in them. */
#include "check.h"

#include <libpq-fe.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ts_kafka.h"
#include "ts_pg.h"
#include "ts_time.h"

/* ------------------------------------------------------------ sorted sets */

typedef struct strset {
    char **items;
    size_t n, cap;
} strset;

static void set_add(strset *s, const char *fmt, ...) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 1024;
        s->items = realloc(s->items, s->cap * sizeof *s->items);
    }
    va_list ap;
    va_start(ap, fmt);
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    s->items[s->n++] = strdup(buf);
}

static int by_text(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void set_sort(strset *s) {
    if (s->n)
        qsort(s->items, s->n, sizeof *s->items, by_text);
}

/* The first item >= key. */
static size_t lower_bound(const strset *s, const char *key) {
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(s->items[mid], key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* How many items start with `prefix`. */
static long set_count_prefix(const strset *s, const char *prefix) {
    size_t len = strlen(prefix);
    long n = 0;
    for (size_t i = lower_bound(s, prefix); i < s->n && strncmp(s->items[i], prefix, len) == 0; i++)
        n++;
    return n;
}

/* The first item starting with `prefix`, or NULL. */
static const char *set_find_prefix(const strset *s, const char *prefix) {
    size_t i = lower_bound(s, prefix);
    return i < s->n && strncmp(s->items[i], prefix, strlen(prefix)) == 0 ? s->items[i] : NULL;
}

static void set_free(strset *s) {
    for (size_t i = 0; i < s->n; i++)
        free(s->items[i]);
    free(s->items);
    memset(s, 0, sizeof *s);
}

/* ------------------------------------------------------------ problems */

static void problem(fc_result *r, const char *fmt, ...) {
    size_t have = strlen(r->problems);
    if (have + 200 > sizeof r->problems)
        return; /* the first ones say enough */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->problems + have, sizeof r->problems - have, fmt, ap);
    va_end(ap);
    have = strlen(r->problems);
    if (have + 1 < sizeof r->problems) {
        r->problems[have] = '\n';
        r->problems[have + 1] = '\0';
    }
}

/* ------------------------------------------------------------ the topic */

/* The end (high watermark) of every partition of the commands topic, in
 * high[0..parts-1]. 0, or -1 if the broker did not say. */
static int topic_ends(it_env *env, int64_t *high) {
    for (int p = 0; p < env->command_partitions; p++) {
        int64_t low;
        if (rd_kafka_query_watermark_offsets(env->producer, env->cfg.topic_commands, p, &low,
                                             &high[p], 5000))
            return -1;
    }
    return 0;
}

/* The stored next offsets, in next[] (0 for a partition with no row). */
static int stored_offsets(PGconn *pg, const char *topic, int parts, int64_t *next) {
    const char *p[] = {topic};
    PGresult *res = PQexecParams(
        pg, "SELECT kafka_partition, next_offset FROM consumer_offsets WHERE topic = $1", 1, NULL,
        p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        return -1;
    }
    for (int i = 0; i < parts; i++)
        next[i] = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        int part = atoi(PQgetvalue(res, i, 0));
        if (part >= 0 && part < parts)
            next[part] = atoll(PQgetvalue(res, i, 1));
    }
    PQclear(res);
    return 0;
}

/* Every command id in the commands topic, from the start to high[]. */
static int topic_command_ids(it_env *env, const int64_t *high, strset *ids) {
    char err[512];
    const char *pairs[] = {"group.id", "turnstile-faults-reader", "enable.auto.commit", "false",
                           NULL};
    rd_kafka_t *rk = ts_kafka_new(&env->cfg, RD_KAFKA_CONSUMER, "turnstile-faults", pairs, NULL,
                                  NULL, err, sizeof err);
    if (!rk)
        return -1;
    int parts = env->command_partitions;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts);
    int64_t *next = calloc((size_t)parts, sizeof *next);
    for (int p = 0; p < parts; p++)
        rd_kafka_topic_partition_list_add(l, env->cfg.topic_commands, p)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    int rc = 0;
    int64_t deadline = ts_monotonic_ms() + 120000;
    for (;;) {
        bool done = true;
        for (int p = 0; p < parts; p++)
            if (next[p] < high[p])
                done = false;
        if (done)
            break;
        if (ts_monotonic_ms() > deadline) {
            rc = -1;
            break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        if (!m->err && m->partition >= 0 && m->partition < parts &&
            m->offset < high[m->partition]) {
            next[m->partition] = m->offset + 1;
            ts_command c;
            if (ts_codec_decode_command(env->codec, m->payload, m->len, &c, err, sizeof err) ==
                TS_CODEC_OK)
                set_add(ids, "%s", c.command_id);
        }
        rd_kafka_message_destroy(m);
    }
    free(next);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}

/* The dead letters of this run (the topic's partition 0, to its end now),
 * each a problem with its reason: a burst from well-behaved clients has
 * none. Returns how many. */
static long dead_letters(it_env *env, fc_result *r) {
    int64_t low = 0, high = 0;
    if (rd_kafka_query_watermark_offsets(env->producer, env->cfg.topic_dlq, 0, &low, &high, 5000) ||
        high <= low)
        return 0;
    char err[512];
    const char *pairs[] = {"group.id", "turnstile-faults-reader", "enable.auto.commit", "false",
                           NULL};
    rd_kafka_t *rk = ts_kafka_new(&env->cfg, RD_KAFKA_CONSUMER, "turnstile-faults", pairs, NULL,
                                  NULL, err, sizeof err);
    if (!rk)
        return high - low;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, env->cfg.topic_dlq, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    int64_t next = low, deadline = ts_monotonic_ms() + 30000;
    while (next < high && ts_monotonic_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        if (!m->err) {
            next = m->offset + 1;
            rd_kafka_headers_t *h = NULL;
            const void *v = NULL;
            size_t vlen = 0;
            if (rd_kafka_message_headers(m, &h) ||
                rd_kafka_header_get_last(h, "ts-reason", &v, &vlen))
                v = NULL;
            problem(r, "dead letter at offset %lld: %.*s", (long long)m->offset, v ? (int)vlen : 4,
                    v ? (const char *)v : "none");
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return high - low;
}

/* Waits until the worker has applied the topic to its end. */
static int await_caught_up(it_env *env, PGconn *pg, int timeout_ms, int64_t *high) {
    int parts = env->command_partitions;
    int64_t *next = calloc((size_t)parts, sizeof *next);
    int64_t deadline = ts_monotonic_ms() + timeout_ms;
    int rc = -1;
    while (ts_monotonic_ms() < deadline) {
        if (topic_ends(env, high) == 0 &&
            stored_offsets(pg, env->cfg.topic_commands, parts, next) == 0) {
            bool equal = true;
            for (int p = 0; p < parts; p++)
                if (next[p] != high[p])
                    equal = false;
            if (equal) {
                rc = 0;
                break;
            }
        }
        struct timespec ts = {0, 50 * 1000000L}; /* between two looks */
        nanosleep(&ts, NULL);
    }
    free(next);
    return rc;
}

/* ------------------------------------------------------------ the check */

typedef struct stored {
    strset events;      /* "<id>|<title>" */
    strset titles;      /* "<title>|<id>" */
    strset rows;        /* registrations: "<event>|<user>" */
    strset commands;    /* "<kind>|<event>|<user>|<outcome>" */
    strset command_ids; /* processed_commands.command_id */
} stored;

static PGresult *query(PGconn *pg, const char *sql) {
    PGresult *res = PQexec(pg, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fprintf(stderr, "check: %s: %s", sql, PQerrorMessage(pg));
        PQclear(res);
        return NULL;
    }
    return res;
}

/* The events' counters against a replay of their stored outcomes in
 * partition order: seats taken never above capacity, "Event is full" only
 * when none was free, and at the end replay = counter = rows. */
static void replay(PGconn *pg, fc_result *r) {
    PGresult *ev = query(pg, "SELECT e.id, e.capacity, e.registered,"
                             " (SELECT count(*) FROM registrations g WHERE g.event_id = e.id)"
                             " FROM events e ORDER BY e.id");
    PGresult *pc = query(pg, "SELECT event_id, kind, outcome FROM processed_commands"
                             " ORDER BY kafka_partition, kafka_offset");
    if (!ev || !pc) {
        problem(r, "the replay's queries failed");
        r->oversold++;
        PQclear(ev);
        PQclear(pc);
        return;
    }
    int n = PQntuples(ev);
    strset ids = {0};
    for (int i = 0; i < n; i++)
        set_add(&ids, "%s", PQgetvalue(ev, i, 0));
    set_sort(&ids); /* the same order as the rows, by construction; sorted to be sure */
    long *seats = calloc((size_t)n + 1, sizeof *seats);
    bool *over = calloc((size_t)n + 1, sizeof *over);
    for (int i = 0; i < PQntuples(pc); i++) {
        const char *event = PQgetvalue(pc, i, 0), *kind = PQgetvalue(pc, i, 1),
                   *outcome = PQgetvalue(pc, i, 2);
        size_t e = lower_bound(&ids, event);
        if (e >= ids.n || strcmp(ids.items[e], event) != 0)
            continue; /* a refusal for an unknown event: no seat involved */
        long capacity = atol(PQgetvalue(ev, (int)e, 1));
        if (strcmp(kind, "register") == 0 && strcmp(outcome, "REGISTERED") == 0) {
            if (++seats[e] > capacity && !over[e]) {
                over[e] = true;
                r->oversold++;
                problem(r, "oversold: event %s took seat %ld of %ld", event, seats[e], capacity);
            }
        } else if (strcmp(kind, "register") == 0 && strcmp(outcome, "EVENT_FULL") == 0) {
            if (seats[e] < capacity) {
                r->mismatched++;
                problem(r, "event %s refused as full with %ld of %ld seats taken", event, seats[e],
                        capacity);
            }
        } else if (strcmp(kind, "cancel") == 0 && strcmp(outcome, "CANCELLED") == 0) {
            seats[e]--;
        }
    }
    for (int i = 0; i < n; i++) {
        long capacity = atol(PQgetvalue(ev, i, 1)), registered = atol(PQgetvalue(ev, i, 2)),
             rows = atol(PQgetvalue(ev, i, 3));
        if (!over[i] && (registered > capacity || registered != rows || rows != seats[i])) {
            r->oversold++;
            problem(r, "event %s: capacity %ld, counter %ld, rows %ld, replayed %ld",
                    PQgetvalue(ev, i, 0), capacity, registered, rows, seats[i]);
        }
    }
    free(seats);
    free(over);
    set_free(&ids);
    PQclear(ev);
    PQclear(pc);
}

static int load(PGconn *pg, stored *s) {
    PGresult *res = query(pg, "SELECT id, title FROM events");
    if (!res)
        return -1;
    for (int i = 0; i < PQntuples(res); i++) {
        set_add(&s->events, "%s|%s", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
        set_add(&s->titles, "%s|%s", PQgetvalue(res, i, 1), PQgetvalue(res, i, 0));
    }
    PQclear(res);
    if (!(res = query(pg, "SELECT event_id, user_id FROM registrations")))
        return -1;
    for (int i = 0; i < PQntuples(res); i++)
        set_add(&s->rows, "%s|%s", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
    PQclear(res);
    if (!(res = query(pg, "SELECT command_id, kind, event_id, coalesce(user_id::text, ''),"
                          " outcome FROM processed_commands")))
        return -1;
    for (int i = 0; i < PQntuples(res); i++) {
        set_add(&s->command_ids, "%s", PQgetvalue(res, i, 0));
        set_add(&s->commands, "%s|%s|%s|%s", PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
                PQgetvalue(res, i, 3), PQgetvalue(res, i, 4));
    }
    PQclear(res);
    set_sort(&s->events);
    set_sort(&s->titles);
    set_sort(&s->rows);
    set_sort(&s->commands);
    set_sort(&s->command_ids);
    return 0;
}

/* The stored outcome of the only command of `kind` for event and user, in
 * out[cap]; the number of such commands. */
static long outcome_of(const stored *s, const char *kind, const fb_op *op, char *out, size_t cap) {
    char prefix[160];
    snprintf(prefix, sizeof prefix, "%s|%s|%s|", kind, op->event_id, op->user_id);
    const char *first = set_find_prefix(&s->commands, prefix);
    snprintf(out, cap, "%s", first ? first + strlen(prefix) : "");
    return set_count_prefix(&s->commands, prefix);
}

static bool has_row(const stored *s, const fb_op *op) {
    char key[100];
    snprintf(key, sizeof key, "%s|%s", op->event_id, op->user_id);
    size_t i = lower_bound(&s->rows, key);
    return i < s->rows.n && strcmp(s->rows.items[i], key) == 0;
}

static void check_create(const stored *s, const fb_op *op, fc_result *r) {
    char prefix[128];
    snprintf(prefix, sizeof prefix, "%s|", op->text);
    long copies = set_count_prefix(&s->titles, prefix);
    if (copies > 1) {
        r->doubled++;
        problem(r, "doubled: '%s' created %ld times", op->text, copies);
    }
    if (op->status / 100 != 2)
        return;
    char key[160];
    snprintf(key, sizeof key, "%s|%s", op->result_id, op->text);
    size_t i = lower_bound(&s->events, key);
    if (i < s->events.n && strcmp(s->events.items[i], key) == 0) {
        r->stored++;
    } else {
        r->lost++;
        problem(r, "lost: '%s' answered 201 %s, no such event", op->text, op->result_id);
    }
}

static void check_register(const stored *s, const strset *cancelled, const fb_op *op,
                           fc_result *r) {
    char outcome[64];
    long commands = outcome_of(s, "register", op, outcome, sizeof outcome);
    if (commands > 1) {
        r->doubled++;
        problem(r, "doubled: %s's registration stored as %ld commands", op->text, commands);
    }
    if (op->status == 201) {
        char key[100];
        snprintf(key, sizeof key, "%s|%s", op->event_id, op->user_id);
        bool cancelled_later = set_find_prefix(cancelled, key) != NULL;
        if (strcmp(op->result_id, op->user_id) != 0) {
            r->mismatched++;
            problem(r, "%s: 201 with user_id %s", op->text, op->result_id);
        }
        if (strcmp(outcome, "REGISTERED") == 0 && (has_row(s, op) || cancelled_later)) {
            r->stored++;
        } else {
            r->lost++;
            problem(r, "lost: %s answered 201, stored '%s', row %s", op->text, outcome,
                    has_row(s, op) ? "present" : "absent");
        }
    } else if (op->status == 400 && strcmp(op->code, "event_full") == 0) {
        /* a refusal is stored without the user: counted per event in
         * check_refusals() */
        if (commands > 0 || has_row(s, op)) {
            r->mismatched++;
            problem(r, "%s: answered Event is full, stored '%s'%s", op->text, outcome,
                    has_row(s, op) ? " and registered" : "");
        }
    } else if (op->status / 100 == 4) {
        r->mismatched++;
        problem(r, "%s: registration answered %ld %s", op->text, op->status, op->code);
    }
}

static void check_cancel(const stored *s, const fb_op *op, fc_result *r) {
    char outcome[64];
    long commands = outcome_of(s, "cancel", op, outcome, sizeof outcome);
    if (commands > 1) {
        r->doubled++;
        problem(r, "doubled: %s's cancellation stored as %ld commands", op->text, commands);
    }
    if (op->status == 200) {
        if (strcmp(outcome, "CANCELLED") == 0 && !has_row(s, op)) {
            r->stored++;
        } else {
            r->lost++;
            problem(r, "lost: cancelling %s answered 200, stored '%s', row %s", op->text, outcome,
                    has_row(s, op) ? "present" : "absent");
        }
    } else if (op->status / 100 == 4) {
        r->mismatched++;
        problem(r, "cancelling %s answered %ld %s", op->text, op->status, op->code);
    }
}

/* "Event is full" is stored without the user's id: per event, the stored
 * EVENT_FULL outcomes must be at least the refusals answered, and at most
 * those plus the registrations left unanswered. */
static void check_refusals(const stored *s, const fb_op *ops, size_t n, fc_result *r) {
    strset answered = {0}, open = {0};
    for (size_t i = 0; i < n; i++) {
        if (ops[i].kind != FB_REGISTER)
            continue;
        if (ops[i].status == 400 && strcmp(ops[i].code, "event_full") == 0)
            set_add(&answered, "%s", ops[i].event_id);
        else if (ops[i].status == 0)
            set_add(&open, "%s", ops[i].event_id);
    }
    set_sort(&answered);
    set_sort(&open);
    for (size_t e = 0; e < s->events.n; e++) {
        char id[TS_UUID_LEN + 1], prefix[128];
        snprintf(id, sizeof id, "%.*s", TS_UUID_LEN, s->events.items[e]);
        snprintf(prefix, sizeof prefix, "register|%s||EVENT_FULL", id);
        long want = set_count_prefix(&answered, id), maybe = set_count_prefix(&open, id),
             have = set_count_prefix(&s->commands, prefix);
        if (have < want) {
            r->mismatched += want - have;
            problem(r, "event %s: %ld answered Event is full, %ld stored", id, want, have);
        } else if (have > want + maybe) {
            r->doubled += have - want - maybe;
            problem(r, "event %s: %ld answered Event is full, %ld stored", id, want, have);
        }
    }
    set_free(&answered);
    set_free(&open);
}

/* The command ids of the topic and of processed_commands, compared. */
static void compare_ids(strset *topic, const strset *processed, fc_result *r) {
    set_sort(topic);
    size_t distinct = 0;
    for (size_t i = 0; i < topic->n; i++) {
        if (i > 0 && strcmp(topic->items[i], topic->items[i - 1]) == 0)
            continue; /* a retry or a producer's resend: one command */
        distinct++;
        size_t k = lower_bound(processed, topic->items[i]);
        if (k >= processed->n || strcmp(processed->items[k], topic->items[i]) != 0) {
            r->offsets_bad++;
            problem(r, "command %s is in the topic, not in processed_commands", topic->items[i]);
        }
    }
    r->commands = (long)distinct;
    r->processed = (long)processed->n;
    if (distinct != processed->n) {
        r->offsets_bad++;
        problem(r, "%zu distinct commands in the topic, %zu in processed_commands", distinct,
                processed->n);
    }
}

int fc_check(it_env *env, const fb_op *ops, size_t n, int timeout_ms, fc_result *out) {
    memset(out, 0, sizeof *out);
    out->ops = (long)n;
    char err[512];
    PGconn *pg = ts_pg_connect(env->cfg.pg_dsn, "turnstile-faults-check", err, sizeof err);
    if (!pg) {
        problem(out, "cannot connect to PostgreSQL: %s", err);
        return -1;
    }
    int parts = env->command_partitions;
    int64_t *high = calloc((size_t)parts, sizeof *high);
    int64_t t0 = ts_monotonic_ms();
    if (await_caught_up(env, pg, timeout_ms, high)) {
        problem(out, "the worker had not caught up with the commands topic after %d ms",
                timeout_ms);
        free(high);
        PQfinish(pg);
        return -1;
    }
    out->settle_ms = (long)(ts_monotonic_ms() - t0);

    stored s;
    memset(&s, 0, sizeof s);
    strset cancelled = {0}, topic = {0};
    if (load(pg, &s) || topic_command_ids(env, high, &topic)) {
        problem(out, "cannot read the database or the topic");
        out->errors++;
    }
    for (size_t i = 0; i < n; i++)
        if (ops[i].kind == FB_CANCEL && ops[i].status == 200)
            set_add(&cancelled, "%s|%s", ops[i].event_id, ops[i].user_id);
    set_sort(&cancelled);
    for (size_t i = 0; i < n; i++) {
        const fb_op *op = &ops[i];
        if (op->status / 100 == 2)
            out->acknowledged++;
        else if (op->status == 0)
            out->unanswered++;
        else if (op->status / 100 == 5) {
            out->errors++;
            problem(out, "'%s': final answer %ld", op->text, op->status);
        }
        if (op->kind == FB_CREATE)
            check_create(&s, op, out);
        else if (op->kind == FB_REGISTER)
            check_register(&s, &cancelled, op, out);
        else
            check_cancel(&s, op, out);
    }
    if (out->unanswered)
        problem(out, "%ld operations had no final answer before their deadline", out->unanswered);
    out->dead_letters = dead_letters(env, out);
    check_refusals(&s, ops, n, out);
    replay(pg, out);
    compare_ids(&topic, &s.command_ids, out);

    set_free(&s.events);
    set_free(&s.titles);
    set_free(&s.rows);
    set_free(&s.commands);
    set_free(&s.command_ids);
    set_free(&cancelled);
    set_free(&topic);
    free(high);
    PQfinish(pg);
    return (int)(out->lost + out->doubled + out->mismatched + out->oversold + out->unanswered +
                 out->errors + out->offsets_bad + out->dead_letters);
}

long fc_recovery_ms(const fb_op *ops, size_t n, int64_t at) {
    int64_t first = -1;
    for (size_t i = 0; i < n; i++)
        if (ops[i].status / 100 == 2 && ops[i].t_start >= at && (first < 0 || ops[i].t_end < first))
            first = ops[i].t_end;
    return first < 0 ? -1 : (long)(first - at);
}

static int by_time(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

long fc_longest_stall_ms(const fb_op *ops, size_t n) {
    int64_t *t = calloc(n ? n : 1, sizeof *t);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (ops[i].status / 100 == 2)
            t[k++] = ops[i].t_end;
    qsort(t, k, sizeof *t, by_time);
    int64_t longest = 0;
    for (size_t i = 1; i < k; i++)
        if (t[i] - t[i - 1] > longest)
            longest = t[i] - t[i - 1];
    free(t);
    return (long)longest;
}

void fc_record(const char *path, const char *fault, const fc_result *r, long recover_ms,
               long stall_ms, int faults_applied) {
    if (!path || !*path)
        return;
    FILE *f = fopen(path, "a");
    if (!f)
        return;
    fprintf(f,
            "{\"fault\":\"%s\",\"faults_applied\":%d,\"ops\":%ld,\"acknowledged\":%ld,"
            "\"stored\":%ld,\"lost\":%ld,\"doubled\":%ld,\"oversold\":%ld,\"mismatched\":%ld,"
            "\"unanswered\":%ld,\"errors\":%ld,\"offsets_bad\":%ld,\"commands\":%ld,"
            "\"processed\":%ld,\"dead_letters\":%ld,\"settle_ms\":%ld,\"recover_ms\":%ld,"
            "\"stall_ms\":%ld,\"restarts\":%ld}\n",
            fault, faults_applied, r->ops, r->acknowledged, r->stored, r->lost, r->doubled,
            r->oversold, r->mismatched, r->unanswered, r->errors, r->offsets_bad, r->commands,
            r->processed, r->dead_letters, r->settle_ms, recover_ms, stall_ms, r->restarts);
    fclose(f);
}
