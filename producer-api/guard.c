/* SPDX-License-Identifier: Apache-2.0 */
/* guard.c — see guard.h.
 *
 * Every connection has an entry (its libmicrohttpd socket context) in one
 * list under a mutex. The thread walks the list twice a second. It only
 * ever shutdown(2)s a socket, never closes it: libmicrohttpd removes the
 * entry (NOTIFY_CLOSED, under the same mutex) before it closes the socket,
 * so the descriptor shut down is always the connection's own, never a new
 * one that reused its number. */
#include "guard.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "ts_log.h"
#include "ts_time.h"

typedef struct entry {
    int fd;
    _Atomic int64_t deadline_ms; /* monotonic; moved on by request_done without the lock */
    bool cut;
    struct entry *prev, *next;
} entry;

struct ts_guard {
    int64_t timeout_ms;
    pthread_mutex_t lock;
    entry *head;
    pthread_t thread;
    atomic_bool stop;
    atomic_ulong cut_total;
};

static void *run(void *arg) {
    ts_guard *g = arg;
    while (!atomic_load(&g->stop)) {
        struct timespec tick = {0, 500 * 1000000L};
        nanosleep(&tick, NULL);
        int64_t now = ts_monotonic_ms();
        unsigned long cut = 0;
        pthread_mutex_lock(&g->lock);
        for (entry *e = g->head; e; e = e->next)
            if (!e->cut && atomic_load(&e->deadline_ms) <= now) {
                shutdown(e->fd, SHUT_RDWR);
                e->cut = true;
                cut++;
            }
        pthread_mutex_unlock(&g->lock);
        if (cut) {
            atomic_fetch_add_explicit(&g->cut_total, cut, memory_order_relaxed);
            ts_warn("api", "event=requests_cut count=%lu reason=request_timeout", cut);
        }
    }
    return NULL;
}

ts_guard *ts_guard_start(int request_timeout_s) {
    ts_guard *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->timeout_ms = (int64_t)request_timeout_s * 1000;
    if (pthread_mutex_init(&g->lock, NULL) != 0) {
        free(g);
        return NULL;
    }
    if (pthread_create(&g->thread, NULL, run, g) != 0) {
        pthread_mutex_destroy(&g->lock);
        free(g);
        return NULL;
    }
    return g;
}

void ts_guard_stop(ts_guard *g) {
    if (!g)
        return;
    atomic_store(&g->stop, true);
    pthread_join(g->thread, NULL);
    while (g->head) { /* libmicrohttpd is stopped: what is left is ours */
        entry *e = g->head;
        g->head = e->next;
        free(e);
    }
    pthread_mutex_destroy(&g->lock);
    free(g);
}

void ts_guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                     enum MHD_ConnectionNotificationCode toe) {
    ts_guard *g = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        entry *e = info ? calloc(1, sizeof *e) : NULL;
        if (!e)
            return; /* unguarded, but still bounded by the idle timeout */
        e->fd = info->connect_fd;
        atomic_init(&e->deadline_ms, ts_monotonic_ms() + g->timeout_ms); /* not shared yet */
        pthread_mutex_lock(&g->lock);
        e->next = g->head;
        if (g->head)
            g->head->prev = e;
        g->head = e;
        pthread_mutex_unlock(&g->lock);
        *socket_context = e;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        entry *e = *socket_context;
        pthread_mutex_lock(&g->lock);
        if (e->prev)
            e->prev->next = e->next;
        else
            g->head = e->next;
        if (e->next)
            e->next->prev = e->prev;
        pthread_mutex_unlock(&g->lock);
        free(e);
        *socket_context = NULL;
    }
}

void ts_guard_request_done(ts_guard *g, struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    entry *e = info ? info->socket_context : NULL;
    if (!e)
        return;
    atomic_store(&e->deadline_ms, ts_monotonic_ms() + g->timeout_ms);
}

unsigned long ts_guard_cut_total(ts_guard *g) {
    return atomic_load_explicit(&g->cut_total, memory_order_relaxed);
}
