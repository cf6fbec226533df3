/* ts_kafka.c — see ts_kafka.h. */
#include "ts_kafka.h"

#include <stdio.h>
#include <string.h>

#include "ts_log.h"

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    (void)rk;
    /* syslog levels: 0-3 error, 4 warning, 5-6 info, 7 debug */
    ts_log_level l = level <= 3 ? TS_LOG_ERROR : level == 4 ? TS_LOG_WARN
                                             : level <= 6   ? TS_LOG_INFO
                                                            : TS_LOG_DEBUG;
    ts_log(l, "kafka", "event=librdkafka facility=%s msg=\"%s\"", fac, buf);
}

int ts_kafka_conf_set(rd_kafka_conf_t *conf, const char *const *pairs, char *err,
                      size_t errlen) {
    for (; pairs[0]; pairs += 2) {
        char why[256];
        if (rd_kafka_conf_set(conf, pairs[0], pairs[1], why, sizeof why) != RD_KAFKA_CONF_OK) {
            snprintf(err, errlen, "kafka config %s=%s: %s", pairs[0], pairs[1], why);
            return -1;
        }
    }
    return 0;
}

rd_kafka_conf_t *ts_kafka_conf_new(const ts_config *cfg, const char *client_id, char *err,
                                   size_t errlen) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *pairs[] = {
        "bootstrap.servers", cfg->kafka_brokers,
        "client.id", client_id,
        "socket.nagle.disable", "true",
        NULL,
    };
    if (ts_kafka_conf_set(conf, pairs, err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, log_cb);
    return conf;
}

rd_kafka_t *ts_kafka_new(const ts_config *cfg, rd_kafka_type_t type, const char *client_id,
                         const char *const *pairs, ts_kafka_setup_fn setup, void *arg,
                         char *err, size_t errlen) {
    char linger[16];
    snprintf(linger, sizeof linger, "%d", cfg->linger_ms);
    /* Idempotence gives acks=all and ordered, duplicate-free retries: a
     * command acknowledged to a client is on every in-sync replica. */
    const char *producer_defaults[] = {
        "enable.idempotence", "true",
        "linger.ms", linger,
        "compression.type", "lz4",
        "message.timeout.ms", "30000",
        NULL,
    };
    const char *none[] = {NULL};
    rd_kafka_conf_t *conf = ts_kafka_conf_new(cfg, client_id, err, errlen);
    if (!conf)
        return NULL;
    if (ts_kafka_conf_set(conf, type == RD_KAFKA_PRODUCER ? producer_defaults : none, err,
                          errlen) ||
        (pairs && ts_kafka_conf_set(conf, pairs, err, errlen))) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (setup)
        setup(conf, arg);
    char why[256];
    rd_kafka_t *rk = rd_kafka_new(type, conf, why, sizeof why);
    if (!rk) {
        snprintf(err, errlen, "kafka %s: %s",
                 type == RD_KAFKA_PRODUCER ? "producer" : "consumer", why);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (type == RD_KAFKA_CONSUMER)
        rd_kafka_poll_set_consumer(rk);
    return rk;
}

rd_kafka_t *ts_kafka_producer_new(const ts_config *cfg, const char *client_id, char *err,
                                  size_t errlen) {
    return ts_kafka_new(cfg, RD_KAFKA_PRODUCER, client_id, NULL, NULL, NULL, err, errlen);
}

/* Runs one admin request and returns its per-topic results; the event is
 * the caller's to destroy. */
static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *q, rd_kafka_event_type_t type,
                                    int timeout_ms, char *err, size_t errlen) {
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 2000);
    if (!ev) {
        snprintf(err, errlen, "kafka admin: no answer in %d ms", timeout_ms);
        return NULL;
    }
    if (rd_kafka_event_type(ev) != type || rd_kafka_event_error(ev)) {
        snprintf(err, errlen, "kafka admin: %s", rd_kafka_event_error_string(ev));
        rd_kafka_event_destroy(ev);
        return NULL;
    }
    return ev;
}

static int check_results(const rd_kafka_topic_result_t **res, size_t n,
                         rd_kafka_resp_err_t tolerated, char *err, size_t errlen) {
    for (size_t i = 0; i < n; i++) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
        if (e && e != tolerated) {
            snprintf(err, errlen, "topic %s: %s", rd_kafka_topic_result_name(res[i]),
                     rd_kafka_topic_result_error_string(res[i]));
            return -1;
        }
    }
    return 0;
}

int ts_kafka_create_topics(rd_kafka_t *rk, const char *const *names, const int *partitions,
                           int n, int timeout_ms, char *err, size_t errlen) {
    rd_kafka_NewTopic_t *topics[n];
    int rc = -1;
    memset(topics, 0, sizeof topics);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, NULL, 0);
    for (int i = 0; i < n; i++) {
        char why[256];
        topics[i] = rd_kafka_NewTopic_new(names[i], partitions[i], 1, why, sizeof why);
        if (!topics[i]) {
            snprintf(err, errlen, "topic %s: %s", names[i], why);
            goto done;
        }
    }
    rd_kafka_CreateTopics(rk, topics, (size_t)n, opts, q);
    rd_kafka_event_t *ev =
        admin_wait(q, RD_KAFKA_EVENT_CREATETOPICS_RESULT, timeout_ms, err, errlen);
    if (ev) {
        size_t cnt;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
        rc = check_results(res, cnt, RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS, err, errlen);
        rd_kafka_event_destroy(ev);
    }
done:
    for (int i = 0; i < n; i++)
        if (topics[i])
            rd_kafka_NewTopic_destroy(topics[i]);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_queue_destroy(q);
    return rc;
}

int ts_kafka_delete_topics(rd_kafka_t *rk, const char *const *names, int n, int timeout_ms,
                           char *err, size_t errlen) {
    rd_kafka_DeleteTopic_t *topics[n];
    int rc = -1;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DELETETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, NULL, 0);
    for (int i = 0; i < n; i++)
        topics[i] = rd_kafka_DeleteTopic_new(names[i]);
    rd_kafka_DeleteTopics(rk, topics, (size_t)n, opts, q);
    rd_kafka_event_t *ev =
        admin_wait(q, RD_KAFKA_EVENT_DELETETOPICS_RESULT, timeout_ms, err, errlen);
    if (ev) {
        size_t cnt;
        const rd_kafka_topic_result_t **res =
            rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &cnt);
        rc = check_results(res, cnt, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, err, errlen);
        rd_kafka_event_destroy(ev);
    }
    for (int i = 0; i < n; i++)
        rd_kafka_DeleteTopic_destroy(topics[i]);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_queue_destroy(q);
    return rc;
}
