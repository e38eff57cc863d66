"""No credential is committed: detect-secrets over every tracked file finds nothing.

A line that must hold a credential-shaped test value carries `# pragma: allowlist secret`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def scan(repo: Path) -> dict[str, list[dict]]:
    out = subprocess.run(
        [sys.executable, "-m", "detect_secrets", "scan"], cwd=repo, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["results"]


def test_the_repository_has_no_committed_secret() -> None:
    findings = scan(REPO)
    report = {path: sorted({f["type"] for f in hits}) for path, hits in findings.items()}
    assert report == {}, f"possible secrets committed: {report}"


def test_the_scan_catches_a_committed_credential(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    leaked = "AKIA" + "ZXCVBNMASDFGHJKL"  # assembled so this file itself stays clean
    (tmp_path / "settings.py").write_text(f'aws_access_key_id = "{leaked}"\n')
    subprocess.run(["git", "-C", str(tmp_path), "add", "settings.py"], check=True)
    findings = scan(tmp_path)
    assert "settings.py" in findings
    assert "AWS Access Key" in {f["type"] for f in findings["settings.py"]}
