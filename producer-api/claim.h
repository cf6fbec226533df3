/* SPDX-License-Identifier: Apache-2.0 */
/* claim.h — a partition of the reply topic of this instance's own, held as
 * a PostgreSQL session advisory lock.
 *
 * The lock is pg_try_advisory_lock(key, partition), the two-int4 form (a
 * key space apart from the one-bigint locks of the migrations and the
 * pruner), `key` the first 32 bits of the MD5 of the reply topic's name:
 * ('x' || left(md5(topic), 8))::bit(32)::int, which anyone can compute in
 * SQL (a service of its own reading replies can take a partition the same
 * way, and the API instances leave it alone). It lives as long as its
 * connection: an instance that dies frees its partition with no cleanup,
 * since the server ends the session, and a live instance never loses its
 * partition to one that joins. The connection is a dedicated one
 * ("turnstile-api-claim" in pg_stat_activity), with deadlines on every
 * call (ts_pg_connect_bounded, ts_pg_watch) and TCP keepalives on the
 * server's side, so a host that vanishes frees its partition in about 25 s
 * instead of the kernel's two hours.
 *
 * Exclusivity is wanted, never relied on: an instance ignores the replies
 * it reads for commands it does not know. One thread at a time. */
#ifndef TS_CLAIM_H
#define TS_CLAIM_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ts_claim ts_claim;

/* A claimant of a partition of `topic` on the database `dsn`, each call
 * within timeout_ms. Connects on first use. NULL when out of memory. */
ts_claim *ts_claim_new(const char *dsn, const char *topic, int timeout_ms);

#define TS_CLAIM_NONE_FREE (-1) /* every partition asked for is held by another session */
#define TS_CLAIM_DB_DOWN (-2)   /* PostgreSQL did not answer: `err` says why */

/* Takes a partition: `first` if it is free (when >= 0), else the lowest
 * free one of 0..partitions-1 (partitions 0: `first` alone). Returns the
 * partition now held, or TS_CLAIM_NONE_FREE, or TS_CLAIM_DB_DOWN (the
 * connection is closed then: what it held is freed). A claimant holds
 * one partition at most: call it when ts_claim_held() is -1. */
int ts_claim_take(ts_claim *c, int first, int partitions, char *err, size_t errlen);

/* Whether the partition held is still held: the session is there and
 * holds the lock. False, with `err` set, when it was lost (the connection
 * is closed then, and ts_claim_held() is -1). */
bool ts_claim_keep(ts_claim *c, char *err, size_t errlen);

/* Lets go of the partition held (closes the connection). */
void ts_claim_release(ts_claim *c);

/* The partition held, or -1. */
int ts_claim_held(const ts_claim *c);

/* Closes the connection, which frees the partition held, and frees. NULL
 * is a no-op. */
void ts_claim_free(ts_claim *c);

#endif
