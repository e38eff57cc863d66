"""Fixtures of the reliability suite: the `case` ledger entry every test opens, and the report
written at the end of a `make reliability` session (LAKEHOUSE_RELIABILITY_REPORT names the file)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.reliability.ledger import Case, Ledger

LEDGER = Ledger()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" or (report.when == "setup" and not report.passed):
        item.stash[_OUTCOME] = report.outcome


_OUTCOME = pytest.StashKey[str]()


@pytest.fixture
def case(request: pytest.FixtureRequest) -> Iterator[Callable[..., Case]]:
    """Open this test's ledger entry: ``c = case("bad input", "high < low", expected="...")``.

    A parametrized test may open one entry per parameter; every entry gets the test's outcome."""
    opened: list[Case] = []

    def open_case(category: str, title: str, *, expected: str, crash_point: str | None = None) -> Case:
        entry = LEDGER.open(request.node.nodeid, category, title, expected, crash_point)
        opened.append(entry)
        return entry

    yield open_case
    outcome = request.node.stash.get(_OUTCOME, "failed")
    for entry in opened:
        entry.finish(outcome)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get("LAKEHOUSE_RELIABILITY_REPORT")
    if not target or not LEDGER.cases:
        return
    from tests.reliability import report

    report.write(LEDGER.cases, Path(target), exitstatus=int(exitstatus))
