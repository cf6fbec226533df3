/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_time_uuid.c — libFuzzer harness of the ISO 8601 and UUID parsers.
 * A time that parses is formatted and parsed again and must come back the
 * same (the format has milliseconds, the parser takes any fraction, so the
 * second parse is compared, not the first); a UUID that parses is
 * normalized, and the normal form parses to the same 16 bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_time.h"
#include "ts_uuid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void time_round_trip(const char *s) {
    int64_t ms = 0, again = 0;
    if (ts_time_parse_iso8601(s, &ms) != 0)
        return;
    char text[TS_ISO8601_LEN + 1];
    ts_time_format_iso8601(ms, text);
    if (strlen(text) > TS_ISO8601_LEN)
        abort();
    /* Times whose year does not fit four digits format as they can; only
     * the years the parser itself reads are held to the round trip. */
    if (ts_time_parse_iso8601(text, &again) != 0)
        return;
    if (again != ms) {
        fprintf(stderr, "fuzz_time_uuid: %s -> %lld -> %s -> %lld\n", s, (long long)ms, text,
                (long long)again);
        abort();
    }
}

static void uuid_round_trip(const char *s) {
    unsigned char bytes[16], again[16];
    char norm[TS_UUID_LEN + 1];
    int parsed = ts_uuid_parse(s, bytes);
    int normalized = ts_uuid_normalize(s, norm);
    if (parsed != normalized) {
        fprintf(stderr, "fuzz_time_uuid: parse and normalize disagree on %s\n", s);
        abort();
    }
    if (parsed != 0)
        return;
    if (strlen(norm) != TS_UUID_LEN || ts_uuid_parse(norm, again) != 0 ||
        memcmp(bytes, again, sizeof bytes) != 0) {
        fprintf(stderr, "fuzz_time_uuid: %s normalizes to %s, which differs\n", s, norm);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    time_round_trip(s);
    uuid_round_trip(s);
    char out[TS_UUID_LEN + 1];
    ts_uuid_for_email(s, out); /* any text as an email: the id is only a hash */
    free(s);
    return 0;
}
