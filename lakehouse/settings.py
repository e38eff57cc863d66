"""The one settings model of the platform.

Every runtime (the Function app, the notebooks, the local CLI) reads its configuration
through :class:`Settings`. Variable names are the same as the app-setting names in Azure,
so a value means the same thing wherever it is set. Local defaults need no configuration.
"""

from __future__ import annotations

import re
import tempfile
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Environment = Literal["local", "dev", "prod"]
Provider = Literal["synthetic", "alpha_vantage"]
ENVIRONMENTS: tuple[str, ...] = get_args(Environment)
PROVIDERS: tuple[str, ...] = get_args(Provider)

# Tickers as the market APIs spell them (BRK.B, RDS-A). The pattern is strict because a symbol
# ends up in URLs and lake paths.
SYMBOL_PATTERN = re.compile(r"^[A-Z][A-Z0-9]{0,9}([.-][A-Z0-9]{1,4})?\Z")  # \Z: "$" would let "AAPL\n" through

DEFAULT_SYMBOLS: tuple[str, ...] = (
    "AAPL", "MSFT", "AMZN", "GOOGL", "META", "NVDA", "JPM", "JNJ", "V", "PG",
    "XOM", "UNH", "HD", "KO", "PEP", "DIS", "INTC", "CSCO", "WMT", "BA",
)  # fmt: skip


class ConfigurationError(ValueError):
    """Configuration that cannot work; the message names the setting."""


class Settings(BaseSettings):
    """Platform configuration, read from the environment.

    Secrets are ``SecretStr``: their repr and str are masked, so printing a Settings object
    or logging it never reveals a key or a password.
    """

    model_config = SettingsConfigDict(
        env_prefix="LAKEHOUSE_", case_sensitive=False, extra="ignore", populate_by_name=True
    )

    environment: Environment = Field("local", description="Deployment environment name.")
    home: Path = Field(
        Path(".lakehouse"),
        description="Local state: lake directory, embedded PostgreSQL data, service registry.",
    )
    lake_root: str | None = Field(
        None,
        description=(
            "Root URI of the lake. In Azure 'abfss://{container}@<account>.dfs.core.windows.net'; "
            "default: the directory $LAKEHOUSE_HOME/lake."
        ),
    )
    spark_remote: str | None = Field(
        None, description="Spark Connect URL (sc://...). Default: an embedded Sail server."
    )
    pg_dsn: SecretStr | None = Field(
        None, description="PostgreSQL DSN of the serving database. Default: embedded PostgreSQL."
    )
    provider: Provider = Field("synthetic", description="Market-data provider.")
    alphavantage_base_url: str = Field(
        "https://www.alphavantage.co/query",
        validation_alias=AliasChoices("ALPHAVANTAGE_BASE_URL", "alphavantage_base_url"),
        description="Alpha Vantage endpoint (the synthetic server sets its own locally).",
    )
    alphavantage_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("ALPHAVANTAGE_API_KEY", "alphavantage_api_key"),
        description="Alpha Vantage API key (a Key Vault reference in Azure).",
    )
    symbols: Annotated[tuple[str, ...], NoDecode] = Field(
        DEFAULT_SYMBOLS, description="Symbol universe, comma-separated."
    )
    exchange_calendar: str = Field("XNYS", description="Exchange calendar of trading sessions.")
    applicationinsights_connection_string: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices(
            "APPLICATIONINSIGHTS_CONNECTION_STRING", "applicationinsights_connection_string"
        ),
        description="Application Insights target of the telemetry; unset locally (the ops store is used).",
    )

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_symbols(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip().upper() for part in value.split(",") if part.strip()]
        return value

    @field_validator("symbols")
    @classmethod
    def _check_symbols(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [s for s in value if not SYMBOL_PATTERN.match(s)]
        if bad:
            raise ValueError(f"invalid symbols {bad}: expected e.g. AAPL or BRK.B")
        if not value:
            raise ValueError("the symbol universe is empty")
        return tuple(dict.fromkeys(value))

    @field_validator("pg_dsn")
    @classmethod
    def _check_dsn(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        from psycopg.conninfo import conninfo_to_dict

        try:
            conninfo_to_dict(value.get_secret_value())
        except Exception as exc:  # psycopg raises ProgrammingError with the libpq reason
            raise ValueError(f"unparseable PostgreSQL DSN ({exc})".replace("\n", " ")) from None
        return value

    @field_validator("spark_remote")
    @classmethod
    def _check_remote(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith("sc://"):
            raise ValueError("a Spark Connect URL starts with sc://")
        return value

    @field_validator("exchange_calendar")
    @classmethod
    def _check_calendar(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Z0-9_]{2,12}", value):
            raise ValueError(f"not an exchange calendar code: {value!r}")
        return value

    @cached_property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def is_local(self) -> bool:
        return self.environment == "local"

    def ensure_home(self) -> Path:
        """Create $LAKEHOUSE_HOME and prove it is writable, or fail naming the setting."""
        home = self.home_dir
        try:
            home.mkdir(parents=True, exist_ok=True)
            # A probe of this process's own: two commands starting on one home must not race on it.
            with tempfile.NamedTemporaryFile(dir=home, prefix=".write-probe-"):
                pass
        except OSError as exc:
            raise ConfigurationError(
                f"LAKEHOUSE_HOME={home} is not writable ({exc.strerror or exc})"
            ) from None
        return home


def _setting_name(loc: tuple[object, ...]) -> str:
    field = str(loc[0]) if loc else "?"
    info = Settings.model_fields.get(field)
    if info is not None and isinstance(info.validation_alias, AliasChoices):
        return str(info.validation_alias.choices[0])
    return f"LAKEHOUSE_{field.upper()}"


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; raise ConfigurationError naming the bad setting."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            given = err.get("input")
            shown = "" if _is_secret_field(err["loc"]) else f" (got {given!r})"
            problems.append(f"{_setting_name(err['loc'])}: {err['msg']}{shown}")
        raise ConfigurationError("invalid configuration: " + "; ".join(problems)) from None


def _is_secret_field(loc: tuple[object, ...]) -> bool:
    return bool(loc) and loc[0] in {"pg_dsn", "alphavantage_api_key", "applicationinsights_connection_string"}
