-- SPDX-License-Identifier: Apache-2.0
-- 001_initial.sql — the tables of turnstile.
--
-- The constraints are the last line of defence: even a wrong worker cannot
-- oversell or register someone twice.
--   * Each registration holds a seat number in [1, capacity], unique per
--     event, so an event can never hold more registrations than seats. The
--     registration carries the capacity through a foreign key to
--     events (id, capacity), so the bound is the event's own.
--   * (event_id, user_id) is the primary key of registrations.
--   * events.registered, the counter that stats read, stays within
--     [0, capacity].

CREATE TABLE events (
    id          uuid PRIMARY KEY,
    title       text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description text CHECK (length(description) <= 2000),
    starts_at   timestamptz NOT NULL,
    location    text NOT NULL CHECK (length(location) BETWEEN 1 AND 200),
    capacity    integer NOT NULL CHECK (capacity >= 1),
    registered  integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_registered_within_capacity CHECK (registered BETWEEN 0 AND capacity),
    CONSTRAINT events_id_capacity UNIQUE (id, capacity)
);

-- GET /api/events lists upcoming events by starts_at, then location.
CREATE INDEX events_upcoming ON events (starts_at, location);

-- A user is an email address; id is a name-based UUID of its lowercase form.
CREATE TABLE users (
    id         uuid PRIMARY KEY,
    email      text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE registrations (
    event_id      uuid NOT NULL,
    user_id       uuid NOT NULL REFERENCES users (id),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    seat          integer NOT NULL,
    capacity      integer NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    command_id    uuid NOT NULL,
    PRIMARY KEY (event_id, user_id),
    CONSTRAINT registrations_one_per_seat UNIQUE (event_id, seat),
    CONSTRAINT registrations_seat_within_capacity CHECK (seat BETWEEN 1 AND capacity),
    CONSTRAINT registrations_event FOREIGN KEY (event_id, capacity)
        REFERENCES events (id, capacity) ON UPDATE CASCADE
);

-- GET /api/events/:id lists registrations oldest first.
CREATE INDEX registrations_by_time ON registrations (event_id, registered_at, user_id);

-- Every command applied, with its outcome: the dedupe table (a command seen
-- twice gets its first outcome) and the answer to GET /api/commands/:id.
CREATE TABLE processed_commands (
    command_id      uuid PRIMARY KEY,
    event_id        uuid NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('create_event', 'register', 'cancel')),
    outcome         text NOT NULL,
    user_id         uuid,
    message         text,
    topic           text NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset    bigint NOT NULL,
    processed_at    timestamptz NOT NULL DEFAULT now()
);

-- The next offset to apply of each partition of the commands topic, written
-- in the same transaction as the batch it ends. This, not Kafka's committed
-- offset, is where a worker resumes.
CREATE TABLE consumer_offsets (
    topic           text NOT NULL,
    kafka_partition integer NOT NULL CHECK (kafka_partition >= 0),
    next_offset     bigint NOT NULL CHECK (next_offset >= 0),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, kafka_partition)
);
