-- SPDX-License-Identifier: Apache-2.0
-- 005 — the seat lifecycle: holds, a waitlist, event changes and
-- cancellation, and the event stream's records.
--
-- A held seat is a row of registrations (held = true): it takes a seat
-- number like a registration, so UNIQUE (event_id, seat) and CHECK (seat
-- BETWEEN 1 AND capacity) bound registrations and holds together, whatever
-- the code does. Confirming a hold turns the row into a registration in
-- place; releasing or expiring it deletes the row (the last seat moves into
-- the hole, as for a cancellation). holds keeps every hold's id and how it
-- ended, so a late confirm can be told "expired" rather than "not found".
--
-- The waitlist is a table of its own (no seat). seq grows per event
-- (events.waitlist_seq); a person's place in line is their rank by seq.
--
-- Every change is published to turnstile.events from processed_commands
-- .stream: the records a command made, written in the same transaction as
-- the change (the outbox), with a per-event sequence number
-- (events.stream_seq). The column holds them one after another, each as a
-- 4-byte big-endian length and then the record (an Avro single-object
-- message of schemas/change.avsc); NULL when the command changed nothing.
-- consumer_offsets.stream_offset is where the relay resumes: every record
-- of a command below it reached Kafka.

ALTER TABLE events
    ADD COLUMN status text NOT NULL DEFAULT 'scheduled'
        CHECK (status IN ('scheduled', 'cancelled')),
    ADD COLUMN held integer NOT NULL DEFAULT 0 CHECK (held >= 0),
    ADD COLUMN waitlisted integer NOT NULL DEFAULT 0 CHECK (waitlisted >= 0),
    ADD COLUMN waitlist_seq bigint NOT NULL DEFAULT 0,
    ADD COLUMN stream_seq bigint NOT NULL DEFAULT 0,
    ADD CONSTRAINT events_taken_within_capacity CHECK (registered + held <= capacity);

ALTER TABLE registrations
    ADD COLUMN held boolean NOT NULL DEFAULT false,
    ADD COLUMN hold_id uuid,
    ADD CONSTRAINT registrations_hold_has_id CHECK (NOT held OR hold_id IS NOT NULL);

CREATE TABLE holds (
    hold_id    uuid PRIMARY KEY,
    event_id   uuid NOT NULL,
    user_id    uuid NOT NULL,
    expires_at timestamptz NOT NULL,
    state      text NOT NULL CHECK (state IN ('held', 'confirmed', 'released', 'expired')),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The sweeper's question: which holds are past their expiry.
CREATE INDEX holds_to_expire ON holds (expires_at) WHERE state = 'held';
-- The worker's: which holds of an event may expire in a batch.
CREATE INDEX holds_of_event ON holds (event_id, expires_at) WHERE state = 'held';

CREATE TABLE waitlist (
    event_id            uuid NOT NULL,
    user_id             uuid NOT NULL,
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    email               text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    seq                 bigint NOT NULL CHECK (seq >= 1),
    command_id          uuid NOT NULL,
    cancel_token_sha256 bytea CHECK (length(cancel_token_sha256) = 32),
    joined_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, user_id),
    CONSTRAINT waitlist_one_per_place UNIQUE (event_id, seq)
);

ALTER TABLE processed_commands DROP CONSTRAINT processed_commands_kind_check;
ALTER TABLE processed_commands
    ADD CONSTRAINT processed_commands_kind_check CHECK (kind IN ('create_event', 'register',
        'cancel', 'place_hold', 'confirm_hold', 'release_hold', 'expire_hold', 'update_event',
        'cancel_event')),
    ADD COLUMN position bigint,
    ADD COLUMN hold_id uuid,
    ADD COLUMN expires_at timestamptz,
    ADD COLUMN stream bytea;

-- The relay's question after a restart: the records of a partition's
-- commands from its stream offset on.
CREATE INDEX processed_commands_by_offset ON processed_commands (topic, kafka_partition, kafka_offset);

ALTER TABLE consumer_offsets ADD COLUMN stream_offset bigint NOT NULL DEFAULT 0;
-- Commands applied before this migration have no records to publish.
UPDATE consumer_offsets SET stream_offset = next_offset;
