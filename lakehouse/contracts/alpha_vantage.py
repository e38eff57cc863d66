"""Alpha Vantage's wire format: its field names, and the one renderer of its daily-series bodies.

The names are the provider's (numbered, e.g. ``"1. open"``); the columns they map to are the
bronze contract's. The client that checks answers, the RAW parser, the synthetic API that serves
answers and the benchmarks that write RAW directly all take the names from here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

SERIES_KEY = "Time Series (Daily)"
META_KEY = "Meta Data"
QUOTE_KEY = "Global Quote"
# GLOBAL_QUOTE asked with entitlement=delayed answers under this key; without an entitlement
# (the last close) and with entitlement=realtime, under QUOTE_KEY.
DELAYED_QUOTE_KEY = "Global Quote - DATA DELAYED BY 15 MINUTES"
ERROR_MESSAGE, NOTE, INFORMATION = "Error Message", "Note", "Information"
# Keys of an HTTP-200 body that carries a message instead of data.
ERROR_KEYS = (ERROR_MESSAGE, NOTE, INFORMATION)

META_INFORMATION, META_SYMBOL = "1. Information", "2. Symbol"
META_LAST_REFRESHED, META_OUTPUT_SIZE, META_TIME_ZONE = "3. Last Refreshed", "4. Output Size", "5. Time Zone"
ADJUSTED_INFORMATION = "Daily Time Series with Splits and Dividend Events"
UNADJUSTED_INFORMATION = "Daily Prices (open, high, low, close) and Volumes"

# Bar fields of TIME_SERIES_DAILY_ADJUSTED and TIME_SERIES_DAILY, wire name -> bronze column.
ADJUSTED_BAR_FIELDS: dict[str, str] = {
    "1. open": "open", "2. high": "high", "3. low": "low", "4. close": "close",
    "5. adjusted close": "adjusted_close", "6. volume": "volume", "7. dividend amount": "dividend_amount",
    "8. split coefficient": "split_coefficient",
}  # fmt: skip
UNADJUSTED_BAR_FIELDS: dict[str, str] = {
    "1. open": "open", "2. high": "high", "3. low": "low", "4. close": "close", "5. volume": "volume",
}  # fmt: skip
# The number differs between the two functions ("5. volume" / "6. volume"): readers match on the name.
BAR_COLUMNS: dict[str, str] = {
    wire.split(". ", 1)[1]: column for wire, column in {**ADJUSTED_BAR_FIELDS, **UNADJUSTED_BAR_FIELDS}.items()
}
# How Alpha Vantage prints each bar value.
BAR_FORMATS: dict[str, str] = {
    "open": "{:.4f}", "high": "{:.4f}", "low": "{:.4f}", "close": "{:.4f}", "adjusted_close": "{:.4f}",
    "volume": "{}", "dividend_amount": "{:.4f}", "split_coefficient": "{:.1f}",
}  # fmt: skip

QUOTE_FIELDS: dict[str, str] = {
    "01. symbol": "quote_symbol", "02. open": "open", "03. high": "high", "04. low": "low",
    "05. price": "price", "06. volume": "volume", "07. latest trading day": "latest_trading_day",
    "08. previous close": "previous_close", "09. change": "change", "10. change percent": "change_percent",
}  # fmt: skip
# OVERVIEW fields bronze keeps as columns (the whole body is kept as well); all are expected.
OVERVIEW_FIELDS: dict[str, str] = {
    "Symbol": "symbol", "Name": "name", "Exchange": "exchange", "Currency": "currency",
    "Country": "country", "Sector": "sector", "Industry": "industry",
}  # fmt: skip


def quote_object(data: Mapping[str, object]) -> tuple[str, object] | None:
    """The (key, value) of a GLOBAL_QUOTE answer's quote: ``Global Quote`` or a labelled variant
    such as ``Global Quote - DATA DELAYED BY 15 MINUTES``; None when the answer has neither."""
    if QUOTE_KEY in data:
        return QUOTE_KEY, data[QUOTE_KEY]
    for key, value in data.items():
        if isinstance(key, str) and key.startswith(QUOTE_KEY + " - "):
            return key, value
    return None


def quote_entitlement(key: str, requested: str | None) -> str:
    """What a quote is, from the key it came under and the entitlement asked for:
    ``delayed`` (labelled so by the key), ``realtime`` (asked for and not labelled delayed), or
    ``end_of_day`` (no entitlement asked: the last session's close)."""
    if "DELAYED" in key.upper():
        return "delayed"
    if requested == "realtime":
        return "realtime"
    return "end_of_day"


def bar_fields(adjusted: bool) -> dict[str, str]:
    """Wire name -> column of one function's bars."""
    return ADJUSTED_BAR_FIELDS if adjusted else UNADJUSTED_BAR_FIELDS


def series_meta(symbol: str, last_refreshed: str, *, adjusted: bool, compact: bool) -> dict[str, str]:
    """The ``Meta Data`` object of a daily series."""
    return {
        META_INFORMATION: ADJUSTED_INFORMATION if adjusted else UNADJUSTED_INFORMATION,
        META_SYMBOL: symbol,
        META_LAST_REFRESHED: last_refreshed,
        META_OUTPUT_SIZE: "Compact" if compact else "Full size",
        META_TIME_ZONE: "US/Eastern",
    }


def format_bar(values: Mapping[str, object], *, adjusted: bool) -> dict[str, str]:
    """One bar's wire fields from column values (floats and ints), printed as Alpha Vantage prints them."""
    return {wire: BAR_FORMATS[column].format(values[column]) for wire, column in bar_fields(adjusted).items()}


def render_series(meta: Mapping[str, str], rows: Sequence[tuple[str, Mapping[str, str]]]) -> bytes:
    """A daily-series body as Alpha Vantage prints it (4-space indent), bars in the order given.

    Written by hand rather than with ``json.dumps(indent=4)``: the pure-Python indenting encoder
    would dominate the time of full histories.
    """
    out = [_head(meta)]
    bars = []
    for day, fields in rows:
        inner = ",\n".join(f'            "{k}": {json.dumps(v)}' for k, v in fields.items())
        bars.append(f'\n        "{day}": {{\n{inner}\n        }}')
    out.append(",".join(bars))
    out.append("\n    }\n}" if bars else "}\n}")
    return "".join(out).encode()


def render_series_columns(meta: Mapping[str, str], dates: Sequence[str], columns: Mapping[str, Sequence],
                          *, adjusted: bool) -> bytes:  # fmt: skip
    """The same text as :func:`render_series` of every bar, from columns in date order (oldest first).

    Bars are printed newest first, as the API does, with one template per bar: building a dict per
    bar costs more than the rest of a full-history request.
    """
    if not dates:
        return render_series(meta, [])
    fields = bar_fields(adjusted)
    template = (
        '\n        "{}": {{\n'
        + ",\n".join(f'            "{wire}": "{BAR_FORMATS[column]}"' for wire, column in fields.items())
        + "\n        }}"
    )
    values = [columns[column] for column in fields.values()]
    bars = [template.format(dates[i], *(v[i] for v in values)) for i in range(len(dates) - 1, -1, -1)]
    return (_head(meta) + ",".join(bars) + "\n    }\n}").encode()


def _head(meta: Mapping[str, str]) -> str:
    lines = ",\n".join(f"        {json.dumps(k)}: {json.dumps(v)}" for k, v in meta.items())
    return f'{{\n    "{META_KEY}": {{\n{lines}\n    }},\n    "{SERIES_KEY}": {{'

# SPLITS and DIVIDENDS (free keys): ``{"symbol": "IBM", "data": [{...}, ...]}``, one object per event,
# every value a string ("None" where the provider has no date). Wire name -> bronze column.
SPLITS_FUNCTION, DIVIDENDS_FUNCTION = "SPLITS", "DIVIDENDS"
ACTIONS_SYMBOL_KEY, ACTIONS_DATA_KEY = "symbol", "data"
SPLIT_FIELDS: dict[str, str] = {"effective_date": "ex_date", "split_factor": "value"}
DIVIDEND_FIELDS: dict[str, str] = {
    "ex_dividend_date": "ex_date", "declaration_date": "declaration_date", "record_date": "record_date",
    "payment_date": "payment_date", "amount": "value",
}  # fmt: skip
# RAW dataset -> (function, wire fields, the action its records are).
CORPORATE_ACTIONS: dict[str, tuple[str, dict[str, str], str]] = {
    "splits": (SPLITS_FUNCTION, SPLIT_FIELDS, "split"),
    "dividends": (DIVIDENDS_FUNCTION, DIVIDEND_FIELDS, "dividend"),
}


def render_actions(symbol: str, events: Sequence[Mapping[str, str]]) -> bytes:
    """A SPLITS or DIVIDENDS body as Alpha Vantage prints it: newest event first, 4-space indent."""
    return json.dumps({ACTIONS_SYMBOL_KEY: symbol, ACTIONS_DATA_KEY: list(events)}, indent=4).encode()
