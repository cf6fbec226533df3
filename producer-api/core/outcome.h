/* SPDX-License-Identifier: Apache-2.0 */
/* outcome.h — the JSON answers of the contract: a worker's reply as the
 * HTTP answer it gives, the error body, and the text every answer is sent
 * as. Pure; thread-safe. */
#ifndef TS_OUTCOME_H
#define TS_OUTCOME_H

#include <jansson.h>

#include "ts_codec.h"

/* The HTTP status of a reply, and its JSON body in *body (caller decrefs). */
unsigned ts_outcome_http(const ts_reply *reply, json_t **body);

/* The error body of the contract: {"error": message, "code": code} plus
 * "field" when one field is at fault. Caller decrefs; NULL when out of
 * memory. */
json_t *ts_error_body(const char *code, const char *message, const char *field);

/* The compact text of an answer's body, each real with the fewest
 * significant digits that read back as the same double: 0.18, not
 * jansson's default 0.17999999999999999; a whole number keeps its ".0"
 * (50.0). Exact for every real of up to 15 significant digits, which
 * covers what the API prints (percentages to 2 decimals). A body holding a
 * real that needs 16 or 17 digits is printed with that many for all its
 * reals: each still reads back the same, the shorter ones no longer with
 * the fewest digits. Caller frees; NULL when `body` is NULL or out of
 * memory. */
char *ts_body_text(const json_t *body);

#endif
