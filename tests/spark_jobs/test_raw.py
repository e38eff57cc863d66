"""Reading RAW files whole on the driver: records as received, rejections with reasons."""

from __future__ import annotations

import datetime as dt
import json

from lakehouse.raw_store import DirectoryRawStore
from spark_jobs import raw
from tests.spark_jobs.raw_files import Bar, bar_body, quote_message


def test_adjusted_series_fields_are_kept_as_received_strings():
    body = bar_body("AAPL", {"2024-01-03": Bar(10, 11, 9, 10.5, 100, dividend=0.25, split=2.0),
                             "2024-01-02": Bar(9, 10, 8, 9.5, 90)})  # fmt: skip
    parsed = raw.parse_daily_bars(body, "f")
    assert parsed.rejected is None
    newest = parsed.records[0]  # file order: Alpha Vantage lists the newest day first
    assert newest == {"symbol": "AAPL", "trade_date": "2024-01-03", "record_index": 0, "rows_in_file_with_key": 1,
                      "open": "10.0000", "high": "11.0000", "low": "9.0000", "close": "10.5000",
                      "adjusted_close": "10.5000", "volume": "100", "dividend_amount": "0.2500",
                      "split_coefficient": "2.0"}  # fmt: skip


def test_daily_series_without_adjustments_maps_5_volume_to_volume():
    parsed = raw.parse_daily_bars(bar_body("KO", {"2024-01-02": Bar(9, 10, 8, 9.5, 90)}, adjusted=False), "f")
    rec = parsed.records[0]
    assert (rec["volume"], rec["adjusted_close"], rec["dividend_amount"], rec["split_coefficient"]) == (
        "90",
        None,
        None,
        None,
    )


def test_duplicate_dates_in_one_file_are_all_kept():
    body = (
        b'{"Meta Data": {"2. Symbol": "A"}, "Time Series (Daily)": '
        b'{"2024-01-02": {"4. close": "1"}, "2024-01-02": {"4. close": "2"}}}'
    )
    assert [(r["close"], r["rows_in_file_with_key"]) for r in raw.parse_daily_bars(body, "f").records] == [
        ("1", 2),
        ("2", 2),
    ]


def test_a_files_last_date_is_kept_once_per_file_where_every_date_is_plain():
    """Both parse paths give the file's latest date as a per-file fact, or None when a date is not a
    plain YYYY-MM-DD day (silver then finds the file's last bar itself)."""
    plain = bar_body("A", {"2024-01-03": Bar(10, 11, 9, 10.5, 100), "2024-01-05": Bar(9, 10, 8, 9.5, 90)})
    odd = bar_body("A", {"2024-01-03": Bar(10, 11, 9, 10.5, 100), "2024-1-5": Bar(9, 10, 8, 9.5, 90)})
    duplicate = (
        b'{"Meta Data": {"2. Symbol": "A"}, "Time Series (Daily)": '
        b'{"2024-01-02": {"4. close": "1"}, "2023-12-29": {"4. close": "2"}, "2024-01-02": {"4. close": "3"}}}'
    )  # the record-by-record path
    got = [raw.parse_daily_bars(body, "f").facts for body in (plain, odd, duplicate)]
    assert got == [{raw.LAST_IN_FILE: dt.date(2024, 1, 5)}, {raw.LAST_IN_FILE: None},
                   {raw.LAST_IN_FILE: dt.date(2024, 1, 2)}]  # fmt: skip
    assert raw.last_trade_date([]) is None and raw.last_trade_date(["2024-01-02", None]) is None


def test_error_bodies_are_rejected_with_the_provider_message():
    for key in ("Error Message", "Note", "Information"):
        parsed = raw.parse_daily_bars(f'{{"{key}": "bad things"}}'.encode(), "p/f.json")
        assert parsed.records == [] and f"provider message '{key}': bad things" in parsed.rejected
    assert "not UTF-8 JSON" in raw.parse_daily_bars(b"\xff\xfe", "f").rejected
    assert "no 'Time Series (Daily)'" in raw.parse_daily_bars(b'{"x": 1}', "f").rejected


def test_ingest_paths_are_parsed_and_foreign_files_ignored(tmp_path):
    store = DirectoryRawStore(tmp_path)
    good = tmp_path / "synthetic/daily_bars/ingest_date=2024-03-01/BRK.B/run-7.json"
    good.parent.mkdir(parents=True)
    good.write_text("{}")
    (good.parent / "notes.txt").write_text("x")
    (tmp_path / "synthetic/daily_bars/ingest_date=2024-03-02").mkdir()
    files = raw.ingested_files(store, "synthetic", "daily_bars", dt.date(2024, 3, 1), dt.date(2024, 3, 2))
    assert [(f.symbol, f.run_id, f.ingest_date, f.file.size) for f in files] == [
        ("BRK.B", "run-7", dt.date(2024, 3, 1), 2)
    ]


def test_capture_events_keep_body_sequence_and_quote_fields(tmp_path):
    from lakehouse.lake import Lake
    from tests.spark_jobs.raw_files import RawLake

    lake = RawLake(Lake(str(tmp_path)))
    at = dt.datetime(2024, 3, 1, 15, 0, 5, tzinfo=dt.UTC)
    path = lake.capture([quote_message("AAPL", 180.0, "2024-03-01T15:00:00Z", "2024-03-01")], at, first_sequence=7)
    assert path == "eventhubs/local/market-quotes/0/2024/03/01/15/00/05.avro"
    (event,) = raw.parse_capture((tmp_path / "raw" / path).read_bytes(), path)
    got = (event["symbol"], event["price"], event["change_percent"], event["sequence_number"], event["ingest_run_id"])
    assert got == (
        "AAPL", "180.0000", "0.5000%", 7, "q1",
    )  # fmt: skip
    store = DirectoryRawStore(tmp_path / "raw")
    (found,) = raw.capture_files(store, dt.date(2024, 3, 1), dt.date(2024, 3, 1))
    assert (found.file.path, found.location.partition) == (path, "0")
    assert raw.capture_files(store, dt.date(2024, 3, 2), dt.date(2024, 3, 3)) == []


def test_fast_and_duplicate_preserving_decoders_agree():
    """The C-decoder fast path is used only when no object-valued key repeats; both give the same records."""
    body = bar_body("AAPL", {"2024-01-03": Bar(10, 11, 9, 10.5, 100), "2024-01-02": Bar(9, 10, 8, 9.5, 90)})
    assert raw._fast_body(body) is not None
    fast = raw.parse_daily_bars(body, "f").records
    slow = [dict(r) for r in raw.parse_daily_bars(body.replace(b"{", b"{ ", 1), "f").records]
    assert fast == slow
    dup = b'{"Time Series (Daily)": {"2024-01-02": {"4. close": "1"}, "2024-01-02": {"4. close": "2"}}}'
    assert raw._fast_body(dup) is None


def test_a_duplicated_date_is_kept_twice_when_its_bars_hold_nested_objects():
    """Bars are counted one object each when checking for collapsed duplicates; a nested object in a
    bar makes the text hold more ``{`` than that count, which sends the body to the pairs decoder."""
    body = (b'{"Meta Data": {"2. Symbol": "A"}, "Time Series (Daily)": {"2024-01-02": {"4. close": {"v": "1"}}, '
            b'"2024-01-02": {"4. close": "2", "9. other": {"w": "x"}}}}')  # fmt: skip
    assert raw._fast_body(body) is None
    assert [(r["trade_date"], r["close"]) for r in raw.parse_daily_bars(body, "f").records] == [
        ("2024-01-02", '{"v": "1"}'), ("2024-01-02", "2"),
    ]  # fmt: skip
    plain = body.replace(b'"2024-01-02": {"4. close": "2"', b'"2024-01-03": {"4. close": "2"')
    assert raw._fast_body(plain) is None  # no duplicate, but nested objects: the slower decoder, same records
    assert [r["close"] for r in raw.parse_daily_bars(plain, "f").records] == ['{"v": "1"}', "2"]


def test_text_fields_become_arrow_in_one_pass_and_other_values_still_become_text():
    """Bars whose fields are all text are turned into Arrow arrays by Arrow's converter; a number or
    a nested value anywhere sends the file through the per-value path, which writes it as text."""
    import pyarrow as pa

    text = (b'{"Meta Data": {"2. Symbol": "A"}, "Time Series (Daily)": {"2024-01-03": {"4. close": "2", '
            b'"5. volume": "7"}, "2024-01-02": {"4. close": "1", "9. unknown": "x"}}}')  # fmt: skip
    parsed = raw.parse_daily_bars(text, "f")
    assert isinstance(parsed.columns["close"], pa.Array) and isinstance(parsed.columns["open"], pa.Array)
    assert [(r["trade_date"], r["close"], r["volume"], r["open"]) for r in parsed.records] == [
        ("2024-01-03", "2", "7", None), ("2024-01-02", "1", None, None),
    ]  # fmt: skip
    mixed = (b'{"Meta Data": {"2. Symbol": "A"}, "Time Series (Daily)": {"2024-01-03": {"4. close": 2.5}, '
             b'"2024-01-02": {"4. close": {"v": "1"}, "5. volume": null}}}')  # fmt: skip
    parsed = raw.parse_daily_bars(mixed, "f")
    assert [(r["close"], r["volume"]) for r in parsed.records] == [("2.5", None), ('{"v": "1"}', None)]
    # the duplicate-preserving decoder (a "{" inside a string sends the body there) writes the same text
    slow = raw.parse_daily_bars(mixed.replace(b'"A"', b'"{A"'), "f")
    assert raw._fast_body(mixed.replace(b'"A"', b'"{A"')) is None
    assert [(r["close"], r["volume"]) for r in slow.records] == [("2.5", None), ('{"v": "1"}', None)]


def test_capture_events_keep_what_the_quote_is_entitled_to(tmp_path):
    """The publisher's events say whether a price is realtime, 15 minutes delayed or the last close;
    events without the field (older publishers) read as unknown, not as some default."""
    from market_ingest.quotes import quote_event

    from lakehouse.lake import Lake
    from tests.spark_jobs.raw_files import RawLake

    quote = quote_message("AAPL", 180.0, "x", "2024-03-01")["quote"]
    at = dt.datetime(2024, 3, 1, 15, 0, 5, tzinfo=dt.UTC)
    published = [json.loads(quote_event("AAPL", quote, "q2", at, entitlement).body)
                 for entitlement in ("realtime", "delayed", "end_of_day")]  # fmt: skip
    older = quote_message("KO", 60.0, "2024-03-01T15:00:00Z", "2024-03-01")
    path = RawLake(Lake(str(tmp_path))).capture([*published, older], at)
    events = raw.parse_capture((tmp_path / "raw" / path).read_bytes(), path)
    assert [(e["symbol"], e["entitlement"]) for e in events] == [
        ("AAPL", "realtime"), ("AAPL", "delayed"), ("AAPL", "end_of_day"), ("KO", None),
    ]  # fmt: skip
