/* SPDX-License-Identifier: Apache-2.0 */
/* reads.h — the GET endpoints, answered from PostgreSQL directly. Each
 * libmicrohttpd thread has a connection of its own, opened on first use and
 * reopened after a failure. Thread-safe. */
#ifndef TS_READS_H
#define TS_READS_H

#include <jansson.h>
#include <stdbool.h>

#include "ts_config.h"

/* Each returns the HTTP status and sets *body (caller decrefs). A database
 * that cannot be reached is a 503. Out of memory is a 500 with *body NULL:
 * never a part of an answer (a list with rows missing).
 *
 * Every event carries its status ("scheduled" or "cancelled"); the
 * upcoming list holds scheduled events only.
 *
 * ts_read_event: the event with its counts; with its registrations (names,
 * emails), a page of them (`limit` from `offset`, oldest first) whose
 * place the body gives (registrations_limit, registrations_offset), only
 * when `attendees` (open mode, or an organizer key for the event). */
unsigned ts_read_event(const ts_config *cfg, const char *event_id, bool attendees, long limit,
                       long offset, json_t **body);
unsigned ts_read_upcoming(const ts_config *cfg, long limit, long offset, json_t **body);
unsigned ts_read_stats(const ts_config *cfg, const char *event_id, json_t **body);
/* An event's waitlist, a page of it (`limit` from `offset`) in line order:
 * [{user_id, name, email, position, joined_at}], position the 1-based
 * place in the whole line. 404 for no such event. */
unsigned ts_read_waitlist(const ts_config *cfg, const char *event_id, long limit, long offset,
                          json_t **body);
/* A processed command's outcome: 200 with it, or 404 when not applied. */
unsigned ts_read_command(const ts_config *cfg, const char *command_id, json_t **body);

#endif
