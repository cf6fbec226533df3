/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the ingress's routing table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "routes.h"

static void every_route_of_the_contract_matches(void **state) {
    (void)state;
    const struct {
        const char *method, *path;
        ts_route_id id;
        const char *param;
    } cases[] = {
        {"POST", "/api/events", TS_ROUTE_CREATE_EVENT, ""},
        {"GET", "/api/events", TS_ROUTE_LIST_EVENTS, ""},
        {"GET", "/api/events/", TS_ROUTE_LIST_EVENTS, ""},
        {"GET", "/api/events/abc", TS_ROUTE_GET_EVENT, "abc"},
        {"POST", "/api/events/abc/register", TS_ROUTE_REGISTER, "abc"},
        {"POST", "/api/events/abc/cancel", TS_ROUTE_CANCEL, "abc"},
        {"GET", "/api/events/abc/stats", TS_ROUTE_STATS, "abc"},
        {"GET", "/api/commands/c1", TS_ROUTE_GET_COMMAND, "c1"},
        {"GET", "/healthz", TS_ROUTE_HEALTHZ, ""},
        {"GET", "/metrics", TS_ROUTE_METRICS, ""},
        {"GET", "/readyz", TS_ROUTE_READYZ, ""},
        {"PATCH", "/api/events/abc", TS_ROUTE_UPDATE_EVENT, "abc"},
        {"DELETE", "/api/events/abc", TS_ROUTE_CANCEL_EVENT, "abc"},
        {"DELETE", "/api/events/abc/", TS_ROUTE_CANCEL_EVENT, "abc"},
        {"GET", "/api/events/abc/waitlist", TS_ROUTE_WAITLIST, "abc"},
        {"POST", "/api/events/abc/holds", TS_ROUTE_PLACE_HOLD, "abc"},
        {"POST", "/api/events/abc/holds/", TS_ROUTE_PLACE_HOLD, "abc"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ts_route_match m = ts_route(cases[i].method, cases[i].path);
        assert_int_equal(m.route, cases[i].id);
        assert_string_equal(m.param, cases[i].param);
        assert_string_equal(m.param2, "");
    }
}

static void a_holds_path_gives_the_event_and_the_hold(void **state) {
    (void)state;
    ts_route_match m = ts_route("POST", "/api/events/ev1/holds/h1/confirm");
    assert_int_equal(m.route, TS_ROUTE_CONFIRM_HOLD);
    assert_string_equal(m.param, "ev1");
    assert_string_equal(m.param2, "h1");
    m = ts_route("DELETE", "/api/events/ev1/holds/h2/");
    assert_int_equal(m.route, TS_ROUTE_RELEASE_HOLD);
    assert_string_equal(m.param, "ev1");
    assert_string_equal(m.param2, "h2");
    /* an empty or missing hold segment is no route */
    const char *paths[] = {"/api/events/ev1/holds//confirm", "/api/events/ev1/holds/h1/x",
                           "/api/events/ev1/holds/h1/confirm/x", "/api/events/ev1/hold/h1"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        m = ts_route("POST", paths[i]);
        assert_int_equal(m.route, TS_ROUTE_NONE);
        assert_string_equal(m.allow, "");
    }
}

static void an_unknown_path_is_a_404(void **state) {
    (void)state;
    const char *paths[] = {"/",
                           "/api",
                           "/api/event",
                           "/api/events/a/b",
                           "/api/events//register",
                           "/api/events/a/register/x",
                           "/API/events",
                           "/api/eventsX"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        ts_route_match m = ts_route("GET", paths[i]);
        assert_int_equal(m.route, TS_ROUTE_NONE);
        assert_string_equal(m.allow, "");
    }
}

static void a_known_path_with_another_method_is_a_405_with_allow(void **state) {
    (void)state;
    ts_route_match m = ts_route("DELETE", "/api/events");
    assert_int_equal(m.route, TS_ROUTE_NONE);
    assert_string_equal(m.allow, "POST, GET");
    m = ts_route("GET", "/api/events/x/register");
    assert_string_equal(m.allow, "POST");
    m = ts_route("PUT", "/api/events/x");
    assert_string_equal(m.allow, "GET, PATCH, DELETE");
    m = ts_route("POST", "/api/events/x");
    assert_string_equal(m.allow, "GET, PATCH, DELETE");
    m = ts_route("GET", "/api/events/x/holds");
    assert_string_equal(m.allow, "POST");
    m = ts_route("GET", "/api/events/x/holds/h");
    assert_string_equal(m.allow, "DELETE");
    m = ts_route("DELETE", "/api/events/x/holds/h/confirm");
    assert_string_equal(m.allow, "POST");
    m = ts_route("POST", "/api/events/x/waitlist");
    assert_string_equal(m.allow, "GET");
    m = ts_route("DELETE", "/api/events/x/register");
    assert_string_equal(m.allow, "POST");
}

static void an_overlong_id_is_cut_not_overflowed(void **state) {
    (void)state;
    char path[400] = "/api/events/";
    for (int i = 12; i < 390; i++)
        path[i] = 'a';
    path[390] = '\0';
    ts_route_match m = ts_route("GET", path);
    assert_int_equal(m.route, TS_ROUTE_GET_EVENT);
    assert_int_equal(strlen(m.param), sizeof m.param - 1);
}

static void only_writes_take_a_body(void **state) {
    (void)state;
    assert_true(ts_route_has_body(TS_ROUTE_REGISTER));
    assert_true(ts_route_has_body(TS_ROUTE_CREATE_EVENT));
    assert_true(ts_route_has_body(TS_ROUTE_CANCEL));
    assert_true(ts_route_has_body(TS_ROUTE_UPDATE_EVENT));
    assert_true(ts_route_has_body(TS_ROUTE_PLACE_HOLD));
    assert_false(ts_route_has_body(TS_ROUTE_GET_EVENT));
    assert_false(ts_route_has_body(TS_ROUTE_CANCEL_EVENT));
    assert_false(ts_route_has_body(TS_ROUTE_CONFIRM_HOLD));
    assert_false(ts_route_has_body(TS_ROUTE_RELEASE_HOLD));
    assert_false(ts_route_has_body(TS_ROUTE_WAITLIST));
}

static void the_writes_are_the_commands(void **state) {
    (void)state;
    const ts_route_id writes[] = {TS_ROUTE_CREATE_EVENT, TS_ROUTE_REGISTER,     TS_ROUTE_CANCEL,
                                  TS_ROUTE_UPDATE_EVENT, TS_ROUTE_CANCEL_EVENT, TS_ROUTE_PLACE_HOLD,
                                  TS_ROUTE_CONFIRM_HOLD, TS_ROUTE_RELEASE_HOLD};
    for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++)
        assert_true(ts_route_is_write(writes[i]));
    const ts_route_id reads[] = {TS_ROUTE_NONE,        TS_ROUTE_HEALTHZ,   TS_ROUTE_METRICS,
                                 TS_ROUTE_LIST_EVENTS, TS_ROUTE_GET_EVENT, TS_ROUTE_STATS,
                                 TS_ROUTE_GET_COMMAND, TS_ROUTE_WAITLIST,  TS_ROUTE_READYZ};
    for (size_t i = 0; i < sizeof reads / sizeof reads[0]; i++)
        assert_false(ts_route_is_write(reads[i]));
    /* every route with a body is a write */
    for (int r = TS_ROUTE_NONE; r <= TS_ROUTE_RELEASE_HOLD; r++)
        if (ts_route_has_body((ts_route_id)r))
            assert_true(ts_route_is_write((ts_route_id)r));
}

/* The numbers go into the ids derived from Idempotency-Keys: a retry after
 * an upgrade must name the same command. */
static void route_numbers_never_move(void **state) {
    (void)state;
    assert_int_equal(TS_ROUTE_CREATE_EVENT, 3);
    assert_int_equal(TS_ROUTE_REGISTER, 6);
    assert_int_equal(TS_ROUTE_CANCEL, 7);
    assert_int_equal(TS_ROUTE_GET_COMMAND, 9);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_route_of_the_contract_matches),
        cmocka_unit_test(an_unknown_path_is_a_404),
        cmocka_unit_test(a_known_path_with_another_method_is_a_405_with_allow),
        cmocka_unit_test(an_overlong_id_is_cut_not_overflowed),
        cmocka_unit_test(only_writes_take_a_body),
        cmocka_unit_test(a_holds_path_gives_the_event_and_the_hold),
        cmocka_unit_test(the_writes_are_the_commands),
        cmocka_unit_test(route_numbers_never_move),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
