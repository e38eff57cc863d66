"""Checks of answers that do not stop landing (which bar defects become warnings) and those that do."""

from __future__ import annotations

import pytest
from market_ingest.errors import SymbolNotFound, UnexpectedPayload
from market_ingest.providers.alpha_vantage import AlphaVantageClient, series_warnings

from lakehouse.contracts import alpha_vantage as av
from lakehouse.contracts.alpha_vantage import ADJUSTED_BAR_FIELDS, SERIES_KEY


def bar(**changes: object) -> dict:
    fields = {name: "1.0000" for name in ADJUSTED_BAR_FIELDS}
    fields.update(changes)
    return {k: v for k, v in fields.items() if v is not None}


def series(*bars: object) -> dict:
    return {"Meta Data": {}, SERIES_KEY: {f"2024-01-{i + 1:02d}": b for i, b in enumerate(bars)}}


def test_well_formed_bars_give_no_warning_whatever_the_field_order():
    reordered = dict(reversed(list(bar().items())))
    assert series_warnings(series(bar(), reordered, bar()), adjusted=True) == []


def test_missing_extra_and_non_object_bars_are_counted_by_field():
    data = series(bar(), bar(**{"4. close": None}), bar(**{"4. close": None, "9. x": "1"}), ["not", "an", "object"])
    assert series_warnings(data, adjusted=True) == [
        "2 bars miss field '4. close'",
        "1 bars miss field '<bar is not an object>'",
        "unexpected bar fields ['9. x']",
    ]


def test_unexpected_top_level_fields_are_reported():
    data = {**series(bar()), "Information": "extra"}
    assert series_warnings(data, adjusted=True) == ["unexpected top-level fields ['Information']"]


def test_the_unadjusted_series_has_its_own_fields():
    raw_bar = {"1. open": "1", "2. high": "1", "3. low": "1", "4. close": "1", "5. volume": "1"}
    assert series_warnings(series(raw_bar), adjusted=False) == []
    assert series_warnings(series(bar()), adjusted=False) == [
        "1 bars miss field '5. volume'",
        "unexpected bar fields ['5. adjusted close', '6. volume', '7. dividend amount', '8. split coefficient']",
    ]


def test_a_corporate_actions_answer_without_its_event_list_is_not_data():
    check = AlphaVantageClient._actions_check(av.SPLIT_FIELDS)
    assert check({"symbol": "IBM", "data": [{"effective_date": "1999-05-27", "split_factor": "2.0000"}]}, "w") == []
    assert check({"symbol": "IBM", "data": [{"effective_date": "1999-05-27"}]}, "w") == [
        "events miss fields ['split_factor']"
    ]
    with pytest.raises(UnexpectedPayload):
        check({"symbol": "IBM"}, "w")
    with pytest.raises(SymbolNotFound):
        check({}, "w")
