"""``/metrics`` in Prometheus text format: requests and latency by endpoint, tokens issued,
failed sign-ins, and the database-backed gauges."""

from __future__ import annotations

from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from idp.models import Account
from tests.conftest import CITIZEN_PASSWORD
from tests.idp import flows


def scrape(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return float(samples.get((name, tuple(sorted(labels.items()))), 0.0))


def test_requests_are_counted_and_timed_by_endpoint_not_by_path(client: FlaskClient) -> None:
    before = scrape(client)
    client.get("/.well-known/openid-configuration")
    client.get("/no/such/page/with-a-secret-in-the-path")
    after = scrape(client)
    endpoint = {"endpoint": "discovery.configuration"}
    assert value(after, "idp_http_requests_total", method="GET", status="200", **endpoint) \
        == value(before, "idp_http_requests_total", method="GET", status="200", **endpoint) + 1
    assert value(after, "idp_http_request_duration_seconds_count", **endpoint) \
        == value(before, "idp_http_request_duration_seconds_count", **endpoint) + 1
    assert value(after, "idp_http_requests_total", endpoint="unmatched", method="GET", status="404") >= 1
    assert not any("secret" in str(labels) for _name, labels in after)


def test_tokens_issued_are_counted_by_grant_type(client: FlaskClient, signed_in: Account,
                                                 rp: flows.RegisteredClient) -> None:
    before = scrape(client)
    tokens = flows.tokens_for(client, rp, scope="openid offline_access")
    assert flows.refresh(client, rp, tokens["refresh_token"]).status_code == 200
    after = scrape(client)
    for grant in ("authorization_code", "refresh_token"):
        assert value(after, "idp_tokens_issued_total", grant_type=grant) \
            == value(before, "idp_tokens_issued_total", grant_type=grant) + 1


def test_failed_sign_ins_are_counted(client: FlaskClient, citizen: Account) -> None:
    before = value(scrape(client), "idp_signin_failures_total")
    response = client.post("/signin", data={"email": citizen.email, "password": CITIZEN_PASSWORD + "!",
                                            "csrf_token": flows.csrf_token(client)})
    assert response.status_code >= 400
    assert value(scrape(client), "idp_signin_failures_total") == before + 1


def test_database_gauges_are_read_when_their_tables_exist(client: FlaskClient) -> None:
    samples = scrape(client)
    assert value(samples, "idp_database_up") == 1
    assert ("idp_outbox_backlog", ()) in samples
