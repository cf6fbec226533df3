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
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ts_route_match m = ts_route(cases[i].method, cases[i].path);
        assert_int_equal(m.route, cases[i].id);
        assert_string_equal(m.param, cases[i].param);
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
    assert_string_equal(m.allow, "GET");
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
    assert_false(ts_route_has_body(TS_ROUTE_GET_EVENT));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_route_of_the_contract_matches),
        cmocka_unit_test(an_unknown_path_is_a_404),
        cmocka_unit_test(a_known_path_with_another_method_is_a_405_with_allow),
        cmocka_unit_test(an_overlong_id_is_cut_not_overflowed),
        cmocka_unit_test(only_writes_take_a_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
