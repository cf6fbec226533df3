/* SPDX-License-Identifier: Apache-2.0 */
/* tcpproxy.h — a TCP proxy for the tests, between a service and PostgreSQL,
 * that can stop forwarding: a database that accepts connections and never
 * answers, as a stopped server or a dead network path looks to a client
 * (the kernel still accepts and acknowledges; nothing comes back). */
#ifndef TS_TCPPROXY_H
#define TS_TCPPROXY_H

#include <stdbool.h>

typedef struct it_proxy it_proxy;

/* Listens on 127.0.0.1 (a free port) and forwards every connection to
 * host:port. NULL after printing why. */
it_proxy *it_proxy_start(const char *host, int port);
int it_proxy_port(const it_proxy *p);
/* Frozen: nothing is accepted or forwarded any more, in either direction,
 * and no socket is closed. Thawed: all flows again. */
void it_proxy_freeze(it_proxy *p, bool frozen);
/* Closes every connection and stops. NULL is a no-op. */
void it_proxy_stop(it_proxy *p);

#endif
