/* SPDX-License-Identifier: Apache-2.0 */
/* ts_lsn.c — see ts_lsn.h. */
#include "ts_lsn.h"

#include <stdio.h>

/* One half of an LSN: 1 to 8 hex digits from *p, which moves past them. */
static bool half(const char **p, uint32_t *out) {
    uint32_t v = 0;
    int n = 0;
    for (;; n++) {
        char c = (*p)[n];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            break;
        if (n == 8) /* a ninth digit: pg_lsn refuses it too */
            return false;
        v = v << 4 | (uint32_t)d;
    }
    *p += n;
    *out = v;
    return n > 0;
}

int ts_lsn_parse(const char *text, uint64_t *out) {
    uint32_t hi, lo;
    const char *p = text;
    if (!p || !half(&p, &hi) || *p++ != '/' || !half(&p, &lo) || *p != '\0')
        return -1;
    *out = (uint64_t)hi << 32 | lo;
    return 0;
}

void ts_lsn_format(uint64_t lsn, char out[TS_LSN_TEXT_MAX]) {
    snprintf(out, TS_LSN_TEXT_MAX, "%X/%X", (unsigned)(lsn >> 32), (unsigned)(lsn & 0xffffffffu));
}

uint64_t ts_lsn_raise(_Atomic uint64_t *at, uint64_t lsn) {
    uint64_t seen = atomic_load(at);
    while (seen < lsn) /* a failed exchange reloads `seen` */
        if (atomic_compare_exchange_weak(at, &seen, lsn))
            return lsn;
    return seen;
}
