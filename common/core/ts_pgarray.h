/* SPDX-License-Identifier: Apache-2.0 */
/* ts_pgarray.h — one-dimensional PostgreSQL arrays in the binary wire
 * format, built in place, for passing a batch's worth of values as one
 * parameter (`unnest($1::uuid[], ...)`).
 *
 * The binary format spares the server the text parsing of every element
 * (array_in and uuid_in took a seventh of PostgreSQL's time in a burst) and
 * the client its quoting. The buffer is kept across resets: a steady state
 * allocates nothing.
 *
 * Elements must be of the array's type; a mismatch, an unparsable UUID or a
 * failed allocation marks the array failed, and ts_pgarray_finish() then
 * returns NULL: never an array that silently lacks an element. */
#ifndef TS_PGARRAY_H
#define TS_PGARRAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The element types' OIDs (pg_type.oid, fixed since PostgreSQL 8.x). */
enum {
    TS_OID_BYTEA = 17,
    TS_OID_INT8 = 20,
    TS_OID_INT4 = 23,
    TS_OID_TEXT = 25,
    TS_OID_TIMESTAMPTZ = 1184,
    TS_OID_UUID = 2950,
};

typedef enum ts_pgarray_error {
    TS_PGARRAY_OK = 0,
    TS_PGARRAY_NOMEM,   /* an allocation failed */
    TS_PGARRAY_INVALID, /* a value that is not of the array's type */
} ts_pgarray_error;

typedef struct ts_pgarray {
    uint8_t *buf;
    size_t len, cap;
    uint32_t n; /* elements */
    uint32_t elem_oid;
    bool has_null;
    ts_pgarray_error error;
} ts_pgarray;

/* Empties the array and sets its element type. */
void ts_pgarray_reset(ts_pgarray *a, uint32_t elem_oid);

void ts_pgarray_int4(ts_pgarray *a, int32_t v);
void ts_pgarray_int8(ts_pgarray *a, int64_t v);
/* SQL NULL, in an array of any type. */
void ts_pgarray_null(ts_pgarray *a);
/* `s` NULL adds SQL NULL. */
void ts_pgarray_text(ts_pgarray *a, const char *s);
/* A UUID in its 36-character text form. */
void ts_pgarray_uuid(ts_pgarray *a, const char *text);
/* `len` bytes; `p` NULL adds SQL NULL. */
void ts_pgarray_bytea(ts_pgarray *a, const void *p, size_t len);
/* Milliseconds since the Unix epoch. */
void ts_pgarray_timestamptz_ms(ts_pgarray *a, int64_t unix_ms);

/* The array's bytes (valid until the next change) and their length, or
 * NULL if it failed. */
const char *ts_pgarray_finish(ts_pgarray *a, int *len);

void ts_pgarray_free(ts_pgarray *a);

#endif
