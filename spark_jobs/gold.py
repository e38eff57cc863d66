"""SILVER -> GOLD analytics. Pure DataFrame functions, plus the plan of what to recompute.

Adjustment. The events of a symbol are its splits and dividends: silver.corporate_actions (the
SPLITS and DIVIDENDS datasets, on any plan) and, for days it does not cover, the split and
dividend fields of the adjusted daily series (premium plans). An event on ex-date e (split factor
s, dividend d, previous close c) has the factor ``f_e = (1 - d / c) / s`` (see
:func:`adjustment_factors`).

Gold stores every price-level metric in the FORWARD frame: a price of day t is divided by
``F(t)``, the product of ``f_e`` over the events on or before t, so it never changes when a later
event arrives. Users see the CURRENT (back-adjusted) frame, ``price * prod(f_e for e > t)``, which
is the forward value times ``P``, the product of every event factor of the symbol (its current
factor, the forward factor of its last event): serving multiplies the :data:`FORWARD_COLUMNS` by P
(:func:`in_current_frame`), and so does every comparison of gold with the mart. Open, high, low and
close stay as traded; adj_close, the moving averages, the 52-week extremes (of the adjusted highs
and lows) and the drawdown are all in the one adjusted frame, and returns, volatility and drawdown
are ratios, the same in either frame. A factor that is not positive (a dividend at least as large
as the price it is paid on, a split factor of 0) stops the job: it cannot be a real event, and
treating it as 1 would silently publish unadjusted history. Events after a symbol's last bar
(declared dividends not yet ex) adjust nothing yet.

Incremental recompute (see :func:`recompute_plan`): for each symbol with changed silver bars or
corporate actions, gold is recomputed from the earliest changed date (a changed bar's date, a new
or revised event's ex-date; a revision gold does not read is no change, see
:func:`unread_revisions`) to the symbol's last date, reading the 252 bars before it so the
rolling metrics (52 weeks is the longest) are complete; the running peak of the drawdown
continues from the stored rows before that date. Rows before it are unchanged in the forward
frame, even when the change is a new split: only the symbol's current factor changes, and with it
what serving shows for the rows before the event (silver-to-gold records those rows as changed
for serving to reload, rescaled; gold itself does not rewrite them). Likewise the event factors:
those of the events from :func:`factors_from` on are recomputed, the earlier ones are taken as
stored, and the cumulative products run over both; a full refresh recomputes every one.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from typing import TypeVar

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from spark_jobs import contracts
from spark_jobs.silver import SECURITY_ATTRIBUTES

LOOKBACK_BARS = 252
# Calendar days that hold LOOKBACK_BARS sessions (252 sessions ~ 366 days) with slack, for a symbol
# that traded every session: the plan counts them, and reads a symbol with fewer (back from a long
# halt) from its first bar (see recompute_plan).
LOOKBACK_DAYS = 400
MOVING_AVERAGES = (20, 50, 200)
VOLATILITY_WINDOW = 20
EXTREMES_WINDOW = 252
ANNUALIZATION = math.sqrt(252.0)
# The columns whose change rewrites a stored gold row (declared in the contracts).
DAILY_VALUES = contracts.load("gold", "fct_daily_prices").compared
MONTHLY_VALUES = contracts.load("gold", "fct_monthly_performance").compared
QUOTE_VALUES = contracts.load("gold", "latest_quotes").compared
T = TypeVar("T")  # a column of whichever engine reads gold (see current_frame)


def _event() -> Column:
    return (F.coalesce(F.col("split_coefficient"), F.lit(1.0)) != 1.0) | (
        F.coalesce(F.col("dividend_amount"), F.lit(0.0)) != 0.0
    )


def recompute_starts(changed: DataFrame, silver: DataFrame) -> DataFrame:
    """Per symbol with changes: the first trade date whose gold row must be recomputed.

    Args:
        changed: (symbol, trade_date) of silver bars inserted or revised since the last gold run,
            and the ex-dates of corporate actions inserted or revised since then.
        silver: silver.daily_bars.

    Returns:
        (symbol, start_date, full) where full means the recompute starts at the symbol's first bar.
    """
    first_change = changed.groupBy("symbol").agg(F.min("trade_date").alias("first_change"))
    per_symbol = (
        silver.join(first_change, "symbol", "inner")
        .groupBy("symbol")
        .agg(F.min("trade_date").alias("first_date"), F.min("first_change").alias("first_change"))
    )
    start = F.greatest(F.col("first_change"), F.col("first_date"))
    return per_symbol.select("symbol", start.alias("start_date"), (start <= F.col("first_date")).alias("full"))


# What gold reads of a silver bar besides its event fields: the traded prices and volume, which
# fct_daily_prices stores as they are.
BAR_INPUTS = ("open", "high", "low", "close", "volume")


def unread_revisions(
    changed: DataFrame, stored: DataFrame, stored_factors: DataFrame, day_events: DataFrame, since: dt.date
) -> DataFrame:
    """The (symbol, trade_date) of `changed` bars whose revision gold does not read.

    A provider revises the adjusted close of a symbol's whole compact series after each split or
    dividend; gold does not read that column, so such a bar changes no gold value. It is one whose
    :data:`BAR_INPUTS` equal its stored gold row and whose day has the event gold used (the same
    split factor and dividend in :func:`events` as in the stored adjustment factors, or no event in
    either). Its close being unchanged, so is every previous close. Recomputing from it would only
    rewrite the values gold has (up to the rounding of the moving sums, which depends on where a
    recompute starts).

    Args:
        changed: silver bars changed since the last run.
        stored: gold.fct_daily_prices.
        stored_factors: gold.adjustment_factors.
        day_events: :func:`events` of the silver bars.
        since: the earliest trade date of `changed`. Every join is on the date, so only the gold
            rows and events from it on can match; as a literal it lets the scans skip the files
            (one date range each) of the history before it.
    """
    keys = ["symbol", "trade_date"]
    stored = stored.filter(F.col("trade_date") >= F.lit(since))
    stored_factors = stored_factors.filter(F.col("ex_date") >= F.lit(since))
    day_events = day_events.filter(F.col("ex_date") >= F.lit(since))
    gold_row = stored.select(*keys, *[F.col(c).alias(f"_gold_{c}") for c in BAR_INPUTS])
    event_now = day_events.select(
        "symbol", F.col("ex_date").alias("trade_date"), F.col("split_factor").alias("_split_now"),
        F.col("dividend_amount").alias("_dividend_now"),
    )  # fmt: skip
    event_used = stored_factors.select(
        "symbol", F.col("ex_date").alias("trade_date"), F.col("split_factor").alias("_split_used"),
        F.col("dividend_amount").alias("_dividend_used"),
    )  # fmt: skip
    same = F.col("_split_now").eqNullSafe(F.col("_split_used")) & F.col("_dividend_now").eqNullSafe(
        F.col("_dividend_used")
    )
    for c in BAR_INPUTS:
        same = same & F.col(c).eqNullSafe(F.col(f"_gold_{c}"))
    return (
        changed.select(*keys, *BAR_INPUTS)
        .join(gold_row, keys, "inner")
        .join(event_now, keys, "left")
        .join(event_used, keys, "left")
        .filter(same)
        .select(*keys)
    )


def recompute_plan(
    changed: DataFrame, silver: DataFrame, stored: DataFrame, day_events: DataFrame, since: dt.date | None = None
) -> DataFrame:
    """:func:`recompute_starts` plus what writing the recomputed rows needs, in one pass.

    Args:
        since: a date no later than any trade date of `changed` (None: not known). The rows from
            it on (silver's from LOOKBACK_DAYS before it, to count the lookback) are joined with
            each symbol's first change; the history before it only enters through per-symbol
            aggregates without a join (first bar; highest adj_close and last date stored), all
            before any start date. A daily run's plan so joins the months its changes reach, not
            the whole history; minimum, maximum and count are exact, so the plan is the one the
            whole history gives.

    Returns:
        (symbol, start_date, full, first_row, last_row, rows, lookback_from, prev_peak, stored_last,
        last_event): ``lookback_from`` is where :func:`span_for` reads the symbol's lookback from
        (LOOKBACK_DAYS before the start when those days hold LOOKBACK_BARS bars, else its first
        bar); ``last_event`` is the latest ex-date of the symbol's :func:`events` (see
        :func:`factors_change`); the first
        and last trade date of the recomputed rows and their number (0 when the start is after the
        last bar), the highest stored adj_close before the start (NULL when there is none), and the
        last stored trade date (NULL for a symbol gold does not hold; every recomputed row is a new
        key when the start is after it).
    """

    def recent(df: DataFrame, days_before: int = 0) -> DataFrame:
        if since is None:
            return df
        return df.filter(F.col("trade_date") >= F.lit(since - dt.timedelta(days=days_before)))

    def older(df: DataFrame) -> DataFrame:
        return df.limit(0) if since is None else df.filter(F.col("trade_date") < F.lit(since))

    first_change = changed.groupBy("symbol").agg(F.min("trade_date").alias("first_change"))
    first_date = silver.groupBy("symbol").agg(F.min("trade_date").alias("first_date"))
    recomputed = F.col("trade_date") >= F.col("first_change")
    lookback = ~recomputed & (F.col("trade_date") >= F.date_sub("first_change", LOOKBACK_DAYS))
    # Rows at or after a symbol's first change, and the LOOKBACK_DAYS before it, are all recent;
    # its last bar is one of them when it has any.
    reached = (
        recent(silver, LOOKBACK_DAYS)
        .join(first_change, "symbol", "inner")
        .groupBy("symbol")
        .agg(
            F.min(F.when(recomputed, F.col("trade_date"))).alias("first_row"),
            F.max("trade_date").alias("last_row"),
            F.count(F.when(recomputed, F.lit(1))).alias("rows"),
            F.count(F.when(lookback, F.lit(1))).alias("lookback_bars"),
        )
    )
    per_symbol = (
        first_change.join(first_date, "symbol", "inner")
        .join(reached, "symbol", "left")
        .withColumn("rows", F.coalesce(F.col("rows"), F.lit(0).cast("bigint")))
    )
    start = F.greatest(F.col("first_change"), F.col("first_date"))
    # A full recompute has no bar before its start (lookback_bars 0): it reads from its first bar.
    enough = F.coalesce(F.col("lookback_bars"), F.lit(0)) >= LOOKBACK_BARS
    lookback_from = F.when(enough, F.date_sub(start, LOOKBACK_DAYS)).otherwise(F.col("first_date"))
    plan = per_symbol.select(
        "symbol", start.alias("start_date"), (start <= F.col("first_date")).alias("full"),
        F.when(F.col("rows") > 0, F.col("first_row")).alias("first_row"),
        F.when(F.col("rows") > 0, F.col("last_row")).alias("last_row"), "rows", lookback_from.alias("lookback_from"),
    )  # fmt: skip
    before = F.col("trade_date") < F.col("start_date")
    held_recent = (
        recent(stored)
        .join(plan.select("symbol", "start_date"), "symbol", "inner")
        .groupBy("symbol")
        .agg(F.max(F.when(before, F.col("adj_close"))).alias("prev_peak"), F.max("trade_date").alias("stored_last"))
    )
    held_older = (
        older(stored)
        .groupBy("symbol")
        .agg(F.max("adj_close").alias("prev_peak"), F.max("trade_date").alias("stored_last"))
    )
    held = (
        held_recent.unionByName(held_older)
        .groupBy("symbol")
        .agg(F.max("prev_peak").alias("prev_peak"), F.max("stored_last").alias("stored_last"))
    )
    latest = day_events.groupBy("symbol").agg(F.max("ex_date").alias("last_event"))
    return plan.join(held, "symbol", "left").join(latest, "symbol", "left")


def factors_change(start_date: dt.date, stored_last: dt.date | None, last_event: dt.date | None) -> bool:
    """Whether a planned symbol's adjustment factors may change (one :func:`recompute_plan` row).

    An event's factor reads its own day and the closes before it; a bar or action that changed
    from `start_date` on reaches only events from that date on, and a symbol's first bars after
    `stored_last` (its last stored gold row) also make current the events up to them. Every
    cumulative factor of a symbol depends on all its events, so a symbol's are recomputed whole
    (its event factors from :func:`factors_from` on) or not at all; one with no event from the
    earlier of those dates keeps its stored factors.
    """
    if last_event is None:
        return False
    if stored_last is None:
        return True
    return last_event >= min(start_date, stored_last + dt.timedelta(days=1))


def span_for(silver: DataFrame, starts: DataFrame) -> DataFrame:
    """Silver bars of each symbol from LOOKBACK_BARS bars before its start date to its last bar.

    Args:
        starts: (symbol, start_date, lookback_from), ``lookback_from`` as :func:`recompute_plan`
            gives it: a date the LOOKBACK_BARS bars begin after, which LOOKBACK_DAYS before the
            start is not for a symbol back from a long halt.
    """
    bounds = F.broadcast(starts.select("symbol", "start_date", "lookback_from"))
    near = silver.join(bounds, "symbol", "inner").filter(F.col("trade_date") >= F.col("lookback_from"))
    near = near.drop("lookback_from")
    by_date = Window.partitionBy("symbol").orderBy("trade_date")
    numbered = near.withColumn("_rn", F.row_number().over(by_date))
    first_in = Window.partitionBy("symbol")
    start_rn = F.min(F.when(F.col("trade_date") >= F.col("start_date"), F.col("_rn"))).over(first_in)
    return (
        numbered.withColumn("_start_rn", start_rn)
        .filter(F.col("_rn") >= F.col("_start_rn") - LOOKBACK_BARS)
        .drop("_rn", "_start_rn", "start_date")
    )


def events(bars: DataFrame, actions: DataFrame | None = None) -> DataFrame:
    """(symbol, ex_date, split_factor, dividend_amount) of every event day of `bars`' symbols.

    silver.corporate_actions wins for the kind of event it has on a day; the series' own fields
    fill what it lacks (a premium series ingested without the SPLITS and DIVIDENDS datasets).
    """
    split, dividend = F.col("split_coefficient"), F.col("dividend_amount")
    from_bars = bars.filter(_event()).select(
        "symbol", F.col("trade_date").alias("ex_date"), split.alias("_bar_split"), dividend.alias("_bar_dividend")
    )
    if actions is None:
        none = F.lit(None).cast("double")
        joined = from_bars.select("*", none.alias("_split"), none.alias("_dividend"))
    else:
        symbols = bars.select("symbol").distinct()
        per_day = (
            actions.join(symbols, "symbol", "left_semi")
            .groupBy("symbol", "ex_date")
            .agg(
                F.max(F.when(F.col("action") == "split", F.col("split_factor"))).alias("_split"),
                F.max(F.when(F.col("action") == "dividend", F.col("dividend_amount"))).alias("_dividend"),
            )
        )
        joined = per_day.join(from_bars, ["symbol", "ex_date"], "full")
    return joined.select(
        "symbol", "ex_date",
        F.coalesce("_split", "_bar_split", F.lit(1.0)).alias("split_factor"),
        F.coalesce("_dividend", "_bar_dividend", F.lit(0.0)).alias("dividend_amount"),
    )  # fmt: skip


# The bar before an ex-date is looked for this many calendar days back (it is the previous session).
PREVIOUS_CLOSE_DAYS = 31


def _checked(factor: Column) -> Column:
    """`factor`, or a job failure naming the event when it is not a positive number."""
    message = F.concat(
        F.lit("non-positive adjustment factor for "), F.col("symbol"), F.lit(" on "), F.col("ex_date").cast("string"),
        F.lit(": split factor "), F.col("split_factor").cast("string"), F.lit(", dividend "),
        F.col("dividend_amount").cast("string"), F.lit(", previous close "),
        F.coalesce(F.col("previous_close").cast("string"), F.lit("unknown")),
    )  # fmt: skip
    return F.when(factor > 0, factor).otherwise(F.raise_error(message))


# What gold.adjustment_factors stores of an event that depends on that event alone (event_factors).
EVENT_COLUMNS = ("symbol", "ex_date", "split_factor", "dividend_amount", "previous_close", "event_factor")


def event_factors(bars: DataFrame, day_events: DataFrame) -> DataFrame:
    """Per symbol and ex-date: the event, the close before it and its factor (the stored columns of
    gold.adjustment_factors that depend on that event alone). Only events up to the symbol's last
    bar count; a factor that is not positive fails the job (see :func:`_checked`).

    Args:
        bars: silver bars of the symbols: all of them, or those from PREVIOUS_CLOSE_DAYS before the
            first event of `day_events` to the last bar.
        day_events: :func:`events`.
    """
    last = bars.groupBy("symbol").agg(F.max("trade_date").alias("_last"))
    current = day_events.join(last, "symbol", "inner").filter(F.col("ex_date") <= F.col("_last")).drop("_last")
    prior = bars.select("symbol", F.col("trade_date").alias("_day"), F.col("close").alias("_close"))
    # The candidate days of each event joined on equality: a join on the symbol alone, filtered to the
    # days before the ex-date, pairs every event with every bar of its symbol (3x slower at 5 years).
    days_before = F.sequence(F.date_sub("ex_date", PREVIOUS_CLOSE_DAYS), F.date_sub("ex_date", 1))
    previous = (
        current.select("symbol", "ex_date", F.explode(days_before).alias("_day"))
        .join(prior, ["symbol", "_day"], "inner")
        .groupBy("symbol", "ex_date")
        .agg(F.max_by("_close", "_day").alias("previous_close"))
    )
    with_close = current.join(previous, ["symbol", "ex_date"], "left")
    dividend, close = F.col("dividend_amount"), F.col("previous_close")
    dividend_factor = F.when((dividend != 0) & close.isNotNull(), 1.0 - dividend / close).otherwise(F.lit(1.0))
    split = F.col("split_factor")
    factor = _checked(F.when(split > 0, dividend_factor / split))
    return with_close.select(*EVENT_COLUMNS[:-1], factor.alias("event_factor"))


def cumulative_factors(per_event: DataFrame) -> DataFrame:
    """:func:`event_factors` of every event of each symbol, plus its cumulative and forward factors.

    ``cumulative_factor`` of an ex-date is what every price before it, back to the previous
    event, is multiplied by in the current frame; ``forward_factor`` is what every price from it
    to the next event is divided by in the forward frame gold stores. A new event changes the
    cumulative factors of every earlier event but the forward factors of none.
    """
    by_date = Window.partitionBy("symbol").orderBy("ex_date")
    later = by_date.rowsBetween(0, Window.unboundedFollowing)
    earlier = by_date.rowsBetween(Window.unboundedPreceding, 0)
    log_factor = F.log("event_factor")
    return per_event.select(
        *EVENT_COLUMNS,
        F.exp(F.sum(log_factor).over(later)).alias("cumulative_factor"),
        F.exp(F.sum(log_factor).over(earlier)).alias("forward_factor"),
    )  # fmt: skip


def adjustment_factors(bars: DataFrame, day_events: DataFrame) -> DataFrame:
    """Per symbol and ex-date: the event factor and the cumulative factors (gold.adjustment_factors),
    :func:`cumulative_factors` of the :func:`event_factors` of every event.

    Args:
        bars: silver bars of the symbols (all of them, or a span that holds the bar before each
            event that matters).
        day_events: :func:`events`.
    """
    return cumulative_factors(event_factors(bars, day_events))


def factors_from(start_date: dt.date, stored_last: dt.date | None, full: bool) -> dt.date | None:
    """The first ex-date whose event factor a planned symbol's recompute may change, or None when
    every event must be recomputed (a recompute from its first bar, a symbol gold does not hold).

    An event's factor reads its own day and the closes of the PREVIOUS_CLOSE_DAYS before it; a
    change from `start_date` on reaches only events from that date on, and the bars after
    `stored_last` make current the events up to them (see :func:`factors_change`). The events
    before it keep their stored factors: only their cumulative factors are recomputed.
    """
    if full or stored_last is None:
        return None
    return min(start_date, stored_last + dt.timedelta(days=1))


def adjusted(bars: DataFrame, factors: DataFrame | None = None) -> DataFrame:
    """The symbol, trade_date and :data:`BAR_INPUTS` of `bars`, plus ``_divisor`` (the product of the
    event factors on or before each day) and the forward-frame ``adj_close`` (close / _divisor).

    Args:
        bars: silver bars.
        factors: :func:`adjustment_factors` of the symbols; None takes them from the bars' own
            split and dividend fields.
    """
    if factors is None:
        factors = adjustment_factors(bars, events(bars))
    # One timeline of bars and events; on an ex-date the event sorts first, so it divides that day's bar.
    # The bar values ride along it (an event row holds zeros, dropped with the row) rather than the
    # divisors being joined back to the bars (a join of every bar with its divisor).
    placeholders = [F.lit(0).cast("bigint" if c == "volume" else "double").alias(c) for c in BAR_INPUTS]
    marks = bars.select("symbol", "trade_date", *BAR_INPUTS, F.lit(1).alias("_kind"), F.lit(0.0).alias("_log"))
    marks = marks.unionByName(
        factors.select(
            "symbol", F.col("ex_date").alias("trade_date"), *placeholders, F.lit(0).alias("_kind"),
            F.log("event_factor").alias("_log"),
        )
    )  # fmt: skip
    so_far = Window.partitionBy("symbol").orderBy("trade_date", "_kind").rowsBetween(Window.unboundedPreceding, 0)
    return (
        marks.withColumn("_divisor", F.exp(F.sum("_log").over(so_far)))
        .filter(F.col("_kind") == 1)
        .select(
            "symbol", "trade_date", *BAR_INPUTS, "_divisor", (F.col("close") / F.col("_divisor")).alias("adj_close")
        )
    )


def daily_prices(
    span: DataFrame, starts: DataFrame, load_id: str, version: str, factors: DataFrame | None = None
) -> DataFrame:
    """fct_daily_prices rows from each symbol's start date on, price levels in the forward frame.

    Args:
        span: silver bars (see :func:`span_for`).
        factors: :func:`adjustment_factors` of the symbols (None: from the bars' own fields).
        starts: (symbol, start_date, prev_peak) where prev_peak is the highest stored adj_close
            before start_date (NULL when recomputing from the first bar).
        load_id: the run producing the rows.
        version: contract version stamped on the rows.
    """
    by_date = Window.partitionBy("symbol").orderBy("trade_date")

    def last(n: int):
        return by_date.rowsBetween(-(n - 1), 0)

    # adj_close is never NULL (silver's close is not): a window of the last n bars holds n values
    # once the bar is at least the n-th, so one row number stands in for a count per moving average
    # (each framed window costs Sail 0.7.2 about as much as the average itself).
    df = adjusted(span, factors).withColumn("_n", F.row_number().over(by_date))
    ratio = F.col("adj_close") / F.lag("adj_close").over(by_date)
    df = df.withColumn("daily_return", ratio - 1.0).withColumn("log_return", F.log(ratio))
    for n in MOVING_AVERAGES:
        df = df.withColumn(f"ma_{n}", F.when(F.col("_n") >= n, F.avg("adj_close").over(last(n))))
    vol = last(VOLATILITY_WINDOW)
    df = df.withColumn(
        "volatility_20d",
        F.when(
            F.count("log_return").over(vol) == VOLATILITY_WINDOW,
            F.stddev_samp("log_return").over(vol) * F.lit(ANNUALIZATION),
        ),
    )
    # The extremes of the adjusted highs and lows: the same frame as adj_close, continuous across splits.
    df = df.withColumn("high_52w", F.max(F.col("high") / F.col("_divisor")).over(last(EXTREMES_WINDOW)))
    df = df.withColumn("low_52w", F.min(F.col("low") / F.col("_divisor")).over(last(EXTREMES_WINDOW)))
    df = df.join(F.broadcast(starts.select("symbol", "start_date", "prev_peak")), "symbol", "inner")
    running = F.max("adj_close").over(by_date.rowsBetween(Window.unboundedPreceding, 0))
    peak = F.greatest(running, F.coalesce(F.col("prev_peak"), running))
    df = df.withColumn("drawdown", F.col("adj_close") / peak - 1.0)
    return df.filter(F.col("trade_date") >= F.col("start_date")).select(
        "symbol", "trade_date", *DAILY_VALUES, F.lit(load_id).alias("load_id"), F.lit(version).alias("schema_version")
    )


# Per gold table: the columns stored in the forward frame (times the symbol's current factor in the
# current frame users see). Every other column is a raw price, a count or a ratio of one frame.
FORWARD_COLUMNS: dict[str, tuple[str, ...]] = {
    "fct_daily_prices": ("adj_close", "ma_20", "ma_50", "ma_200", "high_52w", "low_52w"),
    "fct_monthly_performance": ("adj_close",),
}


def current_factors(factors: DataFrame) -> DataFrame:
    """(symbol, current_factor) from gold.adjustment_factors: the forward factor of each symbol's last
    event, the product of all its event factors. A symbol without events has no row (factor 1)."""
    return factors.groupBy("symbol").agg(F.max_by("forward_factor", "ex_date").alias("current_factor"))


def current_frame(
    table: str, names: Sequence[str], stored: Callable[[str], T], rescaled: Callable[[str], T]
) -> list[T]:
    """The columns `names` of gold `table` in the current frame, in their order: the
    :data:`FORWARD_COLUMNS` `rescaled` (times the symbol's current factor, 1 for a symbol without
    events), every other column as `stored`.

    The one rule of which columns the mart shows rescaled, for any engine: :func:`in_current_frame`
    passes Spark columns, a reader of the Delta files with Arrow (the benchmarks) Arrow arrays.
    """
    scaled = FORWARD_COLUMNS.get(table, ())
    return [rescaled(c) if c in scaled else stored(c) for c in names]


def in_current_frame(rows: DataFrame, table: str, current: DataFrame) -> DataFrame:
    """`rows` of gold `table` in the current frame (:func:`current_frame`), by `current`
    (:func:`current_factors`).

    One multiplication of two stored doubles, so serving and every check of the mart against gold
    get bit-identical values.
    """
    if not FORWARD_COLUMNS.get(table):
        return rows
    factor = F.coalesce(F.col("_current_factor"), F.lit(1.0))
    joined = rows.join(
        F.broadcast(current.select("symbol", F.col("current_factor").alias("_current_factor"))), "symbol", "left"
    )
    return joined.select(*current_frame(table, rows.columns, F.col, lambda c: (F.col(c) * factor).alias(c)))


def monthly_performance(
    daily: DataFrame, starts: DataFrame, load_id: str, version: str, previous: DataFrame | None = None
) -> DataFrame:
    """fct_monthly_performance rows for each symbol from the month of its start date on.

    Args:
        daily: fct_daily_prices rows from the first day of each symbol's start month.
        starts: (symbol, start_date).
        load_id: the run producing the rows.
        version: contract version stamped on the rows.
        previous: (symbol, prev_adj_close) from :func:`previous_month_closes`: what the first month's
            return compares with. None when no monthly rows are stored.

    First and last values of a month are taken by date (``min_by`` / ``max_by``), never ``first()``.
    The return compares with the symbol's previous month WITH bars, not the calendar month before:
    a month without bars (a halt) has no row, as in a recompute of the whole history.
    """
    monthly = (
        daily.withColumn("month", F.trunc("trade_date", "month"))
        .groupBy("symbol", "month")
        .agg(
            F.min_by("open", "trade_date").alias("open"),
            F.max("high").alias("high"),
            F.min("low").alias("low"),
            F.max_by("close", "trade_date").alias("close"),
            F.max_by("adj_close", "trade_date").alias("adj_close"),
            F.sum("volume").cast("bigint").alias("volume"),
            F.count(F.lit(1)).cast("int").alias("trading_days"),
        )
    )
    before = F.lag("adj_close").over(Window.partitionBy("symbol").orderBy("month"))
    if previous is not None:
        # Only the frame's first month has no lag; it compares with the stored month before it.
        monthly = monthly.join(F.broadcast(previous), "symbol", "left")
        before = F.coalesce(before, F.col("prev_adj_close"))
    monthly = monthly.withColumn("monthly_return", F.col("adj_close") / before - 1.0)
    return (
        monthly.join(F.broadcast(starts.select("symbol", "start_date")), "symbol", "inner")
        .filter(F.col("month") >= F.trunc("start_date", "month"))
        .select(
            "symbol", "month", *MONTHLY_VALUES, F.lit(load_id).alias("load_id"), F.lit(version).alias("schema_version")
        )
    )


def previous_month_closes(stored_monthly: DataFrame, starts: DataFrame) -> DataFrame:
    """(symbol, prev_adj_close): each symbol's month-end adj_close of its last stored month before
    its start month, the value its first recomputed month's return compares with.

    Read from the stored monthly rows (a row per month with bars), so a month without bars before
    the start month is passed over without reading back the daily rows to the last month with some.
    """
    before = stored_monthly.join(F.broadcast(starts.select("symbol", "start_date")), "symbol", "inner").filter(
        F.col("month") < F.trunc("start_date", "month")
    )
    return before.groupBy("symbol").agg(F.max_by("adj_close", "month").alias("prev_adj_close"))


def dim_security(history: DataFrame, load_id: str, version: str) -> DataFrame:
    """SCD type 2 from dated snapshots: a new version whenever an attribute changes.

    ``valid_to`` is the ``valid_from`` of the next version (exclusive end); NULL for the current one.
    """
    by_date = Window.partitionBy("symbol").orderBy("as_of_date")
    # Window results are materialized as columns before filtering (Sail cannot filter on them directly).
    lagged = history.withColumns({f"_prev_{c}": F.lag(c).over(by_date) for c in SECURITY_ATTRIBUTES})
    lagged = lagged.withColumn("_rn", F.row_number().over(by_date))
    same = F.lit(True)
    for c in SECURITY_ATTRIBUTES:
        same = same & F.col(c).eqNullSafe(F.col(f"_prev_{c}"))
    starts = lagged.filter((F.col("_rn") == 1) | ~same)
    by_version = Window.partitionBy("symbol").orderBy("as_of_date")
    return starts.select(
        "symbol", *SECURITY_ATTRIBUTES, F.col("as_of_date").alias("valid_from"),
        F.lead("as_of_date").over(by_version).alias("valid_to"),
    ).select(
        "symbol", *SECURITY_ATTRIBUTES, "valid_from", "valid_to", F.col("valid_to").isNull().alias("is_current"),
        F.lit(load_id).alias("load_id"), F.lit(version).alias("schema_version"),
    )  # fmt: skip


def latest_quotes(quotes: DataFrame, load_id: str, version: str) -> DataFrame:
    """The newest quote per symbol (by fetch time, then event sequence number)."""
    newest = Window.partitionBy("symbol").orderBy(F.col("quote_time").desc(), F.col("sequence_number").desc())
    return (
        quotes.withColumn("_rn", F.row_number().over(newest))
        .filter("_rn = 1")
        .select("symbol", *QUOTE_VALUES, F.lit(load_id).alias("load_id"), F.lit(version).alias("schema_version"))
    )


def dim_date_rows(days: list[dt.date], previous: dt.date | None, following: dt.date | None) -> list[dict]:
    """dim_date rows for consecutive trading sessions.

    `previous` is the session before ``days[0]`` and `following` the one after ``days[-1]``
    (None where the calendar has none).

    ``day_of_week`` is ISO (1 = Monday); ``is_month_end`` marks the last session of a month.
    """
    rows = []
    for i, day in enumerate(days):
        nxt = days[i + 1] if i + 1 < len(days) else following
        rows.append({
            "trade_date": day, "year": day.year, "quarter": (day.month - 1) // 3 + 1, "month": day.month,
            "day_of_month": day.day, "day_of_week": day.isoweekday(),
            "is_month_end": nxt is None or nxt.month != day.month,
            "previous_trade_date": days[i - 1] if i else previous,
        })  # fmt: skip
    return rows


def changed_ranges(rows: DataFrame, date_column: str) -> DataFrame:
    """(symbol, range_start, range_end): the span of `date_column` each symbol's recomputed rows cover.

    Silver-to-gold records these spans (``ops.gold_changes``) so that serving reloads every range
    whose served values changed, not only the run's window: a revised or late bar changes dates
    long before the window, and a new event changes the current factor the whole history of its
    symbol is served at.
    """
    return rows.groupBy("symbol").agg(F.min(date_column).alias("range_start"), F.max(date_column).alias("range_end"))
