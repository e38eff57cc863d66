"""The command examples of the README and docs/ are run, so they stay true.

A fenced block whose info string is ``console`` is runnable: each line starting with ``$ `` is a
command (a trailing ``\\`` continues it on the next line), the other lines are sample output and
are not compared. A command is expected to exit 0 unless its comment says ``# exit N``. The
commands of one block run in order, in a scratch directory, with ``.venv/bin`` first on PATH,
against a fresh LAKEHOUSE_HOME and a fresh serving database on the run's embedded services.

A block opened with ``console slow`` (a backfill, a benchmark) is skipped unless
LAKEHOUSE_DOCS_EXAMPLES=all, so `make test` runs the fast ones; run all of them with
``LAKEHOUSE_DOCS_EXAMPLES=all .venv/bin/python -m pytest tests/test_docs_examples.py``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from local import services
from tests.databases import fresh_database

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```console(?P<slow> slow)?\s*$")
EXPECTED_EXIT = re.compile(r"#\s*exit (\d+)")
COMMAND_TIMEOUT_S = 900


@dataclass(frozen=True)
class Example:
    page: str
    line: int
    slow: bool
    commands: tuple[tuple[str, int], ...]  # (command, expected exit code)

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def examples(text: str, page: str) -> list[Example]:
    """The runnable blocks of one markdown page."""
    found, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        opened = FENCE.match(lines[i])
        if not opened:
            i += 1
            continue
        start, commands, pending = i + 1, [], None
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            line = lines[i]
            if pending is not None:
                pending += "\n" + line
            elif line.startswith("$ "):
                pending = line[2:]
            if pending is not None and not pending.endswith("\\"):
                code = EXPECTED_EXIT.search(pending.splitlines()[-1])
                commands.append((pending, int(code.group(1)) if code else 0))
                pending = None
            i += 1
        found.append(Example(page, start, bool(opened.group("slow")), tuple(commands)))
        i += 1
    return found


ALL = [e for page in PAGES for e in examples(page.read_text(), str(page.relative_to(REPO)))]


def test_the_parser_reads_commands_continuations_and_exit_codes() -> None:
    text = "x\n```console slow\n$ a --b \\\n    c\nout\n$ d  # exit 1: why\n```\n```bash\n$ e\n```\n"
    assert examples(text, "p.md") == [Example("p.md", 2, True, (("a --b \\\n    c", 0), ("d  # exit 1: why", 1)))]


def test_the_readme_and_the_docs_have_runnable_examples() -> None:
    pages = {e.page for e in ALL if e.commands and not e.slow}
    assert "README.md" in pages and len(pages) >= 3, pages
    assert all(e.commands for e in ALL), [e.id for e in ALL if not e.commands]


@pytest.mark.parametrize("example", ALL, ids=[e.id for e in ALL])
def test_example_runs(example: Example, tmp_path: Path, endpoints: services.Endpoints) -> None:
    if example.slow and os.environ.get("LAKEHOUSE_DOCS_EXAMPLES") != "all":
        pytest.skip("a slow example: LAKEHOUSE_DOCS_EXAMPLES=all runs it")
    work = tmp_path / "work"
    work.mkdir()
    with fresh_database(endpoints.pg_dsn, "docs") as dsn:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ALPHAVANTAGE_", "LAKEHOUSE_"))}
        env.update({
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "LAKEHOUSE_HOME": str(tmp_path / "home"),
            "LAKEHOUSE_SPARK_REMOTE": endpoints.spark_remote,
            "LAKEHOUSE_PG_DSN": dsn,
            "REPO": str(REPO),
        })  # fmt: skip
        for command, expected in example.commands:
            done = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=work, env=env,
                                  capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)  # fmt: skip
            assert done.returncode == expected, (
                f"{example.id}: `{command}` exited {done.returncode}, the page says {expected}\n"
                f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
            )
