/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the client address: trusted proxies, X-Forwarded-For, the
 * /64 limit key, loopback detection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "clientaddr.h"

/* A peer address of either family, from text. */
typedef union peer {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
    struct sockaddr_storage storage;
} peer;

static peer peer_of(const char *text) {
    peer p;
    memset(&p, 0, sizeof p);
    if (inet_pton(AF_INET, text, &p.in.sin_addr) == 1) {
        p.in.sin_family = AF_INET;
        p.in.sin_port = htons(40000);
    } else {
        assert_int_equal(inet_pton(AF_INET6, text, &p.in6.sin6_addr), 1);
        p.in6.sin6_family = AF_INET6;
        p.in6.sin6_port = htons(40000);
    }
    return p;
}

static ts_proxies *proxies(const char *spec) {
    ts_proxies *p = NULL;
    char err[256] = "";
    assert_int_equal(ts_proxies_parse(spec, &p, err, sizeof err), 0);
    assert_non_null(p);
    return p;
}

/* The client ts_client_address() names for this peer and header. */
static const char *client(const ts_proxies *p, const char *peer_text, const char *xff) {
    static char out[TS_CLIENT_ADDR_MAX];
    peer pe = peer_of(peer_text);
    assert_int_equal(ts_client_address(p, &pe.sa, xff, out, sizeof out), 0);
    return out;
}

static void an_untrusted_peer_is_the_client_whatever_xff_says(void **state) {
    (void)state;
    ts_proxies *p = proxies("10.0.0.0/8");
    assert_string_equal(client(p, "203.0.113.9", "198.51.100.1"), "203.0.113.9");
    assert_string_equal(client(p, "203.0.113.9", "10.0.0.1"), "203.0.113.9");
    assert_string_equal(client(p, "203.0.113.9", NULL), "203.0.113.9");
    ts_proxies_free(p);
    /* An empty list, or none at all, trusts nobody. */
    p = proxies("");
    assert_string_equal(client(p, "127.0.0.1", "198.51.100.1"), "127.0.0.1");
    ts_proxies_free(p);
    assert_string_equal(client(NULL, "127.0.0.1", "198.51.100.1"), "127.0.0.1");
}

static void a_trusted_peer_names_the_client_in_xff(void **state) {
    (void)state;
    ts_proxies *p = proxies("10.0.0.0/8, 127.0.0.1");
    assert_string_equal(client(p, "10.1.2.3", "198.51.100.1"), "198.51.100.1");
    assert_string_equal(client(p, "127.0.0.1", " 198.51.100.1 "), "198.51.100.1");
    /* No header, or a blank one: the proxy itself. */
    assert_string_equal(client(p, "10.1.2.3", NULL), "10.1.2.3");
    assert_string_equal(client(p, "10.1.2.3", ""), "10.1.2.3");
    assert_string_equal(client(p, "10.1.2.3", "  "), "10.1.2.3");
    ts_proxies_free(p);
}

static void a_chain_of_trusted_proxies_is_walked_to_the_first_untrusted(void **state) {
    (void)state;
    ts_proxies *p = proxies("10.0.0.0/8, 192.168.1.1, fd00::/8");
    assert_string_equal(client(p, "10.0.0.1", "198.51.100.1, 192.168.1.1, 10.9.9.9"),
                        "198.51.100.1");
    assert_string_equal(client(p, "10.0.0.1", "2001:db8::5,fd00::1,10.0.0.2"), "2001:db8::5");
    /* Several headers joined by the caller. */
    assert_string_equal(client(p, "10.0.0.1", "198.51.100.1, 10.0.0.3"), "198.51.100.1");
    /* Every entry trusted: the leftmost. */
    assert_string_equal(client(p, "10.0.0.1", "10.0.0.7, 192.168.1.1"), "10.0.0.7");
    ts_proxies_free(p);
}

static void spoofed_entries_left_of_the_client_are_ignored(void **state) {
    (void)state;
    ts_proxies *p = proxies("10.0.0.0/8");
    /* The attacker at 198.51.100.66 sent "X-Forwarded-For: 1.2.3.4, 10.0.0.9"
     * hoping to look like someone else or like a proxy; the proxy appended
     * the attacker's real address. */
    assert_string_equal(client(p, "10.0.0.1", "1.2.3.4, 10.0.0.9, 198.51.100.66"), "198.51.100.66");
    assert_string_equal(client(p, "10.0.0.1", "127.0.0.1, ::1, 198.51.100.66"), "198.51.100.66");
    ts_proxies_free(p);
}

static void a_malformed_entry_ends_the_walk_at_the_last_good_address(void **state) {
    (void)state;
    ts_proxies *p = proxies("10.0.0.0/8");
    assert_string_equal(client(p, "10.0.0.1", "garbage"), "10.0.0.1");
    assert_string_equal(client(p, "10.0.0.1", "unknown"), "10.0.0.1");
    assert_string_equal(client(p, "10.0.0.1", "198.51.100.1, "), "10.0.0.1");
    assert_string_equal(client(p, "10.0.0.1", "198.51.100.1,,10.0.0.5"), "10.0.0.5");
    assert_string_equal(client(p, "10.0.0.1", "198.51.100.1:443"), "10.0.0.1");
    assert_string_equal(client(p, "10.0.0.1", "[2001:db8::1]"), "10.0.0.1");
    assert_string_equal(client(p, "10.0.0.1", "198.51.100.1, 256.0.0.1, 10.0.0.2"), "10.0.0.2");
    assert_string_equal(client(p, "10.0.0.1", "198.51.100.1, 10.0.0.2 10.0.0.3"), "10.0.0.1");
    /* A good client right of the bad entry is still found. */
    assert_string_equal(client(p, "10.0.0.1", "x, 198.51.100.1"), "198.51.100.1");
    /* Overlong entries do not overflow anything. */
    char big[600];
    memset(big, '1', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_string_equal(client(p, "10.0.0.1", big), "10.0.0.1");
    ts_proxies_free(p);
}

static void cidrs_match_at_their_boundaries(void **state) {
    (void)state;
    ts_proxies *p = proxies("192.168.0.0/23, 2001:db8:1:2::/64, fd00::1/128");
    const char *x = "198.51.100.1";
    assert_string_equal(client(p, "192.168.0.0", x), x);
    assert_string_equal(client(p, "192.168.1.255", x), x);
    assert_string_equal(client(p, "192.168.2.0", x), "192.168.2.0");
    assert_string_equal(client(p, "192.167.255.255", x), "192.167.255.255");
    assert_string_equal(client(p, "2001:db8:1:2::", x), x);
    assert_string_equal(client(p, "2001:db8:1:2:ffff:ffff:ffff:ffff", x), x);
    assert_string_equal(client(p, "2001:db8:1:3::", x), "2001:db8:1:3::");
    assert_string_equal(client(p, "2001:db8:1:1:ffff:ffff:ffff:ffff", x),
                        "2001:db8:1:1:ffff:ffff:ffff:ffff");
    assert_string_equal(client(p, "fd00::1", x), x);
    assert_string_equal(client(p, "fd00::2", x), "fd00::2");
    assert_string_equal(client(p, "fd00::", x), "fd00::");
    ts_proxies_free(p);

    /* /0 of IPv4 is every IPv4 address, and no IPv6 one. */
    p = proxies("0.0.0.0/0");
    assert_string_equal(client(p, "203.0.113.1", x), x);
    assert_string_equal(client(p, "255.255.255.255", x), x);
    assert_string_equal(client(p, "2001:db8::1", x), "2001:db8::1");
    ts_proxies_free(p);
    /* /0 of IPv6 is everything, IPv4 (as mapped) included. */
    p = proxies("::/0");
    assert_string_equal(client(p, "2001:db8::1", x), x);
    assert_string_equal(client(p, "203.0.113.1", x), x);
    ts_proxies_free(p);
    /* /32 and /128 are one address. */
    p = proxies("203.0.113.1/32, ::1/128");
    assert_string_equal(client(p, "203.0.113.1", x), x);
    assert_string_equal(client(p, "203.0.113.2", x), "203.0.113.2");
    assert_string_equal(client(p, "::1", x), x);
    assert_string_equal(client(p, "::2", x), "::2");
    ts_proxies_free(p);
}

static void mapped_ipv4_is_given_and_matched_as_ipv4(void **state) {
    (void)state;
    ts_proxies *p = proxies("10.0.0.0/8");
    /* A dual-stack socket sees IPv4 peers as ::ffff:a.b.c.d. */
    assert_string_equal(client(p, "::ffff:203.0.113.5", NULL), "203.0.113.5");
    assert_string_equal(client(p, "::ffff:10.0.0.1", "198.51.100.1"), "198.51.100.1");
    assert_string_equal(client(p, "::ffff:10.0.0.1", "::ffff:198.51.100.2"), "198.51.100.2");
    assert_string_equal(client(p, "10.0.0.1", "::FFFF:10.0.0.4, 2001:DB8::A"), "2001:db8::a");
    ts_proxies_free(p);
    /* A list entry written mapped matches plain IPv4 peers too. */
    p = proxies("::ffff:10.0.0.0/104");
    assert_string_equal(client(p, "10.3.3.3", "198.51.100.1"), "198.51.100.1");
    ts_proxies_free(p);
}

static void a_peer_of_another_family_is_refused(void **state) {
    (void)state;
    struct sockaddr sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_family = AF_UNIX;
    char out[TS_CLIENT_ADDR_MAX] = "x";
    assert_int_equal(ts_client_address(NULL, &sa, NULL, out, sizeof out), -1);
    assert_string_equal(out, "");
    assert_int_equal(ts_client_address(NULL, NULL, NULL, out, sizeof out), -1);
}

static void the_limit_key_of_ipv6_is_its_64_prefix(void **state) {
    (void)state;
    const struct {
        const char *address, *key;
    } cases[] = {
        {"203.0.113.5", "203.0.113.5"},
        {"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
        {"2001:db8:1:2::1", "2001:db8:1:2::/64"},
        {"2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"},
        {"2001:db8::1", "2001:db8::/64"},
        {"::1", "::/64"},
        {"2001:DB8:1:2::9", "2001:db8:1:2::/64"},
        {"::ffff:203.0.113.5", "203.0.113.5"},
        {"not an address", "not an address"},
    };
    char out[TS_CLIENT_ADDR_MAX];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ts_client_limit_key(cases[i].address, out, sizeof out);
        assert_string_equal(out, cases[i].key);
    }
    /* Two addresses of one /64 share a key; the next /64 does not. */
    char a[TS_CLIENT_ADDR_MAX], b[TS_CLIENT_ADDR_MAX];
    ts_client_limit_key("2001:db8:0:7::1", a, sizeof a);
    ts_client_limit_key("2001:db8:0:7:abcd::2", b, sizeof b);
    assert_string_equal(a, b);
    ts_client_limit_key("2001:db8:0:8::1", b, sizeof b);
    assert_string_not_equal(a, b);
}

static void loopback_is_told_from_every_interface(void **state) {
    (void)state;
    const char *yes[] = {
        "127.0.0.1",       "127.255.255.254",  "127.1.2.3", "::1",       "[::1]",
        "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1", "localhost", "LocalHost",
    };
    /* Every interface, other addresses, names, an address with a port. */
    const char *no[] = {
        "0.0.0.0",
        "::",
        "[::]",
        "10.0.0.1",
        "128.0.0.1",
        "126.255.255.255",
        "::2",
        "::ffff:10.0.0.1",
        "2001:db8::1",
        "",
        "example.com",
        "localhost.example",
        "127.0.0.1:4000",
    };
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        assert_true(ts_address_is_loopback(yes[i]));
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        assert_false(ts_address_is_loopback(no[i]));
    assert_false(ts_address_is_loopback(NULL));
}

static void parse_errors_name_the_bad_entry(void **state) {
    (void)state;
    const struct {
        const char *spec, *named;
    } cases[] = {
        {"10.0.0.0/8, bogus", "\"bogus\""},
        {"10.0.0.0/33", "\"10.0.0.0/33\""},
        {"::/129", "\"::/129\""},
        {"10.0.0.0/", "\"10.0.0.0/\""},
        {"10.0.0.0/x", "\"10.0.0.0/x\""},
        {"10.0.0.0/-1", "\"10.0.0.0/-1\""},
        {"10.0.0.0/0008", "\"10.0.0.0/0008\""},
        {"10.1.2.3/8", "\"10.1.2.3/8\""},
        {"fd00::1/8", "\"fd00::1/8\""},
        {"fe80::1%eth0", "\"fe80::1%eth0\""},
        {"localhost", "\"localhost\""},
        {"10.0.0.1 10.0.0.2", "\"10.0.0.1 10.0.0.2\""},
        {"10.0.0.1,,10.0.0.2", "empty entry (number 2)"},
        {"10.0.0.1,", "empty entry (number 2)"},
        {",10.0.0.1", "empty entry (number 1)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        static char sentinel;
        ts_proxies *const before = (ts_proxies *)(void *)&sentinel;
        ts_proxies *p = before; /* must stay untouched */
        char err[256] = "";
        assert_int_equal(ts_proxies_parse(cases[i].spec, &p, err, sizeof err), -1);
        assert_ptr_equal(p, before);
        if (!strstr(err, cases[i].named))
            fail_msg("%s: \"%s\" does not name %s", cases[i].spec, err, cases[i].named);
    }
    /* A tiny or absent error buffer is not overrun. */
    ts_proxies *p = NULL;
    char tiny[4];
    assert_int_equal(ts_proxies_parse("nope", &p, tiny, sizeof tiny), -1);
    assert_int_equal(strlen(tiny), 3);
    assert_int_equal(ts_proxies_parse("nope", &p, NULL, 0), -1);
    assert_null(p);
}

static void good_lists_parse_with_any_spacing(void **state) {
    (void)state;
    ts_proxies *p = proxies(" 10.0.0.0/8,127.0.0.1 ,\t::1, fd00::/8 ");
    assert_string_equal(client(p, "::1", "198.51.100.1"), "198.51.100.1");
    assert_string_equal(client(p, "fdff::1", "198.51.100.1"), "198.51.100.1");
    assert_string_equal(client(p, "fe00::1", "198.51.100.1"), "fe00::1");
    ts_proxies_free(p);
    p = proxies("   ");
    assert_string_equal(client(p, "10.0.0.1", "198.51.100.1"), "10.0.0.1");
    ts_proxies_free(p);
    ts_proxies_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(an_untrusted_peer_is_the_client_whatever_xff_says),
        cmocka_unit_test(a_trusted_peer_names_the_client_in_xff),
        cmocka_unit_test(a_chain_of_trusted_proxies_is_walked_to_the_first_untrusted),
        cmocka_unit_test(spoofed_entries_left_of_the_client_are_ignored),
        cmocka_unit_test(a_malformed_entry_ends_the_walk_at_the_last_good_address),
        cmocka_unit_test(cidrs_match_at_their_boundaries),
        cmocka_unit_test(mapped_ipv4_is_given_and_matched_as_ipv4),
        cmocka_unit_test(a_peer_of_another_family_is_refused),
        cmocka_unit_test(the_limit_key_of_ipv6_is_its_64_prefix),
        cmocka_unit_test(loopback_is_told_from_every_interface),
        cmocka_unit_test(parse_errors_name_the_bad_entry),
        cmocka_unit_test(good_lists_parse_with_any_spacing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
