"""Real production nodes for tests: gunicorn processes (``idp.gunicorn_conf``), a browser that
stands behind the TLS-terminating load balancer, and a relying party using ``private_key_jwt``.

Every node of one deployment shares the issuer, the secrets and the database; the test talks
to each node's own loopback port, as a load balancer would.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import ECKey

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 15
PASSWORD = "correct horse battery staple"
SCOPE = "openid profile email offline_access"
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
SCOPE_BOX = re.compile(r'name="scope" type="checkbox" value="([^"]+)"')
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def required_or_skip(reason: str) -> None:
    """Skip, unless CI demands these tests (IDP_TEST_REQUIRE_PRODUCTION=1): then fail."""
    if os.environ.get("IDP_TEST_REQUIRE_PRODUCTION") == "1":
        pytest.fail(f"{reason} — and IDP_TEST_REQUIRE_PRODUCTION=1 says these tests must run here")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def random_secret() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def production_environment(*, issuer: str, database_url: str, instance: Path, **extra: str) -> dict[str, str]:
    """The ``IDP_*`` variables one deployment gives all its nodes."""
    return {"IDP_ENV": "production", "IDP_ISSUER": issuer, "IDP_DATABASE_URL": database_url,
            "IDP_SECRET_KEY": random_secret() + random_secret(), "IDP_KEY_ENCRYPTION_KEY": random_secret(),
            "IDP_INSTANCE_PATH": str(instance), "IDP_LOG_LEVEL": "INFO"} | extra


def process_environment(idp_env: Mapping[str, str]) -> dict[str, str]:
    """The test's environment without its own IDP_* and metrics settings, plus the node's."""
    inherited = {key: value for key, value in os.environ.items()
                 if not key.startswith("IDP_") and key != "PROMETHEUS_MULTIPROC_DIR"}
    return inherited | dict(idp_env)


@dataclasses.dataclass
class Node:
    """One gunicorn server (a host behind the load balancer)."""

    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    workers: int = 2
    threads: int = 4
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *extra_args: str, ready: str = "/readyz") -> Node:
        """Start gunicorn and wait until ``ready`` answers 200 (``/healthz``: serving, maybe not ready)."""
        command = [sys.executable, "-m", "gunicorn", "-c", "python:idp.gunicorn_conf", "--bind",
                   f"127.0.0.1:{self.port}", "--workers", str(self.workers), "--threads", str(self.threads),
                   *extra_args, "idp.wsgi:app"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=process_environment(self.env),
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_until_ready(path=ready)
        return self

    def wait_until_ready(self, timeout: float = 30, path: str = "/readyz") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, self.log_tail()
            try:
                if requests.get(f"{self.url}{path}", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"node {self.name} never became ready:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=TIMEOUT)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class BehindTheLoadBalancer(requests.Session):
    """A browser. The nodes set ``Secure`` cookies (https issuer); the test reaches them over
    loopback http, as the TLS-terminating load balancer does, so it sends them anyway."""

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        response = super().send(request, **kwargs)
        for cookie in self.cookies:
            cookie.secure = False
        return response


def browser() -> requests.Session:
    return BehindTheLoadBalancer()


@dataclasses.dataclass
class RelyingParty:
    issuer: str
    client_id: str
    key: ECKey
    redirect_uri: str

    def assertion(self) -> str:
        """RFC 7523 §2.2, addressed to the token endpoint of the issuer (not of one node)."""
        now = int(time.time())
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": f"{self.issuer}/token",
                  "jti": secrets.token_urlsafe(16), "iat": now, "exp": now + 60}
        return jwt.encode({"alg": "ES256", "kid": self.key.kid}, claims, self.key)

    def authenticated(self, data: Mapping[str, str]) -> dict[str, str]:
        return dict(data) | {"client_assertion_type": ASSERTION_TYPE, "client_assertion": self.assertion()}

    def authorize_url(self, node: Node, **extra: str) -> tuple[str, dict[str, str]]:
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        params = {"response_type": "code", "client_id": self.client_id, "redirect_uri": self.redirect_uri,
                  "scope": SCOPE, "state": secrets.token_urlsafe(12), "nonce": secrets.token_urlsafe(12),
                  "code_challenge": challenge.decode().rstrip("="), "code_challenge_method": "S256"} | extra
        url = requests.Request("GET", f"{node.url}/authorize", params=params).prepare().url
        assert url is not None
        return url, params | {"code_verifier": verifier}

    def code_request(self, code: str, verifier: str) -> dict[str, str]:
        return self.authenticated({"grant_type": "authorization_code", "code": code,
                                   "redirect_uri": self.redirect_uri, "code_verifier": verifier})

    def refresh_request(self, refresh_token: str) -> dict[str, str]:
        return self.authenticated({"grant_type": "refresh_token", "refresh_token": refresh_token})


@dataclasses.dataclass
class Visit:
    location: str  # where the provider finally sent the browser (off the provider)
    pages: list[str]  # provider paths shown along the way


def browse(session: requests.Session, url: str, *, email: str | None = None, consent: bool = True) -> Visit:
    """Follow the provider's (relative) redirects on the node that sent them, signing in and
    allowing every scope when asked; stop at the first redirect off the provider."""
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
    pages: list[str] = []
    response = session.get(url, allow_redirects=False, timeout=TIMEOUT)
    for _ in range(12):
        if response.is_redirect:
            location = urljoin(response.url, response.headers["Location"])
            if not location.startswith(origin + "/"):
                return Visit(location=location, pages=pages)
            response = session.get(location, allow_redirects=False, timeout=TIMEOUT)
            continue
        assert response.status_code == 200, f"{response.status_code} at {response.url}: {response.text[:300]}"
        path = urlsplit(response.url).path
        pages.append(path)
        if path == "/signin" and email is not None:
            response = submit(session, response, {"email": email, "password": PASSWORD})
        elif path.startswith("/consent/") and consent:
            response = submit(session, response, {"decision": "allow", "scope": SCOPE_BOX.findall(response.text)})
        else:
            return Visit(location=response.url, pages=pages)
    raise AssertionError("too many redirects")


def submit(session: requests.Session, page: requests.Response, fields: dict[str, Any]) -> requests.Response:
    hidden = dict(HIDDEN.findall(page.text))
    assert "csrf_token" in hidden, "form without a CSRF token"
    action = re.search(r'<form method="post"(?: action="([^"]*)")?', page.text)
    assert action is not None
    target = urljoin(page.url, action.group(1)) if action.group(1) else page.url
    return session.post(target, data=hidden | fields, allow_redirects=False, timeout=TIMEOUT)


def callback(visit: Visit, rp: RelyingParty, params: Mapping[str, str]) -> dict[str, str]:
    assert visit.location.startswith(rp.redirect_uri + "?"), visit
    query = {key: values[0] for key, values in parse_qs(urlsplit(visit.location).query).items()}
    assert query.get("state") == params["state"] and query.get("iss") == rp.issuer, query
    return query


def header_of(token: str) -> dict[str, Any]:
    segment = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
