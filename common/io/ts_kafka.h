/* SPDX-License-Identifier: Apache-2.0 */
/* ts_kafka.h — librdkafka helpers shared by the ingress, the worker and the
 * tests: configuration with turnstile's defaults, and topic administration. */
#ifndef TS_KAFKA_H
#define TS_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "ts_config.h"

/* A configuration with turnstile's settings (bootstrap.servers, ...), then
 * the operator's properties of cfg->kafka_properties (TS_KAFKA_CONFIG_FILE,
 * TS_KAFKA_PROPERTY_*), which may override them, and librdkafka's logs
 * routed to ts_log. Caller owns it (rd_kafka_new takes it over). NULL on
 * error, with `err` naming the property at fault but never its value. */
rd_kafka_conf_t *ts_kafka_conf_new(const ts_config *cfg, const char *client_id, char *err,
                                   size_t errlen);

/* Sets each "key", "value" pair of a NULL-terminated list. 0, or -1 with
 * `err` naming the key at fault. */
int ts_kafka_conf_set(rd_kafka_conf_t *conf, const char *const *pairs, char *err, size_t errlen);

/* Called on a client's configuration before the client is made: the place
 * to set callbacks and the opaque pointer. */
typedef void (*ts_kafka_setup_fn)(rd_kafka_conf_t *conf, void *arg);

/* A client of `type` with turnstile's defaults, then the operator's
 * properties (as ts_kafka_conf_new), then `pairs` (a NULL-terminated "key",
 * "value" list, or NULL), then `setup` (or NULL).
 * Producers are idempotent (acks=all, no duplicates on retry); consumers
 * are served by rd_kafka_consumer_poll. NULL with `err` set on error. */
rd_kafka_t *ts_kafka_new(const ts_config *cfg, rd_kafka_type_t type, const char *client_id,
                         const char *const *pairs, ts_kafka_setup_fn setup, void *arg, char *err,
                         size_t errlen);

/* ts_kafka_new for a producer with the defaults only. */
rd_kafka_t *ts_kafka_producer_new(const ts_config *cfg, const char *client_id, char *err,
                                  size_t errlen);

/* Connects a short-lived producer with `cfg` and asks for the cluster's
 * metadata: the check a service makes at start, so that wrong credentials
 * or an unreachable cluster stop it with a clear message instead of a
 * service that waits forever. 0 when the cluster answered within
 * timeout_ms; -1 with `err` naming the cause: "Kafka authentication failed
 * (SASL <mechanism> as user '<name>'): <librdkafka's reason>" or "Kafka
 * unreachable at <brokers> after <n> ms". No secret is ever in `err`. */
int ts_kafka_verify(const ts_config *cfg, const char *client_id, int timeout_ms, char *err,
                    size_t errlen);

/* Creates the topics that do not exist yet: names[i] with partitions[i].
 * Returns 0 when all exist afterwards, or -1 with `err` set. */
int ts_kafka_create_topics(rd_kafka_t *rk, const char *const *names, const int *partitions, int n,
                           int timeout_ms, char *err, size_t errlen);
/* ts_kafka_create_topics at `replication` replicas, with
 * min.insync.replicas `min_isr` (0: the broker's default). */
int ts_kafka_create_topics_replicated(rd_kafka_t *rk, const char *const *names,
                                      const int *partitions, int n, int replication, int min_isr,
                                      int timeout_ms, char *err, size_t errlen);

/* Deletes topics; a topic already gone is not an error. */
int ts_kafka_delete_topics(rd_kafka_t *rk, const char *const *names, int n, int timeout_ms,
                           char *err, size_t errlen);

/* The value of one configuration entry of a topic as the broker applies it
 * (the topic's own, else the broker's default), e.g. "retention.ms", in
 * value[cap]. 0; or -1 with `err` set (the broker unreachable within
 * timeout_ms, no such topic, no such entry). */
int ts_kafka_topic_config(rd_kafka_t *rk, const char *topic, const char *name, int timeout_ms,
                          char *value, size_t cap, char *err, size_t errlen);

#endif
