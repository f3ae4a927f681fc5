"""Creating agencies and clients, and validating client metadata (RFC 7591 §2, RFC 8252 §7).

Shared by the ``idp`` CLI and the dynamic registration endpoint, so both apply one set of rules.
URIs this service itself requests (``jwks_uri``, ``backchannel_logout_uri``) are resolved and
refused when :mod:`idp.outbound` would refuse to reach them, under the caller's ``destinations``.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from typing import Any
from urllib.parse import urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy.orm import Session

from idp.assurance import ACR_VALUES_SUPPORTED
from idp.config import LOOPBACK_HOSTS
from idp.models import Agency, Client
from idp.models.clients import AUTH_METHODS, ID_TOKEN_ALGS, PRIVILEGED_SCOPES, hash_secret
from idp.outbound import DestinationPolicy, DestinationRefused, check_registered_uri

GRANT_TYPES = ("authorization_code", "refresh_token")
SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]{1,100}$")  # RFC 6749 §3.3 scope-token
SECRET_METHODS = ("client_secret_basic", "client_secret_post")


class ClientMetadataError(ValueError):
    """Invalid client metadata; ``error`` is the RFC 7591 §3.2.2 code."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error, self.description = error, description


@dataclasses.dataclass(frozen=True)
class ClientMetadata:
    client_name: str
    redirect_uris: list[str]
    token_endpoint_auth_method: str = "private_key_jwt"
    grant_types: list[str] = dataclasses.field(default_factory=lambda: ["authorization_code", "refresh_token"])
    scope: str = "openid profile email offline_access"
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    post_logout_redirect_uris: list[str] = dataclasses.field(default_factory=list)
    backchannel_logout_uri: str | None = None
    id_token_signed_response_alg: str = "ES256"
    subject_type: str = "pairwise"
    default_acr_values: list[str] = dataclasses.field(default_factory=list)
    delegation_supported: bool = True  # delegation.md: False means never acting-for tokens


def create_agency(session: Session, name: str, sector_identifier: str | None = None) -> tuple[Agency, str]:
    """A new agency and its initial access token for /register (shown once, stored hashed)."""
    if not name.strip() or len(name) > 200:
        raise ClientMetadataError("invalid_client_metadata", "An agency needs a name of at most 200 characters.")
    token = secrets.token_urlsafe(32)
    agency = Agency(name=name.strip(), initial_access_token_hash=hash_secret(token))
    agency.sector_identifier = sector_host(sector_identifier) if sector_identifier else ""
    session.add(agency)
    session.flush()
    if not agency.sector_identifier:
        agency.sector_identifier = f"urn:agency:{agency.id}"
    return agency, token


def sector_host(uri: str) -> str:
    """OIDC Core §8.1: the sector is the host of the sector_identifier_uri."""
    parts = urlsplit(uri)
    if parts.scheme != "https" or not parts.hostname:
        raise ClientMetadataError("invalid_client_metadata", "The sector identifier must be an https URI.")
    return parts.hostname


def create_client(session: Session, agency: Agency, metadata: ClientMetadata, *, destinations: DestinationPolicy,
                  allow_public_subjects: bool = False) -> tuple[Client, str | None]:
    validate(metadata, allow_public_subjects or agency.allow_public_subjects, destinations=destinations)
    secret = secrets.token_urlsafe(32) if metadata.token_endpoint_auth_method in SECRET_METHODS else None
    client = Client(client_id=secrets.token_urlsafe(24), agency=agency, name=metadata.client_name,
                    secret_hash=hash_secret(secret) if secret else None)
    apply_metadata(client, metadata)
    session.add(client)
    session.flush()
    return client, secret


def apply_metadata(client: Client, metadata: ClientMetadata) -> None:
    client.name = metadata.client_name
    client.token_endpoint_auth_method = metadata.token_endpoint_auth_method
    client.redirect_uris = list(metadata.redirect_uris)
    client.post_logout_redirect_uris = list(metadata.post_logout_redirect_uris)
    client.backchannel_logout_uri = metadata.backchannel_logout_uri
    client.grant_types = list(metadata.grant_types)
    client.scope = " ".join(dict.fromkeys(metadata.scope.split()))
    client.jwks, client.jwks_uri = metadata.jwks, metadata.jwks_uri
    client.id_token_signed_response_alg = metadata.id_token_signed_response_alg
    client.subject_type = metadata.subject_type
    client.default_acr_values = list(metadata.default_acr_values)
    client.delegation_supported = metadata.delegation_supported


def validate(metadata: ClientMetadata, allow_public_subjects: bool, *, destinations: DestinationPolicy) -> None:
    if not metadata.client_name.strip() or len(metadata.client_name) > 200:
        raise ClientMetadataError("invalid_client_metadata", "client_name must be 1 to 200 characters.")
    if not metadata.redirect_uris:
        raise ClientMetadataError("invalid_redirect_uri", "At least one redirect_uri is required.")
    for uri in metadata.redirect_uris:
        check_redirect_uri(uri, "invalid_redirect_uri")
    for uri in metadata.post_logout_redirect_uris:
        check_redirect_uri(uri, "invalid_client_metadata")
    check_auth_method(metadata)
    check_choices(metadata, allow_public_subjects)
    if metadata.backchannel_logout_uri:
        check_fetched_uri(metadata.backchannel_logout_uri, "backchannel_logout_uri", destinations)
    if metadata.jwks_uri:
        check_fetched_uri(metadata.jwks_uri, "jwks_uri", destinations)


def check_redirect_uri(uri: str, error: str) -> None:
    """Absolute, no fragment; https, loopback http (RFC 8252 §7.3) or a private-use scheme (§7.1)."""
    parts = _split(uri, error)
    if parts.fragment or not parts.scheme:
        raise ClientMetadataError(error, f"Redirect URI {uri!r} must be absolute and have no fragment.")
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return
    if parts.scheme not in {"http", "https", "javascript", "data", "file"} and "." in parts.scheme:
        return
    raise ClientMetadataError(error, f"Redirect URI {uri!r} must use https (http only for loopback).")


def check_fetched_uri(uri: str, field: str, destinations: DestinationPolicy) -> None:
    """RFC 7591 §3.2.2 ``invalid_client_metadata``: a URI we would refuse to fetch or post to, after
    resolving its host (public addresses only; loopback where ``destinations`` allow it)."""
    _split(uri, "invalid_client_metadata")
    try:
        check_registered_uri(uri, destinations)
    except DestinationRefused as error:
        raise ClientMetadataError("invalid_client_metadata", f"{field} {error}.") from None


def _split(uri: str, error: str) -> Any:
    if not isinstance(uri, str) or len(uri) > 2000:
        raise ClientMetadataError(error, "A URI must be a string of at most 2000 characters.")
    try:
        return urlsplit(uri)
    except ValueError:
        raise ClientMetadataError(error, f"{uri!r} is not a valid URI.") from None


def check_auth_method(metadata: ClientMetadata) -> None:
    method = metadata.token_endpoint_auth_method
    if method not in AUTH_METHODS:
        raise ClientMetadataError("invalid_client_metadata", f"Unsupported token_endpoint_auth_method {method!r}.")
    has_keys = metadata.jwks is not None or metadata.jwks_uri is not None
    if metadata.jwks is not None and metadata.jwks_uri is not None:
        raise ClientMetadataError("invalid_client_metadata", "Give jwks or jwks_uri, not both.")
    if method == "private_key_jwt" and not has_keys:
        raise ClientMetadataError("invalid_client_metadata", "private_key_jwt needs jwks or jwks_uri.")
    if metadata.jwks is not None:
        check_public_jwks(metadata.jwks)


def check_public_jwks(jwks: Any) -> None:
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise ClientMetadataError("invalid_client_metadata", "jwks must be a JWK Set with at least one key.")
    if any(not isinstance(key, dict) or "d" in key or key.get("kty") == "oct" for key in jwks["keys"]):
        raise ClientMetadataError("invalid_client_metadata", "jwks must hold public asymmetric keys only.")
    try:
        KeySet.import_key_set({"keys": jwks["keys"]})  # the members joserfc reads: the set's keys
    except (JoseError, ValueError, TypeError, KeyError):
        raise ClientMetadataError("invalid_client_metadata", "jwks holds a key that cannot be read.") from None


def check_unprivileged(scopes: list[str]) -> None:
    """RFC 7591 §3.2.2: a privileged scope in the metadata is refused (``invalid_client_metadata``),
    not silently dropped, so the agency knows it does not have it: only an operator grants one."""
    privileged = sorted(set(scopes) & PRIVILEGED_SCOPES)
    if privileged:
        raise ClientMetadataError("invalid_client_metadata", f"The scope {privileged[0]} is granted by the "
                                  "service's operator only, never through registration.")


def grant_privileged_scope(client: Client, scope: str) -> None:
    """The operator's ``idp client grant-scope``: the only way a client gets a privileged scope."""
    if scope not in PRIVILEGED_SCOPES:
        raise ClientMetadataError("invalid_scope", f"{scope!r} is not a privileged scope; "
                                  f"those are {', '.join(sorted(PRIVILEGED_SCOPES))}.")
    held = client.privileged_scopes.split()
    client.privileged_scopes = " ".join(sorted({*held, scope}))


def revoke_privileged_scope(client: Client, scope: str) -> None:
    client.privileged_scopes = " ".join(held for held in client.privileged_scopes.split() if held != scope)


def check_choices(metadata: ClientMetadata, allow_public_subjects: bool) -> None:
    if not metadata.grant_types or not set(metadata.grant_types) <= set(GRANT_TYPES):
        raise ClientMetadataError("invalid_client_metadata",
                                  "grant_types may only hold authorization_code and refresh_token.")
    if "authorization_code" not in metadata.grant_types:
        raise ClientMetadataError("invalid_client_metadata", "grant_types must include authorization_code.")
    scopes = metadata.scope.split()
    if "openid" not in scopes or not all(SCOPE_TOKEN.match(scope) for scope in scopes):
        raise ClientMetadataError("invalid_client_metadata", "scope must include openid and be valid scope tokens.")
    check_unprivileged(scopes)
    if metadata.id_token_signed_response_alg not in ID_TOKEN_ALGS:
        raise ClientMetadataError("invalid_client_metadata", "Unsupported id_token_signed_response_alg.")
    if metadata.subject_type not in {"pairwise", "public"}:
        raise ClientMetadataError("invalid_client_metadata", "subject_type must be pairwise or public.")
    if metadata.subject_type == "public" and not allow_public_subjects:
        raise ClientMetadataError("invalid_client_metadata", "Public subjects are not allowed for this agency.")
    if not set(metadata.default_acr_values) <= set(ACR_VALUES_SUPPORTED):
        # Stricter than OIDC Registration §2 allows: a mistyped level must not silently become none.
        raise ClientMetadataError("invalid_client_metadata", "default_acr_values may only hold Cl and Cl.Cm.")
