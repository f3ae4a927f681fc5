"""Malformed, missing, duplicated or unknown parameters: always a 4xx protocol error or an error
page, never a 500, and never a redirect to an unregistered URI."""

from __future__ import annotations

import os

from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from idp.models import Account
from tests.idp import flows
from tests.idp.flows import RegisteredClient

AUTHORIZE_PARAMS = ["response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "prompt", "max_age",
                    "code_challenge", "code_challenge_method", "claims", "login_hint", "id_token_hint",
                    "ui_locales", "acr_values", "response_mode", "request", "request_uri", "display", "x"]
TOKEN_PARAMS = ["grant_type", "code", "redirect_uri", "code_verifier", "refresh_token", "scope", "client_id",
                "client_secret", "client_assertion", "client_assertion_type", "token", "token_type_hint"]
values = st.one_of(st.text(max_size=60), st.sampled_from(["code", "openid", "none", "S256", '"', "\x00", "é"]),
                   st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=20))
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))  # raise locally for a deeper search
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _pairs(names: list[str]) -> st.SearchStrategy[list[tuple[str, str]]]:
    return st.lists(st.tuples(st.sampled_from(names), values), max_size=8)


@FUZZ
@given(extra=_pairs(AUTHORIZE_PARAMS))
def test_authorize_never_fails_or_redirects_elsewhere(client: FlaskClient, rp: RegisteredClient,
                                                      signed_in: Account, extra: list[tuple[str, str]]) -> None:
    base = list(flows.authorize_params(rp, flows.pkce()).items())
    keep = {name for name, _ in extra}
    query = [(k, v) for k, v in base if k not in keep] + extra
    response = client.get("/authorize", query_string=query)
    assert response.status_code < 500
    if response.status_code == 302:
        location = response.headers["Location"]
        assert location.startswith((rp.redirect_uri + "?", "/")), location


@FUZZ
@given(form=_pairs(TOKEN_PARAMS), path=st.sampled_from(["/token", "/revoke", "/introspect", "/userinfo"]))
def test_protocol_endpoints_answer_json_errors(client: FlaskClient, rp: RegisteredClient,
                                               form: list[tuple[str, str]], path: str) -> None:
    response = client.post(path, data=MultiDict(form))
    assert 400 <= response.status_code < 500
    assert response.is_json and "error" in response.get_json()


@FUZZ
@given(form=_pairs(["email", "password", "csrf_token", "interaction", "decision", "scope", "choice"]),
       path=st.sampled_from(["/signin", "/signout", "/logout", "/consent/unknown", "/select-account/x"]))
def test_forms_never_fail(client: FlaskClient, form: list[tuple[str, str]], path: str) -> None:
    response = client.post(path, data=MultiDict(form))
    assert response.status_code < 500


def test_non_utf8_query_is_a_client_error(client: FlaskClient, rp: RegisteredClient) -> None:
    response = client.get("/authorize?client_id=%ff%fe&redirect_uri=%c3%28")
    assert 400 <= response.status_code < 500


def test_oversized_body_is_refused(client: FlaskClient) -> None:
    response = client.post("/token", data={"code": "x" * 100_000})
    assert response.status_code == 413


def test_nul_characters_are_refused_everywhere(client: FlaskClient, rp: RegisteredClient) -> None:
    query = flows.authorize_params(rp, flows.pkce(), nonce="a\x00b")
    assert client.get("/authorize", query_string=query).status_code == 400
    response = client.post("/token", data={"grant_type": "authorization_code", "code": "\x00"})
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_request"
