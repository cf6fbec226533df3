/* SPDX-License-Identifier: Apache-2.0 */
/* ts_registry.h — a client of a Schema Registry's Confluent-compatible REST
 * API (Confluent's own, or Apicurio's at /apis/ccompat/v7).
 *
 * Standard Kafka Avro serializers write the Schema Registry wire format: a
 * 0x00 byte, the schema's id (4 bytes, big-endian), then the Avro body. A
 * reader of such a message asks the registry for the schema behind the id
 * (ts_registry_schema); turnstile-admin registers turnstile's schemas so that
 * producers find them (ts_registry_register).
 *
 * Every call has a deadline (timeout_ms, connecting included) and answers
 * one of the statuses below, so a caller can tell a message whose schema does
 * not exist (permanent: dead-letter it) from a registry it cannot ask now
 * (transient: retry, as for a database outage).
 *
 * A ts_registry holds one connection (kept alive between calls) and the
 * schemas it has fetched: it is NOT thread-safe; give each thread its own,
 * or call it under a lock. */
#ifndef TS_REGISTRY_H
#define TS_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

typedef struct ts_registry ts_registry;

typedef enum ts_registry_status {
    TS_REGISTRY_OK = 0,
    /* No schema has this id (HTTP 404 with error_code 40403; or an id below
     * 1, which no registry gives). Not remembered: a schema registered later
     * may get the id. */
    TS_REGISTRY_NOT_FOUND,
    /* The registry did not answer: refused or cut connection, name not
     * resolved, the deadline passed, or it answered 5xx, 408 or 429.
     * Transient: try again later. */
    TS_REGISTRY_UNAVAILABLE,
    /* It answered, but not as the API says: another 4xx (a schema it
     * refuses, or a URL that is not a registry's), a body that is not the
     * expected JSON, or one over TS_REGISTRY_MAX_RESPONSE. Says nothing of
     * the message being read: more likely a misconfiguration, which a
     * reader should log and treat as unavailable. */
    TS_REGISTRY_ERROR,
} ts_registry_status;

/* Largest answer read, in bytes (a schema is a few KiB). */
#define TS_REGISTRY_MAX_RESPONSE (1 << 20)

/* A client of the registry at `url`, the API's base (e.g.
 * "http://127.0.0.1:8081/apis/ccompat/v7"; a trailing '/' is ignored);
 * each call takes at most timeout_ms (> 0), connecting included. Nothing is
 * sent yet. NULL with `err` set when the URL is not http(s):// or libcurl
 * cannot start. Free with ts_registry_free(). */
ts_registry *ts_registry_new(const char *url, int timeout_ms, char *err, size_t errlen);

/* NULL is a no-op. Invalidates every schema text it returned. */
void ts_registry_free(ts_registry *r);

/* The schema of `id` (GET {url}/schemas/ids/{id}): its text as the registry
 * holds it (Avro, or whatever type the registry gave the id), in
 * *schema_json, NUL-terminated, owned by `r` and valid until
 * ts_registry_free(). A schema found is kept for good (an id never changes
 * its schema): asked again, it is answered without the registry. Anything
 * but TS_REGISTRY_OK sets `err`. */
ts_registry_status ts_registry_schema(ts_registry *r, int32_t id, const char **schema_json,
                                      char *err, size_t errlen);

/* Registers `schema_json`, byte for byte save the whitespace around it
 * (which confluent-kafka's serializer strips too: a registry matching
 * schemas by their text must get what serializers send), under `subject` (POST
 * {url}/subjects/{subject}/versions) and gives its id in *id. Registering
 * the same text again under the same subject changes nothing and gives the
 * same id. TS_REGISTRY_ERROR (with the registry's message in `err`) when it
 * refuses the schema: invalid, or incompatible with the subject's earlier
 * versions. */
ts_registry_status ts_registry_register(ts_registry *r, const char *subject,
                                        const char *schema_json, int32_t *id, char *err,
                                        size_t errlen);

/* "ok", "not found", "unavailable" or "error". */
const char *ts_registry_status_name(ts_registry_status s);

#endif
