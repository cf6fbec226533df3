/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_routes.c — libFuzzer harness of the route table: the input is split
 * at its first space into a method and a path (as in a request line), and
 * matched. The match's strings must be terminated within their buffers. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void terminated(const char *field, const char *s, size_t cap) {
    if (!memchr(s, '\0', cap)) {
        fprintf(stderr, "fuzz_routes: %s is not terminated\n", field);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* Two exact-size C strings: "METHOD PATH" -> "METHOD", "PATH"; no space:
     * the whole input is the path of a GET. Embedded NULs cut a string
     * short, as they would in a C string from the HTTP server. */
    const uint8_t *sp = memchr(data, ' ', size);
    size_t mlen = sp ? (size_t)(sp - data) : 3;
    size_t plen = sp ? size - mlen - 1 : size;
    const uint8_t *path_bytes = sp ? sp + 1 : data;
    char *method = malloc(mlen + 1), *path = malloc(plen + 1);
    if (!method || !path) {
        free(method);
        free(path);
        return 0;
    }
    memcpy(method, sp ? data : (const uint8_t *)"GET", mlen);
    method[mlen] = '\0';
    if (plen)
        memcpy(path, path_bytes, plen);
    path[plen] = '\0';

    ts_route_match m = ts_route(method, path);
    terminated("param", m.param, sizeof m.param);
    terminated("param2", m.param2, sizeof m.param2);
    terminated("allow", m.allow, sizeof m.allow);
    (void)ts_route_is_write(m.route);
    (void)ts_route_has_body(m.route);
    free(method);
    free(path);
    return 0;
}
