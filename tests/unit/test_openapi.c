/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the OpenAPI document the API serves at /openapi.json: it
 * parses, it lists exactly the routes the router knows, and what it says of
 * statuses, headers and error codes matches what the code answers. */
#include <ctype.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "openapi.h"
#include "outcome.h"
#include "request.h"
#include "routes.h"

static json_t *doc;

static int load(void **state) {
    (void)state;
    size_t len;
    const char *text = ts_openapi_document(&len);
    json_error_t err;
    doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    if (!doc)
        fprintf(stderr, "openapi.json: line %d: %s\n", err.line, err.text);
    return doc ? 0 : -1;
}

static int unload(void **state) {
    (void)state;
    json_decref(doc);
    return 0;
}

/* "/api/events/:id" -> "/api/events/{id}" */
static void templated(const char *pattern, char *out, size_t cap) {
    size_t n = 0;
    for (const char *p = pattern; *p && n + 2 < cap;) {
        if (*p == ':') {
            out[n++] = '{';
            for (p++; *p && *p != '/' && n + 2 < cap; p++)
                out[n++] = *p;
            out[n++] = '}';
        } else {
            out[n++] = *p++;
        }
    }
    out[n] = '\0';
}

/* "/api/events/{id}" -> "/api/events/x" */
static void concrete(const char *path, char *out, size_t cap) {
    size_t n = 0;
    for (const char *p = path; *p && n + 2 < cap;) {
        if (*p == '{') {
            out[n++] = 'x';
            p += strcspn(p, "}");
            if (*p)
                p++;
        } else {
            out[n++] = *p++;
        }
    }
    out[n] = '\0';
}

static json_t *operation(const char *method, const char *pattern) {
    char path[128], lower[16];
    templated(pattern, path, sizeof path);
    size_t i;
    for (i = 0; method[i] && i + 1 < sizeof lower; i++)
        lower[i] = (char)tolower((unsigned char)method[i]);
    lower[i] = '\0';
    return json_object_get(json_object_get(json_object_get(doc, "paths"), path), lower);
}

/* An operation's response for `status`, its $ref followed. */
static json_t *response(json_t *op, const char *status) {
    json_t *r = json_object_get(json_object_get(op, "responses"), status);
    const char *ref = json_string_value(json_object_get(r, "$ref"));
    if (ref) {
        const char *prefix = "#/components/responses/";
        assert_int_equal(strncmp(ref, prefix, strlen(prefix)), 0);
        r = json_object_get(json_object_get(json_object_get(doc, "components"), "responses"),
                            ref + strlen(prefix));
        assert_non_null(r);
    }
    return r;
}

static void the_document_is_openapi_3_1(void **state) {
    (void)state;
    assert_string_equal(json_string_value(json_object_get(doc, "openapi")), "3.1.0");
    assert_non_null(json_object_get(json_object_get(doc, "info"), "title"));
}

static void every_route_of_the_router_is_in_the_document(void **state) {
    (void)state;
    for (size_t i = 0; i < ts_route_count(); i++) {
        const char *method, *pattern;
        ts_route_id id;
        ts_route_at(i, &method, &pattern, &id);
        json_t *op = operation(method, pattern);
        if (!op)
            fail_msg("%s %s is not in producer-api/openapi.json", method, pattern);
        assert_true(json_is_string(json_object_get(op, "operationId")));
        json_t *responses = json_object_get(op, "responses");
        assert_true(json_object_size(responses) > 0);
        /* what any request may be answered before it is routed */
        assert_non_null(response(op, "413"));
        assert_non_null(response(op, "414"));
        assert_non_null(response(op, "431"));
        if (ts_route_is_write(id)) {
            json_t *accepted = response(op, "202");
            assert_non_null(json_object_get(json_object_get(accepted, "headers"), "Location"));
            assert_non_null(response(op, "400"));
            assert_non_null(response(op, "401"));
            assert_non_null(response(op, "422"));
            assert_non_null(
                json_object_get(json_object_get(response(op, "429"), "headers"), "Retry-After"));
            assert_non_null(
                json_object_get(json_object_get(response(op, "503"), "headers"), "Retry-After"));
            json_t *params = json_object_get(op, "parameters");
            bool has_key = false;
            size_t k;
            json_t *p;
            json_array_foreach(params, k, p) {
                const char *ref = json_string_value(json_object_get(p, "$ref"));
                has_key |= ref && strcmp(ref, "#/components/parameters/IdempotencyKey") == 0;
            }
            assert_true(has_key);
            assert_int_equal(json_object_size(json_object_get(op, "requestBody")) > 0,
                             ts_route_has_body(id));
        }
    }
}

static bool has_parameter(json_t *op, const char *ref) {
    size_t k;
    json_t *p;
    json_array_foreach(json_object_get(op, "parameters"), k, p) {
        const char *r = json_string_value(json_object_get(p, "$ref"));
        if (r && strcmp(r, ref) == 0)
            return true;
    }
    return false;
}

/* Reads of data take X-Turnstile-Min-Position (and say what an invalid one
 * gets); every answer a write gets from its worker's reply, and a command
 * found done, carries X-Turnstile-Position: as the code answers them. */
static void the_positions_are_documented_where_the_code_uses_them(void **state) {
    (void)state;
    size_t reads = 0, writes = 0;
    for (size_t i = 0; i < ts_route_count(); i++) {
        const char *method, *pattern;
        ts_route_id id;
        ts_route_at(i, &method, &pattern, &id);
        json_t *op = operation(method, pattern);
        bool data = id == TS_ROUTE_LIST_EVENTS || id == TS_ROUTE_GET_EVENT ||
                    id == TS_ROUTE_STATS || id == TS_ROUTE_WAITLIST;
        if (has_parameter(op, "#/components/parameters/MinPosition") != data)
            fail_msg("%s %s: X-Turnstile-Min-Position %s", method, pattern,
                     data ? "missing" : "where the code reads none");
        if (data) {
            reads++;
            const char *d = json_string_value(json_object_get(response(op, "400"), "description"));
            assert_non_null(d);
            assert_non_null(strstr(d, "invalid_header"));
            assert_non_null(strstr(d, "X-Turnstile-Min-Position"));
        }
        const char *answered =
            ts_route_is_write(id)
                ? (id == TS_ROUTE_CREATE_EVENT || id == TS_ROUTE_REGISTER ||
                           id == TS_ROUTE_PLACE_HOLD || id == TS_ROUTE_CONFIRM_HOLD
                       ? "201"
                       : "200")
            : id == TS_ROUTE_GET_COMMAND ? "200"
                                         : NULL;
        if (answered) {
            writes += ts_route_is_write(id);
            json_t *h = json_object_get(json_object_get(response(op, answered), "headers"),
                                        "X-Turnstile-Position");
            const char *ref = json_string_value(json_object_get(h, "$ref"));
            if (!ref || strcmp(ref, "#/components/headers/Position") != 0)
                fail_msg("%s %s: no X-Turnstile-Position in its %s", method, pattern, answered);
        }
    }
    assert_int_equal(reads, 4);
    assert_true(writes >= 8);
    /* the patterns take what the code takes and gives (ts_lsn.h) */
    json_t *components = json_object_get(doc, "components");
    const char *in = json_string_value(json_object_get(
        json_object_get(json_object_get(json_object_get(components, "parameters"), "MinPosition"),
                        "schema"),
        "pattern"));
    const char *out = json_string_value(json_object_get(
        json_object_get(json_object_get(json_object_get(components, "headers"), "Position"),
                        "schema"),
        "pattern"));
    assert_string_equal(in, "^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$");
    assert_string_equal(out, "^[0-9A-F]{1,8}/[0-9A-F]{1,8}$");
}

static void every_operation_of_the_document_is_a_route(void **state) {
    (void)state;
    const char *path;
    json_t *ops;
    size_t count = 0;
    json_object_foreach(json_object_get(doc, "paths"), path, ops) {
        const char *method;
        json_t *op;
        json_object_foreach(ops, method, op) {
            char upper[16], url[128];
            size_t i;
            for (i = 0; method[i] && i + 1 < sizeof upper; i++)
                upper[i] = (char)toupper((unsigned char)method[i]);
            upper[i] = '\0';
            concrete(path, url, sizeof url);
            ts_route_match m = ts_route(upper, url);
            if (m.route == TS_ROUTE_NONE)
                fail_msg("%s %s is documented but no route", upper, path);
            count++;
        }
    }
    assert_int_equal(count, ts_route_count());
}

static bool is_error_code(const char *code) {
    json_t *codes = json_object_get(
        json_object_get(json_object_get(json_object_get(doc, "components"), "schemas"),
                        "ErrorCode"),
        "enum");
    size_t i;
    json_t *c;
    json_array_foreach(codes, i, c) {
        if (strcmp(json_string_value(c), code) == 0)
            return true;
    }
    return false;
}

static void every_outcome_s_error_code_is_documented(void **state) {
    (void)state;
    for (int o = 0; o < TS_OUT_COUNT_; o++) {
        ts_reply r;
        memset(&r, 0, sizeof r);
        r.outcome = (ts_outcome)o;
        json_t *body;
        unsigned status = ts_outcome_http(&r, &body);
        const char *code = json_string_value(json_object_get(body, "code"));
        if (status >= 400 && (!code || !is_error_code(code)))
            fail_msg("outcome %s answers %u with code %s, not in ErrorCode",
                     ts_outcome_name(r.outcome), status, code ? code : "(none)");
        json_decref(body);
    }
}

static void every_request_error_code_is_documented(void **state) {
    (void)state;
    const char *bodies[] = {"{", "[]", "{}", "{\"name\":7,\"email\":\"a@b.c\"}"};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        ts_command cmd;
        ts_bad_request why;
        memset(&cmd, 0, sizeof cmd);
        assert_int_equal(ts_request_register(bodies[i], strlen(bodies[i]), &cmd, &why), -1);
        if (!is_error_code(why.code))
            fail_msg("%s answers code %s, not in ErrorCode", bodies[i], why.code);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_document_is_openapi_3_1),
        cmocka_unit_test(every_route_of_the_router_is_in_the_document),
        cmocka_unit_test(every_operation_of_the_document_is_a_route),
        cmocka_unit_test(the_positions_are_documented_where_the_code_uses_them),
        cmocka_unit_test(every_outcome_s_error_code_is_documented),
        cmocka_unit_test(every_request_error_code_is_documented),
    };
    return cmocka_run_group_tests(tests, load, unload);
}
