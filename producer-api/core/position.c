/* SPDX-License-Identifier: Apache-2.0 */
/* position.c — see position.h. */
#include "position.h"

#include "ts_lsn.h"

int ts_position_requested(const char *value, uint64_t *out) {
    if (!value) {
        *out = 0;
        return 0;
    }
    return ts_lsn_parse(value, out);
}

ts_read_target ts_position_target(bool has_replica, bool resting, uint64_t needed,
                                  uint64_t replayed) {
    if (!has_replica || resting)
        return TS_TARGET_PRIMARY;
    return replayed >= needed ? TS_TARGET_REPLICA : TS_TARGET_ASK_REPLICA;
}

int ts_replica_rest_ms(int previous_ms) {
    if (previous_ms < TS_REPLICA_REST_MIN_MS)
        return TS_REPLICA_REST_MIN_MS;
    return previous_ms >= TS_REPLICA_REST_MAX_MS / 2 ? TS_REPLICA_REST_MAX_MS : previous_ms * 2;
}
