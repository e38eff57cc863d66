"""BRONZE -> SILVER: typed, validated, deduplicated, conformed. Pure DataFrame functions.

Flow for one batch of bronze rows: :func:`typed_*` casts the received strings (a value that does
not parse becomes NULL and fails the ``values_parse`` rule), adds the helper columns the rules
read, and :func:`quality.flag` marks every rule (the job marks the bars' :data:`PREVIOUS_BAR_RULES`
over its staged rows: :func:`previous_bar_failures`). :func:`split` then routes each input row to
exactly one of: quarantine (a quarantine rule failed), winner (the latest ingestion of its key),
superseded (a valid row replaced by a later ingestion of the same key). So
``rows in = valid rows + quarantined rows`` for every batch.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from spark_jobs import contracts, quality

# bronze.daily_bars 1.1.0 on, the file facts: the rows of the bar's RAW file with its key, the file's last date
from spark_jobs.raw import IN_FILE, LAST_IN_FILE

# A bar's values and a security's attributes: the columns whose change revises a stored row.
BAR_VALUES = contracts.load("silver", "daily_bars").compared
SECURITY_ATTRIBUTES = contracts.load("silver", "securities").compared


_ORDER_COLUMNS = ("ingested_at", "source_file", "record_index")  # what latest_first and its tie-break read
_ORDER_TYPES = {c.name: c.type for c in contracts.load("bronze", "daily_bars").columns if c.name in _ORDER_COLUMNS}


def latest_first() -> list[Column]:
    """Ordering that puts the latest ingestion of a key first."""
    return [F.col("ingested_at").desc(), F.col("source_file").desc()]


def _try_double(name: str) -> Column:
    return F.expr(f"try_cast(trim(`{name}`) AS DOUBLE)")


def _try_bigint(name: str) -> Column:
    return F.expr(f"try_cast(trim(`{name}`) AS BIGINT)")


def _try_date(name: str) -> Column:
    return F.expr(f"CASE WHEN `{name}` RLIKE '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}$' THEN try_cast(`{name}` AS DATE) END")


def sessions_frame(spark, days: list[dt.date]) -> DataFrame:
    """The trading sessions (``trade_date``, numbered in order as ``_session_number``), for the
    session rules: two bars' numbers differ by one exactly when no session lies between them."""
    import pyarrow as pa

    ordered = sorted(days)
    return spark.createDataFrame(
        pa.table({
            "trade_date": pa.array(ordered, pa.date32()),
            "_session_number": pa.array(range(1, len(ordered) + 1), pa.int64()),
        })
    )  # fmt: skip


def _bar_values(bronze: DataFrame, sessions: DataFrame, today: dt.date, file_facts: bool = False) -> DataFrame:
    """Bronze bars with typed values, the values as received, and the row-level helper columns
    (``_is_session``, ``_session_number``, ``_today``): what the rules read of a bar on its own."""
    return _on_sessions(_parsed_bars(bronze, file_facts), sessions).withColumn("_today", F.lit(today))


def _parsed_bars(bronze: DataFrame, file_facts: bool = False) -> DataFrame:
    """Bronze bars with typed values and the values as received: :func:`_bar_values` without its
    session columns, for the helpers that do not read them (the per-file counts, the previous close,
    the ingest dates, the file's last bar). Each helper computes its input again (Sail shares no
    frame between branches), and the session join was a hash join of every bar in each of them.
    `file_facts`: with bronze's ``rows_in_file_with_key`` and ``file_last_trade_date`` as stored, for
    :func:`_with_file_facts` to read.
    """
    return bronze.select(
        "symbol", "path_symbol", F.col("trade_date").alias("trade_date_raw"),
        _try_date("trade_date").alias("trade_date"),
        *[_try_double(c).alias(c) for c in BAR_VALUES if c != "volume"],
        _try_bigint("volume").alias("volume"),
        *[F.col(c).alias(f"{c}_raw") for c in BAR_VALUES],
        "record_index", "source_file", "ingest_date", "ingest_run_id", "ingested_at",
        *([IN_FILE, LAST_IN_FILE] if file_facts else []),
    )  # fmt: skip


# The per-file helpers bronze carries from contract 1.1.0 on (the file facts), as the rules read them.
FILE_FACTS = ("_rows_in_file_with_key", "_last_in_file")


def _with_file_facts(
    rows: DataFrame, keys: DataFrame, from_bronze: bool, facts: tuple[str, ...] = FILE_FACTS
) -> DataFrame:
    """`rows` with the per-file helpers `facts` (of :data:`FILE_FACTS`): ``_rows_in_file_with_key``,
    the rows of `keys` with the row's (file, symbol, date as received), and ``_last_in_file``, the
    latest typed date of `keys` in the row's (file, symbol).

    Args:
        rows: the rows to complete (``source_file``, ``symbol``, ``trade_date_raw``).
        keys: the rows the engine counts and takes the max over (``source_file``, ``symbol``,
            ``trade_date_raw``, ``trade_date``), each fact grouped on its keys and attached
            (:func:`_attach`: NULL is a key). The callers' rows differ on purpose: the rows typed
            (:func:`typed_daily_bars`, without the days left out) or the whole batch
            (:func:`unchanged_bars`, which decides what is left out).
        from_bronze: `rows` carry bronze's ``rows_in_file_with_key`` and ``file_last_trade_date``
            (:func:`_parsed_bars` with `file_facts`): both read, not computed; `keys` is not read.
        facts: which to compute; ``_last_in_file`` alone for a series without dates as received
            (:func:`_session_gaps` on reconcile's series).
    """
    if from_bronze:
        read = {FILE_FACTS[0]: F.col(IN_FILE).cast("bigint"), FILE_FACTS[1]: F.col(LAST_IN_FILE)}
        return rows.withColumns(read).drop(IN_FILE, LAST_IN_FILE)
    computed = {
        FILE_FACTS[0]: (["source_file", "symbol", "trade_date_raw"], F.count(F.lit(1))),
        FILE_FACTS[1]: (["source_file", "symbol"], F.max("trade_date")),
    }
    for fact in facts:
        by, value = computed[fact]
        rows = _attach(rows, keys.groupBy(*by).agg(value.alias(fact)), by)
    return rows


def _on_sessions(typed: DataFrame, sessions: DataFrame) -> DataFrame:
    """`typed` with ``_session_number`` and ``_is_session`` of its ``trade_date`` (one session per
    date: the rows stay the same)."""
    marked = sessions.select("trade_date", "_session_number", F.lit(True).alias("_is_session"))
    return typed.join(marked, on="trade_date", how="left").withColumn(
        "_is_session", F.coalesce(F.col("_is_session"), F.lit(False))
    )


USABLE = "symbol IS NOT NULL AND trade_date IS NOT NULL AND close > 0"  # a bar that can be a neighbour's previous bar

# How far before a batch's first bar the stored bars it reads start: the previous session (never a
# week away) and, for nearly every symbol, its previous bar lie within it (see :func:`stored_bars`).
LOOKBACK = dt.timedelta(days=31)


def first_bars(bronze: DataFrame) -> DataFrame:
    """(``symbol``, ``_first``): each symbol's earliest bar date in a batch of bronze bars."""
    days = bronze.select("symbol", _try_date("trade_date").alias("_day"))
    return days.filter("symbol IS NOT NULL AND _day IS NOT NULL").groupBy("symbol").agg(F.min("_day").alias("_first"))


def without_recent_bar(recent: DataFrame, firsts: DataFrame) -> DataFrame:
    """The symbols of `firsts` (:func:`first_bars`) with no bar of `recent` before their first batch bar."""
    earlier = recent.select("symbol", "trade_date").join(firsts, "symbol").filter(F.col("trade_date") < F.col("_first"))
    return firsts.select("symbol").join(earlier.select("symbol"), "symbol", "left_anti")


def stored_bars(current: DataFrame, since: dt.date, older_symbols: list[str]) -> DataFrame:
    """The stored bars a batch whose bars start at or after ``since + LOOKBACK`` reads: those from
    `since` on, and every bar of `older_symbols` (:func:`without_recent_bar`: their previous bar, if
    any, is older). The rules then see the same bars as over the whole table.

    What a batch bar reads of silver: the stored bar of its own day (the pre-filter, the revision
    check), the previous session's bar (the pre-filter) and its symbol's bar before the batch's
    first (the previous close). The bound is a literal on ``trade_date``, so the engine skips the
    files of older date ranges (one 91-day range per file): a daily run on five years of history
    read and joined all 627,500 stored bars three times.
    """
    recent = current.filter(F.col("trade_date") >= F.lit(since))
    if not older_symbols:
        return recent
    older = current.filter((F.col("trade_date") < F.lit(since)) & F.col("symbol").isin(older_symbols))
    return recent.unionByName(older)


def typed_daily_bars(
    bronze: DataFrame,
    prior: DataFrame,
    sessions: DataFrame,
    today: dt.date,
    unchanged: DataFrame | None = None,
    file_facts: bool = False,
    previous_bar: bool = True,
) -> DataFrame:
    """Bronze bars with typed values and the helper columns of the silver.daily_bars rules.

    Args:
        bronze: rows of bronze.daily_bars (values as received).
        prior: current silver.daily_bars rows (at least those :func:`stored_bars` keeps), for the
            previous close of the daily-move rule.
        sessions: trading sessions (see :func:`sessions_frame`).
        today: dates after it are in the future.
        unchanged: keys left out (:func:`unchanged_bars`); the helper columns of the other bars
            are the same with or without them.
        file_facts: every row of `bronze` carries ``rows_in_file_with_key`` and
            ``file_last_trade_date`` (found while parsing RAW, bronze contract 1.1.0): read instead
            of grouping every bar by (file, symbol, date) and by (file, symbol), about 0.7 and
            0.9 of the backfill's 7-8 Sail CPU seconds. Rows loaded before 1.1.0, and files with a
            date the driver does not read as the engine surely does, hold NULL there.
        previous_bar: attach the previous bar's helpers (``_prev_close``, ``_prev_trade_date``,
            ``_missing_sessions``); without them they are NULL, which passes :data:`PREVIOUS_BAR_RULES`,
            and the job evaluates those rules over its staged rows (:func:`previous_bar_failures`).

    Helper columns for the sessions rules: ``_missing_sessions`` (sessions between a bar and the
    symbol's previous bar) and ``_sessions_behind`` (on a file's last bar of a symbol: sessions
    between it and the file's ingestion date). Each helper is computed on its keys and attached
    (:func:`_attach`): no window or join holds the wide rows (the backfill's memory peak).
    """
    # The file's last bar read from bronze is the max over all of the file's rows, this the max over
    # those not left out: the same, as unchanged_bars never leaves out a file's last bar.
    parsed = _parsed_bars(bronze if unchanged is None else without_days(bronze, unchanged), file_facts)
    typed = _on_sessions(parsed, sessions).withColumn("_today", F.lit(today))
    columns = [c for c in typed.columns if c not in (IN_FILE, LAST_IN_FILE)]
    typed = _with_file_facts(typed, parsed, from_bronze=file_facts)
    if previous_bar:
        attached = _attach(typed, _previous_close(parsed, prior), ["symbol", "trade_date"])
    else:
        attached = typed.withColumns(
            {"_prev_close": F.lit(None).cast("double"), "_prev_trade_date": F.lit(None).cast("date")}
        )
    helpers = ["_rows_in_file_with_key", "_prev_close", "_prev_trade_date", "_missing_sessions", "_sessions_behind"]
    gaps = _session_gaps(attached, sessions, keys=parsed, last_in_file=True, previous_bar=previous_bar)
    return gaps.select(*columns, *helpers)


# The silver.daily_bars rules that read a bar's previous bar (its close, the sessions between them),
# both warnings: they route no row, so the job evaluates them after staging the flagged rows.
PREVIOUS_BAR_RULES = ("daily_move_explained", "no_missing_sessions")
PREVIOUS_BAR_FAILED = "_previous_bar_failed"  # the bits of PREVIOUS_BAR_RULES, in quality.FAILED_COLUMN's layout
_SEVERITIES = {r.name: r.severity for r in quality.RULES["silver.daily_bars"] if r.name in PREVIOUS_BAR_RULES}
if dict.fromkeys(PREVIOUS_BAR_RULES, "warn") != _SEVERITIES:  # marked after routing: they route no row
    raise AssertionError(f"{PREVIOUS_BAR_RULES} must be silver.daily_bars warnings, are {_SEVERITIES}")


def previous_bar_failures(flagged: DataFrame, prior: DataFrame, sessions: DataFrame, row_id: list[str]) -> DataFrame:
    """The `row_id` of every row of `flagged` failing one of :data:`PREVIOUS_BAR_RULES`, with the
    failed rules' bits (:data:`PREVIOUS_BAR_FAILED`; one row per row id).

    `flagged`: the batch's bars typed without their previous bar (``typed_daily_bars(...,
    previous_bar=False)``), flagged and staged; their typed values are what the previous close reads,
    so the helpers are those :func:`typed_daily_bars` attaches. Over the staged rows the previous
    close reads stored columns instead of parsing bronze again, and joins narrow rows instead of the
    typed bars with their strings (backfill of 628k bars: 1.3-1.9 of the flagged stage's 4-6 Sail CPU
    seconds, against about 0.7 here; docs/transforms.md, tenth pass).
    """
    rows = flagged.select(*row_id, "symbol", "trade_date", "close", "split_coefficient")
    rows = _attach(rows, _previous_close(flagged, prior), ["symbol", "trade_date"])
    numbers = sessions.select("trade_date", "_session_number")
    rows = rows.join(numbers, "trade_date", "left")
    rows = rows.join(_previous_session_numbers(sessions), "_prev_trade_date", "left")
    rows = rows.withColumn("_missing_sessions", _missing_sessions())
    bits = quality.failed_mask("silver.daily_bars", PREVIOUS_BAR_RULES)
    # Copies of one bronze row (a file loaded twice) share their values, so their bits: one row per id.
    failed = rows.select(*row_id, bits.alias(PREVIOUS_BAR_FAILED))
    return failed.filter(F.col(PREVIOUS_BAR_FAILED) != 0).distinct()


def _missing_sessions() -> Column:
    """Sessions strictly between a bar and its symbol's previous bar (rows holding both numbers)."""
    return F.col("_session_number") - F.col("_prev_session_number") - 1


def _previous_session_numbers(sessions: DataFrame) -> DataFrame:
    """(_prev_trade_date, _prev_session_number): the session number of a previous bar's date."""
    return sessions.select(
        F.col("trade_date").alias("_prev_trade_date"), F.col("_session_number").alias("_prev_session_number")
    )


def _attach(rows: DataFrame, helper: DataFrame, keys: list[str]) -> DataFrame:
    """`rows` with the other columns of `helper` (one row per key), matched on `keys`; NULL matches
    NULL, as in a window's partition.

    The helper is the left side of a right join: Sail 0.7.2 holds a join's left side in memory and
    streams its right side, so the narrow helper is held and the wide rows stream. A window over the
    wide rows, or a left join with them on the left, held every typed bar of the backfill (627,500
    rows with their strings: most of its 1.2 GB peak in the Sail server).
    """
    renamed = helper.select(*[F.col(k).alias(f"_key_{k}") for k in keys], *[c for c in helper.columns if c not in keys])
    matched = None
    for k in keys:
        same = F.col(f"_key_{k}").eqNullSafe(F.col(k))
        matched = same if matched is None else matched & same
    return renamed.join(rows, matched, "right").drop(*[f"_key_{k}" for k in keys])


def without_days(bronze: DataFrame, days: DataFrame) -> DataFrame:
    """The bronze bars not on one of `days` (``symbol``, ``trade_date``: :func:`unchanged_bars`), as
    received: a bar whose symbol or date is missing or unreadable is on none."""
    left_out = days.select(F.col("symbol").alias("_skip_symbol"), F.col("trade_date").alias("_skip_day"))
    on = (F.col("symbol") == F.col("_skip_symbol")) & (_try_date("trade_date") == F.col("_skip_day"))
    return bronze.join(left_out, on, "left_anti")


def unchanged_bars(
    bronze: DataFrame, current: DataFrame, sessions: DataFrame, today: dt.date, file_facts: bool = False
) -> DataFrame:
    """Days (``symbol``, ``trade_date``, ``_rows``: the batch's rows of it) whose every batch row
    equals the stored bar and passes every rule: leaving them out changes no route, count or rule
    outcome, and a daily run's compact payloads are mostly such days (99 of 100 sessions).

    A day is left out only when its outcome is known without typing the rest of the batch:

    - each of its rows is alone with its key in its file and is not its file's last bar of the
      symbol: the per-file checks pass, and the per-file helpers of the other rows (duplicates in a
      file, the file's last bar for the staleness check) are the same without it;
    - the previous session's bar is stored, and no batch row of the symbol up to this day differs
      from silver or lies on a day that is not a session: the bar's previous bar, its close and the
      sessions between are then the stored ones, with or without the batch;
    - all its rows stay or go together, so the winner of a day that stays is the same.

    The rules then run here on those helper values; a foreign symbol's file, a duplicate, a
    revision or a failing row keeps its day in, to be checked as before. `file_facts`: the per-file
    helpers read from bronze (:func:`typed_daily_bars`).
    """
    rows = _bar_values(bronze, sessions, today, file_facts)
    stored = current.select("symbol", "trade_date", *[F.col(c).alias(f"_cur_{c}") for c in BAR_VALUES])
    rows = rows.join(stored.withColumn("_stored", F.lit(True)), ["symbol", "trade_date"], "left")
    equal = F.col("_stored").isNotNull()
    for c in BAR_VALUES:
        equal = equal & F.col(c).eqNullSafe(F.col(f"_cur_{c}"))
    rows = rows.withColumn("_equal", F.coalesce(equal, F.lit(False)))
    # The first session of each symbol whose batch value may differ from silver's (0: a usable bar
    # off the calendar, which would sit between two sessions).
    changes = F.when(F.expr(USABLE) & ~F.col("_is_session"), F.lit(0)).when(~F.col("_equal"), F.col("_session_number"))
    rows = rows.withColumn("_first_change", F.min(changes).over(Window.partitionBy("symbol")))
    # Over the whole batch, from the bronze columns alone (group and join back: cheaper than windows).
    # NULL-safe matching as in typed_daily_bars: a bar without symbol or date is never left out anyway.
    file_keys = bronze.select(
        "source_file",
        "symbol",
        F.col("trade_date").alias("trade_date_raw"),
        _try_date("trade_date").alias("trade_date"),
    )
    rows = _with_file_facts(rows, file_keys, from_bronze=file_facts)
    previous = current.join(sessions.select("trade_date", "_session_number"), "trade_date").select(
        "symbol", (F.col("_session_number") + 1).alias("_session_number"), F.col("close").alias("_prev_close"),
        F.lit(0).cast("bigint").alias("_missing_sessions"),
    )  # fmt: skip
    rows = rows.join(previous, ["symbol", "_session_number"], "left").withColumn(
        "_sessions_behind", F.lit(None).cast("bigint")
    )
    # Never a file's last bar (the strict `<`): typed_daily_bars' max over the rows left in equals
    # the max over all of them, which bronze's file_last_trade_date holds.
    known = (
        F.col("_equal") & (F.col("trade_date") < F.col("_last_in_file")) & F.col("_prev_close").isNotNull()
        & (F.col("_first_change").isNull() | (F.col("_session_number") <= F.col("_first_change")))
    )  # fmt: skip
    checked = rows.withColumn("_skip", F.coalesce(known & quality.passes_all("silver.daily_bars"), F.lit(False)))
    return (
        checked.filter("symbol IS NOT NULL AND trade_date IS NOT NULL")
        .groupBy("symbol", "trade_date")
        .agg(F.min(F.col("_skip").cast("int")).alias("_skip"), F.count(F.lit(1)).alias("_rows"))
        .filter("_skip = 1")
        .drop("_skip")
    )


def _session_gaps(
    typed: DataFrame,
    sessions: DataFrame,
    keys: DataFrame | None = None,
    last_in_file: bool = False,
    previous_bar: bool = True,
) -> DataFrame:
    """``_missing_sessions`` and ``_sessions_behind`` (see :func:`typed_daily_bars`): each helper
    computed on the keys alone and attached (:func:`_attach`), not a window over the wide rows.

    `keys`: the same rows as `typed` with fewer joins above them (default `typed`), for the per-file
    and per-ingestion aggregates (Sail does not share a frame between two branches: each computes it).
    `last_in_file`: `typed` holds ``_last_in_file`` (:func:`_with_file_facts`), not computed here.
    `previous_bar`: False when `typed` has no previous bar (``_missing_sessions`` NULL, not joined).
    """
    keys = typed if keys is None else keys
    numbers = sessions.select(F.col("trade_date").alias("_d"), F.col("_session_number").alias("_n"))
    ingested = keys.select(F.col("ingest_date")).distinct()
    through = (
        ingested.join(numbers, F.col("_d") <= F.col("ingest_date").cast("date"), "inner")
        .groupBy("ingest_date")
        .agg(F.max("_n").alias("_ingest_session_number"))
    )
    if previous_bar:
        typed = _attach(typed, _previous_session_numbers(sessions), ["_prev_trade_date"])
    else:
        typed = typed.withColumn("_prev_session_number", F.lit(None).cast("bigint"))
    typed = _attach(typed, through, ["ingest_date"])
    if not last_in_file:
        typed = _with_file_facts(typed, keys, from_bronze=False, facts=FILE_FACTS[1:])
    typed = typed.withColumn("_missing_sessions", _missing_sessions())
    behind = F.when(
        F.col("trade_date") == F.col("_last_in_file"), F.col("_ingest_session_number") - F.col("_session_number")
    )
    return typed.withColumn("_sessions_behind", behind).drop(
        "_prev_session_number", "_ingest_session_number", "_last_in_file"
    )


def _previous_close(typed: DataFrame, prior: DataFrame) -> DataFrame:
    """Close and date of the bar before each batch day, over the batch's latest values and prior silver.

    One sort of each symbol's rows by day and ingestion: the first row of a day follows the latest
    usable row of the previous day, so a lag read there is the previous bar's. The batch's
    duplicates need no ranking of their own (a ``row_number`` over (symbol, day) first, then the
    lag: a second window over one-row partitions, 2.2 against 0.9 Sail CPU s at 628k bars).
    """
    usable = typed.filter(USABLE).select("symbol", "trade_date", "close", *_ORDER_COLUMNS)
    # Of the prior bars only those from the batch's first date on, and the one just before it, can be
    # a batch bar's previous bar: the lag below then sorts a slice of the history, not all of it.
    first = usable.groupBy("symbol").agg(F.min("trade_date").alias("_first"))
    candidates = prior.select("symbol", "trade_date", "close").join(first, "symbol", "inner")
    before = (
        candidates.filter(F.col("trade_date") < F.col("_first"))
        .groupBy("symbol")
        .agg(F.max("trade_date").alias("trade_date"), F.max_by("close", "trade_date").alias("close"))
    )
    earlier = (
        candidates.filter(F.col("trade_date") >= F.col("_first"))
        .select("symbol", "trade_date", "close")
        .unionByName(before)
        .join(usable.select("symbol", "trade_date"), ["symbol", "trade_date"], "left_anti")
    )
    unordered = [F.lit(None).cast(_ORDER_TYPES[c]).alias(c) for c in _ORDER_COLUMNS]
    timeline = usable.withColumn("_in_batch", F.lit(True)).unionByName(
        earlier.select("*", *unordered, F.lit(False).alias("_in_batch"))  # never on a batch day: no order needed
    )
    # latest_first reversed (ascending, NULLs first): a day's latest usable row is its last.
    by_row = Window.partitionBy("symbol").orderBy("trade_date", *_ORDER_COLUMNS)
    return (
        timeline.withColumns(
            {"_prev_close": F.lag("close").over(by_row), "_prev_trade_date": F.lag("trade_date").over(by_row)}
        )
        .filter(F.col("_in_batch") & ~F.col("_prev_trade_date").eqNullSafe(F.col("trade_date")))
        .select("symbol", "trade_date", "_prev_close", "_prev_trade_date")
    )


ROUTE = "_route"


def superseded_rows(flagged: DataFrame, keys: list[str], order: list[Column], row_id: list[str]) -> DataFrame:
    """The `row_id` (the columns naming one bronze row: the source's contract keys) of every valid
    row that is not the latest valid ingestion (by `order`) of its key.

    Only the keys with more than one valid row are ranked. A window over every row sorted the whole
    wide frame for keys that nearly all arrive once: 6 of silver's 17 Sail CPU seconds at 628k bars.
    """
    valid = flagged.filter(F.col(quality.QUARANTINE_RULES_COLUMN) == "")
    repeated = valid.groupBy(*keys).agg(F.count(F.lit(1)).alias("_n")).filter("_n > 1").select(*keys)
    rank = Window.partitionBy(*keys).orderBy(*order)
    return (
        valid.join(repeated, keys, "left_semi")
        .withColumn("_rn", F.row_number().over(rank))
        .filter("_rn > 1")
        .select(*row_id)
    )


def tag_routes(
    flagged: DataFrame, superseded: DataFrame | None, row_id: list[str], previous_bar_failed: DataFrame | None = None
) -> DataFrame:
    """`flagged` with its route (see :func:`route`), given :func:`superseded_rows` (None: there are
    none) and :func:`previous_bar_failures` (None: none failed, or none evaluated apart), whose bits
    join the row's other failed rules."""
    bad = F.col(quality.QUARANTINE_RULES_COLUMN) != ""
    if previous_bar_failed is not None:
        failed = F.col(quality.FAILED_COLUMN).bitwiseOR(F.coalesce(F.col(PREVIOUS_BAR_FAILED), F.lit(0)))
        flagged = (
            flagged.join(previous_bar_failed, row_id, "left")
            .withColumn(quality.FAILED_COLUMN, failed.cast("bigint"))
            .select(*flagged.columns)
        )
    if superseded is None:
        return flagged.withColumn(ROUTE, F.when(bad, "quarantine").otherwise("winner"))
    marked = superseded.withColumn("_superseded", F.lit(True))
    tag = F.when(bad, "quarantine").when(F.col("_superseded").isNull(), "winner").otherwise("superseded")
    return flagged.join(marked, row_id, "left").select(*flagged.columns, tag.alias(ROUTE))


def route(flagged: DataFrame, keys: list[str], order: list[Column], row_id: list[str]) -> DataFrame:
    """Tag every flagged row with exactly one route: ``quarantine``, ``winner`` or ``superseded``.

    The winner of a key is its latest valid ingestion (by `order`); the other valid rows of the key
    are superseded. `flagged` is read three times: stage a costly frame (and its
    :func:`superseded_rows`) and call :func:`tag_routes` instead.
    """
    return tag_routes(flagged, superseded_rows(flagged, keys, order, row_id), row_id)


def split(
    flagged: DataFrame, keys: list[str], order: list[Column], row_id: list[str]
) -> tuple[DataFrame, DataFrame, DataFrame]:
    """Route flagged rows: (winners, superseded, quarantined); every input row lands in exactly one."""
    routed = route(flagged, keys, order, row_id)
    return tuple(routed.filter(F.col(ROUTE) == r).drop(ROUTE) for r in ("winner", "superseded", "quarantine"))


def daily_bar_rows(winners: DataFrame, load_id: str, updated_at: dt.datetime, version: str) -> DataFrame:
    """Winners in the silver.daily_bars shape, first revision."""
    return winners.select(
        "symbol", "trade_date", "open", "high", "low", "close", "adjusted_close", "volume",
        "dividend_amount", "split_coefficient", "source_file", "ingest_run_id", "ingested_at",
        F.lit(1).alias("revision"), F.lit(updated_at).alias("updated_at"), F.lit(load_id).alias("load_id"),
        F.lit(version).alias("schema_version"),
    )  # fmt: skip


def values_differ(columns: tuple[str, ...], left: str = "t", right: str = "s") -> str:
    """SQL condition: some of `columns` differ between two aliases (NULL-safe)."""
    return "NOT (" + " AND ".join(f"{left}.`{c}` <=> {right}.`{c}`" for c in columns) + ")"


def classify_changes(rows: DataFrame, current: DataFrame, keys: list[str], columns: tuple[str, ...]) -> DataFrame:
    """Each incoming row tagged ``new``, ``revised`` or ``unchanged`` against the current table.

    A row is revised when it was ingested after the stored row of its key and some of `columns`
    differ; without `columns` a stored key is never revised.
    """
    stored = [F.col(c).alias(f"_cur_{c}") for c in columns]
    if columns:
        stored.append(F.col("ingested_at").alias("_cur_at"))
    cur = current.select(*keys, *stored, F.lit(True).alias("_cur_found"))
    joined = rows.join(cur, on=keys, how="left")
    change = F.when(F.col("_cur_found").isNull(), "new")
    if columns:
        same = F.lit(True)
        for c in columns:
            same = same & F.col(c).eqNullSafe(F.col(f"_cur_{c}"))
        change = change.when((F.col("ingested_at") > F.col("_cur_at")) & ~same, "revised")
    dropped = [f"_cur_{c}" for c in columns] + (["_cur_at"] if columns else []) + ["_cur_found"]
    return joined.withColumn("_change", change.otherwise("unchanged")).drop(*dropped)


def quarantine_rows(
    quarantined: DataFrame, source_table: str, key: Column, value_columns: list[str], load_id: str,
    at: dt.datetime, version: str,
) -> DataFrame:  # fmt: skip
    """Rejected rows in the silver.quarantine shape: first failed rule, all failed rules, values as received."""
    rules = F.col(quality.QUARANTINE_RULES_COLUMN)
    return quarantined.select(
        F.lit(source_table).alias("source_table"),
        F.substring_index(rules, ",", 1).alias("rule"),
        F.lit("quarantine").alias("severity"),
        rules.alias("failed_rules"),
        key.alias("record_key"),
        F.col("symbol"),
        F.to_json(F.struct(*[F.col(c) for c in value_columns])).alias("record_values"),
        "source_file",
        F.col("ingest_date").cast("date").alias("ingest_date"),
        F.lit(at).alias("quarantined_at"),
        F.lit(load_id).alias("load_id"),
        F.lit(version).alias("schema_version"),
    )


def bar_key() -> Column:
    return F.concat_ws("|", F.coalesce(F.col("symbol"), F.lit("")), F.coalesce(F.col("trade_date_raw"), F.lit("")),
                       F.col("record_index").cast("string"))  # fmt: skip


def typed_securities(bronze: DataFrame) -> DataFrame:
    """Bronze overviews typed for silver.securities: one snapshot per ingest date."""
    return bronze.select(
        "symbol", "path_symbol", F.col("ingest_date").alias("as_of_date"),
        *[F.nullif(F.trim(F.col(c)), F.lit("")).alias(c) for c in SECURITY_ATTRIBUTES],
        "source_file", "ingest_date", "ingested_at",
    )  # fmt: skip


def security_rows(winners: DataFrame, load_id: str, updated_at: dt.datetime, version: str) -> DataFrame:
    return winners.select(
        "symbol", "as_of_date", *SECURITY_ATTRIBUTES, "source_file", "ingested_at",
        F.lit(updated_at).alias("updated_at"), F.lit(load_id).alias("load_id"), F.lit(version).alias("schema_version"),
    )  # fmt: skip


def typed_quotes(bronze: DataFrame, sessions: DataFrame) -> DataFrame:
    """Bronze quote events typed for silver.quotes (``quote_time`` is when the quote was fetched)."""
    percent = F.regexp_replace(F.trim(F.col("change_percent")), "%$", "")
    typed = bronze.select(
        "symbol",
        F.expr("try_cast(fetched_at AS TIMESTAMP)").alias("quote_time"),
        *[_try_double(c).alias(c) for c in ("price", "open", "high", "low", "previous_close", "change")],
        percent.alias("_pct"),
        _try_bigint("volume").alias("volume"),
        _try_date("latest_trading_day").alias("latest_trading_day"),
        "sequence_number", "source_file", "ingest_date", "ingested_at", "body", "entitlement",
    )  # fmt: skip
    typed = typed.withColumn("change_percent", F.expr("try_cast(_pct AS DOUBLE)")).drop("_pct")
    marked = sessions.select(F.col("trade_date").alias("latest_trading_day"), F.lit(True).alias("_is_session"))
    return typed.join(marked, on="latest_trading_day", how="left").withColumn(
        "_is_session", F.coalesce(F.col("_is_session"), F.lit(False))
    )


def quote_rows(winners: DataFrame, load_id: str, updated_at: dt.datetime, version: str) -> DataFrame:
    return winners.select(
        "symbol", "quote_time", "price", "open", "high", "low", "volume", "previous_close", "change",
        "change_percent", "latest_trading_day", "sequence_number", "source_file",
        F.lit(updated_at).alias("updated_at"), F.lit(load_id).alias("load_id"), F.lit(version).alias("schema_version"),
        "entitlement",
    )  # fmt: skip


def known_bars(current: DataFrame, typed_bars: DataFrame) -> DataFrame:
    """(symbol, trade_date, close, split_coefficient, dividend_amount) of the bars silver holds
    after this batch: the batch's latest usable ingestion of a day over the stored bar.

    Args:
        current: silver.daily_bars.
        typed_bars: the batch's bars as :func:`typed_daily_bars` types them, with their route (read
            back from the staged flagged rows: no second parse of the bronze strings); a day left
            out as unchanged keeps its stored values, which are the batch's.

    Corporate actions are checked against these: a batch often brings an event and the bars around
    it together, before any of them is in silver.
    """
    values = ("close", "split_coefficient", "dividend_amount")
    # The latest usable row of a day: the winner (valid rows are usable), unless a later usable row
    # was quarantined; only the few days with such a row are ranked (a window over every bar, or a
    # max over structs, costs seconds in Sail at 600k bars).
    routed = typed_bars.filter(USABLE).select("symbol", "trade_date", *values, *_ORDER_COLUMNS, ROUTE)
    odd = routed.filter(F.col(ROUTE) == "quarantine").select("symbol", "trade_date").distinct()
    plain = routed.filter(F.col(ROUTE) == "winner").join(F.broadcast(odd), ["symbol", "trade_date"], "left_anti")
    rank = Window.partitionBy("symbol", "trade_date").orderBy(*latest_first(), F.col("record_index").desc())
    ranked = (
        routed.filter(F.col(ROUTE) != "superseded")
        .join(F.broadcast(odd), ["symbol", "trade_date"], "left_semi")
        .withColumn("_rn", F.row_number().over(rank))
        .filter("_rn = 1")
    )
    batch = plain.unionByName(ranked.drop("_rn")).select("symbol", "trade_date", *values)
    stored = current.select("symbol", "trade_date", *values).join(batch, ["symbol", "trade_date"], "left_anti")
    return batch.unionByName(stored)


def typed_corporate_actions(bronze: DataFrame, bars: DataFrame) -> DataFrame:
    """Bronze splits and dividends typed for silver.corporate_actions, with the rules' helper columns.

    Args:
        bronze: rows of bronze.corporate_actions (values as received).
        bars: :func:`known_bars`, for ``_prev_close`` (close of the last bar before the ex-date:
            what a dividend is measured against) and ``_bar_split`` / ``_bar_dividend`` (the event
            fields of the ex-date's bar, where the adjusted series carries them).

    ``_prev_close`` comes from one pass over each symbol's dates in order, events sorted before a
    bar of the same day, rather than from joining every event with every earlier bar of its symbol.
    """
    value = _try_double("value")
    typed = bronze.select(
        "symbol", "path_symbol", "action", F.col("ex_date").alias("ex_date_raw"), _try_date("ex_date").alias("ex_date"),
        F.col("value").alias("value_raw"), F.when(F.col("action") == "split", value).alias("split_factor"),
        F.when(F.col("action") == "dividend", value).alias("dividend_amount"),
        "record_index", "source_file", "ingest_date", "ingest_run_id", "ingested_at",
    )  # fmt: skip
    keys = typed.select("symbol", "ex_date").filter("symbol IS NOT NULL AND ex_date IS NOT NULL").distinct()
    with_events = bars.join(F.broadcast(keys.select("symbol").distinct()), "symbol", "left_semi")
    bar_days = with_events.select("symbol", F.col("trade_date").alias("_day"), "close", F.lit(1).alias("_bar"))
    event_days = keys.select(
        "symbol", F.col("ex_date").alias("_day"), F.lit(None).cast("double").alias("close"), F.lit(0).alias("_bar")
    )
    timeline = bar_days.unionByName(event_days)
    earlier = Window.partitionBy("symbol").orderBy("_day", "_bar").rowsBetween(Window.unboundedPreceding, -1)
    before = (
        timeline.withColumn("_prev_close", F.last("close", ignorenulls=True).over(earlier))
        .filter(F.col("_bar") == 0)
        .select("symbol", F.col("_day").alias("ex_date"), "_prev_close")
    )
    on_day = bars.select(
        "symbol", F.col("trade_date").alias("ex_date"), F.col("split_coefficient").alias("_bar_split"),
        F.col("dividend_amount").alias("_bar_dividend"),
    )  # fmt: skip
    return typed.join(before, ["symbol", "ex_date"], "left").join(on_day, ["symbol", "ex_date"], "left")


def corporate_action_rows(winners: DataFrame, load_id: str, updated_at: dt.datetime, version: str) -> DataFrame:
    """Winners in the silver.corporate_actions shape, first revision."""
    return winners.select(
        "symbol", "action", "ex_date", "split_factor", "dividend_amount", "source_file", "ingest_run_id",
        "ingested_at", F.lit(1).alias("revision"), F.lit(updated_at).alias("updated_at"),
        F.lit(load_id).alias("load_id"), F.lit(version).alias("schema_version"),
    )  # fmt: skip
