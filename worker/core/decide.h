/* SPDX-License-Identifier: Apache-2.0 */
/* decide.h — the worker's decisions, apart from the database, Kafka and the
 * clock: which outcome each command of a batch has, and which rows make it
 * so.
 *
 * A batch's transaction loads what its commands touch — the events they
 * name; the registrations of the (event, user) pairs they name, each with
 * its cancel-token digest and the command that made it; the command ids
 * processed before, with their first outcome and request digest — hands it
 * to a ts_decider, and has the commands decided in offset order at a time
 * it passes in. The decider answers every command (its ts_reply) and lists
 * the rows to write, in the order they must be written. It does no I/O and
 * reads no clock: the unit tests drive it with plain values, and a new rule
 * is a change here and in tests/unit/test_decide.c.
 *
 * The rules, in the original service's order:
 *   register  the event is unknown (EVENT_NOT_FOUND); it starts at or
 *             before now (PAST_EVENT); the person holds a seat already
 *             (ALREADY_REGISTERED, with their user id); every seat is
 *             taken (EVENT_FULL); else REGISTERED, in seat registered + 1.
 *   cancel    no such registration (REGISTRATION_NOT_FOUND); a token
 *             digest that is not the registration's (FORBIDDEN); else
 *             CANCELLED: the last seat moves into the hole, so seats stay
 *             1..registered.
 *   create    the event exists (INVALID, "Event already exists"); else
 *             CREATED.
 *   a command id seen before, stored or earlier in the batch, is answered
 *             with its first outcome and changes nothing, unless both
 *             carry a request digest and they differ: then
 *             IDEMPOTENCY_KEY_REUSED, telling nothing of the first
 *             outcome. A registration retried with its request digest and
 *             a new cancel token gives its registration that token, if the
 *             registration is still the one that command made.
 *
 * Lookups skipped. apply.c first tries a batch without the stored
 * registrations and command ids (its optimistic batches): a stored row the
 * decider was not told of then makes an insert fail, and the batch is
 * decided again with them. Two refusals that a stored registration would
 * turn into something else cannot be made so: EVENT_FULL (it may be
 * ALREADY_REGISTERED) and REGISTRATION_NOT_FOUND for an event that exists
 * (it may be CANCELLED). ts_decide() then answers TS_DECIDE_NEEDS_LOOKUPS.
 *
 * Not thread-safe: one decider per applier. */
#ifndef TS_DECIDE_H
#define TS_DECIDE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ts_codec.h"

/* One message of a batch. Messages that did not decode or broke a rule
 * (skip = true) still count for the offset but are not decided. */
typedef struct ts_batch_item {
    int32_t partition;
    int64_t offset;
    bool skip;
    ts_command cmd;
    char user_id[TS_UUID_LEN + 1]; /* a registration's: of its email, set by the caller */
    ts_reply reply;                /* filled by ts_decide */
    bool replayed; /* seen before: reply is its first outcome, or IDEMPOTENCY_KEY_REUSED */
} ts_batch_item;

/* What the database holds, as loaded for a batch. Strings are copied. */
typedef struct ts_stored_event {
    const char *id;
    int64_t capacity;
    int64_t registered;
    int64_t starts_at_ms;
} ts_stored_event;

typedef struct ts_stored_registration {
    const char *event_id;
    const char *user_id;
    const char *command_id; /* the command that made it */
    ts_digest cancel_token; /* the digest of its cancel token; absent: none was issued */
} ts_stored_registration;

typedef struct ts_stored_command {
    const char *command_id;
    ts_outcome outcome;  /* its first outcome */
    const char *user_id; /* "" for none */
    const char *message; /* "" for none */
    int64_t applied_at_ms;
    ts_digest request; /* the request behind an idempotency key's command id */
} ts_stored_command;

/* The rows a batch writes. Pointers point into the items passed to
 * ts_decider_begin() and into the decider: valid until the next
 * ts_decider_begin(). */

/* A new event: its create command. */
typedef struct ts_row_event {
    const ts_batch_item *item;
} ts_row_event;

typedef struct ts_row_user {
    const char *id;
    const char *email;
} ts_row_user;

typedef struct ts_row_registration {
    const ts_batch_item *item; /* its event, user id, name and command id */
    int32_t seat;
    int32_t capacity;              /* the event's */
    const ts_digest *cancel_token; /* the item's, or a later retry's token */
} ts_row_registration;

/* A stored registration's new cancel token (the WHERE names the command). */
typedef struct ts_row_rotation {
    const char *event_id;
    const char *user_id;
    const char *command_id; /* the command that made the registration */
    const ts_digest *cancel_token;
} ts_row_rotation;

/* A registration to delete: the database knows which seat it frees, and
 * the registration in seat last_seat moves there. */
typedef struct ts_row_cancel {
    const char *event_id;
    const char *user_id;
    const ts_digest *token; /* the cancel's own: the delete checks it too */
    int32_t last_seat;      /* the event's registrations before the cancel */
} ts_row_cancel;

/* Registrations and rotations that go before a cancellation (or the end):
 * registrations[previous step's end .. registrations_end), the same for
 * rotations, then the cancellation if `cancels`. */
typedef struct ts_decided_step {
    size_t registrations_end;
    size_t rotations_end;
    bool cancels;
    ts_row_cancel cancel;
} ts_decided_step;

/* A command decided (not replayed): its command, reply, partition and
 * offset. */
typedef struct ts_row_processed {
    const ts_batch_item *item;
} ts_row_processed;

typedef struct ts_row_counter {
    const char *event_id;
    int32_t registered;
} ts_row_counter;

/* Write them in this order: events, users, each step (its registrations,
 * its rotations, its cancellation), processed commands, counters. Events
 * and users refer to nothing written in the batch; a step's rows may refer
 * to the ones before them; processed commands and counters come last. A
 * batch without cancellations has one step. */
typedef struct ts_decisions {
    const ts_row_event *events;
    size_t nevents;
    const ts_row_user *users; /* every registrant (an upsert) */
    size_t nusers;
    const ts_row_registration *registrations;
    size_t nregistrations;
    const ts_row_rotation *rotations;
    size_t nrotations;
    const ts_decided_step *steps;
    size_t nsteps;
    const ts_row_processed *processed;
    size_t nprocessed;
    const ts_row_counter *counters; /* every event whose count changed */
    size_t ncounters;
} ts_decisions;

typedef enum ts_decide_status {
    TS_DECIDE_OK = 0,
    TS_DECIDE_NEEDS_LOOKUPS, /* lookups skipped, and a refusal needs them */
} ts_decide_status;

typedef struct ts_decider ts_decider;

/* NULL when out of memory. ts_decider_free(NULL) is a no-op. */
ts_decider *ts_decider_new(void);
void ts_decider_free(ts_decider *d);

/* Starts a batch: items[order[0..n)] (items[0..n) when order is NULL), in
 * the order they are decided. Forgets the state and rows of the batch
 * before. `lookups_skipped`: no stored registrations or commands will be
 * added (see the top). The items and order must live until the decisions
 * are written. 0, or -1 when out of memory. */
int ts_decider_begin(ts_decider *d, ts_batch_item *items, const size_t *order, size_t n,
                     bool lookups_skipped);

/* The user id a register or cancel item is about; NULL for a create. */
const char *ts_decide_user_id(const ts_batch_item *it);

/* Whether the state must still say if this item's event is stored: true
 * the first time the batch names it for a command not seen before (the
 * event then counts as not stored until it is added). Call after the
 * stored commands are added, for every item in order: the answers list
 * each key once. */
bool ts_decider_wants_event(ts_decider *d, const ts_batch_item *it);

/* The same for the registration of this item's (event, user) pair: for a
 * registration or cancellation not seen before, and for a registration
 * seen before whose retry may give it a new token. */
bool ts_decider_wants_registration(ts_decider *d, const ts_batch_item *it);

/* The state: what is stored among the keys the batch names (a key it names
 * that is not added is not stored). Each returns 0, or -1 when more than
 * the batch's n of its kind are added. */
int ts_decider_add_command(ts_decider *d, const ts_stored_command *c);
int ts_decider_add_event(ts_decider *d, const ts_stored_event *e);
int ts_decider_add_registration(ts_decider *d, const ts_stored_registration *r);

/* Decides the batch's items in order at `now_ms`: fills every item's
 * reply and replayed flag (skipped items are left alone) and *out. On
 * TS_DECIDE_NEEDS_LOOKUPS the replies and rows are incomplete: begin the
 * batch again with the lookups. Once per ts_decider_begin(). */
ts_decide_status ts_decide(ts_decider *d, int64_t now_ms, ts_decisions *out);

#endif
