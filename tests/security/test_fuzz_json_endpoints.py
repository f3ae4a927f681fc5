"""Schema-driven fuzzing (schemathesis) of every JSON endpoint against a live server, and
parser-breaking values (nesting depth, lone surrogates, non-UTF-8 bytes and Basic credentials)
in every member and operation the same description declares.

Bounded so CI stays fast: FUZZ_EXAMPLES examples per operation (raise it locally for a deeper
search). Positive and negative cases alike: never a 5xx, and every answer is one the
description allows (status code, content type, body schema).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import schemathesis
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from idp.blueprints.openapi import DESCRIPTION
from tests.security.conftest import LiveServer
from tests.security.hostile import hostile_basic_header, hostile_member, server_recursion_limit

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
schema = schemathesis.openapi.from_path(str(DESCRIPTION))


def not_a_server_error(ctx: object, response: object, case: object) -> None:
    """A 503 is a server error too: the database is up here, so none is allowed."""
    status = response.status_code  # type: ignore[attr-defined]
    assert status < 500, f"{case} answered {status}"


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_json_endpoints_never_fail_and_answer_as_described(case: schemathesis.Case, live_server: LiveServer) -> None:
    case.call_and_validate(base_url=live_server.url, timeout=10, checks=[
        not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance])


# --- parser-breaking values, driven by the same description (tests/security/hostile.py) -------------------
# schemathesis generates values its schema allows, and JSON it can serialise: never a lone surrogate, a
# document nested past the recursion limit, or bytes that are not UTF-8. These runs send exactly those, in
# each declared member of every JSON request body in turn, and malformed Basic credentials to every
# operation that accepts clientSecretBasic, on the in-process app (the tokens live in the test's transaction).

DOCUMENT = json.loads(DESCRIPTION.read_text())
POISON = b'"__poison__"'
# A body each JSON operation accepts, so that the poisoned member is the only thing wrong with it.
VALID_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/register"): {"client_name": "Fuzzed Service", "redirect_uris": ["https://rp.example/cb"],
                            "token_endpoint_auth_method": "none", "scope": "openid"},
    ("PUT", "/register/{client_id}"): {"client_name": "Fuzzed Service", "redirect_uris": ["https://rp.example/cb"],
                                       "token_endpoint_auth_method": "none", "scope": "openid"},
}


def _operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in DOCUMENT["paths"].items():
        for method, operation in operations.items():
            if isinstance(operation, dict):
                yield method.upper(), path, operation


def _json_operations() -> dict[tuple[str, str], list[str]]:
    """(method, path) → the members its JSON request body declares."""
    found = {}
    for method, path, operation in _operations():
        content = operation.get("requestBody", {}).get("content", {})
        if "application/json" in content:
            reference = content["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
            found[method, path] = sorted(DOCUMENT["components"]["schemas"][reference]["properties"])
    return found


def _basic_operations() -> list[tuple[str, str]]:
    return [(method, path) for method, path, operation in _operations()
            if any("clientSecretBasic" in requirement for requirement in operation.get("security", []))]


def _poisoned(body: dict[str, Any], member: str, value: bytes) -> bytes:
    return json.dumps(body | {member: "__poison__"}).encode().replace(POISON, value)


def test_every_member_of_every_json_body_refuses_parser_breaking_values(client: FlaskClient,
                                                                        agency_token: str) -> None:
    operations = _json_operations()
    assert set(operations) == set(VALID_BODIES), "a JSON operation needs a valid body here"
    registered = client.post("/register", json=VALID_BODIES["POST", "/register"],
                             headers={"Authorization": f"Bearer {agency_token}"}).get_json()
    tokens = {"/register": agency_token, "/register/{client_id}": registered["registration_access_token"]}

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
              database=None)
    @given(value=hostile_member)
    def run(value: bytes) -> None:
        for (method, path), members in operations.items():
            body = VALID_BODIES[method, path] | ({"client_id": registered["client_id"]} if "{" in path else {})
            url = path.replace("{client_id}", registered["client_id"])
            for member in members:
                with server_recursion_limit():
                    response = client.open(url, method=method, data=_poisoned(body, member, value),
                                           content_type="application/json",
                                           headers={"Authorization": f"Bearer {tokens[path]}"})
                context = f"{method} {path} {member}={value[:60]!r}"
                assert 400 <= response.status_code < 500, f"{context} -> {response.status_code}"
                assert response.is_json and "error" in response.get_json(), context

    run()


def test_every_basic_authenticated_operation_refuses_malformed_credentials(client: FlaskClient) -> None:
    operations = _basic_operations()
    assert len(operations) >= 4  # token, introspection, revocation, ledger entries

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
              database=None)
    @given(header=hostile_basic_header)
    def run(header: dict[str, str]) -> None:
        for method, path in operations:
            response = client.open(path, method=method, headers=header,
                                   data={"grant_type": "authorization_code", "code": "x", "token": "x"})
            context = f"{method} {path} {header}"
            assert response.status_code == 401, f"{context} -> {response.status_code}"  # RFC 6749 §5.2
            assert response.get_json()["error"] == "invalid_client", context
            assert response.headers["WWW-Authenticate"].startswith("Basic"), context

    run()
