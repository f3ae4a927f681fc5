"""JSON logs with a request id, and no password, token, secret, code or email in them
(security.md "Secrets and data"), checked on the in-process app and on real gunicorn nodes."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest
import requests
from flask.testing import FlaskClient

from consent import delegations as lifecycle
from consent.delegations import Terms
from idp.consent_ledger import ledger_for
from idp.dependents import create_dependent, offer_own_account
from idp.logs import JsonFormatter, redact
from idp.models import Account
from tests.conftest import CITIZEN_PASSWORD
from tests.idp import flows
from tests.production import nodes
from tests.production.conftest import Cluster, log_paths


def test_every_request_is_logged_as_json_with_its_request_id(client: FlaskClient,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    response = client.get("/healthz?code=abc", headers={"X-Request-Id": "lb-1234567890"})
    assert response.headers["X-Request-Id"] == "lb-1234567890"
    line = json.loads(JsonFormatter().format(next(r for r in caplog.records if r.name == "idp.access")))
    assert line["request_id"] == "lb-1234567890"
    assert line | {"time": None, "duration_ms": None} == {
        "time": None, "level": "INFO", "logger": "idp.access", "message": "request", "request_id": "lb-1234567890",
        "method": "GET", "path": "/healthz", "endpoint": "health.healthz", "status": 200, "duration_ms": None,
    }


def test_an_unusable_request_id_is_replaced(client: FlaskClient) -> None:
    response = client.get("/healthz", headers={"X-Request-Id": 'x", "level":"forged'})
    assert response.headers["X-Request-Id"] != 'x", "level":"forged'
    assert len(response.headers["X-Request-Id"]) == 16


@pytest.mark.parametrize(("raw", "safe"), [
    ("GET /authorize?client_id=c&code=abc123&state=xyz HTTP/1.1",
     "GET /authorize?client_id=c&code=[redacted]&state=[redacted] HTTP/1.1"),
    ("token eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln seen", "token [jwt] seen"),
    ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer [redacted]"),
    ("for ada.lovelace+x@example.gov.uk", "for [email]"),
    ("refresh_token=r1&password=hunter2", "refresh_token=[redacted]&password=[redacted]"),
    ("Issue token {'refresh_token': 'r1', \"code\": \"c1\"}",
     "Issue token {'refresh_token': '[redacted]', \"code\": \"[redacted]\"}"),
])
def test_the_safety_net_redacts_what_should_never_have_been_logged(raw: str, safe: str) -> None:
    assert redact(raw) == safe


def assert_absent(text: str, secrets: dict[str, str]) -> None:
    found = [name for name, value in secrets.items() if value and value in text]
    assert not found, f"found in the logs: {found}"


def test_a_whole_flow_in_process_logs_no_secret_even_at_debug(client: FlaskClient, citizen: Account,
                                                              rp: flows.RegisteredClient,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    flows.sign_in(client, citizen.email, CITIZEN_PASSWORD)
    tokens = flows.tokens_for(client, rp, scope="openid email offline_access")
    refreshed = flows.refresh(client, rp, tokens["refresh_token"]).get_json()
    client.get("/userinfo", headers={"Authorization": f"Bearer {refreshed['access_token']}"})
    client.post("/signin", data={"email": citizen.email, "password": "wrong " + CITIZEN_PASSWORD,
                                 "csrf_token": flows.csrf_token(client)})
    output = "\n".join(JsonFormatter().format(record) for record in caplog.records)
    assert '"logger":"idp.access"' in output
    assert_absent(output, {
        "password": CITIZEN_PASSWORD, "email": citizen.email, "access token": tokens["access_token"],
        "refresh token": tokens["refresh_token"], "id token": tokens["id_token"],
        "rotated refresh token": refreshed["refresh_token"], "nonce": tokens["nonce"],
    })


def test_a_whole_flow_across_real_nodes_logs_no_secret(cluster: Cluster, node_citizen: Account) -> None:
    browser = nodes.browser()
    url, params = cluster.rp.authorize_url(cluster.a, login_hint=node_citizen.email)
    visit = nodes.browse(browser, url, email=node_citizen.email)
    code = nodes.callback(visit, cluster.rp, params)["code"]
    exchange = cluster.rp.code_request(code, params["code_verifier"])
    tokens = requests.post(f"{cluster.b.url}/token", data=exchange, timeout=nodes.TIMEOUT).json()
    rotation = cluster.rp.refresh_request(tokens["refresh_token"])
    refreshed = requests.post(f"{cluster.a.url}/token", data=rotation, timeout=nodes.TIMEOUT).json()
    bearer = {"Authorization": f"Bearer {refreshed['access_token']}"}
    assert requests.get(f"{cluster.b.url}/userinfo", headers=bearer, timeout=nodes.TIMEOUT).status_code == 200
    requests.get(f"{cluster.a.url}/authorize", params=params | {"id_token_hint": tokens["id_token"]},
                 allow_redirects=False, timeout=nodes.TIMEOUT)  # a query full of secrets, for the access logs
    cookies = {cookie.name: cookie.value or "" for cookie in browser.cookies}

    text = "\n".join(path.read_text(errors="replace") for path in log_paths(cluster))
    assert '"logger":"idp.access"' in text and '"logger":"gunicorn.access"' in text
    assert_absent(text, {
        "password": nodes.PASSWORD, "email": node_citizen.email, "code": code, "state": params["state"],
        "nonce": params["nonce"], "code verifier": params["code_verifier"],
        "client assertion": exchange["client_assertion"], "access token": tokens["access_token"],
        "refresh token": tokens["refresh_token"], "id token": tokens["id_token"],
        "rotated refresh token": refreshed["refresh_token"], "session cookie": cookies["__Host-idp_session"],
        "flow cookie": cookies["__Host-idp_flow"],  # https issuer: __Host- names
    })


def test_emailed_link_secrets_stay_out_of_both_access_logs_on_real_nodes(cluster: Cluster,
                                                                         node_citizen: Account) -> None:
    """Trust #7: the invitation and handover links, opened on a node, are logged as
    ``…/[redacted]`` by the application's line and by gunicorn's own access log."""
    settings = cluster.services.settings
    with cluster.services.sessions.begin() as session:
        ledger = ledger_for(settings, cluster.services.keyring)
        _delegation, token = lifecycle.invite_delegate(session, node_citizen.id, "carer-node@example.com",
                                                       Terms(type="carer"), ledger=ledger)
        today = dt.date.today()
        parent = session.get(Account, node_citizen.id)
        assert parent is not None
        child = create_dependent(session, parent, given_name="Kit", family_name="Node", parent_age=16, ledger=ledger,
                                 birthdate=today.replace(year=today.year - 14) - dt.timedelta(days=30))
        _child, link = offer_own_account(session, child, parent, f"kit-{token[:8].lower()}@example.com")
    assert link is not None
    secrets = {"invitation token": token, "handover secret": link.partition(".")[2]}
    for path in (f"/delegation/invitation/{token}", f"/own-account/{link}"):
        for node in cluster.nodes:
            assert requests.get(f"{node.url}{path}", timeout=nodes.TIMEOUT).status_code == 200
            requests.put(f"{node.url}{path}?code=1", timeout=nodes.TIMEOUT)  # 405
    text = "\n".join(path.read_text(errors="replace") for path in log_paths(cluster))
    assert_absent(text, secrets)
    for logger in ("idp.access", "gunicorn.access"):
        lines = [line for line in text.splitlines() if f'"logger":"{logger}"' in line]
        assert any("/delegation/invitation/[redacted]" in line for line in lines), logger
        assert any("/own-account/[redacted]" in line for line in lines), logger
