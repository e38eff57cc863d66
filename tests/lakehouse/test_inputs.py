"""The input rules shared by the Function app, the Spark jobs and the CLI: strict enough to keep
paths and SQL safe, loose enough for every real ticker, ADF run id and date."""

from __future__ import annotations

import datetime as dt

import pytest

from lakehouse import inputs


def test_real_values_pass():
    assert inputs.symbols("AAPL,BRK.B,RDS-A, MSFT,AAPL") == ("AAPL", "BRK.B", "RDS-A", "MSFT")
    assert inputs.run_id("3f1c2a9e-8d7b-4c6a-9e2f-0b1d2c3e4f5a") == "3f1c2a9e-8d7b-4c6a-9e2f-0b1d2c3e4f5a"
    assert inputs.run_id("daily-20240304") == "daily-20240304"
    assert inputs.date(" 2024-03-04 ", "start_date") == dt.date(2024, 3, 4)
    assert inputs.date(dt.datetime(2024, 3, 4, 12), "start_date") == dt.date(2024, 3, 4)


@pytest.mark.parametrize("value", ["AAPL\n", "aapl", "../../etc", "AA\x00PL", "\uff21\uff21\uff30\uff2c", "A" * 11])
def test_a_ticker_is_matched_whole(value):
    assert not inputs.is_symbol(value)
    with pytest.raises(ValueError, match=r"^symbols: invalid ticker"):
        inputs.symbols([value])


@pytest.mark.parametrize("value", ["r1\n", "../x", ".hidden", "a/b", "r'; DROP TABLE x; --", "", "x" * 129, 12])
def test_a_run_id_that_could_leave_its_folder_or_quote_is_refused(value):
    with pytest.raises(ValueError, match=r"^run_id must match"):
        inputs.run_id(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("20240304", "must be YYYY-MM-DD"),  # Python 3.11 reads this compact form; ADF sends the dashed one
        ("2024-W10-1", "must be YYYY-MM-DD"),
        ("\uff12024-03-04", "must be YYYY-MM-DD"),  # a fullwidth digit
        (20240304, "must be YYYY-MM-DD"),
        ("2024-02-30", "must be YYYY-MM-DD"),
        ("0001-01-01", "is outside 1900-01-01..2100-12-31"),
        ("9999-12-31", "is outside 1900-01-01..2100-12-31"),
    ],
)
def test_a_date_is_iso_and_within_bounds(value, message):
    with pytest.raises(ValueError, match=f"^end_date.*{message}"):
        inputs.date(value, "end_date")


def test_too_many_symbols_are_refused_before_each_is_checked():
    with pytest.raises(ValueError, match=f"^symbols has {inputs.MAX_SYMBOLS + 1} entries"):
        inputs.symbols([f"A{i}" for i in range(inputs.MAX_SYMBOLS + 1)])
    with pytest.raises(ValueError, match=r"^symbols is empty"):
        inputs.symbols(" , ")
