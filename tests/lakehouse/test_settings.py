"""The settings model: zero-configuration local defaults, one clear message per bad setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse.settings import DEFAULT_SYMBOLS, ConfigurationError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("LAKEHOUSE_", "ALPHAVANTAGE_")):
            monkeypatch.delenv(name)


def test_local_defaults_need_no_configuration() -> None:
    settings = load_settings()
    assert settings.environment == "local"
    assert settings.provider == "synthetic"
    assert settings.home == Path(".lakehouse")
    assert settings.spark_remote is None and settings.pg_dsn is None
    assert settings.symbols == DEFAULT_SYMBOLS
    assert settings.exchange_calendar == "XNYS"


def test_environment_variables_use_the_azure_app_setting_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_PROVIDER", "alpha_vantage")
    monkeypatch.setenv("ALPHAVANTAGE_BASE_URL", "http://127.0.0.1:9/query")
    monkeypatch.setenv("ALPHAVANTAGE_API_KEY", "k-123")
    monkeypatch.setenv("LAKEHOUSE_SYMBOLS", "msft, BRK.B,MSFT")
    monkeypatch.setenv("LAKEHOUSE_SPARK_REMOTE", "sc://example:15002")
    settings = load_settings()
    assert settings.provider == "alpha_vantage"
    assert settings.alphavantage_base_url == "http://127.0.0.1:9/query"
    assert settings.alphavantage_api_key.get_secret_value() == "k-123"
    assert settings.spark_remote == "sc://example:15002"
    assert settings.symbols == ("MSFT", "BRK.B")


def test_symbols_are_comma_separated_deduplicated_and_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_SYMBOLS", "MSFT, BRK.B,MSFT")
    assert load_settings().symbols == ("MSFT", "BRK.B")
    monkeypatch.setenv("LAKEHOUSE_SYMBOLS", "MSFT,../etc")
    with pytest.raises(ConfigurationError, match="LAKEHOUSE_SYMBOLS"):
        load_settings()


def test_unknown_provider_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_PROVIDER", "bloomberg")
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert "LAKEHOUSE_PROVIDER" in str(info.value)
    assert "bloomberg" in str(info.value)


def test_unparseable_dsn_names_the_setting_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_PG_DSN", "host=db password=hunter2 = broken")
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert "LAKEHOUSE_PG_DSN" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_spark_remote_must_be_a_spark_connect_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_SPARK_REMOTE", "http://databricks")
    with pytest.raises(ConfigurationError, match="LAKEHOUSE_SPARK_REMOTE"):
        load_settings()


def test_non_writable_home_fails_naming_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("LAKEHOUSE_HOME", str(blocker / "home"))
    settings = load_settings()
    with pytest.raises(ConfigurationError, match="LAKEHOUSE_HOME"):
        settings.ensure_home()


def test_secrets_are_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHAVANTAGE_API_KEY", "SENTINEL-KEY-42")
    monkeypatch.setenv("LAKEHOUSE_PG_DSN", "postgresql://u:SENTINEL-PW-42@db/x")  # pragma: allowlist secret
    settings = load_settings()
    shown = f"{settings!r} {settings!s} {settings.model_dump()}"
    assert "SENTINEL-KEY-42" not in shown
    assert "SENTINEL-PW-42" not in shown


def test_commands_starting_together_on_one_home_do_not_trip_the_writability_check(tmp_path):
    """Two processes checking the same new home at once once failed on a shared probe file."""
    from concurrent.futures import ThreadPoolExecutor

    settings = load_settings(home=tmp_path / "home")
    with ThreadPoolExecutor(4) as pool:
        homes = list(pool.map(lambda _: settings.ensure_home(), range(400)))
    assert set(homes) == {settings.home_dir}
    assert list(settings.home_dir.iterdir()) == []  # no probe left behind
