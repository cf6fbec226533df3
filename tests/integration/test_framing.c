/* SPDX-License-Identifier: Apache-2.0 */
/* Integration tests of commands in the Schema Registry's framing (0x00, a
 * schema id, the Avro body), against the real registry of scripts/stack
 * (TS_SCHEMA_REGISTRY=1; TS_SCHEMA_REGISTRY_URL, default Apicurio's
 * Confluent-compatible API on 127.0.0.1:8081) and the real broker:
 *
 *   - a Python service using confluent-kafka's standard AvroSerializer and
 *     AvroDeserializer (examples/python_producer.py) creates an event,
 *     registers people, cancels one and reads every reply;
 *   - a producer's newer version of a schema is resolved;
 *   - an id the registry does not have is a dead letter (unknown_schema);
 *   - a registry that does not answer holds the partition back, and is
 *     asked again until it does: the command is applied, not set aside.
 *
 * The worker reaches the registry through a proxy the tests can freeze.
 * The Python service runs with TS_EXAMPLES_PYTHON (default the virtual
 * environment scripts/test makes, /var/lib/turnstile/py-examples). Fails,
 * never skips, when the registry or that Python is missing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>
#include <unistd.h>

#include "harness.h"
#include "tcpproxy.h"
#include "ts_avro.h"
#include "ts_embedded.h"
#include "ts_registry.h"
#include "ts_time.h"
#include "ts_uuid.h"

#define WAIT_MS 60000
#define DEFAULT_REGISTRY "http://127.0.0.1:8081/apis/ccompat/v7"
#define DEFAULT_PYTHON "/var/lib/turnstile/py-examples/bin/python3"

static it_env env;
static it_proxy *proxy;
static ts_registry *registry;
static char registry_url[512];
static int32_t reply_id;

static const char *schema_text(const char *file) {
    const ts_embedded *e = ts_embedded_find(ts_embedded_schemas, file);
    return e ? e->data : NULL;
}

static int suite_setup(void **state) {
    (void)state;
    const char *url = getenv("TS_SCHEMA_REGISTRY_URL");
    snprintf(registry_url, sizeof registry_url, "%s", url && *url ? url : DEFAULT_REGISTRY);
    char err[512];
    if (!(registry = ts_registry_new(registry_url, 5000, err, sizeof err))) {
        fprintf(stderr, "framing: %s\n", err);
        return -1;
    }
    /* the schemas in the registry, as a deployment has them: turnstile-admin */
    setenv("TS_SCHEMA_REGISTRY_URL", registry_url, 1);
    char out[4096];
    const char *args[] = {"schemas", "register", NULL};
    if (it_admin(args, out, sizeof out) != 0) {
        fprintf(stderr,
                "framing: turnstile-admin schemas register failed (is the registry up? "
                "TS_SCHEMA_REGISTRY=1 scripts/stack up):\n%s\n",
                out);
        return -1;
    }
    if (ts_registry_register(registry, "turnstile.reply.Reply", schema_text("reply.avsc"),
                             &reply_id, err, sizeof err) != TS_REGISTRY_OK) {
        fprintf(stderr, "framing: the reply schema's id: %s\n", err);
        return -1;
    }
    /* the harness reads replies in either framing */
    if (it_setup(&env, 3, 2) ||
        ts_codec_learn_schema(env.codec, reply_id, schema_text("reply.avsc"), err, sizeof err))
        return -1;
    /* the worker's way to the registry: through a proxy that can freeze */
    int port = 0;
    char host[256] = "";
    if (sscanf(registry_url, "http://%255[^:/]:%d", host, &port) != 2 ||
        !(proxy = it_proxy_start(host, port))) {
        fprintf(stderr, "framing: cannot proxy %s (http://HOST:PORT/... expected)\n", registry_url);
        return -1;
    }
    const char *path = strchr(registry_url + strlen("http://"), '/');
    static char proxied[600], setting[700];
    snprintf(proxied, sizeof proxied, "http://127.0.0.1:%d%s", it_proxy_port(proxy),
             path ? path : "");
    snprintf(setting, sizeof setting, "TS_SCHEMA_REGISTRY_URL=%s", proxied);
    const char *extra[] = {setting, "TS_SCHEMA_REGISTRY_TIMEOUT_MS=1000", NULL};
    it_start_worker_env(&env, 0, extra);
    return 0;
}

static int suite_teardown(void **state) {
    (void)state;
    it_teardown(&env);
    it_proxy_stop(proxy);
    ts_registry_free(registry);
    return 0;
}

/* msg, a single-object message, in the registry's framing under `id`. */
static size_t reframe(const uint8_t *msg, size_t len, int32_t id, uint8_t *out) {
    out[0] = 0;
    for (int b = 0; b < 4; b++)
        out[1 + b] = (uint8_t)((uint32_t)id >> (24 - 8 * b));
    memcpy(out + TS_REGISTRY_HEADER_LEN, msg + TS_AVRO_HEADER_LEN, len - TS_AVRO_HEADER_LEN);
    return len - TS_AVRO_HEADER_LEN + TS_REGISTRY_HEADER_LEN;
}

static int32_t registered_id(const char *subject, const char *text) {
    char err[512];
    int32_t id = -1;
    assert_int_equal(ts_registry_register(registry, subject, text, &id, err, sizeof err),
                     TS_REGISTRY_OK);
    return id;
}

/* Registers register.avsc with an optional string field `field` added
 * at its end, as a producer's next version would have it (the registry's
 * default compatibility allows it). Returns its id. */
static int32_t register_version_with(const char *field) {
    const char *base = schema_text("register.avsc");
    char *newer = malloc(strlen(base) + 128);
    assert_non_null(newer);
    strcpy(newer, base);
    char *close = strrchr(newer, ']');
    assert_non_null(close);
    sprintf(close,
            ", {\"name\": \"%s\", \"type\": [\"null\", \"string\"], \"default\": null}\n  ]\n}\n",
            field);
    int32_t id = registered_id("turnstile.command.Register", newer);
    free(newer);
    return id;
}

/* Produces c in the registry's framing under `id`, with `extra` (the
 * added field's encoding) after the body. */
static void produce_framed(const char *event_id, const ts_command *c, int32_t id,
                           const uint8_t *extra, size_t nextra) {
    uint8_t single[TS_MESSAGE_BYTES_MAX], framed[TS_MESSAGE_BYTES_MAX + 8];
    size_t len;
    assert_int_equal(ts_codec_encode_command(env.codec, c, single, sizeof single, &len),
                     TS_CODEC_OK);
    size_t n = reframe(single, len, id, framed);
    memcpy(framed + n, extra, nextra);
    it_produce_raw(&env, event_id, framed, n + nextra);
}

static void create_event(char id[TS_UUID_LEN + 1], int64_t capacity) {
    ts_uuid_new(id);
    ts_command c = it_command(&env, TS_CMD_CREATE_EVENT, id);
    snprintf(c.u.create.title, sizeof c.u.create.title, "Framed");
    snprintf(c.u.create.location, sizeof c.u.create.location, "Hall F");
    c.u.create.starts_at_ms = ts_now_ms() + 86400000LL * 30;
    c.u.create.capacity = capacity;
    it_produce(&env, &c);
    assert_string_equal(ts_outcome_name(it_await_reply(&env, c.command_id, 1, WAIT_MS).outcome),
                        "CREATED");
}

static long long registrations(const char *event_id) {
    const char *params[] = {event_id};
    return it_query_ll(&env, "SELECT count(*) FROM registrations WHERE event_id = $1", 1, params);
}

/* Runs the example with the standard client; returns its exit status and
 * its stdout (one JSON reply a line) in out[cap]. */
static int run_python_example(char *out, size_t cap) {
    const char *python = getenv("TS_EXAMPLES_PYTHON");
    if (!python || !*python)
        python = DEFAULT_PYTHON;
    if (access(python, X_OK) != 0)
        fail_msg("no %s: scripts/test makes it (python3 -m venv; pip install "
                 "'confluent-kafka[avro]'), or set TS_EXAMPLES_PYTHON",
                 python);
    char prefix[TS_TOPIC_MAX + 1];
    snprintf(prefix, sizeof prefix, "%s", env.cfg.topic_commands);
    char *dot = strrchr(prefix, '.');
    assert_non_null(dot);
    *dot = '\0';
    const char *argv[] = {python,
                          TS_SOURCE_DIR "/examples/python_producer.py",
                          "--bootstrap",
                          env.cfg.kafka_brokers,
                          "--registry",
                          registry_url,
                          "--prefix",
                          prefix,
                          "--reply-partition",
                          "1",
                          "--people",
                          "5",
                          "--timeout",
                          "60",
                          NULL};
    return it_run(python, argv, out, cap);
}

static void a_python_service_with_the_standard_serializer_registers_people(void **state) {
    (void)state;
    static char out[65536];
    int rc = run_python_example(out, sizeof out);
    fprintf(stderr, "%s", out);
    assert_int_equal(rc, 0);
    /* a reply a line: the event, five registrations (the last refused), a cancellation */
    const char *expect[] = {"CREATED",    "REGISTERED", "REGISTERED", "REGISTERED",
                            "REGISTERED", "EVENT_FULL", "CANCELLED"};
    size_t count[8] = {0}, lines = 0;
    char event_id[TS_UUID_LEN + 1] = "";
    for (char *save = NULL, *line = strtok_r(out, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        json_error_t jerr;
        json_t *j = json_loads(line, 0, &jerr);
        assert_non_null(j);
        const char *outcome = json_string_value(json_object_get(j, "outcome"));
        const char *ev = json_string_value(json_object_get(j, "event_id"));
        assert_non_null(outcome);
        assert_non_null(ev);
        if (!event_id[0])
            snprintf(event_id, sizeof event_id, "%s", ev);
        assert_string_equal(ev, event_id);
        for (size_t k = 0; k < sizeof expect / sizeof expect[0]; k++)
            if (!strcmp(outcome, expect[k])) {
                count[k]++;
                break;
            }
        lines++;
        json_decref(j);
    }
    assert_int_equal(lines, 7);
    assert_int_equal(count[0], 1);
    assert_int_equal(count[1], 4); /* REGISTERED, counted once per line */
    assert_int_equal(count[5], 1);
    assert_int_equal(count[6], 1);
    /* what PostgreSQL holds: four registered, one of them cancelled */
    assert_int_equal(registrations(event_id), 3);
}

static void a_newer_producer_version_is_resolved(void **state) {
    (void)state;
    int32_t id = register_version_with("referrer");
    char event_id[TS_UUID_LEN + 1];
    create_event(event_id, 10);
    ts_command c = it_registration(&env, event_id, "Newer", "newer@example.org");
    /* referrer: the union's string branch, "x" */
    produce_framed(event_id, &c, id, (const uint8_t[]){2, 2, 'x'}, 3);
    ts_reply r = it_await_reply(&env, c.command_id, 1, WAIT_MS);
    assert_string_equal(ts_outcome_name(r.outcome), "REGISTERED");
    assert_int_equal(registrations(event_id), 1);
}

static void an_id_the_registry_lacks_is_a_dead_letter(void **state) {
    (void)state;
    char event_id[TS_UUID_LEN + 1], reason[64];
    create_event(event_id, 10);
    /* far above any id a test registry gives */
    const uint8_t msg[] = {0, 0x7f, 0x00, 0x12, 0x34, 0x02, 0x41};
    it_produce_raw(&env, event_id, msg, sizeof msg);
    it_await_dead_letter(&env, msg, sizeof msg, reason, sizeof reason, WAIT_MS);
    assert_string_equal(reason, "unknown_schema");
    /* the partition flows on */
    ts_command c = it_registration(&env, event_id, "After", "after@example.org");
    it_produce(&env, &c);
    assert_string_equal(ts_outcome_name(it_await_reply(&env, c.command_id, 1, WAIT_MS).outcome),
                        "REGISTERED");
}

static void a_registry_that_does_not_answer_is_waited_for(void **state) {
    (void)state;
    /* a schema the worker has not learned yet: a new version, new id */
    int32_t id = register_version_with("campaign");
    char event_id[TS_UUID_LEN + 1];
    create_event(event_id, 10);
    it_proxy_freeze(proxy, true);
    ts_command c = it_registration(&env, event_id, "Patient", "patient@example.org");
    produce_framed(event_id, &c, id, (const uint8_t[]){0}, 1); /* campaign: null */
    /* the worker asks, gets no answer within its deadline, and says so */
    it_await_worker_log(&env, 0, "event=registry_unavailable", WAIT_MS);
    assert_int_equal(registrations(event_id), 0);
    it_proxy_freeze(proxy, false);
    ts_reply r = it_await_reply(&env, c.command_id, 1, WAIT_MS);
    assert_string_equal(ts_outcome_name(r.outcome), "REGISTERED");
    assert_int_equal(registrations(event_id), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_python_service_with_the_standard_serializer_registers_people),
        cmocka_unit_test(a_newer_producer_version_is_resolved),
        cmocka_unit_test(an_id_the_registry_lacks_is_a_dead_letter),
        cmocka_unit_test(a_registry_that_does_not_answer_is_waited_for),
    };
    return cmocka_run_group_tests(tests, suite_setup, suite_teardown);
}
