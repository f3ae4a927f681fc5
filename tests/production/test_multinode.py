"""Many nodes, one truth: two gunicorn nodes of one deployment share PostgreSQL (and Redis).

Whatever one node did, the other honours at once (operations.md "Production and scale");
concurrent uses of one credential across both nodes have exactly one winner (security.md
"Faults"); a key rotation reaches every node within the configured cache time (operations.md
"Keys").
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import requests
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from idp.models import Account
from keys.models import SigningKey
from tests.concurrently import at_once
from tests.production import nodes
from tests.production.conftest import KEY_CACHE_SECONDS, Cluster
from tests.production.nodes import Node

CONCURRENT = 20


def signed_in_code(cluster: Cluster, node: Node, browser: requests.Session,
                   account: Account | None) -> tuple[str, str]:
    """A code from ``node``; signs in (and consents) when ``account`` is given, else expects SSO."""
    url, params = cluster.rp.authorize_url(node)
    visit = nodes.browse(browser, url, email=account.email if account else None)
    if account is None:
        assert visit.pages == [], f"expected single sign-on, was shown {visit.pages}"
    return nodes.callback(visit, cluster.rp, params)["code"], params["code_verifier"]


def redeem(cluster: Cluster, node: Node, code: str, verifier: str) -> dict[str, Any]:
    response = requests.post(f"{node.url}/token", data=cluster.rp.code_request(code, verifier), timeout=nodes.TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def fresh_tokens(cluster: Cluster, account: Account, node: Node | None = None) -> dict[str, Any]:
    code, verifier = signed_in_code(cluster, node or cluster.a, nodes.browser(), account)
    return redeem(cluster, node or cluster.a, code, verifier)


def userinfo(node: Node, access_token: str) -> requests.Response:
    return requests.get(f"{node.url}/userinfo", headers={"Authorization": f"Bearer {access_token}"},
                        timeout=nodes.TIMEOUT)


def spread_posts(cluster: Cluster, bodies: list[dict[str, str]]) -> list[requests.Response]:
    """POST each body to /token, alternating between the two nodes."""
    def post(node: Node, body: dict[str, str]) -> Callable[[], requests.Response]:
        return lambda: requests.post(f"{node.url}/token", data=body, timeout=30)

    return at_once([post(cluster.nodes[index % 2], body) for index, body in enumerate(bodies)])


def outcome(responses: list[requests.Response]) -> tuple[list[requests.Response], list[str]]:
    winners = [response for response in responses if response.status_code == 200]
    errors = [response.json()["error"] for response in responses if response.status_code != 200]
    return winners, errors


# --- single sign-on and codes across nodes --------------------------------------------------

def test_signing_in_on_one_node_gives_single_sign_on_on_the_other(cluster: Cluster, node_citizen: Account) -> None:
    browser = nodes.browser()
    code, verifier = signed_in_code(cluster, cluster.a, browser, node_citizen)
    first = redeem(cluster, cluster.a, code, verifier)

    code, verifier = signed_in_code(cluster, cluster.b, browser, None)  # no password, no consent page
    second = redeem(cluster, cluster.b, code, verifier)

    jwks = KeySet.import_key_set(requests.get(f"{cluster.b.url}/jwks.json", timeout=nodes.TIMEOUT).json())
    claims = [jwt.decode(tokens["id_token"], jwks).claims for tokens in (first, second)]
    assert claims[0]["sub"] == claims[1]["sub"]
    assert claims[0]["sid"] == claims[1]["sid"]  # one login session, made on A, honoured on B
    assert claims[0]["auth_time"] == claims[1]["auth_time"]


def test_a_code_issued_by_one_node_is_redeemed_at_the_other(cluster: Cluster, node_citizen: Account) -> None:
    code, verifier = signed_in_code(cluster, cluster.a, nodes.browser(), node_citizen)
    tokens = redeem(cluster, cluster.b, code, verifier)
    response = userinfo(cluster.a, tokens["access_token"])
    assert response.status_code == 200, response.text
    assert response.json()["email"] == node_citizen.email


# --- one winner -------------------------------------------------------------------------------

def test_concurrent_redemptions_of_one_code_on_both_nodes_have_exactly_one_winner(
        cluster: Cluster, node_citizen: Account) -> None:
    code, verifier = signed_in_code(cluster, cluster.a, nodes.browser(), node_citizen)
    bodies = [cluster.rp.code_request(code, verifier) for _ in range(CONCURRENT)]  # each its own assertion

    winners, errors = outcome(spread_posts(cluster, bodies))

    assert len(winners) == 1, [response.text for response in winners]
    assert errors == ["invalid_grant"] * (CONCURRENT - 1)
    # RFC 6749 §4.1.2: a code used more than once revokes the tokens issued from it.
    assert userinfo(cluster.b, winners[0].json()["access_token"]).status_code == 401


def test_concurrent_uses_of_one_refresh_token_have_one_winner_and_revoke_the_family(
        cluster: Cluster, node_citizen: Account) -> None:
    tokens = fresh_tokens(cluster, node_citizen)
    bodies = [cluster.rp.refresh_request(tokens["refresh_token"]) for _ in range(CONCURRENT)]

    winners, errors = outcome(spread_posts(cluster, bodies))

    assert len(winners) == 1, [response.text for response in winners]
    assert errors == ["invalid_grant"] * (CONCURRENT - 1)
    # RFC 9700 §4.14.2: reuse of a rotated refresh token revokes the whole family, the winner's too.
    rotated = winners[0].json()
    again = requests.post(f"{cluster.a.url}/token", data=cluster.rp.refresh_request(rotated["refresh_token"]),
                          timeout=nodes.TIMEOUT)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert userinfo(cluster.a, rotated["access_token"]).status_code == 401
    assert userinfo(cluster.b, tokens["access_token"]).status_code == 401


# --- consent and keys ------------------------------------------------------------------------

def withdraw_on(node: Node, browser: requests.Session, agency_id: str) -> None:
    """The citizen presses Withdraw on their Connected services page, served by ``node``."""
    page = browser.get(f"{node.url}/account/connected-services", timeout=nodes.TIMEOUT)
    assert page.status_code == 200, page.text[:300]
    form = f'action="/account/connected-services/{agency_id}/withdraw"'
    assert form in page.text, "no Withdraw button for the agency"
    csrf = dict(nodes.HIDDEN.findall(page.text))["csrf_token"]
    response = browser.post(f"{node.url}/account/connected-services/{agency_id}/withdraw", allow_redirects=False,
                            data={"csrf_token": csrf, "decision": "withdraw"}, timeout=nodes.TIMEOUT)
    assert response.status_code == 302, response.text[:300]


def test_a_consent_withdrawn_on_one_node_is_enforced_on_the_other_at_once(
        cluster: Cluster, node_citizen: Account) -> None:
    browser = nodes.browser()
    code, verifier = signed_in_code(cluster, cluster.a, browser, node_citizen)
    tokens = redeem(cluster, cluster.a, code, verifier)
    assert userinfo(cluster.b, tokens["access_token"]).status_code == 200  # B has seen these tokens

    withdraw_on(cluster.a, browser, cluster.agency_id)

    assert userinfo(cluster.b, tokens["access_token"]).status_code == 401
    refreshed = requests.post(f"{cluster.b.url}/token", data=cluster.rp.refresh_request(tokens["refresh_token"]),
                              timeout=nodes.TIMEOUT)
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
    url, _params = cluster.rp.authorize_url(cluster.b)
    visit = nodes.browse(browser, url, consent=False)
    assert visit.pages and visit.pages[0].startswith("/consent/"), visit  # asked again, on B


def current_and_next(cluster: Cluster) -> tuple[str, str]:
    with cluster.services.sessions() as session:
        rows = dict(session.execute(select(SigningKey.state, SigningKey.kid).where(
            SigningKey.purpose == "token", SigningKey.alg == "ES256", SigningKey.state.in_(["current", "next"]))).all())
    return rows["current"], rows["next"]


def rotate_on(node: Node) -> None:
    """The operator's ``idp keys rotate``, run with node A's configuration."""
    command = [sys.executable, "-c", "from idp.cli import main; main()", "keys", "rotate"]
    result = subprocess.run(command, env=nodes.process_environment(node.env), capture_output=True, timeout=60,
                            cwd=nodes.ROOT)
    assert result.returncode == 0, result.stderr.decode()


def test_a_key_rotated_on_one_node_is_published_and_used_by_the_other_within_the_cache_time(
        cluster: Cluster, node_citizen: Account) -> None:
    tokens = fresh_tokens(cluster, node_citizen, cluster.b)
    old_current, _ = current_and_next(cluster)
    assert nodes.header_of(tokens["access_token"])["kid"] == old_current

    rotate_on(cluster.a)
    rotated_at = time.monotonic()
    new_current, new_next = current_and_next(cluster)
    assert new_current != old_current

    time.sleep(max(0.0, rotated_at + KEY_CACHE_SECONDS + 0.25 - time.monotonic()))
    for _ in range(2 * cluster.b.workers):  # every worker of B, whichever answers
        published = {key["kid"] for key in requests.get(f"{cluster.b.url}/jwks.json", timeout=5).json()["keys"]}
        assert {old_current, new_current, new_next} <= published
        refreshed = requests.post(f"{cluster.b.url}/token", data=cluster.rp.refresh_request(tokens["refresh_token"]),
                                  timeout=nodes.TIMEOUT)
        assert refreshed.status_code == 200, refreshed.text
        tokens = refreshed.json()
        assert nodes.header_of(tokens["access_token"])["kid"] == new_current
