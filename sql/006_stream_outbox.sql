-- SPDX-License-Identifier: Apache-2.0
-- 006 — the event stream's outbox: one row per batch and partition.
--
-- 005 stored each command's records with it (processed_commands.stream)
-- and indexed processed_commands by offset for the relay's recovery: an
-- index entry per registration, a sixth of PostgreSQL's time per request
-- in a burst (bench/run, hot event: 38 us against 32 us without it).
-- stream_outbox holds the same records, one row for all the commands of
-- a partition in one batch, written in the same transaction as their
-- changes; the relay deletes the rows below its stored watermark
-- (consumer_offsets.stream_offset), so the table stays small.
--
-- records: one frame per record, in publishing order: the command's offset
-- (8 bytes, big-endian), its event id (36 bytes of text: the Kafka key),
-- the record's length (4 bytes, big-endian), the record (an Avro
-- single-object message of schemas/change.avsc).
CREATE TABLE stream_outbox (
    topic           text NOT NULL,
    kafka_partition integer NOT NULL,
    first_offset    bigint NOT NULL,
    last_offset     bigint NOT NULL CHECK (last_offset >= first_offset),
    records         bytea NOT NULL,
    PRIMARY KEY (topic, kafka_partition, first_offset)
);
-- A batch's records are a few hundred kB of Avro that hardly compresses:
-- kept out of line uncompressed (compressing them cost more than it saved).
ALTER TABLE stream_outbox ALTER COLUMN records SET STORAGE EXTERNAL;

-- Records of 005's column not yet published move over, one row per
-- command (frames as above).
DO $$
DECLARE
    r record;
    pos integer;
    n integer;
    frames bytea;
BEGIN
    FOR r IN SELECT p.topic, p.kafka_partition, p.kafka_offset, p.event_id, p.stream
               FROM processed_commands p
               JOIN consumer_offsets o
                 ON o.topic = p.topic AND o.kafka_partition = p.kafka_partition
              WHERE p.stream IS NOT NULL AND p.kafka_offset >= o.stream_offset
              ORDER BY p.topic, p.kafka_partition, p.kafka_offset
    LOOP
        pos := 0;
        frames := ''::bytea;
        WHILE pos + 4 <= length(r.stream) LOOP
            n := get_byte(r.stream, pos) * 16777216 + get_byte(r.stream, pos + 1) * 65536
                 + get_byte(r.stream, pos + 2) * 256 + get_byte(r.stream, pos + 3);
            frames := frames || int8send(r.kafka_offset) || convert_to(r.event_id::text, 'UTF8')
                      || substring(r.stream FROM pos + 1 FOR n + 4);
            pos := pos + 4 + n;
        END LOOP;
        INSERT INTO stream_outbox (topic, kafka_partition, first_offset, last_offset, records)
        VALUES (r.topic, r.kafka_partition, r.kafka_offset, r.kafka_offset, frames);
    END LOOP;
END $$;

DROP INDEX processed_commands_by_offset;
ALTER TABLE processed_commands DROP COLUMN stream;
