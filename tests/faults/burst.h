/* SPDX-License-Identifier: Apache-2.0 */
/* burst.h — the fault matrix's load client: a mixed burst of event
 * creations, registrations and cancellations against one or more API
 * URLs, sent the way the README tells clients to write.
 *
 * Every write carries an Idempotency-Key and is retried with the same key
 * on a 503 (after its Retry-After, capped), on a refused or dropped
 * connection or a timeout (on the next URL, until the operation's
 * deadline), and answered by polling the Location of a 202 until the
 * outcome is final. Each logical operation is journaled: what it was, its
 * key, its final answer and the ids in it, its attempts, and times. */
#ifndef TS_FAULTS_BURST_H
#define TS_FAULTS_BURST_H

#include <stddef.h>
#include <stdint.h>

#include "ts_uuid.h"

#define FB_MAX_URLS 4

typedef enum fb_kind { FB_CREATE, FB_REGISTER, FB_CANCEL } fb_kind;

typedef struct fb_op {
    fb_kind kind;
    char key[TS_UUID_LEN + 1];       /* the Idempotency-Key */
    char event_id[TS_UUID_LEN + 1];  /* register, cancel: the event ("" for a create) */
    char text[96];                   /* create: its unique title; else the email */
    char user_id[TS_UUID_LEN + 1];   /* register, cancel: the email's user id */
    int capacity;                    /* create: the event's seats */
    long status;                     /* the final HTTP status; 0: none before the deadline */
    char code[48];                   /* the final answer's error code, "" on success */
    char result_id[TS_UUID_LEN + 1]; /* create: the event's id; register: the user id */
    int attempts, n503, n202, ndropped;
    int64_t t_start, t_end; /* monotonic ms: first attempt sent, final answer read */
} fb_op;

typedef struct fb_config {
    int ops;          /* logical operations of the burst, base events excluded */
    int clients;      /* concurrent clients (threads), each one connection */
    int hot_capacity; /* seats of the hot event (it fills: "Event is full") */
    int events;       /* base events made before the burst: 1 hot + the rest large */
    int deadline_ms;  /* per operation: no final answer by then, it is left unanswered */
    unsigned seed;
} fb_config;

typedef struct fb_burst fb_burst;

/* Creates the base events (through the API, journaled like every other
 * operation), then starts the clients on the rest of the burst, and
 * returns. NULL if a base event could not be created (printed). */
fb_burst *fb_start(const fb_config *cfg, const char *const *urls, int nurls);

/* Replaces URL i (e.g. an API restarted on another port). Thread-safe. */
void fb_set_url(fb_burst *b, int i, const char *url);

/* Operations with a final answer (or given up) so far. Thread-safe. */
long fb_finished(fb_burst *b);

/* Waits for every client to end. */
void fb_join(fb_burst *b);

/* The journal: every operation, base events first (valid after fb_join). */
const fb_op *fb_ops(const fb_burst *b, size_t *n);

/* The hot event's id. */
const char *fb_hot_event(const fb_burst *b);

void fb_free(fb_burst *b);

#endif
