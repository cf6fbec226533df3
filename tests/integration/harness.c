/* SPDX-License-Identifier: Apache-2.0 */
/* harness.c — see harness.h. */
#include "harness.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "http_client.h"

#include "ts_kafka.h"
#include "ts_pg.h"
#include "ts_time.h"
#include "ts_uuid.h"

static rd_kafka_t *reader(it_env *env, const char *topic, char *err, size_t errlen) {
    const char *pairs[] = {"group.id", "turnstile-test-reader", "enable.auto.commit",
                           "false",    "fetch.wait.max.ms",     "20",
                           NULL};
    rd_kafka_t *rk = ts_kafka_new(&env->cfg, RD_KAFKA_CONSUMER, "turnstile-test", pairs, NULL, NULL,
                                  err, errlen);
    if (!rk)
        return NULL;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    return rk;
}

static int await_topics_known(it_env *env, const char *const *names, const int *parts, int n,
                              char *err, size_t errlen);

/* it_setup and it_setup_replicated: topics at `replication` replicas with
 * `min_isr`, awaited on every broker, or (replication 0) the broker's
 * defaults. `who` names the caller in what is printed. */
static int setup(it_env *env, int command_partitions, int reply_partitions, int replication,
                 int min_isr, const char *who) {
    char err[512];
    memset(env, 0, sizeof *env);
    /* bursts hold a thousand sockets open at once, here and in the API */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536) {
        rl.rlim_cur = rl.rlim_max < 65536 ? rl.rlim_max : 65536;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    char prefix[64];
    snprintf(prefix, sizeof prefix, "it%dx%lld", (int)getpid(), (long long)ts_now_ms());
    setenv("TS_TOPIC_PREFIX", prefix, 1);
    setenv("TS_GROUP_ID", prefix, 1);
    if (ts_config_load(&env->cfg, err, sizeof err)) {
        fprintf(stderr, "%s: config: %s\n", who, err);
        return -1;
    }
    if (!(env->codec = ts_codec_new(err, sizeof err)) ||
        !(env->pg = ts_pg_connect(env->cfg.pg_dsn, "turnstile-test", err, sizeof err)) ||
        ts_pg_migrate(env->pg, NULL, err, sizeof err) ||
        !(env->producer = ts_kafka_producer_new(&env->cfg, "turnstile-test", err, sizeof err))) {
        fprintf(stderr, "%s: is the stack up (scripts/stack up)? %s\n", who, err);
        return -1;
    }
    snprintf(env->topic_events, sizeof env->topic_events, "%s", env->cfg.topic_events);
    env->command_partitions = command_partitions;
    env->events_partitions = command_partitions;
    const char *names[] = {env->cfg.topic_commands, env->cfg.topic_replies, env->cfg.topic_dlq,
                           env->topic_events};
    const int parts[] = {command_partitions, reply_partitions, 1, command_partitions};
    if (replication == 0
            ? ts_kafka_create_topics(env->producer, names, parts, 4, 15000, err, sizeof err)
            : (ts_kafka_create_topics_replicated(env->producer, names, parts, 4, replication,
                                                 min_isr, 30000, err, sizeof err) ||
               await_topics_known(env, names, parts, 4, err, sizeof err))) {
        fprintf(stderr, "%s: topics (is Kafka up?): %s\n", who, err);
        return -1;
    }
    if (!(env->replies = reader(env, env->cfg.topic_replies, err, sizeof err)) ||
        !(env->dlq = reader(env, env->cfg.topic_dlq, err, sizeof err))) {
        fprintf(stderr, "%s: %s\n", who, err);
        return -1;
    }
    return 0;
}

int it_setup(it_env *env, int command_partitions, int reply_partitions) {
    return setup(env, command_partitions, reply_partitions, 0, 0, "it_setup");
}

void it_teardown(it_env *env) {
    for (int i = 0; i < IT_MAX_APIS; i++)
        if (env->apis[i] > 0)
            it_stop_api(env, i, SIGKILL);
    for (int i = 0; i < IT_MAX_WORKERS; i++)
        if (env->workers[i] > 0)
            it_stop_worker(env, i, SIGKILL);
    if (env->replies) {
        rd_kafka_consumer_close(env->replies);
        rd_kafka_destroy(env->replies);
    }
    if (env->dlq) {
        rd_kafka_consumer_close(env->dlq);
        rd_kafka_destroy(env->dlq);
    }
    if (env->stream) {
        rd_kafka_consumer_close(env->stream);
        rd_kafka_destroy(env->stream);
    }
    if (env->producer) {
        char err[256];
        const char *names[] = {env->cfg.topic_commands, env->cfg.topic_replies, env->cfg.topic_dlq,
                               env->topic_events};
        if (ts_kafka_delete_topics(env->producer, names, 4, 15000, err, sizeof err))
            fprintf(stderr, "it_teardown: %s\n", err);
        rd_kafka_destroy(env->producer);
    }
    if (env->pg)
        PQfinish(env->pg);
    ts_codec_free(env->codec);
    free(env->seen);
    free(env->changes);
}

const char *it_worker_log(it_env *env, int i) {
    return env->worker_logs[i];
}

static int free_port(void);

static void set_extra_env(const char *const *extra);

void it_start_worker(it_env *env, int i) {
    it_start_worker_env(env, i, NULL);
}

void it_start_worker_env(it_env *env, int i, const char *const *extra) {
    env->worker_ports[i] = free_port();
    snprintf(env->worker_logs[i], sizeof env->worker_logs[i], "/tmp/%s-worker%d.log",
             env->cfg.topic_prefix, i);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        FILE *log = freopen(env->worker_logs[i], "a", stderr);
        (void)log;
        char port[16];
        snprintf(port, sizeof port, "%d", env->worker_ports[i]);
        setenv("TS_WORKER_HTTP_PORT", port, 1);
        set_extra_env(extra);
        execl(TS_WORKER_BIN, TS_WORKER_BIN, (char *)NULL);
        perror("exec " TS_WORKER_BIN);
        _exit(127);
    }
    env->workers[i] = pid;
}

static int stop_child(pid_t *pid, int sig) {
    int status = 0;
    kill(*pid, sig);
    waitpid(*pid, &status, 0);
    *pid = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void it_await_worker_log(it_env *env, int i, const char *needle, int timeout_ms) {
    int64_t deadline = ts_monotonic_ms() + timeout_ms;
    for (;;) {
        FILE *f = fopen(env->worker_logs[i], "r");
        char line[2048];
        while (f && fgets(line, sizeof line, f))
            if (strstr(line, needle)) {
                fclose(f);
                return;
            }
        if (f)
            fclose(f);
        if (ts_monotonic_ms() > deadline)
            fail_msg("worker %d logged no '%s' within %d ms (see %s)", i, needle, timeout_ms,
                     env->worker_logs[i]);
        struct timespec ts = {0, 10 * 1000000L}; /* between two reads of the log */
        nanosleep(&ts, NULL);
    }
}

int it_stop_worker(it_env *env, int i, int sig) {
    return stop_child(&env->workers[i], sig);
}

int it_stop_api(it_env *env, int i, int sig) {
    return stop_child(&env->apis[i], sig);
}

/* A port nobody listens on now: bind to 0 and see what the kernel gives.
 * On every address, not just 127.0.0.1: an API may listen on 0.0.0.0
 * (TS_HTTP_BIND), where a port any local socket holds (a client's bound to
 * 127.0.0.2, say, or in TIME_WAIT there) is taken. */
static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

void it_start_api(it_env *env, int i, int reply_partition, char *url, size_t cap) {
    it_start_api_env(env, i, reply_partition, NULL, url, cap);
}

/* In a child: sets each "NAME=value" of `extra`. */
static void set_extra_env(const char *const *extra) {
    for (; extra && *extra; extra++) {
        char name[128];
        size_t n = strcspn(*extra, "=");
        snprintf(name, sizeof name, "%.*s", (int)n, *extra);
        setenv(name, (*extra)[n] ? *extra + n + 1 : "", 1);
    }
}

void it_start_api_env(it_env *env, int i, int reply_partition, const char *const *extra, char *url,
                      size_t cap) {
    int port = free_port();
    env->api_ports[i] = port;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char p[16], rp[16];
        snprintf(p, sizeof p, "%d", port);
        snprintf(rp, sizeof rp, "%d", reply_partition);
        setenv("TS_HTTP_PORT", p, 1);
        if (reply_partition >= 0)
            setenv("TS_REPLY_PARTITION", rp, 1);
        else /* the instance claims one itself */
            unsetenv("TS_REPLY_PARTITION");
        set_extra_env(extra);
        execl(TS_API_BIN, TS_API_BIN, (char *)NULL);
        perror("exec " TS_API_BIN);
        _exit(127);
    }
    env->apis[i] = pid;
    snprintf(url, cap, "http://127.0.0.1:%d", port);
    char health[128];
    snprintf(health, sizeof health, "%s/healthz", url);
    int64_t deadline = ts_monotonic_ms() + 30000;
    for (;;) {
        it_http_result r = it_http("GET", health, NULL, NULL);
        long status = r.status;
        it_http_free(&r);
        if (status == 200)
            return;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            fail_msg("turnstile-api exited before answering /healthz");
        if (ts_monotonic_ms() > deadline)
            fail_msg("turnstile-api did not answer /healthz within 30 s");
        struct timespec ts = {0, 20 * 1000000L}; /* between two probes */
        nanosleep(&ts, NULL);
    }
}

ts_command it_command(it_env *env, ts_command_type type, const char *event_id) {
    ts_command c;
    memset(&c, 0, sizeof c);
    c.type = type;
    ts_uuid_new(c.command_id);
    c.issued_at_ms = ts_now_ms();
    snprintf(c.reply_topic, sizeof c.reply_topic, "%s", env->cfg.topic_replies);
    c.reply_partition = 0;
    snprintf(c.event_id, sizeof c.event_id, "%s", event_id);
    return c;
}

ts_command it_registration(it_env *env, const char *event_id, const char *name, const char *email) {
    ts_command c = it_command(env, TS_CMD_REGISTER, event_id);
    snprintf(c.u.reg.name, sizeof c.u.reg.name, "%s", name);
    snprintf(c.u.reg.email, sizeof c.u.reg.email, "%s", email);
    return c;
}

void it_produce_to(it_env *env, const char *key, int32_t partition, const void *value, size_t len) {
    rd_kafka_resp_err_t e = rd_kafka_producev(
        env->producer, RD_KAFKA_V_TOPIC(env->cfg.topic_commands), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE((void *)value, len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    assert_int_equal(e, RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(rd_kafka_flush(env->producer, 15000), RD_KAFKA_RESP_ERR_NO_ERROR);
}

void it_produce_raw(it_env *env, const char *key, const void *value, size_t len) {
    it_produce_to(env, key, RD_KAFKA_PARTITION_UA, value, len);
}

int32_t it_partition_of(const it_env *env, const char *event_id) {
    return rd_kafka_msg_partitioner_murmur2(NULL, event_id, strlen(event_id),
                                            env->command_partitions, NULL, NULL);
}

void it_produce(it_env *env, const ts_command *cmd) {
    uint8_t buf[TS_MESSAGE_BYTES_MAX];
    size_t len;
    assert_int_equal(ts_codec_encode_command(env->codec, cmd, buf, sizeof buf, &len), TS_CODEC_OK);
    it_produce_raw(env, cmd->event_id, buf, len);
}

void it_produce_many(it_env *env, const ts_command *cmds, size_t n) {
    uint8_t buf[TS_MESSAGE_BYTES_MAX];
    for (size_t i = 0; i < n; i++) {
        size_t len;
        assert_int_equal(ts_codec_encode_command(env->codec, &cmds[i], buf, sizeof buf, &len),
                         TS_CODEC_OK);
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(env->producer, RD_KAFKA_V_TOPIC(env->cfg.topic_commands),
                                      RD_KAFKA_V_KEY(cmds[i].event_id, strlen(cmds[i].event_id)),
                                      RD_KAFKA_V_VALUE(buf, len),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
               RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(env->producer, 100);
        assert_int_equal(e, RD_KAFKA_RESP_ERR_NO_ERROR);
    }
    assert_int_equal(rd_kafka_flush(env->producer, 60000), RD_KAFKA_RESP_ERR_NO_ERROR);
}

static void remember(it_env *env, const ts_reply *r) {
    if (env->nseen == env->seen_cap) {
        env->seen_cap = env->seen_cap ? env->seen_cap * 2 : 256;
        env->seen = realloc(env->seen, env->seen_cap * sizeof *env->seen);
        assert_non_null(env->seen);
    }
    env->seen[env->nseen++] = *r;
}

static const ts_reply *find(it_env *env, const char *command_id, int nth) {
    for (size_t i = 0; i < env->nseen; i++)
        if (strcmp(env->seen[i].command_id, command_id) == 0 && --nth == 0)
            return &env->seen[i];
    return NULL;
}

ts_reply it_await_reply(it_env *env, const char *command_id, int nth, int timeout_ms) {
    int64_t deadline = ts_monotonic_ms() + timeout_ms;
    const ts_reply *r;
    while (!(r = find(env, command_id, nth))) {
        if (ts_monotonic_ms() > deadline) {
            fail_msg("no reply to command %s within %d ms", command_id, timeout_ms);
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(env->replies, 100);
        if (!m)
            continue;
        if (!m->err) {
            ts_reply reply;
            char err[256];
            assert_int_equal(
                ts_codec_decode_reply(env->codec, m->payload, m->len, &reply, err, sizeof err),
                TS_CODEC_OK);
            remember(env, &reply);
        }
        rd_kafka_message_destroy(m);
    }
    return *r;
}

/* Dead letters read and not yet awaited: the dead-letter topic holds them
 * in the order the worker's partitions produced them, which is not the
 * order a test awaits them in. */
typedef struct dead_letter {
    void *value;
    size_t len;
    char reason[64];
} dead_letter;
static dead_letter *dead_letters;
static size_t ndead_letters, dead_letters_cap;

static int take_dead_letter(const void *value, size_t len, char *reason, size_t cap) {
    for (size_t i = 0; i < ndead_letters; i++) {
        dead_letter *d = &dead_letters[i];
        if (d->len == len && memcmp(d->value, value, len) == 0) {
            snprintf(reason, cap, "%s", d->reason);
            free(d->value);
            dead_letters[i] = dead_letters[--ndead_letters];
            return 1;
        }
    }
    return 0;
}

static void keep_dead_letter(const rd_kafka_message_t *m) {
    if (ndead_letters == dead_letters_cap) {
        size_t n = dead_letters_cap ? 2 * dead_letters_cap : 64;
        dead_letter *p = realloc(dead_letters, n * sizeof *p);
        assert_non_null(p);
        dead_letters = p;
        dead_letters_cap = n;
    }
    dead_letter *d = &dead_letters[ndead_letters++];
    d->value = malloc(m->len ? m->len : 1);
    assert_non_null(d->value);
    memcpy(d->value, m->payload, m->len);
    d->len = m->len;
    d->reason[0] = '\0';
    rd_kafka_headers_t *h = NULL;
    const void *v;
    size_t vlen;
    if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        rd_kafka_header_get_last(h, "ts-reason", &v, &vlen) == RD_KAFKA_RESP_ERR_NO_ERROR)
        snprintf(d->reason, sizeof d->reason, "%.*s", (int)vlen, (const char *)v);
}

void it_await_dead_letter(it_env *env, const void *value, size_t len, char *reason, size_t cap,
                          int timeout_ms) {
    int64_t deadline = ts_monotonic_ms() + timeout_ms;
    for (;;) {
        if (take_dead_letter(value, len, reason, cap))
            return;
        if (ts_monotonic_ms() > deadline)
            fail_msg("no dead letter within %d ms", timeout_ms);
        rd_kafka_message_t *m = rd_kafka_consumer_poll(env->dlq, 100);
        if (!m)
            continue;
        if (!m->err)
            keep_dead_letter(m);
        rd_kafka_message_destroy(m);
    }
}

long long it_query_ll(it_env *env, const char *sql, int nparams, const char *const *params) {
    PGresult *res = PQexecParams(env->pg, sql, nparams, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) < 1) {
        fprintf(stderr, "query failed: %s: %s\n", sql, PQerrorMessage(env->pg));
        PQclear(res);
        fail();
    }
    long long v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return v;
}

int it_run_api_to_exit(it_env *env, const char *const *extra, int timeout_ms, char *err,
                       size_t cap) {
    (void)env;
    int port = free_port(), fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        char p[16];
        snprintf(p, sizeof p, "%d", port);
        setenv("TS_HTTP_PORT", p, 1);
        set_extra_env(extra);
        execl(TS_API_BIN, TS_API_BIN, (char *)NULL);
        perror("exec " TS_API_BIN);
        _exit(127);
    }
    close(fds[1]);
    size_t len = 0;
    err[0] = '\0';
    int64_t deadline = ts_monotonic_ms() + timeout_ms;
    bool eof = false;
    int status = 0;
    for (;;) {
        int64_t left = deadline - ts_monotonic_ms();
        if (left <= 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            close(fds[0]);
            return -1;
        }
        if (!eof) { /* its stderr, until it closes */
            struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
            if (poll(&pfd, 1, (int)(left < 100 ? left : 100)) > 0) {
                char buf[1024];
                ssize_t n = read(fds[0], buf, sizeof buf);
                if (n <= 0) {
                    eof = true;
                } else if (len + 1 < cap) {
                    size_t take = (size_t)n < cap - 1 - len ? (size_t)n : cap - 1 - len;
                    memcpy(err + len, buf, take);
                    len += take;
                    err[len] = '\0';
                }
            }
            continue;
        }
        if (waitpid(pid, &status, WNOHANG) == pid)
            break;
        struct timespec ts = {0, 10 * 1000000L}; /* stderr closed: it is exiting */
        nanosleep(&ts, NULL);
    }
    close(fds[0]);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int it_run(const char *path, const char *const *argv, char *out, size_t cap) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execv(path, (char *const *)argv);
        perror(path);
        _exit(127);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t n;
    char buf[1024];
    out[0] = '\0';
    while ((n = read(fds[0], buf, sizeof buf)) > 0) /* until it exits */
        if (len + 1 < cap) {
            size_t take = (size_t)n < cap - 1 - len ? (size_t)n : cap - 1 - len;
            memcpy(out + len, buf, take);
            len += take;
            out[len] = '\0';
        }
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int it_admin(const char *const *args, char *out, size_t cap) {
    const char *argv[32] = {TS_ADMIN_BIN};
    for (int i = 0; args && args[i] && i < 30; i++)
        argv[i + 1] = args[i];
    return it_run(TS_ADMIN_BIN, argv, out, cap);
}

it_proxy *it_proxy_to_database(const char *dsn, char *proxied, size_t cap) {
    PQconninfoOption *opts = PQconninfoParse(dsn, NULL);
    char host[256] = "127.0.0.1";
    int port = 5432;
    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
        if (!strcmp(o->keyword, "host") && o->val)
            snprintf(host, sizeof host, "%s", o->val);
        if (!strcmp(o->keyword, "port") && o->val)
            port = atoi(o->val);
    }
    PQconninfoFree(opts);
    it_proxy *p = it_proxy_start(host, port);
    if (p)
        snprintf(proxied, cap, "%s host=127.0.0.1 port=%d", dsn, it_proxy_port(p));
    return p;
}

/* ------------------------------------------------------------ own database */

/* `dsn` with dbname replaced by `db`, in out[cap]. */
static int dsn_for(const char *dsn, const char *db, char *out, size_t cap) {
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(dsn, &err);
    if (!opts) {
        fprintf(stderr, "TS_PG_DSN: %s\n", err ? err : "unparsable");
        PQfreemem(err);
        return -1;
    }
    size_t n = 0;
    out[0] = '\0';
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        const char *v = strcmp(o->keyword, "dbname") == 0 ? db : o->val;
        if (!v)
            continue;
        n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "%s%s='", n ? " " : "", o->keyword);
        for (; *v; v++) /* quote ' and \ as libpq wants */
            n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "%s%c",
                                  (*v == '\'' || *v == '\\') ? "\\" : "", *v);
        n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "'");
    }
    PQconninfoFree(opts);
    return n < cap ? 0 : -1;
}

/* BASE_suffix in db[cap], BASE the dbname of `dsn`: 0, or -1 after
 * printing why (the name goes into SQL unquoted: [a-z0-9_] only). */
static int own_name(const char *dsn, const char *suffix, char *db, size_t cap) {
    PQconninfoOption *opts = PQconninfoParse(dsn, NULL);
    const char *base = "turnstile";
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (!strcmp(o->keyword, "dbname") && o->val && *o->val)
            base = o->val;
    int n = snprintf(db, cap, "%s_%s", base, suffix);
    PQconninfoFree(opts);
    if (n < 0 || (size_t)n >= cap || n > 63 ||
        strspn(db, "abcdefghijklmnopqrstuvwxyz0123456789_") != (size_t)n) {
        fprintf(stderr, "no database of its own: '%s' is not a plain name\n", db);
        return -1;
    }
    return 0;
}

int it_own_database(const char *suffix) {
    const char *dsn = getenv("TS_PG_DSN") ? getenv("TS_PG_DSN") : IT_DEFAULT_DSN;
    char db[128];
    if (own_name(dsn, suffix, db, sizeof db))
        return -1;
    PGconn *c = PQconnectdb(dsn);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "is the stack up (scripts/stack up)? %s", PQerrorMessage(c));
        PQfinish(c);
        return -1;
    }
    char drop[256], create[256];
    snprintf(drop, sizeof drop, "DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
    snprintf(create, sizeof create, "CREATE DATABASE %s", db);
    const char *sql[] = {drop, create};
    for (int i = 0; i < 2; i++) {
        PGresult *r = PQexec(c, sql[i]);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            fprintf(stderr, "%s: %s", sql[i], PQerrorMessage(c));
            PQclear(r);
            PQfinish(c);
            return -1;
        }
        PQclear(r);
    }
    PQfinish(c);
    char own[1024];
    if (dsn_for(dsn, db, own, sizeof own))
        return -1;
    setenv("TS_PG_DSN", own, 1);
    return 0;
}

/* ------------------------------------------------------------ event stream */

/* A consumer assigned to partitions 0..partitions-1 of `topic`, from the
 * start. */
static rd_kafka_t *reader_all(it_env *env, const char *topic, int partitions) {
    char err[512];
    const char *pairs[] = {"group.id", "turnstile-test-reader", "enable.auto.commit",
                           "false",    "fetch.wait.max.ms",     "20",
                           NULL};
    rd_kafka_t *rk = ts_kafka_new(&env->cfg, RD_KAFKA_CONSUMER, "turnstile-test", pairs, NULL, NULL,
                                  err, sizeof err);
    if (!rk)
        fail_msg("a reader of %s: %s", topic, err);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; p++)
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(rk, l), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(l);
    return rk;
}

static void copy_str(char *dst, size_t cap, const char *src) {
    snprintf(dst, cap, "%s", src ? src : "");
}

static void keep_change(it_env *env, const rd_kafka_message_t *m) {
    ts_change_buf buf;
    char err[256];
    ts_codec_status st =
        ts_codec_decode_change(env->codec, m->payload, m->len, &buf, err, sizeof err);
    if (st != TS_CODEC_OK)
        fail_msg("event stream: a record at partition %d offset %lld does not decode: %s (%s)",
                 (int)m->partition, (long long)m->offset, ts_codec_status_name(st), err);
    const ts_change *c = &buf.change;
    if (m->key_len != strlen(c->event_id) || strncasecmp(m->key, c->event_id, m->key_len) != 0)
        fail_msg("event stream: the record of event %s seq %lld is keyed '%.*s'", c->event_id,
                 (long long)c->seq, (int)m->key_len, (const char *)m->key);
    if (env->nchanges == env->changes_cap) {
        env->changes_cap = env->changes_cap ? env->changes_cap * 2 : 1024;
        env->changes = realloc(env->changes, env->changes_cap * sizeof *env->changes);
        assert_non_null(env->changes);
    }
    it_change *k = &env->changes[env->nchanges++];
    memset(k, 0, sizeof *k);
    k->type = c->type;
    copy_str(k->event_id, sizeof k->event_id, c->event_id);
    copy_str(k->command_id, sizeof k->command_id, c->command_id);
    copy_str(k->user_id, sizeof k->user_id, c->user_id);
    copy_str(k->hold_id, sizeof k->hold_id, c->hold_id);
    copy_str(k->email, sizeof k->email, c->email);
    copy_str(k->title, sizeof k->title, c->title);
    k->seq = c->seq;
    k->occurred_at_ms = c->occurred_at_ms;
    k->has_position = c->has_position;
    k->position = c->has_position ? c->position : 0;
    k->has_expires_at = c->has_expires_at;
    k->expires_at_ms = c->has_expires_at ? c->expires_at_ms : 0;
    k->has_capacity = c->has_capacity;
    k->capacity = c->has_capacity ? c->capacity : 0;
    k->partition = m->partition;
    k->offset = m->offset;
}

void it_stream_poll(it_env *env, int wait_ms) {
    if (!env->stream)
        env->stream = reader_all(env, env->topic_events, env->events_partitions);
    int wait = wait_ms;
    for (;;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(env->stream, wait);
        if (!m)
            return;
        wait = 0; /* then whatever else is there already */
        if (!m->err)
            keep_change(env, m);
        rd_kafka_message_destroy(m);
    }
}

static bool same_change(const it_change *a, const it_change *b) {
    return a->type == b->type && a->seq == b->seq && a->occurred_at_ms == b->occurred_at_ms &&
           !strcmp(a->event_id, b->event_id) && !strcmp(a->command_id, b->command_id) &&
           !strcmp(a->user_id, b->user_id) && !strcmp(a->hold_id, b->hold_id) &&
           !strcmp(a->email, b->email) && !strcmp(a->title, b->title) &&
           a->has_position == b->has_position && a->position == b->position &&
           a->has_expires_at == b->has_expires_at && a->expires_at_ms == b->expires_at_ms &&
           a->has_capacity == b->has_capacity && a->capacity == b->capacity;
}

static void describe(const it_change *c, char *out, size_t cap) {
    snprintf(out, cap, "seq %lld %s cmd %s user %s hold %s pos %lld cap %lld (p%d@%lld)",
             (long long)c->seq, ts_change_type_name(c->type), c->command_id, c->user_id, c->hold_id,
             (long long)c->position, (long long)c->capacity, (int)c->partition,
             (long long)c->offset);
}

size_t it_stream_await(it_env *env, const char *event_id, int64_t count, bool exact, int timeout_ms,
                       it_change **out) {
    assert_true(count >= 1);
    int64_t deadline = ts_monotonic_ms() + timeout_ms;
    size_t *first = malloc((size_t)(count + 1) * sizeof *first); /* by seq: index in changes */
    assert_non_null(first);
    for (;;) {
        it_stream_poll(env, 100);
        for (int64_t s = 0; s <= count; s++)
            first[s] = SIZE_MAX;
        int64_t distinct = 0, max_seen = 0, duplicates = 0;
        int32_t partition = -1;
        for (size_t i = 0; i < env->nchanges; i++) {
            const it_change *c = &env->changes[i];
            if (strcmp(c->event_id, event_id) != 0)
                continue;
            char d[512];
            describe(c, d, sizeof d);
            if (partition >= 0 && c->partition != partition)
                fail_msg("event %s: records in partitions %d and %d (%s)", event_id, (int)partition,
                         (int)c->partition, d);
            partition = c->partition;
            if (c->seq < 1 || (exact && c->seq > count))
                fail_msg("event %s: %lld records expected, and one has %s", event_id,
                         (long long)count, d);
            if (c->seq > max_seen + 1)
                fail_msg("event %s: a gap: after seq %lld came %s", event_id, (long long)max_seen,
                         d);
            if (c->seq > count) { /* beyond what is asked for: its order checked only */
                if (c->seq > max_seen)
                    max_seen = c->seq;
                continue;
            }
            if (first[c->seq] != SIZE_MAX) {
                const it_change *f = &env->changes[first[c->seq]];
                if (!same_change(f, c)) {
                    char df[512];
                    describe(f, df, sizeof df);
                    fail_msg("event %s: seq %lld twice with different content: %s, then %s",
                             event_id, (long long)c->seq, df, d);
                }
                duplicates++;
                continue;
            }
            first[c->seq] = i;
            distinct++;
            if (c->seq > max_seen)
                max_seen = c->seq;
        }
        if (distinct == count) {
            it_change *list = malloc((size_t)count * sizeof *list);
            assert_non_null(list);
            for (int64_t s = 1; s <= count; s++)
                list[s - 1] = env->changes[first[s]];
            free(first);
            if (duplicates)
                printf("event %s: %lld records, %lld duplicates\n", event_id, (long long)count,
                       (long long)duplicates);
            *out = list;
            return (size_t)count;
        }
        if (ts_monotonic_ms() > deadline) {
            free(first);
            fail_msg("event %s: %lld distinct records of %lld expected within %d ms (the last "
                     "seq seen: %lld)",
                     event_id, (long long)distinct, (long long)count, timeout_ms,
                     (long long)max_seen);
        }
    }
}

int64_t it_stream_await_match(it_env *env, const char *event_id,
                              bool (*match)(const it_change *c, void *arg), void *arg,
                              int timeout_ms) {
    int64_t deadline = ts_monotonic_ms() + timeout_ms;
    size_t from = 0;
    for (;;) {
        for (; from < env->nchanges; from++) {
            const it_change *c = &env->changes[from];
            if (strcmp(c->event_id, event_id) == 0 && match(c, arg))
                return c->seq;
        }
        if (ts_monotonic_ms() > deadline)
            fail_msg("event %s: no such record in the stream within %d ms", event_id, timeout_ms);
        it_stream_poll(env, 100);
    }
}

/* ------------------------------------------------------------ commands topic */

size_t it_read_commands(it_env *env, const char *event_id, ts_command **out) {
    int parts = env->command_partitions;
    const char *topic = env->cfg.topic_commands;
    rd_kafka_t *rk = reader_all(env, topic, parts);
    int64_t *high = calloc((size_t)parts, sizeof *high);
    int64_t *next = calloc((size_t)parts, sizeof *next);
    assert_true(high && next);
    for (int p = 0; p < parts; p++) {
        int64_t low;
        assert_int_equal(rd_kafka_query_watermark_offsets(rk, topic, p, &low, &high[p], 15000),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
        next[p] = low;
    }
    size_t n = 0, cap = 256;
    ts_command *cmds = malloc(cap * sizeof *cmds);
    assert_non_null(cmds);
    int64_t deadline = ts_monotonic_ms() + 60000;
    for (;;) {
        bool done = true;
        for (int p = 0; p < parts; p++)
            if (next[p] < high[p])
                done = false;
        if (done)
            break;
        if (ts_monotonic_ms() > deadline)
            fail_msg("the commands topic was not read to its end within 60 s");
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        if (!m->err && m->partition >= 0 && m->partition < parts) {
            next[m->partition] = m->offset + 1;
            if (n == cap) {
                cap *= 2;
                cmds = realloc(cmds, cap * sizeof *cmds);
                assert_non_null(cmds);
            }
            char err[256];
            if (ts_codec_decode_command(env->codec, m->payload, m->len, &cmds[n], err,
                                        sizeof err) == TS_CODEC_OK &&
                strcasecmp(cmds[n].event_id, event_id) == 0)
                n++;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    free(high);
    free(next);
    *out = cmds;
    return n;
}

/* ------------------------------------------------------------ replicated topics */

/* The topics of this run, created with `replication` replicas. */

/* True when the broker asked (any of them) knows `topic` with `parts`
 * partitions, each with a leader. */
static bool topic_known(it_env *env, const char *topic, int parts) {
    rd_kafka_topic_t *t = rd_kafka_topic_new(env->producer, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    bool known = false;
    if (t && rd_kafka_metadata(env->producer, 0, t, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        known = md->topic_cnt == 1 && !md->topics[0].err && md->topics[0].partition_cnt == parts;
        for (int k = 0; known && k < parts; k++)
            known = md->topics[0].partitions[k].leader >= 0;
        rd_kafka_metadata_destroy(md);
    }
    if (t)
        rd_kafka_topic_destroy(t);
    return known;
}

/* Waits until new topics are known with leaders, 10 times in a row: each
 * metadata request goes to some broker, and a broker learns of a topic a
 * moment after the controller made it (a worker asking one that has not
 * yet refuses to start). */
static int await_topics_known(it_env *env, const char *const *names, const int *parts, int n,
                              char *err, size_t errlen) {
    int64_t deadline = ts_monotonic_ms() + 30000;
    for (int streak = 0; streak < 10;) {
        bool all = true;
        for (int i = 0; all && i < n; i++)
            all = topic_known(env, names[i], parts[i]);
        streak = all ? streak + 1 : 0;
        if (ts_monotonic_ms() > deadline) {
            snprintf(err, errlen, "the new topics were not known everywhere within 30 s");
            return -1;
        }
        struct timespec ts = {0, 20 * 1000000L}; /* between two metadata requests */
        nanosleep(&ts, NULL);
    }
    return 0;
}

int it_setup_replicated(it_env *env, int command_partitions, int reply_partitions, int replication,
                        int min_isr) {
    return setup(env, command_partitions, reply_partitions, replication, min_isr,
                 "it_setup_replicated");
}

int it_partition_leader(it_env *env, const char *topic, int partition) {
    rd_kafka_topic_t *t = rd_kafka_topic_new(env->producer, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    int leader = -1;
    if (t && rd_kafka_metadata(env->producer, 0, t, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < md->topic_cnt; i++)
            for (int k = 0; k < md->topics[i].partition_cnt; k++)
                if (md->topics[i].partitions[k].id == partition)
                    leader = md->topics[i].partitions[k].leader;
        rd_kafka_metadata_destroy(md);
    }
    if (t)
        rd_kafka_topic_destroy(t);
    return leader;
}
