/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of worker/core/decide.c, the worker's decisions: every rule of
 * decide.h and its order, replays, idempotency keys, cancel tokens and their
 * rotation, seats and the steps rows are written in, the waitlist and its
 * promotions, holds and their expiry at the commands' issue times, event
 * updates and cancellation, and the changes published on the event stream;
 * then thousands of random command sequences, cut into random batches and
 * decided as apply.c does (lookups skipped first, then with them), written
 * to a database simulated in memory with the constraints of sql/, against a
 * serial reference model written here on its own: every reply, every change
 * and the final state must agree. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "decide.h"

#define NOW 1800000000000LL
#define FUTURE (NOW + 86400000LL)
#define MINUTE 60000LL

enum { K_EVENT = 1, K_USER = 2, K_COMMAND = 3 };

enum {
    EVENTS = 4,  /* event numbers 0..3 */
    PEOPLE = 10, /* user numbers 0..9 */
    TOKENS = 4,  /* the random sequences' cancel tokens 1..4 */
    MAX_COMMANDS = 160,
    MAX_HOLDS = MAX_COMMANDS + 40,
    MAX_CHANGES = 4 * MAX_COMMANDS,
    TEXT = 48, /* the titles, descriptions and locations the tests write */
};

static char context[200]; /* the test, or the seed and sequence, for a failure's message */

/* Readable UUIDs: kind, then number. */
static void uuid_of(char *out, unsigned kind, unsigned n) {
    snprintf(out, TS_UUID_LEN + 1, "%08x-0000-4000-8000-%012x", kind, n);
}

static unsigned uuid_number(const char *uuid) {
    return strlen(uuid) == TS_UUID_LEN ? (unsigned)strtoul(uuid + 24, NULL, 16) : 0xffffffffu;
}

/* The number of a UUID of this kind that the tests made; fails on anything else. */
static unsigned number_of(const char *uuid, unsigned kind, const char *what) {
    if (!uuid)
        fail_msg("%s: %s is NULL", context, what);
    char want[TS_UUID_LEN + 1];
    unsigned n = uuid_number(uuid);
    uuid_of(want, kind, n);
    if (strcmp(uuid, want) != 0)
        fail_msg("%s: %s is \"%s\"", context, what, uuid);
    return n;
}

static unsigned event_index(const char *id) {
    unsigned e = number_of(id, K_EVENT, "an event id");
    if (e >= EVENTS)
        fail_msg("%s: event %u out of the test's range", context, e);
    return e;
}

static unsigned user_index(const char *id) {
    unsigned p = number_of(id, K_USER, "a user id");
    if (p >= PEOPLE)
        fail_msg("%s: user %u out of the test's range", context, p);
    return p;
}

static bool is_name_of(const char *name, unsigned p) {
    char want[32];
    snprintf(want, sizeof want, "Person %u", p);
    return name && strcmp(name, want) == 0;
}

static bool is_email_of(const char *email, unsigned p) {
    char want[32];
    snprintf(want, sizeof want, "p%u@example.org", p);
    return email && strcmp(email, want) == 0;
}

static ts_digest digest(unsigned v) {
    ts_digest d = {.present = true};
    for (int i = 0; i < TS_SHA256_LEN; i++)
        d.bytes[i] = (uint8_t)(v >> (8 * (i % 4)));
    return d;
}

static const ts_digest none;

/* Token number t as a digest: 0 is none. */
static ts_digest token_digest(unsigned t) {
    return t ? digest(t) : none;
}

static bool digests_equal(const ts_digest *a, const ts_digest *b) {
    return a->present == b->present &&
           (!a->present || memcmp(a->bytes, b->bytes, TS_SHA256_LEN) == 0);
}

/* A row's digest pointer: NULL reads as none. */
static const ts_digest *dg(const ts_digest *d) {
    return d ? d : &none;
}

/* ------------------------------------------------------------ commands */

static unsigned commands_made;

static ts_batch_item item(ts_command_type type, unsigned event) {
    ts_batch_item it = {.cmd.type = type};
    uuid_of(it.cmd.command_id, K_COMMAND, ++commands_made);
    uuid_of(it.cmd.event_id, K_EVENT, event);
    it.cmd.issued_at_ms = NOW;
    return it;
}

/* The item issued at t. */
static ts_batch_item at(ts_batch_item it, int64_t t) {
    it.cmd.issued_at_ms = t;
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

/* A registration that joins the waitlist of a full event. */
static ts_batch_item regw(unsigned event, unsigned user) {
    ts_batch_item it = reg(event, user);
    it.cmd.u.reg.waitlist = true;
    return it;
}

static ts_batch_item cancel(unsigned event, unsigned user) {
    ts_batch_item it = item(TS_CMD_CANCEL, event);
    uuid_of(it.cmd.u.cancel.user_id, K_USER, user);
    return it;
}

static ts_batch_item hold(unsigned event, unsigned user, int64_t ttl_ms) {
    ts_batch_item it = item(TS_CMD_PLACE_HOLD, event);
    snprintf(it.cmd.u.hold.name, sizeof it.cmd.u.hold.name, "Person %u", user);
    snprintf(it.cmd.u.hold.email, sizeof it.cmd.u.hold.email, "p%u@example.org", user);
    it.cmd.u.hold.ttl_ms = ttl_ms;
    uuid_of(it.user_id, K_USER, user);
    return it;
}

/* A confirm, release or expire of the hold numbered `hold_no`. */
static ts_batch_item hold_ref(ts_command_type type, unsigned event, unsigned hold_no) {
    ts_batch_item it = item(type, event);
    uuid_of(it.cmd.u.hold_ref.hold_id, K_COMMAND, hold_no);
    return it;
}

static ts_batch_item confirm(unsigned event, unsigned hold_no, unsigned token) {
    ts_batch_item it = hold_ref(TS_CMD_CONFIRM_HOLD, event, hold_no);
    it.cmd.u.hold_ref.cancel_token_sha256 = token_digest(token);
    return it;
}

static ts_batch_item release(unsigned event, unsigned hold_no) {
    return hold_ref(TS_CMD_RELEASE_HOLD, event, hold_no);
}

static ts_batch_item expire(unsigned event, unsigned hold_no) {
    return hold_ref(TS_CMD_EXPIRE_HOLD, event, hold_no);
}

static ts_batch_item update(unsigned event) {
    return item(TS_CMD_UPDATE_EVENT, event);
}

static ts_batch_item update_capacity(unsigned event, int64_t capacity) {
    ts_batch_item it = update(event);
    it.cmd.u.update.has_capacity = true;
    it.cmd.u.update.capacity = capacity;
    return it;
}

static ts_batch_item cancel_event(unsigned event) {
    return item(TS_CMD_CANCEL_EVENT, event);
}

/* The number of an item's command: a hold's id. */
static unsigned command_no(const ts_batch_item *it) {
    return uuid_number(it->cmd.command_id);
}

static void stored_event(ts_decider *d, unsigned event, int64_t capacity, int64_t registered,
                         int64_t starts_at_ms) {
    char id[TS_UUID_LEN + 1];
    uuid_of(id, K_EVENT, event);
    const ts_stored_event e = {
        .id = id, .capacity = capacity, .registered = registered, .starts_at_ms = starts_at_ms};
    assert_int_equal(ts_decider_add_event(d, &e), 0);
}

static void stored_registration(ts_decider *d, unsigned event, unsigned user,
                                const char *command_id, ts_digest token) {
    char e[TS_UUID_LEN + 1], u[TS_UUID_LEN + 1];
    uuid_of(e, K_EVENT, event);
    uuid_of(u, K_USER, user);
    const ts_stored_registration r = {
        .event_id = e, .user_id = u, .command_id = command_id, .cancel_token = token};
    assert_int_equal(ts_decider_add_registration(d, &r), 0);
}

/* A stored command's first outcome. */
static ts_stored_command stored_command(const char *id, ts_outcome outcome, const char *user_id,
                                        const char *message, int64_t applied_at_ms,
                                        ts_digest request) {
    return (ts_stored_command){.command_id = id,
                               .outcome = outcome,
                               .user_id = user_id,
                               .message = message,
                               .applied_at_ms = applied_at_ms,
                               .request = request};
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

/* ------------------------------------------------------------ a database, in memory */

/* What PostgreSQL holds after sql/001..005, with the constraints and the
 * statements of apply.c that matter here. Rows are indexed by event and
 * user number; UUIDs are checked to be the tests' own and kept as numbers.
 * A primary key that objects to a row (a stored row the decider was not
 * told of) undoes the batch: with the lookups skipped that is the
 * optimistic batch failing as designed, with them it fails the test. Any
 * other constraint fails the test. */
typedef struct db_event {
    bool exists, cancelled, has_description;
    int64_t capacity, registered, held, waitlisted, starts_at_ms, stream_seq, waitlist_seq;
    char title[TEXT], description[TEXT], location[TEXT];
} db_event;

/* registrations: a seat, registered or held */
typedef struct db_seat {
    bool live, held;
    int32_t seat, capacity;
    ts_digest token;
    unsigned command, hold;
} db_seat;

/* waitlist */
typedef struct db_place {
    bool live;
    int64_t seq;
    unsigned command;
    ts_digest token;
} db_place;

typedef struct db_hold {
    unsigned id, event, user;
    int64_t expires_at_ms;
    ts_hold_state state;
} db_hold;

typedef struct db_tables {
    db_event ev[EVENTS];
    db_seat seats[EVENTS][PEOPLE];
    db_place line[EVENTS][PEOPLE];
    bool user[PEOPLE];
    db_hold holds[MAX_HOLDS];
    size_t nholds;
} db_tables;

/* processed_commands */
typedef struct db_command {
    unsigned id;
    ts_outcome outcome;
    char user_id[TS_UUID_LEN + 1];
    char message[TS_MESSAGE_MAX + 1];
    int64_t applied_at_ms;
    ts_digest request;
    int64_t position;
    char hold_id[TS_UUID_LEN + 1];
    int64_t expires_at_ms;
} db_command;

typedef struct db {
    db_tables t;
    db_command commands[MAX_COMMANDS];
    size_t ncommands;
    size_t published[EVENTS]; /* the changes of each event committed */
} db;

static void db_check(bool ok, const char *what) {
    if (!ok)
        fail_msg("%s: the database refuses: %s", context, what);
}

static size_t db_count(const db *s, unsigned e, bool held) {
    size_t n = 0;
    for (unsigned p = 0; p < PEOPLE; p++)
        n += s->t.seats[e][p].live && s->t.seats[e][p].held == held;
    return n;
}

static size_t db_waiting(const db *s, unsigned e) {
    size_t n = 0;
    for (unsigned p = 0; p < PEOPLE; p++)
        n += s->t.line[e][p].live;
    return n;
}

static db_hold *db_hold_of(db *s, unsigned id) {
    for (size_t i = 0; i < s->t.nholds; i++)
        if (s->t.holds[i].id == id)
            return &s->t.holds[i];
    return NULL;
}

static const db_command *db_command_of(const db *s, unsigned id) {
    for (size_t i = 0; i < s->ncommands; i++)
        if (s->commands[i].id == id)
            return &s->commands[i];
    return NULL;
}

static void copy_text(char *out, const char *in, const char *what) {
    db_check(in && strlen(in) < TEXT, what);
    snprintf(out, TEXT, "%s", in);
}

static void db_insert_event(db *s, const ts_batch_item *it) {
    db_check(it && it->cmd.type == TS_CMD_CREATE_EVENT, "an event row of no create");
    const ts_command *c = &it->cmd;
    db_event *ev = &s->t.ev[event_index(c->event_id)];
    db_check(!ev->exists, "an event inserted twice");
    db_check(c->u.create.capacity >= 1, "an event of no capacity");
    memset(ev, 0, sizeof *ev);
    ev->exists = true;
    ev->capacity = c->u.create.capacity;
    ev->starts_at_ms = c->u.create.starts_at_ms;
    copy_text(ev->title, c->u.create.title, "a title");
    copy_text(ev->location, c->u.create.location, "a location");
    ev->has_description = c->u.create.has_description;
    if (ev->has_description)
        copy_text(ev->description, c->u.create.description, "a description");
}

/* INSERT INTO registrations: false when the primary key objects. */
static bool db_insert_seat(db *s, const ts_row_registration *r) {
    unsigned e = event_index(r->event_id), p = user_index(r->user_id);
    const db_event *ev = &s->t.ev[e];
    db_check(ev->exists, "a registration of an unknown event");
    if (s->t.seats[e][p].live)
        return false;
    db_check(s->t.user[p], "a registration of a user with no users row");
    db_check(is_name_of(r->name, p), "a registration under another name");
    db_check(r->capacity == ev->capacity,
             "a registration that carries another capacity than its event's");
    db_check(r->seat >= 1 && r->seat <= ev->capacity, "a seat beyond the capacity");
    for (unsigned q = 0; q < PEOPLE; q++)
        db_check(!s->t.seats[e][q].live || s->t.seats[e][q].seat != r->seat, "a seat taken twice");
    db_seat *g = &s->t.seats[e][p];
    g->live = true;
    g->held = r->held;
    g->seat = r->seat;
    g->capacity = r->capacity;
    g->token = *dg(r->cancel_token);
    g->command = number_of(r->command_id, K_COMMAND, "a registration's command id");
    g->hold = 0;
    if (r->held) {
        g->hold = number_of(r->hold_id, K_COMMAND, "a held seat's hold id");
        db_check(g->hold == g->command, "a held seat whose command is not its hold");
    }
    return true;
}

/* UPDATE registrations SET cancel_token_sha256 WHERE event, user, command:
 * apply.c counts the rows. */
static void db_rotate(db *s, const ts_row_rotation *r) {
    db_seat *g = &s->t.seats[event_index(r->event_id)][user_index(r->user_id)];
    db_check(g->live && g->command == number_of(r->command_id, K_COMMAND, "a rotation's command"),
             "a token given to no registration of that command");
    g->token = *dg(r->cancel_token);
}

/* DELETE ... RETURNING seat, then the last seat moves into the hole. */
static void db_free(db *s, const ts_row_cancel *c) {
    unsigned e = event_index(c->event_id);
    db_seat *g = &s->t.seats[e][user_index(c->user_id)];
    db_check(g->live, "a seat freed that is not there");
    const ts_digest *token = dg(c->token);
    db_check(!token->present || digests_equal(&g->token, token),
             "a cancel token that is not the registration's");
    db_check(c->last_seat == (int32_t)(db_count(s, e, false) + db_count(s, e, true)),
             "a last seat that is not the count of seats taken");
    int32_t freed = g->seat;
    g->live = false;
    if (freed == c->last_seat)
        return;
    bool moved = false;
    for (unsigned q = 0; q < PEOPLE; q++)
        if (s->t.seats[e][q].live && s->t.seats[e][q].seat == c->last_seat) {
            s->t.seats[e][q].seat = freed;
            moved = true;
        }
    db_check(moved, "no seat in the last seat");
}

/* UPDATE registrations SET held = false, command_id, cancel token WHERE the
 * pair holds that hold. */
static void db_confirm(db *s, const ts_row_confirm *c) {
    db_seat *g = &s->t.seats[event_index(c->event_id)][user_index(c->user_id)];
    db_check(g->live && g->held && g->hold == number_of(c->hold_id, K_COMMAND, "a confirm's hold"),
             "a confirmation of no held seat");
    g->held = false;
    g->hold = 0;
    g->command = number_of(c->command_id, K_COMMAND, "a confirmation's command");
    g->token = *dg(c->cancel_token);
}

/* UPDATE events SET capacity, registered, held; the trigger gives the
 * registrations the capacity, where CHECK (seat BETWEEN 1 AND capacity)
 * holds them. */
static void db_capacity(db *s, const ts_row_capacity *c) {
    unsigned e = event_index(c->event_id);
    db_event *ev = &s->t.ev[e];
    db_check(ev->exists, "the capacity of an unknown event");
    db_check(c->capacity >= 1, "a capacity below 1");
    db_check(c->registered >= 0 && c->held >= 0 && c->registered <= c->capacity &&
                 c->registered + c->held <= c->capacity,
             "counters beyond the capacity (events_taken_within_capacity)");
    db_check(c->registered == (int32_t)db_count(s, e, false) &&
                 c->held == (int32_t)db_count(s, e, true),
             "a capacity row whose counters are not the seats taken at that point");
    for (unsigned p = 0; p < PEOPLE; p++)
        if (s->t.seats[e][p].live) {
            db_check(s->t.seats[e][p].seat <= c->capacity,
                     "a seat beyond the new capacity (registrations_seat_within_capacity)");
            s->t.seats[e][p].capacity = c->capacity;
        }
    ev->capacity = c->capacity;
    ev->registered = c->registered;
    ev->held = c->held;
}

/* INSERT INTO waitlist: its primary key is no conflict apply.c retries. */
static void db_wait(db *s, const ts_row_wait *w) {
    unsigned e = event_index(w->event_id), p = user_index(w->user_id);
    db_check(!s->t.line[e][p].live, "a waitlist place that exists (waitlist_pkey)");
    db_check(w->seq >= 1, "a waitlist seq below 1");
    db_check(is_name_of(w->name, p) && is_email_of(w->email, p),
             "a waitlist place under another name or email");
    for (unsigned q = 0; q < PEOPLE; q++)
        db_check(!s->t.line[e][q].live || s->t.line[e][q].seq != w->seq,
                 "two places with one seq (waitlist_one_per_place)");
    db_place *g = &s->t.line[e][p];
    g->live = true;
    g->seq = w->seq;
    g->command = number_of(w->command_id, K_COMMAND, "a waitlist place's command");
    g->token = *dg(w->cancel_token);
}

/* What must hold once a batch is written, whatever the constraints let by. */
static void db_consistent(const db *s) {
    for (unsigned e = 0; e < EVENTS; e++) {
        const db_event *ev = &s->t.ev[e];
        if (!ev->exists)
            continue;
        db_check(ev->registered == (int64_t)db_count(s, e, false),
                 "a registered counter that is not the count of registrations");
        db_check(ev->held == (int64_t)db_count(s, e, true),
                 "a held counter that is not the count of held seats");
        db_check(ev->waitlisted == (int64_t)db_waiting(s, e),
                 "a waitlisted counter that is not the count of places");
        int64_t taken = ev->registered + ev->held;
        db_check(taken <= ev->capacity, "more seats taken than the capacity");
        bool seat[PEOPLE + 1] = {false};
        for (unsigned p = 0; p < PEOPLE; p++) {
            const db_seat *g = &s->t.seats[e][p];
            const db_place *w = &s->t.line[e][p];
            db_check(!(g->live && w->live), "a person with a seat and a place on the waitlist");
            if (w->live)
                db_check(w->seq <= ev->waitlist_seq, "a place beyond the event's waitlist_seq");
            if (!g->live)
                continue;
            db_check(g->seat >= 1 && g->seat <= taken && !seat[g->seat],
                     "seats that are not 1..taken");
            seat[g->seat] = true;
            if (g->held) {
                const db_hold *h = db_hold_of((db *)s, g->hold);
                db_check(h && h->state == TS_HOLD_HELD && h->event == e && h->user == p,
                         "a held seat whose hold is not held");
            }
        }
    }
    for (size_t i = 0; i < s->t.nholds; i++) {
        const db_hold *h = &s->t.holds[i];
        if (h->state != TS_HOLD_HELD)
            continue;
        const db_seat *g = &s->t.seats[h->event][h->user];
        db_check(g->live && g->held && g->hold == h->id, "a hold held with no held seat");
    }
}

/* Writes the decisions in their order, as apply.c does. False, with
 * nothing kept, when a primary key objects. */
static bool db_write(db *s, const ts_decisions *dec, bool lookups_skipped) {
    db_tables before = s->t;
    size_t ncommands = s->ncommands;
    const char *clash = NULL;    /* a primary key's objection */
    const char *deferred = NULL; /* wrong, unless a primary key undoes the batch later */
    for (size_t i = 0; i < dec->nevents; i++)
        db_insert_event(s, dec->events[i].item);
    for (size_t i = 0; i < dec->nusers; i++) {
        unsigned p = user_index(dec->users[i].id);
        db_check(is_email_of(dec->users[i].email, p), "a user of another email");
        s->t.user[p] = true;
    }
    db_check(dec->nsteps >= 1, "no steps");
    size_t r = 0, t = 0;
    for (size_t k = 0; k < dec->nsteps && !clash; k++) {
        const ts_decided_step *step = &dec->steps[k];
        db_check(step->registrations_end >= r && step->registrations_end <= dec->nregistrations &&
                     step->rotations_end >= t && step->rotations_end <= dec->nrotations,
                 "a step's rows out of order");
        for (; r < step->registrations_end; r++)
            if (!db_insert_seat(s, &dec->registrations[r])) {
                clash = "a registration that exists (registrations_pkey)";
                break;
            }
        if (clash)
            break;
        for (size_t first = t; t < step->rotations_end; t++) {
            for (size_t u = first; u < t; u++) /* one statement: each registration once */
                db_check(strcmp(dec->rotations[u].event_id, dec->rotations[t].event_id) ||
                             strcmp(dec->rotations[u].user_id, dec->rotations[t].user_id),
                         "a registration updated twice by one statement");
            db_rotate(s, &dec->rotations[t]);
        }
        bool last = k + 1 == dec->nsteps;
        db_check(last == (step->ends_with == TS_STEP_END),
                 "a step that ends the batch before the last, or a last that does not");
        switch (step->ends_with) {
        case TS_STEP_END: break;
        case TS_STEP_FREE: db_free(s, &step->u.cancel); break;
        case TS_STEP_CONFIRM: db_confirm(s, &step->u.confirm); break;
        case TS_STEP_CAPACITY: db_capacity(s, &step->u.capacity); break;
        default: db_check(false, "a step that ends with no known row");
        }
    }
    if (!clash)
        db_check(r == dec->nregistrations && t == dec->nrotations, "rows outside every step");
    for (size_t i = 0; i < dec->nwait_rotations && !clash; i++) {
        const ts_row_rotation *wr = &dec->wait_rotations[i];
        db_place *w = &s->t.line[event_index(wr->event_id)][user_index(wr->user_id)];
        db_check(w->live && w->command == number_of(wr->command_id, K_COMMAND,
                                                    "a waitlist rotation's command"),
                 "a token given to no waitlist place of that command");
        w->token = *dg(wr->cancel_token);
    }
    for (size_t i = 0; i < dec->nunwaits && !clash; i++) {
        db_place *w =
            &s->t.line[event_index(dec->unwaits[i].event_id)][user_index(dec->unwaits[i].user_id)];
        db_check(w->live, "a waitlist place left that is not there");
        w->live = false;
    }
    for (size_t i = 0; i < dec->nwaits && !clash; i++)
        db_wait(s, &dec->waits[i]);
    /* holds: an upsert, new ones inserted and stored ones given their state */
    for (size_t i = 0; i < dec->nholds && !clash; i++) {
        const ts_row_hold *row = &dec->holds[i];
        unsigned id = number_of(row->hold_id, K_COMMAND, "a hold id");
        unsigned e = event_index(row->event_id), p = user_index(row->user_id);
        db_check(row->state >= TS_HOLD_HELD && row->state <= TS_HOLD_EXPIRED,
                 "a hold of no known state");
        for (size_t j = 0; j < i; j++)
            db_check(strcmp(dec->holds[j].hold_id, row->hold_id) != 0,
                     "a hold written twice by one statement");
        db_hold *h = db_hold_of(s, id);
        if (h) {
            if (h->event != e || h->user != p || h->expires_at_ms != row->expires_at_ms)
                deferred = "a stored hold given another event, user or expiry";
            else if (h->state != TS_HOLD_HELD && h->state != row->state)
                deferred = "a hold that ended changes its state";
            h->state = row->state;
            continue;
        }
        db_check(s->t.nholds < MAX_HOLDS, "more holds than the test holds");
        s->t.holds[s->t.nholds++] = (db_hold){id, e, p, row->expires_at_ms, row->state};
    }
    for (size_t i = 0; i < dec->nprocessed && !clash; i++) {
        const ts_batch_item *it = dec->processed[i].item;
        db_check(it && !it->skip && !it->replayed, "a processed row of a skipped or replayed item");
        unsigned id = number_of(it->cmd.command_id, K_COMMAND, "a command id");
        if (db_command_of(s, id)) {
            clash = "a command stored twice (processed_commands_pkey)";
            break;
        }
        db_check(s->ncommands < MAX_COMMANDS, "more commands than the test holds");
        db_command *c = &s->commands[s->ncommands++];
        c->id = id;
        c->outcome = it->reply.outcome;
        snprintf(c->user_id, sizeof c->user_id, "%s", it->reply.user_id);
        snprintf(c->message, sizeof c->message, "%s", it->reply.message);
        c->applied_at_ms = it->reply.applied_at_ms;
        c->request = it->cmd.request_sha256;
        c->position = it->reply.position;
        snprintf(c->hold_id, sizeof c->hold_id, "%s", it->reply.hold_id);
        c->expires_at_ms = it->reply.expires_at_ms;
    }
    if (clash) {
        if (!lookups_skipped)
            fail_msg("%s: with the lookups, %s", context, clash);
        s->t = before;
        s->ncommands = ncommands;
        return false;
    }
    if (deferred)
        fail_msg("%s: %s", context, deferred);
    for (size_t i = 0; i < dec->ncounters; i++) {
        const ts_row_counter *c = &dec->counters[i];
        unsigned e = event_index(c->event_id);
        db_event *ev = &s->t.ev[e];
        db_check(ev->exists, "the counters of an unknown event");
        for (size_t j = 0; j < i; j++)
            db_check(strcmp(dec->counters[j].event_id, c->event_id) != 0,
                     "an event's counters written twice");
        db_check(c->registered >= 0 && c->held >= 0 && c->waitlisted >= 0 &&
                     c->registered + c->held <= ev->capacity,
                 "counters beyond the capacity (events_taken_within_capacity)");
        ev->registered = c->registered;
        ev->held = c->held;
        ev->waitlisted = c->waitlisted;
        ev->stream_seq = c->stream_seq;
        ev->waitlist_seq = c->waitlist_seq;
        if (c->cancelled) /* status = CASE WHEN cancelled THEN 'cancelled' ELSE status END */
            ev->cancelled = true;
        if (c->title)
            copy_text(ev->title, c->title, "a title");
        if (c->description) {
            ev->has_description = c->description[0] != '\0';
            copy_text(ev->description, c->description, "a description");
        }
        if (c->location)
            copy_text(ev->location, c->location, "a location");
        if (c->has_starts_at)
            ev->starts_at_ms = c->starts_at_ms;
    }
    db_consistent(s);
    /* the stream: each event's changes numbered on from the last committed */
    for (size_t i = 0; i < dec->nchanges; i++) {
        const ts_change *ch = &dec->changes[i];
        unsigned e = event_index(ch->event_id);
        if (ch->seq != (int64_t)s->published[e] + 1)
            fail_msg("%s: change %zu of event %u has seq %lld after %zu", context, i, e,
                     (long long)ch->seq, s->published[e]);
        s->published[e]++;
    }
    for (unsigned e = 0; e < EVENTS; e++)
        if (s->t.ev[e].exists && s->t.ev[e].stream_seq != (int64_t)s->published[e])
            fail_msg("%s: event %u: stream_seq %lld, its last change %zu", context, e,
                     (long long)s->t.ev[e].stream_seq, s->published[e]);
    return true;
}

/* ------------------------------------------------------------ the loading, as apply.c does it */

static uint64_t rng_state;

static unsigned rnd(unsigned n) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return (unsigned)((z ^ (z >> 31)) % n);
}

static ts_batch_item *nth(ts_batch_item *items, const size_t *order, size_t k) {
    return &items[order ? order[k] : k];
}

static bool names_hold(const ts_batch_item *it) {
    return it->cmd.type == TS_CMD_CONFIRM_HOLD || it->cmd.type == TS_CMD_RELEASE_HOLD ||
           it->cmd.type == TS_CMD_EXPIRE_HOLD;
}

static void add_stored_hold(ts_decider *d, const db_hold *h) {
    char id[TS_UUID_LEN + 1], e[TS_UUID_LEN + 1], u[TS_UUID_LEN + 1];
    uuid_of(id, K_COMMAND, h->id);
    uuid_of(e, K_EVENT, h->event);
    uuid_of(u, K_USER, h->user);
    const ts_stored_hold sh = {id, e, u, h->state, h->expires_at_ms};
    assert_int_equal(ts_decider_add_hold(d, &sh), 0);
}

/* The state the decider asks for, read from the database in the order of
 * decide.h; what a query returns, each key once. With the lookups skipped,
 * no stored commands, seats or holds named by id. */
static void db_load(db *s, ts_decider *d, ts_batch_item *items, const size_t *order, size_t n,
                    bool lookups_skipped) {
    /* 1. the stored commands among the batch's */
    if (!lookups_skipped) {
        bool added[MAX_COMMANDS] = {false};
        for (size_t k = 0; k < n; k++) {
            const ts_batch_item *it = nth(items, order, k);
            if (it->skip)
                continue;
            unsigned id = uuid_number(it->cmd.command_id);
            for (size_t j = 0; j < s->ncommands; j++) {
                const db_command *c = &s->commands[j];
                if (c->id != id || added[j])
                    continue;
                added[j] = true;
                const ts_stored_command sc = {
                    it->cmd.command_id, c->outcome,  c->user_id, c->message,      c->applied_at_ms,
                    c->request,         c->position, c->hold_id, c->expires_at_ms};
                assert_int_equal(ts_decider_add_command(d, &sc), 0);
            }
        }
    }
    /* 2. the events */
    bool wanted[EVENTS] = {false};
    for (size_t k = 0; k < n; k++) {
        ts_batch_item *it = nth(items, order, k);
        if (!ts_decider_wants_event(d, it))
            continue;
        unsigned e = event_index(it->cmd.event_id);
        if (it->skip || wanted[e])
            fail_msg("%s: event %u wanted twice, or for a skipped item", context, e);
        wanted[e] = true;
        const db_event *ev = &s->t.ev[e];
        if (!ev->exists)
            continue;
        const ts_stored_event se = {it->cmd.event_id, ev->capacity,   ev->registered,
                                    ev->starts_at_ms, ev->held,       ev->waitlisted,
                                    ev->cancelled,    ev->stream_seq, ev->waitlist_seq};
        assert_int_equal(ts_decider_add_event(d, &se), 0);
    }
    /* 3. the seats of the pairs, and the holds named by id */
    if (!lookups_skipped) {
        bool pair_wanted[EVENTS][PEOPLE] = {{false}};
        unsigned pairs[MAX_COMMANDS][2], holds[MAX_COMMANDS];
        size_t npairs = 0, nholds = 0;
        for (size_t k = 0; k < n; k++) {
            ts_batch_item *it = nth(items, order, k);
            if (ts_decider_wants_registration(d, it)) {
                const char *user = ts_decider_pair_user(d, it);
                if (!user) /* apply.c asks for the pair of ts_decider_pair_user() */
                    fail_msg("%s: the seat of item %zu (type %d) wanted, and "
                             "ts_decider_pair_user() names no user to load it by",
                             context, k, (int)it->cmd.type);
                unsigned e = event_index(it->cmd.event_id), p = user_index(user);
                if (it->skip || pair_wanted[e][p])
                    fail_msg("%s: pair %u/%u (of ts_decider_pair_user()) wanted twice, or for "
                             "a skipped item",
                             context, e, p);
                pair_wanted[e][p] = true;
                pairs[npairs][0] = e;
                pairs[npairs++][1] = p;
            }
            if (ts_decider_wants_hold(d, it)) {
                if (it->skip || !names_hold(it))
                    fail_msg("%s: a hold wanted for item %zu, which names none", context, k);
                unsigned id = number_of(it->cmd.u.hold_ref.hold_id, K_COMMAND, "a hold id");
                for (size_t j = 0; j < nholds; j++)
                    if (holds[j] == id)
                        fail_msg("%s: hold %u wanted twice", context, id);
                holds[nholds++] = id;
            }
        }
        for (size_t i = 0; i < npairs; i++) {
            unsigned e = pairs[i][0], p = pairs[i][1];
            char ev[TS_UUID_LEN + 1], u[TS_UUID_LEN + 1], cmd[TS_UUID_LEN + 1],
                hold_id[TS_UUID_LEN + 1];
            uuid_of(ev, K_EVENT, e);
            uuid_of(u, K_USER, p);
            const db_seat *g = &s->t.seats[e][p];
            const db_place *w = &s->t.line[e][p];
            if (g->live) {
                uuid_of(cmd, K_COMMAND, g->command);
                uuid_of(hold_id, K_COMMAND, g->hold);
                const ts_stored_registration r = {ev,
                                                  u,
                                                  cmd,
                                                  g->token,
                                                  g->held ? TS_SEAT_HELD : TS_SEAT_REGISTERED,
                                                  g->held ? hold_id : NULL,
                                                  0,
                                                  0};
                assert_int_equal(ts_decider_add_registration(d, &r), 0);
            } else if (w->live) {
                uuid_of(cmd, K_COMMAND, w->command);
                int64_t place = 0; /* its rank by seq, as apply.c's count gives it */
                for (unsigned q = 0; q < PEOPLE; q++)
                    place += s->t.line[e][q].live && s->t.line[e][q].seq <= w->seq;
                const ts_stored_registration r = {ev,   u,      cmd,  w->token, TS_SEAT_WAITLISTED,
                                                  NULL, w->seq, place};
                assert_int_equal(ts_decider_add_registration(d, &r), 0);
            }
        }
        for (size_t i = 0; i < nholds; i++) {
            const db_hold *h = db_hold_of(s, holds[i]);
            if (h)
                add_stored_hold(d, h);
        }
    }
    /* 4. the holds that may expire: state held and expires_at < before, in
     * no particular order */
    struct {
        unsigned e;
        int64_t v;
    } asked[EVENTS];
    size_t nasked = 0;
    size_t cursor = 0;
    const char *event_id;
    int64_t v;
    while (ts_decider_expiring(d, &cursor, &event_id, &v)) {
        unsigned e = event_index(event_id);
        for (size_t i = 0; i < nasked; i++)
            if (asked[i].e == e)
                fail_msg("%s: the expiring holds of event %u asked twice", context, e);
        asked[nasked].e = e;
        asked[nasked++].v = v;
    }
    for (size_t i = 0; i < nasked; i++) {
        const db_hold *found[MAX_HOLDS];
        size_t nfound = 0;
        for (size_t j = 0; j < s->t.nholds; j++) {
            const db_hold *h = &s->t.holds[j];
            if (h->event == asked[i].e && h->state == TS_HOLD_HELD && h->expires_at_ms < asked[i].v)
                found[nfound++] = h;
        }
        for (size_t j = nfound; j > 1; j--) { /* shuffled: the decider orders them */
            size_t x = rnd((unsigned)j);
            const db_hold *tmp = found[j - 1];
            found[j - 1] = found[x];
            found[x] = tmp;
        }
        for (size_t j = 0; j < nfound; j++)
            add_stored_hold(d, found[j]);
    }
    /* 5. the heads of the waitlists: the first `limit` places by seq */
    nasked = 0;
    cursor = 0;
    while (ts_decider_waitlist_wanted(d, &cursor, &event_id, &v)) {
        unsigned e = event_index(event_id);
        for (size_t i = 0; i < nasked; i++)
            if (asked[i].e == e)
                fail_msg("%s: the waitlist of event %u asked twice", context, e);
        if (v < 0)
            fail_msg("%s: a waitlist limit %lld", context, (long long)v);
        asked[nasked].e = e;
        asked[nasked++].v = v;
    }
    for (size_t i = 0; i < nasked; i++) {
        unsigned e = asked[i].e;
        bool done[PEOPLE] = {false};
        for (int64_t k = 0; k < asked[i].v; k++) {
            int best = -1;
            for (unsigned p = 0; p < PEOPLE; p++)
                if (s->t.line[e][p].live && !done[p] &&
                    (best < 0 || s->t.line[e][p].seq < s->t.line[e][best].seq))
                    best = (int)p;
            if (best < 0)
                break;
            done[best] = true;
            const db_place *w = &s->t.line[e][best];
            char ev[TS_UUID_LEN + 1], u[TS_UUID_LEN + 1], cmd[TS_UUID_LEN + 1], name[32], email[32];
            uuid_of(ev, K_EVENT, e);
            uuid_of(u, K_USER, (unsigned)best);
            uuid_of(cmd, K_COMMAND, w->command);
            snprintf(name, sizeof name, "Person %d", best);
            snprintf(email, sizeof email, "p%d@example.org", best);
            const ts_stored_waiter sw = {ev, u, name, email, cmd, w->token, w->seq};
            assert_int_equal(ts_decider_add_waiter(d, &sw), 0);
        }
    }
}

/* ------------------------------------------------------------ a fixture: a database to load from
 */

/* The example tests of the seat lifecycle load their state from a
 * database as apply.c does (db_load) and write the decisions back to it
 * (db_write), so every row is checked against the constraints too. Stored
 * events have 10 changes behind them. */
static db fx;

static void fx_begin(const char *test) {
    memset(&fx, 0, sizeof fx);
    snprintf(context, sizeof context, "%s", test);
}

static void fx_event(unsigned e, int64_t capacity, int64_t starts_at_ms) {
    db_event *ev = &fx.t.ev[e];
    memset(ev, 0, sizeof *ev);
    ev->exists = true;
    ev->capacity = capacity;
    ev->starts_at_ms = starts_at_ms;
    snprintf(ev->title, TEXT, "Event %u", e);
    snprintf(ev->location, TEXT, "Hall");
    ev->stream_seq = 10;
    fx.published[e] = 10;
}

static void fx_seat(unsigned e, unsigned p, bool held, unsigned command, ts_digest token) {
    db_event *ev = &fx.t.ev[e];
    fx.t.seats[e][p] = (db_seat){true,
                                 held,
                                 (int32_t)(ev->registered + ev->held + 1),
                                 (int32_t)ev->capacity,
                                 token,
                                 command,
                                 held ? command : 0};
    if (held)
        ev->held++;
    else
        ev->registered++;
    fx.t.user[p] = true;
}

static void fx_registered(unsigned e, unsigned p, unsigned command, ts_digest token) {
    fx_seat(e, p, false, command, token);
}

/* A hold's row: a hold that ended, or (fx_held) one still held. */
static void fx_hold(unsigned id, unsigned e, unsigned p, ts_hold_state state, int64_t expires_at) {
    fx.t.holds[fx.t.nholds++] = (db_hold){id, e, p, expires_at, state};
}

static void fx_held(unsigned e, unsigned p, unsigned hold_no, int64_t expires_at) {
    fx_seat(e, p, true, hold_no, none);
    fx_hold(hold_no, e, p, TS_HOLD_HELD, expires_at);
}

static void fx_waiting(unsigned e, unsigned p, unsigned command, ts_digest token) {
    db_event *ev = &fx.t.ev[e];
    fx.t.line[e][p] = (db_place){true, ++ev->waitlist_seq, command, token};
    ev->waitlisted++;
    fx.t.user[p] = true;
}

static void fx_command(unsigned id, ts_outcome o, int person, int64_t position, unsigned hold_no,
                       int64_t expires_at, ts_digest request) {
    db_command *c = &fx.commands[fx.ncommands++];
    memset(c, 0, sizeof *c);
    c->id = id;
    c->outcome = o;
    if (person >= 0)
        uuid_of(c->user_id, K_USER, (unsigned)person);
    snprintf(c->message, sizeof c->message, "%s",
             ts_outcome_message(o) ? ts_outcome_message(o) : "");
    c->applied_at_ms = NOW - 5000;
    c->request = request;
    c->position = position;
    if (hold_no)
        uuid_of(c->hold_id, K_COMMAND, hold_no);
    c->expires_at_ms = expires_at;
}

/* ts_decide(), first in a child that must return within 5 s: a decider
 * that loops fails the test instead of hanging it. */
static ts_decide_status decide_or_fail_if_it_hangs(ts_decider *d, ts_decisions *out) {
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(5);
        ts_decisions o;
        _exit((int)ts_decide(d, NOW, &o));
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status))
        fail_msg("%s: ts_decide() does not return (signal %d)", context,
                 WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return ts_decide(d, NOW, out);
}

/* Loads, decides and writes a batch with the lookups. */
static ts_decisions fx_decide(ts_decider *d, ts_batch_item *items, size_t n) {
    ts_decisions out = {0};
    assert_int_equal(ts_decider_begin(d, items, NULL, n, false), 0);
    db_load(&fx, d, items, NULL, n, false);
    assert_int_equal(ts_decide(d, NOW, &out), TS_DECIDE_OK);
    assert_true(db_write(&fx, &out, false));
    return out;
}

/* The same without the lookups: the status, and the decisions when OK. */
static ts_decide_status fx_optimistic(ts_decider *d, ts_batch_item *items, size_t n,
                                      ts_decisions *out) {
    assert_int_equal(ts_decider_begin(d, items, NULL, n, true), 0);
    db_load(&fx, d, items, NULL, n, true);
    return ts_decide(d, NOW, out);
}

static void expect_outcome(const ts_batch_item *it, ts_outcome o, int line) {
    if (it->reply.outcome != o)
        fail_msg("line %d: %s, expected %s", line, ts_outcome_name(it->reply.outcome),
                 ts_outcome_name(o));
}
#define assert_outcome(it, o) expect_outcome(&(it), (o), __LINE__)

static void expect_user(const char *user_id, int person, int line) {
    char want[TS_UUID_LEN + 1] = "";
    if (person >= 0)
        uuid_of(want, K_USER, (unsigned)person);
    if (strcmp(user_id, want) != 0)
        fail_msg("line %d: user \"%s\", expected \"%s\"", line, user_id, want);
}
#define assert_user(it, person) expect_user((it).reply.user_id, (person), __LINE__)

/* The j-th change of an item. */
static const ts_change *change_of(const ts_decisions *out, const ts_batch_item *it, size_t j) {
    assert_in_range(j, 0, it->nchanges - 1);
    assert_in_range(it->first_change + j, 0, out->nchanges - 1);
    return &out->changes[it->first_change + j];
}

/* Type, event, seq and person (-1: none) of the j-th change of an item;
 * its time and command are the item's. */
static const ts_change *expect_change(const ts_decisions *out, const ts_batch_item *it, size_t j,
                                      ts_change_type type, unsigned event, int64_t seq, int person,
                                      int line) {
    if (j >= it->nchanges)
        fail_msg("line %d: change %zu of an item that made %zu", line, j, it->nchanges);
    const ts_change *ch = change_of(out, it, j);
    char e[TS_UUID_LEN + 1];
    uuid_of(e, K_EVENT, event);
    if (ch->type != type || strcmp(ch->event_id, e) != 0 || ch->seq != seq)
        fail_msg("line %d: change %s of %s seq %lld, expected %s of event %u seq %lld", line,
                 ts_change_type_name(ch->type), ch->event_id, (long long)ch->seq,
                 ts_change_type_name(type), event, (long long)seq);
    if (person < 0) {
        if (ch->user_id)
            fail_msg("line %d: a %s change names user %s", line, ts_change_type_name(type),
                     ch->user_id);
    } else {
        expect_user(ch->user_id ? ch->user_id : "(null)", person, line);
    }
    assert_int_equal(ch->occurred_at_ms, it->cmd.issued_at_ms);
    assert_string_equal(ch->command_id, it->cmd.command_id);
    return ch;
}
#define assert_change(out, it, j, type, event, seq, person)                                        \
    expect_change(&(out), &(it), (j), (type), (event), (seq), (person), __LINE__)

static void assert_hold_id(const char *hold_id, unsigned hold_no) {
    char want[TS_UUID_LEN + 1];
    uuid_of(want, K_COMMAND, hold_no);
    assert_non_null(hold_id);
    assert_string_equal(hold_id, want);
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
    assert_false(out.registrations[0].held);
    assert_string_equal(out.registrations[0].event_id, it.cmd.event_id);
    assert_string_equal(out.registrations[0].user_id, it.user_id);
    assert_string_equal(out.registrations[0].name, "Person 7");
    assert_string_equal(out.registrations[0].command_id, it.cmd.command_id);
}

static void event_starting_now(ts_decider *d) {
    stored_event(d, 1, 5, 0, NOW);
}

/* Time is the command's issue time: the worker's clock (ts_decide's now) is
 * only applied_at. */
static void an_event_starting_at_the_issue_time_is_past(void **state) {
    ts_batch_item it = reg(1, 1);
    decide(*state, &it, 1, false, event_starting_now, TS_DECIDE_OK);
    assert_int_equal(it.reply.outcome, TS_OUT_PAST_EVENT);
    it = at(reg(1, 1), NOW - 1); /* issued before the start, decided after */
    decide(*state, &it, 1, false, event_starting_now, TS_DECIDE_OK);
    assert_int_equal(it.reply.outcome, TS_OUT_REGISTERED);
    assert_int_equal(it.reply.applied_at_ms, NOW);
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
    assert_int_equal(out.nwaits, 0);
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
    assert_int_equal(ts_decider_add_command(d, &first_outcome), 0);
    open_event(d);
}

static void a_stored_command_is_answered_with_its_first_outcome_and_writes_nothing(void **state) {
    ts_batch_item it = reg(1, 1);
    first_outcome =
        stored_command(it.cmd.command_id, TS_OUT_EVENT_FULL, "", "Event is full", NOW - 5000, none);
    ts_decisions out = decide(*state, &it, 1, false, stored_first_outcome, TS_DECIDE_OK);
    assert_true(it.replayed);
    assert_int_equal(it.reply.outcome, TS_OUT_EVENT_FULL); /* though a seat is free now */
    assert_string_equal(it.reply.message, "Event is full");
    assert_int_equal(it.reply.applied_at_ms, NOW - 5000);
    assert_string_equal(it.reply.command_id, it.cmd.command_id);
    assert_int_equal(out.nregistrations + out.nprocessed + out.ncounters + out.nusers, 0);
    assert_int_equal(out.nchanges + it.nchanges, 0);
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
    assert_int_equal(out.nchanges, 2);
    assert_int_equal(items[2].nchanges, 0);
}

static void stored_with_request(ts_decider *d) {
    first_outcome.request = digest(1);
    assert_int_equal(ts_decider_add_command(d, &first_outcome), 0);
    open_event(d);
}

static void a_command_id_with_another_request_is_refused_and_tells_nothing(void **state) {
    ts_decider *d = *state;
    /* against a stored command */
    ts_batch_item it = reg(1, 1);
    it.cmd.request_sha256 = digest(2);
    first_outcome =
        stored_command(it.cmd.command_id, TS_OUT_REGISTERED, it.user_id, "", NOW - 5000, none);
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
    assert_int_equal(out.steps[0].ends_with, TS_STEP_END);
    assert_int_equal(out.ncounters, 0);

    it = cancel(1, 1);
    it.cmd.u.cancel.token_sha256 = digest(5);
    out = decide(d, &it, 1, false, registered_with_token_5, TS_DECIDE_OK);
    assert_int_equal(it.reply.outcome, TS_OUT_CANCELLED);
    assert_string_equal(it.reply.user_id, it.cmd.u.cancel.user_id);
    assert_int_equal(out.nsteps, 2);
    assert_int_equal(out.steps[0].ends_with, TS_STEP_FREE);
    assert_int_equal(out.steps[0].u.cancel.last_seat, 1);
    assert_ptr_equal(out.steps[0].u.cancel.token, &it.cmd.u.cancel.token_sha256);
    assert_int_equal(out.steps[1].ends_with, TS_STEP_END);
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
    const ts_stored_command c =
        stored_command(retried.cmd.command_id, TS_OUT_REGISTERED, retried.user_id, "", NOW - 1000,
                       retried.cmd.request_sha256);
    assert_int_equal(ts_decider_add_command(d, &c), 0);
    stored_event(d, 1, 2, 1, FUTURE);
    stored_registration(d, 1, 1, retried.cmd.command_id, digest(5));
}

static void a_retried_registration_gets_the_retrys_token(void **state) {
    ts_decider *d = *state;
    retried = reg(1, 1);
    retried.cmd.request_sha256 = digest(1);
    retried.cmd.u.reg.cancel_token_sha256 = digest(6);
    ts_batch_item items[] = {retried, cancel(1, 1)};
    items[1].cmd.u.cancel.token_sha256 = digest(6); /* the new token cancels */
    assert_int_equal(ts_decider_begin(d, items, NULL, 2, false), 0);
    const ts_stored_command first =
        stored_command(retried.cmd.command_id, TS_OUT_REGISTERED, retried.user_id, "", NOW - 1000,
                       retried.cmd.request_sha256);
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
    const ts_stored_command c = stored_command(other.cmd.command_id, TS_OUT_REGISTERED,
                                               other.user_id, "", NOW, other.cmd.request_sha256);
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

/* A confirmation retried with its request and a new token gives the
 * registration the hold became that token, in the batch that confirms it
 * and in a later one. */
static void a_retried_confirmation_gets_the_retrys_token(void **state) {
    ts_decider *d = *state;
    fx_begin(__func__);
    fx_event(1, 2, FUTURE);
    fx_held(1, 2, 0x920, NOW + MINUTE);
    ts_batch_item items[2] = {confirm(1, 0x920, 5)};
    items[0].cmd.request_sha256 = digest(1);
    items[1] = items[0];
    items[1].cmd.u.hold_ref.cancel_token_sha256 = digest(6);
    fx_decide(d, items, 2);
    assert_outcome(items[0], TS_OUT_REGISTERED);
    assert_true(items[1].replayed);
    assert_outcome(items[1], TS_OUT_REGISTERED);
    ts_digest six = digest(6), seven = digest(7);
    assert_true(digests_equal(&fx.t.seats[1][2].token, &six));
    /* a later batch: the stored command and the registration it made */
    ts_batch_item again = items[0];
    again.cmd.u.hold_ref.cancel_token_sha256 = seven;
    fx_decide(d, &again, 1);
    assert_true(again.replayed);
    assert_outcome(again, TS_OUT_REGISTERED);
    assert_user(again, 2);
    assert_true(digests_equal(&fx.t.seats[1][2].token, &seven));
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
        assert_int_equal(out.steps[i].ends_with, i < 2 ? TS_STEP_FREE : TS_STEP_END);
    }
    assert_int_equal(out.steps[0].u.cancel.last_seat, 4);
    assert_string_equal(out.steps[1].u.cancel.user_id, items[2].user_id);
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
    ts_batch_item items[] = {reg(1, 1), reg(1, 1),         cancel(1, 1), create(2, 1, FUTURE),
                             reg(3, 1), hold(1, 1, MINUTE)};
    items[4].skip = true;
    assert_int_equal(ts_decider_begin(d, items, NULL, 6, false), 0);
    bool ev[6], rg[6];
    for (int i = 0; i < 6; i++) {
        ev[i] = ts_decider_wants_event(d, &items[i]);
        rg[i] = ts_decider_wants_registration(d, &items[i]);
    }
    assert_true(ev[0] && !ev[1] && !ev[2] && ev[3] && !ev[4] && !ev[5]);
    assert_true(rg[0] && !rg[1] && !rg[2] && !rg[3] && !rg[4] && !rg[5]);
    assert_null(ts_decide_user_id(&items[3]));
    assert_string_equal(ts_decide_user_id(&items[5]), items[5].user_id);
    assert_string_equal(ts_decide_user_id(&items[2]), items[2].cmd.u.cancel.user_id);
}

/* The holds a confirm, release or expire names, each once; the events
 * whose holds may expire before the batch's times; the waitlists that may
 * move. */
static void the_loading_asks_for_named_holds_expiring_holds_and_waitlist_heads(void **state) {
    ts_decider *d = *state;
    ts_batch_item items[] = {at(confirm(1, 0x920, 0), NOW), at(release(1, 0x920), NOW + 1000),
                             at(expire(1, 0x921), NOW + 3000), at(reg(1, 3), NOW + 2000),
                             at(hold(1, 4, MINUTE), NOW)};
    assert_int_equal(ts_decider_begin(d, items, NULL, 5, false), 0);
    assert_null(ts_decide_user_id(&items[0]));
    bool ev[5], rg[5], hd[5];
    for (int i = 0; i < 5; i++)
        ev[i] = ts_decider_wants_event(d, &items[i]);
    assert_true(ev[0] && !ev[1] && !ev[2] && !ev[3] && !ev[4]);
    const ts_stored_event e = {items[0].cmd.event_id, 3, 0, FUTURE, 3, 1, false, 10, 1};
    assert_int_equal(ts_decider_add_event(d, &e), 0);
    for (int i = 0; i < 5; i++) {
        rg[i] = ts_decider_wants_registration(d, &items[i]);
        hd[i] = ts_decider_wants_hold(d, &items[i]);
    }
    assert_true(!rg[0] && !rg[1] && !rg[2] && rg[3] && rg[4]);
    assert_true(hd[0] && !hd[1] && hd[2] && !hd[3] && !hd[4]);
    size_t cursor = 0, found = 0;
    const char *event_id;
    int64_t v;
    while (ts_decider_expiring(d, &cursor, &event_id, &v)) {
        assert_string_equal(event_id, items[0].cmd.event_id);
        assert_true(v >= NOW + 3000); /* the last issue time of the event's commands */
        found++;
    }
    assert_int_equal(found, 1);
    cursor = found = 0;
    while (ts_decider_waitlist_wanted(d, &cursor, &event_id, &v)) {
        assert_string_equal(event_id, items[0].cmd.event_id);
        assert_true(v >= 1); /* a release frees a seat */
        found++;
    }
    assert_int_equal(found, 1);
}

/* ------------------------------------------------------------ the waitlist */

static void a_full_event_waitlists_who_asks_at_the_next_place(void **state) {
    fx_begin(__func__);
    fx_event(1, 1, FUTURE);
    fx_registered(1, 1, 0x901, none);
    fx_waiting(1, 2, 0x902, none);
    ts_batch_item items[] = {regw(1, 3), regw(1, 4), reg(1, 5), regw(1, 3)};
    items[0].cmd.u.reg.cancel_token_sha256 = digest(3);
    ts_decisions out = fx_decide(*state, items, 4);
    assert_outcome(items[0], TS_OUT_WAITLISTED);
    assert_int_equal(items[0].reply.position, 2);
    assert_user(items[0], 3);
    assert_outcome(items[1], TS_OUT_WAITLISTED);
    assert_int_equal(items[1].reply.position, 3);
    assert_outcome(items[2], TS_OUT_EVENT_FULL);
    assert_int_equal(items[2].reply.position, 0);
    assert_outcome(items[3], TS_OUT_ALREADY_WAITLISTED);
    assert_string_equal(items[3].reply.message, "User already on the waitlist");
    assert_int_equal(out.nregistrations, 0);
    assert_int_equal(out.nwaits, 2);
    assert_string_equal(out.waits[0].user_id, items[0].user_id);
    assert_int_equal(out.waits[0].seq, 2);
    assert_string_equal(out.waits[0].command_id, items[0].cmd.command_id);
    assert_string_equal(out.waits[0].name, "Person 3");
    assert_string_equal(out.waits[0].email, "p3@example.org");
    assert_memory_equal(out.waits[0].cancel_token->bytes, digest(3).bytes, TS_SHA256_LEN);
    assert_int_equal(out.waits[1].seq, 3);
    assert_int_equal(out.nusers, 2);
    assert_int_equal(out.ncounters, 1);
    assert_int_equal(out.counters[0].waitlisted, 3);
    assert_int_equal(out.counters[0].waitlist_seq, 3);
    assert_int_equal(out.counters[0].stream_seq, 12);
    assert_int_equal(out.nchanges, 2);
    const ts_change *ch = assert_change(out, items[0], 0, TS_CH_WAITLISTED, 1, 11, 3);
    assert_true(ch->has_position);
    assert_int_equal(ch->position, 2);
    assert_string_equal(ch->name, "Person 3");
    assert_string_equal(ch->email, "p3@example.org");
    ch = assert_change(out, items[1], 0, TS_CH_WAITLISTED, 1, 12, 4);
    assert_int_equal(ch->position, 3);
    assert_int_equal(items[2].nchanges + items[3].nchanges, 0);
}

/* Registered, holding a seat, waitlisted: each refused as such, for a
 * registration with or without the waitlist and for a hold. */
static void someone_with_a_seat_or_a_place_is_told_so(void **state) {
    fx_begin(__func__);
    fx_event(1, 2, FUTURE);
    fx_registered(1, 1, 0x901, none);
    fx_held(1, 2, 0x920, NOW + MINUTE);
    fx_waiting(1, 3, 0x903, none);
    ts_batch_item items[] = {reg(1, 1),  hold(1, 1, MINUTE), regw(1, 2),
                             reg(1, 2),  hold(1, 2, MINUTE), reg(1, 3),
                             regw(1, 3), hold(1, 3, MINUTE)};
    ts_decisions out = fx_decide(*state, items, 8);
    assert_outcome(items[0], TS_OUT_ALREADY_REGISTERED);
    assert_user(items[0], 1);
    assert_outcome(items[1], TS_OUT_ALREADY_REGISTERED);
    assert_user(items[1], 1);
    for (int i = 2; i < 5; i++)
        assert_outcome(items[i], TS_OUT_ALREADY_HELD);
    assert_string_equal(items[2].reply.message, "User already holds a seat");
    for (int i = 5; i < 8; i++)
        assert_outcome(items[i], TS_OUT_ALREADY_WAITLISTED);
    assert_int_equal(out.nchanges + out.nregistrations + out.nwaits + out.nholds, 0);
}

static void a_waitlisted_person_cancels_and_the_line_closes_up(void **state) {
    fx_begin(__func__);
    fx_event(1, 1, FUTURE);
    fx_registered(1, 1, 0x901, none);
    fx_waiting(1, 2, 0x902, digest(2));
    fx_waiting(1, 3, 0x903, digest(3));
    fx_waiting(1, 4, 0x904, none);
    ts_batch_item items[] = {cancel(1, 3), cancel(1, 3), regw(1, 5)};
    items[0].cmd.u.cancel.token_sha256 = digest(2);
    items[1].cmd.u.cancel.token_sha256 = digest(3);
    ts_decisions out = fx_decide(*state, items, 3);
    assert_outcome(items[0], TS_OUT_FORBIDDEN);
    assert_outcome(items[1], TS_OUT_CANCELLED);
    assert_user(items[1], 3);
    assert_outcome(items[2], TS_OUT_WAITLISTED);
    assert_int_equal(items[2].reply.position, 3); /* 2 and 4 before */
    assert_int_equal(out.nsteps, 1);              /* no seat freed */
    assert_int_equal(out.nunwaits, 1);
    assert_string_equal(out.unwaits[0].user_id, items[1].cmd.u.cancel.user_id);
    assert_int_equal(out.nwaits, 1);
    assert_int_equal(out.waits[0].seq, 4);
    const ts_change *ch = assert_change(out, items[1], 0, TS_CH_REGISTRATION_CANCELLED, 1, 11, 3);
    assert_true(ch->has_position);
    assert_int_equal(ch->position, 2);
    assert_change(out, items[2], 0, TS_CH_WAITLISTED, 1, 12, 5);
    assert_int_equal(out.counters[0].waitlisted, 3);
    assert_false(fx.t.line[1][3].live);
}

static void a_cancellation_promotes_the_oldest_waiter(void **state) {
    ts_decider *d = *state;
    fx_begin(__func__);
    fx_event(1, 2, FUTURE);
    fx_registered(1, 1, 0x901, none);
    fx_registered(1, 2, 0x902, none);
    fx_waiting(1, 7, 0x907, digest(7));
    fx_waiting(1, 8, 0x908, digest(8));
    ts_batch_item it = cancel(1, 1);
    ts_decisions out = fx_decide(d, &it, 1);
    assert_outcome(it, TS_OUT_CANCELLED);
    assert_int_equal(it.nchanges, 2);
    assert_int_equal(it.first_change, 0);
    const ts_change *ch = assert_change(out, it, 0, TS_CH_REGISTRATION_CANCELLED, 1, 11, 1);
    assert_false(ch->has_position);
    ch = assert_change(out, it, 1, TS_CH_PROMOTED, 1, 12, 7);
    assert_string_equal(ch->name, "Person 7");
    assert_string_equal(ch->email, "p7@example.org");
    assert_int_equal(out.nsteps, 2);
    assert_int_equal(out.steps[0].ends_with, TS_STEP_FREE);
    assert_int_equal(out.steps[0].registrations_end, 0);
    assert_int_equal(out.steps[0].u.cancel.last_seat, 2);
    assert_int_equal(out.nregistrations, 1);
    const ts_row_registration *r = &out.registrations[0];
    assert_int_equal(r->seat, 2);
    assert_false(r->held);
    assert_string_equal(r->name, "Person 7");
    char cmd[TS_UUID_LEN + 1];
    uuid_of(cmd, K_COMMAND, 0x907);
    assert_string_equal(r->command_id, cmd); /* the registration its register made */
    assert_memory_equal(r->cancel_token->bytes, digest(7).bytes, TS_SHA256_LEN);
    assert_int_equal(out.nunwaits, 1);
    assert_int_equal(out.nwaits, 0);
    assert_int_equal(out.counters[0].registered, 2);
    assert_int_equal(out.counters[0].waitlisted, 1);
    /* the promoted registration cancels with its token, and the next waits no more */
    it = cancel(1, 7);
    it.cmd.u.cancel.token_sha256 = digest(7);
    out = fx_decide(d, &it, 1);
    assert_outcome(it, TS_OUT_CANCELLED);
    assert_change(out, it, 1, TS_CH_PROMOTED, 1, 14, 8);
    assert_true(fx.t.seats[1][8].live);
    assert_int_equal(fx.t.ev[1].waitlisted, 0);
}

static void promotions_are_oldest_first_in_the_batch_and_across_batches(void **state) {
    fx_begin(__func__);
    fx_event(1, 1, FUTURE);
    fx_registered(1, 1, 0x901, none);
    fx_waiting(1, 7, 0x907, none);
    ts_batch_item items[] = {regw(1, 2), cancel(1, 1), cancel(1, 7), cancel(1, 2)};
    items[0].cmd.u.reg.cancel_token_sha256 = digest(2);
    items[3].cmd.u.cancel.token_sha256 = digest(2);
    ts_decisions out = fx_decide(*state, items, 4);
    assert_outcome(items[0], TS_OUT_WAITLISTED);
    assert_int_equal(items[0].reply.position, 2);
    assert_outcome(items[1], TS_OUT_CANCELLED);
    assert_change(out, items[1], 1, TS_CH_PROMOTED, 1, 13, 7);
    assert_outcome(items[2], TS_OUT_CANCELLED);
    assert_change(out, items[2], 1, TS_CH_PROMOTED, 1, 15, 2);
    assert_outcome(items[3], TS_OUT_CANCELLED); /* the token of the place goes with the seat */
    assert_int_equal(items[3].nchanges, 1);
    assert_int_equal(out.nregistrations, 2);
    assert_string_equal(out.registrations[1].command_id, items[0].cmd.command_id);
    assert_int_equal(out.nwaits, 0); /* joined and left in the batch */
    assert_int_equal(out.nunwaits, 1);
    assert_string_equal(out.unwaits[0].user_id, items[2].cmd.u.cancel.user_id);
    assert_int_equal(out.counters[0].registered, 0);
    assert_int_equal(out.counters[0].waitlisted, 0);
    assert_int_equal(out.counters[0].stream_seq, 16);
}

/* ------------------------------------------------------------ holds */

static void a_hold_takes_a_seat_and_refuses_a_second(void **state) {
    fx_begin(__func__);
    fx_event(1, 2, FUTURE);
    fx_registered(1, 1, 0x901, none);
    ts_batch_item items[] = {hold(1, 2, MINUTE), hold(1, 3, MINUTE), hold(1, 2, MINUTE),
                             reg(1, 2),          hold(1, 1, MINUTE), regw(1, 3)};
    ts_decisions out = fx_decide(*state, items, 6);
    unsigned h = command_no(&items[0]);
    assert_outcome(items[0], TS_OUT_HELD);
    assert_user(items[0], 2);
    assert_string_equal(items[0].reply.hold_id, items[0].cmd.command_id);
    assert_int_equal(items[0].reply.expires_at_ms, NOW + MINUTE);
    assert_outcome(items[1], TS_OUT_EVENT_FULL); /* a hold never waits */
    assert_string_equal(items[1].reply.hold_id, "");
    assert_int_equal(items[1].reply.expires_at_ms, 0);
    assert_outcome(items[2], TS_OUT_ALREADY_HELD);
    assert_outcome(items[3], TS_OUT_ALREADY_HELD);
    assert_outcome(items[4], TS_OUT_ALREADY_REGISTERED);
    assert_user(items[4], 1);
    assert_outcome(items[5], TS_OUT_WAITLISTED);
    assert_int_equal(items[5].reply.position, 1);
    assert_int_equal(out.nregistrations, 1);
    const ts_row_registration *r = &out.registrations[0];
    assert_true(r->held);
    assert_hold_id(r->hold_id, h);
    assert_string_equal(r->command_id, items[0].cmd.command_id);
    assert_int_equal(r->seat, 2);
    assert_int_equal(out.nholds, 1);
    assert_hold_id(out.holds[0].hold_id, h);
    assert_int_equal(out.holds[0].state, TS_HOLD_HELD);
    assert_int_equal(out.holds[0].expires_at_ms, NOW + MINUTE);
    assert_int_equal(out.counters[0].held, 1);
    assert_int_equal(out.counters[0].registered, 1);
    const ts_change *ch = assert_change(out, items[0], 0, TS_CH_HOLD_PLACED, 1, 11, 2);
    assert_hold_id(ch->hold_id, h);
    assert_true(ch->has_expires_at);
    assert_int_equal(ch->expires_at_ms, NOW + MINUTE);
    assert_string_equal(ch->name, "Person 2");
    assert_change(out, items[5], 0, TS_CH_WAITLISTED, 1, 12, 3);
    assert_int_equal(out.nchanges, 2);
}

/* A hold expires when a command of its event is issued after its expiry:
 * at expires_at it still holds. */
static void a_hold_expires_only_after_its_expiry(void **state) {
    ts_decider *d = *state;
    fx_begin(__func__);
    fx_event(1, 1, FUTURE);
    ts_batch_item items[] = {at(hold(1, 2, 1000), NOW), at(reg(1, 3), NOW + 1000),
                             at(reg(1, 4), NOW + 1001)};
    ts_decisions out = fx_decide(d, items, 3);
    unsigned h = command_no(&items[0]);
    assert_outcome(items[0], TS_OUT_HELD);
    assert_outcome(items[1], TS_OUT_EVENT_FULL);
    assert_int_equal(items[1].nchanges, 0);
    assert_outcome(items[2], TS_OUT_REGISTERED);
    const ts_change *ch = assert_change(out, items[2], 0, TS_CH_HOLD_EXPIRED, 1, 12, 2);
    assert_hold_id(ch->hold_id, h);
    assert_change(out, items[2], 1, TS_CH_REGISTERED, 1, 13, 4);
    assert_int_equal(out.nsteps, 2);
    assert_int_equal(out.steps[0].ends_with, TS_STEP_FREE);
    assert_string_equal(out.steps[0].u.cancel.user_id, items[0].user_id);
    assert_int_equal(out.steps[0].u.cancel.last_seat, 1);
    assert_int_equal(out.registrations[1].seat, 1);
    assert_int_equal(out.nholds, 1);
    assert_int_equal(out.holds[0].state, TS_HOLD_EXPIRED);
    assert_int_equal(out.counters[0].held, 0);
    assert_int_equal(out.counters[0].registered, 1);

    /* a confirmation at the very expiry confirms */
    fx_begin(__func__);
    fx_event(1, 1, FUTURE);
    ts_batch_item two[2] = {at(hold(1, 2, 1000), NOW)};
    two[1] = at(confirm(1, command_no(&two[0]), 0), NOW + 1000);
    fx_decide(d, two, 2);
    assert_outcome(two[1], TS_OUT_REGISTERED);
    assert_user(two[1], 2);
}

/* The holds of the event expire before the command is decided; the seat
 * they free goes to the waitlist first. */
static void
an_expired_hold_frees_its_seat_before_the_command_and_the_line_comes_first(void **state) {
    ts_decider *d = *state;
    fx_begin(__func__);
    fx_event(1, 1, FUTURE);
    fx_held(1, 2, 0x920, NOW - 1);
    ts_batch_item it = reg(1, 3);
    ts_decisions out = fx_decide(d, &it, 1);
    assert_outcome(it, TS_OUT_REGISTERED);
    assert_change(out, it, 0, TS_CH_HOLD_EXPIRED, 1, 11, 2);
    assert_change(out, it, 1, TS_CH_REGISTERED, 1, 12, 3);
    assert_int_equal(fx.t.holds[0].state, TS_HOLD_EXPIRED);

    fx_begin(__func__);
    fx_event(1, 1, FUTURE);
    fx_held(1, 2, 0x920, NOW - 1);
    fx_waiting(1, 7, 0x907, none);
    it = regw(1, 3);
    out = fx_decide(d, &it, 1);
    assert_outcome(it, TS_OUT_WAITLISTED);
    assert_int_equal(it.reply.position, 1);
    assert_change(out, it, 0, TS_CH_HOLD_EXPIRED, 1, 11, 2);
    assert_change(out, it, 1, TS_CH_PROMOTED, 1, 12, 7);
    assert_change(out, it, 2, TS_CH_WAITLISTED, 1, 13, 3);
    assert_int_equal(out.nunwaits, 1);
    assert_true(fx.t.seats[1][7].live);

    /* at its expiry a stored hold still holds */
    fx_begin(__func__);
    fx_event(1, 1, FUTURE);
    fx_held(1, 2, 0x920, NOW);
    it = reg(1, 3);
    out = fx_decide(d, &it, 1);
    assert_outcome(it, TS_OUT_EVENT_FULL);
    assert_int_equal(out.nchanges, 0);
}

static void holds_expire_in_order_of_expiry_then_hold_id(void **state) {
    fx_begin(__func__);
    fx_event(1, 3, FUTURE);
    fx_held(1, 2, 0x931, NOW - 5);
    fx_held(1, 3, 0x930, NOW - 5);
    fx_held(1, 4, 0x932, NOW - 10);
    ts_batch_item it = reg(1, 5);
    ts_decisions out = fx_decide(*state, &it, 1);
    assert_outcome(it, TS_OUT_REGISTERED);
    assert_hold_id(assert_change(out, it, 0, TS_CH_HOLD_EXPIRED, 1, 11, 4)->hold_id, 0x932);
    assert_hold_id(assert_change(out, it, 1, TS_CH_HOLD_EXPIRED, 1, 12, 3)->hold_id, 0x930);
    assert_hold_id(assert_change(out, it, 2, TS_CH_HOLD_EXPIRED, 1, 13, 2)->hold_id, 0x931);
    assert_change(out, it, 3, TS_CH_REGISTERED, 1, 14, 5);
    assert_int_equal(out.nholds, 3);
}

static void a_confirmed_hold_keeps_its_seat_as_a_registration(void **state) {
    ts_decider *d = *state;
    fx_begin(__func__);
    fx_event(1, 2, FUTURE);
    fx_held(1, 2, 0x920, NOW + 5000);
    ts_batch_item items[] = {confirm(1, 0x920, 5), confirm(1, 0x920, 6), release(1, 0x920),
                             hold(1, 2, MINUTE), regw(1, 3)};
    ts_decisions out = fx_decide(d, items, 5);
    assert_outcome(items[0], TS_OUT_REGISTERED);
    assert_user(items[0], 2);
    assert_outcome(items[1], TS_OUT_ALREADY_REGISTERED);
    assert_outcome(items[2], TS_OUT_HOLD_NOT_FOUND);
    assert_outcome(items[3], TS_OUT_ALREADY_REGISTERED);
    assert_outcome(items[4], TS_OUT_REGISTERED); /* the other seat */
    const ts_change *ch = assert_change(out, items[0], 0, TS_CH_HOLD_CONFIRMED, 1, 11, 2);
    assert_hold_id(ch->hold_id, 0x920);
    size_t confirms = 0;
    for (size_t i = 0; i < out.nsteps; i++)
        if (out.steps[i].ends_with == TS_STEP_CONFIRM) {
            const ts_row_confirm *c = &out.steps[i].u.confirm;
            assert_string_equal(c->user_id, items[3].user_id);
            assert_hold_id(c->hold_id, 0x920);
            assert_string_equal(c->command_id, items[0].cmd.command_id);
            assert_memory_equal(c->cancel_token->bytes, digest(5).bytes, TS_SHA256_LEN);
            confirms++;
        }
    assert_int_equal(confirms, 1);
    assert_int_equal(out.nholds, 1);
    assert_int_equal(out.holds[0].state, TS_HOLD_CONFIRMED);
    assert_int_equal(out.counters[0].registered, 2);
    assert_int_equal(out.counters[0].held, 0);
    assert_false(fx.t.seats[1][2].held);
    /* the registration cancels with the confirmation's token */
    ts_batch_item it = cancel(1, 2);
    it.cmd.u.cancel.token_sha256 = digest(5);
    fx_decide(d, &it, 1);
    assert_outcome(it, TS_OUT_CANCELLED);
}

static void a_confirm_or_release_after_expiry_is_told_it_expired(void **state) {
    fx_begin(__func__);
    fx_event(1, 1, FUTURE);
    fx_held(1, 2, 0x920, NOW - 1);
    fx_event(2, 1, FUTURE);
    fx_held(2, 3, 0x921, FUTURE);
    ts_batch_item items[] = {confirm(1, 0x920, 5), release(1, 0x920),    expire(1, 0x920),
                             confirm(1, 0x999, 0), confirm(1, 0x921, 0), release(1, 0x921),
                             confirm(3, 0x920, 0)};
    ts_decisions out = fx_decide(*state, items, 7);
    assert_outcome(items[0], TS_OUT_HOLD_EXPIRED);
    assert_string_equal(items[0].reply.message, "Hold expired");
    assert_change(out, items[0], 0, TS_CH_HOLD_EXPIRED, 1, 11, 2);
    assert_int_equal(items[0].nchanges, 1);
    assert_outcome(items[1], TS_OUT_HOLD_EXPIRED);
    assert_outcome(items[2], TS_OUT_HOLD_EXPIRED);
    assert_int_equal(items[1].nchanges + items[2].nchanges, 0);
    assert_outcome(items[3], TS_OUT_HOLD_NOT_FOUND);
    assert_string_equal(items[3].reply.message, "Hold not found");
    assert_outcome(items[4], TS_OUT_HOLD_NOT_FOUND); /* a hold of another event */
    assert_outcome(items[5], TS_OUT_HOLD_NOT_FOUND);
    assert_outcome(items[6], TS_OUT_EVENT_NOT_FOUND);
    assert_true(fx.t.seats[2][3].live);
}

static void a_released_hold_gives_its_seat_to_the_line(void **state) {
    fx_begin(__func__);
    fx_event(1, 1, FUTURE);
    fx_held(1, 2, 0x920, NOW + 5000);
    fx_waiting(1, 7, 0x907, none);
    ts_batch_item items[] = {release(1, 0x920), release(1, 0x920), confirm(1, 0x920, 0),
                             expire(1, 0x920)};
    ts_decisions out = fx_decide(*state, items, 4);
    assert_outcome(items[0], TS_OUT_RELEASED);
    assert_string_equal(items[0].reply.message, "");
    assert_hold_id(assert_change(out, items[0], 0, TS_CH_HOLD_RELEASED, 1, 11, 2)->hold_id, 0x920);
    assert_change(out, items[0], 1, TS_CH_PROMOTED, 1, 12, 7);
    assert_outcome(items[1], TS_OUT_HOLD_NOT_FOUND);
    assert_outcome(items[2], TS_OUT_HOLD_NOT_FOUND);
    assert_outcome(items[3], TS_OUT_HOLD_NOT_FOUND);
    assert_int_equal(out.steps[0].ends_with, TS_STEP_FREE);
    assert_string_equal(out.steps[0].u.cancel.user_id, out.holds[0].user_id);
    assert_int_equal(out.holds[0].state, TS_HOLD_RELEASED);
    assert_true(fx.t.seats[1][7].live);
    assert_false(fx.t.seats[1][2].live);
}

/* The sweeper's ExpireHold: HOLD_EXPIRED when the hold is expired at its
 * issue time, now or before; else HOLD_NOT_FOUND. */
static void the_sweepers_expire_expires_what_is_past_its_expiry(void **state) {
    fx_begin(__func__);
    fx_event(1, 3, FUTURE);
    fx_held(1, 2, 0x920, NOW + 1000);
    fx_held(1, 3, 0x921, NOW - 5);
    fx_hold(0x922, 1, 4, TS_HOLD_EXPIRED, NOW - 100);
    fx_hold(0x923, 1, 5, TS_HOLD_RELEASED, NOW - 100);
    ts_batch_item items[] = {at(expire(1, 0x920), NOW + 1000), at(expire(1, 0x920), NOW + 1001),
                             at(expire(1, 0x922), NOW + 1001), at(expire(1, 0x923), NOW + 1001),
                             at(expire(1, 0x999), NOW + 1001), at(expire(3, 0x920), NOW + 1001)};
    ts_decisions out = fx_decide(*state, items, 6);
    assert_outcome(items[0], TS_OUT_HOLD_NOT_FOUND);
    /* the other hold, past its expiry, expired before it was decided */
    assert_hold_id(assert_change(out, items[0], 0, TS_CH_HOLD_EXPIRED, 1, 11, 3)->hold_id, 0x921);
    assert_outcome(items[1], TS_OUT_HOLD_EXPIRED);
    assert_hold_id(assert_change(out, items[1], 0, TS_CH_HOLD_EXPIRED, 1, 12, 2)->hold_id, 0x920);
    assert_int_equal(items[1].nchanges, 1);
    assert_outcome(items[2], TS_OUT_HOLD_EXPIRED);
    assert_int_equal(items[2].nchanges, 0);
    assert_outcome(items[3], TS_OUT_HOLD_NOT_FOUND);
    assert_outcome(items[4], TS_OUT_HOLD_NOT_FOUND);
    assert_outcome(items[5], TS_OUT_EVENT_NOT_FOUND);
    assert_int_equal(out.counters[0].held, 0);
}

/* ------------------------------------------------------------ updates and cancellation */

static void an_update_changes_the_fields_it_names(void **state) {
    ts_decider *d = *state;
    fx_begin(__func__);
    fx_event(1, 3, FUTURE);
    fx.t.ev[1].has_description = true;
    snprintf(fx.t.ev[1].description, TEXT, "Old");
    fx_registered(1, 1, 0x901, none);
    fx_registered(1, 2, 0x902, none);
    ts_batch_item items[] = {update(1), update_capacity(1, 1), update_capacity(1, 2), update(2)};
    items[0].cmd.u.update.has_title = true;
    snprintf(items[0].cmd.u.update.title, sizeof items[0].cmd.u.update.title, "New");
    items[0].cmd.u.update.has_description = true; /* "" clears it */
    items[0].cmd.u.update.has_starts_at = true;
    items[0].cmd.u.update.starts_at_ms = FUTURE + 1;
    ts_decisions out = fx_decide(d, items, 4);
    assert_outcome(items[0], TS_OUT_UPDATED);
    assert_string_equal(items[0].reply.user_id, "");
    const ts_change *ch = assert_change(out, items[0], 0, TS_CH_EVENT_UPDATED, 1, 11, -1);
    assert_string_equal(ch->title, "New");
    assert_string_equal(ch->description, "");
    assert_null(ch->location);
    assert_true(ch->has_starts_at);
    assert_int_equal(ch->starts_at_ms, FUTURE + 1);
    assert_false(ch->has_capacity);
    assert_outcome(items[1], TS_OUT_CAPACITY_BELOW_TAKEN);
    assert_string_equal(items[1].reply.message, "Capacity is below the seats taken");
    assert_int_equal(items[1].nchanges, 0);
    assert_outcome(items[2], TS_OUT_UPDATED);
    ch = assert_change(out, items[2], 0, TS_CH_EVENT_UPDATED, 1, 12, -1);
    assert_true(ch->has_capacity);
    assert_int_equal(ch->capacity, 2);
    assert_null(ch->title);
    assert_outcome(items[3], TS_OUT_EVENT_NOT_FOUND);
    assert_int_equal(out.nsteps, 2);
    assert_int_equal(out.steps[0].ends_with, TS_STEP_CAPACITY);
    assert_int_equal(out.steps[0].u.capacity.capacity, 2);
    assert_int_equal(out.steps[0].u.capacity.registered, 2);
    assert_int_equal(out.steps[0].u.capacity.held, 0);
    assert_string_equal(out.counters[0].title, "New");
    assert_string_equal(out.counters[0].description, "");
    assert_null(out.counters[0].location);
    assert_true(out.counters[0].has_starts_at);
    const db_event *ev = &fx.t.ev[1];
    assert_string_equal(ev->title, "New");
    assert_false(ev->has_description);
    assert_string_equal(ev->location, "Hall");
    assert_int_equal(ev->starts_at_ms, FUTURE + 1);
    assert_int_equal(ev->capacity, 2);
    /* the new start counts for the registrations after it */
    ts_batch_item two[] = {update(1), at(reg(1, 3), NOW + 10)};
    two[0].cmd.u.update.has_starts_at = true;
    two[0].cmd.u.update.starts_at_ms = NOW + 10;
    fx_decide(d, two, 2);
    assert_outcome(two[1], TS_OUT_PAST_EVENT);
}

/* A capacity lowered after cancellations of the batch: the capacity row
 * carries the counters at that point, so the events row's checks hold. */
static void
a_capacity_lowered_after_cancellations_carries_the_counters_of_that_point(void **state) {
    fx_begin(__func__);
    fx_event(1, 3, FUTURE);
    for (unsigned p = 1; p <= 3; p++)
        fx_registered(1, p, 0x900 + p, none);
    ts_batch_item items[] = {cancel(1, 1), cancel(1, 2), update_capacity(1, 1), reg(1, 4)};
    ts_decisions out = fx_decide(*state, items, 4);
    assert_outcome(items[2], TS_OUT_UPDATED);
    assert_outcome(items[3], TS_OUT_EVENT_FULL);
    assert_int_equal(out.steps[2].ends_with, TS_STEP_CAPACITY);
    assert_int_equal(out.steps[2].u.capacity.registered, 1);
    assert_int_equal(fx.t.ev[1].capacity, 1);
}

static void a_raised_capacity_promotes_the_line(void **state) {
    fx_begin(__func__);
    fx_event(1, 2, FUTURE);
    fx_registered(1, 1, 0x901, none);
    fx_held(1, 2, 0x920, NOW + MINUTE);
    fx_waiting(1, 7, 0x907, none);
    fx_waiting(1, 8, 0x908, none);
    fx_waiting(1, 9, 0x909, none);
    ts_batch_item it = update_capacity(1, 4);
    ts_decisions out = fx_decide(*state, &it, 1);
    assert_outcome(it, TS_OUT_UPDATED);
    assert_int_equal(it.nchanges, 3);
    assert_change(out, it, 0, TS_CH_EVENT_UPDATED, 1, 11, -1);
    assert_change(out, it, 1, TS_CH_PROMOTED, 1, 12, 7);
    assert_change(out, it, 2, TS_CH_PROMOTED, 1, 13, 8);
    assert_int_equal(out.steps[0].ends_with, TS_STEP_CAPACITY);
    assert_int_equal(out.steps[0].registrations_end, 0); /* the seats come after the capacity */
    assert_int_equal(out.steps[0].u.capacity.capacity, 4);
    assert_int_equal(out.steps[0].u.capacity.registered, 1);
    assert_int_equal(out.steps[0].u.capacity.held, 1);
    assert_int_equal(out.nregistrations, 2);
    assert_int_equal(out.registrations[0].seat, 3);
    assert_int_equal(out.registrations[0].capacity, 4);
    assert_int_equal(out.registrations[1].seat, 4);
    assert_int_equal(out.nunwaits, 2);
    assert_int_equal(out.counters[0].waitlisted, 1);
    assert_true(fx.t.line[1][9].live);
}

static void a_cancelled_event_refuses_what_would_change_it(void **state) {
    ts_decider *d = *state;
    fx_begin(__func__);
    fx_event(1, 3, FUTURE);
    fx_registered(1, 1, 0x901, none);
    fx_held(1, 2, 0x920, NOW + MINUTE);
    fx_held(1, 4, 0x921, NOW + MINUTE);
    ts_batch_item items[] = {cancel_event(1),     reg(1, 3),         regw(1, 3),
                             hold(1, 3, MINUTE),  update(1),         confirm(1, 0x920, 0),
                             cancel_event(1),     release(1, 0x921), cancel(1, 1),
                             create(1, 1, FUTURE)};
    ts_decisions out = fx_decide(d, items, 10);
    assert_outcome(items[0], TS_OUT_CANCELLED);
    assert_string_equal(items[0].reply.user_id, "");
    assert_change(out, items[0], 0, TS_CH_EVENT_CANCELLED, 1, 11, -1);
    for (int i = 1; i < 7; i++) {
        assert_outcome(items[i], TS_OUT_EVENT_CANCELLED);
        assert_int_equal(items[i].nchanges, 0);
    }
    assert_string_equal(items[1].reply.message, "Event is cancelled");
    assert_outcome(items[7], TS_OUT_RELEASED);
    assert_outcome(items[8], TS_OUT_CANCELLED);
    assert_outcome(items[9], TS_OUT_INVALID);
    assert_true(out.counters[0].cancelled);
    assert_true(fx.t.ev[1].cancelled);
    /* cancelled before it is past */
    ts_batch_item it = at(reg(1, 3), FUTURE + 1);
    fx_decide(d, &it, 1);
    assert_outcome(it, TS_OUT_EVENT_CANCELLED);
}

/* Seats freed in a cancelled event go to no one; its holds still expire. */
static void no_one_is_promoted_in_a_cancelled_event(void **state) {
    fx_begin(__func__);
    fx_event(1, 1, FUTURE);
    fx_registered(1, 1, 0x901, none);
    fx_waiting(1, 7, 0x907, none);
    fx_event(2, 1, FUTURE);
    fx_held(2, 2, 0x920, NOW - 1);
    fx_waiting(2, 8, 0x908, none);
    fx.t.ev[2].cancelled = true;
    ts_batch_item items[] = {cancel_event(1), cancel(1, 1), reg(2, 3)};
    ts_decisions out = fx_decide(*state, items, 3);
    assert_outcome(items[1], TS_OUT_CANCELLED);
    assert_int_equal(items[1].nchanges, 1);
    assert_outcome(items[2], TS_OUT_EVENT_CANCELLED);
    assert_change(out, items[2], 0, TS_CH_HOLD_EXPIRED, 2, 11, 2);
    assert_int_equal(items[2].nchanges, 1);
    assert_int_equal(out.nregistrations, 0);
    assert_true(fx.t.line[1][7].live && fx.t.line[2][8].live);
    assert_int_equal(fx.t.ev[1].registered + fx.t.ev[2].held, 0);
}

/* ------------------------------------------------------------ replays and changes */

static void replays_answer_with_position_hold_and_expiry(void **state) {
    ts_decider *d = *state;
    fx_begin(__func__);
    fx_event(1, 1, FUTURE);
    fx_registered(1, 1, 0x901, none);
    fx_command(0x950, TS_OUT_WAITLISTED, 3, 4, 0, 0, digest(1));
    fx_command(0x951, TS_OUT_HELD, 2, 0, 0x951, NOW + 777, digest(1));
    ts_batch_item items[] = {regw(1, 3),         hold(1, 2, MINUTE), regw(1, 3),
                             hold(1, 2, MINUTE), hold(1, 5, MINUTE), hold(1, 5, MINUTE)};
    uuid_of(items[0].cmd.command_id, K_COMMAND, 0x950);
    uuid_of(items[1].cmd.command_id, K_COMMAND, 0x951);
    items[2] = items[0];
    items[2].cmd.request_sha256 = digest(2);
    items[3] = items[1];
    items[3].cmd.request_sha256 = digest(2);
    items[5] = items[4];
    ts_decisions out = fx_decide(d, items, 6);
    assert_true(items[0].replayed);
    assert_outcome(items[0], TS_OUT_WAITLISTED);
    assert_int_equal(items[0].reply.position, 4);
    assert_user(items[0], 3);
    assert_int_equal(items[0].reply.applied_at_ms, NOW - 5000);
    assert_true(items[1].replayed);
    assert_outcome(items[1], TS_OUT_HELD);
    assert_hold_id(items[1].reply.hold_id, 0x951);
    assert_int_equal(items[1].reply.expires_at_ms, NOW + 777);
    for (int i = 2; i < 4; i++) { /* another request: nothing of the first */
        assert_true(items[i].replayed);
        assert_outcome(items[i], TS_OUT_IDEMPOTENCY_KEY_REUSED);
        assert_int_equal(items[i].reply.position, 0);
        assert_string_equal(items[i].reply.hold_id, "");
        assert_int_equal(items[i].reply.expires_at_ms, 0);
        assert_string_equal(items[i].reply.user_id, "");
    }
    assert_outcome(items[4], TS_OUT_EVENT_FULL);
    assert_true(items[5].replayed);
    assert_outcome(items[5], TS_OUT_EVENT_FULL);
    assert_int_equal(out.nprocessed, 1);
    assert_int_equal(out.nchanges, 0);

    /* in the batch: a hold placed and replayed */
    fx_begin(__func__);
    fx_event(1, 1, FUTURE);
    ts_batch_item two[] = {hold(1, 5, MINUTE), hold(1, 5, MINUTE)};
    two[1] = at(two[0], NOW + 5);
    out = fx_decide(d, two, 2);
    assert_true(two[1].replayed);
    assert_outcome(two[1], TS_OUT_HELD);
    assert_string_equal(two[1].reply.hold_id, two[0].cmd.command_id);
    assert_int_equal(two[1].reply.expires_at_ms, NOW + MINUTE);
    assert_int_equal(two[1].nchanges, 0);
    assert_int_equal(out.nholds, 1);
    /* stored: its processed row carries them */
    const db_command *c = db_command_of(&fx, command_no(&two[0]));
    assert_non_null(c);
    assert_string_equal(c->hold_id, two[0].cmd.command_id);
    assert_int_equal(c->expires_at_ms, NOW + MINUTE);
}

static void changes_number_each_event_on_from_its_stored_sequence(void **state) {
    fx_begin(__func__);
    fx_event(1, 2, FUTURE);
    ts_batch_item items[] = {at(reg(1, 1), NOW + 1), at(create(2, 2, FUTURE), NOW + 2),
                             at(reg(2, 1), NOW + 3), at(reg(1, 2), NOW + 4),
                             at(update(2), NOW + 5), at(reg(3, 1), NOW + 6)};
    items[4].cmd.u.update.has_location = true;
    snprintf(items[4].cmd.u.update.location, sizeof items[4].cmd.u.update.location, "Annex");
    ts_decisions out = fx_decide(*state, items, 6);
    assert_int_equal(out.nchanges, 5);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(items[i].first_change, i);
        assert_int_equal(items[i].nchanges, 1);
    }
    assert_int_equal(items[5].nchanges, 0);
    const ts_change *ch = assert_change(out, items[0], 0, TS_CH_REGISTERED, 1, 11, 1);
    assert_string_equal(ch->name, "Person 1");
    assert_string_equal(ch->email, "p1@example.org");
    ch = assert_change(out, items[1], 0, TS_CH_EVENT_CREATED, 2, 1, -1);
    assert_string_equal(ch->title, "Event 2");
    assert_null(ch->description);
    assert_string_equal(ch->location, "Hall");
    assert_true(ch->has_starts_at && ch->has_capacity);
    assert_int_equal(ch->starts_at_ms, FUTURE);
    assert_int_equal(ch->capacity, 2);
    assert_change(out, items[2], 0, TS_CH_REGISTERED, 2, 2, 1);
    assert_change(out, items[3], 0, TS_CH_REGISTERED, 1, 12, 2);
    ch = assert_change(out, items[4], 0, TS_CH_EVENT_UPDATED, 2, 3, -1);
    assert_string_equal(ch->location, "Annex");
    assert_null(ch->title);
    assert_int_equal(fx.t.ev[1].stream_seq, 12);
    assert_int_equal(fx.t.ev[2].stream_seq, 3);
    assert_string_equal(fx.t.ev[2].location, "Annex");
}

/* ------------------------------------------------------------ lookups skipped */

static void lookups_skipped_a_full_event_or_a_waitlist_needs_them(void **state) {
    ts_decider *d = *state;
    fx_begin(__func__);
    fx_event(1, 1, FUTURE);
    fx_registered(1, 1, 0x901, none);
    fx_event(2, 3, FUTURE);
    ts_decisions out;
    ts_batch_item it = reg(1, 2);
    assert_int_equal(fx_optimistic(d, &it, 1, &out), TS_DECIDE_NEEDS_LOOKUPS);
    it = regw(1, 2);
    assert_int_equal(fx_optimistic(d, &it, 1, &out), TS_DECIDE_NEEDS_LOOKUPS);
    it = hold(1, 2, MINUTE);
    assert_int_equal(fx_optimistic(d, &it, 1, &out), TS_DECIDE_NEEDS_LOOKUPS);
    /* full in the batch, with a waitlist */
    ts_batch_item full[] = {reg(2, 1), hold(2, 2, MINUTE), reg(2, 3), regw(2, 4)};
    assert_int_equal(fx_optimistic(d, full, 4, &out), TS_DECIDE_NEEDS_LOOKUPS);
    /* what no stored seat can change is decided without them, and written */
    ts_batch_item ok[] = {reg(2, 1), hold(2, 2, MINUTE), create(3, 1, FUTURE), reg(3, 1),
                          reg(0, 1)};
    assert_int_equal(fx_optimistic(d, ok, 5, &out), TS_DECIDE_OK);
    assert_outcome(ok[0], TS_OUT_REGISTERED);
    assert_outcome(ok[1], TS_OUT_HELD);
    assert_outcome(ok[3], TS_OUT_REGISTERED);
    assert_outcome(ok[4], TS_OUT_EVENT_NOT_FOUND);
    assert_true(db_write(&fx, &out, true));
    /* a stored seat the optimistic batch did not know of: its insert objects */
    it = hold(2, 1, MINUTE);
    assert_int_equal(fx_optimistic(d, &it, 1, &out), TS_DECIDE_OK);
    assert_outcome(it, TS_OUT_HELD);
    assert_false(db_write(&fx, &out, true));
    fx_decide(d, &it, 1);
    assert_outcome(it, TS_OUT_ALREADY_REGISTERED);
}

/* ------------------------------------------------------------ found by the random sequences */

/* A PlaceHold sent again (a client's retry) in an optimistic batch, after
 * its hold expired: the batch does not know the command was applied, and
 * the hold was loaded as one that may expire. It must not become a second
 * hold on the same record: the write has to stop at processed_commands'
 * key, and with the lookups it is a replay. */
static void a_hold_retried_in_an_optimistic_batch_is_no_new_hold(void **state) {
    ts_decider *d = *state;
    ts_decisions out;
    /* the same request: its hold expires, and a registration follows */
    fx_begin(__func__);
    fx_event(1, 1, FUTURE);
    fx_held(1, 2, 0x920, NOW - 1);
    fx_command(0x920, TS_OUT_HELD, 2, 0, 0x920, NOW - 1, digest(1));
    ts_batch_item items[] = {hold(1, 2, MINUTE), reg(1, 3)};
    uuid_of(items[0].cmd.command_id, K_COMMAND, 0x920);
    items[0].cmd.request_sha256 = digest(1);
    assert_int_equal(ts_decider_begin(d, items, NULL, 2, true), 0);
    db_load(&fx, d, items, NULL, 2, true);
    if (decide_or_fail_if_it_hangs(d, &out) == TS_DECIDE_OK)
        assert_false(db_write(&fx, &out, true)); /* processed_commands_pkey */
    out = fx_decide(d, items, 2);
    assert_true(items[0].replayed);
    assert_outcome(items[0], TS_OUT_HELD);
    assert_outcome(items[1], TS_OUT_REGISTERED);
    assert_change(out, items[1], 0, TS_CH_HOLD_EXPIRED, 1, 11, 2);

    /* its id reused by another person: the hold that expires is still 2's */
    fx_begin(__func__);
    fx_event(1, 1, FUTURE);
    fx_held(1, 2, 0x920, NOW - 1);
    fx_command(0x920, TS_OUT_HELD, 2, 0, 0x920, NOW - 1, digest(1));
    ts_batch_item it = hold(1, 3, MINUTE);
    uuid_of(it.cmd.command_id, K_COMMAND, 0x920);
    it.cmd.request_sha256 = digest(2);
    if (fx_optimistic(d, &it, 1, &out) == TS_DECIDE_OK) {
        for (size_t i = 0; i < out.nchanges; i++)
            if (out.changes[i].type == TS_CH_HOLD_EXPIRED)
                expect_user(out.changes[i].user_id, 2, __LINE__);
        assert_false(db_write(&fx, &out, true)); /* processed_commands_pkey */
    }
    fx_decide(d, &it, 1);
    assert_outcome(it, TS_OUT_IDEMPOTENCY_KEY_REUSED);
}

/* A registration's command id reused for another person's request: the
 * seat the batch must load for a later command of the first person is
 * still loaded (apply.c loads the pairs of ts_decide_user_id()). */
static void a_command_id_reused_by_another_person_hides_no_seat(void **state) {
    fx_begin(__func__);
    fx_event(1, 3, FUTURE);
    fx_registered(1, 1, 0x901, digest(5));
    fx_command(0x901, TS_OUT_REGISTERED, 1, 0, 0, 0, digest(1));
    ts_batch_item items[] = {reg(1, 2), reg(1, 1)};
    uuid_of(items[0].cmd.command_id, K_COMMAND, 0x901);
    items[0].cmd.request_sha256 = digest(2);
    items[0].cmd.u.reg.cancel_token_sha256 = digest(6);
    fx_decide(*state, items, 2);
    assert_outcome(items[0], TS_OUT_IDEMPOTENCY_KEY_REUSED);
    assert_outcome(items[1], TS_OUT_ALREADY_REGISTERED);
}

/* "Before any command of an existing event is decided": a create refused
 * for an event that exists is one. */
static void a_refused_create_expires_the_events_holds_first(void **state) {
    fx_begin(__func__);
    fx_event(1, 1, FUTURE);
    fx_held(1, 2, 0x920, NOW - 1);
    ts_batch_item it = create(1, 5, FUTURE);
    ts_decisions out = fx_decide(*state, &it, 1);
    assert_outcome(it, TS_OUT_INVALID);
    assert_int_equal(it.nchanges, 1);
    assert_change(out, it, 0, TS_CH_HOLD_EXPIRED, 1, 11, 2);
}

/* ------------------------------------------------------------ the reference model */

/* The model knows nothing of batches, tables, rows or seats: arrays
 * indexed by event, person and hold, one command at a time, written from
 * the rules of decide.h. Where decide.h says nothing, it holds that:
 *   - replies name a user for REGISTERED, WAITLISTED, HELD, CANCELLED (of a
 *     registration), ALREADY_REGISTERED (a confirm's: the holder), RELEASED
 *     and the sweeper's HOLD_EXPIRED (the holder); position only for
 *     WAITLISTED, hold id and expiry only for HELD;
 *   - a confirm, release or expire naming a hold of another event finds
 *     none (HOLD_NOT_FOUND);
 *   - a replay expires nothing (it is not decided);
 *   - a retry rotates the token of the registration or place on the
 *     waitlist its first outcome made (REGISTERED or WAITLISTED; a seat
 *     promoted from that place too), whoever the retry names;
 *   - holds expire in cancelled events too (no one is promoted there). */
enum { RANDOM_PEOPLE = 7 };

typedef enum {
    GEN_CREATE,
    GEN_REGISTER,
    GEN_CANCEL,
    GEN_HOLD,
    GEN_CONFIRM,
    GEN_RELEASE,
    GEN_EXPIRE,
    GEN_UPDATE,
    GEN_CANCEL_EVENT,
} gen_kind;

enum { UPD_TITLE = 1, UPD_DESCRIPTION = 2, UPD_LOCATION = 4, UPD_STARTS = 8, UPD_CAPACITY = 16 };

/* A command as the generator makes it. */
typedef struct gen_command {
    gen_kind kind;
    unsigned id; /* command number: the same number is the same command id */
    unsigned event, person;
    unsigned token;   /* 0: none; a registration's or confirmation's, or the one a cancel shows */
    unsigned request; /* 0: no request digest */
    unsigned hold;    /* confirm, release, expire: the hold's number */
    unsigned fields;  /* update: UPD_* */
    unsigned text;    /* create, update: which title, description, location */
    bool waitlist;
    int64_t issued_at_ms, ttl_ms, capacity, starts_at_ms;
    bool skip; /* a message that did not decode: not a command at all */
} gen_command;

static const char *const kind_names[] = {"create",  "register", "cancel", "hold",        "confirm",
                                         "release", "expire",   "update", "cancel_event"};

static const char *describe(const gen_command *c) {
    static char buf[200];
    snprintf(buf, sizeof buf,
             "%s id %u event %u person %u token %u request %u hold %u waitlist %d fields %u "
             "capacity %lld at +%lld",
             kind_names[c->kind], c->id, c->event, c->person, c->token, c->request, c->hold,
             c->waitlist, c->fields, (long long)c->capacity, (long long)(c->issued_at_ms - NOW));
    return buf;
}

typedef enum { M_NONE, M_REGISTERED, M_HELD, M_WAITING } m_kind;

typedef struct m_pair {
    m_kind kind;
    unsigned token;   /* registered or waiting: its cancel token */
    unsigned made_by; /* registered or waiting: the command whose registration it is */
    unsigned hold;    /* held */
} m_pair;

typedef struct m_event {
    bool exists, cancelled, has_description;
    int64_t capacity, starts_at_ms, registered, held, stream_seq;
    char title[TEXT], description[TEXT], location[TEXT];
    unsigned line[PEOPLE]; /* the waitlist, first in line first */
    size_t nline;
} m_event;

typedef struct m_hold {
    bool exists;
    unsigned event, person;
    int64_t expires_at_ms;
    ts_hold_state state;
} m_hold;

typedef struct m_reply {
    unsigned id, request;
    bool replayed;
    ts_outcome outcome;
    int person; /* -1: no user id */
    int64_t position, expires_at_ms;
    int64_t applied_at_ms; /* -1: not checked */
    unsigned hold;         /* 0: no hold id */
    const char *message;
} m_reply;

typedef struct m_change {
    unsigned event, command;
    ts_change_type type;
    int person;
    unsigned hold;
    bool has_position;
    int64_t position, seq, occurred_at_ms, expires_at_ms;
} m_change;

typedef struct model {
    m_event ev[EVENTS];
    m_pair pair[EVENTS][PEOPLE];
    m_hold holds[MAX_COMMANDS + 1]; /* by number */
    m_reply done[MAX_COMMANDS];
    size_t ndone;
    m_change changes[MAX_CHANGES];
    size_t nchanges;
} model;

static m_change *model_change(model *m, unsigned e, ts_change_type type, int person,
                              unsigned hold_no, const gen_command *c) {
    if (m->nchanges == MAX_CHANGES)
        fail_msg("%s: more changes than the model holds", context);
    m_change *ch = &m->changes[m->nchanges++];
    *ch = (m_change){.event = e,
                     .command = c->id,
                     .type = type,
                     .person = person,
                     .hold = hold_no,
                     .seq = ++m->ev[e].stream_seq,
                     .occurred_at_ms = c->issued_at_ms};
    return ch;
}

/* A hold of event e, by number: NULL if there is none. */
static m_hold *model_hold(model *m, unsigned id, unsigned e) {
    if (id > MAX_COMMANDS || !m->holds[id].exists || m->holds[id].event != e)
        return NULL;
    return &m->holds[id];
}

/* Seats free, the event scheduled: the first in line take them. */
static void model_promote(model *m, unsigned e, const gen_command *c) {
    m_event *ev = &m->ev[e];
    while (!ev->cancelled && ev->registered + ev->held < ev->capacity && ev->nline > 0) {
        unsigned p = ev->line[0];
        memmove(ev->line, ev->line + 1, (ev->nline - 1) * sizeof ev->line[0]);
        ev->nline--;
        m->pair[e][p].kind = M_REGISTERED; /* its token and command stay the place's */
        ev->registered++;
        model_change(m, e, TS_CH_PROMOTED, (int)p, 0, c);
    }
}

/* Every hold of the event with expires_at < t expires, by expiry then id,
 * each seat going to the line at once. */
static void model_expire(model *m, unsigned e, const gen_command *c) {
    for (;;) {
        unsigned best = 0;
        for (unsigned id = 1; id <= MAX_COMMANDS; id++) {
            const m_hold *h = &m->holds[id];
            if (h->exists && h->event == e && h->state == TS_HOLD_HELD &&
                h->expires_at_ms < c->issued_at_ms &&
                (!best || h->expires_at_ms < m->holds[best].expires_at_ms))
                best = id;
        }
        if (!best)
            return;
        m_hold *h = &m->holds[best];
        h->state = TS_HOLD_EXPIRED;
        m->pair[e][h->person].kind = M_NONE;
        m->ev[e].held--;
        model_change(m, e, TS_CH_HOLD_EXPIRED, (int)h->person, best, c);
        model_promote(m, e, c);
    }
}

/* A registration or confirmation retried with its request and a new
 * token: the registration or place on the waitlist takes it, if that
 * command made it. */
static void model_rotate(model *m, const gen_command *c, const m_reply *first) {
    if (!c->request || !c->token ||
        (first->outcome != TS_OUT_REGISTERED && first->outcome != TS_OUT_WAITLISTED))
        return;
    /* its registration: the one the first made, whoever the retry names */
    unsigned e = c->event, p = (unsigned)first->person;
    if (c->kind == GEN_CONFIRM) {
        if (c->hold > MAX_COMMANDS || !m->holds[c->hold].exists)
            return;
        e = m->holds[c->hold].event;
        p = m->holds[c->hold].person;
    } else if (c->kind != GEN_REGISTER) {
        return;
    }
    m_pair *q = &m->pair[e][p];
    if ((q->kind == M_REGISTERED || q->kind == M_WAITING) && q->made_by == c->id)
        q->token = c->token;
}

static void text_of(char *out, const char *what, unsigned n) {
    snprintf(out, TEXT, "%s %u", what, n);
}

static m_reply model_apply(model *m, const gen_command *c, int64_t now_ms) {
    for (size_t i = 0; i < m->ndone; i++) {
        if (m->done[i].id != c->id)
            continue;
        if (c->request && m->done[i].request && c->request != m->done[i].request)
            return (m_reply){.id = c->id,
                             .replayed = true,
                             .outcome = TS_OUT_IDEMPOTENCY_KEY_REUSED,
                             .person = -1,
                             .applied_at_ms = -1,
                             .message = ts_outcome_message(TS_OUT_IDEMPOTENCY_KEY_REUSED)};
        model_rotate(m, c, &m->done[i]);
        m_reply r = m->done[i];
        r.replayed = true;
        return r;
    }
    m_reply r = {.id = c->id, .request = c->request, .person = -1, .applied_at_ms = now_ms};
    unsigned e = c->event, p = c->person;
    m_event *ev = &m->ev[e];
    int64_t t = c->issued_at_ms;
    if (ev->exists)
        model_expire(m, e, c);
    m_pair *q = &m->pair[e][p];
    ts_outcome o = TS_OUT_INVALID;
    switch (c->kind) {
    case GEN_CREATE:
        if (ev->exists) {
            o = TS_OUT_INVALID;
            break;
        }
        o = TS_OUT_CREATED;
        memset(ev, 0, sizeof *ev);
        ev->exists = true;
        ev->capacity = c->capacity;
        ev->starts_at_ms = c->starts_at_ms;
        text_of(ev->title, "Event", e);
        snprintf(ev->location, TEXT, "Hall");
        ev->has_description = c->text % 2;
        if (ev->has_description)
            text_of(ev->description, "About", c->text);
        model_change(m, e, TS_CH_EVENT_CREATED, -1, 0, c);
        break;
    case GEN_REGISTER:
    case GEN_HOLD:
        if (!ev->exists)
            o = TS_OUT_EVENT_NOT_FOUND;
        else if (ev->cancelled)
            o = TS_OUT_EVENT_CANCELLED;
        else if (ev->starts_at_ms <= t)
            o = TS_OUT_PAST_EVENT;
        else if (q->kind == M_REGISTERED)
            o = TS_OUT_ALREADY_REGISTERED;
        else if (q->kind == M_HELD)
            o = TS_OUT_ALREADY_HELD;
        else if (q->kind == M_WAITING)
            o = TS_OUT_ALREADY_WAITLISTED;
        else if (ev->registered + ev->held >= ev->capacity)
            o = c->kind == GEN_REGISTER && c->waitlist ? TS_OUT_WAITLISTED : TS_OUT_EVENT_FULL;
        else
            o = c->kind == GEN_REGISTER ? TS_OUT_REGISTERED : TS_OUT_HELD;
        if (o == TS_OUT_REGISTERED) {
            *q = (m_pair){M_REGISTERED, c->token, c->id, 0};
            ev->registered++;
            model_change(m, e, TS_CH_REGISTERED, (int)p, 0, c);
        } else if (o == TS_OUT_WAITLISTED) {
            *q = (m_pair){M_WAITING, c->token, c->id, 0};
            ev->line[ev->nline++] = p;
            r.position = (int64_t)ev->nline;
            model_change(m, e, TS_CH_WAITLISTED, (int)p, 0, c)->position = r.position;
            m->changes[m->nchanges - 1].has_position = true;
        } else if (o == TS_OUT_HELD) {
            *q = (m_pair){M_HELD, 0, 0, c->id};
            ev->held++;
            m->holds[c->id] = (m_hold){true, e, p, t + c->ttl_ms, TS_HOLD_HELD};
            r.hold = c->id;
            r.expires_at_ms = t + c->ttl_ms;
            model_change(m, e, TS_CH_HOLD_PLACED, (int)p, c->id, c)->expires_at_ms =
                r.expires_at_ms;
        }
        if (o == TS_OUT_REGISTERED || o == TS_OUT_WAITLISTED || o == TS_OUT_HELD ||
            o == TS_OUT_ALREADY_REGISTERED)
            r.person = (int)p;
        break;
    case GEN_CANCEL:
        if (!ev->exists || (q->kind != M_REGISTERED && q->kind != M_WAITING)) {
            o = TS_OUT_REGISTRATION_NOT_FOUND;
        } else if (c->token && c->token != q->token) {
            o = TS_OUT_FORBIDDEN;
        } else {
            o = TS_OUT_CANCELLED;
            r.person = (int)p;
            if (q->kind == M_REGISTERED) {
                q->kind = M_NONE;
                ev->registered--;
                model_change(m, e, TS_CH_REGISTRATION_CANCELLED, (int)p, 0, c);
                model_promote(m, e, c);
            } else {
                size_t i = 0;
                while (ev->line[i] != p)
                    i++;
                memmove(ev->line + i, ev->line + i + 1, (ev->nline - i - 1) * sizeof ev->line[0]);
                ev->nline--;
                q->kind = M_NONE;
                m_change *ch = model_change(m, e, TS_CH_REGISTRATION_CANCELLED, (int)p, 0, c);
                ch->has_position = true;
                ch->position = (int64_t)i + 1;
            }
        }
        break;
    case GEN_CONFIRM: {
        m_hold *h = model_hold(m, c->hold, e);
        if (!ev->exists)
            o = TS_OUT_EVENT_NOT_FOUND;
        else if (ev->cancelled)
            o = TS_OUT_EVENT_CANCELLED;
        else if (!h || h->state == TS_HOLD_RELEASED)
            o = TS_OUT_HOLD_NOT_FOUND;
        else if (h->state == TS_HOLD_EXPIRED)
            o = TS_OUT_HOLD_EXPIRED;
        else if (h->state == TS_HOLD_CONFIRMED)
            o = TS_OUT_ALREADY_REGISTERED;
        else
            o = TS_OUT_REGISTERED;
        if (o == TS_OUT_REGISTERED) {
            m->pair[e][h->person] = (m_pair){M_REGISTERED, c->token, c->id, 0};
            ev->held--;
            ev->registered++;
            h->state = TS_HOLD_CONFIRMED;
            model_change(m, e, TS_CH_HOLD_CONFIRMED, (int)h->person, c->hold, c);
        }
        if (o == TS_OUT_REGISTERED || o == TS_OUT_ALREADY_REGISTERED)
            r.person = (int)h->person;
        break;
    }
    case GEN_RELEASE: {
        m_hold *h = model_hold(m, c->hold, e);
        if (!ev->exists)
            o = TS_OUT_EVENT_NOT_FOUND;
        else if (!h || h->state == TS_HOLD_CONFIRMED || h->state == TS_HOLD_RELEASED)
            o = TS_OUT_HOLD_NOT_FOUND;
        else if (h->state == TS_HOLD_EXPIRED)
            o = TS_OUT_HOLD_EXPIRED;
        else
            o = TS_OUT_RELEASED;
        if (o == TS_OUT_RELEASED) {
            m->pair[e][h->person].kind = M_NONE;
            ev->held--;
            h->state = TS_HOLD_RELEASED;
            r.person = (int)h->person;
            model_change(m, e, TS_CH_HOLD_RELEASED, (int)h->person, c->hold, c);
            model_promote(m, e, c);
        }
        break;
    }
    case GEN_EXPIRE: {
        const m_hold *h = model_hold(m, c->hold, e);
        if (!ev->exists)
            o = TS_OUT_EVENT_NOT_FOUND;
        else if (h && h->state == TS_HOLD_EXPIRED)
            o = TS_OUT_HOLD_EXPIRED;
        else
            o = TS_OUT_HOLD_NOT_FOUND;
        if (o == TS_OUT_HOLD_EXPIRED) /* the sweeper's answer names whose hold it was */
            r.person = (int)h->person;
        break;
    }
    case GEN_UPDATE:
        if (!ev->exists)
            o = TS_OUT_EVENT_NOT_FOUND;
        else if (ev->cancelled)
            o = TS_OUT_EVENT_CANCELLED;
        else if ((c->fields & UPD_CAPACITY) && c->capacity < ev->registered + ev->held)
            o = TS_OUT_CAPACITY_BELOW_TAKEN;
        else
            o = TS_OUT_UPDATED;
        if (o != TS_OUT_UPDATED)
            break;
        if (c->fields & UPD_TITLE)
            text_of(ev->title, "Title", c->text);
        if (c->fields & UPD_DESCRIPTION) {
            ev->has_description = c->text % 2 == 0;
            if (ev->has_description)
                text_of(ev->description, "About", c->text);
        }
        if (c->fields & UPD_LOCATION)
            text_of(ev->location, "Room", c->text);
        if (c->fields & UPD_STARTS)
            ev->starts_at_ms = c->starts_at_ms;
        if (c->fields & UPD_CAPACITY)
            ev->capacity = c->capacity;
        model_change(m, e, TS_CH_EVENT_UPDATED, -1, 0, c);
        model_promote(m, e, c);
        break;
    case GEN_CANCEL_EVENT:
        if (!ev->exists)
            o = TS_OUT_EVENT_NOT_FOUND;
        else if (ev->cancelled)
            o = TS_OUT_EVENT_CANCELLED;
        else
            o = TS_OUT_CANCELLED;
        if (o == TS_OUT_CANCELLED) {
            ev->cancelled = true;
            model_change(m, e, TS_CH_EVENT_CANCELLED, -1, 0, c);
        }
        break;
    }
    r.outcome = o;
    r.message = o == TS_OUT_INVALID             ? "Event already exists"
                : ts_outcome_message(o) != NULL ? ts_outcome_message(o)
                                                : "";
    m->done[m->ndone++] = r;
    return r;
}

/* ------------------------------------------------------------ random sequences */

static ts_batch_item to_item(const gen_command *g) {
    ts_batch_item it;
    switch (g->kind) {
    case GEN_CREATE:
        it = create(g->event, g->capacity, g->starts_at_ms);
        it.cmd.u.create.has_description = g->text % 2;
        if (it.cmd.u.create.has_description)
            text_of(it.cmd.u.create.description, "About", g->text);
        break;
    case GEN_REGISTER:
        it = reg(g->event, g->person);
        it.cmd.u.reg.cancel_token_sha256 = token_digest(g->token);
        it.cmd.u.reg.waitlist = g->waitlist;
        break;
    case GEN_CANCEL:
        it = cancel(g->event, g->person);
        it.cmd.u.cancel.token_sha256 = token_digest(g->token);
        break;
    case GEN_HOLD: it = hold(g->event, g->person, g->ttl_ms); break;
    case GEN_CONFIRM: it = confirm(g->event, g->hold, g->token); break;
    case GEN_RELEASE: it = release(g->event, g->hold); break;
    case GEN_EXPIRE: it = expire(g->event, g->hold); break;
    case GEN_UPDATE:
        it = update(g->event);
        it.cmd.u.update.has_title = g->fields & UPD_TITLE;
        text_of(it.cmd.u.update.title, "Title", g->text);
        it.cmd.u.update.has_description = g->fields & UPD_DESCRIPTION;
        if (g->text % 2 == 0)
            text_of(it.cmd.u.update.description, "About", g->text);
        it.cmd.u.update.has_location = g->fields & UPD_LOCATION;
        text_of(it.cmd.u.update.location, "Room", g->text);
        it.cmd.u.update.has_starts_at = g->fields & UPD_STARTS;
        it.cmd.u.update.starts_at_ms = g->starts_at_ms;
        it.cmd.u.update.has_capacity = g->fields & UPD_CAPACITY;
        it.cmd.u.update.capacity = g->capacity;
        break;
    default: it = cancel_event(g->event); break;
    }
    uuid_of(it.cmd.command_id, K_COMMAND, g->id);
    it.cmd.issued_at_ms = g->issued_at_ms;
    it.cmd.request_sha256 = g->request ? digest(1000 + g->request) : none;
    it.skip = g->skip;
    return it;
}

/* A confirm, release or expire names a hold: mostly one placed before, of
 * its event; sometimes one of another event, a command that placed no
 * hold, or an id never seen. */
static void pick_hold(gen_command *c, const gen_command *cmds, const size_t *holds, size_t nholds,
                      unsigned ids, unsigned events) {
    unsigned how = rnd(10);
    if (nholds && how < 8) { /* mostly a recent one, that may not have expired */
        size_t pick =
            rnd(2) ? nholds - 1 - rnd(nholds < 3 ? (unsigned)nholds : 3) : rnd((unsigned)nholds);
        const gen_command *h = &cmds[holds[pick]];
        c->hold = h->id;
        c->event = how == 0 ? rnd(events) : h->event;
    } else if (how == 8) {
        c->hold = 1 + rnd(ids + 1);
    } else {
        c->hold = 90000 + rnd(3);
    }
}

/* A sequence: a few events (some never created, some past or starting
 * during it), a small pool of people, and every command: creates,
 * registrations with and without the waitlist, tokens and request
 * digests, cancels with no, the right or a wrong token, holds of a few
 * seconds, confirmations, releases and expiries of those holds and of
 * others, updates of every field with capacities up and down, event
 * cancellations, and commands sent again: as they were, retried with a new
 * token, or the id reused for another request. Issue times mostly grow but
 * a producer's clock is sometimes a little behind. */
static size_t generate(gen_command *cmds, size_t max, unsigned events, unsigned people,
                       const int64_t starts[EVENTS], const int64_t capacity[EVENTS]) {
    size_t n = 10 + rnd((unsigned)max - 10);
    unsigned ids = 0, requests = 0;
    size_t holds[MAX_COMMANDS], nholds = 0;
    unsigned created[MAX_COMMANDS];
    size_t ncreated = 0;
    int64_t clock = NOW - 2000;
    for (size_t i = 0; i < n; i++) {
        gen_command *c = &cmds[i];
        clock += rnd(4) ? rnd(1500) : 0;
        int64_t t = rnd(8) ? clock : clock - rnd(2500);
        unsigned r = rnd(100);
        if (r >= 87 && i > 0) { /* a command sent again */
            *c = cmds[rnd((unsigned)i)];
            c->issued_at_ms = t;
            unsigned how = rnd(4);
            if (c->skip) {
                c->id = 100000 + (unsigned)i;
            } else if (how == 1 && (c->kind == GEN_REGISTER || c->kind == GEN_CONFIRM)) {
                c->token = 1 + rnd(TOKENS);      /* a retry: same request, new token */
            } else if (how == 2 && c->request) { /* the id reused for another request */
                c->person = rnd(people);
                c->request = ++requests;
            }
            continue;
        }
        memset(c, 0, sizeof *c);
        c->event = rnd(events);
        if (ncreated && rnd(4)) /* mostly an event that was created (or asked to be) */
            c->event = created[rnd((unsigned)ncreated)];
        c->person = rnd(people);
        c->issued_at_ms = t;
        c->request = rnd(2) ? ++requests : 0;
        if (i < events && rnd(4)) { /* most events are created first */
            r = 4 + rnd(8);
            c->event = (unsigned)i;
        }
        if (r < 4) {
            c->skip = true;
            c->kind = GEN_REGISTER;
            c->id = 100000 + (unsigned)i;
            continue;
        }
        c->id = ++ids;
        if (r < 12) {
            c->kind = GEN_CREATE;
            created[ncreated++] = c->event;
            c->capacity = capacity[c->event];
            c->starts_at_ms = starts[c->event];
            c->text = rnd(4);
        } else if (r < 36) {
            c->kind = GEN_REGISTER;
            c->token = rnd(TOKENS + 1);
            c->waitlist = rnd(2);
        } else if (r < 45) {
            c->kind = GEN_CANCEL;
            c->token = rnd(3) ? 0 : rnd(TOKENS + 1); /* none, the right one or a wrong one */
        } else if (r < 58) {
            c->kind = GEN_HOLD;
            c->ttl_ms = TS_HOLD_TTL_MIN_MS + 500 * (int64_t)rnd(8);
            holds[nholds++] = i;
        } else if (r < 68) {
            c->kind = GEN_CONFIRM;
            c->token = rnd(TOKENS + 1);
            pick_hold(c, cmds, holds, nholds, ids, events);
        } else if (r < 75) {
            c->kind = GEN_RELEASE;
            pick_hold(c, cmds, holds, nholds, ids, events);
        } else if (r < 79) {
            c->kind = GEN_EXPIRE;
            pick_hold(c, cmds, holds, nholds, ids, events);
        } else if (r < 86) {
            c->kind = GEN_UPDATE;
            c->fields = rnd(32);
            c->text = rnd(4);
            c->capacity = 1 + rnd(4);
            c->starts_at_ms = rnd(3) ? FUTURE : NOW + 1000 * (int64_t)rnd(60);
        } else {
            c->kind = GEN_CANCEL_EVENT;
        }
    }
    return n;
}

static void format_changes(char *out, size_t cap, const ts_change *dec, size_t n,
                           const m_change *mod, size_t mn) {
    size_t len = 0;
    len += (size_t)snprintf(out + len, cap - len, "decider:");
    for (size_t i = 0; i < n && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, " %s(%s, seq %lld, position %lld)",
                                ts_change_type_name(dec[i].type),
                                dec[i].user_id ? dec[i].user_id + 24 : "-", (long long)dec[i].seq,
                                dec[i].has_position ? (long long)dec[i].position : -1LL);
    if (len < cap)
        len += (size_t)snprintf(out + len, cap - len, "; model:");
    for (size_t i = 0; i < mn && len < cap; i++)
        len +=
            (size_t)snprintf(out + len, cap - len, " %s(person %d, seq %lld, position %lld)",
                             ts_change_type_name(mod[i].type), mod[i].person, (long long)mod[i].seq,
                             mod[i].has_position ? (long long)mod[i].position : -1LL);
}

static void check_reply(const ts_batch_item *it, const gen_command *g, size_t index,
                        const m_reply *want) {
    char user[TS_UUID_LEN + 1] = "", hold_id[TS_UUID_LEN + 1] = "";
    if (want->person >= 0)
        uuid_of(user, K_USER, (unsigned)want->person);
    if (want->hold)
        uuid_of(hold_id, K_COMMAND, want->hold);
    const ts_reply *r = &it->reply;
    if (r->outcome != want->outcome || strcmp(r->user_id, user) != 0 ||
        r->position != want->position || strcmp(r->hold_id, hold_id) != 0 ||
        r->expires_at_ms != want->expires_at_ms || it->replayed != want->replayed)
        fail_msg("%s: command %zu (%s): %s user \"%s\" position %lld hold \"%s\" expires %lld "
                 "replayed %d; the model says %s user \"%s\" position %lld hold \"%s\" expires "
                 "%lld replayed %d",
                 context, index, describe(g), ts_outcome_name(r->outcome), r->user_id,
                 (long long)r->position, r->hold_id, (long long)r->expires_at_ms, it->replayed,
                 ts_outcome_name(want->outcome), user, (long long)want->position, hold_id,
                 (long long)want->expires_at_ms, want->replayed);
    if (strcmp(r->message, want->message) != 0 ||
        (want->applied_at_ms >= 0 && r->applied_at_ms != want->applied_at_ms) ||
        strcmp(r->command_id, it->cmd.command_id) != 0 ||
        strcmp(r->event_id, it->cmd.event_id) != 0)
        fail_msg("%s: command %zu (%s): message \"%s\" applied at %lld, the model says \"%s\" "
                 "at %lld (or the reply names another command or event)",
                 context, index, describe(g), r->message, (long long)r->applied_at_ms,
                 want->message, (long long)want->applied_at_ms);
}

/* The item's changes are the model's for its command, and come next. */
static void check_changes(const ts_batch_item *it, const gen_command *g, size_t index,
                          const ts_decisions *dec, const model *m, size_t from, size_t *next) {
    size_t n = m->nchanges - from;
    const ts_change *mine = it->nchanges ? &dec->changes[it->first_change] : NULL;
    bool ok = it->nchanges == n &&
              (n == 0 || (it->first_change == *next && it->first_change + n <= dec->nchanges));
    for (size_t j = 0; ok && j < n; j++) {
        const ts_change *ch = &mine[j];
        const m_change *w = &m->changes[from + j];
        char event[TS_UUID_LEN + 1], user[TS_UUID_LEN + 1] = "", hold_id[TS_UUID_LEN + 1] = "";
        uuid_of(event, K_EVENT, w->event);
        if (w->person >= 0)
            uuid_of(user, K_USER, (unsigned)w->person);
        if (w->hold)
            uuid_of(hold_id, K_COMMAND, w->hold);
        bool named = w->type == TS_CH_REGISTERED || w->type == TS_CH_WAITLISTED ||
                     w->type == TS_CH_PROMOTED || w->type == TS_CH_HOLD_PLACED;
        ok = ch->type == w->type && ch->event_id && !strcmp(ch->event_id, event) &&
             ch->seq == w->seq && ch->occurred_at_ms == w->occurred_at_ms && ch->command_id &&
             !strcmp(ch->command_id, it->cmd.command_id) &&
             (w->person < 0 ? !ch->user_id : ch->user_id && !strcmp(ch->user_id, user)) &&
             (!w->hold || (ch->hold_id && !strcmp(ch->hold_id, hold_id))) &&
             ch->has_position == w->has_position &&
             (!w->has_position || ch->position == w->position) &&
             (w->type != TS_CH_HOLD_PLACED ||
              (ch->has_expires_at && ch->expires_at_ms == w->expires_at_ms)) &&
             (!named || (is_name_of(ch->name, (unsigned)w->person) &&
                         is_email_of(ch->email, (unsigned)w->person)));
    }
    if (!ok) {
        char text[1200];
        format_changes(text, sizeof text, mine, it->nchanges, &m->changes[from], n);
        fail_msg("%s: command %zu (%s), %s: changes %zu from %zu (next %zu): %s", context, index,
                 describe(g), ts_outcome_name(it->reply.outcome), it->nchanges, it->first_change,
                 *next, text);
    }
    *next += n;
}

/* The database and the model agree on everything at the end. */
static void check_final(const db *s, const model *m) {
    for (unsigned e = 0; e < EVENTS; e++) {
        const db_event *de = &s->t.ev[e];
        const m_event *me = &m->ev[e];
        if (de->exists != me->exists)
            fail_msg("%s: event %u exists %d, the model %d", context, e, de->exists, me->exists);
        if (!me->exists)
            continue;
        if (de->cancelled != me->cancelled || de->capacity != me->capacity ||
            de->starts_at_ms != me->starts_at_ms || de->registered != me->registered ||
            de->held != me->held || de->waitlisted != (int64_t)me->nline ||
            de->stream_seq != me->stream_seq)
            fail_msg("%s: event %u: cancelled %d capacity %lld starts %lld registered %lld held "
                     "%lld waitlisted %lld stream %lld; the model %d %lld %lld %lld %lld %zu %lld",
                     context, e, de->cancelled, (long long)de->capacity,
                     (long long)de->starts_at_ms, (long long)de->registered, (long long)de->held,
                     (long long)de->waitlisted, (long long)de->stream_seq, me->cancelled,
                     (long long)me->capacity, (long long)me->starts_at_ms,
                     (long long)me->registered, (long long)me->held, me->nline,
                     (long long)me->stream_seq);
        if (strcmp(de->title, me->title) || strcmp(de->location, me->location) ||
            de->has_description != me->has_description ||
            (me->has_description && strcmp(de->description, me->description)))
            fail_msg("%s: event %u: \"%s\" \"%s\" \"%s\", the model \"%s\" \"%s\" \"%s\"", context,
                     e, de->title, de->has_description ? de->description : "(none)", de->location,
                     me->title, me->has_description ? me->description : "(none)", me->location);
        for (unsigned p = 0; p < PEOPLE; p++) {
            const db_seat *g = &s->t.seats[e][p];
            const db_place *w = &s->t.line[e][p];
            const m_pair *q = &m->pair[e][p];
            m_kind kind = g->live   ? (g->held ? M_HELD : M_REGISTERED)
                          : w->live ? M_WAITING
                                    : M_NONE;
            if (kind != q->kind)
                fail_msg("%s: person %u in event %u: %d, the model %d (1 registered, 2 held, 3 "
                         "waiting)",
                         context, p, e, (int)kind, (int)q->kind);
            ts_digest token = token_digest(q->token);
            if ((kind == M_REGISTERED &&
                 (!digests_equal(&g->token, &token) || g->command != q->made_by)) ||
                (kind == M_WAITING &&
                 (!digests_equal(&w->token, &token) || w->command != q->made_by)) ||
                (kind == M_HELD && g->hold != q->hold))
                fail_msg("%s: person %u in event %u: another token, command or hold (command %u, "
                         "the model's %u)",
                         context, p, e, kind == M_WAITING ? w->command : g->command, q->made_by);
        }
        for (size_t i = 0; i < me->nline; i++) { /* the line, in order */
            size_t ahead = 0;
            const db_place *w = &s->t.line[e][me->line[i]];
            for (unsigned p = 0; p < PEOPLE; p++)
                ahead += s->t.line[e][p].live && s->t.line[e][p].seq < w->seq;
            if (ahead != i)
                fail_msg("%s: event %u: person %u is at place %zu of the line, the model %zu",
                         context, e, me->line[i], ahead + 1, i + 1);
        }
        if (s->published[e] != (size_t)me->stream_seq)
            fail_msg("%s: event %u: %zu changes published, the model %lld", context, e,
                     s->published[e], (long long)me->stream_seq);
    }
    size_t nholds = 0;
    for (unsigned id = 1; id <= MAX_COMMANDS; id++) {
        const m_hold *h = &m->holds[id];
        if (!h->exists)
            continue;
        nholds++;
        const db_hold *g = db_hold_of((db *)s, id);
        if (!g || g->event != h->event || g->user != h->person ||
            g->expires_at_ms != h->expires_at_ms || g->state != h->state)
            fail_msg("%s: hold %u: state %d, the model %d", context, id, g ? (int)g->state : 0,
                     (int)h->state);
    }
    if (nholds != s->t.nholds)
        fail_msg("%s: %zu holds stored, the model %zu", context, s->t.nholds, nholds);
}

static void run_sequence(ts_decider *d, unsigned seed, int number) {
    static gen_command cmds[MAX_COMMANDS];
    static ts_batch_item items[MAX_COMMANDS], scratch[8];
    static db store;
    static model m;
    rng_state = seed;
    snprintf(context, sizeof context, "TS_TEST_SEED=%u (sequence %d)", seed, number);
    memset(&store, 0, sizeof store);
    memset(&m, 0, sizeof m);
    unsigned events = 1 + rnd(EVENTS), people = 2 + rnd(RANDOM_PEOPLE - 1);
    int64_t starts[EVENTS], capacity[EVENTS];
    for (unsigned e = 0; e < EVENTS; e++) {
        unsigned when = rnd(10);
        starts[e] = when < 7 ? FUTURE : when < 8 ? NOW - 1 : NOW + 1000 * (int64_t)rnd(60);
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
        /* apply.c tries creates, registrations and holds without the lookups first */
        bool optimistic = rnd(2) == 0;
        for (size_t k = 0; k < count; k++) {
            gen_kind kind = cmds[first + k].kind;
            if (!cmds[first + k].skip && kind != GEN_CREATE && kind != GEN_REGISTER &&
                kind != GEN_HOLD)
                optimistic = false;
        }
        /* in the order of `order`, laid out backwards */
        size_t order[8], *ord = NULL;
        ts_batch_item *batch = &items[first];
        if (rnd(2)) {
            for (size_t k = 0; k < count; k++) {
                scratch[count - 1 - k] = items[first + k];
                order[k] = count - 1 - k;
            }
            batch = scratch;
            ord = order;
        }
        bool skipped = optimistic;
        ts_decisions dec;
        for (;;) {
            assert_int_equal(ts_decider_begin(d, batch, ord, count, skipped), 0);
            db_load(&store, d, batch, ord, count, skipped);
            ts_decide_status st = ts_decide(d, now, &dec);
            if (st == TS_DECIDE_NO_MEMORY)
                fail_msg("%s: no memory", context);
            if (st == TS_DECIDE_OK && db_write(&store, &dec, skipped))
                break;
            if (!skipped)
                fail_msg("%s: with the lookups, status %d", context, (int)st);
            skipped = false;
        }
        size_t next_change = 0, processed = 0;
        for (size_t k = 0; k < count; k++) {
            const ts_batch_item *it = nth(batch, ord, k);
            const gen_command *g = &cmds[first + k];
            if (g->skip)
                continue;
            size_t from = m.nchanges;
            m_reply want = model_apply(&m, g, now);
            check_reply(it, g, first + k, &want);
            check_changes(it, g, first + k, &dec, &m, from, &next_change);
            if (!it->replayed) {
                if (processed >= dec.nprocessed || dec.processed[processed].item != it)
                    fail_msg("%s: command %zu (%s) is not the next processed row", context,
                             first + k, describe(g));
                processed++;
            }
        }
        if (next_change != dec.nchanges || processed != dec.nprocessed)
            fail_msg("%s: batch at %zu: %zu changes and %zu processed rows, of %zu and %zu",
                     context, first, dec.nchanges, dec.nprocessed, next_change, processed);
        first += count;
        now += 1000;
    }
    check_final(&store, &m);
}

/* A decider that loops ends the test, saying where. */
static void on_alarm(int sig) {
    (void)sig;
    static const char head[] = "\nts_decide() or the test does not return: ";
    size_t len = 0;
    while (len < sizeof context && context[len])
        len++;
    if (write(2, head, sizeof head - 1) < 0 || write(2, context, len) < 0 || write(2, "\n", 1) < 0)
        _exit(2);
    _exit(1);
}

static void
random_sequences_give_the_replies_changes_and_state_of_serial_application(void **state) {
    ts_decider *d = *state;
    const char *env = getenv("TS_TEST_SEED");
    const char *count = getenv("TS_TEST_SEQUENCES");
    unsigned base = env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL);
    int sequences = count ? atoi(count) : 4000;
    print_message("random sequences: TS_TEST_SEED=%u\n", base);
    signal(SIGALRM, on_alarm);
    alarm(300);
    for (int i = 0; i < sequences; i++)
        run_sequence(d, base + (unsigned)i, i);
    alarm(0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(registrations_are_checked_in_the_original_order),
        cmocka_unit_test(an_event_starting_at_the_issue_time_is_past),
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
        cmocka_unit_test(a_retried_confirmation_gets_the_retrys_token),
        cmocka_unit_test(rows_come_in_steps_cut_by_each_cancellation),
        cmocka_unit_test(lookups_skipped_full_or_a_missing_registration_needs_them),
        cmocka_unit_test(each_key_is_wanted_once_and_skipped_items_not_at_all),
        cmocka_unit_test(the_loading_asks_for_named_holds_expiring_holds_and_waitlist_heads),
        cmocka_unit_test(a_full_event_waitlists_who_asks_at_the_next_place),
        cmocka_unit_test(someone_with_a_seat_or_a_place_is_told_so),
        cmocka_unit_test(a_waitlisted_person_cancels_and_the_line_closes_up),
        cmocka_unit_test(a_cancellation_promotes_the_oldest_waiter),
        cmocka_unit_test(promotions_are_oldest_first_in_the_batch_and_across_batches),
        cmocka_unit_test(a_hold_takes_a_seat_and_refuses_a_second),
        cmocka_unit_test(a_hold_expires_only_after_its_expiry),
        cmocka_unit_test(
            an_expired_hold_frees_its_seat_before_the_command_and_the_line_comes_first),
        cmocka_unit_test(holds_expire_in_order_of_expiry_then_hold_id),
        cmocka_unit_test(a_confirmed_hold_keeps_its_seat_as_a_registration),
        cmocka_unit_test(a_confirm_or_release_after_expiry_is_told_it_expired),
        cmocka_unit_test(a_released_hold_gives_its_seat_to_the_line),
        cmocka_unit_test(the_sweepers_expire_expires_what_is_past_its_expiry),
        cmocka_unit_test(an_update_changes_the_fields_it_names),
        cmocka_unit_test(a_capacity_lowered_after_cancellations_carries_the_counters_of_that_point),
        cmocka_unit_test(a_raised_capacity_promotes_the_line),
        cmocka_unit_test(a_cancelled_event_refuses_what_would_change_it),
        cmocka_unit_test(no_one_is_promoted_in_a_cancelled_event),
        cmocka_unit_test(replays_answer_with_position_hold_and_expiry),
        cmocka_unit_test(changes_number_each_event_on_from_its_stored_sequence),
        cmocka_unit_test(lookups_skipped_a_full_event_or_a_waitlist_needs_them),
        cmocka_unit_test(a_hold_retried_in_an_optimistic_batch_is_no_new_hold),
        cmocka_unit_test(a_command_id_reused_by_another_person_hides_no_seat),
        cmocka_unit_test(a_refused_create_expires_the_events_holds_first),
        cmocka_unit_test(random_sequences_give_the_replies_changes_and_state_of_serial_application),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
