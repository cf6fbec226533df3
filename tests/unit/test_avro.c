/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of ts_avro: CRC-64-AVRO, the Parsing Canonical Form, and the
 * single-object header. The schemas' canonical forms and fingerprints are
 * checked against tests/vectors/fingerprints.txt, computed by Apache Avro
 * for Java (tests/vectors/generate). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ts_avro.h"
#include "ts_embedded.h"

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void crc64_of_nothing_is_the_empty_value(void **state) {
    (void)state;
    assert_true(ts_avro_crc64("", 0) == 0xc15d213aa4d7a795ULL);
}

/* A value from the Avro specification's own test data (schema-tests.txt):
 * the fingerprint of the schema "int" is 8247732601305521295. */
static void crc64_matches_the_specification_for_int(void **state) {
    (void)state;
    uint64_t fp;
    char err[128];
    assert_int_equal(ts_avro_fingerprint("\"int\"", &fp, err, sizeof err), 0);
    assert_true((int64_t)fp == 8247732601305521295LL);
}

static void every_schema_matches_the_java_reference(void **state) {
    (void)state;
    char *vectors = slurp(TS_VECTORS_DIR "/fingerprints.txt");
    int checked = 0;
    for (char *line = strtok(vectors, "\n"); line; line = strtok(NULL, "\n")) {
        char file[64], hex[17];
        int consumed;
        assert_int_equal(sscanf(line, "%63s %16s %n", file, hex, &consumed), 2);
        const char *canonical = line + consumed;
        char path[256];
        snprintf(path, sizeof path, "%s/%s", TS_SCHEMAS_DIR, file);
        char *schema = slurp(path);
        char err[256];
        char *mine = ts_avro_canonical_form(schema, err, sizeof err);
        assert_non_null(mine);
        assert_string_equal(mine, canonical);
        uint64_t fp;
        assert_int_equal(ts_avro_fingerprint(schema, &fp, err, sizeof err), 0);
        assert_true(fp == strtoull(hex, NULL, 16));
        free(mine);
        free(schema);
        checked++;
    }
    free(vectors);
    /* one line per schema of schemas/ */
    int schemas = 0;
    for (const ts_embedded *e = ts_embedded_schemas; e->name; e++)
        schemas++;
    assert_int_equal(checked, schemas);
    assert_true(checked >= 4);
}

static void canonical_form_strips_docs_and_resolves_names(void **state) {
    (void)state;
    const char *schema =
        "{\"type\": \"record\", \"name\": \"A\", \"namespace\": \"x.y\", \"doc\": \"d\","
        " \"fields\": ["
        "  {\"name\": \"b\", \"type\": {\"type\": \"enum\", \"name\": \"E\", \"symbols\": [\"P\"],"
        "   \"doc\": \"e\"}, \"default\": \"P\"},"
        "  {\"name\": \"c\", \"type\": \"E\"},"
        "  {\"name\": \"d\", \"type\": {\"type\": \"array\", \"items\": {\"type\": \"long\","
        "   \"logicalType\": \"timestamp-millis\"}}},"
        "  {\"name\": \"e\", \"type\": {\"type\": \"fixed\", \"name\": \"o.F\", \"size\": 4}},"
        "  {\"name\": \"f\", \"type\": {\"type\": \"map\", \"values\": [\"null\", \"F\"]}}"
        "]}";
    char err[128];
    char *c = ts_avro_canonical_form(schema, err, sizeof err);
    assert_non_null(c);
    assert_string_equal(
        c, "{\"name\":\"x.y.A\",\"type\":\"record\",\"fields\":["
           "{\"name\":\"b\",\"type\":{\"name\":\"x.y.E\",\"type\":\"enum\",\"symbols\":[\"P\"]}},"
           "{\"name\":\"c\",\"type\":\"x.y.E\"},"
           "{\"name\":\"d\",\"type\":{\"type\":\"array\",\"items\":\"long\"}},"
           "{\"name\":\"e\",\"type\":{\"name\":\"o.F\",\"type\":\"fixed\",\"size\":4}},"
           "{\"name\":\"f\",\"type\":{\"type\":\"map\",\"values\":[\"null\",\"x.y.F\"]}}]}");
    free(c);
}

static void canonical_form_rejects_what_is_not_a_schema(void **state) {
    (void)state;
    char err[128];
    const char *bad[] = {"{",
                         "42",
                         "{\"type\": \"record\", \"fields\": []}",
                         "{\"name\": \"x\"}",
                         "{\"type\": \"enum\", \"name\": \"E\"}",
                         "{\"type\": \"array\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_null(ts_avro_canonical_form(bad[i], err, sizeof err));
        assert_true(strlen(err) > 0);
    }
}

static void header_round_trips_and_rejects_bad_magic(void **state) {
    (void)state;
    uint8_t h[TS_AVRO_HEADER_LEN];
    ts_avro_write_header(h, 0x0102030405060708ULL);
    assert_int_equal(h[0], 0xC3);
    assert_int_equal(h[1], 0x01);
    assert_int_equal(h[2], 0x08); /* little-endian */
    uint64_t fp = 0;
    assert_int_equal(ts_avro_read_header(h, sizeof h, &fp), 0);
    assert_true(fp == 0x0102030405060708ULL);
    assert_int_equal(ts_avro_read_header(h, sizeof h - 1, &fp), -1);
    h[1] = 0x02;
    assert_int_equal(ts_avro_read_header(h, sizeof h, &fp), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crc64_of_nothing_is_the_empty_value),
        cmocka_unit_test(crc64_matches_the_specification_for_int),
        cmocka_unit_test(every_schema_matches_the_java_reference),
        cmocka_unit_test(canonical_form_strips_docs_and_resolves_names),
        cmocka_unit_test(canonical_form_rejects_what_is_not_a_schema),
        cmocka_unit_test(header_round_trips_and_rejects_bad_magic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
