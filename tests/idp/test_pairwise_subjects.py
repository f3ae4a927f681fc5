"""Pairwise subjects per agency (OIDC Core §8.1): one agency, one sub; two agencies, two subs."""

from __future__ import annotations

from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy.orm import Session

from idp.models import Account, Agency
from tests.conftest import make_client
from tests.idp import flows
from tests.idp.flows import RegisteredClient


def _sub(client: FlaskClient, rp: RegisteredClient) -> str:
    body = flows.tokens_for(client, rp)
    keys = KeySet.import_key_set(client.get("/jwks.json").get_json())
    return str(jwt.decode(body["id_token"], keys).claims["sub"])


def test_clients_of_one_agency_see_the_same_sub(client: FlaskClient, rp: RegisteredClient,
                                                secret_rp: RegisteredClient, signed_in: Account) -> None:
    assert _sub(client, rp) == _sub(client, secret_rp)


def test_different_agencies_see_different_subs(client: FlaskClient, db_session: Session, rp: RegisteredClient,
                                               other_agency: Agency, signed_in: Account) -> None:
    other = make_client(db_session, other_agency, method="client_secret_basic")
    first, second = _sub(client, rp), _sub(client, other)
    assert first != second
    assert signed_in.id not in (first, second)


def test_public_subject_is_the_account_id_when_allowed(client: FlaskClient, db_session: Session, agency: Agency,
                                                       signed_in: Account) -> None:
    public = make_client(db_session, agency, method="client_secret_basic", subject_type="public")
    assert _sub(client, public) == signed_in.id
