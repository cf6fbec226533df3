/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of ts_log's JSON format: the fields of a key=value line, one
 * valid JSON object per line whatever the message holds (quotes,
 * backslashes, control characters, bytes that are not UTF-8, lines too
 * long), and ts_log itself writing it to stderr. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "ts_log.h"

#define TS "2026-11-25T01:23:00.123Z"

/* The line of `msg`, checked to be one JSON object ending in its only
 * newline, parsed. */
static json_t *line_of(const char *msg, size_t cap) {
    char *out = malloc(cap);
    assert_non_null(out);
    size_t len = ts_log_json_line(out, cap, TS, "warn", "worker", msg, false);
    assert_true(len < cap);
    assert_int_equal(strlen(out), len);
    assert_int_equal(out[len - 1], '\n');
    assert_ptr_equal(strchr(out, '\n'), out + len - 1);
    json_error_t e;
    json_t *j = json_loadb(out, len, JSON_REJECT_DUPLICATES, &e);
    if (!j)
        fail_msg("not JSON (%s): %s", e.text, out);
    assert_true(json_is_object(j));
    free(out);
    return j;
}

static const char *str(const json_t *j, const char *key) {
    const char *v = json_string_value(json_object_get(j, key));
    if (!v)
        fail_msg("no string member %s", key);
    return v;
}

static void a_line_of_pairs_becomes_an_object_of_the_same_fields(void **state) {
    (void)state;
    json_t *j = line_of("event=listening bind=127.0.0.1 port=4000 mode=open", 4096);
    assert_string_equal(str(j, "ts"), TS);
    assert_string_equal(str(j, "level"), "warn");
    assert_string_equal(str(j, "component"), "worker");
    assert_string_equal(str(j, "event"), "listening");
    assert_string_equal(str(j, "bind"), "127.0.0.1");
    assert_string_equal(str(j, "port"), "4000"); /* numbers stay strings */
    assert_string_equal(str(j, "mode"), "open");
    assert_int_equal(json_object_size(j), 7);
    /* in the order of the line */
    const char *order[] = {"ts", "level", "component", "event", "bind", "port", "mode"};
    size_t i = 0;
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) {
        (void)v;
        assert_string_equal(key, order[i++]);
    }
    json_decref(j);
}

static void quoted_values_keep_their_spaces_and_inner_quotes(void **state) {
    (void)state;
    json_t *j = line_of("event=kafka_error err=\"Connect to \"ipv4#127.0.0.1:9092\" failed: "
                        "refused\" client=turnstile-worker empty=\"\" last=\"a b\"",
                        4096);
    assert_string_equal(str(j, "err"), "Connect to \"ipv4#127.0.0.1:9092\" failed: refused");
    assert_string_equal(str(j, "client"), "turnstile-worker");
    assert_string_equal(str(j, "empty"), "");
    assert_string_equal(str(j, "last"), "a b");
    json_decref(j);
    j = line_of("event=x err=\"never closed", 4096);
    assert_string_equal(str(j, "err"), "never closed");
    json_decref(j);
}

static void text_and_keys_met_again_are_kept_apart(void **state) {
    (void)state;
    json_t *j = line_of("starting now event=a level=x event=b ts=y _event=c", 4096);
    assert_string_equal(str(j, "level"), "warn"); /* the line's own */
    assert_string_equal(str(j, "_level"), "x");
    assert_string_equal(str(j, "event"), "a");
    assert_string_equal(str(j, "_event"), "b");
    assert_string_equal(str(j, "__event"), "c");
    assert_string_equal(str(j, "_ts"), "y");
    assert_string_equal(str(j, "text"), "starting now");
    json_decref(j);
}

static void control_characters_backslashes_and_bad_utf8_are_escaped(void **state) {
    (void)state;
    json_t *j = line_of("event=x a=\"line1\nline2\ttab\\back\x01\x7f\" "
                        "b=caf\xc3\xa9 c=\xff\xfe d=\xe2\x82 e=\xf0\x9f\x98\x80 f=\xed\xa0\x80",
                        4096);
    assert_string_equal(str(j, "a"), "line1\nline2\ttab\\back\x01\x7f");
    assert_string_equal(str(j, "b"), "caf\xc3\xa9");                          /* UTF-8 kept */
    assert_string_equal(str(j, "c"), "\xef\xbf\xbd\xef\xbf\xbd");             /* U+FFFD each */
    assert_string_equal(str(j, "d"), "\xef\xbf\xbd\xef\xbf\xbd");             /* a cut sequence */
    assert_string_equal(str(j, "e"), "\xf0\x9f\x98\x80");                     /* 4 bytes */
    assert_string_equal(str(j, "f"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* a surrogate */
    json_decref(j);
}

static void a_line_too_long_is_cut_and_says_so(void **state) {
    (void)state;
    static char msg[8192];
    int n = snprintf(msg, sizeof msg, "event=long a=1 v=\"");
    for (size_t i = (size_t)n; i < sizeof msg - 2; i++)
        msg[i] = "\"\\\n\x01\xc3\xa9x"[i % 7]; /* what expands most, and a 2-byte character */
    msg[sizeof msg - 2] = '"';
    for (size_t cap = 128; cap <= 4096; cap += 97) {
        json_t *j = line_of(msg, cap);
        assert_true(json_is_true(json_object_get(j, "truncated")));
        assert_string_equal(str(j, "component"), "worker");
        json_decref(j);
    }
    /* a message cut before it came here says so too */
    char out[256];
    ts_log_json_line(out, sizeof out, TS, "info", "api", "event=x", true);
    assert_non_null(strstr(out, "\"truncated\":true}\n"));
    /* a short one does not */
    json_t *j = line_of("event=short", 128);
    assert_null(json_object_get(j, "truncated"));
    json_decref(j);
}

/* Random bytes, heavy in what the parser looks at: always one object. */
static void any_message_is_one_valid_json_object(void **state) {
    (void)state;
    const char alphabet[] = "ab=\" \\\n\t\x01\x80\xc3\xa9\xf0\xffk_.-9";
    srand(7);
    for (int round = 0; round < 20000; round++) {
        char msg[600];
        size_t n = (size_t)(rand() % (int)(sizeof msg - 1));
        for (size_t i = 0; i < n; i++)
            msg[i] = rand() % 4 ? alphabet[rand() % (int)(sizeof alphabet - 1)]
                                : (char)(1 + rand() % 255);
        msg[n] = '\0';
        size_t cap = round % 3 ? 4096 : 128 + (size_t)(rand() % 600);
        json_t *j = line_of(msg, cap);
        assert_string_equal(str(j, "ts"), TS);
        json_decref(j);
    }
}

/* ts_log with TS_LOG_FORMAT=json: what reaches stderr. */
static void ts_log_writes_json_lines_to_stderr(void **state) {
    (void)state;
    char path[] = "/tmp/ts_test_log_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    ts_log_set_format(TS_LOG_JSON);
    ts_info("api", "event=listening port=%d err=\"%s\"", 4000, "a \"quoted\" word");
    ts_debug("api", "event=dropped"); /* below the level */
    ts_log_set_format(TS_LOG_TEXT);
    ts_info("api", "event=plain port=%d", 4001);
    assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);
    FILE *f = fdopen(fd, "r");
    assert_non_null(f);
    rewind(f);
    char line[4096];
    assert_non_null(fgets(line, sizeof line, f));
    json_error_t e;
    json_t *j = json_loads(line, 0, &e);
    assert_non_null(j);
    assert_string_equal(str(j, "level"), "info");
    assert_string_equal(str(j, "component"), "api");
    assert_string_equal(str(j, "port"), "4000");
    assert_string_equal(str(j, "err"), "a \"quoted\" word");
    json_decref(j);
    assert_non_null(fgets(line, sizeof line, f));
    assert_non_null(strstr(line, " info api event=plain port=4001\n"));
    assert_null(fgets(line, sizeof line, f));
    fclose(f);
    unlink(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_line_of_pairs_becomes_an_object_of_the_same_fields),
        cmocka_unit_test(quoted_values_keep_their_spaces_and_inner_quotes),
        cmocka_unit_test(text_and_keys_met_again_are_kept_apart),
        cmocka_unit_test(control_characters_backslashes_and_bad_utf8_are_escaped),
        cmocka_unit_test(a_line_too_long_is_cut_and_says_so),
        cmocka_unit_test(any_message_is_one_valid_json_object),
        cmocka_unit_test(ts_log_writes_json_lines_to_stderr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
