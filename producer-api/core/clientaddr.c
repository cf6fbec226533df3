/* SPDX-License-Identifier: Apache-2.0 */
/* clientaddr.c — see clientaddr.h.
 *
 * Every address is held as 16 bytes of IPv6, an IPv4 address as its mapped
 * form ::ffff:a.b.c.d and an IPv4 prefix as prefix + 96. One comparison
 * then serves both families, and a dual-stack socket's mapped peers match
 * the IPv4 entries of the list as the operator means them to. */
#include "clientaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct net {
    uint8_t addr[16];
    unsigned prefix; /* bits, 0..128, of the IPv6 form */
} net;

struct ts_proxies {
    size_t n;
    net nets[];
};

static const uint8_t mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static bool is_mapped(const uint8_t a[16]) {
    return memcmp(a, mapped_prefix, sizeof mapped_prefix) == 0;
}

static bool is_space(char c) {
    return c == ' ' || c == '\t';
}

/* Trims spaces and tabs off [*start, *end). */
static void trim(const char **start, const char **end) {
    while (*start < *end && is_space(**start))
        (*start)++;
    while (*end > *start && is_space((*end)[-1]))
        (*end)--;
}

/* Parses the plain address text[0..len) into its 16-byte form; *v4 tells
 * which family it was written in. Returns 0, or -1 if it is not one. */
static int parse_addr(const char *text, size_t len, uint8_t out[16], bool *v4) {
    char buf[INET6_ADDRSTRLEN];
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, text, len);
    buf[len] = '\0';
    struct in_addr a4;
    if (inet_pton(AF_INET, buf, &a4) == 1) {
        memcpy(out, mapped_prefix, sizeof mapped_prefix);
        memcpy(out + 12, &a4, 4);
        *v4 = true;
        return 0;
    }
    struct in6_addr a6;
    if (inet_pton(AF_INET6, buf, &a6) == 1) {
        memcpy(out, &a6, 16);
        *v4 = false;
        return 0;
    }
    return -1;
}

/* The text of an address: IPv4 for mapped ones, else canonical IPv6. */
static void format_addr(const uint8_t a[16], char *out, size_t cap) {
    char buf[INET6_ADDRSTRLEN] = "";
    if (is_mapped(a))
        inet_ntop(AF_INET, a + 12, buf, sizeof buf);
    else
        inet_ntop(AF_INET6, a, buf, sizeof buf);
    if (cap)
        snprintf(out, cap, "%s", buf);
}

static bool net_contains(const net *n, const uint8_t a[16]) {
    unsigned whole = n->prefix / 8, rest = n->prefix % 8;
    if (memcmp(n->addr, a, whole) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (n->addr[whole] & mask) == (a[whole] & mask);
}

static bool trusted(const ts_proxies *p, const uint8_t a[16]) {
    for (size_t i = 0; p && i < p->n; i++)
        if (net_contains(&p->nets[i], a))
            return true;
    return false;
}

static void set_err(char *err, size_t errlen, const char *what, const char *start,
                    const char *end) {
    if (err && errlen)
        snprintf(err, errlen, "bad entry \"%.*s\" in the trusted proxies: %s", (int)(end - start),
                 start, what);
}

/* Parses one trimmed, non-empty entry "address" or "address/prefix". */
static int parse_entry(const char *start, const char *end, net *n, char *err, size_t errlen) {
    const char *slash = memchr(start, '/', (size_t)(end - start));
    const char *addr_end = slash ? slash : end;
    bool v4;
    if (parse_addr(start, (size_t)(addr_end - start), n->addr, &v4) != 0) {
        set_err(err, errlen, "not an IPv4 or IPv6 address", start, end);
        return -1;
    }
    unsigned max = v4 ? 32 : 128, prefix = max;
    if (slash) {
        const char *d = slash + 1;
        if (d == end || end - d > 3) {
            set_err(err, errlen, "bad prefix length", start, end);
            return -1;
        }
        prefix = 0;
        for (; d < end; d++) {
            if (*d < '0' || *d > '9') {
                set_err(err, errlen, "bad prefix length", start, end);
                return -1;
            }
            prefix = prefix * 10 + (unsigned)(*d - '0');
        }
        if (prefix > max) {
            set_err(err, errlen, "prefix length out of range", start, end);
            return -1;
        }
    }
    n->prefix = v4 ? prefix + 96 : prefix;
    /* Host bits set usually mean a mistyped prefix ("10.1.2.3/8" for /28):
     * refused rather than silently trusting a far larger network. */
    for (unsigned bit = n->prefix; bit < 128; bit++) {
        if (n->addr[bit / 8] & (0x80 >> (bit % 8))) {
            set_err(err, errlen, "address has bits set beyond the prefix", start, end);
            return -1;
        }
    }
    return 0;
}

int ts_proxies_parse(const char *spec, ts_proxies **out, char *err, size_t errlen) {
    if (!spec)
        spec = "";
    const char *all_start = spec, *all_end = spec + strlen(spec);
    trim(&all_start, &all_end);
    size_t most = all_start == all_end ? 0 : 1;
    for (const char *c = all_start; c < all_end; c++)
        most += *c == ',';
    ts_proxies *p = malloc(sizeof *p + most * sizeof p->nets[0]);
    if (!p) {
        if (err && errlen)
            snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->n = 0;
    const char *s = all_start;
    while (most > 0) {
        const char *comma = memchr(s, ',', (size_t)(all_end - s));
        const char *start = s, *end = comma ? comma : all_end;
        trim(&start, &end);
        if (start == end) {
            if (err && errlen)
                snprintf(err, errlen, "empty entry (number %zu) in the trusted proxies", p->n + 1);
            free(p);
            return -1;
        }
        if (parse_entry(start, end, &p->nets[p->n], err, errlen) != 0) {
            free(p);
            return -1;
        }
        p->n++;
        if (!comma)
            break;
        s = comma + 1;
    }
    *out = p;
    return 0;
}

void ts_proxies_free(ts_proxies *p) {
    free(p);
}

int ts_client_address(const ts_proxies *p, const struct sockaddr *peer, const char *xff, char *out,
                      size_t cap) {
    if (cap)
        out[0] = '\0';
    uint8_t a[16];
    if (peer && peer->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)peer;
        memcpy(a, mapped_prefix, sizeof mapped_prefix);
        memcpy(a + 12, &sin->sin_addr, 4);
    } else if (peer && peer->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)peer;
        memcpy(a, &sin6->sin6_addr, 16);
    } else {
        return -1;
    }
    if (xff && trusted(p, a)) {
        /* Right to left: each entry was appended by the hop to its right,
         * believable as long as that hop is a trusted proxy. */
        const char *first = xff, *end = xff + strlen(xff);
        trim(&first, &end);
        while (end > first) {
            const char *start = end;
            while (start > first && start[-1] != ',')
                start--;
            const char *e_start = start, *e_end = end;
            trim(&e_start, &e_end);
            uint8_t b[16];
            bool v4;
            if (parse_addr(e_start, (size_t)(e_end - e_start), b, &v4) != 0)
                break;
            memcpy(a, b, sizeof a);
            if (!trusted(p, a) || start == first)
                break;
            end = start - 1; /* before the comma */
        }
    }
    format_addr(a, out, cap);
    return 0;
}

void ts_client_limit_key(const char *address, char *out, size_t cap) {
    if (!cap)
        return;
    if (!address)
        address = "";
    uint8_t a[16];
    bool v4;
    if (parse_addr(address, strlen(address), a, &v4) != 0) {
        snprintf(out, cap, "%s", address);
        return;
    }
    if (is_mapped(a)) {
        format_addr(a, out, cap);
        return;
    }
    memset(a + 8, 0, 8);
    char buf[INET6_ADDRSTRLEN] = "";
    inet_ntop(AF_INET6, a, buf, sizeof buf);
    snprintf(out, cap, "%s/64", buf);
}

bool ts_address_is_loopback(const char *address) {
    if (!address)
        return false;
    if (strcasecmp(address, "localhost") == 0)
        return true;
    size_t len = strlen(address);
    if (len >= 2 && address[0] == '[' && address[len - 1] == ']') {
        address++;
        len -= 2;
    }
    uint8_t a[16];
    bool v4;
    if (parse_addr(address, len, a, &v4) != 0)
        return false;
    if (is_mapped(a))
        return a[12] == 127;
    static const uint8_t one[16] = {[15] = 1};
    return memcmp(a, one, sizeof one) == 0;
}
