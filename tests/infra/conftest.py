"""Pulumi programs under mocks (no cloud): the whole program once per stack, small programs per component.

Azure itself is mocked (Pulumi's mock monitor in `infra/preview.py`); everything else is real:
the components, the stack files, the `adf/` JSON and the notebooks they deploy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from infra import preview


@dataclass(frozen=True)
class Common:
    """Arguments every component takes, with test values."""

    rg: str = "rg-test"
    location: str = "westeurope"
    tags: dict = field(default_factory=lambda: {"environment": "test", "system": "market-lakehouse", "owner": "tests"})


@pytest.fixture(scope="session")
def common() -> Common:
    return Common()


@pytest.fixture(scope="session")
def dev_run() -> preview.ProgramRun:
    """`infra/__main__.py` with Pulumi.dev.yaml, run once per test session."""
    return preview.run("dev")


@pytest.fixture(scope="session")
def prod_run() -> preview.ProgramRun:
    """`infra/__main__.py` with Pulumi.prod.yaml, run once per test session."""
    return preview.run("prod")


@pytest.fixture(params=["dev", "prod"])
def stack_run(request: pytest.FixtureRequest) -> preview.ProgramRun:
    """Each stack's run in turn, for rules that hold for every environment."""
    return request.getfixturevalue(f"{request.param}_run")


@pytest.fixture(scope="session")
def run_component() -> Callable[..., preview.ProgramRun]:
    """Run a small program (usually one component) under mocks and return what it registered."""

    def run(program: Callable[[], object], config: dict | None = None) -> preview.ProgramRun:
        return preview.run_program(lambda: program(), config or {}, stack="test")

    return run
