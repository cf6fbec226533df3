/* SPDX-License-Identifier: Apache-2.0 */
/* pgproxy.c — see pgproxy.h. One thread, one poll() over the listener and
 * both ends of every connection; bytes are copied with blocking writes
 * (PostgreSQL's messages are small and both ends always read). */
#define _GNU_SOURCE /* accept4 */
#include "pgproxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FP_MAX_PAIRS 256

struct fp_proxy {
    int listener, port;
    struct sockaddr_in target;
    atomic_bool hung, stop;
    int client[FP_MAX_PAIRS], server[FP_MAX_PAIRS]; /* -1: a free slot */
    pthread_t thread;
};

static void close_pair(fp_proxy *p, int i) {
    close(p->client[i]);
    close(p->server[i]);
    p->client[i] = p->server[i] = -1;
}

static void accept_one(fp_proxy *p) {
    /* close-on-exec, every socket here: a worker or an API forked by the
     * test must not hold a connection open after the proxy closed it (the
     * server would never see it end, nor end the transaction on it) */
    int c = accept4(p->listener, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0)
        return;
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&p->target, sizeof p->target)) {
        close(c);
        if (s >= 0)
            close(s);
        return;
    }
    for (int i = 0; i < FP_MAX_PAIRS; i++)
        if (p->client[i] < 0) {
            p->client[i] = c;
            p->server[i] = s;
            return;
        }
    close(c);
    close(s);
}

/* Copies what `from` has to `to`; false when either end is done. */
static bool copy(int from, int to) {
    char buf[16384];
    ssize_t n = read(from, buf, sizeof buf);
    if (n <= 0)
        return false;
    for (ssize_t off = 0; off < n;) {
        ssize_t w = write(to, buf + off, (size_t)(n - off));
        if (w <= 0)
            return false;
        off += w;
    }
    return true;
}

static void *run(void *arg) {
    fp_proxy *p = arg;
    struct pollfd fds[1 + 2 * FP_MAX_PAIRS];
    int slot[1 + 2 * FP_MAX_PAIRS];
    while (!atomic_load(&p->stop)) {
        int n = 0;
        if (!atomic_load(&p->hung)) { /* hung: nothing read, nothing accepted */
            fds[n] = (struct pollfd){.fd = p->listener, .events = POLLIN};
            slot[n++] = -1;
            for (int i = 0; i < FP_MAX_PAIRS; i++)
                if (p->client[i] >= 0) {
                    fds[n] = (struct pollfd){.fd = p->client[i], .events = POLLIN};
                    slot[n++] = i;
                    fds[n] = (struct pollfd){.fd = p->server[i], .events = POLLIN};
                    slot[n++] = i;
                }
        }
        /* wakes every 20 ms to see a change of `hung` or `stop` */
        if (poll(fds, (nfds_t)n, 20) <= 0)
            continue;
        for (int k = 0; k < n; k++) {
            if (!(fds[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            int i = slot[k];
            if (i < 0) {
                accept_one(p);
            } else if (p->client[i] >= 0) {
                bool from_client = fds[k].fd == p->client[i];
                if (!copy(fds[k].fd, from_client ? p->server[i] : p->client[i]))
                    close_pair(p, i);
            }
        }
    }
    return NULL;
}

fp_proxy *fp_proxy_start(const char *host, int port) {
    fp_proxy *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    for (int i = 0; i < FP_MAX_PAIRS; i++)
        p->client[i] = p->server[i] = -1;
    p->target.sin_family = AF_INET;
    p->target.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &p->target.sin_addr) != 1) {
        fprintf(stderr, "pgproxy: %s is not an IPv4 address\n", host);
        free(p);
        return NULL;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    p->listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (p->listener < 0 || bind(p->listener, (struct sockaddr *)&a, sizeof a) ||
        listen(p->listener, 128) || getsockname(p->listener, (struct sockaddr *)&a, &len)) {
        perror("pgproxy: listen");
        if (p->listener >= 0)
            close(p->listener);
        free(p);
        return NULL;
    }
    p->port = ntohs(a.sin_port);
    if (pthread_create(&p->thread, NULL, run, p)) {
        close(p->listener);
        free(p);
        return NULL;
    }
    return p;
}

int fp_proxy_port(const fp_proxy *p) {
    return p->port;
}

void fp_proxy_hang(fp_proxy *p, bool hang) {
    atomic_store(&p->hung, hang);
}

void fp_proxy_free(fp_proxy *p) {
    if (!p)
        return;
    atomic_store(&p->stop, true);
    pthread_join(p->thread, NULL);
    for (int i = 0; i < FP_MAX_PAIRS; i++)
        if (p->client[i] >= 0)
            close_pair(p, i);
    close(p->listener);
    free(p);
}
