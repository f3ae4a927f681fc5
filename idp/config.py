"""Settings: read once from ``IDP_*`` environment variables into one frozen, typed object.

This is the only module that reads the environment. A missing development secret is
generated into the instance folder; ``IDP_ENV=production`` refuses such defaults, SQLite
and non-loopback ``http`` issuers (operations.md "Configuration").
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class ConfigError(ValueError):
    """A setting is missing, unknown or malformed; the message names the variable."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    env: str = "development"
    issuer: str = "http://localhost:5000"  # passkeys need a domain: browsers refuse an IP as RP ID
    instance_path: Path = Path("instance")
    database_url: str = ""
    secret_key: str = ""
    key_encryption_key: bytes = b""
    redis_url: str | None = None
    smtp_url: str | None = None
    mail_from: str = "Public Services Sign-in <no-reply@localhost>"
    access_token_ttl: int = 600
    id_token_ttl: int = 600
    code_ttl: int = 60
    refresh_idle_ttl: int = 14 * 24 * 3600
    refresh_absolute_ttl: int = 90 * 24 * 3600
    session_idle_ttl: int = 30 * 60
    session_absolute_ttl: int = 12 * 3600
    key_cache_seconds: int = 30
    # operations.md "Keys": the worker rotates the token signing keys this often (0: only by hand).
    key_rotation_days: int = 90
    client_assertion_max_age: int = 300
    webauthn_challenge_ttl: int = 300  # WebAuthn L3 §15.1: 5 to 10 minutes when UV is required
    allow_public_subjects: bool = False
    log_level: str = "INFO"
    # consent-ledger.md: a signed checkpoint at least every N entries or T seconds.
    ledger_checkpoint_entries: int = 256
    ledger_checkpoint_seconds: int = 300
    proxy_hops: int = 0  # load balancers in front that set X-Forwarded-For/-Proto
    # delegation.md "Review / expire": unused delegations expire; reminders before the end date;
    # a parent's delegation is suspended when the dependent reaches this age.
    delegation_unused_days: int = 365
    delegation_reminder_days: int = 30
    delegation_parent_age: int = 16
    # security.md "Secrets and data": sent and given-up outbox messages are deleted after this.
    outbox_retention_days: int = 30
    # security.md "code and link guessing": emails with a code or a link (and any other email a
    # stranger can have sent) to one address in any hour (idp/attempts.py).
    emails_per_address_per_hour: int = 5
    metrics_dir: Path | None = None  # prometheus-client's multiprocess folder (gunicorn)
    # idp/outbound.py: may server-side fetches (jwks_uri, back-channel logout) reach loopback?
    # None: only in development. Production refuses True.
    outbound_allow_loopback: bool | None = None
    generated_secrets: tuple[str, ...] = ()

    @property
    def key_retire_after(self) -> dt.timedelta:
        """How long a retired key stays published: until every token it signed has expired."""
        return dt.timedelta(seconds=max(self.id_token_ttl, self.access_token_ttl) * 2)

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def outbound_loopback_allowed(self) -> bool:
        if self.outbound_allow_loopback is None:
            return not self.is_production
        return self.outbound_allow_loopback

    @property
    def issuer_is_loopback(self) -> bool:
        return (urlsplit(self.issuer).hostname or "") in LOOPBACK_HOSTS

    @property
    def passkey_rp_id(self) -> str:
        """WebAuthn L3 §5.1.2: the RP ID is the issuer's host, so passkeys are bound to it."""
        return (urlsplit(self.issuer).hostname or "").lower()

    @property
    def passkey_origin(self) -> str:
        """The issuer's origin (RFC 6454), without a default port: what browsers put in clientDataJSON."""
        parts = urlsplit(self.issuer)
        default_port = {"http": 80, "https": 443}[parts.scheme]
        host = self.passkey_rp_id if ":" not in self.passkey_rp_id else f"[{self.passkey_rp_id}]"
        port = "" if parts.port in (None, default_port) else f":{parts.port}"
        return f"{parts.scheme}://{host}{port}"

    def endpoint(self, path: str) -> str:
        return self.issuer.rstrip("/") + path

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        environ = os.environ if environ is None else environ
        values = _parse(environ)
        values.update(overrides)
        settings = cls(**values)  # type: ignore[arg-type]
        settings = _fill_development_secrets(settings)
        _validate(settings)
        return settings


class Count(int):
    """An int setting for which 0 has a documented meaning ("none", "off"); other ints must be positive."""


# One variable → one field, with its coercion.
_FIELDS: dict[str, tuple[str, type]] = {
    "IDP_ENV": ("env", str),
    "IDP_ISSUER": ("issuer", str),
    "IDP_INSTANCE_PATH": ("instance_path", Path),
    "IDP_DATABASE_URL": ("database_url", str),
    "IDP_SECRET_KEY": ("secret_key", str),
    "IDP_KEY_ENCRYPTION_KEY": ("key_encryption_key", bytes),
    "IDP_REDIS_URL": ("redis_url", str),
    "IDP_SMTP_URL": ("smtp_url", str),
    "IDP_MAIL_FROM": ("mail_from", str),
    "IDP_ACCESS_TOKEN_TTL": ("access_token_ttl", int),
    "IDP_ID_TOKEN_TTL": ("id_token_ttl", int),
    "IDP_CODE_TTL": ("code_ttl", int),
    "IDP_REFRESH_IDLE_TTL": ("refresh_idle_ttl", int),
    "IDP_REFRESH_ABSOLUTE_TTL": ("refresh_absolute_ttl", int),
    "IDP_SESSION_IDLE_TTL": ("session_idle_ttl", int),
    "IDP_SESSION_ABSOLUTE_TTL": ("session_absolute_ttl", int),
    "IDP_KEY_CACHE_SECONDS": ("key_cache_seconds", int),
    "IDP_KEY_ROTATION_DAYS": ("key_rotation_days", Count),  # 0: no scheduled rotation
    "IDP_CLIENT_ASSERTION_MAX_AGE": ("client_assertion_max_age", int),
    "IDP_WEBAUTHN_CHALLENGE_TTL": ("webauthn_challenge_ttl", int),
    "IDP_ALLOW_PUBLIC_SUBJECTS": ("allow_public_subjects", bool),
    "IDP_LOG_LEVEL": ("log_level", str),
    "IDP_LEDGER_CHECKPOINT_ENTRIES": ("ledger_checkpoint_entries", int),
    "IDP_LEDGER_CHECKPOINT_SECONDS": ("ledger_checkpoint_seconds", int),
    "IDP_PROXY_HOPS": ("proxy_hops", Count),  # 0: no proxy trusted
    "IDP_DELEGATION_UNUSED_DAYS": ("delegation_unused_days", int),
    "IDP_DELEGATION_REMINDER_DAYS": ("delegation_reminder_days", int),
    "IDP_DELEGATION_PARENT_AGE": ("delegation_parent_age", int),
    "IDP_OUTBOUND_ALLOW_LOOPBACK": ("outbound_allow_loopback", bool),
    "IDP_OUTBOX_RETENTION_DAYS": ("outbox_retention_days", int),
    "IDP_EMAILS_PER_ADDRESS_PER_HOUR": ("emails_per_address_per_hour", int),
}
# Variables of the libraries we use, read here too so this stays the one place reading them.
_FOREIGN_FIELDS: dict[str, tuple[str, type]] = {
    "PROMETHEUS_MULTIPROC_DIR": ("metrics_dir", Path),  # set by idp/gunicorn_conf.py
}
# Read elsewhere (tests only), listed so they are not reported as unknown.
_KNOWN_ELSEWHERE = frozenset({"IDP_TEST_DATABASE_URL", "IDP_TEST_REQUIRE_PRODUCTION"})


def _parse(environ: Mapping[str, str]) -> dict[str, object]:
    values: dict[str, object] = {}
    for name, (field, kind) in _FOREIGN_FIELDS.items():
        if environ.get(name):
            values[field] = _coerce(name, environ[name], kind)
    for name, raw in environ.items():
        if not name.startswith("IDP_") or name in _KNOWN_ELSEWHERE:
            continue
        if name not in _FIELDS:
            raise ConfigError(f"{name} is not a setting this service knows")
        field, kind = _FIELDS[name]
        values[field] = _coerce(name, raw, kind)
    return values


def _coerce(name: str, raw: str, kind: type) -> object:
    try:
        if kind in (int, Count):
            value = int(raw)
            if value < (0 if kind is Count else 1):
                raise ValueError
            return value
        if kind is bool:
            if raw.lower() not in {"true", "false", "1", "0"}:
                raise ValueError
            return raw.lower() in {"true", "1"}
        if kind is bytes:
            return _decode_kek(raw)
        if kind is Path:
            return Path(raw)
        return raw
    except ValueError:
        raise ConfigError(f"{name} has a malformed value") from None


def _decode_kek(raw: str) -> bytes:
    key = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    if len(key) != 32:
        raise ValueError("the key-encryption key must be 32 bytes, base64url-encoded")
    return key


def _fill_development_secrets(settings: Settings) -> Settings:
    changes: dict[str, object] = {}
    generated: list[str] = []
    if not settings.database_url:
        path = settings.instance_path.resolve() / "idp.sqlite"
        changes["database_url"] = f"sqlite:///{path}"
    if not settings.secret_key:
        changes["secret_key"] = _instance_secret(settings.instance_path, "secret_key")
        generated.append("IDP_SECRET_KEY")
    if not settings.key_encryption_key:
        changes["key_encryption_key"] = _decode_kek(_instance_secret(settings.instance_path, "key_encryption_key"))
        generated.append("IDP_KEY_ENCRYPTION_KEY")
    if generated:
        changes["generated_secrets"] = tuple(generated)
    return dataclasses.replace(settings, **changes) if changes else settings  # type: ignore[arg-type]


def _instance_secret(instance_path: Path, name: str) -> str:
    """A development secret kept in the instance folder so restarts keep working."""
    path = instance_path / name
    if path.exists():
        return path.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    value = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    path.write_text(value)
    path.chmod(0o600)
    return value


def _validate(settings: Settings) -> None:
    if settings.env not in {"development", "production"}:
        raise ConfigError("IDP_ENV must be 'development' or 'production'")
    issuer = urlsplit(settings.issuer)
    if issuer.scheme not in {"http", "https"} or not issuer.hostname or issuer.query or issuer.fragment:
        raise ConfigError("IDP_ISSUER must be an http(s) URL without query or fragment")
    if issuer.scheme == "http" and not settings.issuer_is_loopback:
        raise ConfigError("IDP_ISSUER must use https outside loopback development")
    if not 0 <= settings.key_rotation_days <= 3650:
        raise ConfigError("IDP_KEY_ROTATION_DAYS must be between 0 (only by hand) and 3650")
    if settings.is_production:
        _validate_production(settings)


def _validate_production(settings: Settings) -> None:
    if settings.generated_secrets:
        names = ", ".join(settings.generated_secrets)
        raise ConfigError(f"production refuses development secrets: set {names}")
    if settings.issuer.startswith("http:"):
        raise ConfigError("production requires an https IDP_ISSUER")
    if settings.database_url.startswith("sqlite"):
        raise ConfigError("production requires PostgreSQL in IDP_DATABASE_URL, not SQLite")
    if len(settings.secret_key) < 32:
        raise ConfigError("IDP_SECRET_KEY must be at least 32 characters in production")
    if settings.outbound_allow_loopback:
        raise ConfigError("production refuses IDP_OUTBOUND_ALLOW_LOOPBACK: fetches go to public addresses only")
