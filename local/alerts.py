"""`lakehouse alerts`: the alert rules Azure Monitor runs, evaluated against the local ops store.

The rules are :data:`lakehouse.alert_rules.ALERT_RULES`, the same objects the infrastructure
deploys. Each local check is SQL run with ``now`` and ``window``; every row it returns is one piece
of evidence, and the rule fires when there are more rows than ``fires_above``. Rules that watch an
Azure platform metric have no local check and are reported as not evaluated, with the rule's reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row

from lakehouse import trading_calendar
from lakehouse.alert_rules import ALERT_RULES, AlertRule
from local.ops_status import utc_now

# Rules that apply only on days that follow an XNYS session (ALERT_RULES' local_note says so);
# the Azure query approximates the same calendar with weekdays.
AFTER_SESSION_ONLY = frozenset({"daily-load-stale"})
MAX_EVIDENCE = 20


def evaluate_alerts(
    dsn: str, now: dt.datetime | None = None, rules: Sequence[AlertRule] = ALERT_RULES
) -> list[dict[str, Any]]:
    """Evaluate every rule at ``now``; one JSON-able dict per rule, in rule order.

    Each dict has ``name``, ``severity``, ``description``, ``state`` (``firing``, ``ok``,
    ``skipped`` or ``error``), ``fires`` (bool), ``reason`` (why, in one sentence) and
    ``evidence`` (the rows of the local check, at most :data:`MAX_EVIDENCE`).

    Args:
        dsn: the ops store (serving PostgreSQL) DSN.
        now: evaluation time, default the clock; naive values are UTC.
        rules: the rules to evaluate (default all).
    """
    now = utc_now(now)
    results = []
    with psycopg.connect(dsn, row_factory=dict_row, autocommit=True, connect_timeout=10) as conn:
        for rule in rules:
            results.append(_evaluate(conn, rule, now))
    return results


def firing(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The results whose rule fires."""
    return [r for r in results if r["fires"]]


def exit_code(results: Sequence[dict[str, Any]]) -> int:
    """What `lakehouse alerts` exits with: 1 when a rule fires or could not be evaluated, else 0."""
    return 1 if any(r["fires"] or r["state"] == "error" for r in results) else 0


def parse_now(value: str | None) -> dt.datetime | None:
    """The ``--now`` option: ISO-8601 date or timestamp, UTC unless it names an offset.

    Raises:
        ValueError: naming the option and the accepted forms.
    """
    if value is None or not value.strip():
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"--now: {value!r} is not an ISO-8601 time (e.g. 2024-03-05T23:00 or 2024-03-05T23:00:00+00:00)"
        ) from None
    return utc_now(parsed)


def _base(rule: AlertRule, now: dt.datetime) -> dict[str, Any]:
    return {
        "name": rule.name,
        "severity": rule.severity,
        "description": rule.description,
        "evaluated_at": now.isoformat(),
        "window_seconds": None if rule.local is None else rule.local.window.total_seconds(),
        "fires": False,
        "evidence": [],
    }


def _evaluate(conn: psycopg.Connection, rule: AlertRule, now: dt.datetime) -> dict[str, Any]:
    result = _base(rule, now)
    if rule.local is None:
        return result | {"state": "skipped", "reason": f"not evaluated locally: {rule.local_note}"}
    if rule.name in AFTER_SESSION_ONLY:
        previous_day = now.date() - dt.timedelta(days=1)
        if not trading_calendar.is_session(previous_day):
            return result | {
                "state": "skipped",
                "reason": f"not evaluated: {previous_day.isoformat()} was no XNYS session, so no run was due",
            }
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SET TRANSACTION READ ONLY")
            cur.execute(rule.local.sql, _parameters(rule, now))
            rows = cur.fetchall()
    except psycopg.errors.UndefinedTable as exc:
        return result | {"state": "error", "reason": f"cannot evaluate: {exc.diag.message_primary} (run migrations)"}
    except psycopg.Error as exc:
        return result | {"state": "error", "reason": f"cannot evaluate: {type(exc).__name__}: {exc}".strip()}
    evidence = sorted((_jsonable(r) for r in rows), key=_recency, reverse=True)
    fires = len(rows) > rule.local.fires_above
    return result | {
        "state": "firing" if fires else "ok",
        "fires": fires,
        "reason": _reason(rule, evidence, fires),
        "evidence": evidence[:MAX_EVIDENCE],
        "evidence_count": len(evidence),
    }


def _parameters(rule: AlertRule, now: dt.datetime) -> dict[str, Any]:
    """The named parameters of a local check (the contract in :mod:`lakehouse.alert_rules`)."""
    window = rule.local.window
    return {"now": now, "window": window, "due_session": trading_calendar.latest_session(at=now - window)}


def _reason(rule: AlertRule, evidence: list[dict[str, Any]], fires: bool) -> str:
    window = _hours(rule.local.window) if rule.local else ""
    if rule.name == "mart-data-stale":
        if not fires:
            return f"the mart holds every XNYS session that closed more than {window} ago"
        row = evidence[0]
        return (
            f"the mart's latest trade date is {row.get('latest_trade_date') or 'none'}, "
            f"behind the XNYS session {row.get('due_session')} that closed more than {window} ago"
        )
    if rule.name == "daily-load-stale":
        if not fires:
            return f"a successful run ended within the last {window}"
        last = evidence[0].get("last_success")
        return f"no successful run within {window}; last success: {last or 'never'}"
    if not fires:
        return f"nothing in the last {window}"
    # Group the evidence by what failed (pipeline, activity, or table.rule), newest run named.
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in evidence:
        groups.setdefault(_subject(row), []).append(row)
    parts = []
    for subject, rows in list(groups.items())[:5]:
        runs = f"{len(rows)} runs, latest {rows[0].get('run_id')}" if len(rows) > 1 else f"run {rows[0].get('run_id')}"
        detail = f" failed {sum(int(r.get('failed_count') or 0) for r in rows)} rows" if "rule" in rows[0] else ""
        parts.append(f"{subject}{detail} ({runs})")
    more = f" and {len(groups) - 5} more" if len(groups) > 5 else ""
    return f"{len(evidence)} failed in the last {window}: " + "; ".join(parts) + more


def _subject(row: dict[str, Any]) -> str:
    """What one evidence row is about: a pipeline, pipeline/activity, or table.rule."""
    if "rule" in row:
        return f"{row.get('table_name')}.{row['rule']}"
    if row.get("activity"):
        return f"{row.get('pipeline')}/{row['activity']}"
    return str(row.get("pipeline") or "?")


def _recency(row: dict[str, Any]) -> str:
    return str(row.get("ended_at") or row.get("evaluated_at") or row.get("last_success") or "")


def _hours(delta: dt.timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:g}h"


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        if isinstance(value, dt.datetime | dt.date):
            value = value.isoformat()
        elif isinstance(value, dt.timedelta):
            value = str(value)
        out[key] = value
    return out


def format_text(results: Sequence[dict[str, Any]]) -> str:
    """One line per rule: state, name and reason; firing rules first."""
    order = {"firing": 0, "error": 1, "ok": 2, "skipped": 3}
    lines = []
    for r in sorted(results, key=lambda r: order.get(r["state"], 9)):
        lines.append(f"{r['state'].upper():<8} sev{r['severity']} {r['name']:<24} {r['reason']}")
    fired = firing(results)
    lines.append("")
    lines.append(f"{len(fired)} alert(s) firing" + (": " + ", ".join(r["name"] for r in fired) if fired else ""))
    return "\n".join(lines)
