"""A real PostgreSQL server stopped mid-run and started again (security.md "Faults"):

* while it is down, requests get a clear 503 (JSON on API endpoints, a page for browsers),
  liveness stays green and readiness turns red;
* a request cut off by the outage leaves nothing half-written: the credential it carried is
  still unused afterwards (the retry succeeds, and no reuse detection fires);
* the node recovers by itself once the server is back, without a restart.

The server is a throwaway cluster of this test's own (``initdb`` on a free port), never the
shared one on 5432.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from sqlalchemy import func, select

from idp.accounts import create_account
from idp.app import build_services
from idp.config import Settings
from idp.models import AuthorizationCode, TokenFamily
from idp.services import Services
from store.migrate import upgrade
from tests.production import nodes
from tests.production.conftest import seed
from tests.production.nodes import Node, RelyingParty
from tests.production.throwaway_postgres import ThrowawayPostgres, binaries

CHAINS = 3


@dataclasses.dataclass
class Rig:
    postgres: ThrowawayPostgres
    node: Node
    rp: RelyingParty
    services: Services
    email: str


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    bin_dir = binaries()
    if bin_dir is None:
        nodes.required_or_skip("needs the PostgreSQL server binaries (initdb, pg_ctl) to stop and start a server")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            nodes.required_or_skip("running as root needs a 'postgres' OS user to run a PostgreSQL server")
    assert bin_dir is not None
    folder = tmp_path_factory.mktemp("faults")
    postgres = ThrowawayPostgres(bin_dir).create()
    try:
        upgrade(postgres.url)
        issuer = "https://idp.faults.test"
        env = nodes.production_environment(issuer=issuer, database_url=postgres.url, instance=folder,
                                           IDP_KEY_CACHE_SECONDS="1", IDP_CODE_TTL="300")
        services = build_services(Settings.from_env(environ=env))
        rp, _agency = seed(services, issuer)
        email = f"faults-{os.getpid()}@example.com"
        with services.sessions.begin() as session:
            create_account(session, email=email, given_name="Ada", family_name="Byron", password=nodes.PASSWORD)
        node = Node("faults", nodes.free_port(), env, folder / "node.log", workers=2, threads=2).start()
        try:
            yield Rig(postgres=postgres, node=node, rp=rp, services=services, email=email)
        finally:
            node.stop()
            services.engine.dispose()
    finally:
        postgres.destroy()


class RefreshLoad:
    """Threads that keep rotating their own refresh tokens, keeping the old one on a 503."""

    def __init__(self, rig: Rig, refresh_tokens: list[str]) -> None:
        self.rig, self.tokens = rig, list(refresh_tokens)
        self.statuses: list[list[int]] = [[] for _ in refresh_tokens]
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(index,)) for index in range(len(refresh_tokens))]

    def __enter__(self) -> RefreshLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _run(self, index: int) -> None:
        while not self._stop.is_set():
            body = self.rig.rp.refresh_request(self.tokens[index])
            response = requests.post(f"{self.rig.node.url}/token", data=body, timeout=nodes.TIMEOUT)
            self.statuses[index].append(response.status_code)
            if response.status_code == 200:
                self.tokens[index] = response.json()["refresh_token"]
            self._stop.wait(0.02)

    def successes_since(self, marks: list[int]) -> int:
        return min(statuses[mark:].count(200) for statuses, mark in zip(self.statuses, marks, strict=True))


def obtain_code(rig: Rig, browser: requests.Session) -> tuple[str, str]:
    url, params = rig.rp.authorize_url(rig.node)
    visit = nodes.browse(browser, url, email=rig.email)
    return nodes.callback(visit, rig.rp, params)["code"], params["code_verifier"]


def redeem(rig: Rig, code: str, verifier: str) -> requests.Response:
    return requests.post(f"{rig.node.url}/token", data=rig.rp.code_request(code, verifier), timeout=nodes.TIMEOUT)


def wait_until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting until {what}")


def check_outage_answers(rig: Rig, browser: requests.Session, spare: tuple[str, str], access_token: str,
                         authorize_url: str) -> None:
    node = rig.node.url
    api = redeem(rig, *spare)
    assert api.status_code == 503, api.text
    assert api.headers["Content-Type"].startswith("application/json")
    assert api.json()["error"] == "temporarily_unavailable"
    assert api.headers["Retry-After"]
    info = requests.get(f"{node}/userinfo", headers={"Authorization": f"Bearer {access_token}"}, timeout=10)
    assert info.status_code == 503 and info.json()["error"] == "temporarily_unavailable"
    page = browser.get(authorize_url, headers={"Accept": "text/html"}, allow_redirects=False, timeout=10)
    assert page.status_code == 503 and page.headers["Content-Type"].startswith("text/html")
    assert "temporarily unavailable" in page.text and "Traceback" not in page.text
    assert requests.get(f"{node}/readyz", timeout=10).json()["checks"]["database"] == "unavailable"
    assert requests.get(f"{node}/healthz", timeout=10).status_code == 200
    assert requests.get(f"{node}/.well-known/openid-configuration", timeout=10).status_code == 200


def test_a_database_outage_gives_503s_leaves_nothing_half_written_and_heals_by_itself(rig: Rig) -> None:
    browser = nodes.browser()
    first = redeem(rig, *obtain_code(rig, browser)).json()
    chains = [first["refresh_token"]] + [redeem(rig, *obtain_code(rig, browser)).json()["refresh_token"]
                                         for _ in range(CHAINS - 1)]
    spare = obtain_code(rig, browser)
    authorize_url, _params = rig.rp.authorize_url(rig.node)

    with RefreshLoad(rig, chains) as load:
        wait_until(lambda: load.successes_since([0] * CHAINS) >= 2, 20, "the load runs")
        rig.postgres.stop("fast")  # mid-run: refreshes are in flight
        try:
            check_outage_answers(rig, browser, spare, first["access_token"], authorize_url)
            time.sleep(1)  # the load keeps meeting the dead database
        finally:
            rig.postgres.start()
        wait_until(lambda: requests.get(f"{rig.node.url}/readyz", timeout=10).status_code == 200, 30,
                   "the node is ready again without a restart")
        marks = [len(statuses) for statuses in load.statuses]
        wait_until(lambda: load.successes_since(marks) >= 2, 30, "every chain refreshes again")

    every_status = {status for statuses in load.statuses for status in statuses}
    assert every_status == {200, 503}, every_status  # never a 500, never invalid_grant
    assert redeem(rig, *spare).status_code == 200  # the cut-off redemption left the code unused
    for token in load.tokens:  # no cut-off refresh consumed its token: no reuse was detected
        assert requests.post(f"{rig.node.url}/token", data=rig.rp.refresh_request(token),
                             timeout=nodes.TIMEOUT).status_code == 200
    # The test's own pool: its connections were last used seconds before the restart, too recently
    # to be pinged (store/db.py), so the first statement would meet a dead one. Start afresh.
    rig.services.engine.dispose()
    with rig.services.sessions() as session:
        assert session.scalar(select(func.count()).where(TokenFamily.revoked_at.is_not(None))) == 0
        half_done = select(func.count()).where(AuthorizationCode.redeemed_at.is_not(None),
                                               AuthorizationCode.family_id.is_(None))
        assert session.scalar(half_done) == 0  # a code is spent only together with its tokens
