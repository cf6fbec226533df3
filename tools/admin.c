/* SPDX-License-Identifier: Apache-2.0 */
/* admin.c — turnstile-admin: one-shot operations on the stack.
 *
 *   turnstile-admin migrate        apply pending sql/ migrations
 *   turnstile-admin topics         create the commands, replies, dlq and events
 *                                  topics (events: as many partitions as commands)
 *   turnstile-admin delete-topics  delete them (benchmarks, tests)
 *   turnstile-admin keys create --name NAME [--events all|EVENT_ID...]
 *   turnstile-admin keys list | keys revoke ID|NAME
 *                                  organizer keys of protected mode
 *   turnstile-admin prune [--dry-run]
 *                                  delete what the retention settings let
 *                                  go (TS_RETAIN_*; see ts_prune.h)
 *   turnstile-admin schemas register
 *                                  register the current schemas in the
 *                                  Schema Registry at TS_SCHEMA_REGISTRY_URL
 *
 * migrate, topics, delete-topics and schemas register are idempotent. A key is printed once,
 * when it is made; the database keeps its SHA-256 only. Configuration as
 * for the services (see --help). */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_config.h"
#include "ts_embedded.h"
#include "ts_kafka.h"
#include "ts_log.h"
#include "ts_pg.h"
#include "ts_prune.h"
#include "ts_registry.h"
#include "ts_secret.h"
#include "ts_uuid.h"

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

/* The event stream has the commands' partition count: an event's records
 * then go to the partition of that number, as its commands do (the same
 * key, the same partitioner), and the stream spreads as the load does. */
static int topics(const ts_config *cfg) {
    char err[512];
    rd_kafka_t *rk = admin_client(cfg);
    if (!rk)
        return 1;
    const char *names[] = {cfg->topic_commands, cfg->topic_replies, cfg->topic_dlq,
                           cfg->topic_events};
    const int parts[] = {cfg->command_partitions, cfg->reply_partitions, 1,
                         cfg->command_partitions};
    int rc = ts_kafka_create_topics(rk, names, parts, 4, 10000, err, sizeof err);
    rd_kafka_destroy(rk);
    if (rc) {
        fprintf(stderr, "turnstile-admin: %s\n", err);
        return 1;
    }
    printf("topics: %s (%d), %s (%d), %s (1), %s (%d)\n", names[0], parts[0], names[1], parts[1],
           names[2], names[3], parts[3]);
    return 0;
}

static int delete_topics(const ts_config *cfg) {
    char err[512];
    rd_kafka_t *rk = admin_client(cfg);
    if (!rk)
        return 1;
    const char *names[] = {cfg->topic_commands, cfg->topic_replies, cfg->topic_dlq,
                           cfg->topic_events};
    int rc = ts_kafka_delete_topics(rk, names, 4, 10000, err, sizeof err);
    rd_kafka_destroy(rk);
    if (rc) {
        fprintf(stderr, "turnstile-admin: %s\n", err);
        return 1;
    }
    printf("deleted: %s, %s, %s, %s\n", names[0], names[1], names[2], names[3]);
    return 0;
}

/* ------------------------------------------------------------ keys */

/* A migrated connection, or NULL (said on stderr). */
static PGconn *keys_db(const ts_config *cfg) {
    char err[512];
    PGconn *conn = ts_pg_connect(cfg->pg_dsn, "turnstile-admin", err, sizeof err);
    if (!conn || ts_pg_migrate(conn, NULL, err, sizeof err)) {
        fprintf(stderr, "turnstile-admin: %s\n", err);
        if (conn)
            PQfinish(conn);
        return NULL;
    }
    return conn;
}

/* Runs a statement with text parameters (and one binary, if `binary` is
 * not NULL: parameter `binary_at`). NULL, said on stderr, on failure. */
static PGresult *keys_exec(PGconn *conn, const char *sql, int n, const char *const *values,
                           const ts_digest *binary, int binary_at) {
    int lengths[4] = {0}, formats[4] = {0};
    const char *v[4];
    for (int i = 0; i < n && i < 4; i++)
        v[i] = values[i];
    if (binary) {
        v[binary_at] = (const char *)binary->bytes;
        lengths[binary_at] = TS_SHA256_LEN;
        formats[binary_at] = 1;
    }
    PGresult *res = PQexecParams(conn, sql, n, NULL, v, lengths, formats, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    const char *constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
    if (constraint && !strcmp(constraint, "api_keys_active_name"))
        fprintf(stderr, "turnstile-admin: a key with that name exists already\n");
    else
        fprintf(stderr, "turnstile-admin: %s", PQerrorMessage(conn));
    PQclear(res);
    return NULL;
}

static int keys_create(const ts_config *cfg, int argc, char **argv) {
    const char *name = NULL;
    char events[8192] = ""; /* a PostgreSQL array literal of canonical UUIDs, or "" for all */
    size_t used = 0;
    bool all = false;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--name") && i + 1 < argc) {
            name = argv[++i];
        } else if (!strcmp(argv[i], "--events")) {
            /* a key for all events must be asked for: an empty list is an error */
            if (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0) {
                fprintf(stderr, "turnstile-admin: --events takes 'all' or event ids\n");
                return 2;
            }
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
                const char *e = argv[++i];
                char id[TS_UUID_LEN + 1];
                if (!strcmp(e, "all")) {
                    all = true;
                } else if (ts_uuid_normalize(e, id) == 0 &&
                           used + TS_UUID_LEN + 3 < sizeof events) {
                    used += (size_t)snprintf(events + used, sizeof events - used, "%s%s",
                                             used ? "," : "{", id);
                } else {
                    fprintf(stderr, "turnstile-admin: --events: '%s' is not an event id\n", e);
                    return 2;
                }
            }
        } else {
            fprintf(stderr, "turnstile-admin: keys create: unexpected '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!name || !*name || strlen(name) > 100) {
        fprintf(stderr, "turnstile-admin: keys create needs --name NAME (1 to 100 bytes)\n");
        return 2;
    }
    if (all && used) {
        fprintf(stderr, "turnstile-admin: --events takes 'all' or event ids, not both\n");
        return 2;
    }
    if (used)
        snprintf(events + used, sizeof events - used, "}");
    char key[TS_API_KEY_LEN + 1], id[TS_UUID_LEN + 1];
    if (ts_new_api_key(key)) {
        fprintf(stderr, "turnstile-admin: no random bytes from the kernel\n");
        return 1;
    }
    ts_uuid_new(id);
    ts_digest hash = ts_digest_of(key);
    PGconn *conn = keys_db(cfg);
    if (!conn)
        return 1;
    const char *params[] = {id, name, NULL, used ? events : NULL};
    PGresult *res = keys_exec(conn,
                              "INSERT INTO api_keys (id, name, key_sha256, events)"
                              " VALUES ($1, $2, $3, $4::uuid[])",
                              4, params, &hash, 2);
    if (!res) {
        PQfinish(conn);
        return 1;
    }
    PQclear(res);
    /* The only time it is ever shown. A key nobody could read (stdout
     * closed, disk full) must not stay active: revoke it at once. */
    if (printf("%s\n", key) < 0 || fflush(stdout) != 0) {
        const char *revoke[] = {id};
        res = keys_exec(conn, "UPDATE api_keys SET revoked_at = now() WHERE id = $1", 1, revoke,
                        NULL, 0);
        fprintf(stderr, "turnstile-admin: the key could not be written out; %s\n",
                res ? "it is revoked" : "revoke it now");
        PQclear(res);
        PQfinish(conn);
        return 1;
    }
    PQfinish(conn);
    fprintf(stderr,
            "turnstile-admin: key '%s' (id %s) created for %s events; store it now,"
            " it cannot be shown again\n",
            name, id, used ? "the listed" : "all");
    return 0;
}

static int keys_list(const ts_config *cfg) {
    PGconn *conn = keys_db(cfg);
    if (!conn)
        return 1;
    PGresult *res =
        keys_exec(conn,
                  "SELECT id, name, coalesce(array_to_string(events, ','), 'all'),"
                  " to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
                  " coalesce(to_char(revoked_at AT TIME ZONE 'UTC',"
                  " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '-')"
                  " FROM api_keys ORDER BY created_at, name",
                  0, NULL, NULL, 0);
    bool listed = res != NULL;
    if (res) {
        printf("%-36s  %-20s  %-20s  %-20s  %s\n", "id", "name", "created", "revoked", "events");
        for (int i = 0; i < PQntuples(res); i++)
            printf("%-36s  %-20s  %-20s  %-20s  %s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                   PQgetvalue(res, i, 3), PQgetvalue(res, i, 4), PQgetvalue(res, i, 2));
        PQclear(res);
    }
    PQfinish(conn);
    return listed ? 0 : 1;
}

static int keys_revoke(const ts_config *cfg, const char *which) {
    PGconn *conn = keys_db(cfg);
    if (!conn)
        return 1;
    const char *params[] = {which};
    PGresult *res = keys_exec(conn,
                              "UPDATE api_keys SET revoked_at = now()"
                              " WHERE (id::text = lower($1) OR name = $1) AND revoked_at IS NULL"
                              " RETURNING id, name",
                              1, params, NULL, 0);
    int rc = 1;
    if (res && PQntuples(res) == 0)
        fprintf(stderr, "turnstile-admin: no active key with id or name '%s'\n", which);
    for (int i = 0; res && i < PQntuples(res); i++) {
        printf("revoked %s (%s)\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
        rc = 0;
    }
    PQclear(res);
    PQfinish(conn);
    return rc;
}

static int keys(const ts_config *cfg, int argc, char **argv) {
    if (argc >= 1 && !strcmp(argv[0], "create"))
        return keys_create(cfg, argc - 1, argv + 1);
    if (argc == 1 && !strcmp(argv[0], "list"))
        return keys_list(cfg);
    if (argc == 2 && !strcmp(argv[0], "revoke"))
        return keys_revoke(cfg, argv[1]);
    fprintf(stderr, "usage: turnstile-admin keys create --name NAME [--events all|EVENT_ID...]\n"
                    "       turnstile-admin keys list\n"
                    "       turnstile-admin keys revoke ID|NAME\n");
    return 2;
}

/* ------------------------------------------------------------ prune */

static void print_counts(const ts_prune_counts *c) {
    printf("processed_commands: %lld\nevents: %lld\nregistrations: %lld\nholds: %lld\n"
           "waitlist: %lld\nusers: %lld\n",
           c->processed_commands, c->events, c->registrations, c->holds, c->waitlist, c->users);
}

/* The commands topic's retention decides whether processed commands may
 * be forgotten at all (ts_prune_check_window): refused, exit 2. */
static int prune(const ts_config *cfg, int argc, char **argv) {
    bool dry_run = argc == 1 && !strcmp(argv[0], "--dry-run");
    if (argc > 1 || (argc == 1 && !dry_run)) {
        fprintf(stderr, "usage: turnstile-admin prune [--dry-run]\n");
        return 2;
    }
    enum { KAFKA_TIMEOUT_MS = 5000 };
    char msg[512];
    ts_prune_window w = TS_WINDOW_UNKNOWN;
    rd_kafka_t *rk = admin_client(cfg);
    if (rk) {
        w = ts_prune_check_window(rk, cfg, KAFKA_TIMEOUT_MS, msg, sizeof msg);
        rd_kafka_destroy(rk);
    } else {
        snprintf(msg, sizeof msg, "no Kafka client: trusting TS_RETAIN_COMMANDS_H=%d",
                 cfg->retain_commands_h);
    }
    if (w == TS_WINDOW_UNSAFE) {
        fprintf(stderr, "turnstile-admin: prune refused: %s\n", msg);
        return 2;
    }
    if (msg[0])
        fprintf(stderr, "turnstile-admin: warning: %s\n", msg);
    PGconn *conn = keys_db(cfg);
    if (!conn)
        return 1;
    char err[512];
    ts_prune_counts counts = {0};
    int rc = 0;
    if (dry_run) {
        rc = ts_prune_count(conn, cfg, &counts, err, sizeof err) ? 1 : 0;
        if (rc == 0) {
            printf("would delete (dry run):\n");
            print_counts(&counts);
        }
    } else {
        ts_prune_status st = ts_prune_run(conn, cfg, NULL, NULL, &counts, err, sizeof err);
        if (st == TS_PRUNE_BUSY) {
            snprintf(err, sizeof err, "another prune is under way (a worker's?): nothing done");
            rc = 1;
        } else {
            printf("deleted:\n");
            print_counts(&counts);
            rc = st == TS_PRUNE_DONE ? 0 : 1;
        }
    }
    PQfinish(conn);
    if (rc)
        fprintf(stderr, "turnstile-admin: prune: %s\n", err);
    return rc;
}

/* ------------------------------------------------------------ schemas */

/* True for a current schema, NAME.avsc; an older version, NAME.vN.avsc, is
 * only read (ts_codec.h). */
static bool current_schema(const char *file) {
    const char *ext = strstr(file, ".avsc");
    if (!ext || ext[5] != '\0')
        return false;
    const char *v = strstr(file, ".v");
    if (!v || v >= ext)
        return true;
    for (v += 2; v < ext; v++)
        if (*v < '0' || *v > '9')
            return true;
    return false;
}

/* The record's full name (namespace.name), the subject producers that
 * name subjects by record (RecordNameStrategy) use, in out[cap]. -1 if the
 * schema has no name. */
static int full_name(const ts_embedded *e, char *out, size_t cap) {
    json_t *j = json_loadb(e->data, e->len, 0, NULL);
    const char *name = json_string_value(json_object_get(j, "name"));
    const char *ns = json_string_value(json_object_get(j, "namespace"));
    int rc = -1;
    if (name && *name) {
        /* a name with a dot is a full name already; the namespace is ignored */
        if (strchr(name, '.') || !ns || !*ns)
            snprintf(out, cap, "%s", name);
        else
            snprintf(out, cap, "%s.%s", ns, name);
        rc = 0;
    }
    json_decref(j);
    return rc;
}

/* Registers every current schema under its record's full name, with the
 * text compiled into the binaries, byte for byte but the whitespace around
 * it (ts_registry_register): the registry compares schemas as text, and
 * so finds these again when a standard serializer (which strips a file's
 * text) looks them up, and a reader fetching one by id gets the text
 * turnstile's codec parses. Registering again gives the same ids. */
static int schemas_register(const ts_config *cfg) {
    if (!cfg->schema_registry_url[0]) {
        fprintf(stderr, "turnstile-admin: schemas: TS_SCHEMA_REGISTRY_URL is not set (e.g."
                        " http://127.0.0.1:8081/apis/ccompat/v7)\n");
        return 2;
    }
    char err[1024];
    ts_registry *r =
        ts_registry_new(cfg->schema_registry_url, cfg->schema_registry_timeout_ms, err, sizeof err);
    if (!r) {
        fprintf(stderr, "turnstile-admin: %s\n", err);
        return 2;
    }
    int rc = 0;
    printf("%-36s  %6s  %s\n", "subject", "id", "schema");
    for (const ts_embedded *e = ts_embedded_schemas; e->name; e++) {
        if (!current_schema(e->name))
            continue;
        char subject[256];
        if (full_name(e, subject, sizeof subject)) {
            fprintf(stderr, "turnstile-admin: schemas: %s has no record name\n", e->name);
            rc = 1;
            continue;
        }
        int32_t id;
        ts_registry_status st = ts_registry_register(r, subject, e->data, &id, err, sizeof err);
        if (st == TS_REGISTRY_OK) {
            printf("%-36s  %6d  %s\n", subject, (int)id, e->name);
            continue;
        }
        fprintf(stderr, "turnstile-admin: schemas: %s (%s): %s\n", subject, e->name, err);
        rc = 1;
        if (st == TS_REGISTRY_UNAVAILABLE) /* the next would wait as long */
            break;
    }
    ts_registry_free(r);
    return rc;
}

static int schemas(const ts_config *cfg, int argc, char **argv) {
    if (argc == 1 && !strcmp(argv[0], "register"))
        return schemas_register(cfg);
    fprintf(stderr, "usage: turnstile-admin schemas register\n");
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        printf(
            "usage: turnstile-admin migrate|topics|delete-topics|keys|prune|schemas\n\n"
            "  migrate        apply pending migrations to TS_PG_DSN\n"
            "  topics         create the commands, replies, dlq and events topics\n"
            "                 (partitions: TS_COMMAND_PARTITIONS, for events too, and\n"
            "                 TS_REPLY_PARTITIONS below)\n"
            "  delete-topics  delete them, and every message in them\n"
            "  keys create --name NAME [--events all|EVENT_ID...]\n"
            "                 a new organizer key, printed once (all events by default)\n"
            "  keys list      the keys: id, name, created, revoked, events (never a key)\n"
            "  keys revoke ID|NAME\n"
            "                 the key stops working within a second\n"
            "  prune [--dry-run]\n"
            "                 delete processed commands older than TS_RETAIN_COMMANDS_H\n"
            "                 (refused, exit 2, unless longer than the commands topic's\n"
            "                 retention), events started more than TS_RETAIN_EVENTS_DAYS\n"
            "                 ago with their registrations, holds and waitlist, and users\n"
            "                 nothing names; prints the rows per table. --dry-run: only\n"
            "                 count them\n"
            "  schemas register\n"
            "                 register the current schemas (schemas/*.avsc, not the older\n"
            "                 *.vN.avsc) in the Schema Registry at TS_SCHEMA_REGISTRY_URL, each\n"
            "                 under its record's full name (e.g. turnstile.command.Register),\n"
            "                 with the text turnstile's codec uses; prints subject and id\n\n");
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
    if (!strcmp(argv[1], "keys"))
        return keys(&cfg, argc - 2, argv + 2);
    if (!strcmp(argv[1], "topics"))
        return topics(&cfg);
    if (!strcmp(argv[1], "prune"))
        return prune(&cfg, argc - 2, argv + 2);
    if (!strcmp(argv[1], "schemas"))
        return schemas(&cfg, argc - 2, argv + 2);
    fprintf(stderr, "turnstile-admin: unknown command '%s'\n", argv[1]);
    return 2;
}
