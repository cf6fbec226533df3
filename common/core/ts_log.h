/* SPDX-License-Identifier: Apache-2.0 */
/* ts_log.h — leveled, one-line-per-event logging to stderr.
 *
 * In the text format (the default) a line reads:
 *   2026-11-25T01:23:00.123Z info worker event=listening port=4000 err="..."
 * In the JSON format (TS_LOG_FORMAT=json) the same event is one JSON object:
 *   {"ts":"2026-11-25T01:23:00.123Z","level":"info","component":"worker",
 *    "event":"listening","port":"4000","err":"..."}
 * Each line is written with a single write(2), so lines from several
 * threads never interleave. Thread-safe. */
#ifndef TS_LOG_H
#define TS_LOG_H

#include <stdbool.h>
#include <stddef.h>

typedef enum ts_log_level {
    TS_LOG_DEBUG = 0,
    TS_LOG_INFO,
    TS_LOG_WARN,
    TS_LOG_ERROR,
} ts_log_level;

typedef enum ts_log_format {
    TS_LOG_TEXT = 0,
    TS_LOG_JSON,
} ts_log_format;

/* Messages below `level` are dropped. Default: TS_LOG_INFO. */
void ts_log_set_level(ts_log_level level);

/* Parses "debug", "info", "warn" or "error". Returns 0, or -1 if unknown. */
int ts_log_parse_level(const char *name, ts_log_level *out);

/* Default: TS_LOG_TEXT. */
void ts_log_set_format(ts_log_format format);

/* Parses "text" or "json". Returns 0, or -1 if unknown. */
int ts_log_parse_format(const char *name, ts_log_format *out);

void ts_log(ts_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The JSON line of one event, as ts_log writes it: an object with "ts",
 * "level" and "component", then each key=value pair of `msg` as a string
 * member, in order, then a newline. A value in double quotes runs to the
 * quote that ends `msg` or is followed by a space and the next key=; other
 * values to the next space. Values stay strings, numbers too. Text that is
 * no key=value pair goes to "text"; a key met before (or one of the three
 * above) gets a "_" in front. Whatever `msg` holds, the line is one valid
 * JSON object: quotes, backslashes and control characters are escaped,
 * bytes that are not UTF-8 become U+FFFD, and a line that would not fit in
 * `cap` bytes is cut (within a value, never within a character or an
 * escape) and ends with "truncated":true, as it does when `cut` says
 * that `msg` itself was cut already. Returns its length (at most
 * cap - 1: out is NUL-terminated). `cap` must be at least 128. Pure;
 * thread-safe. */
size_t ts_log_json_line(char *out, size_t cap, const char *ts, const char *level,
                        const char *component, const char *msg, bool cut);

#define ts_debug(comp, ...) ts_log(TS_LOG_DEBUG, comp, __VA_ARGS__)
#define ts_info(comp, ...) ts_log(TS_LOG_INFO, comp, __VA_ARGS__)
#define ts_warn(comp, ...) ts_log(TS_LOG_WARN, comp, __VA_ARGS__)
#define ts_error(comp, ...) ts_log(TS_LOG_ERROR, comp, __VA_ARGS__)

#endif
