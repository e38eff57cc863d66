"""Quote events: Event Hubs in Azure, Capture-identical Avro files in RAW locally.

Event Hubs Capture writes one Avro file per partition and capture window at
``{namespace}/{hub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}/{ss}.avro`` with the ``EventData``
schema below. The local publisher writes exactly that under ``raw/eventhubs/``, so the
readers of Capture files are the same code in both runtimes.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import io
import json
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import fastavro

from lakehouse.contracts.raw_layout import CaptureLocation
from lakehouse.raw_store import RawStore

# The schema of Event Hubs Capture's Avro files (Microsoft.ServiceBus.Messaging.EventData).
CAPTURE_SCHEMA = {
    "type": "record",
    "name": "EventData",
    "namespace": "Microsoft.ServiceBus.Messaging",
    "fields": [
        {"name": "SequenceNumber", "type": "long"},
        {"name": "Offset", "type": "string"},
        {"name": "EnqueuedTimeUtc", "type": "string"},
        {
            "name": "SystemProperties",
            "type": {"type": "map", "values": ["long", "double", "string", "bytes"]},
        },
        {
            "name": "Properties",
            "type": {"type": "map", "values": ["long", "double", "string", "bytes", "null"]},
        },
        {"name": "Body", "type": ["null", "bytes"]},
    ],
}
PARSED_SCHEMA = fastavro.parse_schema(CAPTURE_SCHEMA)


@dataclass(frozen=True)
class Event:
    """One event: its partition key and UTF-8 JSON body."""

    partition_key: str
    body: bytes
    properties: dict[str, str] = field(default_factory=dict)


class EventPublisher(Protocol):
    def publish(self, events: Sequence[Event]) -> int:
        """Send the events; return how many were sent."""
        ...

    def close(self) -> None: ...


def capture_time(moment: dt.datetime) -> str:
    """Capture's EnqueuedTimeUtc text: US format in UTC, e.g. ``9/21/2017 6:33:02 PM``."""
    moment = moment.astimezone(dt.UTC)
    hour = moment.hour % 12 or 12
    suffix = "AM" if moment.hour < 12 else "PM"
    return f"{moment.month}/{moment.day}/{moment.year} {hour}:{moment:%M:%S} {suffix}"


def partition_of(key: str, partitions: int) -> int:
    """Stable partition of a key (Event Hubs hashes keys too; its exact hash is not public)."""
    return zlib.crc32(key.encode()) % partitions


class CaptureFilePublisher:
    """Writes events as Event Hubs Capture would: one Avro file per partition and second.

    Sequence numbers and offsets continue across calls; they are kept in a small state file
    outside the lake (`state_dir`), as Event Hubs keeps them in the service.

    Args:
        store: the RAW container.
        state_dir: where the per-partition counters live (locked while publishing).
        clock: the enqueue time (injectable for tests).
    """

    def __init__(
        self,
        store: RawStore,
        *,
        namespace: str = "local",
        hub: str = "market-quotes",
        partitions: int = 4,
        state_dir: Path,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ):
        self.store = store
        self.namespace = namespace
        self.hub = hub
        self.partitions = partitions
        self.state_path = Path(state_dir) / f"{namespace}.{hub}.json"
        self._clock = clock

    def publish(self, events: Sequence[Event]) -> int:
        if not events:
            return 0
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.state_path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = json.loads(self.state_path.read_text()) if self.state_path.exists() else {}
            enqueued = self._clock().astimezone(dt.UTC)
            by_partition: dict[int, list[Event]] = {}
            for event in events:
                by_partition.setdefault(partition_of(event.partition_key, self.partitions), []).append(event)
            for partition, group in sorted(by_partition.items()):
                counters = state.setdefault(str(partition), {"sequence": 0, "offset": 0})
                records = []
                for event in group:
                    records.append(self._record(event, counters, enqueued))
                self._append(CaptureLocation(self.namespace, self.hub, str(partition), enqueued).path, records)
            tmp = self.state_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(state))
            tmp.replace(self.state_path)
        return len(events)

    @staticmethod
    def _record(event: Event, counters: dict[str, int], enqueued: dt.datetime) -> dict:
        sequence, offset = counters["sequence"], counters["offset"]
        counters["sequence"] += 1
        counters["offset"] += len(event.body) + 64  # offsets grow with the log; spacing is opaque
        return {
            "SequenceNumber": sequence,
            "Offset": str(offset),
            "EnqueuedTimeUtc": capture_time(enqueued),
            "SystemProperties": {
                "x-opt-sequence-number": sequence,
                "x-opt-offset": str(offset),
                "x-opt-enqueued-time": int(enqueued.timestamp() * 1000),
                "x-opt-partition-key": event.partition_key,
            },
            "Properties": dict(event.properties),
            "Body": event.body,
        }

    def _append(self, path: str, records: list[dict]) -> None:
        """Write the file atomically; a second publish in the same second extends it."""
        previous: list[dict] = []
        if self.store.exists(path):
            previous = list(fastavro.reader(io.BytesIO(self.store.read(path))))
        buffer = io.BytesIO()
        fastavro.writer(buffer, PARSED_SCHEMA, [*previous, *records], codec="null")
        self.store.write_atomic(path, buffer.getvalue())

    def close(self) -> None:
        return None


class EventHubsPublisher:
    """Sends events with azure-eventhub's EventHubProducerClient.

    Events are grouped by partition key (a batch carries one key); each group is packed into
    batches sized by ``create_batch`` and a full batch is sent before the next is started.

    Args:
        producer: an ``EventHubProducerClient`` (built by `from_namespace` in Azure).
    """

    def __init__(self, producer):
        self.producer = producer

    @classmethod
    def from_namespace(cls, fully_qualified_namespace: str, eventhub_name: str, credential=None):
        """Producer authenticated with DefaultAzureCredential (the app's managed identity)."""
        from azure.eventhub import EventHubProducerClient

        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        return cls(
            EventHubProducerClient(
                fully_qualified_namespace=fully_qualified_namespace,
                eventhub_name=eventhub_name,
                credential=credential,
            )
        )

    def publish(self, events: Sequence[Event]) -> int:
        from azure.eventhub import EventData

        groups: dict[str, list[Event]] = {}
        for event in events:
            groups.setdefault(event.partition_key, []).append(event)
        sent = 0
        for key, group in groups.items():
            batch = self.producer.create_batch(partition_key=key)
            for event in group:
                data = EventData(event.body)
                data.content_type = "application/json"
                data.properties = dict(event.properties)
                try:
                    batch.add(data)
                except ValueError:  # batch full: send it and start the next one
                    if len(batch) == 0:
                        raise ValueError(f"event for {key} is larger than a whole batch") from None
                    self.producer.send_batch(batch)
                    sent += len(batch)
                    batch = self.producer.create_batch(partition_key=key)
                    batch.add(data)
            if len(batch):
                self.producer.send_batch(batch)
                sent += len(batch)
        return sent

    def close(self) -> None:
        self.producer.close()
