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
#include "ts_secret.h"

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

static void a_capacity_written_as_a_real_counts_when_it_is_an_integer(void **state) {
    (void)state;
    const struct {
        const char *capacity;
        long long want; /* 0: refused */
    } cases[] = {
        {"250.0", 250}, {"1e3", 1000},       {"2147483647.0", 2147483647LL},
        {"1.0", 1},     {"1.5", 0},          {"0.0", 0},
        {"-1.0", 0},    {"2147483648.0", 0}, {"1e300", 0},
        {"0.999", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"title\":\"T\",\"starts_at\":\"2030-01-01T00:00:00Z\",\"location\":\"L\","
                 "\"capacity\":%s}",
                 cases[i].capacity);
        if (cases[i].want) {
            assert_int_equal(create(body), 0);
            assert_int_equal(cmd.u.create.capacity, cases[i].want);
        } else {
            assert_int_equal(create(body), -1);
            assert_string_equal(why.field, "capacity");
            assert_string_equal(why.code, "invalid_field");
        }
    }
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

static void a_nul_escape_is_refused_naming_its_field(void **state) {
    (void)state;
    const struct {
        const char *body, *field;
    } cases[] = {
        {"{\"name\":\"A\\u0000da\",\"email\":\"ada@example.org\"}", "name"},
        {"{\"name\":\"Ada\",\"email\":\"ada@example.org\\u0000\"}", "email"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(&why, 0, sizeof why);
        assert_int_equal(ts_request_register(cases[i].body, strlen(cases[i].body), &cmd, &why), -1);
        assert_string_equal(why.code, "invalid_field");
        assert_string_equal(why.field, cases[i].field);
    }
    /* a time is not read up to the NUL and the rest ignored */
    assert_int_equal(create("{\"title\":\"T\",\"starts_at\":\"2030-01-01T00:00:00Z\\u0000x\","
                            "\"location\":\"L\",\"capacity\":1}"),
                     -1);
    assert_string_equal(why.field, "starts_at");
    const char *token =
        "{\"userId\":\"7c9e6679-7425-40de-944b-e07fc1f90ae7\",\"token\":\"a\\u0000\"}";
    assert_int_equal(ts_request_cancel(token, strlen(token), &cmd, &why), -1);
    assert_string_equal(why.field, "token");
    /* a field nobody reads may hold one, as it may hold anything */
    const char *other = "{\"name\":\"Ada\",\"email\":\"ada@example.org\",\"note\":\"\\u0000\"}";
    assert_int_equal(ts_request_register(other, strlen(other), &cmd, &why), 0);
    ts_digest d;
    assert_int_equal(ts_request_digest(other, strlen(other), NULL, &d), 0);
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

static int reg(const char *body) {
    memset(&cmd, 0, sizeof cmd);
    memset(&why, 0, sizeof why);
    return ts_request_register(body, strlen(body), &cmd, &why);
}

static void a_registration_may_ask_for_the_waitlist(void **state) {
    (void)state;
    assert_int_equal(reg("{\"name\":\"Ada\",\"email\":\"ada@example.org\"}"), 0);
    assert_false(cmd.u.reg.waitlist);
    assert_int_equal(reg("{\"name\":\"Ada\",\"email\":\"ada@example.org\",\"waitlist\":true}"), 0);
    assert_true(cmd.u.reg.waitlist);
    assert_int_equal(reg("{\"name\":\"Ada\",\"email\":\"ada@example.org\",\"waitlist\":false}"), 0);
    assert_false(cmd.u.reg.waitlist);
    /* null is no answer, as for every optional field */
    assert_int_equal(reg("{\"name\":\"Ada\",\"email\":\"ada@example.org\",\"waitlist\":null}"), 0);
    assert_false(cmd.u.reg.waitlist);
    const char *bad[] = {"\"true\"", "1", "0", "[]", "{}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char body[128];
        snprintf(body, sizeof body,
                 "{\"name\":\"Ada\",\"email\":\"ada@example.org\",\"waitlist\":%s}", bad[i]);
        assert_int_equal(reg(body), -1);
        assert_string_equal(why.field, "waitlist");
        assert_string_equal(why.code, "invalid_field");
        assert_string_equal(why.message, "waitlist must be true or false");
    }
}

static int hold(const char *body) {
    memset(&cmd, 0, sizeof cmd);
    memset(&why, 0, sizeof why);
    return ts_request_place_hold(body, strlen(body), &cmd, &why);
}

static void a_hold_is_validated_like_a_registration(void **state) {
    (void)state;
    assert_int_equal(hold("{\"name\":\"Ada\",\"email\":\"ada@example.org\"}"), 0);
    assert_string_equal(cmd.u.hold.name, "Ada");
    assert_string_equal(cmd.u.hold.email, "ada@example.org");
    assert_int_equal(cmd.u.hold.ttl_ms, 0); /* the caller's */
    const struct {
        const char *body, *field, *code;
    } cases[] = {
        {"{\"email\":\"ada@example.org\"}", "name", "missing_field"},
        {"{\"name\":\"\",\"email\":\"ada@example.org\"}", "name", "invalid_field"},
        {"{\"name\":\"Ada\"}", "email", "missing_field"},
        {"{\"name\":\"Ada\",\"email\":\"nope\"}", "email", "invalid_field"},
        {"{\"name\":7,\"email\":\"ada@example.org\"}", "name", "invalid_field"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(hold(cases[i].body), -1);
        assert_string_equal(why.field, cases[i].field);
        assert_string_equal(why.code, cases[i].code);
    }
    assert_int_equal(hold("[]"), -1);
    assert_string_equal(why.code, "invalid_json");
}

static int update(const char *body) {
    memset(&cmd, 0, sizeof cmd);
    memset(&why, 0, sizeof why);
    return ts_request_update_event(body, strlen(body), &cmd, &why);
}

static void an_update_takes_any_field_of_a_creation(void **state) {
    (void)state;
    assert_int_equal(update("{\"capacity\":50}"), 0);
    assert_true(cmd.u.update.has_capacity);
    assert_int_equal(cmd.u.update.capacity, 50);
    assert_false(cmd.u.update.has_title || cmd.u.update.has_description ||
                 cmd.u.update.has_location || cmd.u.update.has_starts_at);
    assert_int_equal(update("{\"title\":\"New\",\"description\":\"d\",\"location\":\"Hall B\","
                            "\"starts_at\":\"2030-01-01T18:00:00Z\",\"capacity\":3}"),
                     0);
    assert_true(cmd.u.update.has_title && cmd.u.update.has_description &&
                cmd.u.update.has_location && cmd.u.update.has_starts_at &&
                cmd.u.update.has_capacity);
    assert_string_equal(cmd.u.update.title, "New");
    assert_string_equal(cmd.u.update.description, "d");
    assert_string_equal(cmd.u.update.location, "Hall B");
    assert_true(cmd.u.update.starts_at_ms == 1893520800000LL);
    /* other fields are ignored, as in a creation */
    assert_int_equal(update("{\"location\":\"L\",\"colour\":\"red\"}"), 0);
    assert_true(cmd.u.update.has_location);
}

static void a_null_description_clears_it(void **state) {
    (void)state;
    assert_int_equal(update("{\"description\":null}"), 0);
    assert_true(cmd.u.update.has_description);
    assert_string_equal(cmd.u.update.description, "");
    assert_int_equal(update("{\"description\":\"\"}"), 0);
    assert_true(cmd.u.update.has_description);
    assert_string_equal(cmd.u.update.description, "");
}

static void a_bad_update_is_named(void **state) {
    (void)state;
    const struct {
        const char *body, *field, *code;
    } cases[] = {
        {"{\"title\":\"\"}", "title", "invalid_field"},
        {"{\"title\":null}", "title", "invalid_field"},
        {"{\"location\":\"  \"}", "location", "invalid_field"},
        {"{\"location\":null}", "location", "invalid_field"},
        {"{\"starts_at\":\"soon\"}", "starts_at", "invalid_field"},
        {"{\"starts_at\":null}", "starts_at", "invalid_field"},
        {"{\"capacity\":0}", "capacity", "invalid_field"},
        {"{\"capacity\":\"9\"}", "capacity", "invalid_field"},
        {"{\"capacity\":null}", "capacity", "invalid_field"},
        {"{\"capacity\":2147483648}", "capacity", "invalid_field"},
        {"{\"description\":5}", "description", "invalid_field"},
        {"{\"title\":\"T\",\"capacity\":-1}", "capacity", "invalid_field"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(update(cases[i].body), -1);
        assert_non_null(why.field);
        assert_string_equal(why.field, cases[i].field);
        assert_string_equal(why.code, cases[i].code);
        assert_true(strlen(why.message) > 0);
    }
}

static void an_update_needs_a_field(void **state) {
    (void)state;
    const char *none[] = {"{}", "{\"colour\":\"red\"}"};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
        assert_int_equal(update(none[i]), -1);
        assert_string_equal(why.code, "missing_field");
        assert_null(why.field);
        assert_non_null(strstr(why.message, "title, description, location, starts_at, capacity"));
    }
    assert_int_equal(update("[]"), -1);
    assert_string_equal(why.code, "invalid_json");
}

static void a_digest_ignores_formatting(void **state) {
    (void)state;
    const char *a = "{\"name\":\"Ada\",\"email\":\"ada@example.org\"}";
    const char *b = " { \"email\" : \"ada@example.org\",\n \"name\" : \"Ada\" } ";
    const char *c = "{\"name\":\"Eve\",\"email\":\"ada@example.org\"}";
    ts_digest da, db, dc;
    assert_int_equal(ts_request_digest(a, strlen(a), NULL, &da), 0);
    assert_int_equal(ts_request_digest(b, strlen(b), NULL, &db), 0);
    assert_int_equal(ts_request_digest(c, strlen(c), NULL, &dc), 0);
    assert_true(da.present && db.present);
    assert_memory_equal(da.bytes, db.bytes, TS_SHA256_LEN);
    assert_memory_not_equal(da.bytes, dc.bytes, TS_SHA256_LEN);
    /* without a bound part: the canonical body's digest alone, as before */
    ts_digest plain = ts_digest_of("{\"email\":\"ada@example.org\",\"name\":\"Ada\"}");
    assert_memory_equal(da.bytes, plain.bytes, TS_SHA256_LEN);
    assert_int_equal(ts_request_digest("{", 1, NULL, &da), -1);
}

static void a_digest_binds_what_the_path_names(void **state) {
    (void)state;
    const char *h1 = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
    const char *h2 = "5a1f0c3e-2b4d-4e6f-8a9b-0c1d2e3f4a5b";
    ts_digest d1, d1again, d2, none;
    assert_int_equal(ts_request_digest("", 0, h1, &d1), 0); /* no body: fine */
    assert_int_equal(ts_request_digest("", 0, h1, &d1again), 0);
    assert_int_equal(ts_request_digest("", 0, h2, &d2), 0);
    assert_int_equal(ts_request_digest("", 0, NULL, &none), 0);
    assert_memory_equal(d1.bytes, d1again.bytes, TS_SHA256_LEN);
    assert_memory_not_equal(d1.bytes, d2.bytes, TS_SHA256_LEN);
    assert_memory_not_equal(d1.bytes, none.bytes, TS_SHA256_LEN);
    /* a body cannot pass for another hold's id */
    ts_digest forged;
    assert_int_equal(ts_request_digest("{}", 2, h1, &forged), 0);
    assert_memory_not_equal(d1.bytes, forged.bytes, TS_SHA256_LEN);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_valid_event_is_parsed),
        cmocka_unit_test(a_capacity_written_as_a_real_counts_when_it_is_an_integer),
        cmocka_unit_test(each_bad_event_field_is_named),
        cmocka_unit_test(bodies_that_are_not_json_objects_are_refused),
        cmocka_unit_test(overlong_strings_are_refused),
        cmocka_unit_test(a_registration_needs_a_name_and_a_valid_email),
        cmocka_unit_test(a_nul_escape_is_refused_naming_its_field),
        cmocka_unit_test(a_cancel_needs_a_user_id_with_the_original_message),
        cmocka_unit_test(a_registration_may_ask_for_the_waitlist),
        cmocka_unit_test(a_hold_is_validated_like_a_registration),
        cmocka_unit_test(an_update_takes_any_field_of_a_creation),
        cmocka_unit_test(a_null_description_clears_it),
        cmocka_unit_test(a_bad_update_is_named),
        cmocka_unit_test(an_update_needs_a_field),
        cmocka_unit_test(a_digest_ignores_formatting),
        cmocka_unit_test(a_digest_binds_what_the_path_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
