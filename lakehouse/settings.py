"""The one settings model of the platform.

Every runtime (the Function app, the notebooks, the local CLI) reads its configuration
through :class:`Settings`, ingestion tunables and serving-database authentication included.
Variable names are the same as the app-setting names in Azure, so a value means the same thing
wherever it is set. Local defaults need no configuration.
"""

from __future__ import annotations

import re
import tempfile
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from lakehouse import inputs
from lakehouse.contracts.provider_plans import PlanName

Environment = Literal["local", "dev", "prod"]
Provider = Literal["synthetic", "alpha_vantage"]
PgAuth = Literal["dsn", "entra"]
ENVIRONMENTS: tuple[str, ...] = get_args(Environment)
PROVIDERS: tuple[str, ...] = get_args(Provider)

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
    raw_volume: str | None = Field(
        None,
        description=(
            "Unity Catalog volume of the raw container (/Volumes/<catalog>/<schema>/<volume>), through "
            "which Spark jobs on a cluster read RAW. Unset locally and in the Function app."
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
    alphavantage_plan: PlanName = Field(
        "premium",
        validation_alias=AliasChoices("ALPHAVANTAGE_PLAN", "alphavantage_plan"),
        description="Alpha Vantage plan of the key (free, premium, premium_realtime): the functions, output "
        "sizes, quote entitlement and call budget requests and schedules are checked against.",
    )
    symbols: Annotated[tuple[str, ...], NoDecode] = Field(
        DEFAULT_SYMBOLS, description="Symbol universe, comma-separated."
    )
    exchange_calendar: str = Field("XNYS", description="Exchange calendar of trading sessions.")
    applicationinsights_connection_string: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("APPLICATIONINSIGHTS_CONNECTION_STRING", "applicationinsights_connection_string"),
        description="Application Insights target of the telemetry; unset locally (the ops store is used).",
    )

    # --- serving database authentication (spark_jobs.pg) -----------------------------------
    pg_auth: PgAuth = Field("dsn", description="dsn: use the DSN as given; entra: Entra ID token.")
    pg_service_credential: str | None = Field(
        None,
        description=(
            "Unity Catalog service credential whose identity signs in to PostgreSQL when pg_auth is "
            "entra (on a Databricks cluster; job clusters have no managed identity of their own)."
        ),
    )
    pg_password_secret_uri: str | None = Field(
        None,
        description="Key Vault secret URI of a fallback password, used only when no Entra token is had.",
    )
    pg_connect_attempts: int = Field(5, ge=1, le=20, description="Attempts on transient errors.")

    # --- ingestion (the Function app) --------------------------------------------------------
    ingest_concurrency: int = Field(4, ge=1, le=64, description="Symbols fetched in parallel.")
    ingest_calls_per_minute: int | None = Field(
        None,
        ge=1,
        description="Client-side quota per minute; default 75 for alpha_vantage, none for synthetic.",
    )
    ingest_calls_per_day: int | None = Field(
        None, ge=1, description="Client-side quota per day (per process); default none."
    )
    ingest_timeout_seconds: float = Field(20.0, gt=0, description="Connect and read timeout of one request.")
    ingest_retry_attempts: int = Field(5, ge=1, le=20, description="Attempts per request, first included.")
    ingest_backoff_initial_seconds: float = Field(1.0, ge=0, description="First backoff wait.")
    ingest_backoff_max_seconds: float = Field(30.0, ge=0, description="Longest single backoff wait.")
    ingest_backoff_jitter_seconds: float = Field(1.0, ge=0, description="Random jitter added to each wait.")
    ingest_deadline_seconds: float = Field(
        170.0,
        gt=0,
        description="No request starts after this many seconds of one call "
        "(ADF waits 230 s; a request in flight may add one timeout).",
    )
    ingest_adjusted: bool = Field(
        True, description="TIME_SERIES_DAILY_ADJUSTED (splits, dividends) instead of TIME_SERIES_DAILY."
    )
    poll_quotes_market_hours_only: bool = Field(True, description="poll_quotes does nothing while XNYS is closed.")
    eventhub_namespace: str = Field(
        "local",
        description="'local' writes Capture files into RAW; otherwise the fully qualified namespace "
        "(<name>.servicebus.windows.net) of Event Hubs.",
    )
    eventhub_name: str = Field("market-quotes", description="Event hub of the quotes.")
    eventhub_partitions: int = Field(4, ge=1, le=32, description="Partitions of the local Capture writer.")
    ingest_daily_enabled: bool = Field(
        False,
        description="ingest_daily lands the latest session itself. Off by default: Data Factory's tr_daily "
        "owns the daily load (it ingests through the ingest function, then transforms); turn it on only "
        "where ingestion runs without Data Factory, never both (double quota, double RAW).",
    )
    # Timer schedules are NCRONTAB (sec min hour day month weekday) in UTC, read by timer_schedule().
    ingest_daily_schedule: str = Field(
        "0 30 22 * * 1-5",
        description="ingest_daily: 22:30 UTC is after the 16:00 New York close in both EST and EDT.",
    )
    poll_quotes_schedule: str = Field(
        "0 * 13-20 * * 1-5",
        description="poll_quotes: every minute 13:00-20:59 UTC on weekdays is the widest UTC range of XNYS "
        "regular sessions (09:30-16:00 New York in EDT and EST); poll_quotes itself asks the exchange "
        "calendar and polls only while a session is open (early closes included).",
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
        return inputs.symbols(value)

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
            raise ConfigurationError(f"LAKEHOUSE_HOME={home} is not writable ({exc.strerror or exc})") from None
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


def timer_schedule(field: str) -> str:
    """The schedule of a timer trigger (``ingest_daily_schedule``...), read on its own.

    The Function app reads schedules when it indexes its functions (import time), as the host
    does for ``%APP_SETTING%`` expressions. Reading only this field, with its declaration in
    :class:`Settings`, keeps an unrelated bad setting from un-indexing every function: those are
    reported by the function that reads them, naming the setting.
    """
    if not field.endswith("_schedule"):
        raise KeyError(f"{field} is not a timer schedule")
    info = Settings.model_fields[field]
    namespace = {"model_config": Settings.model_config, "__annotations__": {field: info.annotation}, field: info}
    return getattr(type("TimerSchedule", (BaseSettings,), namespace)(), field)


def _is_secret_field(loc: tuple[object, ...]) -> bool:
    return bool(loc) and loc[0] in {"pg_dsn", "alphavantage_api_key", "applicationinsights_connection_string"}
