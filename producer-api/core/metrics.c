/* SPDX-License-Identifier: Apache-2.0 */
/* metrics.c — see metrics.h. One table of the plain counters and gauges,
 * printed by ts_prometheus's renderer; the labelled family and the histograms
 * around it. */
#include "metrics.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "ts_build.h"
#include "ts_prometheus.h"

/* A counter as /metrics reads it (see the rule in metrics.h). */
static unsigned long counter(const atomic_ulong *c) {
    return atomic_load_explicit(c, memory_order_relaxed);
}

char *ts_metrics_render(const ts_metrics *m) {
    ts_metrics_page page;
    FILE *f = ts_metrics_page_open(&page);
    if (!f)
        return NULL;
    ts_build_info_print(f);
    ts_metric_head(f, "turnstile_http_requests_total", "HTTP responses by status class.",
                   "counter");
    for (int c = 1; c <= 5; c++)
        fprintf(f, "turnstile_http_requests_total{class=\"%dxx\"} %lu\n", c,
                counter(&m->requests[c]));
    const ts_metric_row rows[] = {
        {"turnstile_commands_produced_total", "Commands produced to Kafka.", "counter",
         counter(&m->commands_produced)},
        {"turnstile_commands_sent_at_once_total",
         "Of those, sent with no linger: no other command was waiting for its reply.", "counter",
         counter(&m->commands_at_once)},
        {"turnstile_produce_failures_total", "Commands Kafka did not take (answered 503).",
         "counter", counter(&m->produce_failures)},
        {"turnstile_replies_received_total", "Replies read from this instance's partition.",
         "counter", counter(&m->replies_received)},
        {"turnstile_replies_unmatched_total", "Replies no request here was waiting for.", "counter",
         counter(&m->replies_unmatched)},
        {"turnstile_accepted_total", "Requests answered 202 at the reply deadline.", "counter",
         counter(&m->accepted_202)},
        {"turnstile_rate_limited_total", "Writes refused by a rate limit (429).", "counter",
         counter(&m->rate_limited)},
        {"turnstile_unauthorized_total", "Requests refused for want of a key or token (401, 403).",
         "counter", counter(&m->unauthorized)},
        {"turnstile_requests_cut_total",
         "Connections shut down with a request still unanswered at TS_REQUEST_TIMEOUT_S.",
         "counter", counter(&m->requests_cut)},
        {"turnstile_waiting_requests", "Requests waiting for a reply.", "gauge",
         (unsigned long)atomic_load_explicit(&m->waiting, memory_order_relaxed)},
        {"turnstile_reads_refused_total",
         "Reads answered 503 at once: TS_READ_QUEUE reads were waiting already.", "counter",
         counter(&m->reads_refused)},
        {"turnstile_reads_failed_total",
         "Reads answered 503: PostgreSQL unreachable or silent for TS_PG_TIMEOUT_MS.", "counter",
         counter(&m->reads_failed)},
        {"turnstile_reads_waiting", "Reads queued or running.", "gauge",
         (unsigned long)atomic_load_explicit(&m->reads_waiting, memory_order_relaxed)},
        {"turnstile_database_deadlines_total",
         "Calls to PostgreSQL cut at TS_PG_TIMEOUT_MS for want of an answer.", "counter",
         counter(&m->db_deadlines)},
        {"turnstile_ready", "1 when /readyz answers 200; 0 when it names what is not ready.",
         "gauge", counter(&m->ready)},
        {"turnstile_reply_partition", "The partition of the reply topic new commands name.",
         "gauge", (unsigned long)atomic_load_explicit(&m->reply_partition, memory_order_relaxed)},
        {"turnstile_reply_partition_claimed",
         "1 while this instance holds its reply partition's claim in PostgreSQL; 0: it may share"
         " the partition with another.",
         "gauge", counter(&m->reply_claimed)},
    };
    ts_metric_rows_print(f, rows, sizeof rows / sizeof rows[0]);
    ts_metric_head(f, "turnstile_reads_total",
                   "Reads answered, by the database that answered them: the primary"
                   " (TS_PG_DSN) or the replica (TS_PG_READ_DSN).",
                   "counter");
    fprintf(f, "turnstile_reads_total{database=\"primary\"} %lu\n", counter(&m->reads_primary));
    fprintf(f, "turnstile_reads_total{database=\"replica\"} %lu\n", counter(&m->reads_replica));
    ts_metric_head(f, "turnstile_read_fallbacks_total",
                   "Reads of data sent to the primary although a replica is set: it had not"
                   " replayed what the read must see (lag), or it failed or rests after failing"
                   " (unavailable).",
                   "counter");
    fprintf(f, "turnstile_read_fallbacks_total{reason=\"lag\"} %lu\n", counter(&m->fallback_lag));
    fprintf(f, "turnstile_read_fallbacks_total{reason=\"unavailable\"} %lu\n",
            counter(&m->fallback_down));
    ts_histogram_print(f, "turnstile_write_latency_seconds",
                       "A write's request to its answer (seconds).", &m->write_latency);
    ts_histogram_print(f, "turnstile_command_produced_seconds",
                       "Command issued to acknowledged by Kafka (seconds).", &m->produced);
    ts_histogram_print(f, "turnstile_command_to_applied_seconds",
                       "Command issued to applied by the worker (seconds).", &m->to_applied);
    ts_histogram_print(f, "turnstile_applied_to_reply_seconds",
                       "Command applied to its reply read by this instance (seconds).",
                       &m->to_reply);
    ts_histogram_print(f, "turnstile_resume_seconds",
                       "Reply read to its request resumed (seconds).", &m->resume);
    return ts_metrics_page_close(&page);
}
