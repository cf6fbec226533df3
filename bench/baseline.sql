-- SPDX-License-Identifier: Apache-2.0
-- The design turnstile replaces, on the same PostgreSQL: one transaction per
-- registration that locks the event row, counts, checks for a duplicate and
-- inserts (bench/rowlock.pgbench); the counter design a competent engineer
-- would build instead (bench/counter.pgbench); the table of the plain
-- batched-insert ceiling (bench/ceiling.pgbench). Recreated by every bench/run.
DROP TABLE IF EXISTS base_registrations, base_events, base_ceiling, base_same_registrations,
    base_same_users, base_same_processed, base_counter_registrations, base_counter_events;
DROP SEQUENCE IF EXISTS base_ceiling_seat;
CREATE TABLE base_events (
    id        integer PRIMARY KEY,
    capacity  integer NOT NULL,
    starts_at timestamptz NOT NULL
);
CREATE TABLE base_registrations (
    id            bigserial PRIMARY KEY,
    event_id      integer NOT NULL REFERENCES base_events (id),
    email         text NOT NULL,
    name          text NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_id, email)
);
-- event 1 is the hot event; 1..1000 the spread
INSERT INTO base_events
SELECT g, CASE WHEN g = 1 THEN :hot_capacity ELSE :spread_capacity END, now() + interval '30 days'
FROM generate_series(1, 1000) g;

-- The counter design: the event row carries the seats taken, bumped in the
-- same autocommit statement that inserts the registration
-- (bench/counter.pgbench). The curve phase sets the capacity and zeroes
-- the counter before each of its points.
CREATE TABLE base_counter_events (
    id        integer PRIMARY KEY,
    capacity  integer NOT NULL,
    taken     integer NOT NULL DEFAULT 0 CHECK (taken BETWEEN 0 AND capacity),
    starts_at timestamptz NOT NULL
);
CREATE TABLE base_counter_registrations (
    id            bigserial PRIMARY KEY,
    event_id      integer NOT NULL REFERENCES base_counter_events (id),
    email         text NOT NULL,
    name          text NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_id, email)
);
INSERT INTO base_counter_events (id, capacity, starts_at)
SELECT id, capacity, starts_at FROM base_events;

-- shaped like turnstile's registrations, with the same keys
CREATE SEQUENCE base_ceiling_seat;
CREATE TABLE base_ceiling (
    event_id      uuid NOT NULL,
    user_id       uuid NOT NULL,
    name          text NOT NULL,
    seat          integer NOT NULL DEFAULT nextval('base_ceiling_seat'),
    capacity      integer NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    command_id    uuid NOT NULL,
    PRIMARY KEY (event_id, user_id),
    UNIQUE (event_id, seat)
);

-- The rows turnstile writes per registration, with their keys and indexes,
-- server-generated (bench/ceiling_same_rows.pgbench): what the data model
-- costs at best, without reading or deciding anything.
CREATE TABLE base_same_users (LIKE users INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
CREATE TABLE base_same_registrations (LIKE registrations INCLUDING DEFAULTS INCLUDING CONSTRAINTS
    INCLUDING INDEXES);
CREATE TABLE base_same_processed (LIKE processed_commands INCLUDING DEFAULTS INCLUDING CONSTRAINTS
    INCLUDING INDEXES);
