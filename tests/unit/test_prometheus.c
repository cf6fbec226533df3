/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of ts_prometheus: latency histograms are exposed in seconds
 * (Prometheus's base unit), with buckets from 1 ms to 10 s, cumulative, and
 * their sum in seconds however they were observed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ts_prometheus.h"

static char *render(const ts_histogram *h) {
    ts_metrics_page page;
    FILE *f = ts_metrics_page_open(&page);
    assert_non_null(f);
    ts_histogram_print(f, "t_seconds", "A test.", h);
    char *text = ts_metrics_page_close(&page);
    assert_non_null(text);
    return text;
}

static void buckets_are_seconds_from_a_millisecond_to_ten_seconds(void **state) {
    (void)state;
    static ts_histogram h; /* zeroed */
    char *text = render(&h);
    const char *bounds[] = {"0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
                            "0.25",  "0.5",    "1",     "2.5",  "5",     "10",   "+Inf"};
    const char *p = text;
    for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++) {
        char line[64];
        snprintf(line, sizeof line, "t_seconds_bucket{le=\"%s\"} 0\n", bounds[i]);
        const char *at = strstr(p, line);
        assert_non_null(at); /* in this order */
        p = at + strlen(line);
    }
    assert_non_null(strstr(text, "# TYPE t_seconds histogram\n"));
    assert_non_null(strstr(text, "\nt_seconds_sum 0.000000\nt_seconds_count 0\n"));
    free(text);
}

static void an_observation_counts_in_every_bucket_at_or_above_it(void **state) {
    (void)state;
    static ts_histogram h;
    ts_histogram_observe_us(&h, 2500);  /* on a bound: that bucket */
    ts_histogram_observe_us(&h, 2501);  /* just above: the next */
    ts_histogram_observe(&h, 7);        /* ms */
    ts_histogram_observe(&h, 60000);    /* beyond 10 s */
    ts_histogram_observe_us(&h, -5000); /* clocks of two machines: 0 */
    char *text = render(&h);
    assert_non_null(strstr(text, "t_seconds_bucket{le=\"0.001\"} 1\n"));
    assert_non_null(strstr(text, "t_seconds_bucket{le=\"0.0025\"} 2\n"));
    assert_non_null(strstr(text, "t_seconds_bucket{le=\"0.005\"} 3\n"));
    assert_non_null(strstr(text, "t_seconds_bucket{le=\"0.01\"} 4\n"));
    assert_non_null(strstr(text, "t_seconds_bucket{le=\"10\"} 4\n"));
    assert_non_null(strstr(text, "t_seconds_bucket{le=\"+Inf\"} 5\n"));
    /* 2.5 ms + 2.501 ms + 7 ms + 60 s */
    assert_non_null(strstr(text, "\nt_seconds_sum 60.012001\nt_seconds_count 5\n"));
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buckets_are_seconds_from_a_millisecond_to_ten_seconds),
        cmocka_unit_test(an_observation_counts_in_every_bucket_at_or_above_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
