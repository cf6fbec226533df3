-- SPDX-License-Identifier: Apache-2.0
-- 004 — what protected mode stores: organizer keys, cancel tokens, and the
-- request an idempotency key was first used with.
--
-- Secrets are stored as their SHA-256 only: a key or a token is 128 or more
-- random bits, so a plain hash is enough (no salt or slow hash is needed
-- against guessing), and a copy of the database gives nobody a usable key.

-- Organizer keys (turnstile-admin keys create|list|revoke). events NULL: the
-- key covers every event; otherwise only those listed.
CREATE TABLE api_keys (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    key_sha256  bytea NOT NULL UNIQUE CHECK (length(key_sha256) = 32),
    events      uuid[],
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- A name names one active key (a revoked key's name may be used again).
CREATE UNIQUE INDEX api_keys_active_name ON api_keys (name) WHERE revoked_at IS NULL;

-- The registrant's cancel token. NULL: none was issued (open mode, or a
-- producer that sent none); such a registration is cancelled by its user id
-- alone or by an organizer.
ALTER TABLE registrations
    ADD COLUMN cancel_token_sha256 bytea CHECK (length(cancel_token_sha256) = 32);

-- The hash of the request a command stands for, when its id came from an
-- Idempotency-Key: the same id with another request is refused, not
-- answered with this command's outcome.
ALTER TABLE processed_commands
    ADD COLUMN request_sha256 bytea CHECK (length(request_sha256) = 32);
