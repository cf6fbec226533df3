/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of request parsing: each bad body is a 400 naming its field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "request.h"

static ts_command cmd;
static ts_bad_request why;

static int create(const char *body) {
    memset(&cmd, 0, sizeof cmd);
    memset(&why, 0, sizeof why);
    return ts_request_create_event(body, strlen(body), &cmd, &why);
}

static void a_valid_event_is_parsed(void **state) {
    (void)state;
    assert_int_equal(create("{\"title\":\"Launch\",\"starts_at\":\"2030-01-01T18:00:00Z\","
                            "\"location\":\"Hall A\",\"capacity\":250,\"description\":\"d\"}"),
                     0);
    assert_string_equal(cmd.u.create.title, "Launch");
    assert_string_equal(cmd.u.create.location, "Hall A");
    assert_true(cmd.u.create.starts_at_ms == 1893520800000LL);
    assert_int_equal(cmd.u.create.capacity, 250);
    assert_true(cmd.u.create.has_description);
    assert_int_equal(create("{\"title\":\"T\",\"starts_at\":\"2030-01-01T18:00:00Z\","
                            "\"location\":\"L\",\"capacity\":1,\"description\":null}"),
                     0);
    assert_false(cmd.u.create.has_description);
}

static void each_bad_event_field_is_named(void **state) {
    (void)state;
    const struct {
        const char *body, *field, *code;
    } cases[] = {
        {"{\"starts_at\":\"2030-01-01T00:00:00Z\",\"location\":\"L\",\"capacity\":1}", "title",
         "missing_field"},
        {"{\"title\":\"\",\"starts_at\":\"2030-01-01T00:00:00Z\",\"location\":\"L\",\"capacity\":"
         "1}",
         "title", "invalid_field"},
        {"{\"title\":7,\"starts_at\":\"2030-01-01T00:00:00Z\",\"location\":\"L\",\"capacity\":1}",
         "title", "invalid_field"},
        {"{\"title\":\"T\",\"starts_at\":\"soon\",\"location\":\"L\",\"capacity\":1}", "starts_at",
         "invalid_field"},
        {"{\"title\":\"T\",\"starts_at\":1893456000,\"location\":\"L\",\"capacity\":1}",
         "starts_at", "invalid_field"},
        {"{\"title\":\"T\",\"starts_at\":\"2030-01-01T00:00:00Z\",\"capacity\":1}", "location",
         "missing_field"},
        {"{\"title\":\"T\",\"starts_at\":\"2030-01-01T00:00:00Z\",\"location\":\"L\"}", "capacity",
         "missing_field"},
        {"{\"title\":\"T\",\"starts_at\":\"2030-01-01T00:00:00Z\",\"location\":\"L\",\"capacity\":"
         "0}",
         "capacity", "invalid_field"},
        {"{\"title\":\"T\",\"starts_at\":\"2030-01-01T00:00:00Z\",\"location\":\"L\",\"capacity\":"
         "1.5}",
         "capacity", "invalid_field"},
        {"{\"title\":\"T\",\"starts_at\":\"2030-01-01T00:00:00Z\",\"location\":\"L\",\"capacity\":"
         "\"9\"}",
         "capacity", "invalid_field"},
        {"{\"title\":\"T\",\"starts_at\":\"2030-01-01T00:00:00Z\",\"location\":\"L\",\"capacity\":"
         "1,"
         "\"description\":5}",
         "description", "invalid_field"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(create(cases[i].body), -1);
        assert_non_null(why.field);
        assert_string_equal(why.field, cases[i].field);
        assert_string_equal(why.code, cases[i].code);
        assert_true(strlen(why.message) > 0);
    }
}

static void bodies_that_are_not_json_objects_are_refused(void **state) {
    (void)state;
    const char *bad[] = {"", "{", "[]", "42", "\"x\"", "null", "{\"a\":1,\"a\":2}", "{} x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(create(bad[i]), -1);
        assert_string_equal(why.code, "invalid_json");
        assert_null(why.field);
    }
}

static void overlong_strings_are_refused(void **state) {
    (void)state;
    char body[1024];
    char title[TS_TITLE_MAX + 2];
    memset(title, 't', sizeof title - 1);
    title[sizeof title - 1] = '\0';
    snprintf(body, sizeof body,
             "{\"title\":\"%s\",\"starts_at\":\"2030-01-01T00:00:00Z\",\"location\":\"L\","
             "\"capacity\":1}",
             title);
    assert_int_equal(create(body), -1);
    assert_string_equal(why.field, "title");
    assert_non_null(strstr(why.message, "200"));
}

static void a_registration_needs_a_name_and_a_valid_email(void **state) {
    (void)state;
    const char *good = "{\"name\":\"Ada\",\"email\":\"ada@example.org\"}";
    memset(&cmd, 0, sizeof cmd);
    assert_int_equal(ts_request_register(good, strlen(good), &cmd, &why), 0);
    assert_string_equal(cmd.u.reg.email, "ada@example.org");
    const struct {
        const char *body, *field;
    } cases[] = {
        {"{\"email\":\"ada@example.org\"}", "name"},
        {"{\"name\":\"  \",\"email\":\"ada@example.org\"}", "name"},
        {"{\"name\":\"Ada\"}", "email"},
        {"{\"name\":\"Ada\",\"email\":\"ada\"}", "email"},
        {"{\"name\":\"Ada\",\"email\":[\"ada@example.org\"]}", "email"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(&why, 0, sizeof why);
        assert_int_equal(ts_request_register(cases[i].body, strlen(cases[i].body), &cmd, &why), -1);
        assert_string_equal(why.field, cases[i].field);
    }
}

static void a_nul_escape_is_refused_as_invalid_json(void **state) {
    (void)state;
    const char *body = "{\"name\":\"A\\u0000da\",\"email\":\"ada@example.org\"}";
    memset(&why, 0, sizeof why);
    assert_int_equal(ts_request_register(body, strlen(body), &cmd, &why), -1);
    assert_string_equal(why.code, "invalid_json");
}

static void a_cancel_needs_a_user_id_with_the_original_message(void **state) {
    (void)state;
    const char *empty = "{}";
    assert_int_equal(ts_request_cancel(empty, 2, &cmd, &why), -1);
    assert_string_equal(why.message, "userId required");
    assert_string_equal(why.field, "userId");
    const char *bad = "{\"userId\":\"nope\"}";
    assert_int_equal(ts_request_cancel(bad, strlen(bad), &cmd, &why), -1);
    assert_string_equal(why.code, "invalid_field");
    const char *good = "{\"userId\":\"7C9E6679-7425-40DE-944B-E07FC1F90AE7\"}";
    assert_int_equal(ts_request_cancel(good, strlen(good), &cmd, &why), 0);
    assert_string_equal(cmd.u.cancel.user_id, "7c9e6679-7425-40de-944b-e07fc1f90ae7");
    const char *snake = "{\"user_id\":\"7c9e6679-7425-40de-944b-e07fc1f90ae7\"}";
    assert_int_equal(ts_request_cancel(snake, strlen(snake), &cmd, &why), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_valid_event_is_parsed),
        cmocka_unit_test(each_bad_event_field_is_named),
        cmocka_unit_test(bodies_that_are_not_json_objects_are_refused),
        cmocka_unit_test(overlong_strings_are_refused),
        cmocka_unit_test(a_registration_needs_a_name_and_a_valid_email),
        cmocka_unit_test(a_nul_escape_is_refused_as_invalid_json),
        cmocka_unit_test(a_cancel_needs_a_user_id_with_the_original_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
