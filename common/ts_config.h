/* ts_config.h — the one configuration struct of both services.
 *
 * Filled once at start from environment variables (TS_*), each with a
 * default that fits the local stack of scripts/stack. ts_config_usage()
 * prints the table for --help. Nothing else reads the environment. */
#ifndef TS_CONFIG_H
#define TS_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "ts_limits.h"

typedef struct ts_config {
    /* HTTP ingress */
    int http_port;
    int http_threads;
    int max_body_bytes;
    int reply_timeout_ms;
    int reply_partition;     /* this API instance's partition of the reply topic */
    int max_pending;         /* requests waiting for a reply, per instance */
    /* Kafka */
    char kafka_brokers[256];
    char topic_prefix[128];
    char topic_commands[TS_TOPIC_MAX + 1];
    char topic_replies[TS_TOPIC_MAX + 1];
    char topic_dlq[TS_TOPIC_MAX + 1];
    char group_id[128];
    int linger_ms;
    int reply_linger_ms;
    /* PostgreSQL */
    char pg_dsn[512];
    int migrate;             /* apply sql/ migrations at start */
    /* worker */
    int batch_max;
    int batch_wait_ms;
    int optimism_pause;
    int worker_http_port;    /* /healthz and /metrics of the worker; 0: none */
    /* both */
    char log_level[16];
} ts_config;

/* Fills `cfg` from the environment. Returns 0, or -1 with a message naming
 * the variable at fault in `err`. */
int ts_config_load(ts_config *cfg, char *err, size_t errlen);

/* Prints every variable, its default and its meaning. */
void ts_config_usage(FILE *out);

#endif
