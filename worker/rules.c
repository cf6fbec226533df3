/* rules.c — see rules.h. */
#include "rules.h"

bool ts_rules_needs_lookup(const ts_event_view *e, int64_t now_ms) {
    return e->found && e->starts_at_ms > now_ms;
}

ts_outcome ts_rules_register(const ts_event_view *e, int64_t now_ms, bool already) {
    if (!e->found)
        return TS_OUT_EVENT_NOT_FOUND;
    if (e->starts_at_ms <= now_ms)
        return TS_OUT_PAST_EVENT;
    if (already)
        return TS_OUT_ALREADY_REGISTERED;
    if (e->registered >= e->capacity)
        return TS_OUT_EVENT_FULL;
    return TS_OUT_REGISTERED;
}
