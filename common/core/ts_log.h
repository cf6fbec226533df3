/* SPDX-License-Identifier: Apache-2.0 */
/* ts_log.h — leveled, one-line-per-event logging to stderr.
 *
 * A line reads: "2026-11-25T01:23:00.123Z info worker event=... key=value".
 * Each line is written with a single write(2), so lines from several
 * threads never interleave. Thread-safe. */
#ifndef TS_LOG_H
#define TS_LOG_H

typedef enum ts_log_level {
    TS_LOG_DEBUG = 0,
    TS_LOG_INFO,
    TS_LOG_WARN,
    TS_LOG_ERROR,
} ts_log_level;

/* Messages below `level` are dropped. Default: TS_LOG_INFO. */
void ts_log_set_level(ts_log_level level);

/* Parses "debug", "info", "warn" or "error". Returns 0, or -1 if unknown. */
int ts_log_parse_level(const char *name, ts_log_level *out);

void ts_log(ts_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define ts_debug(comp, ...) ts_log(TS_LOG_DEBUG, comp, __VA_ARGS__)
#define ts_info(comp, ...) ts_log(TS_LOG_INFO, comp, __VA_ARGS__)
#define ts_warn(comp, ...) ts_log(TS_LOG_WARN, comp, __VA_ARGS__)
#define ts_error(comp, ...) ts_log(TS_LOG_ERROR, comp, __VA_ARGS__)

#endif
