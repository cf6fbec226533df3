/* SPDX-License-Identifier: Apache-2.0 */
/* harness.h — what the integration tests share: a private set of topics
 * on the real broker, the real worker binary as a child process, a
 * producer, a reply reader, and a PostgreSQL connection.
 *
 * Each run uses topics of its own (prefix it<pid>x<time>) and the database
 * named by TS_PG_DSN (scripts/test makes a fresh turnstile_test), so tests
 * never see each other's messages. Nothing here skips: if the stack is down,
 * it_setup() fails and so does the test. */
#ifndef TS_HARNESS_H
#define TS_HARNESS_H

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <sys/types.h>

#include "tcpproxy.h"
#include "ts_codec.h"
#include "ts_config.h"

/* The database when TS_PG_DSN is not set. */
#define IT_DEFAULT_DSN "host=127.0.0.1 port=5432 dbname=turnstile user=turnstile password=turnstile"

#define IT_MAX_WORKERS 4
#define IT_MAX_APIS 3

/* A record of the event stream (PREFIX.events), decoded and copied: what
 * ts_change says, with where it was read. */
typedef struct it_change {
    ts_change_type type;
    char event_id[TS_UUID_LEN + 1], command_id[TS_UUID_LEN + 1];
    char user_id[TS_UUID_LEN + 1], hold_id[TS_UUID_LEN + 1]; /* "" when absent */
    char email[TS_EMAIL_MAX + 1];                            /* "" when absent */
    char title[TS_TITLE_MAX + 1];                            /* "" when absent */
    int64_t seq, occurred_at_ms;
    bool has_position, has_expires_at, has_capacity;
    int64_t position, expires_at_ms, capacity;
    int32_t partition;
    int64_t offset;
} it_change;

typedef struct it_env {
    ts_config cfg;
    rd_kafka_t *producer;
    rd_kafka_t *replies; /* assigned to partition 0 of the reply topic */
    rd_kafka_t *dlq;     /* assigned to partition 0 of the dead-letter topic */
    ts_codec *codec;
    PGconn *pg;
    pid_t workers[IT_MAX_WORKERS];
    pid_t apis[IT_MAX_APIS];
    int api_ports[IT_MAX_APIS];
    char worker_logs[IT_MAX_WORKERS][128];
    int worker_ports[IT_MAX_WORKERS]; /* the workers' /healthz and /metrics */
    ts_reply *seen;                   /* replies read so far, in arrival order */
    size_t nseen, seen_cap;
    int command_partitions;
    char topic_events[TS_TOPIC_MAX + 1]; /* cfg.topic_events, made by it_setup */
    int events_partitions;
    rd_kafka_t *stream; /* reads every partition of topic_events, from the start */
    it_change *changes; /* records read so far, in arrival order */
    size_t nchanges, changes_cap;
} it_env;

/* Creates the topics (the reply topic with `reply_partitions`, the event
 * stream's with `command_partitions`) and the connections. Returns 0, or -1
 * after printing why. */
int it_setup(it_env *env, int command_partitions, int reply_partitions);
void it_teardown(it_env *env);

/* Starts the worker binary in slot `i` with this run's configuration; its
 * log goes to the file it_worker_log() names. */
void it_start_worker(it_env *env, int i);
/* it_start_worker with more environment for this worker alone: `extra` is
 * a NULL-terminated list of "NAME=value" (NULL: none). */
void it_start_worker_env(it_env *env, int i, const char *const *extra);
const char *it_worker_log(it_env *env, int i);
/* Waits up to timeout_ms for worker i's log to contain `needle`. */
void it_await_worker_log(it_env *env, int i, const char *needle, int timeout_ms);
/* Sends `sig` to worker `i` and returns its exit status (or 128+signal). */
int it_stop_worker(it_env *env, int i, int sig);

/* Starts the API binary in slot `i` on a free port, replying on
 * `reply_partition` (-1: TS_REPLY_PARTITION unset, the instance claims a
 * partition itself), and waits until /healthz answers. Returns its base
 * URL in url[cap]. */
void it_start_api(it_env *env, int i, int reply_partition, char *url, size_t cap);
int it_stop_api(it_env *env, int i, int sig);
/* it_start_api with more environment for this instance alone: `extra` is a
 * NULL-terminated list of "NAME=value" (NULL: none). */
void it_start_api_env(it_env *env, int i, int reply_partition, const char *const *extra, char *url,
                      size_t cap);
/* Runs the API binary on a free port with `extra` environment and waits up
 * to timeout_ms for it to exit by itself, its stderr in err[cap]. Returns
 * its exit status (128+signal if a signal ended it), or -1 if it was still
 * running at the deadline (it is killed then). */
int it_run_api_to_exit(it_env *env, const char *const *extra, int timeout_ms, char *err,
                       size_t cap);

/* Runs the program at `path` with argv (NULL-terminated, argv[0] its
 * name) in this process's environment, its stdout in out[cap] (read to
 * its end; what does not fit is dropped; its stderr passes through).
 * Returns its exit status. */
int it_run(const char *path, const char *const *argv, char *out, size_t cap);
/* it_run of turnstile-admin with `args` (after the program's name). */
int it_admin(const char *const *args, char *out, size_t cap);

/* A proxy (tcpproxy.h) to the PostgreSQL that `dsn` names (its host and
 * port), and in proxied[cap] `dsn` pointed through it (a later keyword of
 * a connection string wins over an earlier one). NULL if it cannot start. */
it_proxy *it_proxy_to_database(const char *dsn, char *proxied, size_t cap);

/* A command of `type` for `event_id` with a fresh command id, replying to
 * partition 0 of this run's reply topic. */
ts_command it_command(it_env *env, ts_command_type type, const char *event_id);
/* A registration command of `name` and `email` (it_command, filled in). */
ts_command it_registration(it_env *env, const char *event_id, const char *name, const char *email);
/* Produces a command keyed by its event id and waits for the broker's ack. */
void it_produce(it_env *env, const ts_command *cmd);
void it_produce_raw(it_env *env, const char *key, const void *value, size_t len);
/* The same to a partition of the caller's choice (RD_KAFKA_PARTITION_UA:
 * the producer's partitioner, murmur2). */
void it_produce_to(it_env *env, const char *key, int32_t partition, const void *value, size_t len);
/* The commands partition an event belongs in: murmur2 of its id. */
int32_t it_partition_of(const it_env *env, const char *event_id);
/* Produces n commands in one go, then waits for all the acks. */
void it_produce_many(it_env *env, const ts_command *cmds, size_t n);

/* Waits up to timeout_ms for the reply to `command_id` (the `nth` one, from
 * 1, when a command is answered more than once). Fails the test if none. */
ts_reply it_await_reply(it_env *env, const char *command_id, int nth, int timeout_ms);

/* Waits up to timeout_ms for a dead letter whose value is `value`; returns
 * the ts-reason header in reason[cap]. Fails the test if none. */
void it_await_dead_letter(it_env *env, const void *value, size_t len, char *reason, size_t cap,
                          int timeout_ms);

/* First column of the first row of a query with text parameters, as a
 * long long. Fails the test on error or no row. */
long long it_query_ll(it_env *env, const char *sql, int nparams, const char *const *params);

/* Makes database BASE_`suffix` afresh (dropped if it exists), BASE being
 * the database TS_PG_DSN names (turnstile_test under scripts/test, so
 * turnstile_test_lifecycle; "turnstile" by default), and points TS_PG_DSN —
 * this process's and so its children's — at it: runs on different
 * databases never share one. Call before it_setup(). Returns 0, or -1
 * after printing why. */
int it_own_database(const char *suffix);

/* ------------------------------------------------------------ event stream */

/* Reads what the event stream holds now into env->changes (waiting up to
 * wait_ms for the first record). Fails the test on a record that does not
 * decode. */
void it_stream_poll(it_env *env, int wait_ms);

/* Waits up to timeout_ms until the stream holds the sequence numbers
 * 1..count of `event_id`, checking on the way the contract of the stream:
 * every record of the event is in one partition; a sequence number seen
 * again is the same record (same content); in arrival order no record
 * skips ahead of one not yet seen (no gap); when `exact`, no number is
 * above count (else those records are left out). Returns the records, one
 * per sequence number, in that order, in *out (caller frees). Fails the
 * test, saying what it saw, otherwise. */
size_t it_stream_await(it_env *env, const char *event_id, int64_t count, bool exact, int timeout_ms,
                       it_change **out);

/* Waits up to timeout_ms until the stream holds a record of `event_id` for
 * which match(record, arg) is true; returns that record's seq. Fails the
 * test if none comes. */
int64_t it_stream_await_match(it_env *env, const char *event_id,
                              bool (*match)(const it_change *c, void *arg), void *arg,
                              int timeout_ms);

/* ------------------------------------------------------------ commands topic */

/* Every command of `event_id` in the commands topic (all its partitions,
 * from the start to the end they have now), decoded, in partition order,
 * in *out (caller frees). Messages that do not decode are left out. */
size_t it_read_commands(it_env *env, const char *event_id, ts_command **out);

/* ------------------------------------------------------------ replicated topics */

/* it_setup, with this run's topics at `replication` replicas and
 * min.insync.replicas `min_isr`: for a cluster of several brokers
 * (it_setup's topics have one replica). */
int it_setup_replicated(it_env *env, int command_partitions, int reply_partitions, int replication,
                        int min_isr);

/* The node id of the broker that leads `partition` of `topic` now, or -1. */
int it_partition_leader(it_env *env, const char *topic, int partition);

#endif
