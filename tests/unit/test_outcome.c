/* Unit tests of the reply -> HTTP mapping: the contract's statuses and
 * messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_outcome_has_the_contract_status_and_body),
        cmocka_unit_test(an_invalid_reply_carries_the_workers_reason),
        cmocka_unit_test(an_error_body_names_its_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
