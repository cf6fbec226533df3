/* rules.h — the decisions of the worker, apart from the database: what a
 * registration's outcome is, given what the transaction knows. Pure. */
#ifndef TS_RULES_H
#define TS_RULES_H

#include <stdbool.h>
#include <stdint.h>

#include "ts_codec.h"

/* What the transaction knows about an event when a registration comes. */
typedef struct ts_event_view {
    bool found;
    int64_t starts_at_ms;
    int64_t capacity;
    int64_t registered;
} ts_event_view;

/* The outcome of a registration, checked in the original service's order:
 * unknown event, past event, already registered, full. `already` is only
 * looked at for an event that exists and has not started. */
ts_outcome ts_rules_register(const ts_event_view *e, int64_t now_ms, bool already);

/* True when the registration's presence must be looked up at all (the
 * first two checks passed): spares a query for refused commands. */
bool ts_rules_needs_lookup(const ts_event_view *e, int64_t now_ms);

#endif
