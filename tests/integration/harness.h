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

#include "ts_codec.h"
#include "ts_config.h"

#define IT_MAX_WORKERS 4
#define IT_MAX_APIS 2

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
} it_env;

/* Creates the topics (the reply topic with `reply_partitions`) and the
 * connections. Returns 0, or -1 after printing why. */
int it_setup(it_env *env, int command_partitions, int reply_partitions);
void it_teardown(it_env *env);

/* Starts the worker binary in slot `i` with this run's configuration; its
 * log goes to the file it_worker_log() names. */
void it_start_worker(it_env *env, int i);
const char *it_worker_log(it_env *env, int i);
/* Waits up to timeout_ms for worker i's log to contain `needle`. */
void it_await_worker_log(it_env *env, int i, const char *needle, int timeout_ms);
/* Sends `sig` to worker `i` and returns its exit status (or 128+signal). */
int it_stop_worker(it_env *env, int i, int sig);

/* Starts the API binary in slot `i` on a free port, replying on
 * `reply_partition`, and waits until /healthz answers. Returns its base URL
 * in url[cap]. */
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

/* Runs turnstile-admin with `args` (NULL-terminated, after the program's
 * name) in this process's environment, its stdout in out[cap] (its stderr
 * passes through). Returns its exit status. */
int it_admin(const char *const *args, char *out, size_t cap);

/* A command of `type` for `event_id` with a fresh command id, replying to
 * partition 0 of this run's reply topic. */
ts_command it_command(it_env *env, ts_command_type type, const char *event_id);
/* A registration command of `name` and `email` (it_command, filled in). */
ts_command it_registration(it_env *env, const char *event_id, const char *name, const char *email);
/* Produces a command keyed by its event id and waits for the broker's ack. */
void it_produce(it_env *env, const ts_command *cmd);
void it_produce_raw(it_env *env, const char *key, const void *value, size_t len);
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

#endif
