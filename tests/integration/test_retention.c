/* SPDX-License-Identifier: Apache-2.0 */
/* Integration: retention — turnstile-admin prune and the worker's retention
 * job against the real binaries, broker and PostgreSQL.
 *
 * Rows are made old by UPDATE (an event's starts_at, a command's
 * processed_at), never by waiting. The suite runs on a database of its own
 * (turnstile_test_retention under scripts/test, made afresh at start): pruning counts rows of
 * the whole database. Worker 0 applies the commands and never prunes
 * (TS_PRUNE_INTERVAL_S=0); the last test starts two that do.
 *
 * Every wait polls for a real condition with a deadline; the only timed
 * pauses are between two polls or two waves of commands. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <libpq-fe.h>

#include "harness.h"
#include "ts_kafka.h"
#include "ts_pg.h"
#include "ts_prune.h"
#include "ts_time.h"
#include "ts_uuid.h"

#define OWN_DB "retention" /* turnstile_test_retention under scripts/test */
#define WAIT_MS 60000
#define DAY_MS 86400000LL
#define OUT_CAP 4096

static it_env env;

static int setup(void **state) {
    (void)state;
    if (it_own_database(OWN_DB))
        return -1;
    if (it_setup(&env, 4, 1))
        return -1;
    setenv("TS_PRUNE_INTERVAL_S", "0", 1);
    it_start_worker(&env, 0);
    unsetenv("TS_PRUNE_INTERVAL_S");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    it_teardown(&env);
    return 0;
}

/* ------------------------------------------------------------ small things */

static void pause_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A fresh event id, and the event made by a command (it starts in a day). */
static void create_event(char id[TS_UUID_LEN + 1], int capacity) {
    ts_uuid_new(id);
    ts_command c = it_command(&env, TS_CMD_CREATE_EVENT, id);
    snprintf(c.u.create.title, sizeof c.u.create.title, "Retention");
    snprintf(c.u.create.location, sizeof c.u.create.location, "Hall R");
    c.u.create.starts_at_ms = ts_now_ms() + DAY_MS;
    c.u.create.capacity = capacity;
    it_produce(&env, &c);
    assert_string_equal(ts_outcome_name(it_await_reply(&env, c.command_id, 1, WAIT_MS).outcome),
                        "CREATED");
}

/* Produces `c` and expects `outcome`; returns the reply. */
static ts_reply expect(ts_command c, const char *outcome) {
    it_produce(&env, &c);
    ts_reply r = it_await_reply(&env, c.command_id, 1, WAIT_MS);
    if (strcmp(ts_outcome_name(r.outcome), outcome) != 0)
        fail_msg("command %s: %s (%s), expected %s", c.command_id, ts_outcome_name(r.outcome),
                 r.message, outcome);
    return r;
}

static ts_reply do_register(const char *event_id, const char *email, bool waitlist,
                            const char *outcome) {
    ts_command c = it_registration(&env, event_id, "Someone", email);
    c.u.reg.waitlist = waitlist;
    return expect(c, outcome);
}

static ts_reply do_hold(const char *event_id, const char *email) {
    ts_command c = it_command(&env, TS_CMD_PLACE_HOLD, event_id);
    snprintf(c.u.hold.name, sizeof c.u.hold.name, "Holder");
    snprintf(c.u.hold.email, sizeof c.u.hold.email, "%s", email);
    c.u.hold.ttl_ms = 600000;
    return expect(c, "HELD");
}

/* A run-unique email: name@<prefix>.test */
static void email_of(const char *name, char *out, size_t cap) {
    snprintf(out, cap, "%s@%s.test", name, env.cfg.topic_prefix);
}

static long long count1(const char *sql, const char *param) {
    const char *params[] = {param};
    return it_query_ll(&env, sql, param ? 1 : 0, params);
}

static bool event_exists(const char *id) {
    return count1("SELECT count(*) FROM events WHERE id = $1", id) == 1;
}

static bool user_exists(const char *email) {
    char id[TS_UUID_LEN + 1];
    ts_uuid_for_email(email, id);
    return count1("SELECT count(*) FROM users WHERE id = $1", id) == 1;
}

/* The event started `days` ago, its commands were applied `hours` ago. */
static void age(const char *event_id, int days, int hours) {
    char d[16], h[16];
    snprintf(d, sizeof d, "%d", days);
    snprintf(h, sizeof h, "%d", hours);
    const char *p1[] = {event_id, d}, *p2[] = {event_id, h};
    it_query_ll(&env,
                "WITH u AS (UPDATE events SET starts_at = now() - make_interval(days => $2::int)"
                " WHERE id = $1 RETURNING 1) SELECT count(*) FROM u",
                2, p1);
    it_query_ll(&env,
                "WITH u AS (UPDATE processed_commands SET processed_at = now()"
                " - make_interval(hours => $2::int) WHERE event_id = $1 RETURNING 1)"
                " SELECT count(*) FROM u",
                2, p2);
}

/* Every row of the tables pruning touches: what a dry run must not change. */
static long long all_rows(void) {
    return count1("SELECT (SELECT count(*) FROM processed_commands) + (SELECT count(*) FROM events)"
                  " + (SELECT count(*) FROM registrations) + (SELECT count(*) FROM holds)"
                  " + (SELECT count(*) FROM waitlist) + (SELECT count(*) FROM users)",
                  NULL);
}

/* Rows that name what is not there: never, whatever runs concurrently. */
static long long dangling_rows(void) {
    return count1("SELECT (SELECT count(*) FROM registrations r WHERE NOT EXISTS"
                  " (SELECT 1 FROM events e WHERE e.id = r.event_id))"
                  " + (SELECT count(*) FROM registrations r WHERE NOT EXISTS"
                  " (SELECT 1 FROM users u WHERE u.id = r.user_id))"
                  " + (SELECT count(*) FROM holds h WHERE NOT EXISTS (SELECT 1 FROM events e"
                  " WHERE e.id = h.event_id))"
                  " + (SELECT count(*) FROM waitlist w WHERE NOT EXISTS (SELECT 1 FROM events e"
                  " WHERE e.id = w.event_id))",
                  NULL);
}

/* turnstile-admin prune [--dry-run] with `extra` "NAME=value" settings
 * (NULL-terminated, or NULL) for this run alone. Returns its exit status,
 * its stdout in out[OUT_CAP]. */
static int admin_prune(bool dry_run, const char *const *extra, char *out) {
    char saved[8][256];
    bool had[8];
    int n = 0;
    for (; extra && extra[n] && n < 8; n++) {
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)strcspn(extra[n], "="), extra[n]);
        const char *old = getenv(name);
        had[n] = old != NULL;
        snprintf(saved[n], sizeof saved[n], "%s", old ? old : "");
        setenv(name, strchr(extra[n], '=') + 1, 1);
    }
    const char *args[] = {"prune", dry_run ? "--dry-run" : NULL, NULL};
    int rc = it_admin(args, out, OUT_CAP);
    for (int i = 0; i < n; i++) {
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)strcspn(extra[i], "="), extra[i]);
        if (had[i])
            setenv(name, saved[i], 1);
        else
            unsetenv(name);
    }
    return rc;
}

/* The count prune printed for `table` (a line "users: 3" after the
 * first); fails if absent. */
static long long printed(const char *out, const char *table) {
    char needle[64];
    snprintf(needle, sizeof needle, "\n%s: ", table);
    const char *at = strstr(out, needle);
    if (!at)
        fail_msg("no count of %s in:\n%s", table, out);
    return strtoll(at + strlen(needle), NULL, 10);
}

/* ------------------------------------------------------------ the window */

/* A topic whose messages live forever: prune must not forget a command. */
static void make_forever_topic(const char *name) {
    char why[256];
    rd_kafka_NewTopic_t *t = rd_kafka_NewTopic_new(name, 1, 1, why, sizeof why);
    assert_non_null(t);
    assert_int_equal(rd_kafka_NewTopic_set_config(t, "retention.ms", "-1"), 0);
    rd_kafka_queue_t *q = rd_kafka_queue_new(env.producer);
    rd_kafka_CreateTopics(env.producer, &t, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 15000);
    assert_non_null(ev);
    size_t n;
    const rd_kafka_topic_result_t **res =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    assert_int_equal(n, 1);
    assert_int_equal(rd_kafka_topic_result_error(res[0]), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(t);
}

static void delete_topic(const char *name) {
    char err[256];
    const char *names[] = {name};
    assert_int_equal(ts_kafka_delete_topics(env.producer, names, 1, 15000, err, sizeof err), 0);
}

static void prune_refuses_a_window_not_longer_than_the_topics_retention(void **state) {
    (void)state;
    char ev[TS_UUID_LEN + 1], out[OUT_CAP];
    create_event(ev, 5);
    age(ev, 31, 200); /* past both defaults (30 days; 360 h > 200 h: commands stay) */

    /* the local stack's topics keep 168 h */
    const char *week[] = {"TS_RETAIN_COMMANDS_H=168", NULL};
    assert_int_equal(admin_prune(false, week, out), 2);
    assert_true(event_exists(ev));
    const char *shorter[] = {"TS_RETAIN_COMMANDS_H=24", NULL};
    assert_int_equal(admin_prune(false, shorter, out), 2);
    assert_true(event_exists(ev));

    /* retention.ms=-1: whatever the window */
    char prefix[128], topic[160];
    snprintf(prefix, sizeof prefix, "%sforever", env.cfg.topic_prefix);
    snprintf(topic, sizeof topic, "%s.commands", prefix);
    make_forever_topic(topic);
    char prefix_env[160];
    snprintf(prefix_env, sizeof prefix_env, "TS_TOPIC_PREFIX=%s", prefix);
    const char *forever[] = {prefix_env, "TS_RETAIN_COMMANDS_H=876000", NULL};
    int rc = admin_prune(false, forever, out);
    delete_topic(topic);
    assert_int_equal(rc, 2);
    assert_true(event_exists(ev));

    /* a broker that cannot be asked: a warning, and the setting is trusted */
    const char *no_broker[] = {"TS_KAFKA_BROKERS=127.0.0.1:1", "TS_RETAIN_EVENTS_DAYS=0", NULL};
    assert_int_equal(admin_prune(false, no_broker, out), 0);
    assert_true(event_exists(ev)); /* events kept: TS_RETAIN_EVENTS_DAYS=0 */
}

/* ------------------------------------------------------------ dry run */

static void a_dry_run_counts_what_prune_deletes_and_changes_nothing(void **state) {
    (void)state;
    char ev[TS_UUID_LEN + 1], out[OUT_CAP], a[64], b[64];
    create_event(ev, 5);
    email_of("dry-a", a, sizeof a);
    email_of("dry-b", b, sizeof b);
    do_register(ev, a, false, "REGISTERED");
    do_hold(ev, b);
    age(ev, 40, 400);

    long long before = all_rows();
    assert_int_equal(admin_prune(true, NULL, out), 0);
    assert_non_null(strstr(out, "would delete"));
    assert_int_equal(all_rows(), before);
    long long would[6];
    static const char *const tables[] = {"processed_commands", "events", "registrations", "holds",
                                         "waitlist",           "users"};
    for (int i = 0; i < 6; i++)
        would[i] = printed(out, tables[i]);
    /* this test's rows at least (the one before left an event past its time) */
    assert_true(would[0] >= 3 && would[1] >= 2 && would[2] >= 2 && would[3] >= 1);
    assert_true(would[5] >= 2);

    assert_int_equal(admin_prune(false, NULL, out), 0);
    assert_non_null(strstr(out, "deleted"));
    for (int i = 0; i < 6; i++)
        if (printed(out, tables[i]) != would[i])
            fail_msg("%s: dry run said %lld, prune deleted %lld", tables[i], would[i],
                     printed(out, tables[i]));
    assert_false(event_exists(ev));
    assert_int_equal(all_rows(),
                     before - (would[0] + would[1] + would[2] + would[3] + would[4] + would[5]));
}

/* ------------------------------------------------------------ what goes */

static char old_event[TS_UUID_LEN + 1], new_event[TS_UUID_LEN + 1];
static ts_command kept_registration; /* of new_event: recent */
static ts_reply kept_reply;

static void prune_deletes_what_is_past_its_window_and_keeps_the_rest(void **state) {
    (void)state;
    char a[64], b[64], c[64], d[64], h[64], out[OUT_CAP];
    email_of("only-old", a, sizeof a);
    email_of("both", b, sizeof b);
    email_of("waiting-old", c, sizeof c);
    email_of("only-new", d, sizeof d);
    email_of("holding-old", h, sizeof h);
    /* old_event: two registrations, a held seat, a waitlist place */
    create_event(old_event, 3);
    do_register(old_event, a, false, "REGISTERED");
    do_register(old_event, b, false, "REGISTERED");
    do_hold(old_event, h);
    do_register(old_event, c, true, "WAITLISTED");
    /* new_event: b again, and d */
    create_event(new_event, 3);
    kept_registration = it_registration(&env, new_event, "Someone", b);
    kept_reply = expect(kept_registration, "REGISTERED");
    do_register(new_event, d, false, "REGISTERED");
    age(old_event, 31, 361);

    assert_int_equal(admin_prune(false, NULL, out), 0);
    /* exactly this test's rows: the test before pruned all else */
    assert_int_equal(printed(out, "processed_commands"), 5);
    assert_int_equal(printed(out, "events"), 1);
    assert_int_equal(printed(out, "registrations"), 3); /* a, b and h's held seat */
    assert_int_equal(printed(out, "holds"), 1);
    assert_int_equal(printed(out, "waitlist"), 1);
    assert_int_equal(printed(out, "users"), 3); /* a, c, h */

    assert_false(event_exists(old_event));
    assert_int_equal(
        count1("SELECT count(*) FROM processed_commands WHERE event_id = $1", old_event), 0);
    assert_false(user_exists(a));
    assert_false(user_exists(c));
    assert_false(user_exists(h));
    assert_true(user_exists(b));
    assert_true(user_exists(d));
    assert_true(event_exists(new_event));
    assert_int_equal(count1("SELECT count(*) FROM registrations WHERE event_id = $1", new_event),
                     2);
    assert_int_equal(
        count1("SELECT count(*) FROM processed_commands WHERE event_id = $1", new_event), 3);
    assert_int_equal(dangling_rows(), 0);

    /* a second run finds nothing */
    assert_int_equal(admin_prune(false, NULL, out), 0);
    assert_int_equal(
        printed(out, "processed_commands") + printed(out, "events") + printed(out, "users"), 0);
}

static void a_recent_command_delivered_again_is_replayed_not_applied_twice(void **state) {
    (void)state;
    it_produce(&env, &kept_registration);
    ts_reply again = it_await_reply(&env, kept_registration.command_id, 2, WAIT_MS);
    assert_string_equal(ts_outcome_name(again.outcome), "REGISTERED");
    assert_string_equal(again.user_id, kept_reply.user_id);
    /* the first outcome, read back from the row it left: not applied again */
    assert_int_equal(again.applied_at_ms,
                     count1("SELECT (extract(epoch FROM processed_at) * 1000)::bigint"
                            " FROM processed_commands WHERE command_id = $1",
                            kept_registration.command_id));
    assert_int_equal(count1("SELECT count(*) FROM registrations WHERE event_id = $1", new_event),
                     2);
    assert_int_equal(count1("SELECT count(*) FROM processed_commands WHERE command_id = $1",
                            kept_registration.command_id),
                     1);
}

static void commands_for_a_pruned_event_are_answered_event_not_found(void **state) {
    (void)state;
    char a[64], uid[TS_UUID_LEN + 1];
    email_of("only-old", a, sizeof a);
    ts_uuid_for_email(a, uid);
    ts_command cancel = it_command(&env, TS_CMD_CANCEL, old_event);
    snprintf(cancel.u.cancel.user_id, sizeof cancel.u.cancel.user_id, "%s", uid);
    /* a refusal, not "Refused by the database" (a dead letter): the
     * registration went with its event */
    expect(cancel, "REGISTRATION_NOT_FOUND");
    ts_command hold = it_command(&env, TS_CMD_PLACE_HOLD, old_event);
    snprintf(hold.u.hold.name, sizeof hold.u.hold.name, "Late");
    snprintf(hold.u.hold.email, sizeof hold.u.hold.email, "%s", a);
    hold.u.hold.ttl_ms = 600000;
    expect(hold, "EVENT_NOT_FOUND");
    do_register(old_event, a, false, "EVENT_NOT_FOUND");
    assert_false(event_exists(old_event));
}

/* ------------------------------------------------------------ races */

typedef struct pruner {
    ts_config cfg;
    atomic_bool stop;
    int runs;
    ts_prune_counts done;
    char err[512];
    bool failed;
} pruner;

/* Prunes again and again, in chunks of a few rows, until told to stop. */
static void *prune_loop(void *arg) {
    pruner *p = arg;
    PGconn *conn = ts_pg_connect(p->cfg.pg_dsn, "turnstile-test-pruner", p->err, sizeof p->err);
    if (!conn) {
        p->failed = true;
        return NULL;
    }
    while (!atomic_load(&p->stop)) {
        ts_prune_status st =
            ts_prune_run(conn, &p->cfg, NULL, NULL, &p->done, p->err, sizeof p->err);
        if (st == TS_PRUNE_FAILED) {
            p->failed = true;
            break;
        }
        p->runs++;
    }
    PQfinish(conn);
    return NULL;
}

/* One pruner at a time, static: a failed assertion leaves the test, not
 * the thread. */
static pruner the_pruner;
static pthread_t pruner_thread;

/* Starts prune_loop with chunks of `chunk_rows`. */
static pruner *start_pruner(int chunk_rows) {
    the_pruner = (pruner){.cfg = env.cfg};
    the_pruner.cfg.prune_chunk_rows = chunk_rows;
    atomic_init(&the_pruner.stop, false);
    assert_int_equal(pthread_create(&pruner_thread, NULL, prune_loop, &the_pruner), 0);
    return &the_pruner;
}

/* Stops it after its run under way; fails the test if a run failed. */
static void stop_pruner(pruner *p) {
    atomic_store(&p->stop, true);
    pthread_join(pruner_thread, NULL);
    if (p->failed)
        fail_msg("prune failed: %s", p->err);
    assert_true(p->runs >= 1);
}

/* Registrations for a new event and cancellations for an old one, in
 * waves, while the old event and the users only it named are pruned: no
 * command may be refused by the database (a dead letter, answered
 * INVALID), no registration may lose its event or its user. A cancel
 * after its event went finds no registration. */
static void commands_racing_the_prune_never_leave_a_row_without_its_event_or_user(void **state) {
    (void)state;
    enum { USERS = 120, WAVES = 12 };
    char old_ev[TS_UUID_LEN + 1], new_ev[TS_UUID_LEN + 1];
    static char emails[USERS][64];
    static ts_command regs[USERS], cancels[USERS];
    create_event(old_ev, USERS);
    create_event(new_ev, USERS);
    for (int i = 0; i < USERS; i++) {
        char name[32];
        snprintf(name, sizeof name, "race%d", i);
        email_of(name, emails[i], sizeof emails[i]);
        regs[i] = it_registration(&env, old_ev, "Racer", emails[i]);
    }
    it_produce_many(&env, regs, USERS);
    for (int i = 0; i < USERS; i++)
        assert_string_equal(
            ts_outcome_name(it_await_reply(&env, regs[i].command_id, 1, WAIT_MS).outcome),
            "REGISTERED");
    age(old_ev, 31, 1);
    for (int i = 0; i < USERS; i++) {
        regs[i] = it_registration(&env, new_ev, "Racer", emails[i]);
        cancels[i] = it_command(&env, TS_CMD_CANCEL, old_ev);
        ts_uuid_for_email(emails[i], cancels[i].u.cancel.user_id);
    }

    pruner *p = start_pruner(7);
    for (int w = 0; w < WAVES; w++) {
        int from = w * USERS / WAVES, to = (w + 1) * USERS / WAVES;
        it_produce_many(&env, &cancels[from], (size_t)(to - from));
        it_produce_many(&env, &regs[from], (size_t)(to - from));
        pause_ms(20); /* spread the waves over the pruner's runs */
    }
    int cancelled = 0, not_found = 0;
    for (int i = 0; i < USERS; i++) {
        ts_reply r = it_await_reply(&env, cancels[i].command_id, 1, WAIT_MS);
        const char *o = ts_outcome_name(r.outcome);
        if (!strcmp(o, "CANCELLED"))
            cancelled++;
        else if (!strcmp(o, "REGISTRATION_NOT_FOUND") || !strcmp(o, "EVENT_NOT_FOUND"))
            not_found++;
        else
            fail_msg("cancel %d: %s (%s)", i, o, r.message);
        assert_string_equal(
            ts_outcome_name(it_await_reply(&env, regs[i].command_id, 1, WAIT_MS).outcome),
            "REGISTERED");
    }
    /* and once more with nothing racing: what the last run left is gone */
    stop_pruner(p);
    print_message("pruner: %d runs; cancels: %d applied, %d after the event went\n", p->runs,
                  cancelled, not_found);
    assert_int_equal(p->done.events, 1);
    assert_false(event_exists(old_ev));
    assert_int_equal(dangling_rows(), 0);
    assert_int_equal(count1("SELECT count(*) FROM registrations r JOIN users u ON u.id = r.user_id"
                            " WHERE r.event_id = $1",
                            new_ev),
                     USERS);
}

/* Users nothing names any more (as after their registrations were
 * cancelled) register for an event, in batches of hundreds, while the
 * users' step of prune runs again and again: the worker finds each user
 * row there (ON CONFLICT DO NOTHING, no lock taken) and a prune that
 * deleted it before the batch's commit would leave registrations without
 * their user (GET /api/events/:id joins users: attendees lost). */
static void registrations_racing_the_prune_of_their_users_keep_their_user(void **state) {
    (void)state;
    enum { USERS = 1500 };
    char ev[TS_UUID_LEN + 1];
    static ts_command regs[USERS];
    static char ids[USERS * (TS_UUID_LEN + 1) + 3], emails[USERS * 64 + 3];
    size_t ni = 0, ne = 0;
    create_event(ev, USERS);
    for (int i = 0; i < USERS; i++) {
        char email[64], name[32], id[TS_UUID_LEN + 1];
        snprintf(name, sizeof name, "orphan%d", i);
        email_of(name, email, sizeof email);
        ts_uuid_for_email(email, id);
        ni += (size_t)snprintf(ids + ni, sizeof ids - ni, "%s%s", i ? "," : "{", id);
        ne += (size_t)snprintf(emails + ne, sizeof emails - ne, "%s\"%s\"", i ? "," : "{", email);
        regs[i] = it_registration(&env, ev, "Orphan", email);
    }
    snprintf(ids + ni, sizeof ids - ni, "}");
    snprintf(emails + ne, sizeof emails - ne, "}");
    const char *rows[] = {ids, emails};
    assert_int_equal(it_query_ll(&env,
                                 "WITH i AS (INSERT INTO users (id, email) SELECT * FROM"
                                 " unnest($1::uuid[], $2::text[]) RETURNING 1)"
                                 " SELECT count(*) FROM i",
                                 2, rows),
                     USERS);

    pruner *p = start_pruner(25);
    it_produce_many(&env, regs, USERS);
    for (int i = 0; i < USERS; i++)
        assert_string_equal(
            ts_outcome_name(it_await_reply(&env, regs[i].command_id, 1, WAIT_MS).outcome),
            "REGISTERED");
    stop_pruner(p);
    print_message("pruner: %d runs, %lld users deleted\n", p->runs, p->done.users);
    assert_int_equal(count1("SELECT count(*) FROM registrations r JOIN users u ON u.id = r.user_id"
                            " WHERE r.event_id = $1",
                            ev),
                     USERS);
    assert_int_equal(dangling_rows(), 0);
}

/* ------------------------------------------------------------ the worker's job */

static bool log_has(int worker, const char *needle) {
    FILE *f = fopen(it_worker_log(&env, worker), "r");
    char line[2048];
    bool found = false;
    while (f && !found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return found;
}

static void workers_prune_periodically_one_at_a_time(void **state) {
    (void)state;
    char ev[TS_UUID_LEN + 1], a[64], err[256];
    create_event(ev, 5);
    email_of("periodic", a, sizeof a);
    do_register(ev, a, false, "REGISTERED");
    age(ev, 31, 400);

    /* another pruner holds the lock: both workers must skip */
    PGconn *holder = ts_pg_connect(env.cfg.pg_dsn, "turnstile-test-holder", err, sizeof err);
    assert_non_null(holder);
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT pg_advisory_lock(%d)", TS_PRUNE_LOCK_KEY);
    assert_int_equal(ts_pg_exec(holder, sql, err, sizeof err), 0);

    setenv("TS_PRUNE_INTERVAL_S", "1", 1);
    setenv("TS_LOG_LEVEL", "info", 1);
    it_start_worker(&env, 1);
    it_start_worker(&env, 2);
    unsetenv("TS_PRUNE_INTERVAL_S");
    unsetenv("TS_LOG_LEVEL");
    it_await_worker_log(&env, 1, "event=prune_skipped", WAIT_MS);
    it_await_worker_log(&env, 2, "event=prune_skipped", WAIT_MS);
    assert_true(event_exists(ev));
    assert_true(user_exists(a));
    assert_false(log_has(1, "event=pruned") || log_has(2, "event=pruned"));

    snprintf(sql, sizeof sql, "SELECT pg_advisory_unlock(%d)", TS_PRUNE_LOCK_KEY);
    assert_int_equal(ts_pg_exec(holder, sql, err, sizeof err), 0);
    PQfinish(holder);
    int64_t deadline = ts_monotonic_ms() + WAIT_MS;
    while (event_exists(ev) || user_exists(a)) {
        if (ts_monotonic_ms() > deadline)
            fail_msg("the workers did not prune within %d ms", WAIT_MS);
        pause_ms(100);
    }
    assert_true(log_has(1, "event=pruned") || log_has(2, "event=pruned"));
    assert_int_equal(dangling_rows(), 0);
    assert_int_equal(it_stop_worker(&env, 1, SIGTERM), 0);
    assert_int_equal(it_stop_worker(&env, 2, SIGTERM), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(prune_refuses_a_window_not_longer_than_the_topics_retention),
        cmocka_unit_test(a_dry_run_counts_what_prune_deletes_and_changes_nothing),
        cmocka_unit_test(prune_deletes_what_is_past_its_window_and_keeps_the_rest),
        cmocka_unit_test(a_recent_command_delivered_again_is_replayed_not_applied_twice),
        cmocka_unit_test(commands_for_a_pruned_event_are_answered_event_not_found),
        cmocka_unit_test(commands_racing_the_prune_never_leave_a_row_without_its_event_or_user),
        cmocka_unit_test(registrations_racing_the_prune_of_their_users_keep_their_user),
        cmocka_unit_test(workers_prune_periodically_one_at_a_time),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
