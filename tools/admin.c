/* admin.c — turnstile-admin: one-shot operations on the stack.
 *
 *   turnstile-admin migrate        apply pending sql/ migrations
 *   turnstile-admin topics         create the commands, replies and dlq topics
 *   turnstile-admin delete-topics  delete them (benchmarks, tests)
 *
 * All are idempotent. Configuration as for the services (see --help). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_config.h"
#include "ts_kafka.h"
#include "ts_log.h"
#include "ts_pg.h"

static int migrate(const ts_config *cfg) {
    char err[512];
    int applied = 0;
    PGconn *conn = ts_pg_connect(cfg->pg_dsn, "turnstile-admin", err, sizeof err);
    int rc = conn ? ts_pg_migrate(conn, &applied, err, sizeof err) : -1;
    if (conn)
        PQfinish(conn);
    if (rc) {
        fprintf(stderr, "turnstile-admin: %s\n", err);
        return 1;
    }
    printf("migrations applied: %d\n", applied);
    return 0;
}

/* A client for admin requests; NULL (said on stderr) if there is none. */
static rd_kafka_t *admin_client(const ts_config *cfg) {
    char err[512];
    rd_kafka_t *rk = ts_kafka_producer_new(cfg, "turnstile-admin", err, sizeof err);
    if (!rk)
        fprintf(stderr, "turnstile-admin: %s\n", err);
    return rk;
}

static int topics(const ts_config *cfg, int command_partitions, int reply_partitions) {
    char err[512];
    rd_kafka_t *rk = admin_client(cfg);
    if (!rk)
        return 1;
    const char *names[] = {cfg->topic_commands, cfg->topic_replies, cfg->topic_dlq};
    const int parts[] = {command_partitions, reply_partitions, 1};
    int rc = ts_kafka_create_topics(rk, names, parts, 3, 10000, err, sizeof err);
    rd_kafka_destroy(rk);
    if (rc) {
        fprintf(stderr, "turnstile-admin: %s\n", err);
        return 1;
    }
    printf("topics: %s (%d), %s (%d), %s (1)\n", names[0], parts[0], names[1], parts[1],
           names[2]);
    return 0;
}

static int delete_topics(const ts_config *cfg) {
    char err[512];
    rd_kafka_t *rk = admin_client(cfg);
    if (!rk)
        return 1;
    const char *names[] = {cfg->topic_commands, cfg->topic_replies, cfg->topic_dlq};
    int rc = ts_kafka_delete_topics(rk, names, 3, 10000, err, sizeof err);
    rd_kafka_destroy(rk);
    if (rc) {
        fprintf(stderr, "turnstile-admin: %s\n", err);
        return 1;
    }
    printf("deleted: %s, %s, %s\n", names[0], names[1], names[2]);
    return 0;
}

static int env_int(const char *name, int def) {
    const char *v = getenv(name);
    return v && *v ? atoi(v) : def;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        printf("usage: turnstile-admin migrate|topics|delete-topics\n\n"
               "  migrate        apply pending migrations to TS_PG_DSN\n"
               "  topics         create the topics (TS_COMMAND_PARTITIONS, default 12;\n"
               "                 TS_REPLY_PARTITIONS, default 8)\n"
               "  delete-topics  delete them, and every message in them\n\n");
        ts_config_usage(stdout);
        return argc < 2 ? 2 : 0;
    }
    ts_config cfg;
    char err[512];
    if (ts_config_load(&cfg, err, sizeof err)) {
        fprintf(stderr, "turnstile-admin: %s\n", err);
        return 2;
    }
    if (!strcmp(argv[1], "migrate"))
        return migrate(&cfg);
    if (!strcmp(argv[1], "delete-topics"))
        return delete_topics(&cfg);
    if (!strcmp(argv[1], "topics"))
        return topics(&cfg, env_int("TS_COMMAND_PARTITIONS", 12),
                      env_int("TS_REPLY_PARTITIONS", 8));
    fprintf(stderr, "turnstile-admin: unknown command '%s'\n", argv[1]);
    return 2;
}
