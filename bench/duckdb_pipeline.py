"""The project's RAW -> marts work as a single-machine user would write it without Spark: DuckDB.

The peer of the end-to-end backfill (``bench_pipeline_peer``): it reads the same RAW payloads
(located by :mod:`lakehouse.contracts.raw_layout`, checked against their run manifests' sizes and
sha256), applies the silver rules (the quarantine and fail rules of :data:`spark_jobs.quality.RULES`,
their SQL translated to DuckDB's dialect) and the silver dedupe (latest ingestion of a key wins),
computes the daily prices and monthly performance directly in the current (back-adjusted) frame the
marts serve (corporate actions first, the series' own split and dividend fields for the days they
do not cover; the project's gold stores the forward frame and serving rescales it, so agreeing to
1e-9 checks that path too), and COPYs the rows into the mart tables of the project's migrations.

It keeps no state between runs: no bronze, no Delta tables, no watermarks, no audit. That is the
point of the comparison: what the project's layers, lineage and incremental machinery cost on top
of the same answers.
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pyarrow as pa

from lakehouse.contracts import alpha_vantage as av
from lakehouse.contracts.manifest import Fingerprint, read_manifests
from lakehouse.contracts.raw_layout import MANIFESTS, PayloadLocation, RawLayoutError
from lakehouse.raw_store import DirectoryRawStore, RawIntegrityError, read_verified

BAR_TABLE, ACTION_TABLE = "silver.daily_bars", "silver.corporate_actions"
DAILY_MART, MONTHLY_MART = "mart.daily_prices", "mart.monthly_performance"
COPY_CHUNK = 1 << 20


class PipelineError(RuntimeError):
    """The peer refused its input (a fail rule, a non-positive adjustment factor); the message says which."""


@dataclass(frozen=True)
class Payload:
    """One RAW payload the peer loads: where it is, what its path says, when it landed."""

    path: str  # relative to the raw container, as the project's source_file
    absolute: str
    dataset: str
    symbol: str
    ingested_at: dt.datetime


def duckdb_sql(expectation: str) -> str:
    """A rule's Spark SQL expectation in DuckDB's dialect.

    The rules use two Spark spellings DuckDB lacks: double literals with a ``D`` suffix and
    ``double('Infinity')``; the rest (isnan, abs, least, greatest, coalesce, BETWEEN) is common SQL.
    """
    text = re.sub(r"(\d+(?:\.\d+)?)D\b", r"\1::DOUBLE", expectation)
    return text.replace("double('Infinity')", "'Infinity'::DOUBLE")


def _rules(table: str, severity: str) -> list[tuple[str, str]]:
    from spark_jobs.quality import RULES

    return [(r.name, duckdb_sql(r.expectation)) for r in RULES[table] if r.severity == severity]


def _all_hold(rules: list[tuple[str, str]]) -> str:
    return " AND ".join(f"coalesce(({sql}), false)" for _, sql in rules) or "true"


# ---------------------------------------------------------------- RAW


def payloads(raw_root: Path, provider: str, datasets: tuple[str, ...]) -> tuple[list[Payload], list[str]]:
    """The payloads of `datasets` under `raw_root` whose bytes match their manifests; (loaded, refused).

    A payload no manifest lists is loaded as it is (nothing to check it against); one whose bytes
    match none of its manifest entries is refused, as raw_to_bronze refuses it.
    """
    store = DirectoryRawStore(raw_root)
    loaded, refused = [], []
    for dataset in datasets:
        fingerprints = _fingerprints(store, raw_root, dataset)
        for f in store.list(f"{provider}/{dataset}"):
            try:
                location = PayloadLocation.parse(f.path)
            except RawLayoutError:
                continue
            try:
                read_verified(store, f.path, fingerprints.get(f.path, frozenset()))
            except RawIntegrityError:
                refused.append(f.path)
                continue
            loaded.append(Payload(f.path, str(raw_root / f.path), dataset, location.symbol, f.modified))
    return loaded, refused


def _fingerprints(store: DirectoryRawStore, raw_root: Path, dataset: str) -> dict[str, frozenset[Fingerprint]]:
    folder = raw_root / MANIFESTS / dataset
    days = sorted(dt.date.fromisoformat(p.name.removeprefix("ingest_date=")) for p in folder.glob("ingest_date=*"))
    return read_manifests(store, dataset, days).fingerprints()


def _files_table(items: list[Payload]) -> pa.Table:
    return pa.table({
        "filename": pa.array([p.absolute for p in items], pa.string()),
        "source_file": pa.array([p.path for p in items], pa.string()),
        "path_symbol": pa.array([p.symbol for p in items], pa.string()),
        "dataset": pa.array([p.dataset for p in items], pa.string()),
        "ingested_at": pa.array([p.ingested_at for p in items], pa.timestamp("us", tz="UTC")),
    })  # fmt: skip


def _wire(column: str, fields: dict[str, str]) -> list[str]:
    return [wire for wire, name in fields.items() if name == column]


def _load_bars(con, files: list[str]) -> None:
    """bronze_bars: the bars of the daily-series payloads, values as received, in file order.

    A series is read as a map of date -> fields. One with a date twice (a provider repeating a bar,
    the later copy possibly revised) does not fit a map: its bars are read one JSON member at a time,
    in file order, so both copies are kept for the rules and the latest wins, as in the project. A
    bar that is not an object stops the pipeline: the project rejects such a file, and dropping it
    here unseen would compare unequal work.
    """
    fields = {**av.ADJUSTED_BAR_FIELDS, **av.UNADJUSTED_BAR_FIELDS}
    values = ", ".join(
        "coalesce(" + ", ".join(f"v['{w}']" for w in _wire(c, fields)) + f") AS {c}_raw"
        for c in dict.fromkeys(fields.values())
    )
    series = f'$."{av.SERIES_KEY}"'
    symbol = f'$."{av.META_KEY}"."{av.META_SYMBOL}"'
    con.execute(f"""
    CREATE TEMP TABLE bodies AS
    WITH t AS (
      SELECT filename, j, json_extract_string(j, '{symbol}') AS symbol, json_type(j, '{series}') = 'OBJECT' AS _series,
             json_transform(json_extract(j, '{series}'), '"MAP(VARCHAR, MAP(VARCHAR, VARCHAR))"') AS ts
      FROM read_json_objects({files!r}, filename = true) t(j, filename)
    )
    SELECT filename, symbol, _series, ts, CASE WHEN _series AND ts IS NULL THEN j END AS j FROM t
    """)
    con.execute(f"""
    CREATE TEMP TABLE repeated AS
    SELECT filename, symbol, e.key AS trade_date_raw, e.type AS _type,
           json_transform(e.value, '"MAP(VARCHAR, VARCHAR)"') AS v,
           row_number() OVER (PARTITION BY filename ORDER BY e.id) - 1 AS record_index
    FROM bodies, json_each(bodies.j, '{series}') e WHERE bodies.j IS NOT NULL
    """)
    unreadable = con.execute("SELECT filename FROM repeated WHERE _type <> 'OBJECT' OR v IS NULL LIMIT 1").fetchone()
    if unreadable:
        raise PipelineError(f"{unreadable[0]}: a bar of the daily series is not an object of fields")
    con.execute(f"""
    CREATE TEMP TABLE bronze_bars AS
    WITH bars AS (
      SELECT filename, symbol, unnest(map_keys(ts)) AS trade_date_raw, unnest(map_values(ts)) AS v,
             unnest(range(cardinality(ts)::BIGINT)) AS record_index
      FROM bodies WHERE ts IS NOT NULL
      UNION ALL SELECT filename, symbol, trade_date_raw, v, record_index FROM repeated
    )
    SELECT symbol, f.path_symbol, trade_date_raw, {values}, record_index, f.source_file, f.ingested_at
    FROM bars JOIN files f USING (filename)
    """)
    con.execute("DROP TABLE bodies")
    con.execute("DROP TABLE repeated")


def _actions_sql(dataset: str, files: list[str]) -> str:
    """Bronze-shaped corporate actions (ex_date and value as received) of SPLITS or DIVIDENDS payloads."""
    _function, fields, action = av.CORPORATE_ACTIONS[dataset]
    ex_date, value = _wire("ex_date", fields)[0], _wire("value", fields)[0]
    return f"""
    WITH body AS (
      SELECT filename, json_extract_string(j, '$.{av.ACTIONS_SYMBOL_KEY}') AS symbol,
             CAST(json_extract(j, '$.{av.ACTIONS_DATA_KEY}') AS JSON[]) AS events
      FROM read_json_objects({files!r}, filename = true) t(j, filename)
    ), events AS (
      SELECT filename, symbol, unnest(events) AS e, unnest(range(len(events)::BIGINT)) AS record_index FROM body
    )
    SELECT symbol, f.path_symbol, '{action}' AS action, json_extract_string(e, '$.{ex_date}') AS ex_date_raw,
           json_extract_string(e, '$.{value}') AS value_raw, record_index, f.source_file, f.ingested_at
    FROM events JOIN files f USING (filename)
    """


# ---------------------------------------------------------------- SILVER


def _date(raw: str) -> str:
    return f"CASE WHEN regexp_full_match({raw}, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}') THEN try_cast({raw} AS DATE) END"


def _double(raw: str) -> str:
    return f"try_cast(trim({raw}) AS DOUBLE)"


LATEST_FIRST = "ingested_at DESC, source_file DESC, record_index DESC"


def _silver_bars(con, today: dt.date) -> dict:
    """typed_bars (every bronze bar, typed, with the rules' helper columns) and silver_bars (the winners)."""
    con.execute(f"""
    CREATE TEMP TABLE typed_bars AS
    SELECT b.*, coalesce(s.trade_date IS NOT NULL, false) AS _is_session, DATE '{today.isoformat()}' AS _today
    FROM (
      SELECT symbol, path_symbol, trade_date_raw, {_date("trade_date_raw")} AS trade_date,
             {_double("open_raw")} AS open, {_double("high_raw")} AS high, {_double("low_raw")} AS low,
             {_double("close_raw")} AS close, {_double("adjusted_close_raw")} AS adjusted_close,
             try_cast(trim(volume_raw) AS BIGINT) AS volume, {_double("dividend_amount_raw")} AS dividend_amount,
             {_double("split_coefficient_raw")} AS split_coefficient, dividend_amount_raw, split_coefficient_raw,
             adjusted_close_raw, record_index, source_file, ingested_at
      FROM bronze_bars
    ) b LEFT JOIN sessions s USING (trade_date)
    """)  # fmt: skip
    _refuse_on_fail(con, BAR_TABLE, "typed_bars", "symbol, trade_date_raw, source_file")
    valid = _all_hold(_rules(BAR_TABLE, "quarantine"))
    con.execute(f"""
    CREATE TEMP TABLE silver_bars AS
    SELECT symbol, trade_date, open, high, low, close, volume, dividend_amount, split_coefficient
    FROM typed_bars WHERE {valid}
    QUALIFY row_number() OVER (PARTITION BY symbol, trade_date ORDER BY {LATEST_FIRST}) = 1
    """)
    rows_in, winners = con.execute(
        "SELECT (SELECT count(*) FROM typed_bars), (SELECT count(*) FROM silver_bars)"
    ).fetchone()
    quarantined = con.execute(f"SELECT count(*) FROM typed_bars WHERE NOT ({valid})").fetchone()[0]
    return {"bronze_rows": rows_in, "silver_rows": winners, "quarantined_rows": quarantined}


def _silver_actions(con) -> dict:
    """silver_actions: validated, deduplicated corporate actions, checked against the known bars."""
    con.execute(f"""
    CREATE TEMP TABLE known_bars AS
    SELECT symbol, trade_date, close FROM typed_bars
    WHERE symbol IS NOT NULL AND trade_date IS NOT NULL AND close > 0
    QUALIFY row_number() OVER (PARTITION BY symbol, trade_date ORDER BY {LATEST_FIRST}) = 1
    """)
    con.execute(f"""
    CREATE TEMP TABLE typed_actions AS
    WITH t AS (
      SELECT symbol, path_symbol, action, ex_date_raw, {_date("ex_date_raw")} AS ex_date, value_raw,
             CASE WHEN action = 'split' THEN {_double("value_raw")} END AS split_factor,
             CASE WHEN action = 'dividend' THEN {_double("value_raw")} END AS dividend_amount,
             record_index, source_file, ingested_at
      FROM bronze_actions
    ), before AS (
      SELECT k.symbol, k.ex_date, max_by(b.close, b.trade_date) AS _prev_close
      FROM (SELECT DISTINCT symbol, ex_date FROM t WHERE symbol IS NOT NULL AND ex_date IS NOT NULL) k
      JOIN known_bars b ON b.symbol = k.symbol AND b.trade_date < k.ex_date
      GROUP BY k.symbol, k.ex_date
    )
    SELECT t.*, before._prev_close FROM t LEFT JOIN before USING (symbol, ex_date)
    """)  # fmt: skip
    _refuse_on_fail(con, ACTION_TABLE, "typed_actions", "symbol, ex_date_raw, source_file")
    valid = _all_hold(_rules(ACTION_TABLE, "quarantine"))
    con.execute(f"""
    CREATE TEMP TABLE silver_actions AS
    SELECT symbol, action, ex_date, split_factor, dividend_amount FROM typed_actions WHERE {valid}
    QUALIFY row_number() OVER (PARTITION BY symbol, action, ex_date ORDER BY {LATEST_FIRST}) = 1
    """)
    return {"actions": con.execute("SELECT count(*) FROM silver_actions").fetchone()[0]}


def _refuse_on_fail(con, table: str, relation: str, keys: str) -> None:
    for name, sql in _rules(table, "fail"):
        bad = con.execute(f"SELECT {keys} FROM {relation} WHERE NOT coalesce(({sql}), false) LIMIT 2").fetchall()
        if bad:
            raise PipelineError(f"{table}.{name} does not hold, e.g. {bad}")


# ---------------------------------------------------------------- GOLD


def _gold(con, version_daily: str, version_monthly: str, load_id: str) -> dict:
    """daily (mart.daily_prices rows) and monthly (mart.monthly_performance rows) from silver."""
    from spark_jobs import gold

    con.execute(f"""
    CREATE TEMP TABLE factors AS
    WITH per_day AS (
      SELECT symbol, ex_date,
             max(CASE WHEN action = 'split' THEN split_factor END) AS _split,
             max(CASE WHEN action = 'dividend' THEN dividend_amount END) AS _dividend
      FROM silver_actions WHERE symbol IN (SELECT symbol FROM silver_bars) GROUP BY symbol, ex_date
    ), from_bars AS (
      SELECT symbol, trade_date AS ex_date, split_coefficient AS _bar_split, dividend_amount AS _bar_dividend
      FROM silver_bars WHERE coalesce(split_coefficient, 1.0) <> 1.0 OR coalesce(dividend_amount, 0.0) <> 0.0
    ), events AS (
      SELECT symbol, ex_date, coalesce(_split, _bar_split, 1.0) AS split_factor,
             coalesce(_dividend, _bar_dividend, 0.0) AS dividend_amount
      FROM per_day FULL JOIN from_bars USING (symbol, ex_date)
    ), current AS (
      SELECT e.* FROM events e JOIN (SELECT symbol, max(trade_date) AS _last FROM silver_bars GROUP BY symbol) l
      USING (symbol) WHERE e.ex_date <= l._last
    ), previous AS (
      SELECT c.symbol, c.ex_date, max_by(b.close, b.trade_date) AS previous_close
      FROM current c JOIN silver_bars b ON b.symbol = c.symbol AND b.trade_date < c.ex_date
                                       AND b.trade_date >= c.ex_date - {gold.PREVIOUS_CLOSE_DAYS}
      GROUP BY c.symbol, c.ex_date
    )
    SELECT c.*, p.previous_close,
           CASE WHEN split_factor > 0 THEN
             CASE WHEN dividend_amount <> 0 AND previous_close IS NOT NULL THEN 1.0 - dividend_amount / previous_close
                  ELSE 1.0 END / split_factor END AS event_factor
    FROM current c LEFT JOIN previous p USING (symbol, ex_date)
    """)  # fmt: skip
    bad = con.execute("SELECT symbol, ex_date, split_factor, dividend_amount, previous_close FROM factors "
                      "WHERE NOT coalesce(event_factor > 0, false) ORDER BY ALL LIMIT 1").fetchone()  # fmt: skip
    if bad:
        raise PipelineError("non-positive adjustment factor for {} on {}: split factor {}, dividend {}, "
                            "previous close {}".format(*bad))  # fmt: skip
    by_date = "PARTITION BY symbol ORDER BY trade_date"
    averages = ",\n".join(
        f"CASE WHEN count(adj_close) OVER w{n} = {n} THEN avg(adj_close) OVER w{n} END AS ma_{n}"
        for n in gold.MOVING_AVERAGES
    )
    windows = dict.fromkeys((*gold.MOVING_AVERAGES, gold.VOLATILITY_WINDOW, gold.EXTREMES_WINDOW))
    window_sql = ",\n".join(f"w{n} AS ({by_date} ROWS {n - 1} PRECEDING)" for n in windows)
    vol, ext = gold.VOLATILITY_WINDOW, gold.EXTREMES_WINDOW
    con.execute(f"""
    CREATE TEMP TABLE daily AS
    WITH marks AS (
      SELECT symbol, trade_date, 1 AS _kind, 0.0::DOUBLE AS _log FROM silver_bars
      UNION ALL SELECT symbol, ex_date, 0, ln(event_factor) FROM factors
    ), per_bar AS (
      SELECT symbol, trade_date, _kind, exp(coalesce(sum(_log) OVER (PARTITION BY symbol ORDER BY trade_date, _kind
             ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING), 0.0)) AS _adjustment
      FROM marks
    ), adjusted AS (
      SELECT b.*, p._adjustment, b.close * p._adjustment AS adj_close
      FROM silver_bars b JOIN per_bar p ON p.symbol = b.symbol AND p.trade_date = b.trade_date AND p._kind = 1
    ), returns AS (
      SELECT *, adj_close / lag(adj_close) OVER ({by_date}) AS _ratio FROM adjusted
    ), logs AS (
      SELECT *, _ratio - 1.0 AS daily_return, ln(_ratio) AS log_return FROM returns
    )
    SELECT symbol, trade_date, open, high, low, close, adj_close, volume, daily_return, log_return,
      {averages},
      CASE WHEN count(log_return) OVER w{vol} = {vol}
           THEN stddev_samp(log_return) OVER w{vol} * {gold.ANNUALIZATION!r} END AS volatility_20d,
      max(high * _adjustment) OVER w{ext} AS high_52w, min(low * _adjustment) OVER w{ext} AS low_52w,
      adj_close / max(adj_close) OVER ({by_date} ROWS UNBOUNDED PRECEDING) - 1.0 AS drawdown,
      '{load_id}' AS load_id, '{version_daily}' AS schema_version
    FROM logs
    WINDOW {window_sql}
    """)  # fmt: skip
    con.execute(f"""
    CREATE TEMP TABLE monthly AS
    WITH m AS (
      SELECT symbol, date_trunc('month', trade_date)::DATE AS month, arg_min(open, trade_date) AS open,
             max(high) AS high, min(low) AS low, arg_max(close, trade_date) AS close,
             arg_max(adj_close, trade_date) AS adj_close, sum(volume)::BIGINT AS volume,
             count(*)::INTEGER AS trading_days
      FROM daily GROUP BY symbol, month
    )
    SELECT symbol, month, open, high, low, close, adj_close, volume,
           adj_close / lag(adj_close) OVER (PARTITION BY symbol ORDER BY month) - 1.0 AS monthly_return,
           trading_days, '{load_id}' AS load_id, '{version_monthly}' AS schema_version
    FROM m
    """)  # fmt: skip
    daily, monthly = (con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("daily", "monthly"))
    return {
        "daily_rows": daily,
        "monthly_rows": monthly,
        "events": con.execute("SELECT count(*) FROM factors").fetchone()[0],
    }


# ---------------------------------------------------------------- SERVING


def _copy(con, conn: psycopg.Connection, relation: str, table: str, scratch: Path) -> None:
    """Stream `relation` into `table` as CSV: DuckDB writes it, PostgreSQL's COPY reads it."""
    columns = [r[0] for r in con.execute(f"DESCRIBE {relation}").fetchall()]
    path = scratch / f"{relation}.csv"
    con.execute(f"COPY (SELECT * FROM {relation}) TO '{path}' (HEADER false, DELIMITER ',')")
    names = ", ".join(columns)
    statement = f"COPY {table} ({names}) FROM STDIN WITH (FORMAT csv)"
    with conn.cursor() as cur, cur.copy(statement) as copy, open(path, "rb") as fh:
        while chunk := fh.read(COPY_CHUNK):
            copy.write(chunk)


def load_marts(con, dsn: str, scratch: Path) -> None:
    """Apply the project's migrations to `dsn` and COPY daily and monthly into its marts, in one transaction."""
    from spark_jobs import migrations

    migrations.apply(dsn)
    with psycopg.connect(dsn) as conn, conn.transaction():
        conn.execute(f"DELETE FROM {DAILY_MART}")
        conn.execute(f"DELETE FROM {MONTHLY_MART}")
        _copy(con, conn, "daily", DAILY_MART, scratch)
        _copy(con, conn, "monthly", MONTHLY_MART, scratch)


# ---------------------------------------------------------------- the pipeline


def run(raw_root: Path, dsn: str, *, provider: str = "synthetic", load_id: str = "duckdb", threads: int = 2,
        today: dt.date | None = None, exchange_calendar: str = "XNYS") -> dict:  # fmt: skip
    """RAW under `raw_root` -> loaded marts in the database at `dsn`; seconds per step and row counts.

    Args:
        raw_root: the raw container (payloads and ``_manifests``).
        dsn: a database for the peer's marts (migrated here if it is empty).
        provider: the RAW provider folder of the payloads.
        load_id: stamped on every mart row.
        threads: DuckDB's threads.
        today: bars dated after it are in the future (default: today, UTC).
        exchange_calendar: calendar of the trading sessions.

    Raises:
        PipelineError: a fail rule did not hold, or an adjustment factor is not positive.
    """
    import duckdb

    from lakehouse import trading_calendar
    from spark_jobs import contracts

    today = today or dt.datetime.now(dt.UTC).date()
    started = time.perf_counter()
    marks = {}
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute("SET enable_progress_bar = false")
    try:
        loaded, refused = payloads(raw_root, provider, ("daily_bars", *av.CORPORATE_ACTIONS))
        days = [ts.date() for ts in trading_calendar.calendar(exchange_calendar).sessions]
        con.register("sessions", pa.table({"trade_date": pa.array(days, pa.date32())}))
        con.register("files", _files_table(loaded))
        bars = [p.absolute for p in loaded if p.dataset == "daily_bars"]
        if not bars:
            raise PipelineError(f"no daily-bar payloads under {raw_root}/{provider}")
        _load_bars(con, bars)
        actions = [_actions_sql(d, [p.absolute for p in loaded if p.dataset == d]) for d in av.CORPORATE_ACTIONS
                   if any(p.dataset == d for p in loaded)]  # fmt: skip
        empty = ("SELECT NULL::VARCHAR AS symbol, NULL::VARCHAR AS path_symbol, NULL::VARCHAR AS action, "
                 "NULL::VARCHAR AS ex_date_raw, NULL::VARCHAR AS value_raw, NULL::BIGINT AS record_index, "
                 "NULL::VARCHAR AS source_file, NULL::TIMESTAMPTZ AS ingested_at WHERE false")  # fmt: skip
        con.execute("CREATE TEMP TABLE bronze_actions AS " + " UNION ALL ".join(f"({q})" for q in actions or [empty]))
        marks["read_s"] = time.perf_counter() - started
        counts = _silver_bars(con, today) | _silver_actions(con)
        marks["silver_s"] = time.perf_counter() - started
        daily_v, monthly_v = (
            contracts.load("gold", t).version for t in ("fct_daily_prices", "fct_monthly_performance")
        )
        counts |= _gold(con, daily_v, monthly_v, load_id)
        marks["gold_s"] = time.perf_counter() - started
        with tempfile.TemporaryDirectory(prefix="duckdb-peer-") as scratch:
            load_marts(con, dsn, Path(scratch))
        marks["load_s"] = time.perf_counter() - started
    finally:
        con.close()
    steps, previous = {}, 0.0
    for name, at in marks.items():
        steps[name] = round(at - previous, 3)
        previous = at
    return {"seconds": round(previous, 3), **steps, "files": len(loaded), "refused_files": len(refused), **counts}
