/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_log.c — libFuzzer harness of the JSON log line (ts_log_json_line),
 * which parses key=value pairs back out of any message: whatever the
 * message holds, and whatever room it gets, the line must be one JSON
 * object (without a key twice) that ends in its only newline, and name
 * the line's time, level and component. The first byte picks the room. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t cap = size ? 128 + (size_t)data[0] * 16 : 4096;
    char *msg = malloc(size + 1), *out = malloc(cap);
    if (!msg || !out)
        abort();
    if (size)
        memcpy(msg, data + 1, size - 1);
    msg[size ? size - 1 : 0] = '\0'; /* a C string: to its first NUL */
    size_t len =
        ts_log_json_line(out, cap, "2026-01-01T00:00:00.000Z", "info", "fuzz", msg, size % 2 == 1);
    json_error_t e;
    json_t *j = len < cap && len > 0 && out[len] == '\0' && out[len - 1] == '\n' &&
                        memchr(out, '\n', len - 1) == NULL
                    ? json_loadb(out, len, JSON_REJECT_DUPLICATES, &e)
                    : NULL;
    if (!j || !json_is_object(j) || !json_is_string(json_object_get(j, "ts")) ||
        strcmp(json_string_value(json_object_get(j, "component")), "fuzz") != 0 ||
        !json_is_string(json_object_get(j, "level"))) {
        fprintf(stderr, "fuzz_log: not one JSON object (cap %zu): %.*s\n", cap, (int)len, out);
        abort();
    }
    json_decref(j);
    free(msg);
    free(out);
    return 0;
}
