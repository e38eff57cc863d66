"""Reading RAW files on the driver, one whole file at a time.

Sail 0.7.2 splits whole-file reads (``text(wholetext=True)``, ``binaryFile``, multi-line ``json``)
over many files at byte boundaries and loses or duplicates rows. So RAW is never read by Spark
here: the driver lists the files of a window in the RAW store (:mod:`lakehouse.raw_store`), reads
each one whole, parses it and hands typed-as-received records to Spark through Arrow. Each parser
returns the records of one file and the count, so RAW -> BRONZE reconciles file by file.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import chain, repeat

import numpy as np
import pyarrow as pa

from lakehouse.contracts import alpha_vantage as av
from lakehouse.contracts.raw_layout import (
    CAPTURE_ROOT,
    CaptureLocation,
    PayloadLocation,
    RawLayoutError,
    days,
    payload_folder,
)
from lakehouse.raw_store import RawFile, RawStore


class RawFormatError(ValueError):
    """A RAW file that cannot be turned into records; the message says which and why."""


@dataclass(frozen=True)
class IngestedFile:
    """A RAW payload of an ingestion run, with what its path says."""

    file: RawFile
    location: PayloadLocation

    @property
    def provider(self) -> str:
        return self.location.provider

    @property
    def ingest_date(self) -> dt.date:
        return self.location.ingest_date

    @property
    def symbol(self) -> str:
        return self.location.symbol

    @property
    def run_id(self) -> str:
        return self.location.run_id


@dataclass(frozen=True)
class CaptureFile:
    """An Event Hubs Capture file, with what its path says."""

    file: RawFile
    location: CaptureLocation


@dataclass
class Parsed:
    """Records of one file as columns (name -> values, in file order), or why there are none.

    Columns, not row dicts: a 5-year history is 1,256 records of 11 fields, and building a dict per
    record and then a list per column from the dicts was most of RAW -> BRONZE's driver time. A
    column is a list of Python values, or already an Arrow array where the parser could build it
    without visiting each value in Python (the text fields of a daily series).
    """

    columns: dict[str, list | pa.Array] = field(default_factory=dict)
    rejected: str | None = None
    count: int = 0
    facts: dict = field(default_factory=dict)  # per-file values (name -> one value for all its rows)

    @classmethod
    def of_records(cls, records: list[dict]) -> Parsed:
        names = list(records[0]) if records else []
        return cls({n: [r.get(n) for r in records] for n in names}, None, len(records))

    @property
    def records(self) -> list[dict]:
        """The records as dicts (for callers that want rows)."""
        names = list(self.columns)
        lists = [v.to_pylist() if isinstance(v, pa.Array) else v for v in self.columns.values()]
        return [dict(zip(names, values, strict=True)) for values in zip(*lists, strict=True)]


def ingested_files(store: RawStore, provider: str, dataset: str, start: dt.date, end: dt.date) -> list[IngestedFile]:
    """RAW payloads of `dataset` whose ingest_date lies in [start, end]; other files are ignored."""
    found = []
    for day in days(start, end):
        for f in store.list(payload_folder(provider, dataset, day)):
            try:
                found.append(IngestedFile(f, PayloadLocation.parse(f.path)))
            except RawLayoutError:
                continue
    return found


def capture_files(store: RawStore, start: dt.date, end: dt.date) -> list[CaptureFile]:
    """Event Hubs Capture Avro files captured on days in [start, end]; other files are ignored."""
    found = []
    for f in store.list(CAPTURE_ROOT):
        try:
            location = CaptureLocation.parse(f.path)
        except RawLayoutError:
            continue
        if start <= location.day <= end:
            found.append(CaptureFile(f, location))
    return found


class JsonObject(list):
    """A JSON object decoded as its (key, value) pairs (duplicate keys kept); a JSON array stays a plain list."""


def _pairs(pairs: list[tuple[str, object]]) -> list[tuple[str, object]]:
    return JsonObject(pairs)


def _decode(data: bytes, origin: str) -> object:
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=_pairs)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RawFormatError(f"{origin}: not UTF-8 JSON ({exc})") from None


def _error_body(body: dict) -> str | None:
    for key in av.ERROR_KEYS:
        if key in body:
            return f"provider message {key!r}: {str(body[key])[:300]}"
    return None


def _text(value: object) -> str | None:
    """A value as bronze keeps it: text as received, a nested object or array as its JSON (whichever
    decoder read it: the C decoder gives dicts, the duplicate-preserving one :class:`JsonObject`)."""
    if value is None:
        return None
    if isinstance(value, dict | list):  # a nested object or array where a scalar was expected
        return json.dumps(_plain(value))
    return str(value)


def _plain(value: object) -> object:
    if isinstance(value, JsonObject):
        return {k: _plain(v) for k, v in value}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _dicts(node: object) -> int:
    """Objects anywhere in a decoded JSON value, the value itself included.

    The thousand bars of a series are counted without a Python call per bar when none of them
    holds a nested object or array (the usual case): one pass over all their values in C.
    """
    if type(node) is list:
        return sum(map(_dicts, node))
    if type(node) is not dict:
        return 0
    inner = [v for v in node.values() if type(v) is dict or type(v) is list]
    if inner and set(map(type, inner)) == {dict}:
        leaves = set(map(type, chain.from_iterable(map(dict.values, inner))))
        if dict not in leaves and list not in leaves:
            return 1 + len(inner)
    return 1 + sum(map(_dicts, inner))


def _fast_body(data: bytes) -> dict | None:
    """The body decoded by the C decoder, or None when it may hold duplicate keys (or is not JSON).

    Every object of the body opens with a ``{`` in the text, so the decoded body holds at most as
    many objects as the text has ``{``, fewer when an object-valued key was duplicated (the dict
    collapsed it). Counting at least as many decoded objects as the text has ``{`` proves there
    was no such duplicate. A series' bars are counted as one object each without looking inside
    them (:func:`_objects_at_least`): a bar holding a nested object then counts short and, like a
    ``{`` inside a string, only sends the body to the slower pairs decoder.
    """
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if type(body) is not dict or data.count(b"{") != _objects_at_least(body):
        return None
    return body


def _objects_at_least(body: dict) -> int:
    """Objects of a decoded body, counting the bars of a series of objects one each (their insides
    uncounted, so never more than the body holds): walking the thousand bars' values of a full
    history to count what they hold cost as much as a fifth of its parsing."""
    count = 1
    for key, value in body.items():
        if key == av.SERIES_KEY and type(value) is dict and set(map(type, value.values())) <= {dict}:
            count += 1 + len(value)
        else:
            count += _dicts(value)
    return count


# Rows of a file with the row's (symbol, trade_date) key: silver's duplicate-in-file rule reads it
# instead of counting 628k bars per (file, symbol, date) in the engine (docs/transforms.md, ninth pass).
IN_FILE = "rows_in_file_with_key"
# The file's last bar: its latest trade_date where the driver knows the engine's date for every one
# of its dates, else NULL (silver then takes the max itself; docs/transforms.md, ninth pass).
LAST_IN_FILE = "file_last_trade_date"
_ISO_DAYS = re.compile(r"(?:[0-9]{4}-[0-9]{2}-[0-9]{2}\n)*")


def last_trade_date(days: list) -> dt.date | None:
    """The latest of a file's `days` (strings as received) when every one is a plain ``YYYY-MM-DD``
    date of years 0001-9999, else None. For such strings the latest text is the latest date, and
    silver's ``try_cast`` reads the same date from each (pinned by a test against the engine); any
    other string (a day that does not exist, another layout, year 0000) leaves the answer to silver.
    """
    if not days or not all(type(d) is str for d in days):
        return None
    # One match over the joined dates: n newlines in the pattern are exactly the n separators, so
    # each date is one 10-character YYYY-MM-DD (a Python call per date was most of the cost).
    if not _ISO_DAYS.fullmatch("\n".join(days) + "\n"):
        return None
    try:
        parsed = list(map(dt.date.fromisoformat, days))
    except ValueError:
        return None
    return max(parsed)


def parse_daily_bars(data: bytes, origin: str) -> Parsed:
    """Bars of a TIME_SERIES_DAILY(_ADJUSTED) body, values as received (strings), in file order.

    Duplicate dates inside one file are kept as separate records (then the JSON object is read
    as a list of pairs), so silver's duplicate rule can see them.
    """
    body = _fast_body(data)
    if body is not None:
        series = body.get(av.SERIES_KEY)
        if type(series) is dict:
            columns = _bar_columns(body, series)
            if columns is not None:
                return columns
        is_object, items = (lambda v: isinstance(v, dict)), (lambda v: v.items())
    else:
        body, reason = _object(data, origin)
        if body is None:
            return Parsed(rejected=reason)
        is_object, items = (lambda v: isinstance(v, JsonObject)), (lambda v: v)
    series = body.get(av.SERIES_KEY)
    if series is None:
        reason = _error_body(body) or f"no {av.SERIES_KEY!r} object (keys: {sorted(body)[:5]})"
        return Parsed(rejected=f"{origin}: {reason}")
    if not is_object(series):
        return Parsed(rejected=f"{origin}: {av.SERIES_KEY!r} is not an object")
    meta = body.get(av.META_KEY)
    meta = dict(items(meta)) if is_object(meta) else {}
    symbol = _text(meta.get(av.META_SYMBOL))
    empty = dict.fromkeys(av.BAR_COLUMNS.values())
    records = []
    for index, (day, values) in enumerate(items(series)):
        if not is_object(values):
            return Parsed(rejected=f"{origin}: bar {day!r} is not an object")
        rec = {"symbol": symbol, "trade_date": day, "record_index": index, IN_FILE: None, **empty}
        for key, value in items(values):
            name = av.BAR_COLUMNS.get(key.split(". ", 1)[-1])
            if name is not None:
                rec[name] = value if isinstance(value, str) else _text(value)
        records.append(rec)
    if not records:
        return Parsed({n: [] for n in ("symbol", "trade_date", "record_index", IN_FILE, *av.BAR_COLUMNS.values())})
    repeats = Counter(rec["trade_date"] for rec in records)  # the file's symbol is one: the date is the key
    for rec in records:
        rec[IN_FILE] = repeats[rec["trade_date"]]
    parsed = Parsed.of_records(records)
    parsed.facts[LAST_IN_FILE] = last_trade_date(list(repeats))
    return parsed


_SCALAR_TEXT = {str, type(None)}


def _bar_columns(body: dict, series: dict) -> Parsed | None:
    """The bars of a decoded body as columns, one list per field, or None where the record by
    record path must decide (a bar that is not an object, two keys naming one field)."""
    bars = list(series.values())
    if bars and set(map(type, bars)) != {dict}:
        return None
    by_name: dict[str, str] = {}
    for key in set().union(*bars):
        name = av.BAR_COLUMNS.get(key.split(". ", 1)[-1])
        if name is not None:
            if name in by_name:
                return None
            by_name[name] = key
    meta = body.get(av.META_KEY)
    symbol = _text(meta.get(av.META_SYMBOL)) if type(meta) is dict else None
    n = len(bars)
    columns: dict[str, list | pa.Array] = {
        "symbol": pa.repeat(pa.scalar(symbol, pa.string()), n),
        "trade_date": list(series),
        "record_index": pa.array(np.arange(n, dtype=np.int32)),
        IN_FILE: pa.repeat(pa.scalar(1, pa.int32()), n),  # a dict's keys: no date twice (_fast_body)
    }
    facts = {LAST_IN_FILE: last_trade_date(columns["trade_date"])}  # one symbol a file (its Meta Data)
    texts = _text_arrays(bars, by_name)
    if texts is not None:
        for name in av.BAR_COLUMNS.values():
            columns[name] = texts[name] if name in texts else pa.nulls(n, pa.string())
        return Parsed(columns, None, n, facts)
    for name in av.BAR_COLUMNS.values():
        key = by_name.get(name)
        if key is None:
            columns[name] = [None] * n
            continue
        values = list(map(dict.get, bars, repeat(key, n)))
        if not set(map(type, values)) <= _SCALAR_TEXT:
            values = [v if isinstance(v, str) else _text(v) for v in values]
        columns[name] = values
    return Parsed(columns, None, n, facts)


def _text_arrays(bars: list[dict], by_name: dict[str, str]) -> dict[str, pa.Array] | None:
    """The bars' fields as Arrow text arrays, built in one pass of Arrow's converter over the bar
    objects (a third of the parse time of a full history, against one Python list per field first),
    or None when a value is not text (a number, a nested value) and must go through :func:`_text`."""
    if not by_name:
        return {}
    names = list(by_name)
    try:
        bars_array = pa.array(bars, pa.struct([(by_name[name], pa.string()) for name in names]))
    except (pa.ArrowTypeError, pa.ArrowInvalid, UnicodeEncodeError):
        return None
    return {name: bars_array.field(i) for i, name in enumerate(names)}


def _object(data: bytes, origin: str) -> tuple[dict | None, str | None]:
    """The body as a dict of its top-level keys, or the reason it is not a JSON object."""
    try:
        pairs = _decode(data, origin)
    except RawFormatError as exc:
        return None, str(exc)
    if not isinstance(pairs, JsonObject):
        return None, f"{origin}: top level is not a JSON object"
    return dict(pairs), None


def parse_overview(data: bytes, origin: str) -> Parsed:
    """The one record of an OVERVIEW body; an empty object or an error message is a rejection."""
    body, reason = _object(data, origin)
    if body is None:
        return Parsed(rejected=reason)
    if not body:
        return Parsed(rejected=f"{origin}: empty overview (unknown symbol?)")
    reason = _error_body(body)
    if reason:
        return Parsed(rejected=f"{origin}: {reason}")
    rec = {name: _text(body.get(key)) for key, name in av.OVERVIEW_FIELDS.items()}
    rec["payload"] = json.dumps(body, sort_keys=True)
    return Parsed.of_records([rec])


ACTION_COLUMNS = ("symbol", "action", "ex_date", "value", "declaration_date", "record_date", "payment_date",
                  "record_index")  # fmt: skip


def parse_corporate_actions(dataset: str):
    """The parser of a SPLITS (``splits``) or DIVIDENDS (``dividends``) body: one record per event.

    Values stay as received (strings, ``"None"`` included); a symbol without events is a body with
    an empty ``data`` list, which holds no records and is no error.
    """
    _function, fields, action = av.CORPORATE_ACTIONS[dataset]

    def parse(data: bytes, origin: str) -> Parsed:
        body, reason = _object(data, origin)
        if body is None:
            return Parsed(rejected=reason)
        events = body.get(av.ACTIONS_DATA_KEY)
        if events is None:
            reason = _error_body(body) or f"no {av.ACTIONS_DATA_KEY!r} list (keys: {sorted(body)[:5]})"
            return Parsed(rejected=f"{origin}: {reason}")
        if isinstance(events, JsonObject) or not isinstance(events, list):
            return Parsed(rejected=f"{origin}: {av.ACTIONS_DATA_KEY!r} is not a list")
        symbol = _text(body.get(av.ACTIONS_SYMBOL_KEY))
        records = []
        for index, event in enumerate(events):
            if not isinstance(event, JsonObject):
                return Parsed(rejected=f"{origin}: event {index} is not an object")
            values = dict(event)
            rec = dict.fromkeys(ACTION_COLUMNS)
            rec.update(symbol=symbol, action=action, record_index=index)
            for wire, column in fields.items():
                rec[column] = _text(values.get(wire))
            records.append(rec)
        if not records:
            return Parsed({n: [] for n in ACTION_COLUMNS})
        return Parsed.of_records(records)

    return parse


def parse_capture(data: bytes, origin: str) -> list[dict]:
    """Events of one Capture Avro file: only Body, SequenceNumber, EnqueuedTimeUtc and Offset."""
    import fastavro

    try:
        reader = fastavro.reader(io.BytesIO(data))
        events = list(reader)
    except Exception as exc:
        raise RawFormatError(f"{origin}: not a readable Avro container ({exc})") from None
    records = []
    for event in events:
        raw_body = event.get("Body") or b""
        text = raw_body.decode("utf-8", errors="replace") if isinstance(raw_body, bytes) else str(raw_body)
        rec = {
            "body": text,
            "sequence_number": int(event["SequenceNumber"]),
            "offset": _text(event.get("Offset")),
            "enqueued_time": _text(event.get("EnqueuedTimeUtc")),
            "symbol": None,
            "fetched_at": None,
            "ingest_run_id": None,
            "entitlement": None,  # realtime, delayed or end_of_day; None in events of older publishers
        }
        rec.update(dict.fromkeys(v for v in av.QUOTE_FIELDS.values() if v != "quote_symbol"))
        try:
            message = json.loads(text)
        except json.JSONDecodeError:
            message = None
        if isinstance(message, dict):
            rec["symbol"] = _text(message.get("symbol"))
            rec["fetched_at"] = _text(message.get("fetched_at"))
            rec["ingest_run_id"] = _text(message.get("run_id"))
            rec["entitlement"] = _text(message.get("entitlement"))
            quote = message.get("quote")
            if isinstance(quote, dict):
                for key, name in av.QUOTE_FIELDS.items():
                    if name != "quote_symbol":
                        rec[name] = _text(quote.get(key))
        records.append(rec)
    return records
