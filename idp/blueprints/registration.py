"""Dynamic client registration (RFC 7591) and client configuration (RFC 7592).

An agency registers a service with its initial access token; each registration returns a
registration access token that reads, replaces and deletes that one client. The metadata
rules live in :mod:`idp.registry`, shared with the ``idp`` CLI; this module only reads the
JSON, authenticates the bearer token and writes the response.

Authlib's ``ClientRegistrationEndpoint`` and ``ClientConfigurationEndpoint`` are not used:
they mint the client_id and client_secret themselves (and return a secret to every client),
validate with their own ``ClientMetadataClaims`` instead of the shared rules, answer a
missing token with 403 ``access_denied`` rather than 401 ``invalid_token``, and answer an
unknown client differently from a wrong token. Overriding every hook would leave nothing of
them, so this is a small explicit blueprint that still raises Authlib's error classes.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Iterator
from typing import Any

from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6750.errors import InvalidTokenError
from authlib.oauth2.rfc7591.errors import InvalidClientMetadataError, InvalidRedirectURIError
from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select

from idp.models import Agency, Client
from idp.models.clients import hash_secret
from idp.outbound import DestinationPolicy
from idp.registry import SECRET_METHODS, ClientMetadata, ClientMetadataError, apply_metadata, create_client, validate
from idp.services import db, services

bp = Blueprint("registration", __name__)

MAX_TOKEN_LENGTH = 512
# RFC 7591 §2: the metadata we accept and its JSON type (a list holds strings only).
FIELD_TYPES: dict[str, type] = {
    "client_name": str, "redirect_uris": list, "token_endpoint_auth_method": str, "grant_types": list,
    "scope": str, "jwks": dict, "jwks_uri": str, "post_logout_redirect_uris": list,
    "backchannel_logout_uri": str, "id_token_signed_response_alg": str, "subject_type": str,
    "default_acr_values": list, "delegation_supported": bool,
}
# RFC 7592 §2.2: fields the server issues, which a client must not send back in an update.
SERVER_FIELDS = ("registration_access_token", "registration_client_uri", "client_secret_expires_at",
                 "client_id_issued_at")
METADATA_ERRORS = {"invalid_redirect_uri": InvalidRedirectURIError}  # RFC 7591 §3.2.2
NOT_DESCRIPTION_CHARS = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")  # RFC 6749 §5.2 error_description


@bp.post("/register")
def register() -> Response:
    """RFC 7591 §3.1: register a client for the agency holding the initial access token."""
    agency = agency_for(bearer_token())
    metadata = parse_metadata(json_body())
    with shared_rules():
        client, secret = create_client(db(), agency, metadata, destinations=destinations())
    token = secrets.token_urlsafe(32)  # 256 bits; only its hash is kept
    client.registration_access_token_hash = hash_secret(token)
    db().commit()
    return client_response(client, token, secret, status=201)


@bp.route("/register/<client_id>", methods=["GET", "PUT", "DELETE"])
def manage(client_id: str) -> Response:
    """RFC 7592 §2: the client configuration endpoint, one URI per client."""
    token = bearer_token()
    client = client_for(client_id, token)
    if request.method == "PUT":
        return update(client, token)
    if request.method == "DELETE":
        return delete(client)
    return client_response(client, token)  # RFC 7592 §2.1


def update(client: Client, token: str) -> Response:
    """RFC 7592 §2.2: the body replaces the whole registration; omitted fields take defaults."""
    body = json_body()
    check_update_fields(client, body)
    metadata = parse_metadata(body)
    with shared_rules():
        validate(metadata, client.agency.allow_public_subjects, destinations=destinations())
    apply_metadata(client, metadata)
    secret = settle_secret(client)
    db().commit()
    return client_response(client, token, secret)


def delete(client: Client) -> Response:
    """RFC 7592 §2.3: the client goes, and with it (by cascade) its codes and tokens."""
    db().delete(client)
    db().commit()
    return Response(status=204, headers={"Cache-Control": "no-store"})


# --- authentication ------------------------------------------------------------------------

def bearer_token() -> str:
    """RFC 6750 §2.1: both tokens travel in the Authorization header, nowhere else."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    token = value.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidTokenError("A valid bearer token is required.")
    return token


def agency_for(token: str) -> Agency:
    """RFC 7591 §3: the initial access token names the agency; looked up by its SHA-256."""
    agency = db().scalar(select(Agency).where(Agency.initial_access_token_hash == hash_secret(token)))
    if agency is None:
        raise InvalidTokenError("A valid bearer token is required.")
    return agency


def client_for(client_id: str, token: str) -> Client:
    # RFC 7592 §2: an unknown client and a wrong token get the same 401, so neither leaks.
    query = select(Client).where(Client.client_id == client_id,
                                 Client.registration_access_token_hash == hash_secret(token))
    client = db().scalar(query)
    if client is None:
        raise InvalidTokenError("A valid bearer token is required.")
    return client


def destinations() -> DestinationPolicy:
    return DestinationPolicy.from_settings(services().settings)


# --- request body --------------------------------------------------------------------------

def json_body() -> dict[str, Any]:
    """RFC 7591 §3.1: the metadata is a JSON object sent as application/json."""
    if request.mimetype != "application/json":
        raise InvalidClientMetadataError("Send the client metadata as application/json.")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidClientMetadataError("The body must be a JSON object.")
    return body


def parse_metadata(body: dict[str, Any]) -> ClientMetadata:
    """RFC 7591 §2: known fields are type-checked; unknown fields are ignored; null means absent."""
    response_types = body.get("response_types")
    if response_types is not None and response_types != ["code"]:  # RFC 7591 §2.1: code flow only
        raise InvalidClientMetadataError("response_types may only hold code.")
    fields: dict[str, Any] = {"client_name": "", "redirect_uris": []}  # so the shared rules report them
    for name, expected in FIELD_TYPES.items():
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, expected) or (isinstance(value, list) and not all(isinstance(v, str) for v in value)):
            raise InvalidClientMetadataError(f"{name} has the wrong JSON type.")
        fields[name] = value
    return ClientMetadata(**fields)


def check_update_fields(client: Client, body: dict[str, Any]) -> None:
    """RFC 7592 §2.2: the body names the client, and may only repeat its current secret."""
    sent = [name for name in SERVER_FIELDS if name in body]
    if sent:
        raise InvalidRequestError(f"{sent[0]} must not be sent in an update.")
    if body.get("client_id") != client.client_id:
        raise InvalidRequestError("client_id must be the client being updated.")
    if "client_secret" in body:
        given = body["client_secret"]
        if not isinstance(given, str) or not client.check_client_secret(given):
            raise InvalidRequestError("client_secret does not match the current secret.")


@contextlib.contextmanager
def shared_rules() -> Iterator[None]:
    """Turn the registry's rule violations into RFC 7591 §3.2.2 error responses."""
    try:
        yield
    except ClientMetadataError as error:
        # The description may quote the client's own URI; Authlib refuses characters outside the set.
        description = NOT_DESCRIPTION_CHARS.sub("?", error.description)
        raise METADATA_ERRORS.get(error.error, InvalidClientMetadataError)(description) from None


def settle_secret(client: Client) -> str | None:
    """Keep the secret while the method uses one; RFC 7592 §2.2 lets us issue one on a switch."""
    if client.token_endpoint_auth_method not in SECRET_METHODS:
        client.secret_hash = None
        return None
    if client.secret_hash is not None:
        return None
    secret = secrets.token_urlsafe(32)
    client.secret_hash = hash_secret(secret)
    return secret


# --- response ------------------------------------------------------------------------------

def describe(client: Client) -> dict[str, Any]:
    """RFC 7591 §3.2.1: every registered value, including the ones we defaulted."""
    body: dict[str, Any] = {
        "client_id": client.client_id,
        "client_id_issued_at": int(client.created_at.timestamp()),
        "client_name": client.name,
        "redirect_uris": client.redirect_uris,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "grant_types": client.grant_types,
        "response_types": ["code"],
        "scope": client.scope,
        "post_logout_redirect_uris": client.post_logout_redirect_uris,
        "id_token_signed_response_alg": client.id_token_signed_response_alg,
        "subject_type": client.subject_type,
        "delegation_supported": client.delegation_supported,  # delegation.md "What agencies receive"
    }
    optional = {"jwks": client.jwks, "jwks_uri": client.jwks_uri,
                "backchannel_logout_uri": client.backchannel_logout_uri,
                "default_acr_values": client.default_acr_values or None}
    return body | {name: value for name, value in optional.items() if value is not None}


def client_response(client: Client, token: str, secret: str | None = None, status: int = 200) -> Response:
    # RFC 7592 §3: the response names the configuration endpoint and its (unchanged) token.
    body = describe(client) | {
        "registration_access_token": token,
        "registration_client_uri": services().settings.endpoint(f"/register/{client.client_id}"),
    }
    if secret is not None:  # RFC 7591 §3.2.1: 0 means the secret does not expire
        body |= {"client_secret": secret, "client_secret_expires_at": 0}
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"  # RFC 7591 §3.2.1
    return response
