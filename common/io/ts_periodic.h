/* SPDX-License-Identifier: Apache-2.0 */
/* ts_periodic.h — a thread that runs one job again and again, with a pause
 * between two runs that the job chooses, until it is stopped: the worker's
 * hold sweeper and its retention job. */
#ifndef TS_PERIODIC_H
#define TS_PERIODIC_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ts_periodic ts_periodic;

/* One run of the job, on the thread `p`; returns how long to wait before
 * the next, in ms. */
typedef long (*ts_periodic_fn)(ts_periodic *p, void *arg);

/* Starts the thread, which runs `fn(p, arg)` at once and then after each
 * pause it returns. NULL with `err` set (no memory, no thread). */
ts_periodic *ts_periodic_start(ts_periodic_fn fn, void *arg, char *err, size_t errlen);

/* True once ts_periodic_stop() was called: for a long run to stop between
 * two steps. Thread-safe. */
bool ts_periodic_stopping(ts_periodic *p);

/* Ends the pause under way, or waits for the run under way to return;
 * joins the thread and frees. NULL is a no-op. */
void ts_periodic_stop(ts_periodic *p);

#endif
