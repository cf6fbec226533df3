/* SPDX-License-Identifier: Apache-2.0 */
/* check.h — the fault matrix's checker: a burst's journal (burst.h)
 * against what PostgreSQL and the commands topic hold once the worker has
 * caught up.
 *
 * Definitions (per logical operation of the journal):
 *   acknowledged  its final answer was 2xx;
 *   stored        acknowledged, and its effect is in the database: a
 *                 created event with its title, a registration's row (or
 *                 its REGISTERED outcome followed by the client's own
 *                 acknowledged cancellation), a cancelled registration's
 *                 row gone;
 *   lost          acknowledged and not stored;
 *   doubled       applied more than once: a title on two events, two
 *                 commands of one registration or one cancellation in
 *                 processed_commands;
 *   mismatched    a final answer other than the stored outcome (e.g.
 *                 "Event is full" where the command stored REGISTERED), or
 *                 a refusal the stored state does not explain ("Event is
 *                 full" while, replaying the event's stored outcomes in
 *                 offset order, a seat was free);
 *   oversold      an event with more registrations than seats at any
 *                 point of that replay, or whose counter, replay and rows
 *                 disagree at the end;
 *   offsets_bad   a partition whose stored next_offset is not the topic's
 *                 end, plus the command ids in the topic and not in
 *                 processed_commands and the other way round;
 *   dead_letters  commands the worker put in the dead-letter topic. */
#ifndef TS_FAULTS_CHECK_H
#define TS_FAULTS_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "burst.h"
#include "harness.h"

typedef struct fc_result {
    long ops, acknowledged, stored, lost, doubled, mismatched, oversold, unanswered, errors;
    long offsets_bad, commands, processed;
    long dead_letters;   /* messages in the dead-letter topic: none expected */
    long restarts;       /* set by the caller: services that exited by themselves */
    long settle_ms;      /* from the end of the burst until the worker had caught up */
    char problems[4096]; /* the first problems found, one a line */
} fc_result;

/* Waits up to timeout_ms until every partition's stored next_offset equals
 * the commands topic's end, then checks the journal `ops` against the
 * database and the topic. Returns 0 when everything holds, else the
 * number of problems (see out->problems); -1 if the worker never caught up. */
int fc_check(it_env *env, const fb_op *ops, size_t n, int timeout_ms, fc_result *out);

/* Time to recover from a fault that ended at `at` (monotonic ms): until
 * the first acknowledgement of a write first sent at or after `at`. -1 if
 * no such write was acknowledged. */
long fc_recovery_ms(const fb_op *ops, size_t n, int64_t at);

/* The longest time between two consecutive acknowledgements of the burst
 * (by the time their answers were read): how long a fault stopped the
 * service from acknowledging anything, whenever it happened. */
long fc_longest_stall_ms(const fb_op *ops, size_t n);

/* Appends one JSON line describing a run of `fault` to `path` (nothing if
 * path is NULL or empty). */
void fc_record(const char *path, const char *fault, const fc_result *r, long recover_ms,
               long stall_ms, int faults_applied);

#endif
