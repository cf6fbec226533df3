/* SPDX-License-Identifier: Apache-2.0 */
/* ts_service.h — what each turnstile binary does first: answer --help,
 * read its configuration from the environment, and turn SIGTERM and SIGINT
 * into a flag its main loop watches (the loop then drains and exits 0). */
#ifndef TS_SERVICE_H
#define TS_SERVICE_H

#include <signal.h>

#include "ts_config.h"

/* Non-zero once SIGTERM or SIGINT has arrived. */
extern volatile sig_atomic_t ts_service_stop;

/* Returns 1 when the program should exit at once with *exit_code (after
 * --help: 0; on a bad configuration: 2, with the reason on stderr);
 * otherwise 0, with *cfg filled and the signals caught. `about` is the
 * paragraph --help prints before the configuration table. */
int ts_service_init(int argc, char **argv, const char *about, ts_config *cfg, int *exit_code);

#endif
