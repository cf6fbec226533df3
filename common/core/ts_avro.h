/* SPDX-License-Identifier: Apache-2.0 */
/* ts_avro.h — Avro's single-object encoding: schema fingerprints and framing.
 *
 * A single-object message is the two magic bytes C3 01, the 8-byte
 * CRC-64-AVRO fingerprint of the writer schema's Parsing Canonical Form
 * (little-endian), then the Avro binary body. The fingerprint lets a reader
 * pick the writer schema without a registry. Functions here are pure and
 * thread-safe. */
#ifndef TS_AVRO_H
#define TS_AVRO_H

#include <stddef.h>
#include <stdint.h>

#define TS_AVRO_HEADER_LEN 10

/* CRC-64-AVRO (the Rabin fingerprint of the Avro specification). */
uint64_t ts_avro_crc64(const void *data, size_t len);

/* The Parsing Canonical Form of a schema given as JSON text. Returns a
 * string the caller frees, or NULL with a message in `err`. */
char *ts_avro_canonical_form(const char *schema_json, char *err, size_t errlen);

/* CRC-64-AVRO of the canonical form. Returns 0, or -1 with `err` set. */
int ts_avro_fingerprint(const char *schema_json, uint64_t *out, char *err, size_t errlen);

/* Writes the 10-byte header for a body written with schema `fingerprint`. */
void ts_avro_write_header(uint8_t out[TS_AVRO_HEADER_LEN], uint64_t fingerprint);

/* Splits a message into fingerprint and body. Returns 0, or -1 when the
 * message is shorter than a header or lacks the magic bytes. */
int ts_avro_read_header(const void *msg, size_t len, uint64_t *fingerprint);

#endif
