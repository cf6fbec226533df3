/* SPDX-License-Identifier: Apache-2.0 */
/* decide.h — the worker's decisions, apart from the database, Kafka and the
 * clock: which outcome each command of a batch has, which rows make it so,
 * and which changes it publishes on the event stream.
 *
 * A batch's transaction loads what its commands touch — the events they
 * name; the seats of the (event, user) pairs they name (a registration, a
 * held seat or a place on the waitlist), each with its cancel-token digest
 * and the command that made it; the holds they name by id and the holds
 * that may expire during the batch; the head of each waitlist that may
 * move; the command ids processed before, with their first outcome —
 * hands it to a ts_decider, and has the commands decided in offset order.
 * Time inside a decision is the command's issue time (cmd.issued_at_ms),
 * never the worker's clock, so replaying a partition gives the same state.
 * The decider does no I/O: the unit tests drive it with plain values, and
 * a new rule is a change here and in tests/unit/test_decide.c.
 *
 * Seats. Registrations and held seats share an event's seats 1..taken
 * (taken = registered + held): a new one takes seat taken + 1, and one that
 * goes frees its seat, which the last seat moves into (the database knows
 * which seat a stored one has; see ts_decided_step). The waitlist has no
 * seats; a person's place in line is their rank in it.
 *
 * Before any command of an existing event is decided at time t, every hold
 * of the event with expires_at < t expires (in order of expiry, then hold
 * id). Whenever a seat frees — a cancellation, a hold released or expired,
 * a capacity raised — the oldest waitlisted people are promoted into the
 * free seats at once, while the event is scheduled.
 *
 * The rules (a refusal is the first that applies, in this order):
 *   create   the event exists (INVALID, "Event already exists"); else
 *            CREATED.
 *   register unknown event (EVENT_NOT_FOUND); cancelled (EVENT_CANCELLED);
 *            starts at or before t (PAST_EVENT); the person is registered
 *            (ALREADY_REGISTERED, with their user id), holds a seat
 *            (ALREADY_HELD), is waitlisted (ALREADY_WAITLISTED); every seat
 *            taken: WAITLISTED at position waitlisted + 1 when the command
 *            asks for the waitlist, else EVENT_FULL; else REGISTERED.
 *   cancel   a registration or a place on the waitlist (REGISTRATION_NOT_
 *            FOUND if neither); a token digest that is not its own
 *            (FORBIDDEN); else CANCELLED.
 *   hold     as register, but never waitlisted: HELD, its hold id the
 *            command id, expiring at t + ttl.
 *   confirm  unknown event (EVENT_NOT_FOUND); cancelled (EVENT_CANCELLED);
 *            no such hold of this event, or released (HOLD_NOT_FOUND);
 *            expired (HOLD_EXPIRED); confirmed before (ALREADY_REGISTERED);
 *            else REGISTERED: the held seat becomes a registration.
 *   release  unknown event; no such hold, or confirmed or released
 *            (HOLD_NOT_FOUND); expired (HOLD_EXPIRED); else RELEASED.
 *   expire   (the sweeper's) unknown event; HOLD_EXPIRED when the hold is
 *            expired at t (now or before), else HOLD_NOT_FOUND.
 *   update   unknown event; cancelled; a capacity below taken
 *            (CAPACITY_BELOW_TAKEN); else UPDATED.
 *   cancel event  unknown event; cancelled already (EVENT_CANCELLED); else
 *            CANCELLED.
 *   a command id seen before, stored or earlier in the batch, is answered
 *            with its first outcome and changes nothing, unless both
 *            carry a request digest and they differ: then
 *            IDEMPOTENCY_KEY_REUSED, telling nothing of the first
 *            outcome. A registration (or confirmation) retried with its
 *            request digest and a new cancel token gives its registration
 *            (or place on the waitlist) that token, if it is still the one
 *            that command made.
 *
 * Lookups skipped. apply.c first tries a batch of creates, registrations
 * and holds without the stored seats and command ids (its optimistic
 * batches): a stored row the decider was not told of then makes an insert
 * fail, and the batch is decided again with them. A refusal or a waitlist
 * place that a stored seat would turn into something else cannot be made
 * so (EVENT_FULL, WAITLISTED, and any decision on an event with a
 * waitlist): ts_decide() then answers TS_DECIDE_NEEDS_LOOKUPS.
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
    char user_id[TS_UUID_LEN + 1]; /* register, hold: of the email, set by the caller */
    ts_reply reply;                /* filled by ts_decide */
    bool replayed; /* seen before: reply is its first outcome, or IDEMPOTENCY_KEY_REUSED */
    size_t first_change, nchanges; /* its changes: ts_decisions.changes[first .. + n) */
} ts_batch_item;

/* What the database holds, as loaded for a batch. Strings are copied. */
typedef struct ts_stored_event {
    const char *id;
    int64_t capacity;
    int64_t registered;
    int64_t starts_at_ms;
    int64_t held;
    int64_t waitlisted;
    bool cancelled;
    int64_t stream_seq;   /* the last change's sequence number */
    int64_t waitlist_seq; /* the last waitlist place's seq */
} ts_stored_event;

typedef enum ts_seat_kind {
    TS_SEAT_REGISTERED = 1,
    TS_SEAT_HELD,
    TS_SEAT_WAITLISTED,
} ts_seat_kind;

/* A pair's seat: a registration, a held seat (registrations.held) or a
 * place on the waitlist. */
typedef struct ts_stored_registration {
    const char *event_id;
    const char *user_id;
    const char *command_id; /* the command that made it */
    ts_digest cancel_token; /* the digest of its cancel token; absent: none was issued */
    ts_seat_kind kind;      /* 0 reads as TS_SEAT_REGISTERED */
    const char *hold_id;    /* held: its hold */
    int64_t seq;            /* waitlisted: its place's seq */
    int64_t position;       /* waitlisted: its place in line (1 = first) */
} ts_stored_registration;

typedef enum ts_hold_state {
    TS_HOLD_HELD = 1,
    TS_HOLD_CONFIRMED,
    TS_HOLD_RELEASED,
    TS_HOLD_EXPIRED,
} ts_hold_state;

typedef struct ts_stored_hold {
    const char *hold_id;
    const char *event_id;
    const char *user_id;
    ts_hold_state state;
    int64_t expires_at_ms;
} ts_stored_hold;

/* A place on a waitlist, loaded from the head of the line. */
typedef struct ts_stored_waiter {
    const char *event_id;
    const char *user_id;
    const char *name;
    const char *email;
    const char *command_id; /* the register command that joined */
    ts_digest cancel_token;
    int64_t seq;
} ts_stored_waiter;

typedef struct ts_stored_command {
    const char *command_id;
    ts_outcome outcome;  /* its first outcome */
    const char *user_id; /* "" for none */
    const char *message; /* "" for none */
    int64_t applied_at_ms;
    ts_digest request;     /* the request behind an idempotency key's command id */
    int64_t position;      /* 0 for none */
    const char *hold_id;   /* "" or NULL for none */
    int64_t expires_at_ms; /* 0 for none */
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

/* A seat taken: a registration, or a held seat. */
typedef struct ts_row_registration {
    const char *event_id;
    const char *user_id;
    const char *name;
    const char *command_id; /* the command that made it (a hold's: its hold id) */
    int32_t seat;
    int32_t capacity;              /* the event's */
    const ts_digest *cancel_token; /* the command's, or a later retry's token */
    bool held;
    const char *hold_id; /* held: its hold */
} ts_row_registration;

/* A stored registration's (or place on the waitlist's) new cancel token
 * (the WHERE names the command). */
typedef struct ts_row_rotation {
    const char *event_id;
    const char *user_id;
    const char *command_id; /* the command that made the registration */
    const ts_digest *cancel_token;
} ts_row_rotation;

/* A seat to free (a registration cancelled, a hold released or expired):
 * the database knows which seat it is, and the seat last_seat moves there. */
typedef struct ts_row_cancel {
    const char *event_id;
    const char *user_id;
    const ts_digest *token; /* the cancel's own: the delete checks it too */
    int32_t last_seat;      /* the event's seats taken before */
} ts_row_cancel;

/* A held seat that becomes a registration, by the command confirming it. */
typedef struct ts_row_confirm {
    const char *event_id;
    const char *user_id;
    const char *hold_id;
    const char *command_id; /* the confirming command: the registration's from now on */
    const ts_digest *cancel_token;
} ts_row_confirm;

/* An event's new capacity, with its counters at that point. */
typedef struct ts_row_capacity {
    const char *event_id;
    int32_t capacity;
    int32_t registered;
    int32_t held;
} ts_row_capacity;

typedef enum ts_step_end {
    TS_STEP_END = 0,  /* the last step */
    TS_STEP_FREE,     /* .cancel */
    TS_STEP_CONFIRM,  /* .confirm */
    TS_STEP_CAPACITY, /* .capacity */
} ts_step_end;

/* Registrations and rotations that go before a row that must come after
 * them (or the end): registrations[previous step's end ..
 * registrations_end), the same for rotations, then the step's own row. */
typedef struct ts_decided_step {
    size_t registrations_end;
    size_t rotations_end;
    ts_step_end ends_with;
    union {
        ts_row_cancel cancel;
        ts_row_confirm confirm;
        ts_row_capacity capacity;
    } u;
} ts_decided_step;

/* A place on the waitlist that leaves it (promoted or cancelled). */
typedef struct ts_row_unwait {
    const char *event_id;
    const char *user_id;
} ts_row_unwait;

/* A place on the waitlist taken in this batch and still held at its end. */
typedef struct ts_row_wait {
    const char *event_id;
    const char *user_id;
    const char *name;
    const char *email;
    int64_t seq;
    const char *command_id;
    const ts_digest *cancel_token;
} ts_row_wait;

/* A hold as it is at the end of the batch: new ones inserted, stored ones
 * given their new state. */
typedef struct ts_row_hold {
    const char *hold_id;
    const char *event_id;
    const char *user_id;
    int64_t expires_at_ms;
    ts_hold_state state;
} ts_row_hold;

/* A command decided (not replayed): its command, reply, partition, offset
 * and changes. */
typedef struct ts_row_processed {
    const ts_batch_item *item;
} ts_row_processed;

/* An event as it is at the end of the batch: every event that changed. */
typedef struct ts_row_counter {
    const char *event_id;
    int32_t registered;
    int32_t held;
    int32_t waitlisted;
    int64_t stream_seq;
    int64_t waitlist_seq;
    bool cancelled;
    /* the fields updates set (NULL, false: unchanged; description "": none) */
    const char *title, *description, *location;
    bool has_starts_at;
    int64_t starts_at_ms;
} ts_row_counter;

/* Write them in this order: events, users, each step (its registrations,
 * its rotations, its own row), new tokens of stored places on waitlists,
 * places that leave waitlists, places that join them, holds, processed
 * commands, counters. Events and users refer
 * to nothing written in the batch; a step's rows may refer to the ones
 * before them; the rest come last. */
typedef struct ts_decisions {
    const ts_row_event *events;
    size_t nevents;
    const ts_row_user *users; /* every registrant, holder and waitlisted person (an upsert) */
    size_t nusers;
    const ts_row_registration *registrations;
    size_t nregistrations;
    const ts_row_rotation *rotations;
    size_t nrotations;
    const ts_decided_step *steps;
    size_t nsteps;
    const ts_row_rotation *wait_rotations; /* stored places on waitlists */
    size_t nwait_rotations;
    const ts_row_unwait *unwaits;
    size_t nunwaits;
    const ts_row_wait *waits;
    size_t nwaits;
    const ts_row_hold *holds;
    size_t nholds;
    const ts_row_processed *processed;
    size_t nprocessed;
    const ts_row_counter *counters;
    size_t ncounters;
    const ts_change *changes; /* in order; per event, by sequence number */
    size_t nchanges;
} ts_decisions;

typedef enum ts_decide_status {
    TS_DECIDE_OK = 0,
    TS_DECIDE_NEEDS_LOOKUPS, /* lookups skipped, and a decision needs them */
    TS_DECIDE_NO_MEMORY,
} ts_decide_status;

typedef struct ts_decider ts_decider;

/* NULL when out of memory. ts_decider_free(NULL) is a no-op. */
ts_decider *ts_decider_new(void);
void ts_decider_free(ts_decider *d);

/* Starts a batch: items[order[0..n)] (items[0..n) when order is NULL), in
 * the order they are decided. Forgets the state and rows of the batch
 * before. `lookups_skipped`: no stored seats or commands will be added
 * (see the top). The items and order must live until the decisions are
 * written. 0, or -1 when out of memory. */
int ts_decider_begin(ts_decider *d, ts_batch_item *items, const size_t *order, size_t n,
                     bool lookups_skipped);

/* The user id a register, hold or cancel item is about; NULL otherwise. */
const char *ts_decide_user_id(const ts_batch_item *it);

/* The loading, in this order; each step's answers list each key once.
 *
 * 1. ts_decider_add_command() for the stored commands among the batch's.
 * 2. For every item, ts_decider_wants_event(): whether the state must
 *    still say if its event is stored (the event then counts as not
 *    stored until it is added); ts_decider_add_event() for those stored.
 * 3. For every item, ts_decider_wants_registration(): the same for the
 *    seat of its (event, user) pair (a register, hold or cancel not seen
 *    before, or a registration whose retry may give it a new token), and
 *    ts_decider_wants_hold(): for the hold a confirm, release or expire
 *    names. ts_decider_add_registration(), ts_decider_add_hold().
 * 4. ts_decider_expiring(): the events whose holds may expire during the
 *    batch, with the time before which they expire; ts_decider_add_hold()
 *    for each of their holds still held that expires before then.
 * 5. ts_decider_waitlist_wanted(): the events whose waitlist may move, and
 *    how many of its first places the batch may need; ts_decider_add_
 *    waiter() for those places, in seq order.
 *
 * Each add_* returns 0, or -1 when out of memory. */
bool ts_decider_wants_event(ts_decider *d, const ts_batch_item *it);
bool ts_decider_wants_registration(ts_decider *d, const ts_batch_item *it);
/* Whether an event the state holds has anyone on its waitlist: if none
 * has, no pair's seat can be a place on a waitlist (apply.c looks only at
 * registrations then). After the events are added. */
bool ts_decider_has_waitlists(const ts_decider *d);
/* The user of the pair wants_registration() asked for: a confirmation's is
 * its first outcome's. */
const char *ts_decider_pair_user(const ts_decider *d, const ts_batch_item *it);
bool ts_decider_wants_hold(ts_decider *d, const ts_batch_item *it);
/* *cursor starts at 0; false when there are no more. */
bool ts_decider_expiring(ts_decider *d, size_t *cursor, const char **event_id, int64_t *before_ms);
bool ts_decider_waitlist_wanted(ts_decider *d, size_t *cursor, const char **event_id,
                                int64_t *limit);

int ts_decider_add_command(ts_decider *d, const ts_stored_command *c);
int ts_decider_add_event(ts_decider *d, const ts_stored_event *e);
int ts_decider_add_registration(ts_decider *d, const ts_stored_registration *r);
int ts_decider_add_hold(ts_decider *d, const ts_stored_hold *h);
int ts_decider_add_waiter(ts_decider *d, const ts_stored_waiter *w);

/* Decides the batch's items in order: fills every item's reply, replayed
 * flag and changes (skipped items are left alone) and *out; applied_at is
 * `now_ms`. On TS_DECIDE_NEEDS_LOOKUPS the replies and rows are
 * incomplete: begin the batch again with the lookups. Once per
 * ts_decider_begin(). */
ts_decide_status ts_decide(ts_decider *d, int64_t now_ms, ts_decisions *out);

#endif
