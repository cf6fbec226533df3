/* SPDX-License-Identifier: Apache-2.0 */
/* ts_time.h — wall-clock milliseconds and ISO 8601 text. Thread-safe. */
#ifndef TS_TIME_H
#define TS_TIME_H

#include <stdint.h>

#define TS_ISO8601_LEN 24 /* "2026-11-25T01:23:00.123Z" */

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t ts_now_ms(void);

/* Milliseconds of a monotonic clock, for deadlines and durations. */
int64_t ts_monotonic_ms(void);
int64_t ts_monotonic_us(void); /* the same clock, in microseconds */

/* Parses "YYYY-MM-DDTHH:MM[:SS[.fraction]]" followed by "Z" or "+HH:MM" /
 * "-HH:MM" (a space may stand for the T; no zone means UTC). Returns 0, or
 * -1 if `s` is not such a time or names an impossible date. */
int ts_time_parse_iso8601(const char *s, int64_t *ms);

/* Formats as "YYYY-MM-DDTHH:MM:SS.mmmZ" into out[TS_ISO8601_LEN + 1]. */
void ts_time_format_iso8601(int64_t ms, char out[TS_ISO8601_LEN + 1]);

#endif
