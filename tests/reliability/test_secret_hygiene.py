"""Secret hygiene: the API key appears nowhere the platform writes, and the repository and the
infrastructure pass their security checks.

The sentinel run: the whole platform (ingest through ADF, raw -> bronze -> silver -> gold -> the
PostgreSQL marts, and one `poll_quotes` firing into Capture Avro) with ALPHAVANTAGE_API_KEY set to a
unique value, against the synthetic market API configured to accept only that key (so the key was
really sent) and to fail some requests (503s, a reset connection, a timeout, a truncated body and a
ticker that always errors), so the error paths log too. Then every place a key could end up is
searched for the key, its URL-encoded, hex and base64 forms: every file under LAKEHOUSE_HOME and
under the services' home (RAW, manifests, Capture Avro, Delta tables and their _delta_log, Parquet
decoded, PostgreSQL's data files and server log, the Sail log), every row of every table of every
database of the serving PostgreSQL (ops.*, mart.*), every log record at DEBUG and the captured
stdout/stderr. The searcher itself is shown to find a planted key in each form and container.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
import logging
import os
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.databases import fresh_database

REPO = Path(__file__).resolve().parents[2]
SYMBOLS = ("AAPL", "MSFT", "XOM")
WINDOW = ("2024-03-04", "2024-03-15")


def sentinel_key() -> str:
    """Unique per run; '+', '/' and '=' make its URL-encoded form differ from the plain one."""
    return f"SNTL{uuid.uuid4().hex}+/="


def key_forms(key: str) -> dict[str, bytes]:
    """Byte strings whose presence anywhere means the key leaked, by the form it took."""
    raw = key.encode()
    core = key.rstrip("+/=")  # the alphanumeric part: also catches a truncated or re-encoded key
    forms = {
        "plain": raw,
        "core": core.encode(),
        "core upper-case": core.upper().encode(),
        "url-encoded": quote(key, safe="").encode(),
        "form-encoded": quote_plus(key).encode(),
        "hex": raw.hex().encode(),
    }
    for pad in range(3):  # base64 of the key at each alignment inside a longer value
        for name, encode in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
            encoded = encode(b"\0" * pad + core.encode())
            forms[f"{name}+{pad}"] = encoded[4 if pad else 0 : -4]
    return forms


@dataclass
class Search:
    """Where the key was looked for and where it was found."""

    forms: dict[str, bytes]
    files: int = 0
    bytes: int = 0
    decoded_files: int = 0
    databases: int = 0
    tables: int = 0
    rows: int = 0
    row_bytes: int = 0
    log_records: int = 0
    output_bytes: int = 0
    hits: list[str] = field(default_factory=list)
    rows_by_table: dict[str, int] = field(default_factory=dict)
    redacted_records: int = 0

    def scan(self, where: str, data: bytes) -> None:
        for name, form in self.forms.items():
            if form in data:
                self.hits.append(f"{where} ({name})")

    def scan_files(self, root: Path) -> None:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            try:
                data = path.read_bytes()
            except OSError:  # a socket or a file removed while walking
                continue
            self.files += 1
            self.bytes += len(data)
            self.scan(str(path), data)
            decoded = _decoded(path, data)
            if decoded is not None:
                self.decoded_files += 1
                self.scan(f"{path} (decoded)", decoded)

    def scan_server(self, dsn: str) -> None:
        """Every row of every user table of every database on the server of `dsn`."""
        params = conninfo_to_dict(dsn)
        with psycopg.connect(make_conninfo(**{**params, "dbname": "postgres"})) as conn:
            names = [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1")]
        for name in names:
            with psycopg.connect(make_conninfo(**{**params, "dbname": name})) as conn:
                self.databases += 1
                tables = conn.execute(
                    "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
                    "AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
                ).fetchall()
                for schema, table in tables:
                    self.tables += 1
                    target = sql.Identifier(schema, table)
                    query = sql.SQL("SELECT t::text FROM {} AS t").format(target)
                    for (text,) in conn.execute(query):
                        self.rows += 1
                        self.rows_by_table[f"{schema}.{table}"] = self.rows_by_table.get(f"{schema}.{table}", 0) + 1
                        data = text.encode()
                        self.row_bytes += len(data)
                        self.scan(f"{name}:{schema}.{table}", data)

    def scan_logs(self, records: Iterable[logging.LogRecord]) -> None:
        for record in records:
            self.log_records += 1
            text = f"{record.name} {record.getMessage()} {record.exc_text or ''} {record.__dict__}"
            self.redacted_records += "apikey=***" in text
            self.scan(f"log record {record.name}", text.encode())

    def scan_output(self, name: str, text: str) -> None:
        self.output_bytes += len(text.encode())
        self.scan(name, text.encode())


def _decoded(path: Path, data: bytes) -> bytes | None:
    """The content of a compressed or binary-encoded file as text, for formats a byte search misses."""
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return repr(pq.read_table(path).to_pylist()).encode()
        if path.suffix == ".avro":
            import fastavro

            with open(path, "rb") as fh:
                return repr(list(fastavro.reader(fh))).encode()
        if data[:2] == b"\x1f\x8b":
            return gzip.decompress(data)
    except Exception:  # a half-written temporary or a file of a live server: its bytes were searched
        return None
    return None


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        self.records.append(record)


def test_the_search_finds_a_planted_key_in_every_form_and_container(case, tmp_path: Path):
    """The leak search can fail: a key planted plainly, URL-encoded, in base64 inside a longer value,
    in a snappy-compressed Parquet column and in an Avro record is found each time."""
    import fastavro
    import pyarrow as pa
    import pyarrow.parquet as pq

    c = case("security", "sentinel search finds a planted key", expected="every planted copy found")
    key = sentinel_key()
    (tmp_path / "plain.log").write_text(f"GET /query?apikey={quote_plus(key)}&symbol=AAPL\n")
    (tmp_path / "b64.json").write_text(json.dumps({"auth": base64.b64encode(f"user:{key}".encode()).decode()}))
    pq.write_table(pa.table({"note": ["x", f"k={key}"]}), tmp_path / "part-0.parquet", compression="snappy")
    with open(tmp_path / "capture.avro", "wb") as fh:
        schema = {"type": "record", "name": "E", "fields": [{"name": "Body", "type": "bytes"}]}
        fastavro.writer(fh, schema, [{"Body": key.encode()}], codec="deflate")
    (tmp_path / "clean.txt").write_text("nothing to see")
    search = Search(key_forms(key))
    search.scan_files(tmp_path)
    found = {Path(h.split(" ")[0]).name for h in search.hits}
    c.observe(f"found in {sorted(found)}", files=search.files, hits=len(search.hits))
    assert found == {"plain.log", "b64.json", "part-0.parquet", "capture.avro"}


@pytest.fixture
def sentinel_env(tmp_path: Path, endpoints) -> Iterator[dict]:
    """A fresh home and serving database, the key in the environment, the faulty market API."""
    from local import market_api
    from local.market_api import Fault, MarketApiConfig

    key = sentinel_key()
    faults = (
        Fault("http_503", symbols={"MSFT"}, functions={"TIME_SERIES_DAILY_ADJUSTED"}, times=2),
        Fault("reset", symbols={"MSFT"}, functions={"OVERVIEW"}, times=1),
        Fault("timeout", symbols={"AAPL"}, functions={"OVERVIEW"}, times=1, delay=2.5),
        Fault("truncated", symbols={"AAPL"}, functions={"GLOBAL_QUOTE"}, times=1),
        Fault("error_message", symbols={"XOM"}),
    )
    saved = dict(os.environ)
    with (
        fresh_database(endpoints.pg_dsn, prefix="sentinel") as dsn,
        market_api.running(MarketApiConfig(api_key=key, faults=faults)) as server,
    ):
        os.environ.update({
            "LAKEHOUSE_HOME": str(tmp_path / "home"),
            "LAKEHOUSE_SPARK_REMOTE": endpoints.spark_remote,
            "LAKEHOUSE_PG_DSN": dsn,
            "LAKEHOUSE_SYMBOLS": ",".join(SYMBOLS),
            "ALPHAVANTAGE_API_KEY": key,
            "ALPHAVANTAGE_BASE_URL": server.url,
            "LAKEHOUSE_POLL_QUOTES_MARKET_HOURS_ONLY": "false",
            "LAKEHOUSE_INGEST_TIMEOUT_SECONDS": "1.5",
            "LAKEHOUSE_INGEST_BACKOFF_INITIAL_SECONDS": "0.05",
            "LAKEHOUSE_INGEST_BACKOFF_JITTER_SECONDS": "0",
        })  # fmt: skip
        try:
            yield {"key": key, "dsn": dsn, "home": tmp_path / "home", "server": server}
        finally:
            os.environ.clear()
            os.environ.update(saved)


@pytest.mark.reliability
def test_a_sentinel_api_key_appears_nowhere_after_a_run_with_failures(
    case, sentinel_env: dict, session_home: Path, capfd: pytest.CaptureFixture
):
    from typer.testing import CliRunner

    from lakehouse import telemetry
    from lakehouse.settings import load_settings
    from local.adf.runner import run_pipeline
    from local.cli import app
    from local.function_host import run_timer
    from local.runtime import local_platform

    files_case = case(
        "security",
        "sentinel API key: files after a run with failures",
        expected="0 hits in RAW, manifests, Capture Avro, Delta tables and logs, services' files",
    )
    rows_case = case(
        "security",
        "sentinel API key: ops and mart tables",
        expected="0 hits in any row of any table of any database on the serving PostgreSQL",
    )
    logs_case = case(
        "security",
        "sentinel API key: log records and console output",
        expected="0 hits in DEBUG log records (urllib3 URLs included), stdout/stderr and CLI output",
    )
    key, server = sentinel_env["key"], sentinel_env["server"]
    collect = Collect()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(collect)
    root.setLevel(logging.DEBUG)
    try:
        with local_platform(load_settings()) as platform:
            ctx = platform.run_context()
            run_timer("poll_quotes")
            run = run_pipeline("pl_backfill", {"startDate": WINDOW[0], "endDate": WINDOW[1],
                                               "symbols": ",".join(SYMBOLS)}, ctx)  # fmt: skip
        telemetry.flush()
    finally:
        root.removeHandler(collect)
        root.setLevel(old_level)
    # What a user prints about the run: its records as the CLI shows them.
    commands = (["runs", "--json"], ["runs", run.run_id, "--json"], ["status", "--json"])
    cli = {" ".join(args): CliRunner().invoke(app, args) for args in commands}
    out, err = capfd.readouterr()

    # The run really used the key and really went through failures.
    faults = sorted({r.fault for r in server.requests if r.fault})
    assert run.status == "Succeeded", run.error
    assert all(r.key_present for r in server.requests)
    assert {"http_503", "reset", "timeout", "truncated", "error_message"} <= set(faults), faults
    landed = list((sentinel_env["home"] / "lake" / "raw").rglob("AAPL/*.json"))
    assert landed, "nothing landed: the key was not accepted"
    with psycopg.connect(sentinel_env["dsn"]) as conn:
        mart_rows = conn.execute("SELECT count(*) FROM mart.daily_prices").fetchone()[0]
    assert mart_rows > 0

    forms = key_forms(key)
    files = Search(forms)
    files.scan_files(sentinel_env["home"])
    files.scan_files(session_home)
    files_case.observe(
        f"{len(files.hits)} hits; run {run.status}, {len(server.requests)} API requests, faults {faults}",
        files=files.files, bytes_searched=files.bytes, decoded_files=files.decoded_files, hits=len(files.hits),
    )  # fmt: skip
    rows = Search(forms)
    rows.scan_server(sentinel_env["dsn"])
    ops = {t: n for t, n in rows.rows_by_table.items() if t.startswith("ops.")}
    rows_case.observe(
        f"{len(rows.hits)} hits; rows per ops table {ops}; mart.daily_prices {mart_rows}",
        databases=rows.databases, tables=rows.tables, rows=rows.rows, bytes_searched=rows.row_bytes,
        hits=len(rows.hits),
    )  # fmt: skip
    logs = Search(forms)
    logs.scan_logs(collect.records)
    logs.scan_output("stdout", out)
    logs.scan_output("stderr", err)
    for command, result in cli.items():
        assert result.exit_code == 0, (command, result.output[-2000:])
        logs.scan_output(f"lakehouse {command}", result.output)
    logs_case.observe(
        f"{len(logs.hits)} hits; {logs.redacted_records} urllib3 request lines carried apikey=*** (redacted); "
        f"searched: log records, stdout/stderr, `lakehouse {'`, `lakehouse '.join(cli)}`",
        log_records=logs.log_records, output_bytes=logs.output_bytes, hits=len(logs.hits),
    )  # fmt: skip
    assert files.hits == []
    assert rows.hits == []
    assert logs.hits == []
    # The search covered what the run wrote: every ops table has rows, and the request lines that
    # would carry the key were logged (redacted).
    assert {t for t, n in ops.items() if n > 0} >= {
        "ops.pipeline_runs", "ops.activity_runs", "ops.telemetry_events", "ops.load_audit", "ops.dq_results",
    }, ops  # fmt: skip
    assert logs.redacted_records >= len(server.requests) - 2  # all but the reset and timed-out requests


def _junit_counts(report: Path) -> dict[str, int]:
    suite = ET.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return counts


@pytest.mark.reliability
@pytest.mark.parametrize(
    ("title", "module", "expected"),
    [
        ("infrastructure security baseline (dev and prod stacks)", "tests/infra/test_security_baseline.py",
         "every resource meets its rule: TLS 1.2, no shared keys or public access, RBAC Key Vault, "
         "managed identities, Key Vault references for secret settings"),
        ("repository secret scan (detect-secrets vs the audited baseline)", "tests/security/test_secret_scan.py",
         "no committed credential; every baseline entry audited; the scan catches a planted key"),
    ],
    ids=["infra-baseline", "secret-scan"],
)  # fmt: skip
def test_the_security_checks_of_the_other_suites_pass(case, tmp_path: Path, title: str, module: str, expected: str):
    """Run as they are in `make test` (a separate pytest, so nothing is copied), counted here for the report."""
    c = case("security", title, expected=expected)
    report = tmp_path / "junit.xml"
    started = dt.datetime.now()
    out = subprocess.run(
        [sys.executable, "-m", "pytest", module, "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
         f"--basetemp={tmp_path / 'pt'}"],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    counts = _junit_counts(report)
    c.observe(f"{counts['passed']} of {counts['tests']} checks passed in "
              f"{(dt.datetime.now() - started).total_seconds():.0f} s", **counts)  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:]
    assert counts["tests"] > 0 and counts["passed"] == counts["tests"]
