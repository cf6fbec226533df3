/* SPDX-License-Identifier: Apache-2.0 */
/* Integration: the Schema Registry client (common/io/ts_registry) against
 * the real registry of the local stack (TS_SCHEMA_REGISTRY=1 scripts/stack
 * up; TS_SCHEMA_REGISTRY_URL, by default its address), and against
 * registries that fail: a closed port, one that accepts connections and
 * never answers, and canned answers (5xx, a 404 of another kind, a body
 * over the bound, one that is not JSON). Then turnstile-admin schemas
 * register, twice: the same ids, and each id gives back the schema file
 * byte for byte.
 *
 * Nothing here skips: without a registry the whole suite fails, saying how
 * to start one. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"
#include "ts_embedded.h"
#include "ts_registry.h"
#include "ts_time.h"

#define DEFAULT_URL "http://127.0.0.1:8081/apis/ccompat/v7"
#define TIMEOUT_MS 1500
/* How late past its deadline a call may return on a busy 2-core machine. */
#define LATE_MS 1500

static const char *url;
static ts_registry *reg;

static int setup(void **state) {
    (void)state;
    url = getenv("TS_SCHEMA_REGISTRY_URL");
    if (!url || !*url) {
        url = DEFAULT_URL;
        setenv("TS_SCHEMA_REGISTRY_URL", url, 1); /* and so turnstile-admin's */
    }
    char err[1024];
    reg = ts_registry_new(url, 5000, err, sizeof err);
    if (!reg) {
        fprintf(stderr, "registry tests: %s\n", err);
        return -1;
    }
    /* An id no registry gives out: a live registry answers "not found". */
    const char *schema;
    ts_registry_status s = ts_registry_schema(reg, INT32_MAX, &schema, err, sizeof err);
    if (s != TS_REGISTRY_NOT_FOUND) {
        fprintf(stderr,
                "registry tests: no Schema Registry answers at TS_SCHEMA_REGISTRY_URL=%s (%s: %s);"
                " start the local one with TS_SCHEMA_REGISTRY=1 scripts/stack up\n",
                url, ts_registry_status_name(s), err);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    ts_registry_free(reg);
    return 0;
}

/* A record schema no earlier run registered, as text with newlines and
 * spaces (the registry must keep them), and a subject for it. */
static void fresh_schema(char *schema, size_t cap, char *subject, size_t subject_cap) {
    static int n;
    char name[64];
    snprintf(name, sizeof name, "R%d_%lld_%d", (int)getpid(), (long long)ts_now_ms(), n++);
    snprintf(
        schema, cap,
        "{\n  \"type\": \"record\",\n  \"name\": \"%s\",\n  \"namespace\": \"it.registry\",\n"
        "  \"fields\": [\n    {\"name\": \"a\", \"type\": \"string\", \"doc\": \"caf\xc3\xa9\"}\n"
        "  ]\n}",
        name);
    snprintf(subject, subject_cap, "it.registry.%s", name);
}

static void a_registered_schema_is_fetched_by_its_id_as_the_same_text(void **state) {
    (void)state;
    char schema[1024], subject[128], err[1024];
    fresh_schema(schema, sizeof schema, subject, sizeof subject);
    int32_t id = 0, again = 0;
    assert_int_equal(ts_registry_register(reg, subject, schema, &id, err, sizeof err),
                     TS_REGISTRY_OK);
    assert_true(id > 0);
    /* registering the same text again changes nothing */
    assert_int_equal(ts_registry_register(reg, subject, schema, &again, err, sizeof err),
                     TS_REGISTRY_OK);
    assert_int_equal(again, id);

    /* a client of its own: nothing cached */
    ts_registry *other = ts_registry_new(url, 5000, err, sizeof err);
    assert_non_null(other);
    const char *text = NULL, *cached = NULL;
    assert_int_equal(ts_registry_schema(other, id, &text, err, sizeof err), TS_REGISTRY_OK);
    assert_string_equal(text, schema);
    /* asked again: the kept copy */
    assert_int_equal(ts_registry_schema(other, id, &cached, err, sizeof err), TS_REGISTRY_OK);
    assert_ptr_equal(cached, text);
    ts_registry_free(other);
}

static void an_unknown_id_is_not_found(void **state) {
    (void)state;
    char err[1024];
    const char *text = (const char *)1;
    assert_int_equal(ts_registry_schema(reg, INT32_MAX - 1, &text, err, sizeof err),
                     TS_REGISTRY_NOT_FOUND);
    assert_null(text);
    assert_non_null(strstr(err, "40403"));
    /* ids below 1 are never given: not found without asking */
    assert_int_equal(ts_registry_schema(reg, 0, &text, err, sizeof err), TS_REGISTRY_NOT_FOUND);
    assert_int_equal(ts_registry_schema(reg, -5, &text, err, sizeof err), TS_REGISTRY_NOT_FOUND);
}

/* A loopback port: listening (backlog 8, never accepting: the kernel
 * completes the connections and nothing ever answers), or closed. */
static int loopback_port(bool listening, int *fd_out) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    if (listening) {
        assert_int_equal(listen(fd, 8), 0);
        *fd_out = fd;
    } else {
        close(fd); /* bound, never listened: refused from now on */
        *fd_out = -1;
    }
    return ntohs(a.sin_port);
}

/* Both calls of a client of `port` answer UNAVAILABLE within the deadline
 * (plus LATE_MS); returns the longer of the two times. */
static int64_t unavailable_within_deadline(int port) {
    char base[128], err[1024];
    snprintf(base, sizeof base, "http://127.0.0.1:%d/apis/ccompat/v7", port);
    ts_registry *r = ts_registry_new(base, TIMEOUT_MS, err, sizeof err);
    assert_non_null(r);
    const char *text;
    int64_t t0 = ts_monotonic_ms();
    assert_int_equal(ts_registry_schema(r, 1, &text, err, sizeof err), TS_REGISTRY_UNAVAILABLE);
    int64_t fetch_ms = ts_monotonic_ms() - t0;
    assert_non_null(strstr(err, "unavailable"));
    int32_t id;
    t0 = ts_monotonic_ms();
    assert_int_equal(
        ts_registry_register(r, "it.registry.x", "{\"type\": \"string\"}", &id, err, sizeof err),
        TS_REGISTRY_UNAVAILABLE);
    int64_t register_ms = ts_monotonic_ms() - t0;
    ts_registry_free(r);
    assert_true(fetch_ms <= TIMEOUT_MS + LATE_MS);
    assert_true(register_ms <= TIMEOUT_MS + LATE_MS);
    return fetch_ms > register_ms ? fetch_ms : register_ms;
}

static void a_closed_port_is_unavailable_at_once(void **state) {
    (void)state;
    int fd;
    int port = loopback_port(false, &fd);
    int64_t ms = unavailable_within_deadline(port);
    assert_true(ms < TIMEOUT_MS); /* refused: no need to wait for the deadline */
}

static void a_registry_that_never_answers_is_unavailable_at_the_deadline(void **state) {
    (void)state;
    int fd;
    int port = loopback_port(true, &fd);
    int64_t ms = unavailable_within_deadline(port);
    close(fd);
    assert_true(ms >= TIMEOUT_MS - 50); /* it did wait: the connection was made */
}

/* ------------------------------------------------------------ canned answers */

typedef struct canned {
    int fd;              /* listening */
    const char *head;    /* status line and headers, without the blank line */
    size_t body_len;     /* bytes of body, all 'x' unless `body` */
    const char *body;    /* NULL: body_len times 'x' */
    bool content_length; /* else the body ends with the connection */
} canned;

/* Answers one connection with the canned answer, then closes it. */
static void *serve_one(void *arg) {
    canned *c = arg;
    int conn = accept(c->fd, NULL, NULL);
    if (conn < 0)
        return NULL;
    char req[4096];
    size_t got = 0;
    ssize_t n;
    /* the request's head, and its body if it has one: read what comes soon */
    while (got < sizeof req - 1 && (n = recv(conn, req + got, sizeof req - 1 - got, 0)) > 0) {
        got += (size_t)n;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    char head[512];
    if (c->content_length)
        snprintf(head, sizeof head, "%s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                 c->head, c->body_len);
    else
        snprintf(head, sizeof head, "%s\r\nConnection: close\r\n\r\n", c->head);
    send(conn, head, strlen(head), MSG_NOSIGNAL);
    static char chunk[65536];
    memset(chunk, 'x', sizeof chunk);
    size_t sent = 0;
    while (sent < c->body_len) {
        const char *from = c->body ? c->body + sent : chunk;
        size_t len = c->body_len - sent < sizeof chunk ? c->body_len - sent : sizeof chunk;
        n = send(conn, from, len, MSG_NOSIGNAL);
        if (n <= 0)
            break; /* the client hung up: it read enough */
        sent += (size_t)n;
    }
    close(conn);
    return NULL;
}

/* Asks a registry that answers `c` for schema 1. */
static ts_registry_status fetch_from(canned *c, char *err, size_t errlen) {
    int port = loopback_port(true, &c->fd);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, serve_one, c), 0);
    char base[128];
    snprintf(base, sizeof base, "http://127.0.0.1:%d/apis/ccompat/v7", port);
    ts_registry *r = ts_registry_new(base, 5000, err, errlen);
    assert_non_null(r);
    const char *text;
    ts_registry_status s = ts_registry_schema(r, 1, &text, err, errlen);
    ts_registry_free(r);
    pthread_join(t, NULL);
    close(c->fd);
    return s;
}

static void a_schema_found_once_is_answered_without_the_registry(void **state) {
    (void)state;
    char err[1024];
    const char *body = "{\"schema\":\"\\\"string\\\"\"}"; /* {"schema":"\"string\""} */
    canned c = {.head = "HTTP/1.1 200 OK\r\nContent-Type: application/json",
                .body = body,
                .body_len = strlen(body),
                .content_length = true};
    int port = loopback_port(true, &c.fd);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, serve_one, &c), 0);
    char base[128];
    snprintf(base, sizeof base, "http://127.0.0.1:%d/apis/ccompat/v7", port);
    ts_registry *r = ts_registry_new(base, TIMEOUT_MS, err, sizeof err);
    assert_non_null(r);
    const char *text = NULL, *again = NULL;
    assert_int_equal(ts_registry_schema(r, 7, &text, err, sizeof err), TS_REGISTRY_OK);
    assert_string_equal(text, "\"string\"");
    pthread_join(t, NULL);
    close(c.fd); /* the registry is gone */
    assert_int_equal(ts_registry_schema(r, 7, &again, err, sizeof err), TS_REGISTRY_OK);
    assert_ptr_equal(again, text);
    /* another id is asked for, and the registry is gone */
    assert_int_equal(ts_registry_schema(r, 8, &again, err, sizeof err), TS_REGISTRY_UNAVAILABLE);
    ts_registry_free(r);
}

static void a_server_error_is_unavailable(void **state) {
    (void)state;
    char err[1024];
    const char *body = "{\"error_code\":50001,\"message\":\"backend down\"}";
    canned c = {.head = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json",
                .body = body,
                .body_len = strlen(body),
                .content_length = true};
    assert_int_equal(fetch_from(&c, err, sizeof err), TS_REGISTRY_UNAVAILABLE);
    assert_non_null(strstr(err, "503"));
    assert_non_null(strstr(err, "backend down"));
}

static void a_404_that_is_not_the_registrys_is_an_error(void **state) {
    (void)state;
    char err[1024];
    const char *body = "<html>no such page</html>";
    canned c = {.head = "HTTP/1.1 404 Not Found\r\nContent-Type: text/html",
                .body = body,
                .body_len = strlen(body),
                .content_length = true};
    assert_int_equal(fetch_from(&c, err, sizeof err), TS_REGISTRY_ERROR);
    assert_non_null(strstr(err, "404"));
}

static void an_answer_that_is_not_json_is_an_error(void **state) {
    (void)state;
    char err[1024];
    const char *body = "{\"schema\": ";
    canned c = {.head = "HTTP/1.1 200 OK\r\nContent-Type: application/json",
                .body = body,
                .body_len = strlen(body),
                .content_length = true};
    assert_int_equal(fetch_from(&c, err, sizeof err), TS_REGISTRY_ERROR);
}

static void an_answer_over_the_bound_is_cut_and_an_error(void **state) {
    (void)state;
    char err[1024];
    /* announced: refused before the body */
    canned announced = {.head = "HTTP/1.1 200 OK\r\nContent-Type: application/json",
                        .body_len = 2u * TS_REGISTRY_MAX_RESPONSE,
                        .content_length = true};
    assert_int_equal(fetch_from(&announced, err, sizeof err), TS_REGISTRY_ERROR);
    assert_non_null(strstr(err, "over"));
    /* not announced: cut once over */
    canned streamed = {.head = "HTTP/1.1 200 OK\r\nContent-Type: application/json",
                       .body_len = 4u * TS_REGISTRY_MAX_RESPONSE,
                       .content_length = false};
    assert_int_equal(fetch_from(&streamed, err, sizeof err), TS_REGISTRY_ERROR);
    assert_non_null(strstr(err, "over"));
}

/* ------------------------------------------------------------ turnstile-admin */

typedef struct registered {
    char subject[128];
    int id;
    char file[64];
} registered;

/* Runs turnstile-admin schemas register; its lines in out[], their number
 * returned. */
static size_t admin_register(registered *out, size_t cap) {
    static char text[16384];
    const char *args[] = {"schemas", "register", NULL};
    assert_int_equal(it_admin(args, text, sizeof text), 0);
    size_t n = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(line, "subject", 7))
            continue; /* the header */
        assert_true(n < cap);
        assert_int_equal(sscanf(line, "%127s %d %63s", out[n].subject, &out[n].id, out[n].file), 3);
        n++;
    }
    return n;
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    assert_true(n < sizeof buf - 1);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        n--; /* registered without the whitespace around it */
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void turnstile_admin_registers_the_current_schemas_with_the_same_ids_twice(void **state) {
    (void)state;
    registered first[32], second[32];
    size_t n = admin_register(first, 32);
    size_t m = admin_register(second, 32);
    assert_int_equal(n, m);
    /* every current schema, none of the older versions */
    size_t current = 0;
    for (const ts_embedded *e = ts_embedded_schemas; e->name; e++)
        if (!strstr(e->name, ".v"))
            current++;
    assert_int_equal(n, current);

    ts_registry *fresh = NULL;
    char err[1024];
    fresh = ts_registry_new(url, 5000, err, sizeof err);
    assert_non_null(fresh);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(first[i].subject, second[i].subject);
        assert_int_equal(first[i].id, second[i].id);
        assert_null(strstr(first[i].file, ".v"));
        /* the subject is the record's full name */
        assert_non_null(strstr(first[i].subject, "turnstile."));
        /* the id gives back the file, byte for byte but its last newline */
        const char *text;
        assert_int_equal(ts_registry_schema(fresh, first[i].id, &text, err, sizeof err),
                         TS_REGISTRY_OK);
        char path[512];
        snprintf(path, sizeof path, "%s/schemas/%s", TS_SOURCE_DIR, first[i].file);
        assert_string_equal(text, read_file(path));
    }
    ts_registry_free(fresh);
    /* the names a producer with RecordNameStrategy looks for */
    bool found_register = false, found_change = false, found_reply = false;
    for (size_t i = 0; i < n; i++) {
        found_register |= !strcmp(first[i].subject, "turnstile.command.Register");
        found_change |= !strcmp(first[i].subject, "turnstile.stream.Change");
        found_reply |= !strcmp(first[i].subject, "turnstile.reply.Reply");
    }
    assert_true(found_register && found_change && found_reply);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_registered_schema_is_fetched_by_its_id_as_the_same_text),
        cmocka_unit_test(a_schema_found_once_is_answered_without_the_registry),
        cmocka_unit_test(an_unknown_id_is_not_found),
        cmocka_unit_test(a_closed_port_is_unavailable_at_once),
        cmocka_unit_test(a_registry_that_never_answers_is_unavailable_at_the_deadline),
        cmocka_unit_test(a_server_error_is_unavailable),
        cmocka_unit_test(a_404_that_is_not_the_registrys_is_an_error),
        cmocka_unit_test(an_answer_that_is_not_json_is_an_error),
        cmocka_unit_test(an_answer_over_the_bound_is_cut_and_an_error),
        cmocka_unit_test(turnstile_admin_registers_the_current_schemas_with_the_same_ids_twice),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
