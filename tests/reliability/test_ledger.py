"""The ledger refuses to hide a lost row, and the report states every case it was given."""

from __future__ import annotations

import pytest

from tests.reliability import report
from tests.reliability.ledger import Ledger, LostRowsError


def test_a_lost_row_fails_the_case():
    entry = Ledger().open("t::x", "bad input", "high < low", expected="quarantined")
    with pytest.raises(LostRowsError, match="lost_rows=1"):
        entry.reconcile({"raw_records": 3, "bronze_rows": 3, "silver_rows": 1, "quarantine_rows": 1, "lost_rows": 1})


def test_unknown_categories_and_figures_are_refused():
    ledger = Ledger()
    with pytest.raises(ValueError, match="category"):
        ledger.open("t::x", "vibes", "x", expected="y")
    with pytest.raises(ValueError, match="reconciliation keys"):
        ledger.open("t::x", "bad input", "x", expected="y").reconcile({"rows": 1})


def test_the_report_counts_cases_lost_rows_and_crash_points():
    ledger = Ledger()
    a = ledger.open("t::a", "bad input", "negative price", expected="quarantined by positive_prices")
    a.observe("2 rows quarantined").reconcile({"raw_records": 5, "bronze_rows": 5, "silver_rows": 3,
                                               "quarantine_rows": 2, "lost_rows": 0})  # fmt: skip
    a.finish("passed")
    b = ledger.open("t::b", "crash recovery", "kill mid-commit", expected="identical", crash_point="silver commit")
    b.finish("failed")
    text = report.render(ledger.cases, exitstatus=1)
    assert "Cases: **2** (1 bad input, 1 crash recovery); passed 1, failed 1, skipped 0." in text
    assert "Lost rows over all reconciled cases: **0** (1 cases reconciled)" in text
    assert "Crash points exercised: **1**: silver commit." in text
    assert "| negative price | quarantined by positive_prices | 2 rows quarantined |" in text


def test_a_stale_or_extra_row_fails_the_case():
    entry = Ledger().open("t::x", "silent loss", "phantom mart row", expected="reported")
    with pytest.raises(LostRowsError, match="stale_rows=0, extra_rows=1"):
        entry.reconcile({"gold_rows": 3, "mart_rows": 4, "lost_rows": 0, "stale_rows": 0, "extra_rows": 1})
    with pytest.raises(LostRowsError, match="stale_rows=2"):
        entry.reconcile({"gold_rows": 3, "mart_rows": 3, "stale_rows": 2})
