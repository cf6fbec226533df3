/* SPDX-License-Identifier: Apache-2.0 */
/* ts_lsn.h — PostgreSQL's write-ahead log positions (LSNs): a byte offset
 * into the WAL, which only grows, printed by PostgreSQL as two hexadecimal
 * numbers, the high and the low 32 bits: "0/16B3748". A commit's position
 * is where its record ends; a replica that has replayed up to a position
 * (pg_last_wal_replay_lsn()) shows every transaction committed before it.
 * Positions compare as plain integers. Thread-safe. */
#ifndef TS_LSN_H
#define TS_LSN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* "FFFFFFFF/FFFFFFFF" and its NUL */
#define TS_LSN_TEXT_MAX 18

/* An LSN in PostgreSQL's text form, as pg_lsn's input takes it: 1 to 8
 * hexadecimal digits (either case), '/', 1 to 8 more, and nothing else (no
 * sign, no space). 0, or -1 with *out untouched when `text` is not one (or
 * is NULL). */
int ts_lsn_parse(const char *text, uint64_t *out);

/* `lsn` as PostgreSQL prints it ("%X/%X": uppercase, no leading zeros), in
 * out[TS_LSN_TEXT_MAX]. */
void ts_lsn_format(uint64_t lsn, char out[TS_LSN_TEXT_MAX]);

/* Raises *at to `lsn` if it is lower: the highest position seen, kept by
 * several threads at once. Returns the value *at holds after. */
uint64_t ts_lsn_raise(_Atomic uint64_t *at, uint64_t lsn);

#endif
