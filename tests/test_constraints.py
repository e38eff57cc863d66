"""`make constraints` regenerates the committed constraints.txt as it is, from the installed venv."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_constraints_reproduces_the_committed_file(tmp_path: Path) -> None:
    out = tmp_path / "constraints.txt"
    # -o: the venv is taken as installed; this test must not install anything
    done = subprocess.run(["make", "-s", "-o", ".venv/.deps-installed", "constraints", f"CONSTRAINTS_OUT={out}"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert out.read_text().splitlines() == (REPO / "constraints.txt").read_text().splitlines()


def test_constraints_hold_only_transitive_pins() -> None:
    def norm(name: str) -> str:
        return "-".join(part for part in name.lower().replace("_", "-").replace(".", "-").split("-") if part)

    direct = {
        norm(line.split("==")[0].strip())
        for req in ("requirements.txt", "requirements-dev.txt")
        for line in (REPO / req).read_text().splitlines()
        if line[:1].isalnum()
    }
    pinned = [line.split("==")[0] for line in (REPO / "constraints.txt").read_text().splitlines() if "==" in line]
    assert [name for name in pinned if norm(name) in direct] == []
