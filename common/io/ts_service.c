/* SPDX-License-Identifier: Apache-2.0 */
/* ts_service.c — see ts_service.h. */
#include "ts_service.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "ts_build.h"
#include "ts_log.h"

volatile sig_atomic_t ts_service_stop;
/* Lock-free, so that a signal handler may store it (C11 7.14.1.1). */
_Static_assert(ATOMIC_BOOL_LOCK_FREE == 2, "atomic_bool is lock-free");
static atomic_bool stopping;

static void on_signal(int sig) {
    (void)sig;
    ts_service_stop = 1;
    atomic_store(&stopping, true);
}

bool ts_service_stopping(void) {
    return atomic_load(&stopping);
}

int ts_service_init(int argc, char **argv, const char *about, ts_config *cfg, int *exit_code) {
    const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: %s\n(turnstile %s, commit %s)\n\n%s\n\n", name, ts_build_version(),
               ts_build_commit(), about);
        ts_config_usage(stdout);
        *exit_code = 0;
        return 1;
    }
    char err[512];
    if (ts_config_load(cfg, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", name, err);
        *exit_code = 2;
        return 1;
    }
    ts_info("service", "event=starting program=%s version=%s commit=%s", name, ts_build_version(),
            ts_build_commit());
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    return 0;
}
