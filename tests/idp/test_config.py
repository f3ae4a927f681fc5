"""Settings are read once from IDP_* variables and validated at start-up."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from idp.config import ConfigError, Settings

KEK = base64.urlsafe_b64encode(b"k" * 32).decode().rstrip("=")
PRODUCTION = {
    "IDP_ENV": "production",
    "IDP_ISSUER": "https://id.example.gov",
    "IDP_DATABASE_URL": "postgresql+psycopg://idp@db/idp",
    "IDP_SECRET_KEY": "s" * 40,
    "IDP_KEY_ENCRYPTION_KEY": KEK,
}


def test_development_generates_and_keeps_its_secrets(tmp_path: Path) -> None:
    first = Settings.from_env({"IDP_INSTANCE_PATH": str(tmp_path)})
    second = Settings.from_env({"IDP_INSTANCE_PATH": str(tmp_path)})
    assert first.secret_key == second.secret_key
    assert len(first.key_encryption_key) == 32
    assert first.database_url.startswith("sqlite:///")


def test_production_with_everything_set_starts(tmp_path: Path) -> None:
    settings = Settings.from_env(PRODUCTION | {"IDP_INSTANCE_PATH": str(tmp_path)})
    assert settings.is_production


def test_server_side_fetches_reach_loopback_only_in_development_by_default(tmp_path: Path) -> None:
    folder = {"IDP_INSTANCE_PATH": str(tmp_path)}
    assert Settings.from_env(folder).outbound_loopback_allowed
    assert not Settings.from_env(folder | {"IDP_OUTBOUND_ALLOW_LOOPBACK": "false"}).outbound_loopback_allowed
    assert not Settings.from_env(PRODUCTION | folder).outbound_loopback_allowed


@pytest.mark.parametrize(("change", "message"), [
    ({"IDP_SECRET_KEY": None}, "development secrets"),
    ({"IDP_KEY_ENCRYPTION_KEY": None}, "development secrets"),
    ({"IDP_DATABASE_URL": "sqlite:///idp.sqlite"}, "PostgreSQL"),
    ({"IDP_ISSUER": "http://id.example.gov"}, "https"),
    ({"IDP_ISSUER": "http://127.0.0.1:5000"}, "https"),
    ({"IDP_OUTBOUND_ALLOW_LOOPBACK": "true"}, "IDP_OUTBOUND_ALLOW_LOOPBACK"),
])
def test_production_refuses_development_defaults(tmp_path: Path, change: dict, message: str) -> None:
    environ = {key: value for key, value in (PRODUCTION | change).items() if value is not None}
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(environ | {"IDP_INSTANCE_PATH": str(tmp_path)})


@pytest.mark.parametrize("environ", [
    {"IDP_NO_SUCH_THING": "1"},
    {"IDP_ACCESS_TOKEN_TTL": "ten"},
    {"IDP_ACCESS_TOKEN_TTL": "-5"},
    {"IDP_KEY_ENCRYPTION_KEY": "too-short"},
    {"IDP_ENV": "staging"},
    {"IDP_ISSUER": "https://id.example.gov/?x=1"},
    {"IDP_ISSUER": "http://id.example.gov"},
    {"IDP_ALLOW_PUBLIC_SUBJECTS": "maybe"},
    {"IDP_KEY_ROTATION_DAYS": "99999"},
])
def test_unknown_or_malformed_values_fail_with_a_clear_message(tmp_path: Path, environ: dict) -> None:
    with pytest.raises(ConfigError):
        Settings.from_env(environ | {"IDP_INSTANCE_PATH": str(tmp_path)})


@pytest.mark.parametrize("name, field", [("IDP_KEY_ROTATION_DAYS", "key_rotation_days"),
                                         ("IDP_PROXY_HOPS", "proxy_hops")])
def test_zero_is_accepted_where_it_has_a_documented_meaning(tmp_path: Path, name: str, field: str) -> None:
    """``IDP_KEY_ROTATION_DAYS=0``: no scheduled rotation (only ``idp keys rotate``); ``IDP_PROXY_HOPS=0``: no proxy."""
    settings = Settings.from_env({name: "0", "IDP_INSTANCE_PATH": str(tmp_path)})
    assert getattr(settings, field) == 0
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: "-1", "IDP_INSTANCE_PATH": str(tmp_path)})


def test_zero_is_still_refused_where_it_means_nothing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="IDP_ACCESS_TOKEN_TTL"):
        Settings.from_env({"IDP_ACCESS_TOKEN_TTL": "0", "IDP_INSTANCE_PATH": str(tmp_path)})
