/* ts_config.c — one table describes every variable: its name, where it goes
 * in ts_config, its default and its help line. Loading, validation and
 * --help all walk that table. */
#include "ts_config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ts_log.h"

enum kind { INT, STR };

typedef struct var {
    const char *name;
    enum kind kind;
    size_t offset;
    size_t size;  /* STR: buffer size */
    const char *def;
    long min, max;/* INT: accepted range */
    const char *help;
} var;

#define I(field, def, lo, hi, help)                                                     \
    {#field, INT, offsetof(ts_config, field), 0, def, lo, hi, help}
#define S(field, def, help)                                                             \
    {#field, STR, offsetof(ts_config, field), sizeof(((ts_config *)0)->field), def, 0, 0, help}

static const var vars[] = {
    I(http_port, "4000", 1, 65535, "port of the HTTP ingress"),
    I(http_threads, "2", 1, 64, "threads of the ingress's epoll pool"),
    I(max_body_bytes, "16384", 256, 1048576, "largest request body accepted (413 above)"),
    I(reply_timeout_ms, "5000", 1, 600000, "wait for the worker's reply; then 202 Accepted"),
    I(reply_partition, "0", 0, 100000, "this ingress's partition of the reply topic"),
    I(max_pending, "20000", 1, 1000000, "requests waiting for replies before 503"),
    S(kafka_brokers, "127.0.0.1:9092", "Kafka bootstrap servers"),
    S(topic_prefix, "turnstile", "topics are PREFIX.commands, PREFIX.replies, PREFIX.dlq"),
    S(group_id, "turnstile-worker", "consumer group of the workers"),
    I(linger_ms, "5", 0, 1000, "the API's linger before a batch of commands is sent"),
    I(reply_linger_ms, "1", 0, 1000, "the worker's linger before its replies are sent"),
    S(pg_dsn, "host=127.0.0.1 port=5432 dbname=turnstile user=turnstile password=turnstile",
      "libpq connection string"),
    I(migrate, "1", 0, 1, "apply pending sql/ migrations at start"),
    I(batch_max, "2000", 1, 100000, "commands per worker transaction at most"),
    I(batch_wait_ms, "2", 0, 1000, "time a worker waits to fill a batch"),
    I(optimism_pause, "64", 0, 1000000,
      "batches a worker runs with its lookups after a batch tried without them was undone"),
    I(worker_http_port, "4001", 0, 65535, "worker's /healthz and /metrics port (0: off)"),
    S(log_level, "info", "debug, info, warn or error"),
};

static void env_name(const var *v, char *out, size_t len) {
    size_t i = 0;
    i += (size_t)snprintf(out, len, "TS_");
    for (const char *p = v->name; *p && i + 1 < len; p++)
        out[i++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
    out[i] = '\0';
}

static int set_var(ts_config *cfg, const var *v, const char *value, char *err,
                   size_t errlen) {
    char name[64];
    env_name(v, name, sizeof name);
    char *field = (char *)cfg + v->offset;
    if (v->kind == STR) {
        if (strlen(value) >= v->size) {
            snprintf(err, errlen, "%s: longer than %zu bytes", name, v->size - 1);
            return -1;
        }
        strcpy(field, value);
        return 0;
    }
    char *end;
    errno = 0;
    long n = strtol(value, &end, 10);
    if (errno || end == value || *end || n < v->min || n > v->max) {
        snprintf(err, errlen, "%s: expected an integer in [%ld, %ld], got '%s'", name,
                 v->min, v->max, value);
        return -1;
    }
    *(int *)field = (int)n;
    return 0;
}

int ts_config_load(ts_config *cfg, char *err, size_t errlen) {
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        char name[64];
        env_name(&vars[i], name, sizeof name);
        const char *value = getenv(name);
        if (set_var(cfg, &vars[i], value && *value ? value : vars[i].def, err, errlen))
            return -1;
    }
    ts_log_level level;
    if (ts_log_parse_level(cfg->log_level, &level)) {
        snprintf(err, errlen, "TS_LOG_LEVEL: expected debug, info, warn or error");
        return -1;
    }
    ts_log_set_level(level);
    snprintf(cfg->topic_commands, sizeof cfg->topic_commands, "%s.commands", cfg->topic_prefix);
    snprintf(cfg->topic_replies, sizeof cfg->topic_replies, "%s.replies", cfg->topic_prefix);
    snprintf(cfg->topic_dlq, sizeof cfg->topic_dlq, "%s.dlq", cfg->topic_prefix);
    return 0;
}

void ts_config_usage(FILE *out) {
    fprintf(out, "Configuration (environment variables):\n");
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        char name[64];
        env_name(&vars[i], name, sizeof name);
        fprintf(out, "  %-20s %s\n  %-20s (default: %s)\n", name, vars[i].help, "",
                vars[i].def);
    }
}
