/* metrics.c — see metrics.h. */
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>

#include "ts_statusd.h"

char *ts_metrics_render(const ts_metrics *m) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    fprintf(f, "# HELP turnstile_http_requests_total HTTP responses by status class.\n"
               "# TYPE turnstile_http_requests_total counter\n");
    for (int c = 1; c <= 5; c++)
        fprintf(f, "turnstile_http_requests_total{class=\"%dxx\"} %lu\n", c,
                atomic_load_explicit(&m->requests[c], memory_order_relaxed));
    const struct {
        const char *name, *help, *type;
        unsigned long value;
    } rows[] = {
        {"turnstile_commands_produced_total", "Commands produced to Kafka.", "counter",
         atomic_load_explicit(&m->commands_produced, memory_order_relaxed)},
        {"turnstile_produce_failures_total", "Commands Kafka did not take (answered 503).",
         "counter", atomic_load_explicit(&m->produce_failures, memory_order_relaxed)},
        {"turnstile_replies_received_total", "Replies read from this instance's partition.",
         "counter", atomic_load_explicit(&m->replies_received, memory_order_relaxed)},
        {"turnstile_replies_unmatched_total", "Replies no request here was waiting for.", "counter",
         atomic_load_explicit(&m->replies_unmatched, memory_order_relaxed)},
        {"turnstile_accepted_total", "Requests answered 202 at the reply deadline.", "counter",
         atomic_load_explicit(&m->accepted_202, memory_order_relaxed)},
        {"turnstile_rate_limited_total", "Writes refused by a rate limit (429).", "counter",
         atomic_load_explicit(&m->rate_limited, memory_order_relaxed)},
        {"turnstile_unauthorized_total", "Requests refused for want of a key or token (401, 403).",
         "counter", atomic_load_explicit(&m->unauthorized, memory_order_relaxed)},
        {"turnstile_requests_cut_total",
         "Connections shut down with a request still unanswered at TS_REQUEST_TIMEOUT_S.",
         "counter", atomic_load_explicit(&m->requests_cut, memory_order_relaxed)},
        {"turnstile_waiting_requests", "Requests waiting for a reply.", "gauge",
         (unsigned long)atomic_load_explicit(&m->waiting, memory_order_relaxed)},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        ts_metric_print(f, rows[i].name, rows[i].help, rows[i].type, rows[i].value);
    ts_histogram_print(f, "turnstile_write_latency_ms", "A write's request to its answer (ms).",
                       &m->write_latency);
    ts_histogram_print(f, "turnstile_command_produced_ms",
                       "Command issued to acknowledged by Kafka (ms).", &m->produced);
    ts_histogram_print(f, "turnstile_command_to_applied_ms",
                       "Command issued to applied by the worker (ms).", &m->to_applied);
    ts_histogram_print(f, "turnstile_applied_to_reply_ms",
                       "Command applied to its reply read by this instance (ms).", &m->to_reply);
    ts_histogram_print(f, "turnstile_resume_ms", "Reply read to its request resumed (ms).",
                       &m->resume);
    fclose(f);
    return text;
}
