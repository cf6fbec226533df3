/* SPDX-License-Identifier: Apache-2.0 */
/* ts_config.h — the one configuration struct of both services.
 *
 * Filled once at start from environment variables (TS_*), each with a
 * default that fits the local stack of scripts/stack. ts_config_usage()
 * prints the table for --help. ts_config_load() is the one reader of the
 * environment in turnstile's programs (the API, the worker,
 * turnstile-admin): the variables of its table, and every
 * TS_KAFKA_PROPERTY_* it finds walking `environ`. The libraries keep their
 * own: libpq, for one, takes PGPASSWORD and the other PG* variables for
 * what TS_PG_DSN leaves out. */
#ifndef TS_CONFIG_H
#define TS_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "ts_limits.h"

/* A librdkafka property from TS_KAFKA_CONFIG_FILE or TS_KAFKA_PROPERTY_<name>. */
typedef struct ts_kafka_property {
    char name[128];
    char value[1024];
} ts_kafka_property;

#define TS_KAFKA_PROPERTIES_MAX 32

typedef struct ts_config {
    /* HTTP ingress */
    char http_bind[64]; /* listen address; loopback keeps open mode possible */
    int http_port;
    int http_threads;
    int max_body_bytes;
    int reply_timeout_ms;
    int reply_partition; /* this API instance's partition of the reply topic; -1: claimed */
    int max_pending;     /* requests waiting for a reply, per instance */
    /* protection (open mode on loopback without keys; protected elsewhere) */
    char auth[8];              /* "auto", "on" or "off" */
    int rate_writes_per_s;     /* per client address; -1: 10 in protected mode, off in open */
    int rate_burst;            /* -1: 20 in protected mode */
    int rate_key_writes_per_s; /* per organizer key; -1: 200 in protected mode */
    int rate_key_burst;        /* -1: 1000 in protected mode */
    char trusted_proxies[512]; /* CIDRs whose X-Forwarded-For is believed */
    int max_connections;
    int max_connections_per_ip; /* -1: 256 in protected mode, unlimited in open */
    int request_timeout_s;      /* a whole request, headers to answer */
    int idle_timeout_s;         /* a connection with nothing to read */
    int max_url_bytes;
    int max_header_bytes;
    int hold_ttl_s; /* how long a seat hold lasts (POST /api/events/:id/holds) */
    /* Kafka */
    char kafka_brokers[256];
    char topic_prefix[128];
    char topic_commands[TS_TOPIC_MAX + 1];
    char topic_replies[TS_TOPIC_MAX + 1];
    char topic_dlq[TS_TOPIC_MAX + 1];
    char topic_events[TS_TOPIC_MAX + 1]; /* the event stream: PREFIX.events */
    char group_id[128];
    int linger_ms;
    int reply_linger_ms;
    int command_partitions; /* turnstile-admin topics: PREFIX.commands's partitions */
    int reply_partitions;   /* and PREFIX.replies's */
    char reply_topics[512]; /* worker: topics replies may go to ("" = PREFIX.replies) */
    char kafka_config_file[256];
    ts_kafka_property kafka_properties[TS_KAFKA_PROPERTIES_MAX];
    int kafka_nproperties; /* the file's lines, then TS_KAFKA_PROPERTY_* */
    /* Schema Registry (its Confluent-compatible API; see ts_registry.h) */
    char schema_registry_url[512]; /* "" = none: only single-object messages */
    int schema_registry_timeout_ms;
    /* PostgreSQL */
    char pg_dsn[512];
    /* API: a streaming replica of pg_dsn for the reads of data; "" = none */
    char pg_read_dsn[512];
    int migrate;       /* apply sql/ migrations at start */
    int pg_timeout_ms; /* any call, connecting included (ts_pg_watch, statement_timeout) */
    int read_threads;  /* API: the reads' threads, each with its connection */
    int read_queue;    /* API: reads waiting for a thread; more get 503 */
    /* worker */
    int batch_max;
    int batch_wait_ms;
    int optimism_pause;
    int worker_http_port;  /* /healthz and /metrics of the worker; 0: none */
    int sweep_interval_ms; /* the hold sweeper's period; 0: no sweeper */
    /* retention (turnstile-admin prune, the worker's retention job) */
    int retain_commands_h;  /* processed_commands kept this long (hours) */
    int retain_events_days; /* events kept this long after they start; 0: forever */
    int prune_interval_s;   /* the worker's retention job's period; 0: none */
    int prune_chunk_rows;   /* rows deleted per transaction, about */
    /* both */
    char log_level[16];
    char log_format[8]; /* "text" or "json" */
} ts_config;

/* Fills `cfg` from the environment (and the file TS_KAFKA_CONFIG_FILE
 * names), and sets the log level and format to TS_LOG_LEVEL and
 * TS_LOG_FORMAT. Returns 0, or -1 with a message naming the variable at
 * fault in `err` (never a Kafka property's value: those are secrets
 * often). Call once at start, before any thread:
 * the struct is only read afterwards, from any thread. */
int ts_config_load(ts_config *cfg, char *err, size_t errlen);

/* Prints every variable, its default and its meaning. */
void ts_config_usage(FILE *out);

#endif
