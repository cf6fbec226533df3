#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Tests of scripts/turnstile-avro: no services, run by Debian's python3
with python3-avro, as the tool is.

  tests/tools/test_turnstile_avro.py [-v] [TestClass[.test_name]]

Messages the tool reads are written here with python-avro and the schemas'
canonical forms from tests/vectors/fingerprints.txt (Apache Avro for Java's),
so a schema file drifting from the fingerprint table is caught too.
"""
import glob
import io
import json
import os
import select
import struct
import subprocess
import unittest
import uuid

import avro.io
import avro.schema

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
TOOL = os.path.join(ROOT, "scripts", "turnstile-avro")
EVENT = "2b9b0a7e-1d49-4a39-9a8e-0cdb4b8d7d11"
HOLD = "6f1c9d3e-8a55-4a0e-b3a4-3c1e2f0d9b77"
USER = "8bb8a06a-93cf-5efd-8cae-17312cb0e852"
JAN_2026_MS = 1767225600000  # 2026-01-01T00:00:00Z
# The tool as a shell runs it: PYTHONUNBUFFERED would hide a missing flush.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}


def table():
    """schema file -> (fingerprint, canonical form), as Java computed them."""
    out = {}
    with open(os.path.join(ROOT, "tests", "vectors", "fingerprints.txt")) as f:
        for line in f:
            name, hexfp, canonical = line.rstrip("\n").split(" ", 2)
            out[name] = (int(hexfp, 16), canonical)
    return out


TABLE = table()


def crc64_avro(data):
    """The Avro specification's 64-bit Rabin fingerprint."""
    empty = 0xC15D213AA4D7A795
    fp_table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        fp_table.append(fp)
    fp = empty
    for b in data:
        fp = (fp >> 8) ^ fp_table[(fp ^ b) & 0xFF]
    return fp


def message(schema_file, record):
    """A single-object message written with the schema's canonical form."""
    fp, canonical = TABLE[schema_file]
    buf = io.BytesIO()
    buf.write(b"\xc3\x01" + struct.pack("<Q", fp))
    avro.io.DatumWriter(avro.schema.parse(canonical)).write(record, avro.io.BinaryEncoder(buf))
    return buf.getvalue()


def change(seq, type_, **fields):
    record = {name: None for name in ("user_id", "name", "email", "position", "hold_id", "expires_at",
                                      "title", "description", "location", "starts_at", "capacity")}
    record.update(event_id=EVENT, seq=seq, type=type_, occurred_at=JAN_2026_MS + seq,
                  command_id=str(uuid.uuid4()))
    record.update(fields)
    return message("change.avsc", record)


def frame(data):
    """What kcat -f '%S\\n%s' writes for one message."""
    return b"%d\n" % len(data) + data


def run(*args, stdin=b""):
    return subprocess.run([TOOL, *args], input=stdin, capture_output=True, timeout=60, env=ENV)


def decoded(p):
    """The JSON lines a successful run printed."""
    assert p.returncode == 0, p.stderr.decode()
    return [json.loads(line) for line in p.stdout.decode().splitlines()]


class FingerprintTable(unittest.TestCase):
    """The tool trusts tests/vectors/fingerprints.txt: it must be right."""

    def test_lists_every_schema_file(self):
        files = {os.path.basename(f) for f in glob.glob(os.path.join(ROOT, "schemas", "*.avsc"))}
        self.assertEqual(set(TABLE), files)

    def test_each_fingerprint_is_the_crc64_of_its_canonical_form(self):
        for name, (fp, canonical) in TABLE.items():
            self.assertEqual(crc64_avro(canonical.encode()), fp, name)

    def test_each_schema_file_has_the_canonical_form_listed(self):
        # python-avro 1.11 keeps logical types' {"type": "long"} wrapper in
        # its canonical form, which the specification strips: unwrap it.
        def unwrap(v):
            if isinstance(v, dict):
                if len(v) == 1 and "type" in v:
                    return unwrap(v["type"])
                return {k: unwrap(x) for k, x in v.items()}
            if isinstance(v, list):
                return [unwrap(x) for x in v]
            return v
        for name, (_, canonical) in TABLE.items():
            with open(os.path.join(ROOT, "schemas", name)) as f:
                mine = avro.schema.parse(f.read()).canonical_form
            self.assertEqual(unwrap(json.loads(mine)), json.loads(canonical), name)


class Commands(unittest.TestCase):
    def encode(self, *args):
        p = run(*args)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        (record,) = decoded(run("decode", stdin=p.stdout))
        self.assertEqual(record["command_id"], p.stderr.decode().strip())  # printed on stderr
        self.assertEqual(record["event_id"], EVENT)
        self.assertRegex(record["issued_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        # The body is the schema file's: the canonical form reads all of it.
        fp, canonical = TABLE[record["_schema"]]
        self.assertEqual(p.stdout[:10], b"\xc3\x01" + struct.pack("<Q", fp))
        body = io.BytesIO(p.stdout[10:])
        avro.io.DatumReader(avro.schema.parse(canonical)).read(avro.io.BinaryDecoder(body))
        self.assertEqual(body.tell(), len(p.stdout) - 10)
        return record

    def test_create_event(self):
        r = self.encode("create-event", "--event-id", EVENT, "--title", "Gala", "--starts-at",
                        "2030-06-01T20:00:00+02:00", "--location", "Docks", "--capacity", "10")
        self.assertEqual((r["_record"], r["_schema"]), ("turnstile.command.CreateEvent", "create_event.avsc"))
        self.assertEqual((r["title"], r["description"], r["location"], r["capacity"]), ("Gala", None, "Docks", 10))
        self.assertEqual(r["starts_at"], "2030-06-01T18:00:00.000Z")

    def test_register(self):
        r = self.encode("register", "--event-id", EVENT, "--name", "Ada", "--email", "ada@example.org")
        self.assertEqual((r["_record"], r["_schema"]), ("turnstile.command.Register", "register.avsc"))
        self.assertEqual((r["name"], r["email"], r["waitlist"], r["reply_to"]), ("Ada", "ada@example.org", False, None))
        self.assertIsNone(r["cancel_token_sha256"])

    def test_register_on_the_waitlist_with_a_reply_address_and_a_token(self):
        r = self.encode("register", "--event-id", EVENT, "--name", "Ada", "--email", "ada@example.org",
                        "--waitlist", "--reply-topic", "turnstile.replies", "--reply-partition", "5",
                        "--cancel-token", "s3cret")
        self.assertTrue(r["waitlist"])
        self.assertEqual(r["reply_to"], {"topic": "turnstile.replies", "partition": 5})
        self.assertEqual(r["cancel_token_sha256"], "1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0")

    def test_the_command_id_given_is_used(self):
        cid = str(uuid.uuid4())
        r = self.encode("cancel-event", "--event-id", EVENT, "--command-id", cid)
        self.assertEqual(r["command_id"], cid)

    def test_cancel(self):
        r = self.encode("cancel", "--event-id", EVENT, "--user-id", USER)
        self.assertEqual((r["_record"], r["user_id"], r["token_sha256"]), ("turnstile.command.Cancel", USER, None))

    def test_hold(self):
        r = self.encode("hold", "--event-id", EVENT, "--name", "Ada", "--email", "ada@example.org")
        self.assertEqual((r["_record"], r["_schema"]), ("turnstile.command.PlaceHold", "place_hold.avsc"))
        self.assertEqual((r["name"], r["email"], r["ttl_ms"]), ("Ada", "ada@example.org", 600000))
        r = self.encode("hold", "--event-id", EVENT, "--name", "Ada", "--email", "ada@example.org", "--ttl-s", "30")
        self.assertEqual(r["ttl_ms"], 30000)

    def test_confirm_hold(self):
        r = self.encode("confirm-hold", "--event-id", EVENT, "--hold-id", HOLD)
        self.assertEqual((r["_record"], r["hold_id"], r["cancel_token_sha256"]),
                         ("turnstile.command.ConfirmHold", HOLD, None))
        r = self.encode("confirm-hold", "--event-id", EVENT, "--hold-id", HOLD, "--cancel-token", "s3cret")
        self.assertEqual(r["cancel_token_sha256"], "1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0")

    def test_release_hold(self):
        r = self.encode("release-hold", "--event-id", EVENT, "--hold-id", HOLD)
        self.assertEqual((r["_record"], r["_schema"], r["hold_id"]),
                         ("turnstile.command.ReleaseHold", "release_hold.avsc", HOLD))

    def test_update_event_sends_only_what_is_given(self):
        r = self.encode("update-event", "--event-id", EVENT, "--capacity", "20", "--description", "")
        self.assertEqual((r["_record"], r["_schema"]), ("turnstile.command.UpdateEvent", "update_event.avsc"))
        self.assertEqual((r["title"], r["description"], r["location"], r["starts_at"], r["capacity"]),
                         (None, "", None, None, 20))
        r = self.encode("update-event", "--event-id", EVENT, "--title", "New", "--location", "Pier",
                        "--starts-at", "2031-01-01T00:00:00Z")
        self.assertEqual((r["title"], r["location"], r["starts_at"], r["capacity"]),
                         ("New", "Pier", "2031-01-01T00:00:00.000Z", None))

    def test_update_event_without_a_field_is_refused(self):
        p = run("update-event", "--event-id", EVENT)
        self.assertEqual(p.returncode, 2)
        self.assertEqual(p.stdout, b"")
        self.assertIn(b"at least one of", p.stderr)

    def test_cancel_event(self):
        r = self.encode("cancel-event", "--event-id", EVENT)
        self.assertEqual((r["_record"], r["_schema"]), ("turnstile.command.CancelEvent", "cancel_event.avsc"))

    def test_a_time_without_a_zone_is_refused(self):
        p = run("update-event", "--event-id", EVENT, "--starts-at", "2031-01-01T00:00:00")
        self.assertEqual(p.returncode, 2)
        self.assertEqual(p.stdout, b"")


class Decode(unittest.TestCase):
    def reply(self, schema_file, outcome, **more):
        record = dict(command_id=str(uuid.uuid4()), event_id=EVENT, outcome=outcome, user_id=USER,
                      message=None, applied_at=JAN_2026_MS)
        record.update(more)
        return message(schema_file, record)

    def decode(self, data):
        (record,) = decoded(run("decode", stdin=data))
        return record

    def test_every_version_of_the_reply(self):
        for schema_file, outcome in (("reply.v1.avsc", "REGISTERED"), ("reply.v2.avsc", "FORBIDDEN")):
            r = self.decode(self.reply(schema_file, outcome))
            self.assertEqual((r["_record"], r["_schema"], r["outcome"], r["user_id"]),
                             ("turnstile.reply.Reply", schema_file, outcome, USER))
            self.assertEqual(r["applied_at"], "2026-01-01T00:00:00.000Z")
            self.assertNotIn("position", r)
        r = self.decode(self.reply("reply.v3.avsc", "HELD", user_id=None, position=None, hold_id=HOLD,
                                   expires_at=JAN_2026_MS + 600000))
        self.assertEqual((r["_schema"], r["outcome"], r["user_id"], r["hold_id"], r["expires_at"]),
                         ("reply.v3.avsc", "HELD", None, HOLD, "2026-01-01T00:10:00.000Z"))
        self.assertNotIn("commit_lsn", r)
        r = self.decode(self.reply("reply.avsc", "WAITLISTED", position=3, hold_id=None, expires_at=None,
                                   commit_lsn=0x16B3748))
        self.assertEqual((r["_schema"], r["outcome"], r["position"], r["commit_lsn"]),
                         ("reply.avsc", "WAITLISTED", 3, 0x16B3748))

    def test_a_change(self):
        r = self.decode(change(7, "HoldPlaced", user_id=USER, name="Ada", email="ada@example.org",
                               hold_id=HOLD, expires_at=JAN_2026_MS + 600000))
        self.assertEqual((r["_record"], r["_schema"]), ("turnstile.stream.Change", "change.avsc"))
        self.assertEqual((r["event_id"], r["seq"], r["type"], r["hold_id"], r["capacity"]),
                         (EVENT, 7, "HoldPlaced", HOLD, None))
        self.assertEqual(r["occurred_at"], "2026-01-01T00:00:00.007Z")

    def test_an_old_command_version(self):
        r = self.decode(message("register.v1.avsc", dict(command_id=str(uuid.uuid4()), issued_at=JAN_2026_MS,
                                                         reply_to=None, event_id=EVENT, name="Old",
                                                         email="old@example.org")))
        self.assertEqual((r["_record"], r["_schema"], r["name"]), ("turnstile.command.Register", "register.v1.avsc",
                                                                   "Old"))

    def test_a_command_the_worker_sends_itself(self):
        r = self.decode(message("expire_hold.avsc", dict(command_id=str(uuid.uuid4()), issued_at=JAN_2026_MS,
                                                         reply_to=None, event_id=EVENT, hold_id=HOLD)))
        self.assertEqual((r["_record"], r["hold_id"]), ("turnstile.command.ExpireHold", HOLD))

    def refused(self, data, why):
        p = run("decode", stdin=data)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stdout, b"")
        self.assertIn(why, p.stderr.decode())

    def test_an_unknown_fingerprint_is_an_error(self):
        data = self.reply("reply.avsc", "HELD", position=None, hold_id=None, expires_at=None, commit_lsn=0)
        self.refused(data[:2] + bytes(8) + data[10:], "unknown schema: fingerprint 0000000000000000")

    def test_what_is_not_a_single_object_message_is_an_error(self):
        self.refused(b"", "no input")
        self.refused(b'{"outcome": "CREATED"}', "not an Avro single-object message")
        self.refused(b"\xc3\x01\x01\x02", "truncated")

    def test_a_corrupt_body_is_an_error(self):
        data = self.reply("reply.v1.avsc", "CREATED")
        self.refused(data[:-3], "corrupt turnstile.reply.Reply (reply.v1.avsc)")

    def test_bytes_after_the_message_are_an_error(self):
        data = self.reply("reply.v1.avsc", "CREATED")
        self.refused(data + b"\n", "1 bytes after the turnstile.reply.Reply")
        self.refused(data + data, "bytes after the turnstile.reply.Reply")


class DecodeStream(unittest.TestCase):
    def stream(self):
        """Changes whose bodies hold newlines: seq 5 is the byte 0A, and so
        is a name's newline."""
        return [
            change(1, "EventCreated", title="Gala", location="Docks", starts_at=JAN_2026_MS, capacity=1),
            change(5, "Registered", user_id=USER, name="Ada\nLovelace", email="ada@example.org"),
            change(6, "Waitlisted", user_id=USER, name="Bob", email="bob@example.org", position=1),
        ]

    def test_one_line_per_message_whatever_the_bytes(self):
        changes = self.stream()
        self.assertIn(b"\n", changes[1][10:])
        lines = decoded(run("decode-stream", stdin=b"".join(frame(c) for c in changes)))
        self.assertEqual([(r["seq"], r["type"]) for r in lines],
                         [(1, "EventCreated"), (5, "Registered"), (6, "Waitlisted")])
        self.assertEqual(lines[1]["name"], "Ada\nLovelace")
        self.assertEqual(lines[2]["position"], 1)
        self.assertTrue(all(r["_record"] == "turnstile.stream.Change" for r in lines))

    def test_a_newline_after_each_message_is_read_as_well(self):
        lines = decoded(run("decode-stream", stdin=b"".join(frame(c) + b"\n" for c in self.stream())))
        self.assertEqual([r["seq"] for r in lines], [1, 5, 6])

    def test_any_schema(self):
        reply = message("reply.v2.avsc", dict(command_id=str(uuid.uuid4()), event_id=EVENT, outcome="CREATED",
                                              user_id=None, message=None, applied_at=JAN_2026_MS))
        lines = decoded(run("decode-stream", stdin=frame(reply) + frame(self.stream()[0])))
        self.assertEqual([r["_schema"] for r in lines], ["reply.v2.avsc", "change.avsc"])

    def test_no_input_no_output(self):
        self.assertEqual(decoded(run("decode-stream")), [])

    def test_it_stops_at_a_message_it_cannot_decode(self):
        good, _, after = self.stream()
        bad = good[:2] + bytes(8) + good[10:]
        p = run("decode-stream", stdin=frame(good) + frame(bad) + frame(after))
        self.assertEqual(p.returncode, 1)
        self.assertEqual([json.loads(line)["seq"] for line in p.stdout.decode().splitlines()], [1])
        self.assertIn("message 2: unknown schema", p.stderr.decode())

    def test_keep_going_reports_it_and_goes_on(self):
        good, _, after = self.stream()
        bad = good[:2] + bytes(8) + good[10:]
        p = run("decode-stream", "--keep-going", stdin=frame(good) + frame(bad) + frame(b"") + frame(after))
        self.assertEqual(p.returncode, 1)
        self.assertEqual([json.loads(line)["seq"] for line in p.stdout.decode().splitlines()], [1, 6])
        self.assertIn("message 2: unknown schema", p.stderr.decode())
        self.assertIn("message 3: no input", p.stderr.decode())
        self.assertIn("2 of 4 messages not decoded", p.stderr.decode())

    def test_a_null_value(self):
        p = run("decode-stream", "--keep-going", stdin=b"-1\n" + frame(self.stream()[0]))
        self.assertEqual(p.returncode, 1)
        self.assertEqual(len(p.stdout.decode().splitlines()), 1)
        self.assertIn("message 1: null value", p.stderr.decode())

    def test_input_that_is_not_framed_is_an_error(self):
        p = run("decode-stream", stdin=self.stream()[0])
        self.assertEqual(p.returncode, 1)
        self.assertIn("expected a length line", p.stderr.decode())
        self.assertIn("-f '%S\\n%s'", p.stderr.decode())

    def test_input_cut_short_is_an_error(self):
        whole = frame(self.stream()[0]) + frame(self.stream()[1])
        p = run("decode-stream", stdin=whole[:-5])
        self.assertEqual(p.returncode, 1)
        self.assertEqual(len(p.stdout.decode().splitlines()), 1)
        self.assertIn("after 1 messages: input ends", p.stderr.decode())

    def test_each_line_is_written_as_its_message_arrives(self):
        first, second, _ = self.stream()
        p = subprocess.Popen([TOOL, "decode-stream"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=ENV)
        try:
            p.stdin.write(frame(first))
            p.stdin.flush()
            ready, _, _ = select.select([p.stdout], [], [], 30)
            self.assertTrue(ready, "no line before the input ended")
            self.assertEqual(json.loads(p.stdout.readline())["seq"], 1)
            p.stdin.write(frame(second))
            p.stdin.close()
            self.assertEqual(json.loads(p.stdout.readline())["seq"], 5)
            self.assertEqual(p.wait(30), 0)
        finally:
            p.kill()
            p.wait()
            p.stdout.close()


if __name__ == "__main__":
    unittest.main()
