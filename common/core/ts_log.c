/* SPDX-License-Identifier: Apache-2.0 */
/* ts_log.c — see ts_log.h. */
#include "ts_log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_int min_level = TS_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void ts_log_set_level(ts_log_level level) {
    atomic_store(&min_level, (int)level);
}

int ts_log_parse_level(const char *name, ts_log_level *out) {
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (ts_log_level)i;
            return 0;
        }
    }
    return -1;
}

void ts_log(ts_log_level level, const char *component, const char *fmt, ...) {
    if ((int)level < atomic_load(&min_level))
        return;

    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof line - (size_t)n, ".%03ldZ %s %s ", (long)(tv.tv_usec / 1000),
                  level_names[level], component);

    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    /* A line too long is cut, never split: it stays one event. */
    n = (m < 0 || (size_t)n + (size_t)m >= sizeof line - 1) ? (int)sizeof line - 2 : n + m;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
