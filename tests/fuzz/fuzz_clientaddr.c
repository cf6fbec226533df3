/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_clientaddr.c — libFuzzer harness of the client address: the
 * X-Forwarded-For walk, the trusted-proxy list, the limit key and the
 * loopback test.
 *
 * Input: byte 0 picks the peer; the rest is "SPEC\nXFF" (a proxy list of
 * its own, then the header) or, without a newline, the header alone
 * behind a fixed proxy list. The address and the key must be terminated
 * within TS_CLIENT_ADDR_MAX. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "clientaddr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FIXED_SPEC "10.0.0.0/8, 127.0.0.1, ::1, fd00::/8, ::ffff:192.0.2.0/120"

static const char *const peers[] = {
    "10.1.2.3", "127.0.0.1", "203.0.113.9", "::1", "fd00::5", "::ffff:10.0.0.1", "2001:db8::1",
};
#define N_PEERS (sizeof peers / sizeof peers[0])

typedef union peer {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
    struct sockaddr_un un;
    struct sockaddr_storage storage;
} peer;

static void peer_of(unsigned pick, peer *p) {
    memset(p, 0, sizeof *p);
    if (pick >= N_PEERS) { /* neither AF_INET nor AF_INET6 */
        p->un.sun_family = AF_UNIX;
        return;
    }
    if (inet_pton(AF_INET, peers[pick], &p->in.sin_addr) == 1) {
        p->in.sin_family = AF_INET;
        p->in.sin_port = htons(40000);
    } else if (inet_pton(AF_INET6, peers[pick], &p->in6.sin6_addr) == 1) {
        p->in6.sin6_family = AF_INET6;
        p->in6.sin6_port = htons(40000);
    } else {
        abort();
    }
}

static void terminated(const char *what, const char *s, size_t cap) {
    if (!memchr(s, '\0', cap)) {
        fprintf(stderr, "fuzz_clientaddr: %s is not terminated\n", what);
        abort();
    }
}

static char *string_of(const uint8_t *data, size_t len) {
    char *s = malloc(len + 1);
    if (!s)
        return NULL;
    if (len)
        memcpy(s, data, len);
    s[len] = '\0';
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    peer pe;
    peer_of(data[0] % (N_PEERS + 1), &pe);
    data++;
    size--;

    const uint8_t *nl = memchr(data, '\n', size);
    char *spec = nl ? string_of(data, (size_t)(nl - data)) : string_of((const uint8_t *)"", 0);
    char *xff = nl ? string_of(nl + 1, size - (size_t)(nl - data) - 1) : string_of(data, size);
    if (!spec || !xff) {
        free(spec);
        free(xff);
        return 0;
    }

    ts_proxies *p = NULL;
    char err[256] = "";
    int parsed = ts_proxies_parse(nl ? spec : FIXED_SPEC, &p, err, sizeof err);
    if (parsed != 0) {
        terminated("err", err, sizeof err);
        if (p) {
            fprintf(stderr, "fuzz_clientaddr: a refused spec gave a list\n");
            abort();
        }
        /* the fixed list is always good */
        if (ts_proxies_parse(FIXED_SPEC, &p, err, sizeof err) != 0)
            abort();
    }

    char out[TS_CLIENT_ADDR_MAX], key[TS_CLIENT_ADDR_MAX];
    memset(out, 'x', sizeof out);
    int rc = ts_client_address(p, &pe.sa, xff, out, sizeof out);
    terminated("address", out, sizeof out);
    if (rc == 0) {
        memset(key, 'x', sizeof key);
        ts_client_limit_key(out, key, sizeof key);
        terminated("key", key, sizeof key);
        (void)ts_address_is_loopback(out);
    }
    /* NULL proxies: nobody trusted, whatever the header says. */
    (void)ts_client_address(NULL, &pe.sa, xff, out, sizeof out);

    /* The other entry points on the raw header text. */
    memset(key, 'x', sizeof key);
    ts_client_limit_key(xff, key, sizeof key);
    terminated("key of raw text", key, sizeof key);
    (void)ts_address_is_loopback(xff);

    ts_proxies_free(p);
    free(spec);
    free(xff);
    return 0;
}
