/* SPDX-License-Identifier: Apache-2.0 */
/* Integration: commands produced to the real Kafka broker are applied by
 * the real worker binary to the real PostgreSQL, and answered on the reply
 * topic. The stack must be up (scripts/stack up); if it is not, the group
 * setup fails and so does this test. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include <libpq-fe.h>

#include "harness.h"
#include "http_client.h"
#include "ts_avro.h"
#include "ts_secret.h"
#include "ts_time.h"
#include "ts_uuid.h"

#define WAIT_MS 60000 /* a first reply includes the worker joining its group */

static it_env env;

static int setup(void **state) {
    (void)state;
    if (it_setup(&env, 3, 1))
        return -1;
    /* every batch without a cancellation is first tried without its
     * lookups: every test below goes through that path and its undoing */
    setenv("TS_OPTIMISM_PAUSE", "0", 1);
    it_start_worker(&env, 0);
    unsetenv("TS_OPTIMISM_PAUSE");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    it_teardown(&env);
    return 0;
}

/* Creates an event through Kafka and returns its id in id[37]. */
static void create_event(char id[TS_UUID_LEN + 1], int64_t capacity, int64_t starts_at_ms) {
    ts_uuid_new(id);
    ts_command c = it_command(&env, TS_CMD_CREATE_EVENT, id);
    snprintf(c.u.create.title, sizeof c.u.create.title, "Launch party");
    snprintf(c.u.create.location, sizeof c.u.create.location, "Hall A");
    c.u.create.starts_at_ms = starts_at_ms;
    c.u.create.capacity = capacity;
    it_produce(&env, &c);
    ts_reply r = it_await_reply(&env, c.command_id, 1, WAIT_MS);
    assert_string_equal(ts_outcome_name(r.outcome), "CREATED");
}

static ts_reply do_register(const char *event_id, const char *email) {
    ts_command c = it_registration(&env, event_id, "Someone", email);
    it_produce(&env, &c);
    return it_await_reply(&env, c.command_id, 1, WAIT_MS);
}

static long long registrations(const char *event_id) {
    const char *p[] = {event_id};
    return it_query_ll(&env, "SELECT count(*) FROM registrations WHERE event_id = $1", 1, p);
}

static long long counter(const char *event_id) {
    const char *p[] = {event_id};
    return it_query_ll(&env, "SELECT registered FROM events WHERE id = $1", 1, p);
}

static int64_t in_days(int days) {
    return ts_now_ms() + (int64_t)days * 86400000;
}

static void a_created_event_is_written_to_postgresql(void **state) {
    (void)state;
    char id[TS_UUID_LEN + 1];
    create_event(id, 42, in_days(30));
    const char *p[] = {id};
    assert_int_equal(it_query_ll(&env, "SELECT capacity FROM events WHERE id = $1", 1, p), 42);
    assert_int_equal(counter(id), 0);
    assert_int_equal(it_query_ll(&env,
                                 "SELECT count(*) FROM processed_commands"
                                 " WHERE event_id = $1 AND outcome = 'CREATED'",
                                 1, p),
                     1);
}

static void a_registration_is_applied_and_answered_with_the_user_id(void **state) {
    (void)state;
    char id[TS_UUID_LEN + 1], uid[TS_UUID_LEN + 1];
    create_event(id, 10, in_days(30));
    ts_reply r = do_register(id, "Ada@Example.org");
    assert_string_equal(ts_outcome_name(r.outcome), "REGISTERED");
    ts_uuid_for_email("ada@example.org", uid);
    assert_string_equal(r.user_id, uid);
    assert_int_equal(registrations(id), 1);
    assert_int_equal(counter(id), 1);
}

static void the_original_edge_cases_are_refused(void **state) {
    (void)state;
    char id[TS_UUID_LEN + 1], past[TS_UUID_LEN + 1], unknown[TS_UUID_LEN + 1];
    create_event(id, 1, in_days(30));
    assert_string_equal(ts_outcome_name(do_register(id, "a@example.org").outcome), "REGISTERED");
    /* duplicate, whatever the case of the email */
    ts_reply r = do_register(id, "A@EXAMPLE.ORG");
    assert_string_equal(ts_outcome_name(r.outcome), "ALREADY_REGISTERED");
    assert_string_equal(r.message, "User already registered");
    /* full */
    r = do_register(id, "b@example.org");
    assert_string_equal(ts_outcome_name(r.outcome), "EVENT_FULL");
    assert_string_equal(r.message, "Event is full");
    /* past */
    create_event(past, 5, in_days(-1));
    r = do_register(past, "c@example.org");
    assert_string_equal(ts_outcome_name(r.outcome), "PAST_EVENT");
    assert_string_equal(r.message, "Cannot register for past events");
    /* unknown event */
    ts_uuid_new(unknown);
    r = do_register(unknown, "d@example.org");
    assert_string_equal(ts_outcome_name(r.outcome), "EVENT_NOT_FOUND");
    assert_int_equal(registrations(id), 1);
    assert_int_equal(counter(id), 1);
    assert_int_equal(registrations(past), 0);
}

static void cancel_frees_the_seat_for_someone_else(void **state) {
    (void)state;
    char id[TS_UUID_LEN + 1];
    create_event(id, 2, in_days(30));
    ts_reply a = do_register(id, "first@example.org");
    ts_reply b = do_register(id, "second@example.org");
    assert_string_equal(ts_outcome_name(b.outcome), "REGISTERED");

    ts_command c = it_command(&env, TS_CMD_CANCEL, id);
    strcpy(c.u.cancel.user_id, a.user_id);
    it_produce(&env, &c);
    assert_string_equal(ts_outcome_name(it_await_reply(&env, c.command_id, 1, WAIT_MS).outcome),
                        "CANCELLED");
    /* cancelling again finds nothing */
    c = it_command(&env, TS_CMD_CANCEL, id);
    strcpy(c.u.cancel.user_id, a.user_id);
    it_produce(&env, &c);
    assert_string_equal(ts_outcome_name(it_await_reply(&env, c.command_id, 1, WAIT_MS).outcome),
                        "REGISTRATION_NOT_FOUND");
    assert_int_equal(counter(id), 1);
    /* the freed seat goes to a third person, then the event is full again */
    assert_string_equal(ts_outcome_name(do_register(id, "third@example.org").outcome),
                        "REGISTERED");
    assert_string_equal(ts_outcome_name(do_register(id, "fourth@example.org").outcome),
                        "EVENT_FULL");
    assert_int_equal(registrations(id), 2);
    assert_int_equal(counter(id), 2);
    const char *p[] = {id};
    /* seats stay dense: exactly 1 and 2 */
    assert_int_equal(
        it_query_ll(&env, "SELECT sum(seat) FROM registrations WHERE event_id = $1", 1, p), 3);
}

/* Registrations, cancellations and a repeated command sent in one go (one
 * batch, most likely): the outcomes are those of applying them one by one. */
static void a_mixed_burst_gives_the_outcomes_of_serial_application(void **state) {
    (void)state;
    char id[TS_UUID_LEN + 1], uid_a[TS_UUID_LEN + 1], uid_b[TS_UUID_LEN + 1];
    create_event(id, 2, in_days(30));
    ts_uuid_for_email("a@mixed.example", uid_a);
    ts_uuid_for_email("b@mixed.example", uid_b);
    ts_command c[8];
    const char *emails[] = {"a@mixed.example",
                            "b@mixed.example",
                            NULL,
                            "c@mixed.example",
                            "a@mixed.example",
                            NULL,
                            NULL,
                            "d@mixed.example"};
    for (int i = 0; i < 8; i++) {
        if (emails[i]) {
            c[i] = it_registration(&env, id, "Mixed", emails[i]);
        } else {
            c[i] = it_command(&env, TS_CMD_CANCEL, id);
            strcpy(c[i].u.cancel.user_id, i == 2 ? uid_a : uid_b);
        }
    }
    c[6] = c[3]; /* the registration of c, sent again */
    it_produce_many(&env, c, 8);
    const char *expect[] = {"REGISTERED", "REGISTERED", "CANCELLED",  "REGISTERED",
                            "EVENT_FULL", "CANCELLED",  "REGISTERED", "REGISTERED"};
    for (int i = 0; i < 8; i++) {
        int nth = i == 6 ? 2 : 1;
        ts_reply r = it_await_reply(&env, c[i].command_id, nth, WAIT_MS);
        assert_string_equal(ts_outcome_name(r.outcome), expect[i]);
    }
    /* left: c and d, in seats 1 and 2 */
    assert_int_equal(registrations(id), 2);
    assert_int_equal(counter(id), 2);
    const char *p[] = {id};
    assert_int_equal(
        it_query_ll(&env, "SELECT sum(seat) FROM registrations WHERE event_id = $1", 1, p), 3);
}

/* Runs SQL that must fail; returns its SQLSTATE in state[6]. */
static void refused(const char *sql, const char *const *params, int n, char state[6]) {
    PGresult *res = PQexecParams(env.pg, sql, n, NULL, params, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR);
    snprintf(state, 6, "%s", PQresultErrorField(res, PG_DIAG_SQLSTATE));
    PQclear(res);
}

/* Whatever a worker might get wrong, PostgreSQL itself refuses more
 * registrations than seats, a second one per person, and a registration
 * that lies about its event's capacity. */
static void the_database_refuses_overselling_whatever_the_code(void **state) {
    (void)state;
    char id[TS_UUID_LEN + 1], st[6];
    create_event(id, 1, in_days(30));
    assert_string_equal(ts_outcome_name(do_register(id, "only@db.example").outcome), "REGISTERED");
    const char *insert = "INSERT INTO registrations (event_id, user_id, name, seat, capacity,"
                         " command_id) VALUES ($1, gen_random_uuid(), 'X', $2, $3,"
                         " gen_random_uuid())";
    const char *seat2[] = {id, "2", "1"}; /* past the capacity */
    refused(insert, seat2, 3, st);
    assert_string_equal(st, "23514");     /* check_violation */
    const char *seat1[] = {id, "1", "1"}; /* a seat taken */
    refused(insert, seat1, 3, st);
    assert_string_equal(st, "23505");      /* unique_violation */
    const char *lie[] = {id, "2", "1000"}; /* a capacity that is not the event's */
    refused(insert, lie, 3, st);
    assert_string_equal(st, "23503"); /* foreign_key_violation */
    char unknown[TS_UUID_LEN + 1];
    ts_uuid_new(unknown);
    const char *nowhere[] = {unknown, "1", "1"};
    refused(insert, nowhere, 3, st);
    assert_string_equal(st, "23503");
    const char *ev[] = {id};
    refused("DELETE FROM events WHERE id = $1", ev, 1, st); /* it has registrations */
    assert_string_equal(st, "23503");
    assert_int_equal(registrations(id), 1);

    /* a capacity below the seats taken is refused; above, it travels */
    char two[TS_UUID_LEN + 1];
    create_event(two, 3, in_days(30));
    do_register(two, "a@shrink.example");
    do_register(two, "b@shrink.example");
    const char *shrink[] = {two};
    refused("UPDATE events SET capacity = 1 WHERE id = $1", shrink, 1, st);
    assert_string_equal(st, "23514");
    PGresult *res = PQexecParams(env.pg, "UPDATE events SET capacity = 5 WHERE id = $1", 1, NULL,
                                 shrink, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    assert_int_equal(
        it_query_ll(&env, "SELECT min(capacity) FROM registrations WHERE event_id = $1", 1, shrink),
        5);
}

/* Held seats share the seats of registrations (sql/005): the same
 * constraints bound them together, whatever a worker writes. */
static void the_database_bounds_held_seats_with_registrations(void **state) {
    (void)state;
    char id[TS_UUID_LEN + 1], st[6];
    create_event(id, 2, in_days(30));
    assert_string_equal(ts_outcome_name(do_register(id, "seated@db.example").outcome),
                        "REGISTERED");
    const char *held = "INSERT INTO registrations (event_id, user_id, name, seat, capacity,"
                       " command_id, held, hold_id) VALUES ($1, gen_random_uuid(), 'H', $2, 2,"
                       " gen_random_uuid(), true, $3)";
    const char *taken[] = {id, "1", "2b5c3a7e-0000-4000-8000-000000000001"};
    refused(held, taken, 3, st); /* the registration's seat */
    assert_string_equal(st, "23505");
    const char *beyond[] = {id, "3", "2b5c3a7e-0000-4000-8000-000000000002"};
    refused(held, beyond, 3, st); /* past the capacity */
    assert_string_equal(st, "23514");
    const char *no_id[] = {id, "2", NULL};
    refused(held, no_id, 3, st); /* a held seat names its hold */
    assert_string_equal(st, "23514");
    const char *ev[] = {id};
    /* the counters: registered + held never above the capacity */
    refused("UPDATE events SET held = 2 WHERE id = $1", ev, 1, st);
    assert_string_equal(st, "23514");
    /* the last seat, held, is fine */
    const char *last[] = {id, "2", "2b5c3a7e-0000-4000-8000-000000000003"};
    PGresult *res = PQexecParams(env.pg, held, 3, NULL, last, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    assert_int_equal(
        it_query_ll(&env, "SELECT count(*) FROM registrations WHERE event_id = $1", 1, ev), 2);
}

static void a_command_delivered_twice_is_applied_once(void **state) {
    (void)state;
    char id[TS_UUID_LEN + 1];
    create_event(id, 10, in_days(30));
    ts_command c = it_registration(&env, id, "Twice", "twice@example.org");
    it_produce(&env, &c);
    it_produce(&env, &c);
    ts_reply first = it_await_reply(&env, c.command_id, 1, WAIT_MS);
    ts_reply second = it_await_reply(&env, c.command_id, 2, WAIT_MS);
    assert_string_equal(ts_outcome_name(first.outcome), "REGISTERED");
    assert_string_equal(ts_outcome_name(second.outcome), "REGISTERED");
    assert_string_equal(first.user_id, second.user_id);
    assert_int_equal(registrations(id), 1);
    assert_int_equal(counter(id), 1);
}

/* A batch tried without its lookups meets a stored registration and a
 * stored command: it is undone and decided again with them, and every
 * outcome is the one serial application gives. */
static void a_batch_meeting_stored_rows_is_decided_again_with_them(void **state) {
    (void)state;
    char id[TS_UUID_LEN + 1];
    create_event(id, 10, in_days(30));
    ts_command first = it_registration(&env, id, "Early", "early@example.org");
    it_produce(&env, &first);
    ts_reply r0 = it_await_reply(&env, first.command_id, 1, WAIT_MS);
    assert_string_equal(ts_outcome_name(r0.outcome), "REGISTERED");

    ts_command batch[] = {
        /* the same person, a new command; someone new; the first, again */
        it_registration(&env, id, "Early again", "EARLY@example.org"),
        it_registration(&env, id, "Late", "late@example.org"),
        first,
    };
    it_produce_many(&env, batch, 3);

    ts_reply again = it_await_reply(&env, batch[0].command_id, 1, WAIT_MS);
    ts_reply late = it_await_reply(&env, batch[1].command_id, 1, WAIT_MS);
    ts_reply replay = it_await_reply(&env, first.command_id, 2, WAIT_MS);
    assert_string_equal(ts_outcome_name(again.outcome), "ALREADY_REGISTERED");
    assert_string_equal(again.user_id, r0.user_id);
    assert_string_equal(ts_outcome_name(late.outcome), "REGISTERED");
    assert_string_equal(ts_outcome_name(replay.outcome), "REGISTERED"); /* its first outcome */
    assert_string_equal(replay.user_id, r0.user_id);
    assert_int_equal(registrations(id), 2);
    assert_int_equal(counter(id), 2);
    const char *p[] = {id};
    assert_int_equal(it_query_ll(&env,
                                 "SELECT count(*) FROM registrations WHERE event_id = $1"
                                 " AND seat BETWEEN 1 AND 2",
                                 1, p),
                     2);
}

/* Another worker moved a partition's stored offset (simulated by hand):
 * this worker's next transaction is fenced, writes nothing, and the worker
 * resumes from the stored offset, skipping what "the other" applied. */
static void a_worker_with_a_stale_offset_is_fenced_and_writes_nothing(void **state) {
    (void)state;
    char id[TS_UUID_LEN + 1];
    create_event(id, 10, in_days(30));
    ts_reply first = do_register(id, "before@fence.example");
    assert_string_equal(ts_outcome_name(first.outcome), "REGISTERED");
    const char *q[] = {first.command_id};
    long long part = it_query_ll(
        &env, "SELECT kafka_partition FROM processed_commands WHERE command_id = $1", 1, q);
    char pbuf[16];
    snprintf(pbuf, sizeof pbuf, "%lld", part);
    const char *p[] = {env.cfg.topic_commands, pbuf};
    it_query_ll(&env,
                "UPDATE consumer_offsets SET next_offset = next_offset + 1"
                " WHERE topic = $1 AND kafka_partition = $2 RETURNING next_offset",
                2, p);

    ts_command skipped = it_registration(&env, id, "Skipped", "skipped@fence.example");
    ts_command after = it_registration(&env, id, "After", "after@fence.example");
    ts_command both[] = {skipped, after};
    it_produce_many(&env, both, 2);
    assert_string_equal(ts_outcome_name(it_await_reply(&env, after.command_id, 1, WAIT_MS).outcome),
                        "REGISTERED");
    const char *s[] = {skipped.command_id};
    assert_int_equal(
        it_query_ll(&env, "SELECT count(*) FROM processed_commands WHERE command_id = $1", 1, s),
        0);
    assert_int_equal(registrations(id), 2); /* before and after */
    assert_int_equal(counter(id), 2);
}

static void a_poison_message_goes_to_the_dlq_and_the_partition_flows_on(void **state) {
    (void)state;
    char id[TS_UUID_LEN + 1], garbage[96], reason[64];
    create_event(id, 10, in_days(30));
    /* same key, so same partition, just before a valid command */
    snprintf(garbage, sizeof garbage, "not avro at all %s", id);
    it_produce_raw(&env, id, garbage, strlen(garbage));
    assert_string_equal(ts_outcome_name(do_register(id, "after@example.org").outcome),
                        "REGISTERED");
    it_await_dead_letter(&env, garbage, strlen(garbage), reason, sizeof reason, WAIT_MS);
    assert_string_equal(reason, "no_header");

    /* a decodable command that breaks a rule: dead letter and an INVALID reply */
    ts_command c = it_registration(&env, id, "Bad", "not-an-email");
    uint8_t buf[TS_MESSAGE_BYTES_MAX];
    size_t len;
    assert_int_equal(ts_codec_encode_command(env.codec, &c, buf, sizeof buf, &len), TS_CODEC_OK);
    it_produce_raw(&env, id, buf, len);
    ts_reply r = it_await_reply(&env, c.command_id, 1, WAIT_MS);
    assert_string_equal(ts_outcome_name(r.outcome), "INVALID");
    it_await_dead_letter(&env, buf, len, reason, sizeof reason, WAIT_MS);
    assert_string_equal(reason, "invalid");
    assert_int_equal(registrations(id), 1);
}

/* ------------------------------------------------------------ hostile producers */

static void a_command_keyed_by_another_event_is_a_dead_letter(void **state) {
    (void)state;
    char id[TS_UUID_LEN + 1], other[TS_UUID_LEN + 1], reason[64];
    create_event(id, 10, in_days(30));
    ts_uuid_new(other);
    ts_command c = it_registration(&env, id, "Mallory", "mallory@example.org");
    uint8_t buf[TS_MESSAGE_BYTES_MAX];
    size_t len;
    assert_int_equal(ts_codec_encode_command(env.codec, &c, buf, sizeof buf, &len), TS_CODEC_OK);
    it_produce_raw(&env, other, buf, len); /* another event's partition, maybe */
    ts_reply r = it_await_reply(&env, c.command_id, 1, WAIT_MS);
    assert_string_equal(ts_outcome_name(r.outcome), "INVALID");
    it_await_dead_letter(&env, buf, len, reason, sizeof reason, WAIT_MS);
    assert_string_equal(reason, "key_mismatch");
    /* keyed properly but in another partition than murmur2 gives the event
     * id: its event's commands would be split over two workers */
    ts_command astray = it_registration(&env, id, "Mallory", "mallory@example.org");
    assert_int_equal(ts_codec_encode_command(env.codec, &astray, buf, sizeof buf, &len),
                     TS_CODEC_OK);
    it_produce_to(&env, id, (it_partition_of(&env, id) + 1) % env.command_partitions, buf, len);
    r = it_await_reply(&env, astray.command_id, 1, WAIT_MS);
    assert_string_equal(ts_outcome_name(r.outcome), "INVALID");
    it_await_dead_letter(&env, buf, len, reason, sizeof reason, WAIT_MS);
    assert_string_equal(reason, "wrong_partition");
    /* the same command in its partition is applied; the key's case does
     * not matter there */
    char upper[TS_UUID_LEN + 1];
    for (int i = 0; i <= TS_UUID_LEN; i++)
        upper[i] = (char)(id[i] >= 'a' && id[i] <= 'f' ? id[i] - 32 : id[i]);
    ts_command ok = it_registration(&env, id, "Mallory", "mallory@example.org");
    assert_int_equal(ts_codec_encode_command(env.codec, &ok, buf, sizeof buf, &len), TS_CODEC_OK);
    it_produce_to(&env, upper, it_partition_of(&env, id), buf, len);
    assert_string_equal(ts_outcome_name(it_await_reply(&env, ok.command_id, 1, WAIT_MS).outcome),
                        "REGISTERED");
    assert_int_equal(registrations(id), 1);
}

/* Replies only go to TS_REPLY_TOPICS, to partitions that exist: a producer
 * naming another topic (or a partition the reply topic lacks) gets a dead
 * letter, and no partition waits for a reply that cannot be delivered. */
static void a_reply_address_the_worker_may_not_use_stalls_nothing(void **state) {
    (void)state;
    enum { EVENTS = 9, PEOPLE = 10 };
    char ids[EVENTS][TS_UUID_LEN + 1], reason[64];
    for (int e = 0; e < EVENTS; e++)
        create_event(ids[e], 100, in_days(30));
    /* hostile commands first, in every event's partition */
    uint8_t bufs[2 * EVENTS][TS_MESSAGE_BYTES_MAX];
    size_t lens[2 * EVENTS];
    for (int e = 0; e < EVENTS; e++) {
        ts_command foreign = it_registration(&env, ids[e], "Eve", "eve@example.org");
        snprintf(foreign.reply_topic, sizeof foreign.reply_topic, "elsewhere.%d", (int)getpid());
        ts_command nowhere = it_registration(&env, ids[e], "Eve", "eve2@example.org");
        nowhere.reply_partition = 7; /* the reply topic has one partition */
        assert_int_equal(
            ts_codec_encode_command(env.codec, &foreign, bufs[2 * e], sizeof bufs[0], &lens[2 * e]),
            TS_CODEC_OK);
        assert_int_equal(ts_codec_encode_command(env.codec, &nowhere, bufs[2 * e + 1],
                                                 sizeof bufs[0], &lens[2 * e + 1]),
                         TS_CODEC_OK);
        it_produce_raw(&env, ids[e], bufs[2 * e], lens[2 * e]);
        it_produce_raw(&env, ids[e], bufs[2 * e + 1], lens[2 * e + 1]);
    }
    /* then valid ones behind them: all answered, none refused */
    ts_command ok[EVENTS * PEOPLE];
    for (int i = 0; i < EVENTS * PEOPLE; i++) {
        char email[64];
        snprintf(email, sizeof email, "p%d@example.org", i);
        ok[i] = it_registration(&env, ids[i % EVENTS], "P", email);
    }
    int64_t t0 = ts_monotonic_ms();
    it_produce_many(&env, ok, EVENTS * PEOPLE);
    for (int i = 0; i < EVENTS * PEOPLE; i++)
        assert_string_equal(
            ts_outcome_name(it_await_reply(&env, ok[i].command_id, 1, WAIT_MS).outcome),
            "REGISTERED");
    /* before, each undeliverable reply held the loop for a 10 s flush */
    int64_t took = ts_monotonic_ms() - t0;
    assert_true(took < 8000);
    for (int e = 0; e < EVENTS; e++) {
        it_await_dead_letter(&env, bufs[2 * e], lens[2 * e], reason, sizeof reason, WAIT_MS);
        assert_string_equal(reason, "reply_topic_not_allowed");
        it_await_dead_letter(&env, bufs[2 * e + 1], lens[2 * e + 1], reason, sizeof reason,
                             WAIT_MS);
        assert_string_equal(reason, "invalid");
        assert_int_equal(registrations(ids[e]), PEOPLE);
    }
}

static void a_cancel_with_a_token_needs_the_registrations_token(void **state) {
    (void)state;
    char id[TS_UUID_LEN + 1];
    create_event(id, 10, in_days(30));
    ts_command reg = it_registration(&env, id, "Ada", "ada.token@example.org");
    reg.u.reg.cancel_token_sha256 = ts_digest_of("the-right-token");
    it_produce(&env, &reg);
    ts_reply r = it_await_reply(&env, reg.command_id, 1, WAIT_MS);
    assert_string_equal(ts_outcome_name(r.outcome), "REGISTERED");
    const char *p[] = {id};
    assert_int_equal(it_query_ll(&env,
                                 "SELECT count(*) FROM registrations WHERE event_id = $1"
                                 " AND cancel_token_sha256 = sha256('the-right-token')",
                                 1, p),
                     1);

    ts_command wrong = it_command(&env, TS_CMD_CANCEL, id);
    strcpy(wrong.u.cancel.user_id, r.user_id);
    wrong.u.cancel.token_sha256 = ts_digest_of("a-guess");
    it_produce(&env, &wrong);
    assert_string_equal(ts_outcome_name(it_await_reply(&env, wrong.command_id, 1, WAIT_MS).outcome),
                        "FORBIDDEN");
    assert_int_equal(registrations(id), 1);

    ts_command right = it_command(&env, TS_CMD_CANCEL, id);
    strcpy(right.u.cancel.user_id, r.user_id);
    right.u.cancel.token_sha256 = ts_digest_of("the-right-token");
    it_produce(&env, &right);
    assert_string_equal(ts_outcome_name(it_await_reply(&env, right.command_id, 1, WAIT_MS).outcome),
                        "CANCELLED");
    assert_int_equal(registrations(id), 0);
    assert_int_equal(counter(id), 0);
}

/* A command id derived from an idempotency key is bound to its request: the
 * same id with another request is refused and changes nothing; with the
 * same request it is the first outcome again, and its new cancel token
 * replaces the one the client never got. */
static void an_idempotency_key_is_bound_to_its_request(void **state) {
    (void)state;
    char id[TS_UUID_LEN + 1];
    create_event(id, 10, in_days(30));
    ts_command first = it_registration(&env, id, "Ada", "ada.idem@example.org");
    first.request_sha256 = ts_digest_of("{\"email\":\"ada.idem@example.org\"}");
    first.u.reg.cancel_token_sha256 = ts_digest_of("token-1");
    it_produce(&env, &first);
    ts_reply r1 = it_await_reply(&env, first.command_id, 1, WAIT_MS);
    assert_string_equal(ts_outcome_name(r1.outcome), "REGISTERED");

    ts_command other = it_registration(&env, id, "Eve", "eve.idem@example.org");
    strcpy(other.command_id, first.command_id);
    other.request_sha256 = ts_digest_of("{\"email\":\"eve.idem@example.org\"}");
    it_produce(&env, &other);
    ts_reply r2 = it_await_reply(&env, first.command_id, 2, WAIT_MS);
    assert_string_equal(ts_outcome_name(r2.outcome), "IDEMPOTENCY_KEY_REUSED");
    assert_string_equal(r2.user_id, ""); /* nothing of the first outcome */
    assert_int_equal(registrations(id), 1);

    ts_command retry = first;
    retry.u.reg.cancel_token_sha256 = ts_digest_of("token-2");
    it_produce(&env, &retry);
    ts_reply r3 = it_await_reply(&env, first.command_id, 3, WAIT_MS);
    assert_string_equal(ts_outcome_name(r3.outcome), "REGISTERED");
    assert_string_equal(r3.user_id, r1.user_id);
    const char *p[] = {id};
    assert_int_equal(it_query_ll(&env,
                                 "SELECT count(*) FROM registrations WHERE event_id = $1"
                                 " AND cancel_token_sha256 = sha256('token-2')",
                                 1, p),
                     1);
    assert_int_equal(registrations(id), 1);
}

/* Runs a command line and returns its standard output (caller frees). */
static char *run_capture(const char *cmdline, size_t *len) {
    FILE *p = popen(cmdline, "r");
    assert_non_null(p);
    char *out = NULL;
    size_t n = 0, cap = 0, got;
    char buf[4096];
    while ((got = fread(buf, 1, sizeof buf, p)) > 0) {
        if (n + got + 1 > cap) {
            cap = (n + got + 1) * 2;
            out = realloc(out, cap);
        }
        memcpy(out + n, buf, got);
        n += got;
    }
    assert_int_equal(pclose(p), 0);
    if (out)
        out[n] = '\0';
    *len = n;
    return out;
}

/* Another Avro implementation (Debian's python3-avro, through
 * scripts/turnstile-avro) writes a command the worker applies, and reads
 * the reply the C codec wrote. */
static void another_avro_implementation_speaks_the_same_wire_format(void **state) {
    (void)state;
    char id[TS_UUID_LEN + 1], cid[TS_UUID_LEN + 1], cmdline[1024];
    create_event(id, 5, in_days(3));
    ts_uuid_new(cid);
    snprintf(cmdline, sizeof cmdline,
             TS_SOURCE_DIR "/scripts/turnstile-avro register --event-id %s --command-id %s"
                           " --name Py --email py@example.org --reply-topic %s"
                           " --reply-partition 0 2>/dev/null",
             id, cid, env.cfg.topic_replies);
    size_t len;
    char *msg = run_capture(cmdline, &len);
    assert_non_null(msg);
    it_produce_raw(&env, id, msg, len);
    free(msg);
    ts_reply r = it_await_reply(&env, cid, 1, WAIT_MS);
    assert_string_equal(ts_outcome_name(r.outcome), "REGISTERED");

    uint8_t buf[TS_MESSAGE_BYTES_MAX];
    assert_int_equal(ts_codec_encode_reply(env.codec, &r, buf, sizeof buf, &len), TS_CODEC_OK);
    char path[] = "/tmp/turnstile-reply-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    close(fd);
    snprintf(cmdline, sizeof cmdline, TS_SOURCE_DIR "/scripts/turnstile-avro decode < %s", path);
    char *json_text = run_capture(cmdline, &len);
    unlink(path);
    json_t *j = json_loads(json_text, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "command_id")), cid);
    assert_string_equal(json_string_value(json_object_get(j, "outcome")), "REGISTERED");
    assert_string_equal(json_string_value(json_object_get(j, "user_id")), r.user_id);
    json_decref(j);
    free(json_text);
}

/* A command the database refuses (here by a constraint this test adds)
 * goes to the dead-letter topic with an INVALID reply; the commands around
 * it, in the same batch, are applied. */
static void a_command_the_database_refuses_is_set_aside_alone(void **state) {
    (void)state;
    char id[TS_UUID_LEN + 1], reason[64];
    create_event(id, 10, in_days(30));
    PGresult *res = PQexec(env.pg, "ALTER TABLE registrations ADD CONSTRAINT test_refuse"
                                   " CHECK (name <> 'Refuse Me')");
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    ts_command c[3];
    const char *names[] = {"Before", "Refuse Me", "After"};
    for (int i = 0; i < 3; i++) {
        char email[64];
        snprintf(email, sizeof email, "p%d@refuse.example", i);
        c[i] = it_registration(&env, id, names[i], email);
    }
    it_produce_many(&env, c, 3);
    ts_reply r[3];
    for (int i = 0; i < 3; i++)
        r[i] = it_await_reply(&env, c[i].command_id, 1, WAIT_MS);
    res = PQexec(env.pg, "ALTER TABLE registrations DROP CONSTRAINT test_refuse");
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    assert_string_equal(ts_outcome_name(r[0].outcome), "REGISTERED");
    assert_string_equal(ts_outcome_name(r[1].outcome), "INVALID");
    assert_string_equal(ts_outcome_name(r[2].outcome), "REGISTERED");
    assert_int_equal(registrations(id), 2);
    assert_int_equal(counter(id), 2);
    uint8_t buf[TS_MESSAGE_BYTES_MAX];
    size_t len;
    assert_int_equal(ts_codec_encode_command(env.codec, &c[1], buf, sizeof buf, &len), TS_CODEC_OK);
    it_await_dead_letter(&env, buf, len, reason, sizeof reason, WAIT_MS);
    assert_string_equal(reason, "rejected");
}

static void the_worker_reports_health_and_metrics(void **state) {
    (void)state;
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", env.worker_ports[0]);
    it_http_result r = it_http("GET", url, NULL, NULL);
    assert_int_equal(r.status, 200);
    it_http_free(&r);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", env.worker_ports[0]);
    r = it_http("GET", url, NULL, NULL);
    assert_int_equal(r.status, 200);
    /* what the tests above did shows in the counters */
    assert_null(strstr(r.body, "turnstile_worker_commands_total{outcome=\"REGISTERED\"} 0\n"));
    assert_null(strstr(r.body, "turnstile_worker_dead_letters_total 0\n"));
    assert_null(strstr(r.body, "turnstile_worker_replayed_total 0\n"));
    assert_non_null(strstr(r.body, "turnstile_worker_partitions 3\n"));
    assert_null(strstr(r.body, "turnstile_worker_fenced_total 0\n")); /* the fence test */
    /* batches tried without lookups met stored rows and were decided again */
    assert_non_null(strstr(r.body, "turnstile_worker_optimistic_conflicts_total "));
    assert_null(strstr(r.body, "turnstile_worker_optimistic_conflicts_total 0\n"));
    it_http_free(&r);
}

static void the_worker_drains_and_exits_zero_on_sigterm(void **state) {
    (void)state;
    assert_int_equal(it_stop_worker(&env, 0, SIGTERM), 0);
    /* the stored offsets cover everything that was answered */
    const char *p[] = {env.cfg.topic_commands};
    long long stored = it_query_ll(
        &env, "SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets WHERE topic = $1", 1, p);
    assert_true(stored > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_created_event_is_written_to_postgresql),
        cmocka_unit_test(a_registration_is_applied_and_answered_with_the_user_id),
        cmocka_unit_test(the_original_edge_cases_are_refused),
        cmocka_unit_test(cancel_frees_the_seat_for_someone_else),
        cmocka_unit_test(a_mixed_burst_gives_the_outcomes_of_serial_application),
        cmocka_unit_test(the_database_refuses_overselling_whatever_the_code),
        cmocka_unit_test(the_database_bounds_held_seats_with_registrations),
        cmocka_unit_test(a_command_delivered_twice_is_applied_once),
        cmocka_unit_test(a_batch_meeting_stored_rows_is_decided_again_with_them),
        cmocka_unit_test(a_worker_with_a_stale_offset_is_fenced_and_writes_nothing),
        cmocka_unit_test(a_poison_message_goes_to_the_dlq_and_the_partition_flows_on),
        cmocka_unit_test(a_command_keyed_by_another_event_is_a_dead_letter),
        cmocka_unit_test(a_reply_address_the_worker_may_not_use_stalls_nothing),
        cmocka_unit_test(a_cancel_with_a_token_needs_the_registrations_token),
        cmocka_unit_test(an_idempotency_key_is_bound_to_its_request),
        cmocka_unit_test(another_avro_implementation_speaks_the_same_wire_format),
        cmocka_unit_test(a_command_the_database_refuses_is_set_aside_alone),
        cmocka_unit_test(the_worker_reports_health_and_metrics),
        cmocka_unit_test(the_worker_drains_and_exits_zero_on_sigterm),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
