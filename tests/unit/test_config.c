/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of ts_config: defaults, overrides, and errors naming the
 * variable at fault. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "ts_config.h"

static void clear_env(void) {
    const char *names[] = {"TS_HTTP_PORT",           "TS_TOPIC_PREFIX",       "TS_LOG_LEVEL",
                           "TS_BATCH_MAX",           "TS_COMMAND_PARTITIONS", "TS_REPLY_PARTITIONS",
                           "TS_SCHEMA_REGISTRY_URL", "TS_LOG_FORMAT"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        unsetenv(names[i]);
}

static void defaults_fit_the_local_stack(void **state) {
    (void)state;
    clear_env();
    ts_config c;
    char err[256];
    assert_int_equal(ts_config_load(&c, err, sizeof err), 0);
    assert_int_equal(c.http_port, 4000);
    assert_string_equal(c.kafka_brokers, "127.0.0.1:9092");
    assert_string_equal(c.topic_commands, "turnstile.commands");
    assert_string_equal(c.topic_replies, "turnstile.replies");
    assert_string_equal(c.topic_dlq, "turnstile.dlq");
    assert_string_equal(c.topic_events, "turnstile.events");
    assert_true(c.reply_timeout_ms > 0);
    assert_int_equal(c.command_partitions, 12);
    assert_int_equal(c.reply_partitions, 8);
    assert_int_equal(c.hold_ttl_s, 600);
    assert_int_equal(c.sweep_interval_ms, 250);
    assert_string_equal(c.schema_registry_url, ""); /* no registry unless one is named */
    assert_int_equal(c.schema_registry_timeout_ms, 5000);
    assert_string_equal(c.log_format, "text");
}

static void the_environment_overrides_defaults(void **state) {
    (void)state;
    clear_env();
    setenv("TS_HTTP_PORT", "8080", 1);
    setenv("TS_TOPIC_PREFIX", "test7", 1);
    setenv("TS_COMMAND_PARTITIONS", "3", 1);
    setenv("TS_LOG_FORMAT", "json", 1);
    ts_config c;
    char err[256];
    assert_int_equal(ts_config_load(&c, err, sizeof err), 0);
    assert_int_equal(c.http_port, 8080);
    assert_string_equal(c.topic_commands, "test7.commands");
    assert_int_equal(c.command_partitions, 3);
    assert_string_equal(c.log_format, "json");
    clear_env();
}

static void a_bad_value_names_its_variable(void **state) {
    (void)state;
    const char *bad[][2] = {
        {"TS_HTTP_PORT", "eighty"},   {"TS_HTTP_PORT", "70000"},
        {"TS_BATCH_MAX", "0"},        {"TS_LOG_LEVEL", "loud"},
        {"TS_LOG_FORMAT", "xml"},     {"TS_COMMAND_PARTITIONS", "twelve"},
        {"TS_REPLY_PARTITIONS", "0"}, {"TS_SCHEMA_REGISTRY_URL", "127.0.0.1:8081"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        clear_env();
        setenv(bad[i][0], bad[i][1], 1);
        ts_config c;
        char err[256] = "";
        assert_int_equal(ts_config_load(&c, err, sizeof err), -1);
        assert_non_null(strstr(err, bad[i][0]));
    }
    clear_env();
}

/* Writes `text` to a new temporary file; its path in path[64]. */
static void temp_file(const char *text, char path[64]) {
    snprintf(path, 64, "/tmp/ts_test_config_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

static void a_kafka_config_file_sets_properties(void **state) {
    (void)state;
    clear_env();
    char path[64];
    temp_file("# SASL\n\nsecurity.protocol = SASL_SSL\nsasl.password=s3cret\n", path);
    setenv("TS_KAFKA_CONFIG_FILE", path, 1);
    ts_config c;
    char err[256] = "";
    assert_int_equal(ts_config_load(&c, err, sizeof err), 0);
    assert_int_equal(c.kafka_nproperties, 2);
    assert_string_equal(c.kafka_properties[0].name, "security.protocol");
    assert_string_equal(c.kafka_properties[0].value, "SASL_SSL");
    assert_string_equal(c.kafka_properties[1].name, "sasl.password");
    unsetenv("TS_KAFKA_CONFIG_FILE");
    unlink(path);
}

static void a_kafka_config_file_that_cannot_be_read_whole_is_an_error(void **state) {
    (void)state;
    clear_env();
    ts_config c;
    char err[256] = "";
    setenv("TS_KAFKA_CONFIG_FILE", "/nonexistent/kafka.properties", 1);
    assert_int_equal(ts_config_load(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "TS_KAFKA_CONFIG_FILE: cannot open"));

    /* A line longer than the reader's buffer is refused, not cut in two:
     * the tail of a long comment would be read as a line of its own. */
    static char text[4096];
    int n = snprintf(text, sizeof text, "security.protocol=SASL_SSL\n#");
    memset(text + n, 'x', 1278);
    snprintf(text + n + 1278, sizeof text - (size_t)n - 1278, "security.protocol=PLAINTEXT\n");
    char path[64];
    temp_file(text, path);
    setenv("TS_KAFKA_CONFIG_FILE", path, 1);
    err[0] = '\0';
    assert_int_equal(ts_config_load(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "line 2"));
    assert_null(strstr(err, "PLAINTEXT")); /* never a value */
    unsetenv("TS_KAFKA_CONFIG_FILE");
    unlink(path);
}

static void usage_lists_every_variable(void **state) {
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ts_config_usage(f);
    fclose(f);
    assert_non_null(strstr(text, "TS_HTTP_PORT"));
    assert_non_null(strstr(text, "TS_PG_DSN"));
    assert_non_null(strstr(text, "TS_KAFKA_BROKERS"));
    assert_non_null(strstr(text, "TS_COMMAND_PARTITIONS"));
    assert_non_null(strstr(text, "TS_SCHEMA_REGISTRY_URL"));
    assert_non_null(strstr(text, "TS_LOG_FORMAT"));
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_fit_the_local_stack),
        cmocka_unit_test(the_environment_overrides_defaults),
        cmocka_unit_test(a_bad_value_names_its_variable),
        cmocka_unit_test(a_kafka_config_file_sets_properties),
        cmocka_unit_test(a_kafka_config_file_that_cannot_be_read_whole_is_an_error),
        cmocka_unit_test(usage_lists_every_variable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
