/* SPDX-License-Identifier: Apache-2.0 */
/* ts_periodic.c — see ts_periodic.h. The pause is a wait on a condition
 * variable on CLOCK_MONOTONIC (a clock set back does not stretch it), so
 * that stopping ends it at once. */
#include "ts_periodic.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct ts_periodic {
    ts_periodic_fn fn;
    void *arg;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* on CLOCK_MONOTONIC */
    bool stop;           /* under lock */
};

/* Waits ms, or until told to stop. Called and returns with the lock held.
 * True when told to stop. */
static bool wait_or_stop(ts_periodic *p, long ms) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (!p->stop && pthread_cond_timedwait(&p->wake, &p->lock, &until) == 0)
        ; /* woken: stop, or spurious */
    return p->stop;
}

static void *run(void *arg) {
    ts_periodic *p = arg;
    pthread_mutex_lock(&p->lock);
    while (!p->stop) {
        pthread_mutex_unlock(&p->lock);
        long wait = p->fn(p, p->arg);
        pthread_mutex_lock(&p->lock);
        if (wait_or_stop(p, wait))
            break;
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

ts_periodic *ts_periodic_start(ts_periodic_fn fn, void *arg, char *err, size_t errlen) {
    ts_periodic *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->fn = fn;
    p->arg = arg;
    pthread_condattr_t attr;
    bool cond_ok = false;
    if (pthread_condattr_init(&attr) == 0) {
        cond_ok = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
                  pthread_cond_init(&p->wake, &attr) == 0;
        pthread_condattr_destroy(&attr);
    }
    if (!cond_ok) {
        snprintf(err, errlen, "no condition variable");
        free(p);
        return NULL;
    }
    if (pthread_mutex_init(&p->lock, NULL) != 0) {
        snprintf(err, errlen, "no mutex");
        pthread_cond_destroy(&p->wake);
        free(p);
        return NULL;
    }
    if (pthread_create(&p->thread, NULL, run, p) != 0) {
        snprintf(err, errlen, "no thread");
        pthread_mutex_destroy(&p->lock);
        pthread_cond_destroy(&p->wake);
        free(p);
        return NULL;
    }
    return p;
}

bool ts_periodic_stopping(ts_periodic *p) {
    pthread_mutex_lock(&p->lock);
    bool stop = p->stop;
    pthread_mutex_unlock(&p->lock);
    return stop;
}

void ts_periodic_stop(ts_periodic *p) {
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->thread, NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    free(p);
}
