"""Alpha Vantage's wire format: the bulk renderer prints exactly what the per-bar renderer prints."""

from __future__ import annotations

import json

from lakehouse.contracts import alpha_vantage as av


def test_column_rendering_equals_bar_by_bar_rendering_newest_first():
    dates = ["2024-01-02", "2024-01-03"]
    columns = {"open": [1.5, 2.0], "high": [2.25, 3.0], "low": [1.0, 1.75], "close": [2.0, 2.5],
               "adjusted_close": [1.0, 2.5], "volume": [100, 2000], "dividend_amount": [0.0, 0.25],
               "split_coefficient": [1.0, 2.0]}  # fmt: skip
    for adjusted in (True, False):
        meta = av.series_meta("KO", dates[-1], adjusted=adjusted, compact=True)
        rows = [(d, av.format_bar({c: v[i] for c, v in columns.items()}, adjusted=adjusted))
                for i, d in reversed(list(enumerate(dates)))]  # fmt: skip
        body = av.render_series_columns(meta, dates, columns, adjusted=adjusted)
        assert body == av.render_series(meta, rows)
        decoded = json.loads(body)
        assert list(decoded[av.SERIES_KEY]) == ["2024-01-03", "2024-01-02"]
        assert decoded[av.META_KEY][av.META_SYMBOL] == "KO"
    newest = json.loads(av.render_series_columns(meta, dates, columns, adjusted=True))[av.SERIES_KEY]["2024-01-03"]
    assert newest == {"1. open": "2.0000", "2. high": "3.0000", "3. low": "1.7500", "4. close": "2.5000",
                      "5. adjusted close": "2.5000", "6. volume": "2000", "7. dividend amount": "0.2500",
                      "8. split coefficient": "2.0"}  # fmt: skip


def test_an_empty_series_is_valid_json_with_an_empty_series_object():
    meta = av.series_meta("KO", "2024-01-02", adjusted=True, compact=False)
    assert json.loads(av.render_series_columns(meta, [], {}, adjusted=True)) == {av.META_KEY: meta, av.SERIES_KEY: {}}


def test_bar_names_map_to_columns_whatever_the_functions_numbering():
    assert av.BAR_COLUMNS["volume"] == "volume"  # "5. volume" unadjusted, "6. volume" adjusted
    assert {av.BAR_COLUMNS[w.split(". ", 1)[1]] for w in av.UNADJUSTED_BAR_FIELDS} <= set(
        av.ADJUSTED_BAR_FIELDS.values()
    )
