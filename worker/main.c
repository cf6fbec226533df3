/* SPDX-License-Identifier: Apache-2.0 */
/* main.c — turnstile-worker: applies the commands of turnstile.commands to
 * PostgreSQL, one transaction per poll, and replies. Configuration comes
 * from the environment (see --help). SIGTERM or SIGINT drains and exits 0. */
#include "consumer.h"
#include "ts_kafka.h"
#include "ts_log.h"
#include "ts_service.h"
#include "ts_statusd.h"

int main(int argc, char **argv) {
    ts_config cfg;
    int code;
    if (ts_service_init(argc, argv,
                        "Consumes commands from TS_TOPIC_PREFIX.commands, applies them to\n"
                        "PostgreSQL and sends each outcome to the reply address in the command.",
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
    ts_statusd *status = NULL;
    if (cfg.worker_http_port > 0 &&
        !(status = ts_statusd_start(cfg.worker_http_port, ts_worker_metrics, w, err, sizeof err)))
        ts_warn("worker", "event=status_server_failed err=\"%s\"", err);
    int rc = ts_worker_run(w, &ts_service_stop);
    ts_statusd_stop(status);
    ts_worker_free(w);
    ts_info("worker", "event=stopped");
    return rc ? 1 : 0;
}
