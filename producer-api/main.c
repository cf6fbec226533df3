/* SPDX-License-Identifier: Apache-2.0 */
/* main.c — turnstile-api: the HTTP ingress. Reads go to PostgreSQL; writes
 * become Avro commands on Kafka, answered by the worker's reply.
 * Configuration comes from the environment (see --help). SIGTERM or SIGINT
 * drains and exits 0. */
#include <time.h>

#include "http.h"
#include "ts_kafka.h"
#include "ts_log.h"
#include "ts_pg.h"
#include "ts_service.h"

int main(int argc, char **argv) {
    ts_config cfg;
    int code;
    if (ts_service_init(argc, argv, "Serves the turnstile REST API on TS_HTTP_PORT.", &cfg, &code))
        return code;
    char err[512];
    if (cfg.migrate) {
        PGconn *conn = ts_pg_connect(cfg.pg_dsn, "turnstile-api", err, sizeof err);
        if (!conn || ts_pg_migrate(conn, NULL, err, sizeof err)) {
            ts_error("api", "event=migrate_failed err=\"%s\"", err);
            if (conn)
                PQfinish(conn);
            return 1;
        }
        PQfinish(conn);
    }
    /* Wrong credentials or no cluster: stop now with the reason, rather
     * than take requests that can only be answered 503. 10 s covers a
     * broker still starting beside us. */
    enum { KAFKA_VERIFY_TIMEOUT_MS = 10000 };
    if (ts_kafka_verify(&cfg, "turnstile-api", KAFKA_VERIFY_TIMEOUT_MS, err, sizeof err)) {
        ts_error("api", "event=kafka_unavailable err=\"%s\"", err);
        return 1;
    }
    ts_http *http = ts_http_start(&cfg, err, sizeof err);
    if (!http) {
        ts_error("api", "event=start_failed err=\"%s\"", err);
        return 1;
    }
    /* A short poll of the flag: pause() would miss a signal landing
     * between the check and the call. */
    while (!ts_service_stop && !ts_http_failed(http)) {
        struct timespec tick = {0, 100 * 1000000L};
        nanosleep(&tick, NULL);
    }
    /* a fatal error: the process ends with a failure for its supervisor
     * (scripts/run, the compose file's restart policy) to start anew */
    bool failed = ts_http_failed(http);
    ts_info("api", "event=draining%s", failed ? " reason=kafka_fatal" : "");
    ts_http_stop(http);
    ts_info("api", "event=stopped");
    return failed ? 1 : 0;
}
