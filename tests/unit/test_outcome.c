/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the reply -> HTTP mapping: the contract's statuses and
 * messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "outcome.h"

static void check(ts_outcome o, unsigned status, const char *key, const char *value) {
    ts_reply r;
    memset(&r, 0, sizeof r);
    r.outcome = o;
    strcpy(r.event_id, "5a1f0c3e-2b4d-4e6f-8a9b-0c1d2e3f4a5b");
    strcpy(r.user_id, "7c9e6679-7425-40de-944b-e07fc1f90ae7");
    json_t *body = NULL;
    assert_int_equal(ts_outcome_http(&r, &body), status);
    assert_non_null(body);
    json_t *v = json_object_get(body, key);
    if (json_is_string(v))
        assert_string_equal(json_string_value(v), value);
    else
        assert_true(json_is_true(v));
    json_decref(body);
}

static void each_outcome_has_the_contract_status_and_body(void **state) {
    (void)state;
    check(TS_OUT_CREATED, 201, "id", "5a1f0c3e-2b4d-4e6f-8a9b-0c1d2e3f4a5b");
    check(TS_OUT_REGISTERED, 201, "user_id", "7c9e6679-7425-40de-944b-e07fc1f90ae7");
    check(TS_OUT_CANCELLED, 200, "ok", NULL);
    check(TS_OUT_EVENT_NOT_FOUND, 404, "error", "Event not found");
    check(TS_OUT_PAST_EVENT, 400, "error", "Cannot register for past events");
    check(TS_OUT_EVENT_FULL, 400, "error", "Event is full");
    check(TS_OUT_ALREADY_REGISTERED, 400, "error", "User already registered");
    check(TS_OUT_REGISTRATION_NOT_FOUND, 404, "error", "Registration not found");
    check(TS_OUT_EVENT_FULL, 400, "code", "event_full");
}

static void a_registration_says_it_is_registered(void **state) {
    (void)state;
    check(TS_OUT_REGISTERED, 201, "status", "registered");
    ts_reply r;
    memset(&r, 0, sizeof r);
    r.outcome = TS_OUT_REGISTERED;
    strcpy(r.user_id, "7c9e6679-7425-40de-944b-e07fc1f90ae7");
    json_t *body;
    assert_int_equal(ts_outcome_http(&r, &body), 201);
    char *text = ts_body_text(body);
    assert_string_equal(
        text, "{\"user_id\":\"7c9e6679-7425-40de-944b-e07fc1f90ae7\",\"status\":\"registered\"}");
    free(text);
    json_decref(body);
}

static void the_seat_lifecycles_outcomes_have_the_contract_status_and_body(void **state) {
    (void)state;
    check(TS_OUT_WAITLISTED, 201, "status", "waitlisted");
    check(TS_OUT_WAITLISTED, 201, "user_id", "7c9e6679-7425-40de-944b-e07fc1f90ae7");
    check(TS_OUT_RELEASED, 200, "ok", NULL);
    check(TS_OUT_UPDATED, 200, "id", "5a1f0c3e-2b4d-4e6f-8a9b-0c1d2e3f4a5b");
    check(TS_OUT_ALREADY_WAITLISTED, 400, "error", "User already on the waitlist");
    check(TS_OUT_ALREADY_WAITLISTED, 400, "code", "already_waitlisted");
    check(TS_OUT_ALREADY_HELD, 400, "code", "already_held");
    check(TS_OUT_HOLD_NOT_FOUND, 404, "error", "Hold not found");
    check(TS_OUT_HOLD_NOT_FOUND, 404, "code", "hold_not_found");
    check(TS_OUT_HOLD_EXPIRED, 410, "error", "Hold expired");
    check(TS_OUT_HOLD_EXPIRED, 410, "code", "hold_expired");
    check(TS_OUT_CAPACITY_BELOW_TAKEN, 400, "error", "Capacity is below the seats taken");
    check(TS_OUT_CAPACITY_BELOW_TAKEN, 400, "code", "capacity_below_taken");
    check(TS_OUT_CAPACITY_BELOW_TAKEN, 400, "field", "capacity");
    check(TS_OUT_EVENT_CANCELLED, 400, "error", "Event is cancelled");
    check(TS_OUT_EVENT_CANCELLED, 400, "code", "event_cancelled");
}

static void a_place_on_the_waitlist_says_where(void **state) {
    (void)state;
    ts_reply r;
    memset(&r, 0, sizeof r);
    r.outcome = TS_OUT_WAITLISTED;
    strcpy(r.user_id, "7c9e6679-7425-40de-944b-e07fc1f90ae7");
    r.position = 3;
    json_t *body;
    assert_int_equal(ts_outcome_http(&r, &body), 201);
    char *text = ts_body_text(body);
    assert_string_equal(text, "{\"user_id\":\"7c9e6679-7425-40de-944b-e07fc1f90ae7\","
                              "\"status\":\"waitlisted\",\"position\":3}");
    free(text);
    json_decref(body);
}

static void a_hold_gives_its_id_and_expiry(void **state) {
    (void)state;
    ts_reply r;
    memset(&r, 0, sizeof r);
    r.outcome = TS_OUT_HELD;
    strcpy(r.user_id, "7c9e6679-7425-40de-944b-e07fc1f90ae7");
    strcpy(r.hold_id, "0b7e5f0a-6f4e-4a7b-9d3c-2e1f0a9b8c7d");
    r.expires_at_ms = 1893520800123LL; /* 2030-01-01T18:00:00.123Z */
    json_t *body;
    assert_int_equal(ts_outcome_http(&r, &body), 201);
    char *text = ts_body_text(body);
    assert_string_equal(text, "{\"hold_id\":\"0b7e5f0a-6f4e-4a7b-9d3c-2e1f0a9b8c7d\","
                              "\"user_id\":\"7c9e6679-7425-40de-944b-e07fc1f90ae7\","
                              "\"expires_at\":\"2030-01-01T18:00:00.123Z\"}");
    free(text);
    json_decref(body);
}

/* Whatever the worker answers, the client gets a body: no outcome without
 * its status, and every refusal with its message and code. */
static void every_outcome_has_an_answer(void **state) {
    (void)state;
    for (int o = 0; o < TS_OUT_COUNT_; o++) {
        ts_reply r;
        memset(&r, 0, sizeof r);
        r.outcome = (ts_outcome)o;
        json_t *body = NULL;
        unsigned status = ts_outcome_http(&r, &body);
        assert_non_null(body);
        assert_true(status >= 200 && status < 500);
        if (status >= 400) {
            assert_true(json_is_string(json_object_get(body, "error")));
            assert_true(strlen(json_string_value(json_object_get(body, "error"))) > 0);
            assert_true(json_is_string(json_object_get(body, "code")));
        }
        json_decref(body);
    }
}

static void an_invalid_reply_carries_the_workers_reason(void **state) {
    (void)state;
    ts_reply r;
    memset(&r, 0, sizeof r);
    r.outcome = TS_OUT_INVALID;
    strcpy(r.message, "Event already exists");
    json_t *body;
    assert_int_equal(ts_outcome_http(&r, &body), 400);
    assert_string_equal(json_string_value(json_object_get(body, "error")), "Event already exists");
    json_decref(body);
}

static void an_error_body_names_its_field(void **state) {
    (void)state;
    json_t *b = ts_error_body("invalid_field", "capacity must be an integer >= 1", "capacity");
    assert_string_equal(json_string_value(json_object_get(b, "field")), "capacity");
    assert_string_equal(json_string_value(json_object_get(b, "code")), "invalid_field");
    json_decref(b);
    b = ts_error_body("not_found", "Not found", NULL);
    assert_null(json_object_get(b, "field"));
    json_decref(b);
}

/* The text of {"v": x}. */
static char *text_of(double x) {
    json_t *body = json_pack("{s:f}", "v", x);
    assert_non_null(body);
    char *text = ts_body_text(body);
    json_decref(body);
    assert_non_null(text);
    return text;
}

static void a_percentage_prints_as_its_two_decimals(void **state) {
    (void)state;
    /* 181,610 registrations of 100,000,000 seats, rounded as reads.c does */
    long long registered = 181610, capacity = 100000000;
    long long hundredths = (registered * 10000 + capacity / 2) / capacity;
    char *text = text_of((double)hundredths / 100.0);
    assert_string_equal(text, "{\"v\":0.18}");
    free(text);
    /* every percentage from 0.00 to 100.00, as the decimal it is */
    for (long long k = 0; k <= 10000; k++) {
        char want[32];
        long long whole = k / 100, cents = k % 100;
        if (cents == 0)
            snprintf(want, sizeof want, "{\"v\":%lld.0}", whole);
        else if (cents % 10 == 0)
            snprintf(want, sizeof want, "{\"v\":%lld.%lld}", whole, cents / 10);
        else
            snprintf(want, sizeof want, "{\"v\":%lld.%02lld}", whole, cents);
        text = text_of((double)k / 100.0);
        assert_string_equal(text, want);
        free(text);
    }
}

static void every_real_reads_back_the_same(void **state) {
    (void)state;
    const double values[] = {0.1 + 0.2, 1.0 / 3.0,     2.0 / 3.0,
                             1e-7,      123456789.125, 1e300,
                             -0.5,      5e-324,        1.7976931348623157e308};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char *text = text_of(values[i]);
        json_t *back = json_loads(text, 0, NULL);
        assert_non_null(back);
        assert_true(json_real_value(json_object_get(back, "v")) == values[i]);
        json_decref(back);
        free(text);
    }
    char *text = text_of(0.1 + 0.2); /* needs 17 digits: gets them */
    assert_string_equal(text, "{\"v\":0.30000000000000004}");
    free(text);
}

static void reals_in_arrays_and_nested_objects_are_printed_alike(void **state) {
    (void)state;
    json_t *body = json_pack("{s:[f, f], s:{s:f}, s:i, s:s}", "a", 0.18, 50.0, "o", "p", 33.33, "n",
                             7, "s", "0.17999999999999999");
    char *text = ts_body_text(body);
    assert_string_equal(text, "{\"a\":[0.18,50.0],\"o\":{\"p\":33.33},\"n\":7,"
                              "\"s\":\"0.17999999999999999\"}");
    free(text);
    json_decref(body);
    assert_null(ts_body_text(NULL));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_outcome_has_the_contract_status_and_body),
        cmocka_unit_test(a_registration_says_it_is_registered),
        cmocka_unit_test(the_seat_lifecycles_outcomes_have_the_contract_status_and_body),
        cmocka_unit_test(a_place_on_the_waitlist_says_where),
        cmocka_unit_test(a_hold_gives_its_id_and_expiry),
        cmocka_unit_test(every_outcome_has_an_answer),
        cmocka_unit_test(an_invalid_reply_carries_the_workers_reason),
        cmocka_unit_test(an_error_body_names_its_field),
        cmocka_unit_test(a_percentage_prints_as_its_two_decimals),
        cmocka_unit_test(every_real_reads_back_the_same),
        cmocka_unit_test(reals_in_arrays_and_nested_objects_are_printed_alike),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
