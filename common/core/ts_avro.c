/* SPDX-License-Identifier: Apache-2.0 */
/* ts_avro.c — Parsing Canonical Form, CRC-64-AVRO and single-object framing.
 *
 * avro-c parses schemas and encodes bodies but has no canonical form, which
 * the single-object encoding needs; the transformation here follows the
 * specification's rules ([PRIMITIVES], [FULLNAMES], [STRIP], [ORDER],
 * [STRINGS], [INTEGERS], [WHITESPACE]) on a jansson tree. tests/vectors/
 * holds the canonical forms and fingerprints computed by Apache Avro for
 * Java, which the unit tests compare against. */
#include "ts_avro.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CRC64_EMPTY 0xc15d213aa4d7a795ULL

uint64_t ts_avro_crc64(const void *data, size_t len) {
    const uint8_t *p = data;
    uint64_t fp = CRC64_EMPTY;
    for (size_t i = 0; i < len; i++) {
        fp ^= p[i];
        for (int bit = 0; bit < 8; bit++)
            fp = (fp >> 1) ^ (CRC64_EMPTY & (0 - (fp & 1)));
    }
    return fp;
}

void ts_avro_write_header(uint8_t out[TS_AVRO_HEADER_LEN], uint64_t fingerprint) {
    out[0] = 0xC3;
    out[1] = 0x01;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(fingerprint >> (8 * i));
}

int ts_avro_read_header(const void *msg, size_t len, uint64_t *fingerprint) {
    const uint8_t *p = msg;
    if (len < TS_AVRO_HEADER_LEN || p[0] != 0xC3 || p[1] != 0x01)
        return -1;
    uint64_t fp = 0;
    for (int i = 0; i < 8; i++)
        fp |= (uint64_t)p[2 + i] << (8 * i);
    *fingerprint = fp;
    return 0;
}

/* ------------------------------------------------------------ canonical form */

typedef struct out {
    char *buf;
    size_t len, cap;
    char *err;
    size_t errlen;
    int failed;
} out;

static void fail(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(out *o, const char *fmt, ...) {
    if (o->failed)
        return;
    o->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->err, o->errlen, fmt, ap);
    va_end(ap);
}

static void put(out *o, const char *s) {
    size_t n = strlen(s);
    if (o->failed)
        return;
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 256;
        while (cap < o->len + n + 1)
            cap *= 2;
        char *p = realloc(o->buf, cap);
        if (!p) {
            fail(o, "out of memory");
            return;
        }
        o->buf = p;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, s, n + 1);
    o->len += n;
}

/* A JSON string literal, with escapes resolved to UTF-8 ([STRINGS]). */
static void put_string(out *o, const char *s) {
    json_t *j = json_string(s);
    char *text = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    if (!text)
        fail(o, "cannot encode string");
    else
        put(o, text);
    free(text);
    json_decref(j);
}

static int is_primitive(const char *t) {
    static const char *const names[] = {"null",  "boolean", "int",   "long",
                                        "float", "double",  "bytes", "string"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(t, names[i]) == 0)
            return 1;
    return 0;
}

/* The full name of `name` in namespace `ns` ([FULLNAMES]). */
static void full_name(const char *name, const char *ns, char *dst, size_t len) {
    if (strchr(name, '.') || !ns || !*ns)
        snprintf(dst, len, "%s", name);
    else
        snprintf(dst, len, "%s.%s", ns, name);
}

static void canon(out *o, json_t *s, const char *ns);

static void canon_named(out *o, json_t *s, const char *type, const char *ns) {
    const char *name = json_string_value(json_object_get(s, "name"));
    if (!name) {
        fail(o, "%s without a name", type);
        return;
    }
    const char *own_ns = json_string_value(json_object_get(s, "namespace"));
    char full[512], inner_ns[512];
    full_name(name, own_ns ? own_ns : ns, full, sizeof full);
    /* Names inside take the namespace of this type's full name. */
    snprintf(inner_ns, sizeof inner_ns, "%s", full);
    char *dot = strrchr(inner_ns, '.');
    if (dot)
        *dot = '\0';
    else
        inner_ns[0] = '\0';

    put(o, "{\"name\":");
    put_string(o, full);
    put(o, ",\"type\":");
    put_string(o, type);
    if (strcmp(type, "record") == 0 || strcmp(type, "error") == 0) {
        json_t *fields = json_object_get(s, "fields");
        if (!json_is_array(fields)) {
            fail(o, "record %s without fields", full);
            return;
        }
        put(o, ",\"fields\":[");
        size_t i;
        json_t *f;
        json_array_foreach(fields, i, f) {
            const char *fname = json_string_value(json_object_get(f, "name"));
            json_t *ftype = json_object_get(f, "type");
            if (!fname || !ftype) {
                fail(o, "record %s: a field without name or type", full);
                return;
            }
            put(o, i ? ",{\"name\":" : "{\"name\":");
            put_string(o, fname);
            put(o, ",\"type\":");
            canon(o, ftype, inner_ns);
            put(o, "}");
        }
        put(o, "]}");
    } else if (strcmp(type, "enum") == 0) {
        json_t *symbols = json_object_get(s, "symbols");
        if (!json_is_array(symbols)) {
            fail(o, "enum %s without symbols", full);
            return;
        }
        put(o, ",\"symbols\":[");
        size_t i;
        json_t *sym;
        json_array_foreach(symbols, i, sym) {
            if (i)
                put(o, ",");
            if (!json_is_string(sym)) {
                fail(o, "enum %s: a symbol is not a string", full);
                return;
            }
            put_string(o, json_string_value(sym));
        }
        put(o, "]}");
    } else { /* fixed */
        json_t *size = json_object_get(s, "size");
        if (!json_is_integer(size) || json_integer_value(size) < 0) {
            fail(o, "fixed %s without a valid size", full);
            return;
        }
        char num[32];
        snprintf(num, sizeof num, ",\"size\":%lld}", (long long)json_integer_value(size));
        put(o, num);
    }
}

static void canon(out *o, json_t *s, const char *ns) {
    if (o->failed)
        return;
    if (json_is_string(s)) {
        const char *t = json_string_value(s);
        char full[512];
        if (is_primitive(t)) {
            put_string(o, t);
        } else {
            full_name(t, ns, full, sizeof full);
            put_string(o, full);
        }
    } else if (json_is_array(s)) { /* a union */
        put(o, "[");
        size_t i;
        json_t *branch;
        json_array_foreach(s, i, branch) {
            if (i)
                put(o, ",");
            canon(o, branch, ns);
        }
        put(o, "]");
    } else if (json_is_object(s)) {
        json_t *type = json_object_get(s, "type");
        const char *t = json_string_value(type);
        if (!type) {
            fail(o, "a schema object without \"type\"");
        } else if (t && is_primitive(t)) {
            put_string(o, t); /* [PRIMITIVES] and [STRIP]: logicalType goes */
        } else if (t && (!strcmp(t, "record") || !strcmp(t, "error") || !strcmp(t, "enum") ||
                         !strcmp(t, "fixed"))) {
            canon_named(o, s, t, ns);
        } else if (t && (!strcmp(t, "array") || !strcmp(t, "map"))) {
            int array = !strcmp(t, "array");
            json_t *inner = json_object_get(s, array ? "items" : "values");
            if (!inner) {
                fail(o, "%s without %s", t, array ? "items" : "values");
                return;
            }
            put(o, array ? "{\"type\":\"array\",\"items\":" : "{\"type\":\"map\",\"values\":");
            canon(o, inner, ns);
            put(o, "}");
        } else {
            /* {"type": {...}}, {"type": [...]}, or a reference to a named type */
            canon(o, type, ns);
        }
    } else {
        fail(o, "a schema must be a string, an array or an object");
    }
}

char *ts_avro_canonical_form(const char *schema_json, char *err, size_t errlen) {
    json_error_t jerr;
    json_t *root = json_loads(schema_json, JSON_DECODE_ANY, &jerr);
    if (!root) {
        snprintf(err, errlen, "schema is not JSON: %s (line %d)", jerr.text, jerr.line);
        return NULL;
    }
    out o = {.err = err, .errlen = errlen};
    canon(&o, root, "");
    json_decref(root);
    if (o.failed) {
        free(o.buf);
        return NULL;
    }
    return o.buf;
}

int ts_avro_fingerprint(const char *schema_json, uint64_t *fp, char *err, size_t errlen) {
    char *c = ts_avro_canonical_form(schema_json, err, errlen);
    if (!c)
        return -1;
    *fp = ts_avro_crc64(c, strlen(c));
    free(c);
    return 0;
}
