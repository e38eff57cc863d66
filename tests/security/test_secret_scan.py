"""No credential is committed: detect-secrets over every tracked file finds nothing new.

Known credential-shaped strings that are not secrets (Key Vault secret *names*, Pulumi's RPC
markers, fake test tokens) are listed in `.secrets.baseline`, each audited `is_secret: false`.
A new finding fails the suite; to accept one, audit it (`detect-secrets audit .secrets.baseline`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BASELINE = REPO / ".secrets.baseline"


def tracked_files(repo: Path) -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=repo, capture_output=True, text=True, check=True)
    return [f for f in out.stdout.splitlines() if (repo / f).is_file()]


def hook(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "detect_secrets.pre_commit_hook", *args, *tracked_files(repo)],
        cwd=repo, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_the_repository_has_no_committed_secret() -> None:
    out = hook(REPO, "--baseline", ".secrets.baseline")
    assert out.returncode == 0, f"possible secrets committed:\n{out.stdout}{out.stderr}"


def test_every_baseline_entry_was_audited_as_not_a_secret() -> None:
    results = json.loads(BASELINE.read_text())["results"]
    unaudited = [(f, h["line_number"]) for f, hits in results.items() for h in hits if h.get("is_secret") is not False]
    assert unaudited == []


def test_the_scan_catches_a_committed_credential(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    leaked = "AKIA" + "ZXCVBNMASDFGHJKL"  # assembled so this file itself stays clean
    (tmp_path / "settings.py").write_text(f'aws_access_key_id = "{leaked}"\n')
    subprocess.run(["git", "-C", str(tmp_path), "add", "settings.py"], check=True)
    out = hook(tmp_path)
    assert out.returncode == 1
    assert "AWS Access Key" in out.stdout and "settings.py" in out.stdout
