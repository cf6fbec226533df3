/* main.c — turnstile-worker: applies the commands of turnstile.commands to
 * PostgreSQL, one partition batch per transaction, and replies.
 * Configuration comes from the environment (see --help). SIGTERM or SIGINT
 * drains and exits 0. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "consumer.h"
#include "ts_config.h"
#include "ts_log.h"
#include "ts_statusd.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv) {
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: turnstile-worker\n\n"
               "Consumes commands from TS_TOPIC_PREFIX.commands, applies them to\n"
               "PostgreSQL and sends each outcome to the reply address in the command.\n\n");
        ts_config_usage(stdout);
        return 0;
    }
    ts_config cfg;
    char err[512];
    if (ts_config_load(&cfg, err, sizeof err)) {
        fprintf(stderr, "turnstile-worker: %s\n", err);
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    ts_worker *w = ts_worker_new(&cfg, err, sizeof err);
    if (!w) {
        ts_error("worker", "event=start_failed err=\"%s\"", err);
        return 1;
    }
    ts_statusd *status = NULL;
    if (cfg.worker_http_port > 0 &&
        !(status = ts_statusd_start(cfg.worker_http_port, ts_worker_metrics, w, err, sizeof err)))
        ts_warn("worker", "event=status_server_failed err=\"%s\"", err);
    int rc = ts_worker_run(w, &stop);
    ts_statusd_stop(status);
    ts_worker_free(w);
    ts_info("worker", "event=stopped");
    return rc ? 1 : 0;
}
