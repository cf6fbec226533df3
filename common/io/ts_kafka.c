/* SPDX-License-Identifier: Apache-2.0 */
/* ts_kafka.c — see ts_kafka.h.
 *
 * The operator's librdkafka properties (TS_KAFKA_CONFIG_FILE,
 * TS_KAFKA_PROPERTY_*) hold credentials: no message made here prints one of
 * their values, and librdkafka's own messages are masked before they are
 * passed on. */
#include "ts_kafka.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ts_log.h"
#include "ts_time.h"

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    (void)rk;
    /* syslog levels: 0-3 error, 4 warning, 5-6 info, 7 debug */
    ts_log_level l = level <= 3   ? TS_LOG_ERROR
                     : level == 4 ? TS_LOG_WARN
                     : level <= 6 ? TS_LOG_INFO
                                  : TS_LOG_DEBUG;
    ts_log(l, "kafka", "event=librdkafka facility=%s msg=\"%s\"", fac, buf);
}

int ts_kafka_conf_set(rd_kafka_conf_t *conf, const char *const *pairs, char *err, size_t errlen) {
    for (; pairs[0]; pairs += 2) {
        char why[256];
        if (rd_kafka_conf_set(conf, pairs[0], pairs[1], why, sizeof why) != RD_KAFKA_CONF_OK) {
            snprintf(err, errlen, "kafka config %s=%s: %s", pairs[0], pairs[1], why);
            return -1;
        }
    }
    return 0;
}

/* Properties whose values are credentials by their name alone. */
static bool sensitive(const char *name) {
    static const char *const words[] = {"password",           "secret", "jaas",
                                        "oauthbearer.config", ".pem",   "key"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strstr(name, words[i]))
            return true;
    return false;
}

/* Copies `text` into out[cap] with each occurrence of `value` replaced:
 * librdkafka quotes the value it refuses ("Invalid value \"...\" for
 * configuration property ..."), and that value may be a password. */
static void mask(char *out, size_t cap, const char *text, const char *value) {
    size_t n = 0, vlen = strlen(value);
    while (*text && n + 1 < cap) {
        if (vlen && strncmp(text, value, vlen) == 0) {
            n += (size_t)snprintf(out + n, cap - n, "%s", "(value hidden)");
            if (n >= cap) {
                n = cap - 1;
                break;
            }
            text += vlen;
        } else {
            out[n++] = *text++;
        }
    }
    out[n] = '\0';
}

/* Masks, in place, the values of the operator's sensitive properties. */
static void mask_secrets(const ts_config *cfg, char *text, size_t cap) {
    for (int i = 0; i < cfg->kafka_nproperties; i++) {
        const ts_kafka_property *p = &cfg->kafka_properties[i];
        if (!sensitive(p->name) || !strstr(text, p->value))
            continue;
        char masked[1024];
        mask(masked, sizeof masked, text, p->value);
        snprintf(text, cap, "%s", masked);
    }
}

/* The operator's properties: the error names the property and where it
 * came from, never its value. */
static int set_properties(rd_kafka_conf_t *conf, const ts_config *cfg, char *err, size_t errlen) {
    for (int i = 0; i < cfg->kafka_nproperties; i++) {
        const ts_kafka_property *p = &cfg->kafka_properties[i];
        char why[512], masked[512];
        if (rd_kafka_conf_set(conf, p->name, p->value, why, sizeof why) != RD_KAFKA_CONF_OK) {
            mask(masked, sizeof masked, why, p->value);
            snprintf(err, errlen,
                     "kafka property %s (TS_KAFKA_CONFIG_FILE or TS_KAFKA_PROPERTY_%s): %s",
                     p->name, p->name, masked);
            return -1;
        }
    }
    return 0;
}

/* turnstile's settings, then `defaults` (NULL-terminated pairs, or NULL),
 * then the operator's properties, which may override both. */
static rd_kafka_conf_t *conf_with(const ts_config *cfg, const char *client_id,
                                  const char *const *defaults, char *err, size_t errlen) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *pairs[] = {
        "bootstrap.servers",
        cfg->kafka_brokers,
        "client.id",
        client_id,
        "socket.nagle.disable",
        "true",
        NULL,
    };
    if (ts_kafka_conf_set(conf, pairs, err, errlen) ||
        (defaults && ts_kafka_conf_set(conf, defaults, err, errlen)) ||
        set_properties(conf, cfg, err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, log_cb);
    return conf;
}

rd_kafka_conf_t *ts_kafka_conf_new(const ts_config *cfg, const char *client_id, char *err,
                                   size_t errlen) {
    return conf_with(cfg, client_id, NULL, err, errlen);
}

rd_kafka_t *ts_kafka_new(const ts_config *cfg, rd_kafka_type_t type, const char *client_id,
                         const char *const *pairs, ts_kafka_setup_fn setup, void *arg, char *err,
                         size_t errlen) {
    char linger[16];
    snprintf(linger, sizeof linger, "%d", cfg->linger_ms);
    /* Idempotence gives acks=all and ordered, duplicate-free retries: a
     * command acknowledged to a client is on every in-sync replica. The
     * partitioner is Java's (murmur2), so that any Kafka client, in its
     * default setting or one line away from it, puts an event's commands
     * in the partition the API does (the worker refuses the others). */
    /* Batching in the manner of group commit: with no linger (TS_LINGER_MS
     * 0) a message goes out at once when no request is in flight, and what
     * arrives while one is goes out together in the next. Up to five
     * requests in flight (librdkafka's default) split a burst into more,
     * smaller requests, each a cost for the broker and the client, for no
     * earlier answer: the partition's appends are serial at the broker. */
    const char *producer_defaults[] = {
        "enable.idempotence",
        "true",
        "max.in.flight",
        "1",
        "linger.ms",
        linger,
        "compression.type",
        "lz4",
        "message.timeout.ms",
        "30000",
        "partitioner",
        "murmur2_random",
        NULL,
    };
    rd_kafka_conf_t *conf = conf_with(
        cfg, client_id, type == RD_KAFKA_PRODUCER ? producer_defaults : NULL, err, errlen);
    if (!conf)
        return NULL;
    if (pairs && ts_kafka_conf_set(conf, pairs, err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (setup)
        setup(conf, arg);
    char why[512];
    rd_kafka_t *rk = rd_kafka_new(type, conf, why, sizeof why);
    if (!rk) {
        mask_secrets(cfg, why, sizeof why);
        snprintf(err, errlen, "kafka %s: %s", type == RD_KAFKA_PRODUCER ? "producer" : "consumer",
                 why);
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

/* What the verifying client's error callback saw. librdkafka calls it from
 * rd_kafka_poll, on the thread of ts_kafka_verify: no locking. */
typedef struct verify_state {
    bool auth_failed;
    char auth_reason[512];
    char last_reason[512]; /* the latest other error, for "unreachable" */
} verify_state;

static void verify_error_cb(rd_kafka_t *rk, int code, const char *reason, void *opaque) {
    (void)rk;
    verify_state *st = opaque;
    if (code == RD_KAFKA_RESP_ERR__AUTHENTICATION && !st->auth_failed) {
        st->auth_failed = true;
        snprintf(st->auth_reason, sizeof st->auth_reason, "%s", reason);
    } else if (code != RD_KAFKA_RESP_ERR__AUTHENTICATION) {
        snprintf(st->last_reason, sizeof st->last_reason, "%s", reason);
    }
}

static void conf_get(const rd_kafka_conf_t *conf, const char *name, char *out, size_t cap) {
    size_t n = cap;
    if (rd_kafka_conf_get(conf, name, out, &n) != RD_KAFKA_CONF_OK)
        snprintf(out, cap, "?");
}

int ts_kafka_verify(const ts_config *cfg, const char *client_id, int timeout_ms, char *err,
                    size_t errlen) {
    /* Metadata is asked for in slices, with the error callback served in
     * between: a refused login is reported within a slice, not at the
     * deadline (librdkafka keeps retrying it as if the broker were down). */
    enum { SLICE_MS = 200 };
    verify_state st = {0};
    rd_kafka_conf_t *conf = ts_kafka_conf_new(cfg, client_id, err, errlen);
    if (!conf)
        return -1;
    /* Read back after the operator's properties: what the client will use.
     * Names only; the password is never read. */
    char brokers[512], protocol[64], mechanism[64], user[256];
    conf_get(conf, "bootstrap.servers", brokers, sizeof brokers);
    conf_get(conf, "security.protocol", protocol, sizeof protocol);
    conf_get(conf, "sasl.mechanisms", mechanism, sizeof mechanism);
    conf_get(conf, "sasl.username", user, sizeof user);
    rd_kafka_conf_set_error_cb(conf, verify_error_cb);
    rd_kafka_conf_set_opaque(conf, &st);
    char why[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    if (!rk) {
        mask_secrets(cfg, why, sizeof why);
        snprintf(err, errlen, "kafka client: %s", why);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    int64_t start = ts_monotonic_ms();
    int rc = -1;
    for (;;) {
        rd_kafka_poll(rk, 0);
        if (st.auth_failed) {
            mask_secrets(cfg, st.auth_reason, sizeof st.auth_reason);
            if (strncasecmp(protocol, "sasl", 4) == 0)
                snprintf(err, errlen, "Kafka authentication failed (SASL %s as user '%s'): %s",
                         mechanism, user, st.auth_reason);
            else
                snprintf(err, errlen, "Kafka authentication failed (%s): %s", protocol,
                         st.auth_reason);
            break;
        }
        int64_t left = start + timeout_ms - ts_monotonic_ms();
        if (left <= 0) {
            mask_secrets(cfg, st.last_reason, sizeof st.last_reason);
            snprintf(err, errlen, "Kafka unreachable at %s after %d ms%s%s", brokers, timeout_ms,
                     st.last_reason[0] ? ": " : "", st.last_reason);
            break;
        }
        const struct rd_kafka_metadata *md;
        rd_kafka_resp_err_t e =
            rd_kafka_metadata(rk, 0, NULL, &md, left < SLICE_MS ? (int)left : SLICE_MS);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_metadata_destroy(md);
            rc = 0;
            break;
        }
        if (e != RD_KAFKA_RESP_ERR__TRANSPORT && e != RD_KAFKA_RESP_ERR__TIMED_OUT)
            snprintf(st.last_reason, sizeof st.last_reason, "%s", rd_kafka_err2str(e));
    }
    rd_kafka_destroy(rk);
    return rc;
}

/* Runs one admin request and returns its per-topic results; the event is
 * the caller's to destroy. */
static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *q, rd_kafka_event_type_t type, int timeout_ms,
                                    char *err, size_t errlen) {
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

int ts_kafka_create_topics(rd_kafka_t *rk, const char *const *names, const int *partitions, int n,
                           int timeout_ms, char *err, size_t errlen) {
    return ts_kafka_create_topics_replicated(rk, names, partitions, n, 1, 0, timeout_ms, err,
                                             errlen);
}

int ts_kafka_create_topics_replicated(rd_kafka_t *rk, const char *const *names,
                                      const int *partitions, int n, int replication, int min_isr,
                                      int timeout_ms, char *err, size_t errlen) {
    char isr[16];
    snprintf(isr, sizeof isr, "%d", min_isr);
    rd_kafka_NewTopic_t *topics[n];
    int rc = -1;
    memset(topics, 0, sizeof topics);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, NULL, 0);
    for (int i = 0; i < n; i++) {
        char why[256];
        topics[i] = rd_kafka_NewTopic_new(names[i], partitions[i], replication, why, sizeof why);
        if (!topics[i] ||
            (min_isr > 0 && rd_kafka_NewTopic_set_config(topics[i], "min.insync.replicas", isr))) {
            snprintf(err, errlen, "topic %s: %s", names[i],
                     topics[i] ? "min.insync.replicas" : why);
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

/* The entry `name` of a DescribeConfigs answer's one resource. */
static int config_entry(const rd_kafka_ConfigResource_t *res, const char *name, char *value,
                        size_t cap, char *err, size_t errlen) {
    if (rd_kafka_ConfigResource_error(res)) {
        snprintf(err, errlen, "topic %s: %s", rd_kafka_ConfigResource_name(res),
                 rd_kafka_ConfigResource_error_string(res));
        return -1;
    }
    size_t n;
    const rd_kafka_ConfigEntry_t **entries = rd_kafka_ConfigResource_configs(res, &n);
    for (size_t i = 0; i < n; i++) {
        const char *v = rd_kafka_ConfigEntry_value(entries[i]);
        if (strcmp(rd_kafka_ConfigEntry_name(entries[i]), name) != 0)
            continue;
        if (!v) { /* a sensitive entry: never shown */
            snprintf(err, errlen, "topic %s: %s is not shown", rd_kafka_ConfigResource_name(res),
                     name);
            return -1;
        }
        snprintf(value, cap, "%s", v);
        return 0;
    }
    snprintf(err, errlen, "topic %s: no entry %s", rd_kafka_ConfigResource_name(res), name);
    return -1;
}

int ts_kafka_topic_config(rd_kafka_t *rk, const char *topic, const char *name, int timeout_ms,
                          char *value, size_t cap, char *err, size_t errlen) {
    int rc = -1;
    rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opts =
        rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
    if (!res || !q || !opts) {
        snprintf(err, errlen, "kafka admin: out of memory");
        goto done;
    }
    rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, NULL, 0);
    rd_kafka_DescribeConfigs(rk, &res, 1, opts, q);
    rd_kafka_event_t *ev =
        admin_wait(q, RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT, timeout_ms, err, errlen);
    if (ev) {
        size_t n;
        const rd_kafka_ConfigResource_t **got = rd_kafka_DescribeConfigs_result_resources(
            rd_kafka_event_DescribeConfigs_result(ev), &n);
        if (n == 1)
            rc = config_entry(got[0], name, value, cap, err, errlen);
        else
            snprintf(err, errlen, "topic %s: %zu resources in the answer", topic, n);
        rd_kafka_event_destroy(ev);
    }
done:
    if (opts)
        rd_kafka_AdminOptions_destroy(opts);
    if (q)
        rd_kafka_queue_destroy(q);
    if (res)
        rd_kafka_ConfigResource_destroy(res);
    return rc;
}
