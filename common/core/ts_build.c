/* SPDX-License-Identifier: Apache-2.0 */
/* ts_build.c — see ts_build.h. CMake defines TS_BUILD_VERSION and
 * TS_BUILD_COMMIT for this file alone: a new commit rebuilds nothing else. */
#include "ts_build.h"

#include "ts_prometheus.h"

#ifndef TS_BUILD_VERSION
#define TS_BUILD_VERSION "unknown"
#endif
#ifndef TS_BUILD_COMMIT
#define TS_BUILD_COMMIT "unknown"
#endif

const char *ts_build_version(void) {
    return TS_BUILD_VERSION;
}

const char *ts_build_commit(void) {
    return TS_BUILD_COMMIT;
}

/* A label value as the text format wants it: \, " and newline escaped. */
static void print_label_value(FILE *out, const char *v) {
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            fprintf(out, "\\%c", *v);
        else if (*v == '\n')
            fprintf(out, "\\n");
        else
            fprintf(out, "%c", *v);
    }
}

void ts_build_info_print(FILE *out) {
    ts_metric_head(out, "turnstile_build_info",
                   "Always 1; its labels say which version and commit this binary was built from.",
                   "gauge");
    fprintf(out, "turnstile_build_info{version=\"");
    print_label_value(out, ts_build_version());
    fprintf(out, "\",commit=\"");
    print_label_value(out, ts_build_commit());
    fprintf(out, "\"} 1\n");
}
