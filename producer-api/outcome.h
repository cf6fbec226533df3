/* outcome.h — a worker's reply as the HTTP answer the contract gives.
 * Pure; thread-safe. */
#ifndef TS_OUTCOME_H
#define TS_OUTCOME_H

#include <jansson.h>

#include "ts_codec.h"

/* The HTTP status of a reply, and its JSON body in *body (caller decrefs). */
unsigned ts_outcome_http(const ts_reply *reply, json_t **body);

/* The error body of the contract: {"error": message, "code": code} plus
 * "field" when one field is at fault. Caller decrefs. */
json_t *ts_error_body(const char *code, const char *message, const char *field);

#endif
