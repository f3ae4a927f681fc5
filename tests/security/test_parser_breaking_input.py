"""Input that breaks parsers rather than rules: nesting past the recursion limit, lone surrogates,
bytes that are not UTF-8, malformed HTTP Basic credentials. Each gets its protocol's 4xx, never a
500 (the eight inputs of the Trust issue, item 4, and a client assertion nested the same way).

The mitigations are shared: one strict JSON parser (idp.json_input) behind every JSON entry point,
and one Basic-credentials parser (idp.oauth.client_auth.basic_credentials).
"""

from __future__ import annotations

import base64
import json

import pytest
from flask.testing import FlaskClient

from idp import json_input
from idp.models import Account
from tests.idp import flows
from tests.idp.flows import RegisteredClient
from tests.security.hostile import server_recursion_limit

DEEP = "[" * 2_000 + "]" * 2_000
NOT_UTF8_BASIC = {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:\xc3\x28").decode()}
METADATA = {"client_name": "Service", "redirect_uris": ["https://rp.example/cb"], "token_endpoint_auth_method": "none"}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_deeply_nested_claims_parameter_is_invalid_request(client: FlaskClient, rp: RegisteredClient,
                                                             signed_in: Account, method: str) -> None:
    params = flows.authorize_params(rp, flows.pkce(), claims=DEEP)
    with server_recursion_limit():
        response = client.open("/authorize", method=method, **({"query_string": params} if method == "GET"
                                                                else {"data": params}))
    assert response.status_code == 302
    assert flows.query(response.headers["Location"])["error"] == "invalid_request"


def test_a_claims_parameter_with_a_lone_surrogate_is_invalid_request(client: FlaskClient, rp: RegisteredClient,
                                                                     signed_in: Account) -> None:
    params = flows.authorize_params(rp, flows.pkce(), claims='{"userinfo": {"\\ud800": null}}')
    response = client.get("/authorize", query_string=params)
    assert flows.query(response.headers["Location"])["error"] == "invalid_request"


@pytest.mark.parametrize("path", ["/passkeys/signin/verify", "/passkeys/register/verify", "/passkeys/confirm/verify"])
def test_a_deeply_nested_ceremony_body_is_invalid_request(client: FlaskClient, signed_in: Account, path: str) -> None:
    token = flows.csrf_token(client)
    with server_recursion_limit():
        response = client.post(path, data=f'{{"credential": {DEEP}}}', content_type="application/json",
                               headers={"X-CSRF-Token": token})
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_request"


@pytest.mark.parametrize("body", [DEEP.encode(), json.dumps(METADATA | {"jwks": "__"}).replace('"__"', DEEP).encode(),
                                  json.dumps(METADATA).replace('"Service"', '"Serv\\ud800ice"').encode(),
                                  json.dumps(METADATA).replace("Service", "Serv\udcffice", 1).encode(
                                      "utf-8", "surrogateescape")],
                         ids=["deep", "deep-member", "lone-surrogate", "not-utf8"])
def test_registration_refuses_unparseable_metadata_and_stores_nothing(client: FlaskClient, agency_token: str,
                                                                      body: bytes) -> None:
    with server_recursion_limit():
        response = client.post("/register", data=body, content_type="application/json",
                               headers={"Authorization": f"Bearer {agency_token}"})
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_client_metadata"


@pytest.mark.parametrize("path", ["/token", "/introspect", "/revoke", "/ledger/entries"])
@pytest.mark.parametrize("header", [NOT_UTF8_BASIC, {"Authorization": "Basic !!notbase64"},
                                    {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
                                    {"Authorization": "Basic " + base64.b64encode(b"id%00:secret").decode()}],
                         ids=["not-utf8", "not-base64", "no-colon", "encoded-nul"])
def test_malformed_basic_credentials_are_invalid_client_with_401(client: FlaskClient, path: str,
                                                                 header: dict[str, str]) -> None:
    response = client.post(path, headers=header, data={"grant_type": "authorization_code", "code": "x", "token": "x"})
    assert response.status_code == 401  # RFC 6749 §5.2: the client used the Authorization header
    assert response.get_json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_basic_credentials_are_form_urldecoded(client: FlaskClient, secret_rp: RegisteredClient) -> None:
    raw = f"{secret_rp.client_id}:{secret_rp.secret}".encode()  # RFC 6749 §2.3.1, nothing to escape here
    response = client.post("/introspect", data={"token": "x"},
                           headers={"Authorization": "Basic " + base64.b64encode(raw).decode()})
    assert response.status_code == 200 and response.get_json() == {"active": False}


@pytest.mark.parametrize("segment", ["header", "payload"])
def test_a_deeply_nested_client_assertion_is_invalid_client(client: FlaskClient, segment: str) -> None:
    header, payload = _b64url(b'{"alg":"ES256"}'), _b64url(b'{"sub":"x"}')
    deep = _b64url(DEEP.encode())
    assertion = f"{deep if segment == 'header' else header}.{deep if segment == 'payload' else payload}.AAAA"
    with server_recursion_limit():
        response = client.post("/token", data={
            "grant_type": "authorization_code", "code": "x", "client_assertion": assertion,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"})
    assert response.status_code in (400, 401) and response.get_json()["error"] == "invalid_client"


@pytest.mark.parametrize("text", ["[" * 33 + "]" * 33, '{"a": NaN}', '{"a": Infinity}', '"\\udc00"', b'"\xff"'])
def test_the_strict_parser_refuses_what_rfc_8259_does_not_allow(text: str | bytes) -> None:
    with pytest.raises(json_input.UnsafeJSON):
        json_input.loads(text)


def test_the_strict_parser_keeps_what_rfc_8259_allows() -> None:
    nested = "[" * json_input.MAX_DEPTH + "]" * json_input.MAX_DEPTH
    assert json_input.loads(nested) is not None
    assert json_input.loads('{"a": "\\ud83d\\ude00 [{", "b": "\\"]]]]"}') == {"a": "\U0001f600 [{", "b": '"]]]]'}
    assert json_input.loads('"\\\\ud800"') == "\\ud800"  # an escaped backslash, not a surrogate
