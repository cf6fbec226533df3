/* SPDX-License-Identifier: Apache-2.0 */
/* retention.c — see retention.h. A ts_periodic thread and its own
 * PostgreSQL connection, like the sweeper's; the pruning itself is
 * ts_prune's, shared with turnstile-admin prune. */
#include "retention.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "ts_log.h"
#include "ts_periodic.h"
#include "ts_pg.h"
#include "ts_prune.h"
#include "ts_time.h"

#define PG_TIMEOUT_MS 30000   /* connecting, and each statement of a pass */
#define KAFKA_TIMEOUT_MS 5000 /* asking the broker for the topic's retention */
#define RETRY_AFTER_MS 30000  /* after a failed pass, unless the interval is shorter */

struct ts_retention {
    const ts_config *cfg;
    rd_kafka_t *rk;
    PGconn *conn; /* the thread's */
    ts_periodic *thread;
};

static bool should_stop(void *arg) {
    return ts_periodic_stopping(arg);
}

/* One pass. 0, or -1 (logged) when it failed. */
static int pass(ts_retention *r, ts_periodic *thread) {
    char msg[512], err[512];
    ts_prune_window w = ts_prune_check_window(r->rk, r->cfg, KAFKA_TIMEOUT_MS, msg, sizeof msg);
    if (w == TS_WINDOW_UNSAFE) {
        ts_error("worker", "event=prune_refused reason=\"%s\"", msg);
        return 0;
    }
    if (msg[0])
        ts_warn("worker", "event=prune_window reason=\"%s\"", msg);
    if (!r->conn && !(r->conn = ts_pg_connect_bounded(r->cfg->pg_dsn, "turnstile-worker-retention",
                                                      PG_TIMEOUT_MS, err, sizeof err))) {
        ts_warn("worker", "event=prune_failed err=\"%s\"", err);
        return -1;
    }
    ts_prune_counts done = {0};
    int64_t t0 = ts_monotonic_ms();
    ts_prune_status st = ts_prune_run(r->conn, r->cfg, should_stop, thread, &done, err, sizeof err);
    if (st == TS_PRUNE_BUSY) {
        ts_info("worker", "event=prune_skipped reason=another_pruner_holds_the_lock");
        return 0;
    }
    bool failed = st == TS_PRUNE_FAILED;
    ts_log(failed ? TS_LOG_WARN : TS_LOG_INFO, "worker",
           "event=%s processed_commands=%lld events=%lld registrations=%lld holds=%lld"
           " waitlist=%lld users=%lld ms=%lld%s%s%s",
           failed ? "prune_failed" : "pruned", done.processed_commands, done.events,
           done.registrations, done.holds, done.waitlist, done.users,
           (long long)(ts_monotonic_ms() - t0), failed ? " err=\"" : "", failed ? err : "",
           failed ? "\"" : "");
    if (!failed)
        return 0;
    PQfinish(r->conn); /* whatever went wrong, a new connection next time */
    r->conn = NULL;
    return -1;
}

static long run(ts_periodic *thread, void *arg) {
    ts_retention *r = arg;
    long wait = (long)r->cfg->prune_interval_s * 1000;
    if (pass(r, thread) && wait > RETRY_AFTER_MS)
        wait = RETRY_AFTER_MS;
    return wait;
}

ts_retention *ts_retention_start(const ts_config *cfg, rd_kafka_t *rk, char *err, size_t errlen) {
    ts_retention *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "retention: out of memory");
        return NULL;
    }
    r->cfg = cfg;
    r->rk = rk;
    char why[128];
    if (!(r->thread = ts_periodic_start(run, r, why, sizeof why))) {
        snprintf(err, errlen, "retention: %s", why);
        free(r);
        return NULL;
    }
    ts_info("worker", "event=retention_started interval_s=%d", cfg->prune_interval_s);
    return r;
}

void ts_retention_stop(ts_retention *r) {
    if (!r)
        return;
    ts_periodic_stop(r->thread);
    if (r->conn)
        PQfinish(r->conn);
    free(r);
    ts_info("worker", "event=retention_stopped");
}
