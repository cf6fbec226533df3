/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of worker/core/decide.c, the worker's decisions: every rule and its
 * order, replays, idempotency keys, cancel tokens and their rotation, seats
 * and the steps rows are written in; then thousands of random command
 * sequences, cut into random batches and decided as apply.c does (lookups
 * skipped first, then with them), against a serial reference model written
 * here on its own: every outcome and the final state must agree. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "decide.h"

#define NOW 1800000000000LL
#define FUTURE (NOW + 86400000LL)

enum { K_EVENT = 1, K_USER = 2, K_COMMAND = 3 };

/* Readable UUIDs: kind, then number. */
static void uuid_of(char *out, unsigned kind, unsigned n) {
    snprintf(out, TS_UUID_LEN + 1, "%08x-0000-4000-8000-%012x", kind, n);
}

static unsigned uuid_number(const char *uuid) {
    return (unsigned)strtoul(uuid + 24, NULL, 16);
}

static ts_digest digest(unsigned v) {
    ts_digest d = {.present = true};
    for (int i = 0; i < TS_SHA256_LEN; i++)
        d.bytes[i] = (uint8_t)(v >> (8 * (i % 4)));
    return d;
}

static const ts_digest none;

static unsigned commands_made;

static ts_batch_item item(ts_command_type type, unsigned event) {
    ts_batch_item it = {.cmd.type = type};
    uuid_of(it.cmd.command_id, K_COMMAND, ++commands_made);
    uuid_of(it.cmd.event_id, K_EVENT, event);
    return it;
}

static ts_batch_item create(unsigned event, int64_t capacity, int64_t starts_at_ms) {
    ts_batch_item it = item(TS_CMD_CREATE_EVENT, event);
    snprintf(it.cmd.u.create.title, sizeof it.cmd.u.create.title, "Event %u", event);
    snprintf(it.cmd.u.create.location, sizeof it.cmd.u.create.location, "Hall");
    it.cmd.u.create.capacity = capacity;
    it.cmd.u.create.starts_at_ms = starts_at_ms;
    return it;
}

static ts_batch_item reg(unsigned event, unsigned user) {
    ts_batch_item it = item(TS_CMD_REGISTER, event);
    snprintf(it.cmd.u.reg.name, sizeof it.cmd.u.reg.name, "Person %u", user);
    snprintf(it.cmd.u.reg.email, sizeof it.cmd.u.reg.email, "p%u@example.org", user);
    uuid_of(it.user_id, K_USER, user);
    return it;
}

static ts_batch_item cancel(unsigned event, unsigned user) {
    ts_batch_item it = item(TS_CMD_CANCEL, event);
    uuid_of(it.cmd.u.cancel.user_id, K_USER, user);
    return it;
}

static void stored_event(ts_decider *d, unsigned event, int64_t capacity, int64_t registered,
                         int64_t starts_at_ms) {
    char id[TS_UUID_LEN + 1];
    uuid_of(id, K_EVENT, event);
    const ts_stored_event e = {id, capacity, registered, starts_at_ms};
    assert_int_equal(ts_decider_add_event(d, &e), 0);
}

static void stored_registration(ts_decider *d, unsigned event, unsigned user,
                                const char *command_id, ts_digest token) {
    char e[TS_UUID_LEN + 1], u[TS_UUID_LEN + 1];
    uuid_of(e, K_EVENT, event);
    uuid_of(u, K_USER, user);
    const ts_stored_registration r = {e, u, command_id, token};
    assert_int_equal(ts_decider_add_registration(d, &r), 0);
}

/* Decides items[0..n) (a fresh batch) with the state the caller adds in
 * `add`, expecting `expect`. */
typedef void (*state_fn)(ts_decider *d);

static ts_decisions decide(ts_decider *d, ts_batch_item *items, size_t n, bool lookups_skipped,
                           state_fn add, ts_decide_status expect) {
    ts_decisions out = {0};
    assert_int_equal(ts_decider_begin(d, items, NULL, n, lookups_skipped), 0);
    if (add)
        add(d);
    assert_int_equal(ts_decide(d, NOW, &out), expect);
    return out;
}

static int setup(void **state) {
    *state = ts_decider_new();
    return *state ? 0 : -1;
}

static int teardown(void **state) {
    ts_decider_free(*state);
    return 0;
}

/* ------------------------------------------------------------ the rules */

static void open_event(ts_decider *d) {
    stored_event(d, 1, 2, 0, FUTURE);
}
static void past_full_event(ts_decider *d) {
    stored_event(d, 1, 1, 1, NOW - 1);
}
static void full_event_with_person_7(ts_decider *d) {
    stored_event(d, 1, 1, 1, FUTURE);
    stored_registration(d, 1, 7, "00000000-0000-4000-8000-000000000abc", none);
}
static void full_event(ts_decider *d) {
    stored_event(d, 1, 1, 1, FUTURE);
}

static void registrations_are_checked_in_the_original_order(void **state) {
    ts_decider *d = *state;
    ts_batch_item it = reg(1, 7);
    decide(d, &it, 1, false, NULL, TS_DECIDE_OK);
    assert_int_equal(it.reply.outcome, TS_OUT_EVENT_NOT_FOUND);
    it = reg(1, 7);
    decide(d, &it, 1, false, past_full_event, TS_DECIDE_OK); /* past before full */
    assert_int_equal(it.reply.outcome, TS_OUT_PAST_EVENT);
    it = reg(1, 7);
    decide(d, &it, 1, false, full_event_with_person_7, TS_DECIDE_OK); /* already before full */
    assert_int_equal(it.reply.outcome, TS_OUT_ALREADY_REGISTERED);
    it = reg(1, 7);
    decide(d, &it, 1, false, full_event, TS_DECIDE_OK);
    assert_int_equal(it.reply.outcome, TS_OUT_EVENT_FULL);
    it = reg(1, 7);
    ts_decisions out = decide(d, &it, 1, false, open_event, TS_DECIDE_OK);
    assert_int_equal(it.reply.outcome, TS_OUT_REGISTERED);
    assert_int_equal(out.nregistrations, 1);
    assert_int_equal(out.registrations[0].seat, 1);
}

static void event_starting_now(ts_decider *d) {
    stored_event(d, 1, 5, 0, NOW);
}

static void an_event_starting_now_is_past(void **state) {
    ts_batch_item it = reg(1, 1);
    decide(*state, &it, 1, false, event_starting_now, TS_DECIDE_OK);
    assert_int_equal(it.reply.outcome, TS_OUT_PAST_EVENT);
}

static void refusals_carry_the_original_messages_and_only_a_duplicate_its_user(void **state) {
    ts_batch_item items[] = {reg(1, 7), reg(1, 8), reg(2, 3)};
    decide(*state, items, 3, false, full_event_with_person_7, TS_DECIDE_OK);
    assert_string_equal(items[0].reply.message, "User already registered");
    assert_string_equal(items[0].reply.user_id, items[0].user_id);
    assert_string_equal(items[1].reply.message, "Event is full");
    assert_string_equal(items[1].reply.user_id, "");
    assert_string_equal(items[2].reply.message, "Event not found");
    assert_string_equal(items[2].reply.user_id, "");
    assert_string_equal(ts_outcome_message(TS_OUT_PAST_EVENT), "Cannot register for past events");
}

static void the_last_seat_is_taken_and_no_more(void **state) {
    ts_batch_item items[] = {reg(1, 1), reg(1, 2), reg(1, 3)};
    ts_decisions out = decide(*state, items, 3, false, open_event, TS_DECIDE_OK);
    assert_int_equal(items[0].reply.outcome, TS_OUT_REGISTERED);
    assert_int_equal(items[1].reply.outcome, TS_OUT_REGISTERED);
    assert_int_equal(items[2].reply.outcome, TS_OUT_EVENT_FULL);
    assert_int_equal(out.nregistrations, 2);
    assert_int_equal(out.registrations[1].seat, 2);
    assert_int_equal(out.registrations[1].capacity, 2);
    assert_int_equal(out.nusers, 2);
    assert_int_equal(out.nprocessed, 3); /* refusals are recorded too */
    assert_int_equal(out.ncounters, 1);
    assert_int_equal(out.counters[0].registered, 2);
}

static void an_event_is_created_once_and_registrations_follow_it(void **state) {
    ts_batch_item items[] = {reg(1, 1), create(1, 3, FUTURE), reg(1, 1), create(1, 9, FUTURE)};
    ts_decisions out = decide(*state, items, 4, false, NULL, TS_DECIDE_OK);
    assert_int_equal(items[0].reply.outcome, TS_OUT_EVENT_NOT_FOUND);
    assert_int_equal(items[1].reply.outcome, TS_OUT_CREATED);
    assert_int_equal(items[2].reply.outcome, TS_OUT_REGISTERED);
    assert_int_equal(items[3].reply.outcome, TS_OUT_INVALID);
    assert_string_equal(items[3].reply.message, "Event already exists");
    assert_int_equal(out.nevents, 1);
    assert_ptr_equal(out.events[0].item, &items[1]);
    assert_int_equal(out.registrations[0].capacity, 3);
}

/* ------------------------------------------------------------ replays */

static ts_stored_command first_outcome;

static void stored_first_outcome(ts_decider *d) {
    open_event(d);
    assert_int_equal(ts_decider_add_command(d, &first_outcome), 0);
}

static void a_stored_command_is_answered_with_its_first_outcome_and_writes_nothing(void **state) {
    ts_batch_item it = reg(1, 1);
    first_outcome = (ts_stored_command){it.cmd.command_id, TS_OUT_EVENT_FULL, "",
                                        "Event is full",   NOW - 5000,        none};
    ts_decisions out = decide(*state, &it, 1, false, stored_first_outcome, TS_DECIDE_OK);
    assert_true(it.replayed);
    assert_int_equal(it.reply.outcome, TS_OUT_EVENT_FULL); /* though a seat is free now */
    assert_string_equal(it.reply.message, "Event is full");
    assert_int_equal(it.reply.applied_at_ms, NOW - 5000);
    assert_string_equal(it.reply.command_id, it.cmd.command_id);
    assert_int_equal(out.nregistrations + out.nprocessed + out.ncounters + out.nusers, 0);
}

static void a_command_twice_in_a_batch_is_decided_once(void **state) {
    ts_batch_item items[] = {reg(1, 1), reg(1, 2), reg(1, 3)};
    items[2] = items[0];
    ts_decisions out = decide(*state, items, 3, false, open_event, TS_DECIDE_OK);
    assert_false(items[0].replayed);
    assert_true(items[2].replayed);
    assert_int_equal(items[2].reply.outcome, TS_OUT_REGISTERED);
    assert_string_equal(items[2].reply.user_id, items[0].user_id);
    assert_int_equal(out.nregistrations, 2);
    assert_int_equal(out.nprocessed, 2);
    assert_int_equal(out.counters[0].registered, 2);
}

static void stored_with_request(ts_decider *d) {
    open_event(d);
    first_outcome.request = digest(1);
    assert_int_equal(ts_decider_add_command(d, &first_outcome), 0);
}

static void a_command_id_with_another_request_is_refused_and_tells_nothing(void **state) {
    ts_decider *d = *state;
    /* against a stored command */
    ts_batch_item it = reg(1, 1);
    it.cmd.request_sha256 = digest(2);
    first_outcome =
        (ts_stored_command){it.cmd.command_id, TS_OUT_REGISTERED, it.user_id, "", NOW - 5000, none};
    ts_decisions out = decide(d, &it, 1, false, stored_with_request, TS_DECIDE_OK);
    assert_true(it.replayed);
    assert_int_equal(it.reply.outcome, TS_OUT_IDEMPOTENCY_KEY_REUSED);
    assert_string_equal(it.reply.user_id, "");
    assert_int_equal(out.nprocessed, 0);
    /* against one earlier in the batch; a copy without a digest is the same request */
    ts_batch_item items[] = {reg(1, 1), reg(1, 2), reg(1, 3)};
    items[0].cmd.request_sha256 = digest(1);
    strcpy(items[1].cmd.command_id, items[0].cmd.command_id);
    items[1].cmd.request_sha256 = digest(2);
    strcpy(items[2].cmd.command_id, items[0].cmd.command_id);
    out = decide(d, items, 3, false, open_event, TS_DECIDE_OK);
    assert_int_equal(items[0].reply.outcome, TS_OUT_REGISTERED);
    assert_int_equal(items[1].reply.outcome, TS_OUT_IDEMPOTENCY_KEY_REUSED);
    assert_string_equal(items[1].reply.user_id, "");
    assert_int_equal(items[2].reply.outcome, TS_OUT_REGISTERED);
    assert_string_equal(items[2].reply.user_id, items[0].user_id);
    assert_int_equal(out.nregistrations, 1);
}

/* ------------------------------------------------------------ cancel tokens */

static void registered_with_token_5(ts_decider *d) {
    stored_event(d, 1, 2, 1, FUTURE);
    stored_registration(d, 1, 1, "00000000-0000-4000-8000-000000000abc", digest(5));
}

static void a_cancel_needs_the_registrations_token_when_it_names_one(void **state) {
    ts_decider *d = *state;
    ts_batch_item it = cancel(1, 1);
    it.cmd.u.cancel.token_sha256 = digest(6);
    ts_decisions out = decide(d, &it, 1, false, registered_with_token_5, TS_DECIDE_OK);
    assert_int_equal(it.reply.outcome, TS_OUT_FORBIDDEN);
    assert_string_equal(it.reply.message, "Invalid cancel token");
    assert_int_equal(out.nsteps, 1);
    assert_false(out.steps[0].cancels);
    assert_int_equal(out.ncounters, 0);

    it = cancel(1, 1);
    it.cmd.u.cancel.token_sha256 = digest(5);
    out = decide(d, &it, 1, false, registered_with_token_5, TS_DECIDE_OK);
    assert_int_equal(it.reply.outcome, TS_OUT_CANCELLED);
    assert_string_equal(it.reply.user_id, it.cmd.u.cancel.user_id);
    assert_int_equal(out.nsteps, 2);
    assert_true(out.steps[0].cancels);
    assert_int_equal(out.steps[0].cancel.last_seat, 1);
    assert_ptr_equal(out.steps[0].cancel.token, &it.cmd.u.cancel.token_sha256);
    assert_int_equal(out.counters[0].registered, 0);

    /* an organizer's cancel names no token; cancelling twice finds nothing */
    ts_batch_item twice[] = {cancel(1, 1), cancel(1, 1)};
    decide(d, twice, 2, false, registered_with_token_5, TS_DECIDE_OK);
    assert_int_equal(twice[0].reply.outcome, TS_OUT_CANCELLED);
    assert_int_equal(twice[1].reply.outcome, TS_OUT_REGISTRATION_NOT_FOUND);
    assert_string_equal(twice[1].reply.message, "Registration not found");
}

static void no_token_stored(ts_decider *d) {
    stored_event(d, 1, 2, 1, FUTURE);
    stored_registration(d, 1, 1, "00000000-0000-4000-8000-000000000abc", none);
}

static void a_token_cannot_cancel_a_registration_that_has_none(void **state) {
    ts_batch_item it = cancel(1, 1);
    it.cmd.u.cancel.token_sha256 = digest(5);
    decide(*state, &it, 1, false, no_token_stored, TS_DECIDE_OK);
    assert_int_equal(it.reply.outcome, TS_OUT_FORBIDDEN);
}

static ts_batch_item retried;

static void retried_registration_stored(ts_decider *d) {
    stored_event(d, 1, 2, 1, FUTURE);
    stored_registration(d, 1, 1, retried.cmd.command_id, digest(5));
    const ts_stored_command c = {
        retried.cmd.command_id,    TS_OUT_REGISTERED, retried.user_id, "", NOW - 1000,
        retried.cmd.request_sha256};
    assert_int_equal(ts_decider_add_command(d, &c), 0);
}

static void a_retried_registration_gets_the_retrys_token(void **state) {
    ts_decider *d = *state;
    retried = reg(1, 1);
    retried.cmd.request_sha256 = digest(1);
    retried.cmd.u.reg.cancel_token_sha256 = digest(6);
    ts_batch_item items[] = {retried, cancel(1, 1)};
    items[1].cmd.u.cancel.token_sha256 = digest(6); /* the new token cancels */
    assert_int_equal(ts_decider_begin(d, items, NULL, 2, false), 0);
    const ts_stored_command first = {
        retried.cmd.command_id,    TS_OUT_REGISTERED, retried.user_id, "", NOW - 1000,
        retried.cmd.request_sha256};
    assert_int_equal(ts_decider_add_command(d, &first), 0);
    assert_false(ts_decider_wants_event(d, &items[0]));       /* a replay */
    assert_true(ts_decider_wants_registration(d, &items[0])); /* that may rotate */
    stored_event(d, 1, 2, 1, FUTURE);
    stored_registration(d, 1, 1, retried.cmd.command_id, digest(5));
    ts_decisions out;
    assert_int_equal(ts_decide(d, NOW, &out), TS_DECIDE_OK);
    assert_true(items[0].replayed);
    assert_int_equal(items[0].reply.outcome, TS_OUT_REGISTERED);
    assert_int_equal(items[0].reply.applied_at_ms, NOW - 1000);
    assert_int_equal(out.nrotations, 1);
    assert_string_equal(out.rotations[0].command_id, retried.cmd.command_id);
    assert_memory_equal(out.rotations[0].cancel_token->bytes, digest(6).bytes, TS_SHA256_LEN);
    assert_int_equal(out.steps[0].rotations_end, 1); /* before the cancel that needs it */
    assert_int_equal(items[1].reply.outcome, TS_OUT_CANCELLED);

    /* a registration another command made keeps its token */
    ts_batch_item other = retried;
    strcpy(other.cmd.command_id, "00000000-0000-4000-8000-00000000ffff");
    const ts_stored_command c = {other.cmd.command_id,    TS_OUT_REGISTERED, other.user_id, "", NOW,
                                 other.cmd.request_sha256};
    assert_int_equal(ts_decider_begin(d, &other, NULL, 1, false), 0);
    assert_int_equal(ts_decider_add_command(d, &c), 0);
    stored_event(d, 1, 2, 1, FUTURE);
    stored_registration(d, 1, 1, retried.cmd.command_id, digest(5));
    assert_int_equal(ts_decide(d, NOW, &out), TS_DECIDE_OK);
    assert_int_equal(other.reply.outcome, TS_OUT_REGISTERED);
    assert_int_equal(out.nrotations, 0);
}

static void a_retry_in_the_batch_that_registers_changes_the_row_not_a_rotation(void **state) {
    ts_batch_item items[3] = {reg(1, 1)};
    items[0].cmd.request_sha256 = digest(1);
    items[0].cmd.u.reg.cancel_token_sha256 = digest(5);
    items[1] = items[0];
    items[1].cmd.u.reg.cancel_token_sha256 = digest(6);
    items[2] = items[0];
    items[2].cmd.u.reg.cancel_token_sha256 = digest(7);
    ts_decisions out = decide(*state, items, 3, false, open_event, TS_DECIDE_OK);
    assert_int_equal(out.nregistrations, 1);
    assert_int_equal(out.nrotations, 0);
    assert_ptr_equal(out.registrations[0].cancel_token, &items[2].cmd.u.reg.cancel_token_sha256);
}

static void two_rotations_in_one_step_are_one_row(void **state) {
    retried = reg(1, 1);
    retried.cmd.request_sha256 = digest(1);
    retried.cmd.u.reg.cancel_token_sha256 = digest(6);
    ts_batch_item items[] = {retried, retried};
    items[1].cmd.u.reg.cancel_token_sha256 = digest(7);
    ts_decisions out = decide(*state, items, 2, false, retried_registration_stored, TS_DECIDE_OK);
    assert_int_equal(out.nrotations, 1);
    assert_ptr_equal(out.rotations[0].cancel_token, &items[1].cmd.u.reg.cancel_token_sha256);
}

/* ------------------------------------------------------------ seats and steps */

static void three_of_four_seats_taken(ts_decider *d) {
    stored_event(d, 1, 4, 3, FUTURE);
    for (unsigned u = 1; u <= 3; u++)
        stored_registration(d, 1, u, "00000000-0000-4000-8000-000000000abc", none);
}

/* Seat 4 is taken, freed (the cancel's seat is filled by seat 4), taken
 * again, and again: the same seat three times, which only steps allow. */
static void rows_come_in_steps_cut_by_each_cancellation(void **state) {
    ts_batch_item items[] = {reg(1, 4), cancel(1, 1), reg(1, 5), cancel(1, 5), reg(1, 1)};
    ts_decisions out = decide(*state, items, 5, false, three_of_four_seats_taken, TS_DECIDE_OK);
    for (int i = 0; i < 5; i++)
        assert_int_equal(items[i].reply.outcome, i % 2 ? TS_OUT_CANCELLED : TS_OUT_REGISTERED);
    assert_int_equal(out.nsteps, 3);
    assert_int_equal(out.nregistrations, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(out.steps[i].registrations_end, i + 1);
        assert_int_equal(out.registrations[i].seat, 4);
        assert_int_equal(out.steps[i].cancels, i < 2);
    }
    assert_int_equal(out.steps[0].cancel.last_seat, 4);
    assert_string_equal(out.steps[1].cancel.user_id, items[2].user_id);
    assert_int_equal(out.counters[0].registered, 4);
    assert_int_equal(out.nprocessed, 5);
}

static void lookups_skipped_full_or_a_missing_registration_needs_them(void **state) {
    ts_decider *d = *state;
    ts_batch_item it = reg(1, 1);
    decide(d, &it, 1, true, full_event, TS_DECIDE_NEEDS_LOOKUPS);
    it = cancel(1, 1);
    decide(d, &it, 1, true, open_event, TS_DECIDE_NEEDS_LOOKUPS);
    /* what no stored row can change is decided without them */
    ts_batch_item ok[] = {reg(2, 1), reg(1, 1), reg(1, 1), cancel(1, 1), cancel(3, 1)};
    decide(d, ok, 5, true, open_event, TS_DECIDE_OK);
    assert_int_equal(ok[0].reply.outcome, TS_OUT_EVENT_NOT_FOUND);
    assert_int_equal(ok[1].reply.outcome, TS_OUT_REGISTERED);
    assert_int_equal(ok[2].reply.outcome, TS_OUT_ALREADY_REGISTERED);
    assert_int_equal(ok[3].reply.outcome, TS_OUT_CANCELLED);
    assert_int_equal(ok[4].reply.outcome, TS_OUT_REGISTRATION_NOT_FOUND);
}

static void each_key_is_wanted_once_and_skipped_items_not_at_all(void **state) {
    ts_decider *d = *state;
    ts_batch_item items[] = {reg(1, 1), reg(1, 1), cancel(1, 1), create(2, 1, FUTURE), reg(3, 1)};
    items[4].skip = true;
    assert_int_equal(ts_decider_begin(d, items, NULL, 5, false), 0);
    bool ev[5], rg[5];
    for (int i = 0; i < 5; i++) {
        ev[i] = ts_decider_wants_event(d, &items[i]);
        rg[i] = ts_decider_wants_registration(d, &items[i]);
    }
    assert_true(ev[0] && !ev[1] && !ev[2] && ev[3] && !ev[4]);
    assert_true(rg[0] && !rg[1] && !rg[2] && !rg[3] && !rg[4]);
    assert_null(ts_decide_user_id(&items[3]));
}

static void the_state_takes_no_more_than_the_batch_names(void **state) {
    ts_decider *d = *state;
    ts_batch_item it = reg(1, 1);
    assert_int_equal(ts_decider_begin(d, &it, NULL, 1, false), 0);
    stored_event(d, 1, 1, 0, FUTURE);
    char id[TS_UUID_LEN + 1];
    uuid_of(id, K_EVENT, 2);
    const ts_stored_event e = {id, 1, 0, FUTURE};
    assert_int_equal(ts_decider_add_event(d, &e), -1);
}

/* ------------------------------------------------------------ the reference model */

/* The model knows nothing of batches, tables or rows: arrays indexed by
 * event and person, one command at a time. */
enum { EVENTS = 4, PEOPLE = 6, TOKENS = 4, MAX_COMMANDS = 160 };

typedef enum { GEN_CREATE, GEN_REGISTER, GEN_CANCEL } gen_kind;

/* A command as the generator makes it. */
typedef struct gen_command {
    gen_kind kind;
    unsigned id; /* command number: the same number is the same command id */
    unsigned event, person;
    unsigned token;   /* 0: none; a registration's, or the one a cancel shows */
    unsigned request; /* 0: no request digest */
    int64_t capacity, starts_at_ms;
    bool skip; /* a message that did not decode: not a command at all */
} gen_command;

typedef struct model {
    bool exists[EVENTS];
    int64_t capacity[EVENTS], starts_at_ms[EVENTS], registered[EVENTS];
    bool holds[EVENTS][PEOPLE];
    unsigned token[EVENTS][PEOPLE], made_by[EVENTS][PEOPLE];
    struct {
        unsigned id, request;
        ts_outcome outcome;
        int person; /* -1: no user in the answer */
    } done[MAX_COMMANDS];
    size_t ndone;
} model;

static ts_outcome model_apply(model *m, const gen_command *c, int64_t now_ms, int *person) {
    unsigned e = c->event, p = c->person;
    for (size_t i = 0; i < m->ndone; i++) {
        if (m->done[i].id != c->id)
            continue;
        if (c->request && m->done[i].request && c->request != m->done[i].request) {
            *person = -1;
            return TS_OUT_IDEMPOTENCY_KEY_REUSED;
        }
        if (c->kind == GEN_REGISTER && c->request && c->token &&
            m->done[i].outcome == TS_OUT_REGISTERED && m->holds[e][p] && m->made_by[e][p] == c->id)
            m->token[e][p] = c->token;
        *person = m->done[i].person;
        return m->done[i].outcome;
    }
    ts_outcome o;
    *person = -1;
    if (c->kind == GEN_CREATE) {
        o = m->exists[e] ? TS_OUT_INVALID : TS_OUT_CREATED;
        if (o == TS_OUT_CREATED) {
            m->exists[e] = true;
            m->capacity[e] = c->capacity;
            m->starts_at_ms[e] = c->starts_at_ms;
            m->registered[e] = 0;
        }
    } else if (c->kind == GEN_REGISTER) {
        if (!m->exists[e])
            o = TS_OUT_EVENT_NOT_FOUND;
        else if (m->starts_at_ms[e] <= now_ms)
            o = TS_OUT_PAST_EVENT;
        else if (m->holds[e][p])
            o = TS_OUT_ALREADY_REGISTERED;
        else if (m->registered[e] >= m->capacity[e])
            o = TS_OUT_EVENT_FULL;
        else
            o = TS_OUT_REGISTERED;
        if (o == TS_OUT_REGISTERED) {
            m->holds[e][p] = true;
            m->token[e][p] = c->token;
            m->made_by[e][p] = c->id;
            m->registered[e]++;
        }
        if (o == TS_OUT_REGISTERED || o == TS_OUT_ALREADY_REGISTERED)
            *person = (int)p;
    } else {
        if (!m->exists[e] || !m->holds[e][p])
            o = TS_OUT_REGISTRATION_NOT_FOUND;
        else if (c->token && c->token != m->token[e][p])
            o = TS_OUT_FORBIDDEN;
        else
            o = TS_OUT_CANCELLED;
        if (o == TS_OUT_CANCELLED) {
            m->holds[e][p] = false;
            m->registered[e]--;
            *person = (int)p;
        }
    }
    m->done[m->ndone].id = c->id;
    m->done[m->ndone].request = c->request;
    m->done[m->ndone].outcome = o;
    m->done[m->ndone].person = *person;
    m->ndone++;
    return o;
}

/* ------------------------------------------------------------ a database, in memory */

/* What PostgreSQL holds, with the constraints that matter here: a
 * registration per (event, person), seats unique and within capacity, the
 * cancel's delete with its token, a command id once. */
typedef struct db_registration {
    bool live;
    int32_t seat;
    ts_digest token;
    char command_id[TS_UUID_LEN + 1];
} db_registration;

typedef struct db_tables {
    bool exists[EVENTS];
    int64_t capacity[EVENTS], starts_at_ms[EVENTS], registered[EVENTS];
    db_registration regs[EVENTS][PEOPLE];
} db_tables;

typedef struct db {
    db_tables t;
    struct {
        char id[TS_UUID_LEN + 1];
        ts_outcome outcome;
        char user_id[TS_UUID_LEN + 1];
        char message[TS_MESSAGE_MAX + 1];
        int64_t applied_at_ms;
        ts_digest request;
    } commands[MAX_COMMANDS];
    size_t ncommands;
} db;

static char context[128]; /* the seed and sequence, for a failure's message */

static void db_check(bool ok, const char *what) {
    if (!ok)
        fail_msg("%s: the database refuses: %s", context, what);
}

static unsigned event_index(const char *id) {
    return uuid_number(id);
}

static int32_t live_count(const db *s, unsigned e) {
    int32_t n = 0;
    for (unsigned p = 0; p < PEOPLE; p++)
        n += s->t.regs[e][p].live;
    return n;
}

static void db_insert_registration(db *s, const ts_row_registration *r) {
    unsigned e = event_index(r->item->cmd.event_id), p = uuid_number(r->item->user_id);
    db_check(s->t.exists[e] && r->capacity == s->t.capacity[e],
             "a registration names an unknown event or another capacity");
    db_check(r->seat >= 1 && r->seat <= s->t.capacity[e], "a seat beyond the capacity");
    for (unsigned q = 0; q < PEOPLE; q++)
        db_check(!s->t.regs[e][q].live || s->t.regs[e][q].seat != r->seat, "a seat taken twice");
    db_registration *g = &s->t.regs[e][p];
    g->live = true;
    g->seat = r->seat;
    g->token = *r->cancel_token;
    snprintf(g->command_id, sizeof g->command_id, "%s", r->item->cmd.command_id);
}

static void db_rotate(db *s, const ts_row_rotation *r) {
    db_registration *g = &s->t.regs[event_index(r->event_id)][uuid_number(r->user_id)];
    db_check(g->live && strcmp(g->command_id, r->command_id) == 0,
             "a token given to no registration of that command");
    g->token = *r->cancel_token;
}

static void db_cancel(db *s, const ts_row_cancel *c) {
    unsigned e = event_index(c->event_id);
    db_registration *g = &s->t.regs[e][uuid_number(c->user_id)];
    db_check(g->live, "a cancellation deletes nothing");
    db_check(!c->token->present ||
                 (g->token.present && !memcmp(g->token.bytes, c->token->bytes, TS_SHA256_LEN)),
             "a cancel token that is not the registration's");
    db_check(c->last_seat == live_count(s, e),
             "a last seat that is not the count of registrations");
    int32_t freed = g->seat;
    g->live = false;
    if (freed == c->last_seat)
        return;
    bool moved = false;
    for (unsigned q = 0; q < PEOPLE; q++)
        if (s->t.regs[e][q].live && s->t.regs[e][q].seat == c->last_seat) {
            s->t.regs[e][q].seat = freed;
            moved = true;
        }
    db_check(moved, "no registration in the last seat");
}

/* Writes the decisions in their order. False, with nothing kept, when a
 * primary key objects (a stored row the decider was not told of). */
static bool db_write(db *s, const ts_decisions *dec, bool lookups_skipped) {
    db_tables before = s->t; /* a rollback: the tables, and the commands appended */
    size_t ncommands = s->ncommands;
    for (size_t i = 0; i < dec->nevents; i++) {
        const ts_command *c = &dec->events[i].item->cmd;
        unsigned e = event_index(c->event_id);
        db_check(!s->t.exists[e], "an event created twice");
        s->t.exists[e] = true;
        s->t.capacity[e] = c->u.create.capacity;
        s->t.starts_at_ms[e] = c->u.create.starts_at_ms;
        s->t.registered[e] = 0;
    }
    size_t r = 0, t = 0;
    for (size_t k = 0; k < dec->nsteps; k++) {
        const ts_decided_step *step = &dec->steps[k];
        for (; r < step->registrations_end; r++) {
            const ts_row_registration *row = &dec->registrations[r];
            if (s->t.regs[event_index(row->item->cmd.event_id)][uuid_number(row->item->user_id)]
                    .live) {
                if (!lookups_skipped)
                    fail_msg("%s: a registration that exists, with the lookups", context);
                s->t = before;
                s->ncommands = ncommands;
                return false;
            }
            db_insert_registration(s, row);
        }
        for (size_t first = t; t < step->rotations_end; t++) {
            for (size_t u = first; u < t; u++) /* one statement: each registration once */
                db_check(strcmp(dec->rotations[u].event_id, dec->rotations[t].event_id) ||
                             strcmp(dec->rotations[u].user_id, dec->rotations[t].user_id),
                         "a registration updated twice by one statement");
            db_rotate(s, &dec->rotations[t]);
        }
        if (step->cancels)
            db_cancel(s, &step->cancel);
    }
    db_check(r == dec->nregistrations && t == dec->nrotations, "rows outside every step");
    for (size_t i = 0; i < dec->nprocessed; i++) {
        const ts_batch_item *it = dec->processed[i].item;
        for (size_t j = 0; j < s->ncommands; j++)
            if (!strcmp(s->commands[j].id, it->cmd.command_id)) {
                if (!lookups_skipped)
                    fail_msg("%s: a command stored twice, with the lookups", context);
                s->t = before;
                s->ncommands = ncommands;
                return false;
            }
        db_check(s->ncommands < MAX_COMMANDS, "more commands than the test holds");
        s->commands[s->ncommands].outcome = it->reply.outcome;
        snprintf(s->commands[s->ncommands].id, TS_UUID_LEN + 1, "%s", it->cmd.command_id);
        snprintf(s->commands[s->ncommands].user_id, TS_UUID_LEN + 1, "%s", it->reply.user_id);
        snprintf(s->commands[s->ncommands].message, TS_MESSAGE_MAX + 1, "%s", it->reply.message);
        s->commands[s->ncommands].applied_at_ms = it->reply.applied_at_ms;
        s->commands[s->ncommands].request = it->cmd.request_sha256;
        s->ncommands++;
    }
    for (size_t i = 0; i < dec->ncounters; i++)
        s->t.registered[event_index(dec->counters[i].event_id)] = dec->counters[i].registered;
    for (unsigned e = 0; e < EVENTS; e++) /* the counters tell the truth */
        db_check(s->t.registered[e] == live_count(s, e),
                 "a counter that is not the count of registrations");
    return true;
}

/* The state the decider asks for, read from the database as apply.c reads it. */
static void db_load(db *s, ts_decider *d, ts_batch_item *items, size_t n, bool lookups_skipped) {
    if (!lookups_skipped)
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < s->ncommands && !items[i].skip; j++)
                if (!strcmp(s->commands[j].id, items[i].cmd.command_id)) {
                    const ts_stored_command c = {s->commands[j].id,
                                                 s->commands[j].outcome,
                                                 s->commands[j].user_id,
                                                 s->commands[j].message,
                                                 s->commands[j].applied_at_ms,
                                                 s->commands[j].request};
                    assert_int_equal(ts_decider_add_command(d, &c), 0);
                }
    for (size_t i = 0; i < n; i++) {
        unsigned e = event_index(items[i].cmd.event_id);
        if (ts_decider_wants_event(d, &items[i]) && s->t.exists[e]) {
            const ts_stored_event ev = {items[i].cmd.event_id, s->t.capacity[e], s->t.registered[e],
                                        s->t.starts_at_ms[e]};
            assert_int_equal(ts_decider_add_event(d, &ev), 0);
        }
    }
    if (lookups_skipped)
        return;
    for (size_t i = 0; i < n; i++) {
        const char *user = ts_decide_user_id(&items[i]);
        if (!ts_decider_wants_registration(d, &items[i]))
            continue;
        const db_registration *g =
            &s->t.regs[event_index(items[i].cmd.event_id)][uuid_number(user)];
        if (g->live) {
            const ts_stored_registration r = {items[i].cmd.event_id, user, g->command_id, g->token};
            assert_int_equal(ts_decider_add_registration(d, &r), 0);
        }
    }
}

/* ------------------------------------------------------------ random sequences */

static uint64_t rng_state;

static unsigned rnd(unsigned n) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return (unsigned)((z ^ (z >> 31)) % n);
}

static ts_batch_item to_item(const gen_command *g) {
    ts_batch_item it;
    if (g->kind == GEN_CREATE) {
        it = create(g->event, g->capacity, g->starts_at_ms);
    } else if (g->kind == GEN_REGISTER) {
        it = reg(g->event, g->person);
        it.cmd.u.reg.cancel_token_sha256 = g->token ? digest(g->token) : none;
    } else {
        it = cancel(g->event, g->person);
        it.cmd.u.cancel.token_sha256 = g->token ? digest(g->token) : none;
    }
    uuid_of(it.cmd.command_id, K_COMMAND, g->id);
    it.cmd.request_sha256 = g->request ? digest(1000 + g->request) : none;
    it.skip = g->skip;
    return it;
}

/* A sequence: a few events (some never created, some past or starting
 * during it), a small pool of people, creates, registrations with and
 * without tokens and request digests, cancels with no, the right or a
 * wrong token, and commands sent again: as they were, retried with a new
 * token, or reused for another request. */
static size_t generate(gen_command *cmds, size_t max, unsigned events, unsigned people,
                       const int64_t starts[EVENTS], const int64_t capacity[EVENTS]) {
    size_t n = 10 + rnd((unsigned)max - 10);
    unsigned ids = 0, requests = 0;
    for (size_t i = 0; i < n; i++) {
        gen_command *c = &cmds[i];
        unsigned r = rnd(100);
        if (r >= 82 && i > 0) { /* a command sent again */
            *c = cmds[rnd((unsigned)i)];
            unsigned how = rnd(4);
            if (c->skip) {
                c->id = 100000 + (unsigned)i;
            } else if (how == 1 && c->kind == GEN_REGISTER) { /* a retry: same request, new token */
                c->token = 1 + rnd(TOKENS);
            } else if (how == 2 && c->request) { /* the id reused for another request */
                c->person = rnd(people);
                c->request = ++requests;
            }
            continue;
        }
        memset(c, 0, sizeof *c);
        c->event = rnd(events);
        c->person = rnd(people);
        if (r < 5) {
            c->skip = true;
            c->kind = GEN_REGISTER;
            c->id = 100000 + (unsigned)i;
            continue;
        }
        if (r < 18) {
            c->kind = GEN_CREATE;
            c->capacity = capacity[c->event];
            c->starts_at_ms = starts[c->event];
        } else if (r < 60) {
            c->kind = GEN_REGISTER;
            c->token = rnd(TOKENS + 1);
            c->request = rnd(2) ? ++requests : 0;
        } else {
            c->kind = GEN_CANCEL;
            c->token = rnd(3) ? 0 : rnd(TOKENS + 1); /* none, the right one or a wrong one */
        }
        c->id = ++ids;
    }
    return n;
}

static void run_sequence(ts_decider *d, unsigned seed, int number) {
    static gen_command cmds[MAX_COMMANDS];
    static ts_batch_item items[MAX_COMMANDS];
    static db store;
    static model m;
    rng_state = seed;
    snprintf(context, sizeof context, "seed %u (sequence %d)", seed, number);
    memset(&store, 0, sizeof store);
    memset(&m, 0, sizeof m);
    unsigned events = 1 + rnd(EVENTS), people = 1 + rnd(PEOPLE);
    int64_t starts[EVENTS], capacity[EVENTS];
    for (unsigned e = 0; e < EVENTS; e++) {
        unsigned when = rnd(10);
        starts[e] = when < 7 ? FUTURE : when < 8 ? NOW - 1 : NOW + 1000 * (int64_t)rnd(40);
        capacity[e] = 1 + rnd(3);
    }
    size_t n = generate(cmds, 30 + rnd(MAX_COMMANDS - 30), events, people, starts, capacity);
    for (size_t i = 0; i < n; i++)
        items[i] = to_item(&cmds[i]);

    int64_t now = NOW;
    for (size_t first = 0; first < n;) {
        size_t count = 1 + rnd(8);
        if (count > n - first)
            count = n - first;
        ts_batch_item *batch = &items[first];
        bool skipped = rnd(2) == 0; /* either way first, as the pause allows */
        ts_decisions dec;
        for (;;) {
            assert_int_equal(ts_decider_begin(d, batch, NULL, count, skipped), 0);
            db_load(&store, d, batch, count, skipped);
            ts_decide_status st = ts_decide(d, now, &dec);
            if (st == TS_DECIDE_OK && db_write(&store, &dec, skipped))
                break;
            if (!skipped)
                fail_msg("%s: with the lookups, status %d", context, (int)st);
            skipped = false;
        }
        for (size_t i = first; i < first + count; i++) {
            if (cmds[i].skip)
                continue;
            int person;
            ts_outcome want = model_apply(&m, &cmds[i], now, &person);
            char user[TS_UUID_LEN + 1] = "";
            if (person >= 0)
                uuid_of(user, K_USER, (unsigned)person);
            if (items[i].reply.outcome != want || strcmp(items[i].reply.user_id, user) != 0)
                fail_msg("%s: command %zu (kind %d, id %u, event %u, person %u, token %u, "
                         "request %u): %s %s, the model says %s %s",
                         context, i, (int)cmds[i].kind, cmds[i].id, cmds[i].event, cmds[i].person,
                         cmds[i].token, cmds[i].request, ts_outcome_name(items[i].reply.outcome),
                         items[i].reply.user_id, ts_outcome_name(want), user);
        }
        first += count;
        now += 1000 * (int64_t)rnd(3);
    }
    /* the final state: counts, who holds a seat with which token, seats 1..n */
    for (unsigned e = 0; e < EVENTS; e++) {
        if (store.t.exists[e] != m.exists[e] || store.t.registered[e] != m.registered[e])
            fail_msg("%s: event %u holds %lld, the model %lld", context, e,
                     (long long)store.t.registered[e], (long long)m.registered[e]);
        bool seat_taken[4] = {false};
        for (unsigned p = 0; p < PEOPLE; p++) {
            const db_registration *g = &store.t.regs[e][p];
            if (g->live != m.holds[e][p])
                fail_msg("%s: person %u in event %u: %d, the model %d", context, p, e, g->live,
                         m.holds[e][p]);
            if (!g->live)
                continue;
            ts_digest want = m.token[e][p] ? digest(m.token[e][p]) : none;
            if (g->token.present != want.present ||
                memcmp(g->token.bytes, want.bytes, TS_SHA256_LEN) != 0)
                fail_msg("%s: person %u in event %u holds another token", context, p, e);
            if (g->seat < 1 || g->seat > store.t.registered[e] || seat_taken[g->seat])
                fail_msg("%s: event %u: seat %d of %lld", context, e, g->seat,
                         (long long)store.t.registered[e]);
            seat_taken[g->seat] = true;
        }
    }
}

static void random_sequences_give_the_outcomes_and_state_of_serial_application(void **state) {
    ts_decider *d = *state;
    const char *env = getenv("TS_TEST_SEED");
    unsigned base = env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL);
    print_message("random sequences: TS_TEST_SEED=%u\n", base);
    for (int i = 0; i < 4000; i++)
        run_sequence(d, base + (unsigned)i, i);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(registrations_are_checked_in_the_original_order),
        cmocka_unit_test(an_event_starting_now_is_past),
        cmocka_unit_test(refusals_carry_the_original_messages_and_only_a_duplicate_its_user),
        cmocka_unit_test(the_last_seat_is_taken_and_no_more),
        cmocka_unit_test(an_event_is_created_once_and_registrations_follow_it),
        cmocka_unit_test(a_stored_command_is_answered_with_its_first_outcome_and_writes_nothing),
        cmocka_unit_test(a_command_twice_in_a_batch_is_decided_once),
        cmocka_unit_test(a_command_id_with_another_request_is_refused_and_tells_nothing),
        cmocka_unit_test(a_cancel_needs_the_registrations_token_when_it_names_one),
        cmocka_unit_test(a_token_cannot_cancel_a_registration_that_has_none),
        cmocka_unit_test(a_retried_registration_gets_the_retrys_token),
        cmocka_unit_test(a_retry_in_the_batch_that_registers_changes_the_row_not_a_rotation),
        cmocka_unit_test(two_rotations_in_one_step_are_one_row),
        cmocka_unit_test(rows_come_in_steps_cut_by_each_cancellation),
        cmocka_unit_test(lookups_skipped_full_or_a_missing_registration_needs_them),
        cmocka_unit_test(each_key_is_wanted_once_and_skipped_items_not_at_all),
        cmocka_unit_test(the_state_takes_no_more_than_the_batch_names),
        cmocka_unit_test(random_sequences_give_the_outcomes_and_state_of_serial_application),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
