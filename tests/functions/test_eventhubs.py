"""Quote publishers: Capture-identical Avro files locally; batching for Event Hubs in Azure.

The Event Hubs service is mocked (no namespace here): the producer below hands out real
``EventDataBatch`` objects with a small size limit and records what would be sent.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import fastavro
import pytest
from azure.eventhub import EventDataBatch, EventHubProducerClient
from market_ingest.eventhubs import (
    CaptureFilePublisher,
    Event,
    EventHubsPublisher,
    capture_time,
    partition_of,
)
from market_ingest.quotes import quote_event

from lakehouse.contracts.raw_layout import CaptureLocation
from lakehouse.raw_store import DirectoryRawStore


def test_capture_time_and_path_use_captures_formats():
    moment = dt.datetime(2024, 5, 24, 18, 3, 9, tzinfo=dt.UTC)
    assert capture_time(moment) == "5/24/2024 6:03:09 PM"
    assert capture_time(moment.replace(hour=0)) == "5/24/2024 12:03:09 AM"
    assert (
        CaptureLocation("local", "market-quotes", "2", moment).path
        == "eventhubs/local/market-quotes/2/2024/05/24/18/03/09.avro"
    )


def read_all(raw: Path) -> list[tuple[str, dict]]:
    out = []
    for path in sorted(raw.rglob("*.avro")):
        with open(path, "rb") as fh:
            out += [(path.relative_to(raw).as_posix(), r) for r in fastavro.reader(fh)]
    return out


def test_sequence_numbers_continue_across_publishes_and_same_second_files_grow(tmp_path: Path):
    moment = dt.datetime(2024, 5, 24, 15, 0, 0, tzinfo=dt.UTC)
    publisher = CaptureFilePublisher(
        DirectoryRawStore(tmp_path / "raw"), partitions=1, state_dir=tmp_path / "state", clock=lambda: moment
    )
    publisher.publish([Event("AAPL", b'{"n": 1}'), Event("MSFT", b'{"n": 2}')])
    publisher.publish([Event("AAPL", b'{"n": 3}')])
    records = read_all(tmp_path / "raw")
    assert {p for p, _ in records} == {"eventhubs/local/market-quotes/0/2024/05/24/15/00/00.avro"}
    assert [r["SequenceNumber"] for _, r in records] == [0, 1, 2]
    assert [json.loads(r["Body"])["n"] for _, r in records] == [1, 2, 3]
    offsets = [int(r["Offset"]) for _, r in records]
    assert offsets == sorted(offsets) and len(set(offsets)) == 3
    assert records[0][1]["EnqueuedTimeUtc"] == "5/24/2024 3:00:00 PM"
    assert records[0][1]["SystemProperties"]["x-opt-partition-key"] == "AAPL"


def test_a_symbol_always_lands_in_the_same_partition(tmp_path: Path):
    times = iter([dt.datetime(2024, 5, 24, 15, 0, s, tzinfo=dt.UTC) for s in range(3)])
    publisher = CaptureFilePublisher(
        DirectoryRawStore(tmp_path / "raw"), partitions=4, state_dir=tmp_path / "state", clock=lambda: next(times)
    )
    symbols = ["AAPL", "MSFT", "KO", "JPM", "XOM", "V"]
    for _ in range(3):
        publisher.publish([Event(s, s.encode()) for s in symbols])
    partitions: dict[str, set[str]] = {}
    for path, record in read_all(tmp_path / "raw"):
        partitions.setdefault(record["Body"].decode(), set()).add(path.split("/")[3])
    assert all(parts == {str(partition_of(s, 4))} for s, parts in partitions.items())


class RecordingProducer:
    """Stands in for the Event Hubs service behind EventHubProducerClient."""

    def __init__(self, max_size: int):
        self.max_size = max_size
        self.sent: list[EventDataBatch] = []
        self.created: list[str] = []

    def create_batch(self, partition_key: str):
        self.created.append(partition_key)
        return EventDataBatch(max_size_in_bytes=self.max_size, partition_key=partition_key)

    def send_batch(self, batch: EventDataBatch) -> None:
        self.sent.append(batch)

    def close(self) -> None:
        pass


def test_events_are_batched_per_partition_key_and_a_full_batch_is_sent_first():
    producer = RecordingProducer(max_size=1200)
    events = [Event("AAPL", b"x" * 300, {"run_id": "r"}) for _ in range(7)] + [Event("KO", b"y" * 10)]
    sent = EventHubsPublisher(producer).publish(events)
    assert sent == 8
    keys = [b._partition_key for b in producer.sent]
    aapl = [len(b) for b in producer.sent if b._partition_key == "AAPL"]
    assert keys == ["AAPL"] * len(aapl) + ["KO"]  # one key per batch, each key's batches in a row
    assert sum(aapl) == 7 and len(aapl) >= 2  # 7 x 300 bytes cannot fit one 1200-byte batch
    assert all(b.size_in_bytes <= 1200 for b in producer.sent)
    assert producer.created.count("AAPL") == len(aapl)  # a new batch only after sending a full one


def test_an_event_larger_than_a_batch_is_an_error_not_a_silent_drop():
    producer = RecordingProducer(max_size=200)
    with pytest.raises(ValueError, match="larger than a whole batch"):
        EventHubsPublisher(producer).publish([Event("AAPL", b"x" * 500)])


def test_the_producer_is_the_sdk_client_built_without_a_connection_string():
    class NoToken:
        def get_token(self, *scopes, **kwargs):  # pragma: no cover - no network in construction
            raise AssertionError("no token expected at construction")

    publisher = EventHubsPublisher.from_namespace("ns.servicebus.windows.net", "market-quotes", credential=NoToken())
    assert isinstance(publisher.producer, EventHubProducerClient)
    assert publisher.producer.eventhub_name == "market-quotes"
    assert publisher.producer._address.hostname == "ns.servicebus.windows.net"
    publisher.close()


def test_quote_event_body_follows_the_contract():
    quote = {"01. symbol": "AAPL", "05. price": "190.1000"}
    event = quote_event("AAPL", quote, "run-9", dt.datetime(2024, 5, 24, 15, 0, tzinfo=dt.UTC), "delayed")
    assert event.partition_key == "AAPL"
    assert json.loads(event.body) == {
        "symbol": "AAPL", "fetched_at": "2024-05-24T15:00:00+00:00", "run_id": "run-9", "entitlement": "delayed",
        "quote": quote,
    }  # fmt: skip
