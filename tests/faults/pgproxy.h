/* SPDX-License-Identifier: Apache-2.0 */
/* pgproxy.h — a TCP proxy in front of PostgreSQL that can stop
 * forwarding: to the worker and the API behind it the database hangs (the
 * connections stay open, nothing is answered, a new connection is never
 * served), as a stopped backend or a stalled network would. */
#ifndef TS_FAULTS_PGPROXY_H
#define TS_FAULTS_PGPROXY_H

#include <stdbool.h>

typedef struct fp_proxy fp_proxy;

/* Listens on a free port of 127.0.0.1 and forwards every connection to
 * host:port, in a thread of its own. NULL on failure (printed). */
fp_proxy *fp_proxy_start(const char *host, int port);
int fp_proxy_port(const fp_proxy *p);
/* Stops (true) or resumes (false) forwarding and accepting. */
void fp_proxy_hang(fp_proxy *p, bool hang);
/* Stops the thread and closes every connection. */
void fp_proxy_free(fp_proxy *p);

#endif
