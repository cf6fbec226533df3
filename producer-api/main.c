/* main.c — turnstile-api: the HTTP ingress. Reads go to PostgreSQL; writes
 * become Avro commands on Kafka, answered by the worker's reply.
 * Configuration comes from the environment (see --help). SIGTERM or SIGINT
 * drains and exits 0. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "ts_config.h"
#include "ts_log.h"
#include "ts_pg.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv) {
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: turnstile-api\n\n"
               "Serves the turnstile REST API on TS_HTTP_PORT.\n\n");
        ts_config_usage(stdout);
        return 0;
    }
    ts_config cfg;
    char err[512];
    if (ts_config_load(&cfg, err, sizeof err)) {
        fprintf(stderr, "turnstile-api: %s\n", err);
        return 2;
    }
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
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    ts_http *http = ts_http_start(&cfg, err, sizeof err);
    if (!http) {
        ts_error("api", "event=start_failed err=\"%s\"", err);
        return 1;
    }
    while (!stop)
        pause();
    ts_info("api", "event=draining");
    ts_http_stop(http);
    ts_info("api", "event=stopped");
    return 0;
}
