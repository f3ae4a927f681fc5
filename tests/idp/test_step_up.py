"""Assurance (protocol.md "Assurance"): acr_values, default_acr_values and essential acr claim
requests step a one-factor session up with a passkey; ID tokens state the truth."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.assurance import AcrRequest, requested_acr, satisfies
from idp.models import Account, Agency, OutboxMessage
from idp.registry import ClientMetadata, ClientMetadataError, create_agency, create_client
from tests.conftest import CITIZEN_PASSWORD, DEVELOPMENT_DESTINATIONS, make_client
from tests.idp import flows, passkey_flows
from tests.idp.authenticator import SoftAuthenticator
from tests.idp.flows import RegisteredClient


@pytest.fixture
def authenticator() -> SoftAuthenticator:
    return SoftAuthenticator()


@pytest.fixture
def one_factor(client: FlaskClient, signed_in: Account, authenticator: SoftAuthenticator) -> Account:
    """A citizen with a passkey, signed in with the password only (session ``Cl``)."""
    assert passkey_flows.register(client, authenticator).status_code == 200
    return signed_in


def id_token_claims(client: FlaskClient, rp: RegisteredClient, code: str, verifier: str) -> dict[str, Any]:
    response = flows.exchange_code(client, rp, code, verifier)
    assert response.status_code == 200, response.get_json()
    keys = KeySet.import_key_set(client.get("/jwks.json").get_json())
    return dict(jwt.decode(response.get_json()["id_token"], keys).claims)


def start(client: FlaskClient, rp: RegisteredClient, challenge: flows.Pkce, **extra: str) -> str:
    response = client.get("/authorize", query_string=flows.authorize_params(rp, challenge, **extra))
    assert response.status_code == 302
    return response.headers["Location"]


def finish(client: FlaskClient, rp: RegisteredClient, redirect_to: str) -> dict[str, str]:
    final = flows.follow_to_client(client, client.get(redirect_to))
    assert final.headers["Location"].startswith(rp.redirect_uri), final.headers["Location"]
    return flows.query(final.headers["Location"])


def test_acr_values_cl_cm_sends_a_one_factor_session_to_the_passkey_page_and_the_id_token_says_cl_cm(
        client: FlaskClient, rp: RegisteredClient, one_factor: Account, authenticator: SoftAuthenticator) -> None:
    challenge = flows.pkce()
    before = id_token_claims(client, rp, flows.get_code(client, rp, challenge)["code"], challenge.verifier)
    assert (before["acr"], before["amr"]) == ("Cl", ["pwd"])
    challenge = flows.pkce()
    location = start(client, rp, challenge, acr_values="Cl.Cm")
    assert location.startswith("/signin/passkey?interaction=")
    page = client.get(location).get_data(as_text=True)
    assert "The service you are using asks you" in page and 'id="passkey-verify"' in page
    response = passkey_flows.confirm(client, authenticator, interaction=flows.query(location)["interaction"])
    assert response.status_code == 200
    claims = id_token_claims(client, rp, finish(client, rp, response.get_json()["redirect"])["code"],
                             challenge.verifier)
    assert (claims["acr"], claims["amr"]) == ("Cl.Cm", ["pwd", "hwk", "mfa"])
    assert claims["sid"] == before["sid"]  # the same single sign-on session, under a new cookie
    assert claims["auth_time"] >= before["auth_time"]


def test_a_clients_default_acr_values_step_the_citizen_up(
        client: FlaskClient, db_session: Session, agency: Agency, rp_key: ECKey, one_factor: Account,
        authenticator: SoftAuthenticator) -> None:
    demanding = make_client(db_session, agency, key=rp_key, default_acr_values=["Cl.Cm"])
    challenge = flows.pkce()
    location = start(client, demanding, challenge)
    assert location.startswith("/signin/passkey?interaction=")
    response = passkey_flows.confirm(client, authenticator, interaction=flows.query(location)["interaction"])
    code = finish(client, demanding, response.get_json()["redirect"])["code"]
    assert id_token_claims(client, demanding, code, challenge.verifier)["acr"] == "Cl.Cm"


def test_acr_values_override_the_clients_default_acr_values(
        client: FlaskClient, db_session: Session, agency: Agency, rp_key: ECKey, one_factor: Account) -> None:
    demanding = make_client(db_session, agency, key=rp_key, default_acr_values=["Cl.Cm"])
    code = flows.get_code(client, demanding, flows.pkce(), acr_values="Cl")
    assert code["code"]


def test_prompt_none_below_the_requested_level_answers_login_required(
        client: FlaskClient, rp: RegisteredClient, one_factor: Account) -> None:
    flows.get_code(client, rp, flows.pkce())  # consent given, so only the level is missing
    location = start(client, rp, flows.pkce(), acr_values="Cl.Cm", prompt="none")
    assert location.startswith(rp.redirect_uri)
    assert flows.query(location)["error"] == "login_required"


def test_acr_values_naming_only_unknown_levels_are_ignored(
        client: FlaskClient, rp: RegisteredClient, one_factor: Account) -> None:
    challenge = flows.pkce()
    code = flows.get_code(client, rp, challenge, acr_values="urn:example:loa:4 gold")["code"]
    assert id_token_claims(client, rp, code, challenge.verifier)["acr"] == "Cl"


def test_a_citizen_without_a_passkey_gets_the_sessions_own_level_for_a_voluntary_request(
        client: FlaskClient, rp: RegisteredClient, signed_in: Account) -> None:
    challenge = flows.pkce()
    code = flows.get_code(client, rp, challenge, acr_values="Cl.Cm")["code"]
    assert id_token_claims(client, rp, code, challenge.verifier)["acr"] == "Cl"


def test_declining_the_step_up_continues_at_one_factor_for_a_voluntary_request(
        client: FlaskClient, rp: RegisteredClient, one_factor: Account) -> None:
    challenge = flows.pkce()
    location = start(client, rp, challenge, acr_values="Cl.Cm")
    interaction = flows.query(location)["interaction"]
    skipped = client.post("/signin/passkey", data={"decision": "skip", "interaction": interaction,
                                                    "csrf_token": flows.csrf_token(client)})
    assert skipped.headers["Location"] == f"/authorize/resume/{interaction}"
    claims = id_token_claims(client, rp, finish(client, rp, skipped.headers["Location"])["code"], challenge.verifier)
    assert claims["acr"] == "Cl"


def test_an_essential_acr_claim_that_is_not_met_fails_with_unmet_authentication_requirements(
        client: FlaskClient, rp: RegisteredClient, one_factor: Account) -> None:
    claims = json.dumps({"id_token": {"acr": {"essential": True, "values": ["Cl.Cm"]}}})
    location = start(client, rp, flows.pkce(), claims=claims)
    interaction = flows.query(location)["interaction"]
    skipped = client.post("/signin/passkey", data={"decision": "skip", "interaction": interaction,
                                                    "csrf_token": flows.csrf_token(client)})
    final = flows.follow_to_client(client, skipped)
    assert flows.query(final.headers["Location"])["error"] == "unmet_authentication_requirements"


def test_an_essential_acr_claim_without_a_passkey_fails_at_once(
        client: FlaskClient, rp: RegisteredClient, signed_in: Account) -> None:
    claims = json.dumps({"id_token": {"acr": {"essential": True, "value": "Cl.Cm"}}})
    location = start(client, rp, flows.pkce(), claims=claims)
    assert flows.query(location)["error"] == "unmet_authentication_requirements"


def test_usernameless_sign_in_within_an_authorization_request_gives_an_id_token_with_cl_cm(
        client: FlaskClient, rp: RegisteredClient, one_factor: Account, authenticator: SoftAuthenticator) -> None:
    client.post("/signout", data={"csrf_token": flows.csrf_token(client)})
    challenge = flows.pkce()
    location = start(client, rp, challenge, acr_values="Cl.Cm")
    interaction = flows.query(location)["interaction"]
    assert location.startswith("/signin?interaction=")
    assert f'data-interaction="{interaction}"' in client.get(location).get_data(as_text=True)
    response = passkey_flows.sign_in(client, authenticator, interaction=interaction)
    assert response.get_json() == {"redirect": f"/authorize/resume/{interaction}"}
    claims = id_token_claims(client, rp, finish(client, rp, response.get_json()["redirect"])["code"],
                             challenge.verifier)
    assert (claims["acr"], claims["amr"]) == ("Cl.Cm", ["hwk", "mfa"])


def test_password_then_offered_passkey_within_a_request_gives_cl_cm_without_a_second_prompt(
        client: FlaskClient, rp: RegisteredClient, one_factor: Account, authenticator: SoftAuthenticator) -> None:
    client.post("/signout", data={"csrf_token": flows.csrf_token(client)})
    challenge = flows.pkce()
    interaction = flows.query(start(client, rp, challenge, prompt="login"))["interaction"]
    signed = flows.sign_in(client, one_factor.email, CITIZEN_PASSWORD, interaction)
    assert signed.headers["Location"] == f"/signin/passkey?interaction={interaction}"
    response = passkey_flows.confirm(client, authenticator, interaction=interaction)
    claims = id_token_claims(client, rp, finish(client, rp, response.get_json()["redirect"])["code"],
                             challenge.verifier)
    assert (claims["acr"], claims["amr"]) == ("Cl.Cm", ["pwd", "hwk", "mfa"])


def test_a_two_factor_session_satisfies_later_requests_without_asking_again(
        client: FlaskClient, rp: RegisteredClient, one_factor: Account, authenticator: SoftAuthenticator) -> None:
    passkey_flows.confirm(client, authenticator)
    challenge = flows.pkce()
    code = flows.get_code(client, rp, challenge, acr_values="Cl.Cm")["code"]
    assert id_token_claims(client, rp, code, challenge.verifier)["acr"] == "Cl.Cm"
    challenge = flows.pkce()
    code = flows.get_code(client, rp, challenge, acr_values="Cl")["code"]  # a higher level satisfies a lower
    assert id_token_claims(client, rp, code, challenge.verifier)["acr"] == "Cl.Cm"


def test_step_up_ends_the_one_factor_session_cookie(
        client: FlaskClient, rp: RegisteredClient, one_factor: Account, authenticator: SoftAuthenticator) -> None:
    old_cookie = client.get_cookie("idp_session").value  # type: ignore[union-attr]
    passkey_flows.confirm(client, authenticator)
    assert client.get_cookie("idp_session").value != old_cookie  # type: ignore[union-attr]
    client.set_cookie("idp_session", old_cookie)
    assert start(client, rp, flows.pkce()).startswith("/signin?interaction=")


def test_stepping_up_logs_no_service_out_and_a_later_sign_out_reaches_them_all(
        client: FlaskClient, db_session: Session, agency: Agency, rp_key: ECKey, rp: RegisteredClient,
        one_factor: Account, authenticator: SoftAuthenticator) -> None:
    first = make_client(db_session, agency, key=rp_key, backchannel_logout_uri="https://first.example/bcl")
    flows.tokens_for(client, first)  # the one-factor session now has a participant to log out
    challenge = flows.pkce()
    location = start(client, rp, challenge, acr_values="Cl.Cm")
    response = passkey_flows.confirm(client, authenticator, interaction=flows.query(location)["interaction"])
    finish(client, rp, response.get_json()["redirect"])
    assert logout_tokens(db_session) == []
    client.post("/signout", data={"csrf_token": flows.csrf_token(client)})
    assert logout_tokens(db_session) == ["https://first.example/bcl"]


def logout_tokens(db_session: Session) -> list[str]:
    db_session.expire_all()
    query = select(OutboxMessage.recipient).where(OutboxMessage.kind == "backchannel_logout")
    return list(db_session.scalars(query))


# --- discovery and client metadata ---------------------------------------------------------

def test_discovery_advertises_both_levels(client: FlaskClient) -> None:
    meta = client.get("/.well-known/openid-configuration").get_json()
    assert meta["acr_values_supported"] == ["Cl", "Cl.Cm"]


def test_client_metadata_keeps_default_acr_values_and_refuses_unknown_ones(
        db_session: Session, agency: Agency) -> None:
    metadata = ClientMetadata(client_name="Benefits", redirect_uris=["https://rp.example/cb"],
                              token_endpoint_auth_method="client_secret_basic", default_acr_values=["Cl.Cm"])
    created, _secret = create_client(db_session, agency, metadata, destinations=DEVELOPMENT_DESTINATIONS)
    assert created.default_acr_values == ["Cl.Cm"]
    with pytest.raises(ClientMetadataError):
        create_client(db_session, agency, ClientMetadata(
            client_name="Typo", redirect_uris=["https://rp.example/cb"], token_endpoint_auth_method="none",
            default_acr_values=["cl.cm"]), destinations=DEVELOPMENT_DESTINATIONS)


def test_dynamic_registration_echoes_default_acr_values(client: FlaskClient, db_session: Session) -> None:
    _agency, token = create_agency(db_session, "Registering Agency")
    db_session.commit()
    body = {"client_name": "Benefits", "redirect_uris": ["https://rp.example/cb"],
            "token_endpoint_auth_method": "client_secret_basic", "default_acr_values": ["Cl.Cm"]}
    response = client.post("/register", json=body, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["default_acr_values"] == ["Cl.Cm"]
    body["default_acr_values"] = "Cl.Cm"
    refused = client.post("/register", json=body, headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_client_metadata"


# --- what a request asks for ---------------------------------------------------------------

@pytest.mark.parametrize(("acr_values", "claims", "defaults", "expected"), [
    (None, None, [], None),
    ("Cl.Cm", None, [], AcrRequest("Cl.Cm", essential=False)),
    ("Cl.Cm Cl", None, [], AcrRequest("Cl", essential=False)),  # any listed value will do
    ("gold Cl.Cm", None, [], AcrRequest("Cl.Cm", essential=False)),
    ("gold", None, [], None),  # unknown values are ignored
    ("gold", None, ["Cl.Cm"], AcrRequest("Cl.Cm", essential=False)),  # as if absent: the defaults apply
    (None, None, ["Cl.Cm"], AcrRequest("Cl.Cm", essential=False)),
    ("Cl", {"id_token": {"acr": {"essential": True, "values": ["Cl.Cm"]}}}, [], AcrRequest("Cl.Cm", essential=True)),
    (None, {"id_token": {"acr": {"essential": True, "value": "gold"}}}, [], AcrRequest(None, essential=True)),
    (None, {"id_token": {"acr": None}}, ["Cl"], AcrRequest("Cl", essential=False)),
    (None, {"id_token": {"acr": {"essential": True}}}, ["Cl"], AcrRequest("Cl", essential=False)),
    ("Cl.Cm", {"id_token": {"acr": {"values": ["gold"]}}}, [], AcrRequest("Cl.Cm", essential=False)),
])
def test_what_a_request_asks_for(acr_values: str | None, claims: dict[str, Any] | None, defaults: list[str],
                                 expected: AcrRequest | None) -> None:
    assert requested_acr(acr_values, claims, defaults) == expected


def test_a_higher_level_satisfies_a_lower_one_and_nothing_satisfies_an_unknown_one() -> None:
    assert satisfies("Cl.Cm", AcrRequest("Cl", essential=False))
    assert not satisfies("Cl", AcrRequest("Cl.Cm", essential=False))
    assert not satisfies("Cl.Cm", AcrRequest(None, essential=True))
