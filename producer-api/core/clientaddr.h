/* SPDX-License-Identifier: Apache-2.0 */
/* clientaddr.h — who the client of a request is: the peer's address, or,
 * behind a trusted proxy, the address X-Forwarded-For gives; the key its
 * rate limits are counted under; whether an address is loopback.
 *
 * X-Forwarded-For is believed only from the proxies of TS_TRUSTED_PROXIES:
 * anyone else can write whatever they like in it. Pure; thread-safe (a
 * parsed ts_proxies is only read). */
#ifndef TS_CLIENTADDR_H
#define TS_CLIENTADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* Room for any address ts_client_address() gives (INET6_ADDRSTRLEN) and
 * for any key of ts_client_limit_key() ("/64" after an IPv6 prefix). */
#define TS_CLIENT_ADDR_MAX 64

typedef struct ts_proxies ts_proxies;

/* Parses `spec`, a comma-separated list of addresses and CIDRs, IPv4 and
 * IPv6 ("10.0.0.0/8, 127.0.0.1, ::1, fd00::/8"); spaces around entries are
 * ignored. An empty or blank spec is an empty list: nobody is trusted.
 * Strict, as a typo here trusts the wrong hosts: an empty entry (",,", a
 * trailing comma), a prefix out of range, host bits set beyond the prefix
 * ("10.1.2.3/8"), a zone ("fe80::1%eth0") or a name are errors.
 * IPv4 entries also match IPv4-mapped IPv6 peers (::ffff:a.b.c.d), and an
 * IPv6 entry covering ::ffff:0:0/96 ("::/0") matches IPv4 peers.
 * Returns 0 and the list in *out (the caller frees it with
 * ts_proxies_free()), or -1 with a message naming the bad entry in `err`
 * (*out untouched), or -1 with "out of memory". */
int ts_proxies_parse(const char *spec, ts_proxies **out, char *err, size_t errlen);

/* Frees `p` (NULL is a no-op). */
void ts_proxies_free(ts_proxies *p);

/* The client's address as text in out[cap] (cap >= TS_CLIENT_ADDR_MAX; a
 * smaller buffer gets a cut string). It is the peer's own address, unless
 * the peer is in `p` (NULL: nobody): then X-Forwarded-For (`xff`, NULL or
 * blank when absent; several headers joined by the caller with ", ") is
 * walked from the right, each proxy having appended the address it got the
 * request from, and the answer is the first entry that is not itself a
 * trusted proxy — entries left of it were written by the client and are
 * ignored. If every entry is trusted, the leftmost. An entry that is not a
 * plain IPv4 or IPv6 address (empty, "unknown", with a port or brackets)
 * ends the walk and the last good address is used (the peer, or a trusted
 * proxy's: then the clients behind it share its address, and its limits).
 * IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are given as IPv4; IPv6 in
 * the canonical form of inet_ntop (lower case, "::" compressed).
 * Returns 0, or -1 (out set to "") if the peer is not AF_INET/AF_INET6. */
int ts_client_address(const ts_proxies *p, const struct sockaddr *peer, const char *xff, char *out,
                      size_t cap);

/* The key a client's limits are counted under, in out[cap] (cap >=
 * TS_CLIENT_ADDR_MAX): an IPv4 address as is; an IPv6 address by its /64
 * prefix, since one subscriber usually holds a whole /64 ("2001:db8:1:2::/64");
 * an IPv4-mapped one as IPv4. Text that is not an address is copied as is. */
void ts_client_limit_key(const char *address, char *out, size_t cap);

/* True if `address` is loopback: 127.0.0.0/8, ::1, ::ffff:127.x.x.x, or the
 * name "localhost" (any case); an IPv6 address may be in brackets ("[::1]").
 * "0.0.0.0" and "::" (every interface) are not, nor is NULL or other names.
 * Used to decide whether the ingress listens on loopback only. */
bool ts_address_is_loopback(const char *address);

#endif
