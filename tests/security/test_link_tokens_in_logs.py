"""One-time link secrets in URL paths (security.md "Secrets and data"): the delegation invitation
(``/delegation/invitation/<token>``) and the child handover (``/own-account/<id>.<token>``) links
never appear in an access log line, whatever the method or answer; the server keeps only their
digests."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from consent import delegations as lifecycle
from consent.delegations import Terms
from consent.ledger import Ledger
from idp.dependents import create_dependent, offer_own_account
from idp.gunicorn_conf import JsonLogger
from idp.logs import LOGGED_PATH, JsonFormatter, logged_path
from tests.conftest import CITIZEN_PASSWORD
from tests.idp import flows
from tests.idp.delegation_flows import person
from tests.security.test_secrets_at_rest import stored_text


def _links(db_session: Session, ledger: Ledger) -> dict[str, str]:
    """A live invitation link path and a live handover link path, and their secret parts."""
    mary, pam = person(db_session, "Mary"), person(db_session, "Pam")
    _delegation, token = lifecycle.invite_delegate(db_session, mary.id, "carer-logs@example.com",
                                                   Terms(type="carer"), ledger=ledger)
    today = dt.date.today()
    child = create_dependent(db_session, pam, given_name="Kit", family_name="Smith", parent_age=16, ledger=ledger,
                             birthdate=today.replace(year=today.year - 14) - dt.timedelta(days=30))
    _child, link = offer_own_account(db_session, child, pam, "kit-logs@example.com")
    db_session.commit()
    assert link is not None
    return {f"/delegation/invitation/{token}": token, f"/own-account/{link}": link.partition(".")[2],
            "pam": pam.email}


def test_link_secrets_never_reach_the_access_log(app: Flask, client: FlaskClient, db_session: Session,
                                                 ledger: Ledger, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="idp.access")
    links = _links(db_session, ledger)
    paths = [path for path in links if path.startswith("/")]
    signed_in = app.test_client()
    flows.sign_in(signed_in, links["pam"], CITIZEN_PASSWORD)
    for path in paths:
        for browser in (client, signed_in):
            browser.get(path)
            browser.post(path, data={"decision": "decline", "csrf_token": flows.csrf_token(browser)})
        client.put(path)  # 405: the route is found by its path alone
        client.get(path + "x")  # a wrong secret: 4xx, still a secret-shaped path
        for stray in (path + "/", path + "/more", path.upper(), "/" + path):  # no route matches these
            client.get(stray)
    lines = [JsonFormatter().format(record) for record in caplog.records if record.name == "idp.access"]
    assert len(lines) >= 12 * len(paths)
    text = "\n".join(lines)
    assert not [path for path in paths if links[path] in text], text
    assert '"path":"/delegation/invitation/[redacted]"' in text and '"path":"/own-account/[redacted]"' in text
    assert '"status":405' in text


def test_gunicorns_access_line_shows_the_path_as_the_application_logs_it(app: Flask, db_session: Session,
                                                                          ledger: Ledger) -> None:
    links = _links(db_session, ledger)
    for path in (path for path in links if path.startswith("/")):
        with app.test_request_context(path):
            environ = {"REQUEST_METHOD": "GET", "RAW_URI": path + "?x=1", "PATH_INFO": path, "QUERY_STRING": "x=1",
                       "SERVER_PROTOCOL": "HTTP/1.1", LOGGED_PATH: logged_path()}
        atoms = JsonLogger.atoms(JsonLogger.__new__(JsonLogger), _Response(), _Request(), environ,
                                 dt.timedelta(milliseconds=3))
        assert links[path] not in repr(atoms)
        assert atoms["U"].endswith("/[redacted]") and atoms["r"] == f"GET {atoms['U']} HTTP/1.1"


def test_link_secrets_are_kept_only_as_digests(connection: Any, db_session: Session, ledger: Ledger) -> None:
    links = _links(db_session, ledger)
    dump = stored_text(connection)
    assert not [path for path in links if path.startswith("/") and links[path] in dump]


class _Response:
    status, headers, sent = "200 OK", [("X-Request-Id", "r-1")], 10


class _Request:
    headers = [("USER-AGENT", "test")]
