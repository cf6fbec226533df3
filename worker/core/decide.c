/* SPDX-License-Identifier: Apache-2.0 */
/* decide.c — see decide.h.
 *
 * Five tables hold what a batch knows, keyed by UUIDs in their text form:
 * the events, the (event, user) pairs, the holds, the command ids. They are
 * open-addressed (linear probing over ts_fnv1a), never more than half full,
 * and grow while the state is loaded; ts_decide() first makes room for
 * everything its n commands can add, so no step of a decision allocates or
 * fails, and a record's address stays put while the batch is decided.
 * Tables, waiters and rows are allocated once per size and reused: a
 * steady stream of batches allocates nothing.
 *
 * Rows go in steps because a freed seat is only known to the database (the
 * seat a stored registration has, filled by the last one): what was decided
 * before it is written first, then the row that frees it. A confirmation
 * and a capacity change end a step too: rows after them depend on them. A
 * registration retried with a new token in the step that inserts it
 * changes the row about to be inserted; a second rotation in one step
 * changes the first: a statement never names a registration twice.
 *
 * A waitlist is two queues per event: the places loaded from the database
 * (its head, in seq order) and the places taken in this batch. The head
 * loaded is at least as long as the batch can consume (see
 * ts_decider_waitlist_wanted), so promotion never reaches a stored place
 * that was not loaded. */
#include "decide.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_hash.h"

/* Issue times a decision accepts: from 1970 to the end of year 9999, the
 * range a timestamp of the database holds with a hold's time to live. */
#define ISSUED_AT_MAX_MS 253402300799999LL

/* ------------------------------------------------------------ keyed tables */

/* Records of rec_size bytes, each beginning with its key of key_len bytes. */
typedef struct table {
    uint32_t *slots; /* a record's position + 1; 0: empty */
    size_t nslots;   /* a power of two, at least twice max */
    char *recs;
    size_t rec_size, key_len;
    size_t n, max;
} table;

static void table_free(table *t) {
    free(t->slots);
    free(t->recs);
}

static void *table_rec(const table *t, size_t i) {
    return t->recs + i * t->rec_size;
}

static uint32_t *table_slot(const table *t, const char *key) {
    size_t mask = t->nslots - 1;
    for (size_t i = ts_fnv1a(key, t->key_len) & mask;; i = (i + 1) & mask) {
        uint32_t *s = &t->slots[i];
        if (*s == 0 || memcmp(table_rec(t, *s - 1), key, t->key_len) == 0)
            return s;
    }
}

/* Room for `max` records, the ones held kept. 0, or -1. Moves the records:
 * no pointer into the table survives it. */
static int table_reserve(table *t, size_t max) {
    if (max <= t->max && t->slots)
        return 0;
    if (max < 8)
        max = 8;
    size_t nslots = 16;
    while (nslots < 2 * max)
        nslots *= 2;
    uint32_t *slots = calloc(nslots, sizeof *slots);
    char *recs = realloc(t->recs, max * t->rec_size);
    if (!slots || !recs) {
        free(slots);
        if (recs)
            t->recs = recs;
        return -1;
    }
    free(t->slots);
    t->slots = slots;
    t->recs = recs;
    t->nslots = nslots;
    t->max = max;
    for (size_t i = 0; i < t->n; i++)
        *table_slot(t, table_rec(t, i)) = (uint32_t)(i + 1);
    return 0;
}

/* Empties the table, keeping its memory; a small batch clears little. */
static int table_reset(table *t, size_t max) {
    t->n = 0;
    if (table_reserve(t, max))
        return -1;
    memset(t->slots, 0, t->nslots * sizeof *t->slots);
    return 0;
}

static void *table_find(const table *t, const char *key) {
    uint32_t *s = table_slot(t, key);
    return *s ? table_rec(t, *s - 1) : NULL;
}

/* The key's record; a new one, zeroed but for its key, if it had none
 * (*added then true). Grows when full (moving the records); NULL when
 * out of memory. */
static void *table_get(table *t, const char *key, bool *added) {
    uint32_t *s = table_slot(t, key);
    *added = *s == 0;
    if (*s)
        return table_rec(t, *s - 1);
    if (t->n == t->max) {
        if (table_reserve(t, 2 * t->max))
            return NULL;
        s = table_slot(t, key);
    }
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

static void copy_id(char *dst, const char *src) {
    snprintf(dst, TS_UUID_LEN + 1, "%s", src ? src : "");
}

/* A growing array of elements of one size. */
static int reserve_array(void **p, size_t *cap, size_t need, size_t size) {
    if (need <= *cap && *p)
        return 0;
    size_t n = need < 16 ? 16 : need;
    void *q = realloc(*p, n * size);
    if (!q)
        return -1;
    *p = q;
    *cap = n;
    return 0;
}

/* ------------------------------------------------------------ state */

typedef struct event_rec {
    char id[TS_UUID_LEN + 1]; /* the key */
    bool found;
    bool dirty; /* changed in this batch: a counters row */
    bool cancelled;
    int64_t capacity, registered, held, waitlisted;
    int64_t starts_at_ms;
    int64_t stream_seq, waitlist_seq;
    /* what updates set, for the counters row */
    const char *title, *description, *location;
    bool starts_at_changed;
    /* what the batch may do to it (for the loading) */
    bool has_items;
    int64_t max_t;             /* the latest issue time of its commands */
    int64_t frees;             /* its commands that may free a seat */
    bool has_first_cap;        /* capacities its updates ask for: */
    int64_t first_cap;         /* the first, */
    int64_t last_cap;          /* the last, */
    int64_t cap_rises;         /* and the rises from each to the next */
    int64_t holds_loaded;      /* holds still held, loaded */
    int64_t unloaded;          /* stored places on its waitlist not loaded */
    int64_t stored_waitlisted; /* places on its waitlist when the batch began */
    int64_t removed_stored;    /* of those, how many left it in this batch */
    size_t pending;            /* its holds that may expire: a hold's position + 1 */
    size_t sq_head, sq_tail, nq_head, nq_tail; /* waiters: position + 1 */
} event_rec;

typedef struct pair_rec {
    char key[2 * TS_UUID_LEN];        /* event id, user id */
    ts_seat_kind kind;                /* 0: none */
    ts_digest token;                  /* the seat's */
    char command_id[TS_UUID_LEN + 1]; /* the command that made it */
    char hold_id[TS_UUID_LEN + 1];
    size_t waiter;           /* waitlisted and loaded: its waiter's position + 1 */
    int64_t seq;             /* waitlisted: its place's seq */
    int64_t stored_rank;     /* waitlisted when the batch began: its place in line; 0: unknown */
    size_t wrot_row;         /* its place's rotation row, position + 1; 0: none */
    size_t step;             /* the step the two rows below belong to */
    size_t reg_row, rot_row; /* its rows in that step, position + 1; 0: none */
} pair_rec;

typedef struct hold_rec {
    char id[TS_UUID_LEN + 1]; /* the key */
    char event_id[TS_UUID_LEN + 1];
    char user_id[TS_UUID_LEN + 1];
    ts_hold_state state; /* 0: no such hold */
    int64_t expires_at_ms;
    bool dirty;          /* a holds row */
    size_t next_pending; /* the event's next hold that may expire: position + 1 */
} hold_rec;

typedef struct waiter {
    char event_id[TS_UUID_LEN + 1];
    char user_id[TS_UUID_LEN + 1];
    char command_id[TS_UUID_LEN + 1];
    char name[TS_NAME_MAX + 1];
    char email[TS_EMAIL_MAX + 1];
    ts_digest token;
    int64_t seq;
    bool stored;
    bool removed;
    size_t next; /* position + 1 */
} waiter;

typedef struct stored_command {
    ts_outcome outcome;
    char user_id[TS_UUID_LEN + 1];
    char message[TS_MESSAGE_MAX + 1];
    int64_t applied_at_ms;
    ts_digest request;
    int64_t position;
    char hold_id[TS_UUID_LEN + 1];
    int64_t expires_at_ms;
} stored_command;

/* A stored place that left a waitlist in this batch. */
typedef struct removed_place {
    const event_rec *event;
    int64_t seq;
} removed_place;

typedef struct command_rec {
    char id[TS_UUID_LEN + 1];   /* the key */
    const ts_batch_item *first; /* the item that decided it in this batch */
    size_t stored;              /* else its position + 1 in stored[] */
} command_rec;

struct ts_decider {
    table events, pairs, holds, commands;
    stored_command *stored;
    size_t nstored, stored_cap;
    waiter *waiters;
    size_t nwaiters, waiters_cap;
    removed_place *removed;
    size_t nremoved, removed_cap;

    ts_batch_item *items;
    const size_t *order;
    size_t n;
    bool lookups_skipped;
    bool waitlist_short; /* promotion reached a stored place not loaded */

    /* the rows */
    ts_row_event *event_rows;
    ts_row_user *users;
    ts_row_registration *registrations;
    ts_row_rotation *rotations;
    ts_decided_step *steps;
    ts_row_rotation *wait_rotations;
    ts_row_unwait *unwaits;
    ts_row_wait *waits;
    ts_row_hold *hold_rows;
    ts_row_processed *processed;
    ts_row_counter *counters;
    ts_change *changes;
    size_t cap_events, cap_users, cap_registrations, cap_rotations, cap_steps, cap_wait_rotations,
        cap_unwaits, cap_waits, cap_holds, cap_processed, cap_counters, cap_changes;
    size_t nevent_rows, nusers, nregistrations, nrotations, step, nwait_rotations, nunwaits, nwaits,
        nhold_rows, nprocessed, ncounters, nchanges;
};

ts_decider *ts_decider_new(void) {
    ts_decider *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->events.rec_size = sizeof(event_rec);
    d->events.key_len = TS_UUID_LEN;
    d->pairs.rec_size = sizeof(pair_rec);
    d->pairs.key_len = (size_t)2 * TS_UUID_LEN;
    d->holds.rec_size = sizeof(hold_rec);
    d->holds.key_len = TS_UUID_LEN;
    d->commands.rec_size = sizeof(command_rec);
    d->commands.key_len = TS_UUID_LEN;
    return d;
}

void ts_decider_free(ts_decider *d) {
    if (!d)
        return;
    table_free(&d->events);
    table_free(&d->pairs);
    table_free(&d->holds);
    table_free(&d->commands);
    free(d->stored);
    free(d->waiters);
    free(d->removed);
    free(d->wait_rotations);
    free(d->event_rows);
    free(d->users);
    free(d->registrations);
    free(d->rotations);
    free(d->steps);
    free(d->unwaits);
    free(d->waits);
    free(d->hold_rows);
    free(d->processed);
    free(d->counters);
    free(d->changes);
    free(d);
}

int ts_decider_begin(ts_decider *d, ts_batch_item *items, const size_t *order, size_t n,
                     bool lookups_skipped) {
    d->items = items;
    d->order = order;
    d->n = 0;
    d->lookups_skipped = lookups_skipped;
    d->waitlist_short = false;
    d->nstored = d->nwaiters = 0;
    if (table_reset(&d->events, 2 * n) || table_reset(&d->pairs, 2 * n) ||
        table_reset(&d->holds, n) || table_reset(&d->commands, 2 * n))
        return -1;
    d->n = n;
    return 0;
}

static ts_batch_item *item_at(const ts_decider *d, size_t k) {
    return &d->items[d->order ? d->order[k] : k];
}

const char *ts_decide_user_id(const ts_batch_item *it) {
    switch (it->cmd.type) {
    case TS_CMD_REGISTER:
    case TS_CMD_PLACE_HOLD: return it->user_id;
    case TS_CMD_CANCEL: return it->cmd.u.cancel.user_id;
    default: return NULL;
    }
}

static const stored_command *stored_of(const ts_decider *d, const char *command_id) {
    char key[TS_UUID_LEN];
    uuid_key(key, command_id);
    const command_rec *c = table_find(&d->commands, key);
    return c && c->stored ? &d->stored[c->stored - 1] : NULL;
}

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

static hold_rec *hold_of(ts_decider *d, const char *hold_id, bool *added) {
    char key[TS_UUID_LEN];
    uuid_key(key, hold_id);
    return table_get(&d->holds, key, added);
}

static hold_rec *hold_find(const ts_decider *d, const char *hold_id) {
    char key[TS_UUID_LEN];
    uuid_key(key, hold_id);
    return table_find(&d->holds, key);
}

/* What an item may do to its event's seats, for the loading. */
static void note_item(event_rec *e, const ts_command *c) {
    if (!e->has_items || c->issued_at_ms > e->max_t)
        e->max_t = c->issued_at_ms;
    e->has_items = true;
    switch (c->type) {
    case TS_CMD_CANCEL:
    case TS_CMD_RELEASE_HOLD:
    case TS_CMD_PLACE_HOLD: e->frees++; break;
    case TS_CMD_UPDATE_EVENT:
        if (!c->u.update.has_capacity)
            break;
        if (!e->has_first_cap) {
            e->has_first_cap = true;
            e->first_cap = c->u.update.capacity;
        } else if (c->u.update.capacity > e->last_cap) {
            e->cap_rises += c->u.update.capacity - e->last_cap;
        }
        e->last_cap = c->u.update.capacity;
        break;
    default: break;
    }
}

bool ts_decider_wants_event(ts_decider *d, const ts_batch_item *it) {
    if (it->skip || stored_of(d, it->cmd.command_id))
        return false;
    bool added;
    event_rec *e = event_of(d, it->cmd.event_id, &added);
    if (!e)
        return false; /* out of memory: ts_decide() says so */
    note_item(e, &it->cmd);
    return added;
}

/* A registration (or confirmation) retried with its request digest and a
 * cancel token. */
static bool may_rotate(const ts_command *c) {
    if (!c->request_sha256.present)
        return false;
    if (c->type == TS_CMD_REGISTER)
        return c->u.reg.cancel_token_sha256.present;
    if (c->type == TS_CMD_CONFIRM_HOLD)
        return c->u.hold_ref.cancel_token_sha256.present;
    return false;
}

bool ts_decider_has_waitlists(const ts_decider *d) {
    for (size_t i = 0; i < d->events.n; i++) {
        const event_rec *e = table_rec(&d->events, i);
        if (e->found && e->waitlisted > 0)
            return true;
    }
    return false;
}

const char *ts_decider_pair_user(const ts_decider *d, const ts_batch_item *it) {
    const stored_command *s = stored_of(d, it->cmd.command_id);
    if (s) /* a retry that may rotate: a confirmation's user is its outcome's */
        return s->user_id[0] ? s->user_id : NULL;
    return ts_decide_user_id(it);
}

bool ts_decider_wants_registration(ts_decider *d, const ts_batch_item *it) {
    if (it->skip)
        return false;
    const stored_command *s = stored_of(d, it->cmd.command_id);
    if (s && !(may_rotate(&it->cmd) &&
               (s->outcome == TS_OUT_REGISTERED || s->outcome == TS_OUT_WAITLISTED)))
        return false;
    const char *user_id = ts_decider_pair_user(d, it);
    if (!user_id || !user_id[0])
        return false;
    bool added;
    return pair_of(d, it->cmd.event_id, user_id, &added) && added;
}

static bool names_hold(const ts_command *c) {
    return c->type == TS_CMD_CONFIRM_HOLD || c->type == TS_CMD_RELEASE_HOLD ||
           c->type == TS_CMD_EXPIRE_HOLD;
}

bool ts_decider_wants_hold(ts_decider *d, const ts_batch_item *it) {
    if (it->skip || !names_hold(&it->cmd) || stored_of(d, it->cmd.command_id))
        return false;
    bool added;
    return hold_of(d, it->cmd.u.hold_ref.hold_id, &added) && added;
}

bool ts_decider_expiring(ts_decider *d, size_t *cursor, const char **event_id, int64_t *before_ms) {
    for (; *cursor < d->events.n; (*cursor)++) {
        const event_rec *e = table_rec(&d->events, *cursor);
        if (e->found && e->held > 0 && e->has_items) {
            *event_id = e->id;
            *before_ms = e->max_t;
            (*cursor)++;
            return true;
        }
    }
    return false;
}

/* The most places the batch can take off the head of an event's waitlist:
 * one per command that may free a seat or remove a place, one per hold
 * that may expire, and every seat the capacity may rise by. */
static int64_t waitlist_bound(const event_rec *e) {
    int64_t bound = e->frees + e->holds_loaded + e->cap_rises;
    if (e->has_first_cap && e->first_cap > e->capacity)
        bound += e->first_cap - e->capacity;
    return bound;
}

bool ts_decider_waitlist_wanted(ts_decider *d, size_t *cursor, const char **event_id,
                                int64_t *limit) {
    for (; *cursor < d->events.n; (*cursor)++) {
        const event_rec *e = table_rec(&d->events, *cursor);
        int64_t bound = waitlist_bound(e);
        if (e->found && e->waitlisted > 0 && e->has_items && bound > 0) {
            *event_id = e->id;
            *limit = bound < e->waitlisted ? bound : e->waitlisted;
            (*cursor)++;
            return true;
        }
    }
    return false;
}

int ts_decider_add_command(ts_decider *d, const ts_stored_command *c) {
    if (reserve_array((void **)&d->stored, &d->stored_cap, d->nstored + 1, sizeof *d->stored))
        return -1;
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
    copy_id(s->user_id, c->user_id);
    snprintf(s->message, sizeof s->message, "%s", c->message ? c->message : "");
    s->applied_at_ms = c->applied_at_ms;
    s->request = c->request;
    s->position = c->position;
    copy_id(s->hold_id, c->hold_id);
    s->expires_at_ms = c->expires_at_ms;
    rec->stored = d->nstored;
    return 0;
}

int ts_decider_add_event(ts_decider *d, const ts_stored_event *e) {
    bool added;
    event_rec *rec = event_of(d, e->id, &added);
    if (!rec)
        return -1;
    rec->found = true;
    rec->capacity = e->capacity;
    rec->registered = e->registered;
    rec->starts_at_ms = e->starts_at_ms;
    rec->held = e->held;
    rec->waitlisted = e->waitlisted;
    rec->unloaded = e->waitlisted;
    rec->stored_waitlisted = e->waitlisted;
    rec->cancelled = e->cancelled;
    rec->stream_seq = e->stream_seq;
    rec->waitlist_seq = e->waitlist_seq;
    return 0;
}

int ts_decider_add_registration(ts_decider *d, const ts_stored_registration *r) {
    bool added;
    pair_rec *rec = pair_of(d, r->event_id, r->user_id, &added);
    if (!rec)
        return -1;
    rec->kind = r->kind ? r->kind : TS_SEAT_REGISTERED;
    rec->token = r->cancel_token;
    copy_id(rec->command_id, r->command_id);
    copy_id(rec->hold_id, r->kind == TS_SEAT_HELD ? r->hold_id : NULL);
    if (r->kind == TS_SEAT_WAITLISTED) {
        rec->seq = r->seq;
        rec->stored_rank = r->position;
    }
    return 0;
}

int ts_decider_add_hold(ts_decider *d, const ts_stored_hold *h) {
    bool added;
    hold_rec *rec = hold_of(d, h->hold_id, &added);
    if (!rec)
        return -1;
    if (rec->state) /* loaded before */
        return 0;
    copy_id(rec->event_id, h->event_id);
    copy_id(rec->user_id, h->user_id);
    rec->state = h->state;
    rec->expires_at_ms = h->expires_at_ms;
    if (h->state != TS_HOLD_HELD)
        return 0;
    size_t pos = (size_t)(rec - (hold_rec *)d->holds.recs);
    event_rec *e = event_of(d, h->event_id, &added);
    pair_rec *p = e ? pair_of(d, h->event_id, h->user_id, &added) : NULL;
    if (!p)
        return -1;
    rec = table_rec(&d->holds, pos);
    rec->next_pending = e->pending;
    e->pending = pos + 1;
    e->holds_loaded++;
    if (!p->kind) {
        p->kind = TS_SEAT_HELD;
        copy_id(p->command_id, h->hold_id);
        copy_id(p->hold_id, h->hold_id);
    }
    return 0;
}

int ts_decider_add_waiter(ts_decider *d, const ts_stored_waiter *w) {
    if (reserve_array((void **)&d->waiters, &d->waiters_cap, d->nwaiters + 1, sizeof *d->waiters))
        return -1;
    bool added;
    event_rec *e = event_of(d, w->event_id, &added);
    pair_rec *p = e ? pair_of(d, w->event_id, w->user_id, &added) : NULL;
    if (!p)
        return -1;
    if (p->waiter) /* loaded before */
        return 0;
    waiter *x = &d->waiters[d->nwaiters++];
    memset(x, 0, sizeof *x);
    copy_id(x->event_id, w->event_id);
    copy_id(x->user_id, w->user_id);
    copy_id(x->command_id, w->command_id);
    snprintf(x->name, sizeof x->name, "%s", w->name ? w->name : "");
    snprintf(x->email, sizeof x->email, "%s", w->email ? w->email : "");
    x->token = w->cancel_token;
    x->seq = w->seq;
    x->stored = true;
    if (e->sq_tail)
        d->waiters[e->sq_tail - 1].next = d->nwaiters;
    else
        e->sq_head = d->nwaiters;
    e->sq_tail = d->nwaiters;
    if (e->unloaded > 0)
        e->unloaded--;
    p->kind = TS_SEAT_WAITLISTED;
    p->waiter = d->nwaiters;
    p->token = w->cancel_token;
    p->seq = w->seq;
    p->stored_rank = e->stored_waitlisted - e->unloaded; /* the head: the k-th loaded is k-th */
    copy_id(p->command_id, w->command_id);
    return 0;
}

/* ------------------------------------------------------------ deciding */

static const ts_digest no_digest;

static event_rec *event_for(ts_decider *d, const char *event_id) {
    bool added;
    return event_of(d, event_id, &added);
}

static pair_rec *pair_for(ts_decider *d, const char *event_id, const char *user_id) {
    bool added;
    return pair_of(d, event_id, user_id, &added);
}

static int64_t taken(const event_rec *e) {
    return e->registered + e->held;
}

static void refuse(ts_reply *r, ts_outcome outcome) {
    r->outcome = outcome;
    r->user_id[0] = '\0';
    const char *message = ts_outcome_message(outcome);
    snprintf(r->message, sizeof r->message, "%s", message ? message : "");
}

static bool same_digest(const ts_digest *a, const ts_digest *b) {
    return a->present && b->present && memcmp(a->bytes, b->bytes, TS_SHA256_LEN) == 0;
}

/* Two requests behind one command id are the same unless both have a
 * digest and the digests differ (a producer without digests repeats). */
static bool same_request(const ts_digest *a, const ts_digest *b) {
    return !a->present || !b->present || same_digest(a, b);
}

/* A change the item makes to its event, with the event's next sequence
 * number. */
static ts_change *change(ts_decider *d, ts_batch_item *it, event_rec *e, ts_change_type type) {
    ts_change *c = &d->changes[d->nchanges++];
    memset(c, 0, sizeof *c);
    c->type = type;
    c->event_id = e->id;
    c->seq = ++e->stream_seq;
    c->occurred_at_ms = it->cmd.issued_at_ms;
    c->command_id = it->cmd.command_id;
    e->dirty = true;
    it->nchanges++;
    return c;
}

static void add_user(ts_decider *d, const char *id, const char *email) {
    d->users[d->nusers++] = (ts_row_user){id, email};
}

/* Ends the open step with its own row (or none: the last step). */
static ts_decided_step *close_step(ts_decider *d, ts_step_end ends_with) {
    ts_decided_step *s = &d->steps[d->step++];
    memset(s, 0, sizeof *s);
    s->registrations_end = d->nregistrations;
    s->rotations_end = d->nrotations;
    s->ends_with = ends_with;
    return s;
}

/* A seat taken: the row, in seat taken + 1 (counted by the caller first). */
static void take_seat(ts_decider *d, event_rec *e, pair_rec *p, ts_row_registration row) {
    row.event_id = e->id;
    row.seat = (int32_t)taken(e);
    row.capacity = (int32_t)e->capacity;
    d->registrations[d->nregistrations++] = row;
    p->step = d->step;
    p->reg_row = row.held ? 0 : d->nregistrations;
    p->rot_row = 0;
}

/* A stored or decided seat given back: its row goes, the last seat moves. */
static void free_seat(ts_decider *d, event_rec *e, const char *user_id, const ts_digest *token) {
    ts_decided_step *s = close_step(d, TS_STEP_FREE);
    s->u.cancel = (ts_row_cancel){e->id, user_id, token, (int32_t)taken(e)};
}

/* The next place in line: the loaded head first, then the batch's. NULL
 * when the line is empty, or when it goes on with places not loaded. */
static waiter *next_waiter(ts_decider *d, event_rec *e) {
    for (;;) {
        size_t *head = e->sq_head ? &e->sq_head : &e->nq_head;
        if (!e->sq_head && e->unloaded > 0) {
            d->waitlist_short = true;
            return NULL;
        }
        if (!*head)
            return NULL;
        waiter *w = &d->waiters[*head - 1];
        *head = w->next;
        if (head == &e->sq_head && !w->next)
            e->sq_tail = 0;
        if (head == &e->nq_head && !w->next)
            e->nq_tail = 0;
        if (!w->removed)
            return w;
    }
}

/* Free seats go to the oldest places on the waitlist. */
static void promote(ts_decider *d, ts_batch_item *it, event_rec *e) {
    while (!e->cancelled && taken(e) < e->capacity && e->waitlisted > 0) {
        waiter *w = next_waiter(d, e);
        if (!w)
            return;
        w->removed = true;
        e->waitlisted--;
        if (w->stored) {
            d->unwaits[d->nunwaits++] = (ts_row_unwait){e->id, w->user_id};
            d->removed[d->nremoved++] = (removed_place){e, w->seq};
            e->removed_stored++;
        }
        pair_rec *p = pair_for(d, e->id, w->user_id);
        p->kind = TS_SEAT_REGISTERED;
        p->token = w->token;
        p->waiter = 0;
        copy_id(p->command_id, w->command_id);
        e->registered++;
        take_seat(d, e, p,
                  (ts_row_registration){.user_id = w->user_id,
                                        .name = w->name,
                                        .command_id = w->command_id,
                                        .cancel_token = &w->token});
        ts_change *c = change(d, it, e, TS_CH_PROMOTED);
        c->user_id = w->user_id;
        c->name = w->name;
        c->email = w->email;
    }
}

static void expire(ts_decider *d, ts_batch_item *it, event_rec *e, hold_rec *h) {
    h->state = TS_HOLD_EXPIRED;
    h->dirty = true;
    pair_rec *p = pair_for(d, e->id, h->user_id);
    p->kind = 0;
    free_seat(d, e, h->user_id, &no_digest);
    e->held--;
    ts_change *c = change(d, it, e, TS_CH_HOLD_EXPIRED);
    c->user_id = h->user_id;
    c->hold_id = h->id;
    promote(d, it, e);
}

/* Every hold of the event that the item's issue time is past expires, the
 * earliest first. */
static void expire_due(ts_decider *d, ts_batch_item *it, event_rec *e) {
    const int64_t t = it->cmd.issued_at_ms;
    for (;;) {
        hold_rec *due = NULL;
        for (size_t i = e->pending; i;) {
            hold_rec *h = table_rec(&d->holds, i - 1);
            if (h->state == TS_HOLD_HELD && h->expires_at_ms < t &&
                (!due || h->expires_at_ms < due->expires_at_ms ||
                 (h->expires_at_ms == due->expires_at_ms && strcmp(h->id, due->id) < 0)))
                due = h;
            i = h->next_pending;
        }
        if (!due)
            return;
        expire(d, it, e, due);
    }
}

static void set_user(ts_reply *r, const char *user_id) {
    snprintf(r->user_id, sizeof r->user_id, "%s", user_id);
}

static void decide_create(ts_decider *d, ts_batch_item *it) {
    const ts_command *c = &it->cmd;
    event_rec *e = event_for(d, c->event_id);
    if (e->found) {
        expire_due(d, it, e);
        refuse(&it->reply, TS_OUT_INVALID);
        snprintf(it->reply.message, sizeof it->reply.message, "Event already exists");
        return;
    }
    e->found = true;
    e->capacity = c->u.create.capacity;
    e->registered = e->held = e->waitlisted = e->unloaded = 0;
    e->stream_seq = e->waitlist_seq = 0;
    e->cancelled = false;
    e->starts_at_ms = c->u.create.starts_at_ms;
    d->event_rows[d->nevent_rows++] = (ts_row_event){it};
    it->reply.outcome = TS_OUT_CREATED;
    ts_change *ch = change(d, it, e, TS_CH_EVENT_CREATED);
    ch->title = c->u.create.title;
    ch->description = c->u.create.has_description ? c->u.create.description : NULL;
    ch->location = c->u.create.location;
    ch->has_starts_at = ch->has_capacity = true;
    ch->starts_at_ms = c->u.create.starts_at_ms;
    ch->capacity = c->u.create.capacity;
}

/* Who may take a seat (register or hold), in the rules' order; the
 * outcome for a full event is EVENT_FULL. */
static ts_outcome seat_outcome(const event_rec *e, const pair_rec *p, int64_t t) {
    if (!e->found)
        return TS_OUT_EVENT_NOT_FOUND;
    if (e->cancelled)
        return TS_OUT_EVENT_CANCELLED;
    if (e->starts_at_ms <= t)
        return TS_OUT_PAST_EVENT;
    switch (p->kind) {
    case TS_SEAT_REGISTERED: return TS_OUT_ALREADY_REGISTERED;
    case TS_SEAT_HELD: return TS_OUT_ALREADY_HELD;
    case TS_SEAT_WAITLISTED: return TS_OUT_ALREADY_WAITLISTED;
    default: break;
    }
    return taken(e) >= e->capacity ? TS_OUT_EVENT_FULL : TS_OUT_REGISTERED;
}

/* With the lookups skipped, a stored seat would change these. */
static bool needs_lookups(const ts_decider *d, const event_rec *e, ts_outcome o) {
    return d->lookups_skipped &&
           (o == TS_OUT_EVENT_FULL || o == TS_OUT_WAITLISTED || (e->found && e->waitlisted > 0));
}

static void join_waitlist(ts_decider *d, ts_batch_item *it, event_rec *e, pair_rec *p) {
    const ts_command *c = &it->cmd;
    waiter *w = &d->waiters[d->nwaiters++];
    memset(w, 0, sizeof *w);
    copy_id(w->event_id, e->id);
    copy_id(w->user_id, it->user_id);
    copy_id(w->command_id, c->command_id);
    snprintf(w->name, sizeof w->name, "%s", c->u.reg.name);
    snprintf(w->email, sizeof w->email, "%s", c->u.reg.email);
    w->token = c->u.reg.cancel_token_sha256;
    w->seq = ++e->waitlist_seq;
    if (e->nq_tail)
        d->waiters[e->nq_tail - 1].next = d->nwaiters;
    else
        e->nq_head = d->nwaiters;
    e->nq_tail = d->nwaiters;
    e->waitlisted++;
    e->dirty = true;
    p->kind = TS_SEAT_WAITLISTED;
    p->waiter = d->nwaiters;
    p->token = w->token;
    p->seq = w->seq;
    p->stored_rank = 0;
    p->wrot_row = 0;
    copy_id(p->command_id, c->command_id);
    add_user(d, it->user_id, c->u.reg.email);
    it->reply.outcome = TS_OUT_WAITLISTED;
    it->reply.position = e->waitlisted;
    set_user(&it->reply, it->user_id);
    ts_change *ch = change(d, it, e, TS_CH_WAITLISTED);
    ch->user_id = it->user_id;
    ch->name = c->u.reg.name;
    ch->email = c->u.reg.email;
    ch->has_position = true;
    ch->position = e->waitlisted;
}

static ts_decide_status decide_register(ts_decider *d, ts_batch_item *it) {
    const ts_command *c = &it->cmd;
    ts_reply *r = &it->reply;
    event_rec *e = event_for(d, c->event_id);
    pair_rec *p = pair_for(d, c->event_id, it->user_id);
    if (e->found)
        expire_due(d, it, e);
    ts_outcome o = seat_outcome(e, p, c->issued_at_ms);
    if (o == TS_OUT_EVENT_FULL && c->u.reg.waitlist)
        o = TS_OUT_WAITLISTED;
    if (needs_lookups(d, e, o))
        return TS_DECIDE_NEEDS_LOOKUPS;
    if (o == TS_OUT_WAITLISTED) {
        join_waitlist(d, it, e, p);
        return TS_DECIDE_OK;
    }
    if (o != TS_OUT_REGISTERED) {
        refuse(r, o);
        if (o == TS_OUT_ALREADY_REGISTERED)
            set_user(r, it->user_id);
        return TS_DECIDE_OK;
    }
    e->registered++;
    p->kind = TS_SEAT_REGISTERED;
    p->token = c->u.reg.cancel_token_sha256;
    copy_id(p->command_id, c->command_id);
    add_user(d, it->user_id, c->u.reg.email);
    take_seat(d, e, p,
              (ts_row_registration){.user_id = it->user_id,
                                    .name = c->u.reg.name,
                                    .command_id = c->command_id,
                                    .cancel_token = &c->u.reg.cancel_token_sha256});
    r->outcome = TS_OUT_REGISTERED;
    set_user(r, it->user_id);
    ts_change *ch = change(d, it, e, TS_CH_REGISTERED);
    ch->user_id = it->user_id;
    ch->name = c->u.reg.name;
    ch->email = c->u.reg.email;
    return TS_DECIDE_OK;
}

static ts_decide_status decide_hold(ts_decider *d, ts_batch_item *it) {
    const ts_command *c = &it->cmd;
    ts_reply *r = &it->reply;
    event_rec *e = event_for(d, c->event_id);
    pair_rec *p = pair_for(d, c->event_id, it->user_id);
    if (e->found)
        expire_due(d, it, e);
    ts_outcome o = seat_outcome(e, p, c->issued_at_ms);
    if (needs_lookups(d, e, o))
        return TS_DECIDE_NEEDS_LOOKUPS;
    if (o != TS_OUT_REGISTERED) {
        refuse(r, o);
        if (o == TS_OUT_ALREADY_REGISTERED)
            set_user(r, it->user_id);
        return TS_DECIDE_OK;
    }
    bool added;
    hold_rec *h = hold_of(d, c->command_id, &added); /* room reserved: never NULL */
    if (!added && h->state) /* a hold of this id is stored: the command was applied before */
        return TS_DECIDE_NEEDS_LOOKUPS;
    copy_id(h->event_id, e->id);
    copy_id(h->user_id, it->user_id);
    h->state = TS_HOLD_HELD;
    h->expires_at_ms = c->issued_at_ms + c->u.hold.ttl_ms;
    h->dirty = true;
    h->next_pending = e->pending;
    e->pending = (size_t)(h - (hold_rec *)d->holds.recs) + 1;
    e->held++;
    p->kind = TS_SEAT_HELD;
    p->token = no_digest;
    copy_id(p->command_id, c->command_id);
    copy_id(p->hold_id, c->command_id);
    add_user(d, it->user_id, c->u.hold.email);
    take_seat(d, e, p,
              (ts_row_registration){.user_id = it->user_id,
                                    .name = c->u.hold.name,
                                    .command_id = c->command_id,
                                    .cancel_token = &no_digest,
                                    .held = true,
                                    .hold_id = c->command_id});
    r->outcome = TS_OUT_HELD;
    set_user(r, it->user_id);
    copy_id(r->hold_id, c->command_id);
    r->expires_at_ms = h->expires_at_ms;
    ts_change *ch = change(d, it, e, TS_CH_HOLD_PLACED);
    ch->user_id = it->user_id;
    ch->name = c->u.hold.name;
    ch->email = c->u.hold.email;
    ch->hold_id = c->command_id;
    ch->has_expires_at = true;
    ch->expires_at_ms = h->expires_at_ms;
    return TS_DECIDE_OK;
}

/* A waitlisted person's place in line now: 1 + the places still waiting
 * with a lower seq. 0 when it cannot be known (not loaded by its pair). */
static int64_t place_in_line(const ts_decider *d, const event_rec *e, const pair_rec *p) {
    if (p->waiter && !d->waiters[p->waiter - 1].stored) { /* joined in this batch */
        int64_t ahead = e->stored_waitlisted - e->removed_stored;
        for (size_t i = e->nq_head; i && i != p->waiter; i = d->waiters[i - 1].next)
            ahead += !d->waiters[i - 1].removed;
        return ahead + 1;
    }
    if (p->stored_rank <= 0)
        return 0;
    int64_t rank = p->stored_rank;
    for (size_t i = 0; i < d->nremoved; i++)
        rank -= d->removed[i].event == e && d->removed[i].seq < p->seq;
    return rank;
}

/* Takes the person off the line; their place in line when they left. */
static int64_t leave_waitlist(ts_decider *d, event_rec *e, pair_rec *p, const char *user_id) {
    int64_t place = place_in_line(d, e, p);
    bool stored = true;
    if (p->waiter) {
        waiter *w = &d->waiters[p->waiter - 1];
        w->removed = true;
        stored = w->stored;
    } else if (e->unloaded > 0) { /* further down the line than the head loaded */
        e->unloaded--;
    }
    if (stored) {
        d->unwaits[d->nunwaits++] = (ts_row_unwait){e->id, user_id};
        d->removed[d->nremoved++] = (removed_place){e, p->seq};
        e->removed_stored++;
    }
    p->kind = 0;
    p->waiter = 0;
    e->waitlisted--;
    e->dirty = true;
    return place;
}

static ts_decide_status decide_cancel(ts_decider *d, ts_batch_item *it) {
    const ts_command *c = &it->cmd;
    ts_reply *r = &it->reply;
    event_rec *e = event_for(d, c->event_id);
    pair_rec *p = pair_for(d, c->event_id, c->u.cancel.user_id);
    if (e->found)
        expire_due(d, it, e);
    if (!e->found || (p->kind != TS_SEAT_REGISTERED && p->kind != TS_SEAT_WAITLISTED)) {
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
    r->outcome = TS_OUT_CANCELLED;
    set_user(r, c->u.cancel.user_id);
    if (p->kind == TS_SEAT_WAITLISTED) {
        int64_t place = leave_waitlist(d, e, p, c->u.cancel.user_id);
        ts_change *ch = change(d, it, e, TS_CH_REGISTRATION_CANCELLED);
        ch->user_id = c->u.cancel.user_id;
        ch->has_position = place > 0;
        ch->position = place;
        return TS_DECIDE_OK;
    }
    free_seat(d, e, c->u.cancel.user_id, token);
    e->registered--;
    p->kind = 0;
    change(d, it, e, TS_CH_REGISTRATION_CANCELLED)->user_id = c->u.cancel.user_id;
    promote(d, it, e);
    return TS_DECIDE_OK;
}

/* The event of a command that needs one: its due holds expired first; or
 * NULL, the command refused with EVENT_NOT_FOUND. */
static event_rec *existing_event(ts_decider *d, ts_batch_item *it) {
    event_rec *e = event_for(d, it->cmd.event_id);
    if (!e->found) {
        refuse(&it->reply, TS_OUT_EVENT_NOT_FOUND);
        return NULL;
    }
    expire_due(d, it, e);
    return e;
}

/* The hold a confirm, release or expire names, if it is one of its event's
 * (after the event's due holds expired). */
static hold_rec *named_hold(ts_decider *d, const ts_batch_item *it, const event_rec *e) {
    hold_rec *h = hold_find(d, it->cmd.u.hold_ref.hold_id);
    if (!h || !h->state || strcmp(h->event_id, e->id) != 0)
        return NULL;
    return h;
}

static void decide_confirm(ts_decider *d, ts_batch_item *it) {
    const ts_command *c = &it->cmd;
    ts_reply *r = &it->reply;
    event_rec *e = existing_event(d, it);
    if (!e)
        return;
    if (e->cancelled) {
        refuse(r, TS_OUT_EVENT_CANCELLED);
        return;
    }
    hold_rec *h = named_hold(d, it, e);
    if (!h || h->state == TS_HOLD_RELEASED) {
        refuse(r, TS_OUT_HOLD_NOT_FOUND);
        return;
    }
    if (h->state == TS_HOLD_EXPIRED) {
        refuse(r, TS_OUT_HOLD_EXPIRED);
        return;
    }
    if (h->state == TS_HOLD_CONFIRMED) {
        refuse(r, TS_OUT_ALREADY_REGISTERED);
        set_user(r, h->user_id);
        return;
    }
    const ts_digest *token = &c->u.hold_ref.cancel_token_sha256;
    ts_decided_step *s = close_step(d, TS_STEP_CONFIRM);
    s->u.confirm = (ts_row_confirm){e->id, h->user_id, h->id, c->command_id, token};
    h->state = TS_HOLD_CONFIRMED;
    h->dirty = true;
    e->held--;
    e->registered++;
    e->dirty = true;
    pair_rec *p = pair_for(d, e->id, h->user_id);
    p->kind = TS_SEAT_REGISTERED;
    p->token = *token;
    copy_id(p->command_id, c->command_id);
    p->hold_id[0] = '\0';
    p->step = d->step;
    p->reg_row = p->rot_row = 0;
    r->outcome = TS_OUT_REGISTERED;
    set_user(r, h->user_id);
    ts_change *ch = change(d, it, e, TS_CH_HOLD_CONFIRMED);
    ch->user_id = h->user_id;
    ch->hold_id = h->id;
}

static void decide_release(ts_decider *d, ts_batch_item *it) {
    ts_reply *r = &it->reply;
    event_rec *e = existing_event(d, it);
    if (!e)
        return;
    hold_rec *h = named_hold(d, it, e);
    if (h && h->state == TS_HOLD_EXPIRED) {
        refuse(r, TS_OUT_HOLD_EXPIRED);
        return;
    }
    if (!h || h->state != TS_HOLD_HELD) {
        refuse(r, TS_OUT_HOLD_NOT_FOUND);
        return;
    }
    h->state = TS_HOLD_RELEASED;
    h->dirty = true;
    pair_for(d, e->id, h->user_id)->kind = 0;
    free_seat(d, e, h->user_id, &no_digest);
    e->held--;
    r->outcome = TS_OUT_RELEASED;
    set_user(r, h->user_id);
    ts_change *ch = change(d, it, e, TS_CH_HOLD_RELEASED);
    ch->user_id = h->user_id;
    ch->hold_id = h->id;
    promote(d, it, e);
}

static void decide_expire(ts_decider *d, ts_batch_item *it) {
    ts_reply *r = &it->reply;
    event_rec *e = existing_event(d, it);
    if (!e)
        return;
    const hold_rec *h = named_hold(d, it, e);
    if (h && h->state == TS_HOLD_EXPIRED) {
        r->outcome = TS_OUT_HOLD_EXPIRED;
        snprintf(r->message, sizeof r->message, "%s", ts_outcome_message(TS_OUT_HOLD_EXPIRED));
        set_user(r, h->user_id);
    } else {
        refuse(r, TS_OUT_HOLD_NOT_FOUND);
    }
}

static void decide_update(ts_decider *d, ts_batch_item *it) {
    const ts_command *c = &it->cmd;
    ts_reply *r = &it->reply;
    event_rec *e = existing_event(d, it);
    if (!e)
        return;
    if (e->cancelled) {
        refuse(r, TS_OUT_EVENT_CANCELLED);
        return;
    }
    if (c->u.update.has_capacity && c->u.update.capacity < taken(e)) {
        refuse(r, TS_OUT_CAPACITY_BELOW_TAKEN);
        return;
    }
    ts_change *ch = change(d, it, e, TS_CH_EVENT_UPDATED);
    if (c->u.update.has_title)
        e->title = ch->title = c->u.update.title;
    if (c->u.update.has_description)
        e->description = ch->description = c->u.update.description;
    if (c->u.update.has_location)
        e->location = ch->location = c->u.update.location;
    if (c->u.update.has_starts_at) {
        e->starts_at_ms = ch->starts_at_ms = c->u.update.starts_at_ms;
        e->starts_at_changed = ch->has_starts_at = true;
    }
    if (c->u.update.has_capacity) {
        ch->has_capacity = true;
        ch->capacity = c->u.update.capacity;
        if (c->u.update.capacity != e->capacity) {
            e->capacity = c->u.update.capacity;
            ts_decided_step *s = close_step(d, TS_STEP_CAPACITY);
            s->u.capacity = (ts_row_capacity){e->id, (int32_t)e->capacity, (int32_t)e->registered,
                                              (int32_t)e->held};
        }
    }
    r->outcome = TS_OUT_UPDATED;
    promote(d, it, e);
}

static void decide_cancel_event(ts_decider *d, ts_batch_item *it) {
    ts_reply *r = &it->reply;
    event_rec *e = existing_event(d, it);
    if (!e)
        return;
    if (e->cancelled) {
        refuse(r, TS_OUT_EVENT_CANCELLED);
        return;
    }
    e->cancelled = true;
    r->outcome = TS_OUT_CANCELLED;
    change(d, it, e, TS_CH_EVENT_CANCELLED);
}

/* A registration (or confirmation) retried with the same request and a
 * new token: the registration, or the place on the waitlist, takes the
 * token, if that command made it. */
static void rotate_token(ts_decider *d, const ts_batch_item *it) {
    const ts_command *c = &it->cmd;
    ts_outcome o = it->reply.outcome;
    if (!may_rotate(c) || (o != TS_OUT_REGISTERED && o != TS_OUT_WAITLISTED) ||
        !it->reply.user_id[0])
        return;
    char key[2 * TS_UUID_LEN];
    pair_key(key, c->event_id, it->reply.user_id);
    pair_rec *p = table_find(&d->pairs, key);
    if (!p || strcmp(p->command_id, c->command_id) != 0)
        return;
    const ts_digest *token = c->type == TS_CMD_REGISTER ? &c->u.reg.cancel_token_sha256
                                                        : &c->u.hold_ref.cancel_token_sha256;
    if (p->kind == TS_SEAT_WAITLISTED) {
        p->token = *token;
        if (p->waiter) {
            waiter *w = &d->waiters[p->waiter - 1];
            w->token = *token;
            if (!w->stored) /* its row is written at the end, with this token */
                return;
        }
        if (p->wrot_row) {
            d->wait_rotations[p->wrot_row - 1].cancel_token = token;
        } else {
            d->wait_rotations[d->nwait_rotations++] =
                (ts_row_rotation){c->event_id, it->reply.user_id, c->command_id, token};
            p->wrot_row = d->nwait_rotations;
        }
        return;
    }
    if (p->kind != TS_SEAT_REGISTERED)
        return;
    p->token = *token;
    if (p->step == d->step && p->reg_row) { /* not written yet: write it with this one */
        d->registrations[p->reg_row - 1].cancel_token = token;
    } else if (p->step == d->step && p->rot_row) {
        d->rotations[p->rot_row - 1].cancel_token = token;
    } else {
        d->rotations[d->nrotations++] =
            (ts_row_rotation){c->event_id, it->reply.user_id, c->command_id, token};
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
        set_user(r, s->user_id);
        snprintf(r->message, sizeof r->message, "%s", s->message);
        r->applied_at_ms = s->applied_at_ms ? s->applied_at_ms : now_ms;
        r->position = s->position;
        copy_id(r->hold_id, s->hold_id);
        r->expires_at_ms = s->expires_at_ms;
        first_request = &s->request;
    } else {
        *r = first->first->reply;
        first_request = &first->first->cmd.request_sha256;
    }
    if (!same_request(&it->cmd.request_sha256, first_request)) {
        refuse(r, TS_OUT_IDEMPOTENCY_KEY_REUSED); /* nothing of the first outcome */
        r->position = r->expires_at_ms = 0;
        r->hold_id[0] = '\0';
        return;
    }
    rotate_token(d, it);
}

static ts_decide_status decide_item(ts_decider *d, ts_batch_item *it, int64_t now_ms) {
    ts_reply *r = &it->reply;
    snprintf(r->command_id, sizeof r->command_id, "%s", it->cmd.command_id);
    snprintf(r->event_id, sizeof r->event_id, "%s", it->cmd.event_id);
    it->first_change = d->nchanges;
    it->nchanges = 0;
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
    int64_t t = it->cmd.issued_at_ms;
    if (t < 0 || t > ISSUED_AT_MAX_MS - TS_HOLD_TTL_MAX_MS) {
        refuse(r, TS_OUT_INVALID);
        snprintf(r->message, sizeof r->message, "issued_at out of range");
    } else {
        switch (it->cmd.type) {
        case TS_CMD_CREATE_EVENT: decide_create(d, it); break;
        case TS_CMD_REGISTER: st = decide_register(d, it); break;
        case TS_CMD_CANCEL: st = decide_cancel(d, it); break;
        case TS_CMD_PLACE_HOLD: st = decide_hold(d, it); break;
        case TS_CMD_CONFIRM_HOLD: decide_confirm(d, it); break;
        case TS_CMD_RELEASE_HOLD: decide_release(d, it); break;
        case TS_CMD_EXPIRE_HOLD: decide_expire(d, it); break;
        case TS_CMD_UPDATE_EVENT: decide_update(d, it); break;
        case TS_CMD_CANCEL_EVENT: decide_cancel_event(d, it); break;
        default: refuse(r, TS_OUT_INVALID); break; /* never decoded so; never applied */
        }
    }
    d->processed[d->nprocessed++] = (ts_row_processed){it};
    return st;
}

/* Room for every row and record the n items can make, so that deciding
 * allocates nothing and no record moves. */
static int make_room(ts_decider *d) {
    size_t n = d->n, w = d->nwaiters, h = d->holds.n + n;
    if (table_reserve(&d->events, d->events.n + n) || table_reserve(&d->pairs, d->pairs.n + n) ||
        table_reserve(&d->holds, h) || table_reserve(&d->commands, d->commands.n + n) ||
        reserve_array((void **)&d->waiters, &d->waiters_cap, w + n, sizeof *d->waiters))
        return -1;
    struct {
        void **p;
        size_t *cap, need, size;
    } arrays[] = {
        {(void **)&d->event_rows, &d->cap_events, n, sizeof *d->event_rows},
        {(void **)&d->users, &d->cap_users, n, sizeof *d->users},
        {(void **)&d->registrations, &d->cap_registrations, n + w, sizeof *d->registrations},
        {(void **)&d->rotations, &d->cap_rotations, n, sizeof *d->rotations},
        {(void **)&d->steps, &d->cap_steps, n + h + 1, sizeof *d->steps},
        {(void **)&d->wait_rotations, &d->cap_wait_rotations, n, sizeof *d->wait_rotations},
        {(void **)&d->unwaits, &d->cap_unwaits, n + w, sizeof *d->unwaits},
        {(void **)&d->removed, &d->removed_cap, n + w, sizeof *d->removed},
        {(void **)&d->waits, &d->cap_waits, n, sizeof *d->waits},
        {(void **)&d->hold_rows, &d->cap_holds, h, sizeof *d->hold_rows},
        {(void **)&d->processed, &d->cap_processed, n, sizeof *d->processed},
        {(void **)&d->counters, &d->cap_counters, d->events.n + n, sizeof *d->counters},
        {(void **)&d->changes, &d->cap_changes, 2 * n + h + w + 1, sizeof *d->changes},
    };
    for (size_t i = 0; i < sizeof arrays / sizeof *arrays; i++)
        if (reserve_array(arrays[i].p, arrays[i].cap, arrays[i].need, arrays[i].size))
            return -1;
    return 0;
}

/* The rows of what the batch left: places that joined and stayed, holds,
 * events. */
static void final_rows(ts_decider *d) {
    for (size_t i = 0; i < d->nwaiters; i++) {
        const waiter *w = &d->waiters[i];
        if (!w->stored && !w->removed)
            d->waits[d->nwaits++] = (ts_row_wait){w->event_id, w->user_id,    w->name,  w->email,
                                                  w->seq,      w->command_id, &w->token};
    }
    for (size_t i = 0; i < d->holds.n; i++) {
        const hold_rec *h = table_rec(&d->holds, i);
        if (h->dirty)
            d->hold_rows[d->nhold_rows++] =
                (ts_row_hold){h->id, h->event_id, h->user_id, h->expires_at_ms, h->state};
    }
    for (size_t i = 0; i < d->events.n; i++) {
        const event_rec *e = table_rec(&d->events, i);
        if (e->dirty)
            d->counters[d->ncounters++] = (ts_row_counter){
                .event_id = e->id,
                .registered = (int32_t)e->registered,
                .held = (int32_t)e->held,
                .waitlisted = (int32_t)e->waitlisted,
                .stream_seq = e->stream_seq,
                .waitlist_seq = e->waitlist_seq,
                .cancelled = e->cancelled,
                .title = e->title,
                .description = e->description,
                .location = e->location,
                .has_starts_at = e->starts_at_changed,
                .starts_at_ms = e->starts_at_ms,
            };
    }
}

ts_decide_status ts_decide(ts_decider *d, int64_t now_ms, ts_decisions *out) {
    if (make_room(d))
        return TS_DECIDE_NO_MEMORY;
    d->nevent_rows = d->nusers = d->nregistrations = d->nrotations = 0;
    d->step = d->nunwaits = d->nwaits = d->nhold_rows = d->nprocessed = d->ncounters = 0;
    d->nchanges = d->nwait_rotations = d->nremoved = 0;
    for (size_t k = 0; k < d->n; k++) {
        ts_batch_item *it = item_at(d, k);
        if (it->skip)
            continue;
        memset(&it->reply, 0, sizeof it->reply);
        it->replayed = false;
        if (decide_item(d, it, now_ms) != TS_DECIDE_OK)
            return TS_DECIDE_NEEDS_LOOKUPS;
    }
    if (d->waitlist_short) /* the loading fell short of its own bound: a bug */
        return TS_DECIDE_NEEDS_LOOKUPS;
    close_step(d, TS_STEP_END);
    final_rows(d);
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
        .wait_rotations = d->wait_rotations,
        .nwait_rotations = d->nwait_rotations,
        .unwaits = d->unwaits,
        .nunwaits = d->nunwaits,
        .waits = d->waits,
        .nwaits = d->nwaits,
        .holds = d->hold_rows,
        .nholds = d->nhold_rows,
        .processed = d->processed,
        .nprocessed = d->nprocessed,
        .counters = d->counters,
        .ncounters = d->ncounters,
        .changes = d->changes,
        .nchanges = d->nchanges,
    };
    return TS_DECIDE_OK;
}
