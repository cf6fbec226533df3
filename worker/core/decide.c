/* SPDX-License-Identifier: Apache-2.0 */
/* decide.c — see decide.h.
 *
 * Three tables hold what a batch knows, keyed by UUIDs in their text form:
 * the events, the (event, user) pairs, the command ids. They are open-
 * addressed (linear probing over ts_fnv1a), never more than half full, and
 * sized at ts_decider_begin(): n commands name at most n events, n pairs
 * and n command ids, and the state adds at most n of each, so 2n records
 * each always fit and no step of a decision can fail. Tables and rows are
 * allocated once per size and reused: a steady stream of batches allocates
 * nothing.
 *
 * Rows go in steps because a cancellation's seat is only known to the
 * database (the seat it frees, filled by the last one): what was decided
 * before it is written first, then the cancellation. A registration
 * retried with a new token in the step that inserts it changes the row
 * about to be inserted; a second rotation in one step changes the first:
 * a statement never names a registration twice. */
#include "decide.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_hash.h"

/* ------------------------------------------------------------ keyed tables */

/* Records of rec_size bytes, each beginning with its key of key_len bytes. */
typedef struct table {
    uint32_t *slots;  /* a record's position + 1; 0: empty */
    size_t nslots;    /* in use: a power of two, at least twice max */
    size_t slots_cap; /* allocated */
    char *recs;
    size_t rec_size, key_len;
    size_t n, max, recs_cap;
} table;

static void table_free(table *t) {
    free(t->slots);
    free(t->recs);
}

/* Empties the table and makes room for `max` records. 0, or -1. */
static int table_reset(table *t, size_t max) {
    if (max == 0)
        max = 1;
    size_t nslots = 16;
    while (nslots < 2 * max)
        nslots *= 2;
    if (t->slots_cap < nslots) {
        free(t->slots);
        t->slots = malloc(nslots * sizeof *t->slots);
        t->slots_cap = t->slots ? nslots : 0;
        if (!t->slots)
            return -1;
    }
    if (t->recs_cap < max) {
        free(t->recs);
        t->recs = malloc(max * t->rec_size);
        t->recs_cap = t->recs ? max : 0;
        if (!t->recs)
            return -1;
    }
    /* only the part this batch uses: a small batch clears little */
    t->nslots = nslots;
    memset(t->slots, 0, nslots * sizeof *t->slots);
    t->n = 0;
    t->max = max;
    return 0;
}

static void *table_rec(const table *t, size_t i) {
    return t->recs + i * t->rec_size;
}

/* The slot that holds the key, or the empty one where it would go. */
static uint32_t *table_slot(const table *t, const char *key) {
    size_t mask = t->nslots - 1;
    for (size_t i = ts_fnv1a(key, t->key_len) & mask;; i = (i + 1) & mask) {
        uint32_t *s = &t->slots[i];
        if (*s == 0 || memcmp(table_rec(t, *s - 1), key, t->key_len) == 0)
            return s;
    }
}

static void *table_find(const table *t, const char *key) {
    uint32_t *s = table_slot(t, key);
    return *s ? table_rec(t, *s - 1) : NULL;
}

/* The key's record; a new one, zeroed but for its key, if it had none
 * (*added then true). NULL when the table is full. */
static void *table_get(table *t, const char *key, bool *added) {
    uint32_t *s = table_slot(t, key);
    *added = *s == 0;
    if (*s)
        return table_rec(t, *s - 1);
    if (t->n == t->max)
        return NULL;
    char *rec = table_rec(t, t->n++);
    memset(rec, 0, t->rec_size);
    memcpy(rec, key, t->key_len);
    *s = (uint32_t)t->n;
    return rec;
}

/* A UUID's text as a key: exactly TS_UUID_LEN bytes, whatever the string. */
static void uuid_key(char *out, const char *uuid) {
    size_t len = strnlen(uuid, TS_UUID_LEN);
    memcpy(out, uuid, len);
    memset(out + len, 0, TS_UUID_LEN - len);
}

/* ------------------------------------------------------------ state */

typedef struct event_rec {
    char id[TS_UUID_LEN + 1]; /* the key */
    bool found;
    bool dirty; /* its counter changed in this batch */
    int64_t capacity;
    int64_t registered;
    int64_t starts_at_ms;
} event_rec;

typedef struct pair_rec {
    char key[2 * TS_UUID_LEN]; /* event id, user id */
    bool registered;
    ts_digest token;                  /* the registration's */
    char command_id[TS_UUID_LEN + 1]; /* the command that made it */
    size_t step;                      /* the step the two rows below belong to */
    size_t reg_row, rot_row;          /* its rows in that step, position + 1; 0: none */
} pair_rec;

typedef struct stored_command {
    ts_outcome outcome;
    char user_id[TS_UUID_LEN + 1];
    char message[TS_MESSAGE_MAX + 1];
    int64_t applied_at_ms;
    ts_digest request;
} stored_command;

typedef struct command_rec {
    char id[TS_UUID_LEN + 1];   /* the key */
    const ts_batch_item *first; /* the item that decided it in this batch */
    size_t stored;              /* else its position + 1 in stored[] */
} command_rec;

struct ts_decider {
    table events, pairs, commands;
    stored_command *stored;
    size_t nstored, stored_cap;
    size_t added_events, added_pairs; /* by the state: n at most */

    ts_batch_item *items;
    const size_t *order;
    size_t n;
    bool lookups_skipped;

    /* the rows, n of each at most (n + 1 steps) */
    size_t rows_cap;
    ts_row_event *event_rows;
    ts_row_user *users;
    ts_row_registration *registrations;
    ts_row_rotation *rotations;
    ts_decided_step *steps;
    ts_row_processed *processed;
    ts_row_counter *counters;
    size_t nevent_rows, nusers, nregistrations, nrotations, step, nprocessed, ncounters;
};

ts_decider *ts_decider_new(void) {
    ts_decider *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->events.rec_size = sizeof(event_rec);
    d->events.key_len = TS_UUID_LEN;
    d->pairs.rec_size = sizeof(pair_rec);
    d->pairs.key_len = (size_t)2 * TS_UUID_LEN;
    d->commands.rec_size = sizeof(command_rec);
    d->commands.key_len = TS_UUID_LEN;
    return d;
}

static void free_rows(ts_decider *d) {
    free(d->event_rows);
    free(d->users);
    free(d->registrations);
    free(d->rotations);
    free(d->steps);
    free(d->processed);
    free(d->counters);
    d->event_rows = NULL;
    d->processed = NULL;
    d->users = NULL;
    d->registrations = NULL;
    d->rotations = NULL;
    d->steps = NULL;
    d->counters = NULL;
    d->rows_cap = 0;
}

void ts_decider_free(ts_decider *d) {
    if (!d)
        return;
    table_free(&d->events);
    table_free(&d->pairs);
    table_free(&d->commands);
    free(d->stored);
    free_rows(d);
    free(d);
}

/* An array of n elements, never a malloc(0) that may be NULL. */
static void *array_of(size_t n, size_t size) {
    return malloc(n ? n * size : 1);
}

static int room_for_rows(ts_decider *d, size_t n) {
    if (d->steps && n <= d->rows_cap)
        return 0;
    free_rows(d);
    d->event_rows = array_of(n, sizeof *d->event_rows);
    d->users = array_of(n, sizeof *d->users);
    d->registrations = array_of(n, sizeof *d->registrations);
    d->rotations = array_of(n, sizeof *d->rotations);
    d->processed = array_of(n, sizeof *d->processed);
    d->counters = array_of(n, sizeof *d->counters);
    d->steps = array_of(n + 1, sizeof *d->steps);
    if (!d->event_rows || !d->users || !d->registrations || !d->rotations || !d->processed ||
        !d->counters || !d->steps) {
        free_rows(d);
        return -1;
    }
    d->rows_cap = n;
    return 0;
}

int ts_decider_begin(ts_decider *d, ts_batch_item *items, const size_t *order, size_t n,
                     bool lookups_skipped) {
    d->items = items;
    d->order = order;
    d->n = 0;
    d->lookups_skipped = lookups_skipped;
    d->nstored = d->added_events = d->added_pairs = 0;
    if (table_reset(&d->events, 2 * n) || table_reset(&d->pairs, 2 * n) ||
        table_reset(&d->commands, 2 * n) || room_for_rows(d, n))
        return -1;
    d->n = n;
    return 0;
}

const char *ts_decide_user_id(const ts_batch_item *it) {
    switch (it->cmd.type) {
    case TS_CMD_REGISTER: return it->user_id;
    case TS_CMD_CANCEL: return it->cmd.u.cancel.user_id;
    case TS_CMD_CREATE_EVENT: break;
    }
    return NULL;
}

static const stored_command *stored_of(const ts_decider *d, const char *command_id) {
    char key[TS_UUID_LEN];
    uuid_key(key, command_id);
    const command_rec *c = table_find(&d->commands, key);
    return c && c->stored ? &d->stored[c->stored - 1] : NULL;
}

/* The records of an item's event and pair; added (not stored) when the
 * state has none. Room for them is certain (see the top). */
static event_rec *event_of(ts_decider *d, const char *event_id, bool *added) {
    char key[TS_UUID_LEN];
    uuid_key(key, event_id);
    return table_get(&d->events, key, added);
}

static void pair_key(char *key, const char *event_id, const char *user_id) {
    uuid_key(key, event_id);
    uuid_key(key + TS_UUID_LEN, user_id);
}

static pair_rec *pair_of(ts_decider *d, const char *event_id, const char *user_id, bool *added) {
    char key[2 * TS_UUID_LEN];
    pair_key(key, event_id, user_id);
    return table_get(&d->pairs, key, added);
}

bool ts_decider_wants_event(ts_decider *d, const ts_batch_item *it) {
    if (it->skip || stored_of(d, it->cmd.command_id))
        return false;
    bool added;
    event_of(d, it->cmd.event_id, &added);
    return added;
}

/* A registration retried with its request digest and a cancel token. */
static bool may_rotate(const ts_command *c) {
    return c->type == TS_CMD_REGISTER && c->request_sha256.present &&
           c->u.reg.cancel_token_sha256.present;
}

bool ts_decider_wants_registration(ts_decider *d, const ts_batch_item *it) {
    const char *user_id = ts_decide_user_id(it);
    if (it->skip || !user_id)
        return false;
    const stored_command *s = stored_of(d, it->cmd.command_id);
    if (s && !(may_rotate(&it->cmd) && s->outcome == TS_OUT_REGISTERED))
        return false;
    bool added;
    pair_of(d, it->cmd.event_id, user_id, &added);
    return added;
}

int ts_decider_add_command(ts_decider *d, const ts_stored_command *c) {
    if (d->nstored == d->n)
        return -1;
    if (d->nstored == d->stored_cap) {
        size_t cap = d->stored_cap ? 2 * d->stored_cap : 16;
        stored_command *p = realloc(d->stored, cap * sizeof *p);
        if (!p)
            return -1;
        d->stored = p;
        d->stored_cap = cap;
    }
    char key[TS_UUID_LEN];
    uuid_key(key, c->command_id);
    bool added;
    command_rec *rec = table_get(&d->commands, key, &added);
    if (!rec)
        return -1;
    if (!added) /* the same id twice: the first is the first outcome */
        return 0;
    stored_command *s = &d->stored[d->nstored++];
    s->outcome = c->outcome;
    snprintf(s->user_id, sizeof s->user_id, "%s", c->user_id ? c->user_id : "");
    snprintf(s->message, sizeof s->message, "%s", c->message ? c->message : "");
    s->applied_at_ms = c->applied_at_ms;
    s->request = c->request;
    rec->stored = d->nstored;
    return 0;
}

int ts_decider_add_event(ts_decider *d, const ts_stored_event *e) {
    if (d->added_events == d->n)
        return -1;
    bool added;
    event_rec *rec = event_of(d, e->id, &added);
    if (!rec)
        return -1;
    d->added_events++;
    rec->found = true;
    rec->capacity = e->capacity;
    rec->registered = e->registered;
    rec->starts_at_ms = e->starts_at_ms;
    return 0;
}

int ts_decider_add_registration(ts_decider *d, const ts_stored_registration *r) {
    if (d->added_pairs == d->n)
        return -1;
    bool added;
    pair_rec *rec = pair_of(d, r->event_id, r->user_id, &added);
    if (!rec)
        return -1;
    d->added_pairs++;
    rec->registered = true;
    rec->token = r->cancel_token;
    snprintf(rec->command_id, sizeof rec->command_id, "%s", r->command_id);
    return 0;
}

/* ------------------------------------------------------------ deciding */

/* The records of an item's event and pair (see event_of, pair_of). Room
 * for them is certain (see the top). */
static event_rec *event_for(ts_decider *d, const char *event_id) {
    bool added;
    return event_of(d, event_id, &added);
}

static pair_rec *pair_for(ts_decider *d, const char *event_id, const char *user_id) {
    bool added;
    return pair_of(d, event_id, user_id, &added);
}

static void refuse(ts_reply *r, ts_outcome outcome) {
    r->outcome = outcome;
    r->user_id[0] = '\0';
    snprintf(r->message, sizeof r->message, "%s", ts_outcome_message(outcome));
}

static bool same_digest(const ts_digest *a, const ts_digest *b) {
    return a->present && b->present && memcmp(a->bytes, b->bytes, TS_SHA256_LEN) == 0;
}

/* Two requests behind one command id are the same unless both have a
 * digest and the digests differ (a producer without digests repeats). */
static bool same_request(const ts_digest *a, const ts_digest *b) {
    return !a->present || !b->present || same_digest(a, b);
}

static void decide_create(ts_decider *d, ts_batch_item *it) {
    const ts_command *c = &it->cmd;
    event_rec *e = event_for(d, c->event_id);
    if (e->found) {
        refuse(&it->reply, TS_OUT_INVALID);
        snprintf(it->reply.message, sizeof it->reply.message, "Event already exists");
        return;
    }
    e->found = true;
    e->capacity = c->u.create.capacity;
    e->registered = 0;
    e->starts_at_ms = c->u.create.starts_at_ms;
    d->event_rows[d->nevent_rows++] = (ts_row_event){it};
    it->reply.outcome = TS_OUT_CREATED;
}

/* The original service's order: unknown event, past event, already
 * registered, full. */
static ts_outcome registration_outcome(const event_rec *e, const pair_rec *p, int64_t now_ms) {
    if (!e->found)
        return TS_OUT_EVENT_NOT_FOUND;
    if (e->starts_at_ms <= now_ms)
        return TS_OUT_PAST_EVENT;
    if (p->registered)
        return TS_OUT_ALREADY_REGISTERED;
    if (e->registered >= e->capacity)
        return TS_OUT_EVENT_FULL;
    return TS_OUT_REGISTERED;
}

static void count(event_rec *e, int64_t delta) {
    e->registered += delta;
    e->dirty = true;
}

static ts_decide_status decide_register(ts_decider *d, ts_batch_item *it, int64_t now_ms) {
    const ts_command *c = &it->cmd;
    ts_reply *r = &it->reply;
    event_rec *e = event_for(d, c->event_id);
    pair_rec *p = pair_for(d, c->event_id, it->user_id);
    ts_outcome o = registration_outcome(e, p, now_ms);
    /* a stored registration would make it "already registered" */
    if (o == TS_OUT_EVENT_FULL && d->lookups_skipped)
        return TS_DECIDE_NEEDS_LOOKUPS;
    if (o != TS_OUT_REGISTERED) {
        refuse(r, o);
        if (o == TS_OUT_ALREADY_REGISTERED)
            snprintf(r->user_id, sizeof r->user_id, "%s", it->user_id);
        return TS_DECIDE_OK;
    }
    count(e, +1);
    p->registered = true;
    p->token = c->u.reg.cancel_token_sha256;
    snprintf(p->command_id, sizeof p->command_id, "%s", c->command_id);
    d->users[d->nusers++] = (ts_row_user){it->user_id, c->u.reg.email};
    d->registrations[d->nregistrations++] = (ts_row_registration){
        it, (int32_t)e->registered, (int32_t)e->capacity, &c->u.reg.cancel_token_sha256};
    p->step = d->step;
    p->reg_row = d->nregistrations;
    p->rot_row = 0;
    r->outcome = TS_OUT_REGISTERED;
    snprintf(r->user_id, sizeof r->user_id, "%s", it->user_id);
    return TS_DECIDE_OK;
}

/* Ends the open step with a cancellation. */
static void close_step(ts_decider *d, const ts_row_cancel *cancel) {
    ts_decided_step *s = &d->steps[d->step++];
    s->registrations_end = d->nregistrations;
    s->rotations_end = d->nrotations;
    s->cancels = cancel != NULL;
    if (cancel)
        s->cancel = *cancel;
}

static ts_decide_status decide_cancel(ts_decider *d, ts_batch_item *it) {
    const ts_command *c = &it->cmd;
    ts_reply *r = &it->reply;
    event_rec *e = event_for(d, c->event_id);
    pair_rec *p = pair_for(d, c->event_id, c->u.cancel.user_id);
    if (!e->found || !p->registered) {
        /* a stored registration would be cancelled */
        if (e->found && d->lookups_skipped)
            return TS_DECIDE_NEEDS_LOOKUPS;
        refuse(r, TS_OUT_REGISTRATION_NOT_FOUND);
        return TS_DECIDE_OK;
    }
    const ts_digest *token = &c->u.cancel.token_sha256;
    if (token->present && !same_digest(token, &p->token)) {
        refuse(r, TS_OUT_FORBIDDEN);
        return TS_DECIDE_OK;
    }
    const ts_row_cancel cancel = {c->event_id, c->u.cancel.user_id, token, (int32_t)e->registered};
    close_step(d, &cancel);
    count(e, -1);
    p->registered = false;
    r->outcome = TS_OUT_CANCELLED;
    snprintf(r->user_id, sizeof r->user_id, "%s", c->u.cancel.user_id);
    return TS_DECIDE_OK;
}

/* A registration retried with the same request and a new token: the
 * registration takes the token, if that command made it. */
static void rotate_token(ts_decider *d, const ts_batch_item *it) {
    const ts_command *c = &it->cmd;
    if (!may_rotate(c) || it->reply.outcome != TS_OUT_REGISTERED)
        return;
    char key[2 * TS_UUID_LEN];
    pair_key(key, c->event_id, it->user_id);
    pair_rec *p = table_find(&d->pairs, key);
    if (!p || !p->registered || strcmp(p->command_id, c->command_id) != 0)
        return;
    const ts_digest *token = &c->u.reg.cancel_token_sha256;
    p->token = *token;
    if (p->step == d->step && p->reg_row) { /* not written yet: write it with this one */
        d->registrations[p->reg_row - 1].cancel_token = token;
    } else if (p->step == d->step && p->rot_row) {
        d->rotations[p->rot_row - 1].cancel_token = token;
    } else {
        d->rotations[d->nrotations++] =
            (ts_row_rotation){c->event_id, it->user_id, c->command_id, token};
        p->step = d->step;
        p->reg_row = 0;
        p->rot_row = d->nrotations;
    }
}

/* A command id seen before: its first outcome, or a refusal if the
 * request is another. */
static void replay(ts_decider *d, ts_batch_item *it, const command_rec *first, int64_t now_ms) {
    ts_reply *r = &it->reply;
    const ts_digest *first_request;
    it->replayed = true;
    if (first->stored) {
        const stored_command *s = &d->stored[first->stored - 1];
        r->outcome = s->outcome;
        snprintf(r->user_id, sizeof r->user_id, "%s", s->user_id);
        snprintf(r->message, sizeof r->message, "%s", s->message);
        r->applied_at_ms = s->applied_at_ms ? s->applied_at_ms : now_ms;
        first_request = &s->request;
    } else {
        *r = first->first->reply;
        first_request = &first->first->cmd.request_sha256;
    }
    if (!same_request(&it->cmd.request_sha256, first_request)) {
        refuse(r, TS_OUT_IDEMPOTENCY_KEY_REUSED); /* nothing of the first outcome */
        return;
    }
    rotate_token(d, it);
}

static ts_decide_status decide_item(ts_decider *d, ts_batch_item *it, int64_t now_ms) {
    ts_reply *r = &it->reply;
    snprintf(r->command_id, sizeof r->command_id, "%s", it->cmd.command_id);
    snprintf(r->event_id, sizeof r->event_id, "%s", it->cmd.event_id);
    char key[TS_UUID_LEN];
    uuid_key(key, it->cmd.command_id);
    bool added;
    command_rec *c = table_get(&d->commands, key, &added);
    if (!added) {
        replay(d, it, c, now_ms);
        return TS_DECIDE_OK;
    }
    c->first = it;
    r->applied_at_ms = now_ms;
    ts_decide_status st = TS_DECIDE_OK;
    switch (it->cmd.type) {
    case TS_CMD_CREATE_EVENT: decide_create(d, it); break;
    case TS_CMD_REGISTER: st = decide_register(d, it, now_ms); break;
    case TS_CMD_CANCEL: st = decide_cancel(d, it); break;
    default: refuse(r, TS_OUT_INVALID); break; /* never decoded so; never applied */
    }
    d->processed[d->nprocessed++] = (ts_row_processed){it};
    return st;
}

ts_decide_status ts_decide(ts_decider *d, int64_t now_ms, ts_decisions *out) {
    d->nevent_rows = d->nusers = d->nregistrations = d->nrotations = 0;
    d->step = d->nprocessed = d->ncounters = 0;
    for (size_t k = 0; k < d->n; k++) {
        ts_batch_item *it = &d->items[d->order ? d->order[k] : k];
        if (it->skip)
            continue;
        memset(&it->reply, 0, sizeof it->reply);
        it->replayed = false;
        if (decide_item(d, it, now_ms) != TS_DECIDE_OK)
            return TS_DECIDE_NEEDS_LOOKUPS;
    }
    close_step(d, NULL);
    for (size_t i = 0; i < d->events.n; i++) {
        const event_rec *e = table_rec(&d->events, i);
        if (e->dirty)
            d->counters[d->ncounters++] = (ts_row_counter){e->id, (int32_t)e->registered};
    }
    *out = (ts_decisions){
        .events = d->event_rows,
        .nevents = d->nevent_rows,
        .users = d->users,
        .nusers = d->nusers,
        .registrations = d->registrations,
        .nregistrations = d->nregistrations,
        .rotations = d->rotations,
        .nrotations = d->nrotations,
        .steps = d->steps,
        .nsteps = d->step,
        .processed = d->processed,
        .nprocessed = d->nprocessed,
        .counters = d->counters,
        .ncounters = d->ncounters,
    };
    return TS_DECIDE_OK;
}
