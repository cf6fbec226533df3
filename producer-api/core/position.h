/* SPDX-License-Identifier: Apache-2.0 */
/* position.h — read-your-writes with reads from a replica: the rules, pure.
 *
 * A write's answer carries the PostgreSQL WAL position (ts_lsn.h) its
 * commit reached, in X-Turnstile-Position. A read of data may go to the
 * replica (TS_PG_READ_DSN) only once the replica has replayed at least
 * the highest position this instance has answered, and the one the
 * request names in X-Turnstile-Min-Position (a client whose next read may
 * land on another instance copies it there); else it goes to the primary,
 * which has every commit. A command's outcome (GET /api/commands/:id) is
 * always read on the primary. Thread-safe. */
#ifndef TS_POSITION_H
#define TS_POSITION_H

#include <stdbool.h>
#include <stdint.h>

#define TS_POSITION_HEADER "X-Turnstile-Position"
#define TS_MIN_POSITION_HEADER "X-Turnstile-Min-Position"
/* The message of its 400 (code invalid_header, field the header's name). */
#define TS_MIN_POSITION_INVALID                                                                    \
    "X-Turnstile-Min-Position must be a position as X-Turnstile-Position gives it, e.g. "          \
    "0/16B3748"

/* The position a read asks for in X-Turnstile-Min-Position, `value` (NULL
 * when the request has none: 0, no demand). 0 with *out set, or -1 for a
 * value that is not a position as PostgreSQL prints one (the request is
 * answered 400 then, never served on a guess). */
int ts_position_requested(const char *value, uint64_t *out);

/* Where a read of data goes. */
typedef enum ts_read_target {
    TS_TARGET_PRIMARY,    /* no replica, or it rests after failing */
    TS_TARGET_REPLICA,    /* it has replayed far enough, as last seen */
    TS_TARGET_ASK_REPLICA /* ask how far it has replayed, then decide again */
} ts_read_target;

/* The target of a read that must see `needed` (the higher of this
 * instance's highest position and the request's), given whether there is
 * a replica, whether it rests, and how far it had replayed when last
 * asked (`replayed`, 0 if never). A replay position only grows while one
 * server runs, so one seen far enough needs no new question. */
ts_read_target ts_position_target(bool has_replica, bool resting, uint64_t needed,
                                  uint64_t replayed);

/* How long a replica that failed rests before it is tried again: 1 s after
 * the first failure, twice as long after each failed try, 30 s at most.
 * `previous_ms` is the rest before (0 for none). */
int ts_replica_rest_ms(int previous_ms);

#define TS_REPLICA_REST_MIN_MS 1000
#define TS_REPLICA_REST_MAX_MS 30000

#endif
