"""The part of Databricks ``dbutils`` the notebooks use: widgets, notebook.exit, secrets.

Semantics follow Databricks: parameters passed by the job (ADF ``baseParameters``) override a
widget's default; ``widgets.get`` of a name that was neither defined nor passed fails;
``notebook.exit`` ends the notebook at once with a string value. Secrets come from the
environment: ``secrets.get("lakehouse", "pg-dsn")`` reads ``LAKEHOUSE_PG_DSN`` (scope and key
upper-cased, joined by ``_``, ``-`` and ``.`` become ``_``), the same names as the app
settings the one settings model reads.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence


class InputWidgetNotDefined(KeyError):
    """``dbutils.widgets.get`` of a widget that was neither created nor passed as a parameter."""

    def __str__(self) -> str:
        return str(self.args[0])


class SecretNotFound(KeyError):
    """A secret whose environment variable is not set; the message names the variable."""

    def __str__(self) -> str:
        return str(self.args[0])


class NotebookExit(BaseException):
    """Raised by ``dbutils.notebook.exit``; a BaseException so ``except Exception`` in a
    notebook cannot swallow it (Databricks stops the notebook there, too)."""

    def __init__(self, value: str) -> None:
        super().__init__(value)
        self.value = value


class Widgets:
    """``dbutils.widgets``: text, dropdown (its choices checked), combobox, multiselect, get, remove."""

    def __init__(self, parameters: Mapping[str, str] | None = None) -> None:
        self._parameters = {k: str(v) for k, v in (parameters or {}).items()}
        self._defaults: dict[str, str] = {}
        self._choices: dict[str, tuple[str, ...]] = {}

    def text(self, name: str, defaultValue: str = "", label: str | None = None) -> None:
        self._defaults[name] = str(defaultValue)

    def dropdown(self, name: str, defaultValue: str, choices: Sequence[str], label: str | None = None) -> None:
        choices = tuple(str(c) for c in choices)
        if str(defaultValue) not in choices:
            raise ValueError(f"widget {name!r}: default {defaultValue!r} is not one of {list(choices)}")
        self._defaults[name] = str(defaultValue)
        self._choices[name] = choices

    combobox = text

    def multiselect(self, name: str, defaultValue: str, choices: Sequence[str], label: str | None = None) -> None:
        self._defaults[name] = str(defaultValue)

    def get(self, name: str) -> str:
        if name in self._parameters:
            value = self._parameters[name]
        elif name in self._defaults:
            value = self._defaults[name]
        else:
            raise InputWidgetNotDefined(f"No input widget named {name} is defined")
        choices = self._choices.get(name)
        if choices and value not in choices:
            raise ValueError(f"widget {name!r}: value {value!r} is not one of {list(choices)}")
        return value

    def getArgument(self, name: str, defaultValue: str | None = None) -> str | None:
        try:
            return self.get(name)
        except InputWidgetNotDefined:
            return defaultValue

    def remove(self, name: str) -> None:
        self._defaults.pop(name, None)
        self._choices.pop(name, None)

    def removeAll(self) -> None:
        self._defaults.clear()
        self._choices.clear()


class Notebook:
    """``dbutils.notebook``: only ``exit``; ``run`` of another notebook is not offered locally."""

    def exit(self, value: object) -> None:
        raise NotebookExit("" if value is None else str(value))

    def run(self, path: str, timeout_seconds: int = 0, arguments: Mapping[str, str] | None = None) -> str:
        raise NotImplementedError("dbutils.notebook.run is not supported locally; call the package instead")


def secret_env_name(scope: str, key: str) -> str:
    return re.sub(r"[^A-Z0-9_]", "_", f"{scope}_{key}".upper())


class Secrets:
    """``dbutils.secrets`` backed by environment variables."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def get(self, scope: str, key: str) -> str:
        name = secret_env_name(scope, key)
        value = self._environ.get(name)
        if value is None:
            raise SecretNotFound(f"secret {key!r} of scope {scope!r} not found: set the environment variable {name}")
        return value

    def getBytes(self, scope: str, key: str) -> bytes:
        return self.get(scope, key).encode()


class DBUtils:
    """What a notebook sees as ``dbutils``."""

    def __init__(self, parameters: Mapping[str, str] | None = None, environ: Mapping[str, str] | None = None):
        self.widgets = Widgets(parameters)
        self.notebook = Notebook()
        self.secrets = Secrets(environ)
