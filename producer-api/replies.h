/* SPDX-License-Identifier: Apache-2.0 */
/* replies.h — sending commands and waiting for their replies.
 *
 * This instance produces each command with reply_to = (reply topic, its own
 * partition) and reads that partition (assigned by hand: it joins no
 * consumer group and commits nothing), so several instances do not see
 * each other's replies. The partition is TS_REPLY_PARTITION when it is
 * set, else one claimed in PostgreSQL (claim.h: the lowest free one, kept
 * while the instance lives; see replies.c for the cases where none can be
 * claimed). A reply for a command not known here is counted and dropped:
 * sharing a partition costs reading, never a wrong answer. A request
 * waiting for its
 * reply is a suspended libmicrohttpd connection held in a table keyed by
 * command_id; one thread reads the replies, serves the producer's delivery
 * reports and the deadlines, resumes the connections, and asks a Kafka
 * known to be down whether it is back. Thread-safe. */
#ifndef TS_REPLIES_H
#define TS_REPLIES_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "ts_codec.h"
#include "ts_config.h"

typedef enum ts_wait_result {
    TS_WAIT_PENDING = 0,
    TS_WAIT_REPLIED,     /* the worker's reply is in `reply` */
    TS_WAIT_ACCEPTED,    /* in Kafka, no reply by the deadline: 202 */
    TS_WAIT_UNAVAILABLE, /* Kafka did not take it: 503 */
} ts_wait_result;

/* Where a request's answer is written; lives in the request's context. */
typedef struct ts_answer {
    ts_wait_result result;
    int64_t resolved_ms; /* monotonic: when the answer was written */
    char command_id[TS_UUID_LEN + 1];
    ts_reply reply;
} ts_answer;

typedef struct ts_replies ts_replies;

/* Connects the producer and the reply reader, starts the thread. NULL with
 * `err` set on failure. */
ts_replies *ts_replies_start(const ts_config *cfg, ts_metrics *metrics, char *err, size_t errlen);

/* Produces `cmd` and arranges for *answer to be filled. Returns
 * TS_WAIT_PENDING when `conn` was suspended: it is resumed once *answer is
 * final. Otherwise *answer is final already, and its result is returned.
 * Call from libmicrohttpd's access handler. */
ts_wait_result ts_replies_submit(ts_replies *r, const ts_command *cmd, struct MHD_Connection *conn,
                                 ts_answer *answer);

/* True while a command sent from this instance is known here without its
 * reply: waiting, or answered 202 within the last 10 minutes (and not
 * pushed out by TS_MAX_PENDING newer ones). */
bool ts_replies_is_pending(ts_replies *r, const char *command_id);

/* Refuses new commands, waits for those in flight to be answered (up to
 * the reply deadline and 3 s more for their delivery reports), then
 * answers the rest 503. The thread goes on until ts_replies_stop(). */
void ts_replies_drain(ts_replies *r);

/* True once the command producer hit a fatal error (logged with its
 * reason): it cannot send another command, and the process should exit
 * non-zero for its supervisor to start a new one. */
bool ts_replies_failed(ts_replies *r);

/* The reply partition new commands name now. Thread-safe. */
int32_t ts_replies_partition(ts_replies *r);

/* What of Kafka this instance needs is not working now, as flags: */
#define TS_REPLIES_KAFKA 1u /* no metadata of the commands topic from the cluster */
#define TS_REPLIES_PARTITION                                                                       \
    2u /* its reply partition: no leader, not assigned to the                                      \
        * reader, not fetched from yet, or the reader stalled */
/* Asks the cluster for metadata (up to timeout_ms, twice): call it from a
 * thread of its own, never from an HTTP thread (ready.c does). 0 when all
 * is well. Thread-safe. */
unsigned ts_replies_probe(ts_replies *r, int timeout_ms);

/* Stops the thread, sends what the producer still holds (up to 5 s),
 * closes both clients and frees. NULL is a no-op. */
void ts_replies_stop(ts_replies *r);

#endif
