/* SPDX-License-Identifier: Apache-2.0 */
/* preload.c — turnstile-preload: writes commands straight into the commands
 * topic, for the benchmark's worker-only phase: E CreateEvent commands, then
 * N Register commands (unique emails) spread over those events. Event ids go
 * to --events-out. Configuration (brokers, topic prefix) as for the services.
 *
 *   turnstile-preload --events 1 --capacity 10000 --n 50000 --events-out ids.txt */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_codec.h"
#include "ts_config.h"
#include "ts_kafka.h"
#include "ts_time.h"
#include "ts_uuid.h"

static void produce(rd_kafka_t *rk, const ts_config *cfg, ts_codec *codec, const ts_command *c) {
    uint8_t buf[TS_MESSAGE_BYTES_MAX];
    size_t len;
    if (ts_codec_encode_command(codec, c, buf, sizeof buf, &len)) {
        fprintf(stderr, "turnstile-preload: cannot encode\n");
        exit(1);
    }
    rd_kafka_resp_err_t e;
    while ((e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(cfg->topic_commands),
                                  RD_KAFKA_V_KEY(c->event_id, strlen(c->event_id)),
                                  RD_KAFKA_V_VALUE(buf, len),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
           RD_KAFKA_RESP_ERR__QUEUE_FULL)
        rd_kafka_poll(rk, 50);
    if (e) {
        fprintf(stderr, "turnstile-preload: %s\n", rd_kafka_err2str(e));
        exit(1);
    }
}

int main(int argc, char **argv) {
    long n = 10000, events = 1, capacity = 1000;
    const char *out = "events.txt", *run = "0";
    static struct option opts[] = {{"n", 1, 0, 'n'},        {"events", 1, 0, 'e'},
                                   {"capacity", 1, 0, 'k'}, {"events-out", 1, 0, 'o'},
                                   {"run", 1, 0, 'r'},      {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "n:e:k:o:r:", opts, NULL)) != -1) {
        switch (o) {
        case 'n': n = atol(optarg); break;
        case 'e': events = atol(optarg); break;
        case 'k': capacity = atol(optarg); break;
        case 'o': out = optarg; break;
        case 'r': run = optarg; break;
        default: return 2;
        }
    }
    ts_config cfg;
    char err[512];
    if (ts_config_load(&cfg, err, sizeof err)) {
        fprintf(stderr, "turnstile-preload: %s\n", err);
        return 2;
    }
    ts_codec *codec = ts_codec_new(err, sizeof err);
    rd_kafka_t *rk =
        codec ? ts_kafka_producer_new(&cfg, "turnstile-preload", err, sizeof err) : NULL;
    if (!rk) {
        fprintf(stderr, "turnstile-preload: %s\n", err);
        return 1;
    }
    FILE *ids = fopen(out, "w");
    char(*event_ids)[TS_UUID_LEN + 1] = calloc((size_t)events, sizeof *event_ids);
    ts_command c;
    for (long e = 0; e < events; e++) {
        memset(&c, 0, sizeof c);
        c.type = TS_CMD_CREATE_EVENT;
        ts_uuid_new(c.command_id);
        ts_uuid_new(c.event_id);
        c.issued_at_ms = ts_now_ms();
        snprintf(c.u.create.title, sizeof c.u.create.title, "Bench %ld", e);
        snprintf(c.u.create.location, sizeof c.u.create.location, "Hall %ld", e % 7);
        c.u.create.starts_at_ms = ts_now_ms() + 86400000LL * 30;
        c.u.create.capacity = capacity;
        produce(rk, &cfg, codec, &c);
        strcpy(event_ids[e], c.event_id);
        fprintf(ids, "%s\n", c.event_id);
    }
    fclose(ids);
    for (long i = 0; i < n; i++) {
        memset(&c, 0, sizeof c);
        c.type = TS_CMD_REGISTER;
        ts_uuid_new(c.command_id);
        strcpy(c.event_id, event_ids[i % events]);
        c.issued_at_ms = ts_now_ms();
        snprintf(c.reply_topic, sizeof c.reply_topic, "%s", cfg.topic_replies);
        c.reply_partition = 0;
        snprintf(c.u.reg.name, sizeof c.u.reg.name, "Bench %ld", i);
        snprintf(c.u.reg.email, sizeof c.u.reg.email, "p%s-%ld@bench.example", run, i);
        produce(rk, &cfg, codec, &c);
    }
    rd_kafka_resp_err_t e = rd_kafka_flush(rk, 60000);
    rd_kafka_destroy(rk);
    ts_codec_free(codec);
    free(event_ids);
    if (e) {
        fprintf(stderr, "turnstile-preload: flush: %s\n", rd_kafka_err2str(e));
        return 1;
    }
    printf("preloaded %ld events and %ld registrations\n", events, n);
    return 0;
}
