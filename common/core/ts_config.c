/* SPDX-License-Identifier: Apache-2.0 */
/* ts_config.c — one table describes every variable: its name, where it goes
 * in ts_config, its default and its help line. Loading, validation and
 * --help all walk that table. */
#include "ts_config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ts_codec.h"
#include "ts_log.h"

enum kind { INT, STR };

typedef struct var {
    const char *name;
    enum kind kind;
    size_t offset;
    size_t size; /* STR: buffer size */
    const char *def;
    long min, max; /* INT: accepted range */
    const char *help;
} var;

#define I(field, def, lo, hi, help)                                                                \
    { #field, INT, offsetof(ts_config, field), 0, def, lo, hi, help }
#define S(field, def, help)                                                                        \
    { #field, STR, offsetof(ts_config, field), sizeof(((ts_config *)0)->field), def, 0, 0, help }

static const var vars[] = {
    S(http_bind, "127.0.0.1",
      "listen address; anything but loopback turns protected mode on (see TS_AUTH)"),
    I(http_port, "4000", 1, 65535, "port of the HTTP ingress"),
    I(http_threads, "2", 1, 64, "threads of the ingress's epoll pool"),
    I(max_body_bytes, "16384", 256, 1048576, "largest request body accepted (413 above)"),
    I(reply_timeout_ms, "5000", 1, 600000, "wait for the worker's reply; then 202 Accepted"),
    I(reply_partition, "-1", -1, 100000,
      "this ingress's partition of the reply topic (-1: a free one, claimed in PostgreSQL)"),
    I(max_pending, "20000", 1, 1000000, "requests waiting for replies before 503"),
    S(auth, "auto",
      "on: protected mode; off: open mode anywhere; auto: open only on loopback with no"
      " organizer key"),
    I(rate_writes_per_s, "-1", -1, 1000000,
      "writes per second per client address (0: off; -1: 10 in protected mode, off in open)"),
    I(rate_burst, "-1", -1, 1000000, "burst of writes per client address (-1: 20)"),
    I(rate_key_writes_per_s, "-1", -1, 1000000,
      "writes per second per organizer key (0: off; -1: 200 in protected mode, off in open)"),
    I(rate_key_burst, "-1", -1, 1000000, "burst of writes per organizer key (-1: 1000)"),
    S(trusted_proxies, "",
      "comma-separated addresses or CIDRs whose X-Forwarded-For names the client"),
    I(max_connections, "10000", 16, 1000000, "open HTTP connections at most"),
    I(max_connections_per_ip, "-1", -1, 1000000,
      "open HTTP connections per client address (0: no cap; -1: 256 in protected mode, no cap"
      " in open)"),
    I(request_timeout_s, "30", 1, 3600, "a whole request, first byte to answer, at most"),
    I(idle_timeout_s, "10", 1, 3600, "a connection with nothing to read is closed after"),
    I(max_url_bytes, "2048", 64, 65536, "longest request target (414 above)"),
    I(max_header_bytes, "8192", 512, 65536, "largest request header block (431 above)"),
    I(hold_ttl_s, "600", TS_HOLD_TTL_MIN_MS / 1000, TS_HOLD_TTL_MAX_MS / 1000,
      "seconds a seat hold lasts before it expires (POST /api/events/:id/holds)"),
    S(kafka_brokers, "127.0.0.1:9092", "Kafka bootstrap servers"),
    S(topic_prefix, "turnstile",
      "topics are PREFIX.commands, PREFIX.replies, PREFIX.dlq, PREFIX.events"),
    S(group_id, "turnstile-worker", "consumer group of the workers"),
    I(linger_ms, "1", 0, 1000,
      "the API's linger for the commands of a burst (a command while none waits for its reply goes "
      "at once)"),
    I(reply_linger_ms, "0", 0, 1000, "the worker's linger before its replies are sent"),
    I(command_partitions, "12", 1, 1024,
      "turnstile-admin topics: partitions of PREFIX.commands (the most workers sharing the load)"),
    I(reply_partitions, "8", 1, 100000,
      "turnstile-admin topics: partitions of PREFIX.replies (one per API instance: more"
      " instances share)"),
    S(reply_topics, "",
      "worker: comma-separated topics replies may go to (default: PREFIX.replies)"),
    S(kafka_config_file, "",
      "file of librdkafka key=value lines (e.g. security.protocol, sasl.*, ssl.*); each"
      " TS_KAFKA_PROPERTY_<key>=value sets one too, after the file"),
    S(schema_registry_url, "",
      "base URL of a Schema Registry's Confluent-compatible API, e.g."
      " http://127.0.0.1:8081/apis/ccompat/v7 (empty: none)"),
    I(schema_registry_timeout_ms, "5000", 100, 600000,
      "any Schema Registry request at most, connecting included"),
    S(pg_dsn, "host=127.0.0.1 port=5432 dbname=turnstile user=turnstile password=turnstile",
      "libpq connection string"),
    S(pg_read_dsn, "",
      "API: libpq connection string of a streaming replica of TS_PG_DSN for the reads of data"
      " (a read goes there once it has replayed the writes this instance answered; else, or"
      " while it fails, to TS_PG_DSN); empty: every read on TS_PG_DSN"),
    I(migrate, "1", 0, 1, "apply pending sql/ migrations at start"),
    I(pg_timeout_ms, "5000", 100, 600000,
      "any PostgreSQL call at most, connecting included: then the API answers 503 and the"
      " worker retries"),
    I(read_threads, "4", 1, 64,
      "API: threads that run the reads (their own PostgreSQL connections)"),
    I(read_queue, "256", 1, 100000, "API: reads waiting for a thread at most; then 503 at once"),
    I(batch_max, "2000", 1, 100000, "commands per worker transaction at most"),
    I(batch_wait_ms, "0", 0, 1000, "time a worker waits to fill a batch"),
    I(optimism_pause, "64", 0, 1000000,
      "batches a worker runs with its lookups after a batch tried without them was undone"),
    I(worker_http_port, "4001", 0, 65535, "worker's /healthz and /metrics port (0: off)"),
    I(sweep_interval_ms, "250", 0, 60000,
      "worker: how often its hold sweeper looks for expired holds (ms; 0: no sweeper)"),
    I(retain_commands_h, "360", 1, 876000,
      "processed commands (the dedupe table, GET /api/commands/:id) kept this long, in hours;"
      " must exceed the commands topic's retention.ms plus its segment.ms (a whole segment goes"
      " at once)"),
    I(retain_events_days, "30", 0, 36500,
      "events, with their registrations, holds and waitlist, kept this many days after they"
      " start (0: kept forever)"),
    I(prune_interval_s, "3600", 0, 604800,
      "worker: how often one worker of the group prunes what the retention settings let go"
      " (s; 0: never, leave it to turnstile-admin prune)"),
    I(prune_chunk_rows, "5000", 1, 1000000, "pruning: rows deleted per transaction, about"),
    S(log_level, "info", "debug, info, warn or error"),
    S(log_format, "text",
      "text (a line of key=value pairs) or json (one JSON object per line, the same fields)"),
};

static void env_name(const var *v, char *out, size_t len) {
    size_t i = 0;
    i += (size_t)snprintf(out, len, "TS_");
    for (const char *p = v->name; *p && i + 1 < len; p++)
        out[i++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
    out[i] = '\0';
}

static int set_var(ts_config *cfg, const var *v, const char *value, char *err, size_t errlen) {
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
        snprintf(err, errlen, "%s: expected an integer in [%ld, %ld], got '%s'", name, v->min,
                 v->max, value);
        return -1;
    }
    *(int *)field = (int)n;
    return 0;
}

extern char **environ;

static int add_property(ts_config *cfg, const char *name, size_t name_len, const char *value,
                        const char *origin, char *err, size_t errlen) {
    ts_kafka_property *p = NULL;
    for (int i = 0; i < cfg->kafka_nproperties; i++) /* a later setting wins */
        if (strlen(cfg->kafka_properties[i].name) == name_len &&
            !strncmp(cfg->kafka_properties[i].name, name, name_len))
            p = &cfg->kafka_properties[i];
    if (!p && cfg->kafka_nproperties == TS_KAFKA_PROPERTIES_MAX) {
        snprintf(err, errlen, "%s: more than %d Kafka properties", origin, TS_KAFKA_PROPERTIES_MAX);
        return -1;
    }
    if (name_len == 0 || name_len >= sizeof p->name || strlen(value) >= sizeof p->value) {
        snprintf(err, errlen, "%s: a Kafka property name or value too long or empty", origin);
        return -1;
    }
    if (!p)
        p = &cfg->kafka_properties[cfg->kafka_nproperties++];
    memcpy(p->name, name, name_len);
    p->name[name_len] = '\0';
    strcpy(p->value, value);
    return 0;
}

/* key=value lines; blank lines and lines starting with # are skipped. The
 * values are secrets often: an error names the line, never its value. A
 * file that cannot be read to its end is an error, never a shorter list of
 * properties (a lost security.protocol would connect in plaintext). */
static int load_kafka_file(ts_config *cfg, char *err, size_t errlen) {
    FILE *f = fopen(cfg->kafka_config_file, "r");
    if (!f) {
        /* %m: strerror(errno), thread-safe in glibc's printf */
        snprintf(err, errlen, "TS_KAFKA_CONFIG_FILE: cannot open %s: %m", cfg->kafka_config_file);
        return -1;
    }
    char line[1280];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            snprintf(err, errlen, "TS_KAFKA_CONFIG_FILE line %d: longer than %zu bytes", lineno,
                     sizeof line - 2);
            rc = -1;
            break;
        }
        line[strcspn(line, "\r\n")] = '\0';
        const char *s = line + strspn(line, " \t");
        if (!*s || *s == '#')
            continue;
        const char *eq = strchr(s, '=');
        char origin[300];
        snprintf(origin, sizeof origin, "TS_KAFKA_CONFIG_FILE line %d", lineno);
        size_t n = eq ? (size_t)(eq - s) : 0;
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        if (!eq || n == 0) {
            snprintf(err, errlen, "%s: expected key=value", origin);
            rc = -1;
        } else {
            rc = add_property(cfg, s, n, eq + 1 + strspn(eq + 1, " \t"), origin, err, errlen);
        }
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, errlen, "TS_KAFKA_CONFIG_FILE: cannot read %s", cfg->kafka_config_file);
        rc = -1;
    }
    if (fclose(f) != 0 && rc == 0) {
        snprintf(err, errlen, "TS_KAFKA_CONFIG_FILE: cannot close %s: %m", cfg->kafka_config_file);
        rc = -1;
    }
    return rc;
}

/* Every TS_KAFKA_PROPERTY_<librdkafka name>=value, e.g.
 * TS_KAFKA_PROPERTY_security.protocol=SASL_SSL. */
static int load_kafka_env(ts_config *cfg, char *err, size_t errlen) {
    static const char prefix[] = "TS_KAFKA_PROPERTY_";
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, prefix, sizeof prefix - 1) != 0)
            continue;
        const char *name = *e + sizeof prefix - 1;
        const char *eq = strchr(name, '=');
        if (!eq)
            continue;
        if (add_property(cfg, name, (size_t)(eq - name), eq + 1, "TS_KAFKA_PROPERTY_*", err,
                         errlen))
            return -1;
    }
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
    ts_log_format format;
    if (ts_log_parse_format(cfg->log_format, &format)) {
        snprintf(err, errlen, "TS_LOG_FORMAT: expected text or json, got '%s'", cfg->log_format);
        return -1;
    }
    ts_log_set_level(level);
    ts_log_set_format(format);
    snprintf(cfg->topic_commands, sizeof cfg->topic_commands, "%s.commands", cfg->topic_prefix);
    snprintf(cfg->topic_replies, sizeof cfg->topic_replies, "%s.replies", cfg->topic_prefix);
    snprintf(cfg->topic_dlq, sizeof cfg->topic_dlq, "%s.dlq", cfg->topic_prefix);
    snprintf(cfg->topic_events, sizeof cfg->topic_events, "%s.events", cfg->topic_prefix);
    if (!cfg->reply_topics[0])
        snprintf(cfg->reply_topics, sizeof cfg->reply_topics, "%s", cfg->topic_replies);
    if (strcmp(cfg->auth, "auto") != 0 && strcmp(cfg->auth, "on") != 0 &&
        strcmp(cfg->auth, "off") != 0) {
        snprintf(err, errlen, "TS_AUTH: expected auto, on or off, got '%s'", cfg->auth);
        return -1;
    }
    if ((long)cfg->request_timeout_s * 1000 < (long)cfg->reply_timeout_ms + 1000) {
        snprintf(err, errlen,
                 "TS_REQUEST_TIMEOUT_S must exceed TS_REPLY_TIMEOUT_MS by a second at least");
        return -1;
    }
    if (cfg->schema_registry_url[0] && strncasecmp(cfg->schema_registry_url, "http://", 7) != 0 &&
        strncasecmp(cfg->schema_registry_url, "https://", 8) != 0) {
        snprintf(err, errlen,
                 "TS_SCHEMA_REGISTRY_URL: expected http://... or https://..., got '%s'",
                 cfg->schema_registry_url);
        return -1;
    }
    if (cfg->kafka_config_file[0] && load_kafka_file(cfg, err, errlen))
        return -1;
    return load_kafka_env(cfg, err, errlen);
}

void ts_config_usage(FILE *out) {
    int width = 0; /* the longest name: the help lines form one column */
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        char name[64];
        env_name(&vars[i], name, sizeof name);
        if ((int)strlen(name) > width)
            width = (int)strlen(name);
    }
    fprintf(out, "Configuration (environment variables):\n");
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        char name[64];
        env_name(&vars[i], name, sizeof name);
        fprintf(out, "  %-*s %s\n  %-*s (default: %s)\n", width, name, vars[i].help, width, "",
                vars[i].def);
    }
}
