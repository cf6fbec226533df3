#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A service that registers people through Kafka, with nothing but
confluent-kafka's standard Avro serializer and a Schema Registry.

It creates an event, registers people for it, cancels one of them, and
reads every outcome from the reply topic with the standard Avro
deserializer: the same framing (0x00, schema id, Avro body) that any
Confluent or Apicurio serializer writes, in Java, Go or .NET too.

Before it runs, the schemas must be in the registry under their record
names (turnstile-admin schemas register): the serializer runs with
auto.register.schemas off and the RecordNameStrategy, as several record
types share the commands topic.

    pip install 'confluent-kafka[avro]'
    examples/python_producer.py --bootstrap 127.0.0.1:9092 \\
        --registry http://127.0.0.1:8081/apis/ccompat/v7 --people 5

It prints one JSON line per reply and exits 0 when every outcome is the
one expected (the last person is refused: the event has a seat fewer),
1 otherwise.
"""

import argparse
import json
import pathlib
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient, record_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

SCHEMAS = pathlib.Path(__file__).resolve().parent.parent / "schemas"


def serializer(registry, name):
    # The schema text must be the registered text byte for byte: registries
    # match a lookup by its text.
    return AvroSerializer(
        registry,
        (SCHEMAS / name).read_text(),
        conf={
            "auto.register.schemas": False,
            "subject.name.strategy": record_subject_name_strategy,
        },
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--registry", default="http://127.0.0.1:8081/apis/ccompat/v7")
    ap.add_argument("--prefix", default="turnstile", help="TS_TOPIC_PREFIX of the deployment")
    ap.add_argument("--reply-topic", help="one of the worker's TS_REPLY_TOPICS (default PREFIX.replies)")
    ap.add_argument("--reply-partition", type=int, default=7,
                    help="a partition of the reply topic that no API instance uses")
    ap.add_argument("--people", type=int, default=5, help="registrations; the event has one seat fewer")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for every reply")
    args = ap.parse_args()
    if args.people < 2:
        ap.error("--people must be at least 2")
    commands = f"{args.prefix}.commands"
    reply_topic = args.reply_topic or f"{args.prefix}.replies"
    reply_to = {"topic": reply_topic, "partition": args.reply_partition}

    registry = SchemaRegistryClient({"url": args.registry})
    ser = {
        "CreateEvent": serializer(registry, "create_event.avsc"),
        "Register": serializer(registry, "register.avsc"),
        "Cancel": serializer(registry, "cancel.avsc"),
    }
    # The reply's writer schema comes from the registry, by the id in each message.
    deser = AvroDeserializer(registry)

    # Where the replies are now: read from the end, before producing.
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": f"example-{uuid.uuid4()}",
                         "enable.auto.commit": False})
    tp = TopicPartition(reply_topic, args.reply_partition)
    _, high = consumer.get_watermark_offsets(tp, timeout=10)
    consumer.assign([TopicPartition(reply_topic, args.reply_partition, high)])

    # murmur2: the partitioner of the project's producers and of Java's
    # clients; every command of an event must land in one partition.
    producer = Producer({"bootstrap.servers": args.bootstrap, "enable.idempotence": True,
                         "acks": "all", "partitioner": "murmur2_random"})
    event_id = str(uuid.uuid4())
    now_ms = int(time.time() * 1000)
    expected = {}  # command_id -> outcome

    def send(kind, fields, outcome):
        command_id = str(uuid.uuid4())
        value = {"command_id": command_id, "issued_at": int(time.time() * 1000),
                 "reply_to": reply_to, "event_id": event_id, "request_sha256": None, **fields}
        ctx = SerializationContext(commands, MessageField.VALUE)
        producer.produce(commands, key=event_id.encode(), value=ser[kind](value, ctx))
        expected[command_id] = outcome
        return command_id

    def collect(wanted):
        """Reads replies until every command in `wanted` is answered."""
        got = {}
        deadline = time.monotonic() + args.timeout
        while wanted - got.keys() and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            reply = deser(msg.value(), SerializationContext(reply_topic, MessageField.VALUE))
            # logical types come back as Python's: uuid.UUID, datetime
            reply = {k: (v.isoformat() if hasattr(v, "isoformat") else
                         str(v) if isinstance(v, uuid.UUID) else v) for k, v in reply.items()}
            if reply["command_id"] in wanted:
                got[reply["command_id"]] = reply
                print(json.dumps(reply), flush=True)
        return got

    # The event first: a Register for an event not yet applied would be refused.
    create = send("CreateEvent", {
        "title": "Launch, via Kafka", "description": None, "starts_at": now_ms + 86_400_000,
        "location": "Docks", "capacity": args.people - 1}, "CREATED")
    producer.flush(30)
    replies = collect({create})

    registered = []
    for i in range(args.people):
        outcome = "REGISTERED" if i < args.people - 1 else "EVENT_FULL"
        cid = send("Register", {"name": f"Person {i}", "email": f"person{i}@example.org",
                                "cancel_token_sha256": None, "waitlist": False}, outcome)
        registered.append(cid)
    producer.flush(30)
    replies.update(collect(set(registered)))

    first = replies.get(registered[0], {})
    if first.get("user_id"):
        cancel = send("Cancel", {"user_id": first["user_id"], "token_sha256": None}, "CANCELLED")
        producer.flush(30)
        replies.update(collect({cancel}))
    consumer.close()

    wrong = [(cid, want, replies.get(cid, {}).get("outcome")) for cid, want in expected.items()
             if replies.get(cid, {}).get("outcome") != want]
    for cid, want, got in wrong:
        print(f"python_producer: command {cid}: expected {want}, got {got}", file=sys.stderr)
    print(f"python_producer: event {event_id}: {len(expected) - len(wrong)} of {len(expected)} "
          f"outcomes as expected", file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
