/* SPDX-License-Identifier: Apache-2.0 */
/* tcpproxy.c — see tcpproxy.h. One thread polls the listener and every
 * pair of sockets. */
#define _GNU_SOURCE /* accept4 */
#include "tcpproxy.h"

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

#define MAX_PAIRS 256
#define TICK_MS 20

typedef struct pair {
    int a, b; /* client side, server side; -1 when free */
} pair;

struct it_proxy {
    int listener;
    int port;
    struct sockaddr_in target;
    pair pairs[MAX_PAIRS];
    atomic_bool frozen, stop;
    pthread_t thread;
};

static void close_pair(pair *p) {
    close(p->a);
    close(p->b);
    p->a = p->b = -1;
}

static void accept_one(it_proxy *p) {
    /* close-on-exec, every socket here: a worker or an API forked by the
     * test must not hold a connection open after the proxy closed it (the
     * server would never see it end, nor end the transaction on it) */
    int c = accept4(p->listener, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0)
        return;
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&p->target, sizeof p->target) != 0) {
        close(c);
        if (s >= 0)
            close(s);
        return;
    }
    for (int i = 0; i < MAX_PAIRS; i++)
        if (p->pairs[i].a < 0) {
            p->pairs[i] = (pair){c, s};
            return;
        }
    close(c);
    close(s);
}

/* Copies what `from` has to `to`; false when either side is done. */
static bool forward(int from, int to) {
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
    it_proxy *p = arg;
    while (!atomic_load(&p->stop)) {
        if (atomic_load(&p->frozen)) {
            usleep(TICK_MS * 1000);
            continue;
        }
        struct pollfd fds[1 + 2 * MAX_PAIRS];
        int who[1 + 2 * MAX_PAIRS];
        int n = 0;
        fds[n] = (struct pollfd){.fd = p->listener, .events = POLLIN};
        who[n++] = -1;
        for (int i = 0; i < MAX_PAIRS; i++)
            if (p->pairs[i].a >= 0) {
                fds[n] = (struct pollfd){.fd = p->pairs[i].a, .events = POLLIN};
                who[n++] = i;
                fds[n] = (struct pollfd){.fd = p->pairs[i].b, .events = POLLIN};
                who[n++] = i;
            }
        if (poll(fds, (nfds_t)n, TICK_MS) <= 0)
            continue;
        if (atomic_load(&p->frozen)) /* frozen while waiting: leave it unread */
            continue;
        for (int k = 1; k < n; k++) {
            pair *pr = &p->pairs[who[k]];
            if (pr->a < 0 || !(fds[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            int from = fds[k].fd, to = from == pr->a ? pr->b : pr->a;
            if (!forward(from, to))
                close_pair(pr);
        }
        if (fds[0].revents & POLLIN)
            accept_one(p);
    }
    for (int i = 0; i < MAX_PAIRS; i++)
        if (p->pairs[i].a >= 0)
            close_pair(&p->pairs[i]);
    return NULL;
}

it_proxy *it_proxy_start(const char *host, int port) {
    it_proxy *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    for (int i = 0; i < MAX_PAIRS; i++)
        p->pairs[i].a = p->pairs[i].b = -1;
    p->target.sin_family = AF_INET;
    p->target.sin_port = htons((uint16_t)port);
    struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof any;
    if (inet_pton(AF_INET, host, &p->target.sin_addr) != 1 ||
        (p->listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        bind(p->listener, (struct sockaddr *)&any, sizeof any) != 0 || listen(p->listener, 64) ||
        getsockname(p->listener, (struct sockaddr *)&any, &len) != 0) {
        fprintf(stderr, "tcpproxy: cannot listen: %m\n");
        free(p);
        return NULL;
    }
    p->port = ntohs(any.sin_port);
    if (pthread_create(&p->thread, NULL, run, p)) {
        close(p->listener);
        free(p);
        return NULL;
    }
    return p;
}

int it_proxy_port(const it_proxy *p) {
    return p->port;
}

void it_proxy_freeze(it_proxy *p, bool frozen) {
    atomic_store(&p->frozen, frozen);
}

void it_proxy_stop(it_proxy *p) {
    if (!p)
        return;
    atomic_store(&p->stop, true);
    pthread_join(p->thread, NULL);
    close(p->listener);
    free(p);
}
