/* SPDX-License-Identifier: Apache-2.0 */
/* ts_build.h — what was built: turnstile's version (the CMake project's)
 * and the git commit the build was configured from ("unknown" outside a
 * checkout, or what -DTS_COMMIT said). Both services show them in /metrics
 * as turnstile_build_info, in --help and in their first log line. Pure;
 * thread-safe. */
#ifndef TS_BUILD_H
#define TS_BUILD_H

#include <stdio.h>

/* Static strings, e.g. "0.1.0" and "2327dc2a1b3c". */
const char *ts_build_version(void);
const char *ts_build_commit(void);

/* Prints the gauge turnstile_build_info{version="…",commit="…"} 1, with
 * its HELP and TYPE lines, in the Prometheus text format. */
void ts_build_info_print(FILE *out);

#endif
