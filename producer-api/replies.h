/* replies.h — sending commands and waiting for their replies.
 *
 * This instance produces each command with reply_to = (reply topic, its own
 * partition TS_REPLY_PARTITION) and reads that partition alone (manual
 * assignment, no group), so several instances never see each other's
 * replies. A request waiting for its reply is a suspended libmicrohttpd
 * connection held in a table keyed by command_id; one thread reads the
 * replies, serves the producer's delivery reports and the deadlines, and
 * resumes the connections. Thread-safe. */
#ifndef TS_REPLIES_H
#define TS_REPLIES_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

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

/* True while a command sent from here has no reply yet. */
bool ts_replies_is_pending(ts_replies *r, const char *command_id);

/* Refuses new commands, waits (up to the reply deadline) for those in
 * flight to be answered, then answers the rest 503 and stops. */
void ts_replies_drain(ts_replies *r);
void ts_replies_stop(ts_replies *r);

#endif
