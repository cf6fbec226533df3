/* SPDX-License-Identifier: Apache-2.0 */
/* ts_pgarray.c — see ts_pgarray.h.
 *
 * The layout (array_recv in PostgreSQL's arrayfuncs.c), all integers in
 * network byte order:
 *   int32 ndim, int32 flags (1: has NULLs), uint32 element type,
 *   per dimension: int32 size, int32 lower bound (1),
 *   per element: int32 length (-1: NULL), then its bytes (the type's
 *   binary "send" form). */
#include "ts_pgarray.h"

#include <stdlib.h>
#include <string.h>

#include "ts_uuid.h"

enum { HEADER = 20 }; /* ndim, flags, type, size, lower bound */

/* Microseconds from the Unix epoch to PostgreSQL's (2000-01-01). */
#define PG_EPOCH_US INT64_C(946684800000000)

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v) {
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

/* Makes room for `more` bytes: 0, or -1 when the array failed (before, or
 * now for want of memory). */
static int reserve(ts_pgarray *a, size_t more) {
    if (a->error)
        return -1;
    if (a->len + more <= a->cap)
        return 0;
    size_t cap = a->cap ? a->cap : 4096;
    while (cap < a->len + more)
        cap *= 2;
    uint8_t *p = realloc(a->buf, cap);
    if (!p) {
        a->error = TS_PGARRAY_NOMEM;
        return -1;
    }
    a->buf = p;
    a->cap = cap;
    return 0;
}

/* Starts an element of `size` bytes (-1: NULL) of type `oid`; where its
 * bytes go, or NULL if the array failed. */
static uint8_t *element(ts_pgarray *a, uint32_t oid, int32_t size) {
    if (!a->error && oid != a->elem_oid)
        a->error = TS_PGARRAY_INVALID;
    if (reserve(a, 4 + (size > 0 ? (size_t)size : 0)))
        return NULL;
    put32(a->buf + a->len, (uint32_t)size);
    uint8_t *p = a->buf + a->len + 4;
    a->len += 4 + (size > 0 ? (size_t)size : 0);
    a->n++;
    return p;
}

void ts_pgarray_reset(ts_pgarray *a, uint32_t elem_oid) {
    a->len = 0;
    a->n = 0;
    a->elem_oid = elem_oid;
    a->has_null = false;
    a->error = TS_PGARRAY_OK;
    if (reserve(a, HEADER) == 0)
        a->len = HEADER;
}

void ts_pgarray_int4(ts_pgarray *a, int32_t v) {
    uint8_t *p = element(a, TS_OID_INT4, 4);
    if (p)
        put32(p, (uint32_t)v);
}

void ts_pgarray_int8(ts_pgarray *a, int64_t v) {
    uint8_t *p = element(a, TS_OID_INT8, 8);
    if (p)
        put64(p, (uint64_t)v);
}

void ts_pgarray_null(ts_pgarray *a) {
    a->has_null = true;
    element(a, a->elem_oid, -1);
}

void ts_pgarray_text(ts_pgarray *a, const char *s) {
    if (!s) {
        a->has_null = true;
        element(a, TS_OID_TEXT, -1);
        return;
    }
    size_t n = strlen(s);
    if (n > INT32_MAX) {
        a->error = TS_PGARRAY_INVALID;
        return;
    }
    uint8_t *p = element(a, TS_OID_TEXT, (int32_t)n);
    if (p)
        memcpy(p, s, n);
}

void ts_pgarray_bytea(ts_pgarray *a, const void *v, size_t len) {
    if (!v) {
        a->has_null = true;
        element(a, TS_OID_BYTEA, -1);
        return;
    }
    if (len > INT32_MAX) {
        a->error = TS_PGARRAY_INVALID;
        return;
    }
    uint8_t *p = element(a, TS_OID_BYTEA, (int32_t)len);
    if (p && len)
        memcpy(p, v, len);
}

void ts_pgarray_uuid(ts_pgarray *a, const char *text) {
    unsigned char u[16];
    if (!text || ts_uuid_parse(text, u)) {
        a->error = a->error ? a->error : TS_PGARRAY_INVALID;
        return;
    }
    uint8_t *p = element(a, TS_OID_UUID, 16);
    if (p)
        memcpy(p, u, 16);
}

void ts_pgarray_timestamptz_ms(ts_pgarray *a, int64_t unix_ms) {
    uint8_t *p = element(a, TS_OID_TIMESTAMPTZ, 8);
    if (p)
        put64(p, (uint64_t)(unix_ms * 1000 - PG_EPOCH_US));
}

const char *ts_pgarray_finish(ts_pgarray *a, int *len) {
    if (a->error || a->len < HEADER || a->len > INT32_MAX)
        return NULL;
    if (a->n == 0) { /* no dimension at all: '{}' */
        put32(a->buf, 0);
        put32(a->buf + 4, 0);
        put32(a->buf + 8, a->elem_oid);
        *len = 12;
        return (const char *)a->buf;
    }
    put32(a->buf, 1);
    put32(a->buf + 4, a->has_null ? 1 : 0);
    put32(a->buf + 8, a->elem_oid);
    put32(a->buf + 12, a->n);
    put32(a->buf + 16, 1);
    *len = (int)a->len;
    return (const char *)a->buf;
}

void ts_pgarray_free(ts_pgarray *a) {
    free(a->buf);
    memset(a, 0, sizeof *a);
}
