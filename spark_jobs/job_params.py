"""The parameters every job takes, as ADF passes them to the notebooks: a date window, a run id
and a full-refresh flag. Declared once here, for the notebooks' widgets and the jobs' parsing."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from lakehouse import inputs

# Widget name -> default. ADF's DatabricksNotebook activities pass these as base parameters.
WIDGETS: dict[str, str] = {"start_date": "", "end_date": "", "run_id": "manual", "full_refresh": "false"}


def declare_widgets(dbutils: Any) -> None:
    """Declare the job widgets on a notebook (Databricks shows them; ADF fills them)."""
    for name, default in WIDGETS.items():
        dbutils.widgets.text(name, default)


def widget_values(dbutils: Any) -> dict[str, str]:
    """The widgets' values, as keyword arguments of a job function.

    The run id becomes ``load_id`` in tables and ``ops`` rows: a value ADF would never send
    (it sends a GUID) is refused here, naming the widget, before any job starts."""
    values = {name: dbutils.widgets.get(name) for name in WIDGETS}
    inputs.run_id(values["run_id"], "run_id")
    return values


@dataclass(frozen=True)
class DateWindow:
    """An inclusive date window [start, end], both YYYY-MM-DD within lakehouse.inputs' bounds."""

    start: dt.date
    end: dt.date

    @classmethod
    def parse(cls, start: str | dt.date, end: str | dt.date) -> DateWindow:
        s, e = inputs.date(start, "start_date"), inputs.date(end, "end_date")
        if e < s:
            raise ValueError(f"end_date {e} is before start_date {s}")
        return cls(s, e)

    def predicate(self, column: str) -> str:
        """Spark SQL predicate selecting the window on a date column."""
        return f"`{column}` BETWEEN DATE'{self.start.isoformat()}' AND DATE'{self.end.isoformat()}'"


def parse_flag(value: str | bool) -> bool:
    """The full_refresh widget: 'true' or 'false' (or empty, meaning false)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in {"true", "false", ""}:
        raise ValueError(f"full_refresh must be 'true' or 'false', got {value!r}")
    return text == "true"
