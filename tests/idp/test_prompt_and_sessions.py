"""Single sign-on and the request parameters that govern it: prompt, max_age, id_token_hint,
login_hint (OIDC Core §3.1.2.1)."""

from __future__ import annotations

import datetime as dt

from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from idp.accounts import create_account
from idp.models import Account, Agency, LoginSession
from tests.conftest import CITIZEN_PASSWORD, make_client
from tests.idp import flows
from tests.idp.flows import RegisteredClient


def _start(client: FlaskClient, rp: RegisteredClient, **extra: str) -> str:
    response = client.get("/authorize", query_string=flows.authorize_params(rp, flows.pkce(), **extra))
    assert response.status_code == 302
    return response.headers["Location"]


def test_unauthenticated_request_is_sent_to_sign_in(client: FlaskClient, rp: RegisteredClient) -> None:
    assert _start(client, rp).startswith("/signin?interaction=")


def test_login_hint_prefills_the_email(client: FlaskClient, rp: RegisteredClient) -> None:
    location = _start(client, rp, login_hint="someone@example.com")
    assert 'value="someone@example.com"' in client.get(location).get_data(as_text=True)


def test_sign_in_then_consent_then_code(client: FlaskClient, rp: RegisteredClient, citizen: Account) -> None:
    location = _start(client, rp)
    interaction = flows.query(location)["interaction"]
    response = flows.sign_in(client, citizen.email, CITIZEN_PASSWORD, interaction)
    final = flows.follow_to_client(client, response)
    assert "code" in flows.query(final.headers["Location"])


def test_wrong_password_shows_the_form_again_without_saying_which_part_was_wrong(
        client: FlaskClient, citizen: Account) -> None:
    token = flows.csrf_token(client)
    wrong = client.post("/signin", data={"email": citizen.email, "password": "wrong password!", "csrf_token": token})
    unknown = client.post("/signin", data={"email": "nobody@example.com", "password": "x" * 12, "csrf_token": token})
    assert wrong.status_code == unknown.status_code == 400
    assert "Enter a correct email address and password" in wrong.get_data(as_text=True)
    assert "Enter a correct email address and password" in unknown.get_data(as_text=True)


def test_sign_in_form_without_csrf_token_is_refused(client: FlaskClient, citizen: Account) -> None:
    response = client.post("/signin", data={"email": citizen.email, "password": CITIZEN_PASSWORD})
    assert response.status_code == 400
    assert "idp_session" not in response.headers.get("Set-Cookie", "")


def test_single_sign_on_across_agencies_without_a_password(client: FlaskClient, db_session: Session,
                                                            rp: RegisteredClient, other_agency: Agency,
                                                            signed_in: Account) -> None:
    other = make_client(db_session, other_agency, method="client_secret_basic", client_name="Other")
    first = flows.get_code(client, rp, flows.pkce())
    second = flows.get_code(client, other, flows.pkce())
    assert first["code"] and second["code"]


def test_prompt_login_asks_for_the_password_again(client: FlaskClient, rp: RegisteredClient,
                                                  signed_in: Account) -> None:
    flows.get_code(client, rp, flows.pkce())  # consent given
    assert _start(client, rp, prompt="login").startswith("/signin?interaction=")


def test_prompt_login_then_sign_in_issues_a_code_without_looping(client: FlaskClient, rp: RegisteredClient,
                                                                 signed_in: Account) -> None:
    flows.get_code(client, rp, flows.pkce())
    location = _start(client, rp, prompt="login")
    response = flows.sign_in(client, signed_in.email, CITIZEN_PASSWORD, flows.query(location)["interaction"])
    final = flows.follow_to_client(client, response)
    assert "code" in flows.query(final.headers["Location"])


def test_max_age_exceeded_asks_for_the_password_again(client: FlaskClient, db_session: Session,
                                                      rp: RegisteredClient, signed_in: Account) -> None:
    flows.get_code(client, rp, flows.pkce())
    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    db_session.execute(update(LoginSession).values(auth_time=earlier))
    db_session.commit()
    assert _start(client, rp, max_age="60").startswith("/signin?interaction=")
    assert flows.query(_start(client, rp, max_age="3600")).get("code")


def test_prompt_none_with_session_and_consent_issues_a_code(client: FlaskClient, rp: RegisteredClient,
                                                            signed_in: Account) -> None:
    flows.get_code(client, rp, flows.pkce())
    assert flows.query(_start(client, rp, prompt="none")).get("code")


def test_id_token_hint_for_someone_else_with_prompt_none_is_login_required(
        client: FlaskClient, db_session: Session, rp: RegisteredClient, signed_in: Account) -> None:
    body = flows.tokens_for(client, rp)
    other = create_account(db_session, email="someone-else@example.com", given_name="B", family_name="C",
                           password=CITIZEN_PASSWORD)
    db_session.commit()
    client.post("/signout", data={"csrf_token": flows.csrf_token(client, "/signout")})
    flows.sign_in(client, other.email, CITIZEN_PASSWORD)
    result = flows.query(_start(client, rp, prompt="none", id_token_hint=body["id_token"]))
    assert result["error"] == "login_required"


def test_id_token_hint_of_the_signed_in_citizen_is_accepted(client: FlaskClient, rp: RegisteredClient,
                                                            signed_in: Account) -> None:
    body = flows.tokens_for(client, rp)
    assert flows.query(_start(client, rp, prompt="none", id_token_hint=body["id_token"])).get("code")


def test_prompt_select_account_shows_the_account_chooser(client: FlaskClient, rp: RegisteredClient,
                                                         signed_in: Account) -> None:
    flows.get_code(client, rp, flows.pkce())
    location = _start(client, rp, prompt="select_account")
    assert location.startswith("/select-account/")
    page = client.get(location).get_data(as_text=True)
    assert signed_in.email in page
    token = flows.CSRF.search(page).group(1)  # type: ignore[union-attr]
    response = flows.follow_to_client(client, client.post(location, data={"choice": "continue", "csrf_token": token}))
    assert flows.query(response.headers["Location"]).get("code")


def test_sign_in_rotates_the_session_cookie(client: FlaskClient, citizen: Account) -> None:
    first = flows.sign_in(client, citizen.email, CITIZEN_PASSWORD).headers["Set-Cookie"]
    second = flows.sign_in(client, citizen.email, CITIZEN_PASSWORD).headers["Set-Cookie"]
    assert first != second
    assert "HttpOnly" in first and "SameSite=Lax" in first


def test_idle_session_is_no_longer_single_sign_on(client: FlaskClient, db_session: Session,
                                                  rp: RegisteredClient, signed_in: Account) -> None:
    flows.get_code(client, rp, flows.pkce())
    idle = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    db_session.execute(update(LoginSession).values(last_active_at=idle))
    db_session.commit()
    assert flows.query(_start(client, rp, prompt="none"))["error"] == "login_required"
