-- SPDX-License-Identifier: Apache-2.0
-- 007 — what pruning (turnstile-admin prune, the worker's retention job)
-- looks rows up by.
--
-- processed_commands goes by age: the oldest first, a chunk at a time. Its
-- processed_at is the applying transaction's start, so entries arrive in
-- order at the right edge of the index, and a batch's rows share one value
-- (one deduplicated entry): no measurable cost per command (200,000 rows in
-- batches of 2,000: 1.7-2.9 s without the index, 1.8-1.9 s with it).
CREATE INDEX processed_commands_by_age ON processed_commands (processed_at);

-- A user row goes once nothing refers to it: these answer "does anything
-- still name this user" by key. registrations' costs a registration burst
-- an index entry per row (the same 200,000 rows: 2.0-2.4 s without,
-- 2.6-2.7 s with it); without it every check would read the whole table,
-- under the lock that keeps the worker's batches out (see the worker's
-- retention.c).
CREATE INDEX registrations_by_user ON registrations (user_id);
CREATE INDEX holds_by_user ON holds (user_id);
CREATE INDEX waitlist_by_user ON waitlist (user_id);

-- An expired event's holds of every state (holds_of_event has only those
-- still held).
CREATE INDEX holds_by_event ON holds (event_id);
