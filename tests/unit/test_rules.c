/* Unit tests of the worker's registration rules and their order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "rules.h"

#define NOW 1000000

static void the_checks_come_in_the_original_order(void **state) {
    (void)state;
    ts_event_view missing = {false, 0, 0, 0};
    ts_event_view past_and_full = {true, NOW - 1, 1, 1};
    ts_event_view full = {true, NOW + 1, 2, 2};
    ts_event_view open = {true, NOW + 1, 2, 1};
    assert_int_equal(ts_rules_register(&missing, NOW, true), TS_OUT_EVENT_NOT_FOUND);
    assert_int_equal(ts_rules_register(&past_and_full, NOW, true), TS_OUT_PAST_EVENT);
    assert_int_equal(ts_rules_register(&full, NOW, true), TS_OUT_ALREADY_REGISTERED);
    assert_int_equal(ts_rules_register(&full, NOW, false), TS_OUT_EVENT_FULL);
    assert_int_equal(ts_rules_register(&open, NOW, false), TS_OUT_REGISTERED);
}

static void an_event_starting_now_is_past(void **state) {
    (void)state;
    ts_event_view starting = {true, NOW, 5, 0};
    assert_int_equal(ts_rules_register(&starting, NOW, false), TS_OUT_PAST_EVENT);
    assert_false(ts_rules_needs_lookup(&starting, NOW));
}

static void the_last_seat_can_be_taken_and_no_more(void **state) {
    (void)state;
    ts_event_view e = {true, NOW + 1, 3, 2};
    assert_int_equal(ts_rules_register(&e, NOW, false), TS_OUT_REGISTERED);
    e.registered = 3;
    assert_int_equal(ts_rules_register(&e, NOW, false), TS_OUT_EVENT_FULL);
    e.registered = 4; /* never happens: the database forbids it; still refused */
    assert_int_equal(ts_rules_register(&e, NOW, false), TS_OUT_EVENT_FULL);
}

static void refusals_carry_the_original_messages(void **state) {
    (void)state;
    assert_string_equal(ts_outcome_message(TS_OUT_EVENT_FULL), "Event is full");
    assert_string_equal(ts_outcome_message(TS_OUT_PAST_EVENT), "Cannot register for past events");
    assert_string_equal(ts_outcome_message(TS_OUT_ALREADY_REGISTERED), "User already registered");
    assert_string_equal(ts_outcome_message(TS_OUT_EVENT_NOT_FOUND), "Event not found");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_checks_come_in_the_original_order),
        cmocka_unit_test(an_event_starting_now_is_past),
        cmocka_unit_test(the_last_seat_can_be_taken_and_no_more),
        cmocka_unit_test(refusals_carry_the_original_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
