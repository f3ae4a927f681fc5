"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0)."""

from __future__ import annotations

from flask.testing import FlaskClient

from idp.models import Account
from tests.idp import flows
from tests.idp.flows import RegisteredClient

SIGNED_OUT = "https://rp.example/signed-out"


def _prompt_none_error(client: FlaskClient, rp: RegisteredClient) -> str | None:
    params = flows.authorize_params(rp, flows.pkce(), prompt="none")
    return flows.query(client.get("/authorize", query_string=params).headers["Location"]).get("error")


def test_logout_with_id_token_hint_redirects_with_state_and_ends_the_session(
        client: FlaskClient, rp: RegisteredClient, signed_in: Account) -> None:
    id_token = flows.tokens_for(client, rp)["id_token"]
    response = client.get("/logout", query_string={"id_token_hint": id_token, "post_logout_redirect_uri": SIGNED_OUT,
                                                   "state": "bye", "client_id": rp.client_id})
    assert response.status_code == 302
    assert response.headers["Location"] == f"{SIGNED_OUT}?state=bye"
    assert _prompt_none_error(client, rp) == "login_required"


def test_unregistered_post_logout_uri_is_never_redirected_to(client: FlaskClient, rp: RegisteredClient,
                                                             signed_in: Account) -> None:
    id_token = flows.tokens_for(client, rp)["id_token"]
    response = client.get("/logout", query_string={"id_token_hint": id_token,
                                                   "post_logout_redirect_uri": "https://evil.example/"})
    assert response.status_code == 200
    assert "You have signed out" in response.get_data(as_text=True)


def test_logout_without_a_hint_asks_for_confirmation_first(client: FlaskClient, rp: RegisteredClient,
                                                           signed_in: Account) -> None:
    flows.get_code(client, rp, flows.pkce())
    page = client.get("/logout")
    assert page.status_code == 200 and "Do you want to sign out?" in page.get_data(as_text=True)
    assert _prompt_none_error(client, rp) is None  # still signed in
    token = flows.CSRF.search(page.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    done = client.post("/logout", data={"decision": "signout", "csrf_token": token})
    assert "You have signed out" in done.get_data(as_text=True)
    assert _prompt_none_error(client, rp) == "login_required"


def test_confirmation_without_csrf_token_is_refused(client: FlaskClient, rp: RegisteredClient,
                                                    signed_in: Account) -> None:
    flows.get_code(client, rp, flows.pkce())
    response = client.post("/logout", data={"decision": "signout"})
    assert response.status_code == 400
    assert _prompt_none_error(client, rp) is None


def test_forged_id_token_hint_is_an_error_page(client: FlaskClient, signed_in: Account) -> None:
    response = client.get("/logout", query_string={"id_token_hint": "a.b.c", "post_logout_redirect_uri": SIGNED_OUT})
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_hint_for_another_client_id_is_an_error(client: FlaskClient, rp: RegisteredClient,
                                                secret_rp: RegisteredClient, signed_in: Account) -> None:
    id_token = flows.tokens_for(client, rp)["id_token"]
    response = client.get("/logout", query_string={"id_token_hint": id_token, "client_id": secret_rp.client_id})
    assert response.status_code == 400


def test_signing_out_from_the_identity_service(client: FlaskClient, rp: RegisteredClient,
                                               signed_in: Account) -> None:
    flows.get_code(client, rp, flows.pkce())
    client.post("/signout", data={"csrf_token": flows.csrf_token(client, "/signout")})
    assert _prompt_none_error(client, rp) == "login_required"
