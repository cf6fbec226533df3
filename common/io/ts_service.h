/* SPDX-License-Identifier: Apache-2.0 */
/* ts_service.h — what each turnstile binary does first: answer --help,
 * read its configuration from the environment, and turn SIGTERM and SIGINT
 * into a flag its main loop watches (the loop then drains and exits 0). */
#ifndef TS_SERVICE_H
#define TS_SERVICE_H

#include <signal.h>
#include <stdbool.h>

#include "ts_config.h"

/* Non-zero once SIGTERM or SIGINT has arrived. For the main thread's loop. */
extern volatile sig_atomic_t ts_service_stop;

/* The same, for any thread (a status server's /readyz): an atomic the
 * signal handler sets too. */
bool ts_service_stopping(void);

/* Returns 1 when the program should exit at once with *exit_code (after
 * --help: 0; on a bad configuration: 2, with the reason on stderr);
 * otherwise 0, with *cfg filled and the signals caught. `about` is the
 * paragraph --help prints before the configuration table. */
int ts_service_init(int argc, char **argv, const char *about, ts_config *cfg, int *exit_code);

#endif
