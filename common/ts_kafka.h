/* ts_kafka.h — librdkafka helpers shared by the ingress, the worker and the
 * tests: configuration with turnstile's defaults, and topic administration. */
#ifndef TS_KAFKA_H
#define TS_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "ts_config.h"

/* A configuration with bootstrap.servers set and librdkafka's logs routed
 * to ts_log. Caller owns it (rd_kafka_new takes it over). NULL on error. */
rd_kafka_conf_t *ts_kafka_conf_new(const ts_config *cfg, const char *client_id, char *err,
                                   size_t errlen);

/* Sets each "key", "value" pair of a NULL-terminated list. 0, or -1 with
 * `err` naming the key at fault. */
int ts_kafka_conf_set(rd_kafka_conf_t *conf, const char *const *pairs, char *err,
                      size_t errlen);

/* An idempotent producer (acks=all, no duplicates on retry). NULL on error. */
rd_kafka_t *ts_kafka_producer_new(const ts_config *cfg, const char *client_id, char *err,
                                  size_t errlen);

/* Creates the topics that do not exist yet: names[i] with partitions[i].
 * Returns 0 when all exist afterwards, or -1 with `err` set. */
int ts_kafka_create_topics(rd_kafka_t *rk, const char *const *names, const int *partitions,
                           int n, int timeout_ms, char *err, size_t errlen);

/* Deletes topics; a topic already gone is not an error. */
int ts_kafka_delete_topics(rd_kafka_t *rk, const char *const *names, int n, int timeout_ms,
                           char *err, size_t errlen);

#endif
