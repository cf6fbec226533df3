/* SPDX-License-Identifier: Apache-2.0 */
/* ready.c — see ready.h. */
#include "ready.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "ts_log.h"
#include "ts_periodic.h"
#include "ts_pgprobe.h"

#define PROBE_MS 1000      /* how often each is asked */
#define KAFKA_WAIT_MS 1000 /* the longest a metadata request waits */

struct ts_ready {
    ts_replies *replies;
    ts_periodic *kafka;
    ts_pgprobe *database;
    atomic_uint failing; /* TS_REPLIES_* flags, handed to the HTTP threads: seq_cst */
    unsigned said;       /* the Kafka thread's: the flags last logged */
};

static long ask_kafka(ts_periodic *t, void *arg) {
    (void)t;
    ts_ready *r = arg;
    unsigned failing = ts_replies_probe(r->replies, KAFKA_WAIT_MS);
    atomic_store(&r->failing, failing);
    if (failing != r->said)
        ts_log(failing ? TS_LOG_WARN : TS_LOG_INFO, "ready", "event=kafka%s%s%s partition=%d",
               failing ? "_not_ready" : "_ready", failing & TS_REPLIES_KAFKA ? " kafka=down" : "",
               failing & TS_REPLIES_PARTITION ? " reply_partition=not_read" : "",
               (int)ts_replies_partition(r->replies));
    r->said = failing;
    return PROBE_MS;
}

ts_ready *ts_ready_start(const ts_config *cfg, ts_replies *replies, char *err, size_t errlen) {
    ts_ready *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->replies = replies;
    atomic_init(&r->failing, TS_REPLIES_KAFKA | TS_REPLIES_PARTITION); /* until asked */
    r->said = ~0u; /* the first answer is logged */
    if (!(r->database = ts_pgprobe_start(cfg->pg_dsn, "turnstile-api-ready", cfg->pg_timeout_ms,
                                         PROBE_MS, err, errlen)) ||
        !(r->kafka = ts_periodic_start(ask_kafka, r, err, errlen))) {
        ts_ready_stop(r);
        return NULL;
    }
    return r;
}

size_t ts_ready_not_ready(ts_ready *r, const char **out, size_t max) {
    unsigned failing = atomic_load(&r->failing);
    const char *names[] = {
        failing & TS_REPLIES_KAFKA ? "kafka" : NULL,
        failing & TS_REPLIES_PARTITION ? "reply_partition" : NULL,
        ts_pgprobe_ok(r->database) ? NULL : "database",
    };
    size_t n = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && n < max; i++)
        if (names[i])
            out[n++] = names[i];
    return n;
}

void ts_ready_stop(ts_ready *r) {
    if (!r)
        return;
    ts_periodic_stop(r->kafka);
    ts_pgprobe_stop(r->database);
    free(r);
}
