/* SPDX-License-Identifier: Apache-2.0 */
/* outcome.c — see outcome.h. One row per outcome: status, machine code and
 * the field a refusal names, if any; a refusal's message is
 * ts_outcome_message's, the worker's too. Then the text every answer is
 * sent as, its reals' precision chosen per body. */
#include "outcome.h"

#include <stdio.h>
#include <stdlib.h>

#include "ts_time.h"

static const struct {
    unsigned status;
    const char *code;
    const char *field; /* the field at fault, if one is */
} rows[TS_OUT_COUNT_] = {
    [TS_OUT_CREATED] = {201, NULL, NULL},
    [TS_OUT_REGISTERED] = {201, NULL, NULL},
    [TS_OUT_CANCELLED] = {200, NULL, NULL},
    [TS_OUT_EVENT_NOT_FOUND] = {404, "event_not_found", NULL},
    [TS_OUT_PAST_EVENT] = {400, "past_event", NULL},
    [TS_OUT_EVENT_FULL] = {400, "event_full", NULL},
    [TS_OUT_ALREADY_REGISTERED] = {400, "already_registered", NULL},
    [TS_OUT_REGISTRATION_NOT_FOUND] = {404, "registration_not_found", NULL},
    [TS_OUT_INVALID] = {400, "invalid_command", NULL},
    [TS_OUT_FORBIDDEN] = {403, "forbidden", NULL},
    [TS_OUT_IDEMPOTENCY_KEY_REUSED] = {422, "idempotency_key_reused", NULL},
    [TS_OUT_WAITLISTED] = {201, NULL, NULL},
    [TS_OUT_ALREADY_WAITLISTED] = {400, "already_waitlisted", NULL},
    [TS_OUT_HELD] = {201, NULL, NULL},
    [TS_OUT_ALREADY_HELD] = {400, "already_held", NULL},
    [TS_OUT_HOLD_NOT_FOUND] = {404, "hold_not_found", NULL},
    [TS_OUT_HOLD_EXPIRED] = {410, "hold_expired", NULL},
    [TS_OUT_RELEASED] = {200, NULL, NULL},
    [TS_OUT_UPDATED] = {200, NULL, NULL},
    [TS_OUT_CAPACITY_BELOW_TAKEN] = {400, "capacity_below_taken", "capacity"},
    [TS_OUT_EVENT_CANCELLED] = {400, "event_cancelled", NULL},
};

json_t *ts_error_body(const char *code, const char *message, const char *field) {
    json_t *body = json_pack("{s:s, s:s}", "error", message, "code", code);
    if (body && field && json_object_set_new(body, "field", json_string(field)) != 0) {
        json_decref(body); /* never the error without the field it names */
        return NULL;
    }
    return body;
}

unsigned ts_outcome_http(const ts_reply *r, json_t **body) {
    if ((unsigned)r->outcome >= TS_OUT_COUNT_) {
        *body = ts_error_body("internal", "Unknown outcome", NULL);
        return 500;
    }
    char expires_at[TS_ISO8601_LEN + 1];
    switch (r->outcome) {
    case TS_OUT_CREATED: *body = json_pack("{s:s}", "id", r->event_id); break;
    case TS_OUT_REGISTERED:
        *body = json_pack("{s:s, s:s}", "user_id", r->user_id, "status", "registered");
        break;
    case TS_OUT_WAITLISTED:
        *body = json_pack("{s:s, s:s, s:I}", "user_id", r->user_id, "status", "waitlisted",
                          "position", (json_int_t)r->position);
        break;
    case TS_OUT_HELD:
        ts_time_format_iso8601(r->expires_at_ms, expires_at);
        *body = json_pack("{s:s, s:s, s:s}", "hold_id", r->hold_id, "user_id", r->user_id,
                          "expires_at", expires_at);
        break;
    case TS_OUT_CANCELLED:
    case TS_OUT_RELEASED: *body = json_pack("{s:b}", "ok", 1); break;
    /* the event changed: its id here; the HTTP answer is the event as read
     * after the reply (http.c) */
    case TS_OUT_UPDATED: *body = json_pack("{s:s}", "id", r->event_id); break;
    default:
        /* An INVALID reply carries the worker's reason; the others the
         * original service's fixed messages, and the seat lifecycle's. */
        *body = ts_error_body(rows[r->outcome].code,
                              r->outcome == TS_OUT_INVALID && r->message[0]
                                  ? r->message
                                  : ts_outcome_message(r->outcome),
                              rows[r->outcome].field);
    }
    return rows[r->outcome].status;
}

/* The fewest significant digits with which %.*g prints `x` so that it
 * reads back as `x`; 17 always does for a double. */
static int shortest_digits(double x) {
    char text[32];
    for (int digits = 1; digits < 17; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, x);
        if (strtod(text, NULL) == x)
            return digits;
    }
    return 17;
}

/* The most digits a real anywhere in `v` needs; 0 when it holds none. */
static int digits_needed(const json_t *v) {
    int most = 0;
    /* jansson's iterators take no const; nothing here changes `v` */
    json_t *member, *node = (json_t *)v;
    const char *key;
    size_t i;
    switch (json_typeof(v)) {
    case JSON_REAL: return shortest_digits(json_real_value(v));
    case JSON_OBJECT:
        json_object_foreach(node, key, member) {
            int d = digits_needed(member);
            most = d > most ? d : most;
        }
        return most;
    case JSON_ARRAY:
        json_array_foreach(node, i, member) {
            int d = digits_needed(member);
            most = d > most ? d : most;
        }
        return most;
    default: return 0;
    }
}

char *ts_body_text(const json_t *body) {
    if (!body)
        return NULL;
    /* %.15g gives every real of up to 15 significant digits back as the
     * shortest decimal that names it (DBL_DIG: such a decimal survives the
     * trip through a double), without the binary noise %.17g shows. */
    int digits = digits_needed(body);
    return json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(digits > 15 ? digits : 15));
}
