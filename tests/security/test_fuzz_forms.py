"""Bad input: Hypothesis fuzzing of every POST route of the provider, read from ``app.url_map``.

Issue: "Hypothesis tests for /authorize query strings and every HTML form (random, missing,
duplicated, oversized and non-UTF-8 values): never a 5xx, never a redirect to an unregistered URI".
(/authorize query strings are fuzzed in tests/idp/test_bad_input.py; its POST form is fuzzed here.)

Every POST rule is driven -- a new form is covered the moment its route exists -- as a signed-in
citizen, once with the session's valid CSRF token and once without (or with a forged one), with:
random and known field names, missing fields, duplicated fields (a MultiDict), oversized values
(more than the 64 kB request limit: a 4xx, normally 413) and raw non-UTF-8 bytes in an
``application/x-www-form-urlencoded`` body. Path parameters get a real interaction (from a real
/authorize request) where the route takes one, and random text otherwise.

Parser-breaking encodings get two runs of their own (tests/security/hostile.py), each example
hostile in every channel at once: a valid authorization request whose JSON-valued parameters
(``claims``) hold deeply nested or lone-surrogate JSON, sent with HTTP Basic credentials that
are not UTF-8 or not base64; and ``application/json`` bodies (with the CSRF header the ceremony
endpoints need) that are nested past any recursion limit, hold lone surrogates, or are not UTF-8.

Assertions: status < 500; a redirect goes to a local path or to a registered redirect URI.

No route is exempt (EXEMPT is empty and a test keeps it honest). FUZZ_EXAMPLES bounds the
examples per route and CSRF variant (default 8, so the file runs in well under a minute; raise it
locally for a deeper search).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from urllib.parse import quote, urlsplit

from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict
from werkzeug.routing import Rule
from werkzeug.test import TestResponse

from idp.models import Account
from tests.conftest import CITIZEN_PASSWORD
from tests.idp import flows
from tests.idp.flows import RegisteredClient
from tests.security.hostile import hostile_basic_header, hostile_json_body, hostile_json_text, server_recursion_limit

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))


def _settings(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


OVERSIZED = 100_000  # bytes; the provider refuses bodies over 64 kB
# Routes deliberately left out of this fuzzing, with the reason. Empty: every POST route is fuzzed.
EXEMPT: dict[str, str] = {}

# Every name the provider's forms and protocol endpoints read, plus some that none does.
FIELDS = ["csrf_token", "email", "password", "current_password", "confirm", "code", "given_name", "family_name",
          "phone_number", "name", "decision", "scope", "choice", "who", "interaction", "mode", "type", "day",
          "month", "year", "token", "access_token", "grant_type", "login_hint", "next", "redirect_uri",
          "post_logout_redirect_uri", "id_token_hint", "client_id", "state", "onward", "services", "agency",
          "details", "end-day", "end-month", "end-year", "claims", "authorization_details", "x", "__proto__"]
# Parameters whose value is itself JSON text (OIDC Core §5.5): the hostile runs fill them all.
JSON_FIELDS = ["claims"]
# Enough of a token, introspection and revocation request that client authentication is reached.
TOKEN_FIELDS = {"grant_type": "authorization_code", "code": "x", "code_verifier": "x" * 43, "token": "x"}
TRICKY = ["", " ", "allow", "deny", "openid", "\x00", "é", "'\"<>&", "../../", "//evil.example/",
          "https://evil.example/cb", "-1", "99999999999999999999", "0", "true", "null", "[]", "{}", "%ff", "\u202e"]
values = st.one_of(st.sampled_from(TRICKY), st.text(max_size=40),
                   st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=20), hostile_json_text)
names = st.one_of(st.sampled_from(FIELDS), st.text(min_size=1, max_size=12))
pairs = st.lists(st.tuples(names, values), max_size=10)
duplicated = st.tuples(st.sampled_from(FIELDS), st.lists(values, min_size=2, max_size=4)).map(
    lambda item: [(item[0], value) for value in item[1]])


def _form_body(rp: RegisteredClient, csrf: str | None) -> st.SearchStrategy[dict[str, object]]:
    """Keyword arguments for ``client.post``: the form in one of its malformed shapes."""
    def form(fields: list[tuple[str, str]]) -> dict[str, object]:
        fields = [(name, value) for name, value in fields if name != "csrf_token" or csrf is None]
        if csrf is not None:
            fields.append(("csrf_token", csrf))
        return {"data": MultiDict(fields)}

    def raw(body: bytes) -> dict[str, object]:
        prefix = f"csrf_token={quote(csrf)}&".encode() if csrf is not None else b""
        return {"data": prefix + body, "content_type": "application/x-www-form-urlencoded"}

    non_utf8 = st.one_of(st.binary(max_size=200),
                         st.sampled_from([b"email=%ff%fe", b"\xff\xfe=\xc3\x28", b"name=\xc3\x28&scope=\xe2\x82",
                                          b"decision=allow&scope=%c0%af", b"%", b"=&=&&", b"a=%zz"]))
    oversized = st.sampled_from(FIELDS).map(lambda name: [(name, "x" * OVERSIZED)])
    every_field_twice = st.tuples(values, values).map(
        lambda pair: [(name, value) for name in FIELDS for value in pair])
    return st.one_of(
        pairs.map(form),                                      # random names and values, fields missing
        st.tuples(pairs, duplicated).map(lambda p: form(p[0] + p[1])),  # duplicated fields
        every_field_twice.map(form),                          # every known field duplicated at once
        oversized.map(form),                                  # oversized value
        non_utf8.map(raw),                                    # raw non-UTF-8 urlencoded body
        st.just({"data": {}}),                                # empty form
    )


def _hostile_form(rp: RegisteredClient, csrf: str | None) -> st.SearchStrategy[dict[str, object]]:
    """A valid authorization request with hostile JSON in every JSON-valued parameter, and
    hostile Basic credentials (reaching /authorize's claims parsing and every client authentication)."""
    def form(item: tuple[str, dict[str, str]]) -> dict[str, object]:
        fields = flows.authorize_params(rp, flows.pkce()) | TOKEN_FIELDS | dict.fromkeys(JSON_FIELDS, item[0])
        return {"data": fields | ({"csrf_token": csrf} if csrf is not None else {}), "headers": item[1]}
    return st.tuples(hostile_json_text, hostile_basic_header).map(form)


def _hostile_json(rp: RegisteredClient, csrf: str | None) -> st.SearchStrategy[dict[str, object]]:
    """A hostile ``application/json`` body, with the CSRF header the script endpoints check."""
    headers = {"X-CSRF-Token": csrf} if csrf is not None else {}
    return hostile_json_body.map(lambda body: {"data": body, "content_type": "application/json", "headers": headers})


def post_rules(app: Flask) -> list[Rule]:
    return sorted((rule for rule in app.url_map.iter_rules()
                   if "POST" in (rule.methods or ()) and rule.endpoint not in EXEMPT), key=lambda rule: rule.rule)


def _is_registered_or_local(location: str, registered: set[str]) -> bool:
    parts = urlsplit(location)
    if not parts.scheme and not parts.netloc:
        return location.startswith("/") and not location.startswith("//")
    if f"{parts.scheme}://{parts.netloc}" == flows.ISSUER:
        return True
    return f"{parts.scheme}://{parts.netloc}{parts.path}" in registered


def _interaction(client: FlaskClient, rp: RegisteredClient) -> str:
    """A live interaction id, from a real authorization request of the signed-in browser."""
    response = client.get("/authorize", query_string=flows.authorize_params(rp, flows.pkce(), prompt="consent"))
    match = re.search(r"/(?:consent|select-account|authorize/who)/([^/?#]+)", response.headers.get("Location", ""))
    return match.group(1) if match else "unknown"


def _path(rule: Rule, client: FlaskClient, rp: RegisteredClient, filler: str) -> str:
    arguments = {}
    for argument in rule.arguments:
        arguments[argument] = _interaction(client, rp) if argument == "interaction_id" else filler
    return rule.build(arguments, append_unknown=False)[1]  # type: ignore[union-attr]


Bodies = Callable[[RegisteredClient, "str | None"], st.SearchStrategy[dict[str, object]]]


def _fuzz(app: Flask, rp: RegisteredClient, citizen: Account, rule: Rule, *, with_csrf: bool,
          bodies: Bodies = _form_body, examples: int = EXAMPLES) -> None:
    registered = set(rp.model.redirect_uris) | set(rp.model.post_logout_redirect_uris or [])

    def sign_in() -> tuple[FlaskClient, str]:
        browser = app.test_client()
        flows.sign_in(browser, citizen.email, CITIZEN_PASSWORD)
        return browser, flows.csrf_token(browser, "/account")

    state: dict[str, tuple[FlaskClient, str]] = {"browser": sign_in()}

    @_settings(examples)
    @given(filler=st.one_of(st.just("x"), st.just("1"), st.text(min_size=1, max_size=20)), data=st.data())
    def run(filler: str, data: st.DataObject) -> None:
        browser, token = state["browser"]
        body = data.draw(bodies(rp, token if with_csrf else data.draw(st.none() | st.just("forged"))))
        path = _path(rule, browser, rp, filler)
        with server_recursion_limit():
            response: TestResponse = browser.post(path, **body)
        context = f"POST {path} {body!r:.300} {body.get('headers')!r:.200}"
        assert response.status_code < 500, f"{context} -> {response.status_code}"
        if len(body.get("data") or b"") and _oversized(body):
            assert 400 <= response.status_code < 500, context
        if 300 <= response.status_code < 400:
            location = response.headers.get("Location", "")
            assert _is_registered_or_local(location, registered), f"{context} -> {location}"
        if rule.endpoint in {"signin.signout", "logout.end_session", "account.delete", "account.end"} or \
                response.status_code == 302:
            state["browser"] = sign_in()  # the example may have ended the session: start the next one fresh

    run()


def _oversized(body: dict[str, object]) -> bool:
    data = body.get("data")
    if isinstance(data, MultiDict):
        return any(len(value) >= OVERSIZED for value in data.values())
    return False


def test_every_post_route_is_fuzzed_or_exempt_with_a_reason(app: Flask) -> None:
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules() if "POST" in (rule.methods or ())}
    assert set(EXEMPT) <= endpoints, "an exemption names a route that no longer exists"
    assert all(reason.strip() for reason in EXEMPT.values())
    assert len(post_rules(app)) == len(endpoints) - len(EXEMPT) > 30


def _each_rule(test: Callable[[Flask, RegisteredClient, Account, Rule], None]) -> Callable[..., None]:
    def every_rule(app: Flask, rp: RegisteredClient, citizen: Account) -> None:
        failures = []
        for rule in post_rules(app):
            try:
                test(app, rp, citizen, rule)
            except Exception as failure:  # noqa: BLE001 -- report every failing route, not just the first
                failures.append(f"{rule.rule}: {failure}")
        assert not failures, "\n".join(failures)
    return every_rule


test_every_post_route_with_a_valid_csrf_token = _each_rule(
    lambda app, rp, citizen, rule: _fuzz(app, rp, citizen, rule, with_csrf=True))
test_every_post_route_without_a_valid_csrf_token = _each_rule(
    lambda app, rp, citizen, rule: _fuzz(app, rp, citizen, rule, with_csrf=False))
# Hostile encodings: twice the examples, since each draws its depth and its kind of damage.
test_every_post_route_with_hostile_json_parameters_and_basic_credentials = _each_rule(
    lambda app, rp, citizen, rule: _fuzz(app, rp, citizen, rule, with_csrf=True, bodies=_hostile_form,
                                         examples=2 * EXAMPLES))
test_every_post_route_with_hostile_json_bodies = _each_rule(
    lambda app, rp, citizen, rule: _fuzz(app, rp, citizen, rule, with_csrf=True, bodies=_hostile_json,
                                         examples=2 * EXAMPLES))
