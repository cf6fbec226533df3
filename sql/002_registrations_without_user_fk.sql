-- SPDX-License-Identifier: Apache-2.0
-- 002 — registrations no longer reference users by foreign key.
--
-- The check ran once per registration row and cost a quarter of a burst's
-- insert time. What must never happen is still impossible by constraint:
-- one registration per (event, user) is the primary key, and the seat
-- bounds and the event's capacity are untouched. users still gets a row per
-- email, written in the same transaction as the registration.
ALTER TABLE registrations DROP CONSTRAINT registrations_user_id_fkey;
