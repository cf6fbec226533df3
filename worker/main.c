/* SPDX-License-Identifier: Apache-2.0 */
/* main.c — turnstile-worker: applies the commands of turnstile.commands to
 * PostgreSQL, one transaction per poll, replies, publishes the changes to
 * turnstile.events, sweeps for seat holds past their expiry, and prunes
 * what the retention settings let go.
 * Configuration comes from the environment (see --help). SIGTERM or SIGINT
 * drains and exits 0 (/readyz answers 503 from the signal on); a failed
 * event stream or a fatal Kafka client error exits 1 (/healthz answers 503
 * meanwhile). */
#include "consumer.h"
#include "retention.h"
#include "sweeper.h"
#include "ts_build.h"
#include "ts_kafka.h"
#include "ts_log.h"
#include "ts_pgprobe.h"
#include "ts_prometheus.h"
#include "ts_service.h"
#include "ts_statusd.h"

/* What the status server shows: the worker's counters, then the
 * sweeper's; whether it is ready. */
typedef struct metric_sources {
    ts_worker *worker;
    ts_sweeper *sweeper;  /* NULL: no sweeper */
    ts_pgprobe *database; /* asks PostgreSQL for /readyz */
} metric_sources;

static const char *health(void *arg) {
    const metric_sources *src = arg;
    return ts_worker_failure(src->worker);
}

/* Ready: not draining, not failing, owns partitions (all of them settled:
 * their stored offsets read), and PostgreSQL answers. A worker of a group
 * with more workers than partitions owns none: not ready, on purpose (it
 * takes no load). */
static size_t ready(void *arg, const char **out, size_t max) {
    const metric_sources *src = arg;
    const char *failing = ts_worker_failure(src->worker);
    int owned, settled;
    ts_worker_assignment(src->worker, &owned, &settled);
    const char *names[] = {
        ts_service_stopping() ? "draining" : NULL,
        failing,
        owned == 0 ? "no_partitions" : NULL,
        settled < owned ? "partitions_settling" : NULL,
        ts_pgprobe_ok(src->database) ? NULL : "database",
    };
    size_t n = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && n < max; i++)
        if (names[i])
            out[n++] = names[i];
    return n;
}

static char *metrics(void *arg) {
    const metric_sources *src = arg;
    ts_metrics_page page;
    FILE *f = ts_metrics_page_open(&page);
    if (!f)
        return NULL;
    ts_build_info_print(f);
    const char *names[TS_READY_MAX];
    ts_metric_print(f, "turnstile_ready",
                    "1 when /readyz answers 200; 0 when it names what is not ready.", "gauge",
                    ready(arg, names, TS_READY_MAX) == 0);
    ts_worker_metrics_print(src->worker, f);
    if (src->sweeper)
        ts_sweeper_metrics_print(src->sweeper, f);
    return ts_metrics_page_close(&page);
}

#define READY_PROBE_MS 1000 /* how often /readyz's question to PostgreSQL is asked */

int main(int argc, char **argv) {
    ts_config cfg;
    int code;
    if (ts_service_init(argc, argv,
                        "Consumes commands from TS_TOPIC_PREFIX.commands, applies them to\n"
                        "PostgreSQL, sends each outcome to the reply address in the command,\n"
                        "publishes every change to TS_TOPIC_PREFIX.events, and asks for seat\n"
                        "holds past their expiry to expire (TS_SWEEP_INTERVAL_MS), and prunes\n"
                        "what TS_RETAIN_* let go (TS_PRUNE_INTERVAL_S).",
                        &cfg, &code))
        return code;
    char err[512];
    /* Wrong credentials or no cluster: stop now with the reason, rather
     * than wait for commands that cannot come. 10 s covers a broker still
     * starting beside us. */
    enum { KAFKA_VERIFY_TIMEOUT_MS = 10000 };
    if (ts_kafka_verify(&cfg, "turnstile-worker", KAFKA_VERIFY_TIMEOUT_MS, err, sizeof err)) {
        ts_error("worker", "event=kafka_unavailable err=\"%s\"", err);
        return 1;
    }
    ts_worker *w = ts_worker_new(&cfg, err, sizeof err);
    if (!w) {
        ts_error("worker", "event=start_failed err=\"%s\"", err);
        return 1;
    }
    metric_sources sources = {.worker = w};
    if (cfg.sweep_interval_ms > 0 &&
        !(sources.sweeper = ts_sweeper_start(&cfg, ts_worker_producer(w), err, sizeof err))) {
        ts_error("worker", "event=start_failed err=\"%s\"", err);
        ts_worker_free(w);
        return 1;
    }
    ts_retention *retention = NULL;
    if (cfg.prune_interval_s > 0 &&
        !(retention = ts_retention_start(&cfg, ts_worker_producer(w), err, sizeof err))) {
        ts_error("worker", "event=start_failed err=\"%s\"", err);
        ts_sweeper_stop(sources.sweeper);
        ts_worker_free(w);
        return 1;
    }
    ts_statusd *status = NULL;
    if (cfg.worker_http_port > 0 &&
        (!(sources.database =
               ts_pgprobe_start(cfg.pg_dsn, "turnstile-worker-ready", cfg.pg_timeout_ms,
                                READY_PROBE_MS, err, sizeof err)) ||
         !(status = ts_statusd_start(cfg.worker_http_port, metrics, health, ready, &sources, err,
                                     sizeof err))))
        ts_warn("worker", "event=status_server_failed err=\"%s\"", err);
    int rc = ts_worker_run(w, &ts_service_stop);
    ts_statusd_stop(status);
    ts_pgprobe_stop(sources.database);
    ts_retention_stop(retention);     /* before the producer it asks the broker with */
    ts_sweeper_stop(sources.sweeper); /* before the producer it writes with goes */
    ts_worker_free(w);
    ts_info("worker", "event=stopped");
    return rc ? 1 : 0;
}
