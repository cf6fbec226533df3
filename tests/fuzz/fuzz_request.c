/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_request.c — libFuzzer harness of the JSON body parsers: the input is
 * an HTTP request body (not NUL-terminated), given to every parser and to
 * the idempotency digest. A refusal must say why; the digest must be the
 * same twice. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef int (*parser)(const char *body, size_t len, ts_command *cmd, ts_bad_request *why);

static const struct {
    const char *name;
    parser parse;
} parsers[] = {
    {"create_event", ts_request_create_event},
    {"register", ts_request_register},
    {"cancel", ts_request_cancel},
    {"place_hold", ts_request_place_hold},
    {"update_event", ts_request_update_event},
};

static void check_refusal(const char *name, const ts_bad_request *why) {
    if (!why->code || !memchr(why->message, '\0', sizeof why->message)) {
        fprintf(stderr, "fuzz_request: %s refused without a code or message\n", name);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* Exactly `size` bytes, no NUL after them: a parser that reads on finds
     * ASan waiting. */
    char *body = malloc(size ? size : 1);
    if (!body)
        return 0;
    if (size)
        memcpy(body, data, size);
    for (size_t i = 0; i < sizeof parsers / sizeof parsers[0]; i++) {
        static ts_command cmd;
        ts_bad_request why;
        memset(&cmd, 0, sizeof cmd);
        memset(&why, 0, sizeof why);
        if (parsers[i].parse(body, size, &cmd, &why) != 0)
            check_refusal(parsers[i].name, &why);
    }
    ts_digest a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    int ra = ts_request_digest(body, size, NULL, &a);
    int rb = ts_request_digest(body, size, NULL, &b);
    if (ra != rb || (ra == 0 && memcmp(&a, &b, sizeof a) != 0)) {
        fprintf(stderr, "fuzz_request: the digest of the same body differs\n");
        abort();
    }
    (void)ts_request_digest(body, size, "1e0d2c3b-4a59-4687-9a8b-7c6d5e4f3a21", &a);
    free(body);
    return 0;
}
