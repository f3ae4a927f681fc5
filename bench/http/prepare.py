"""What the benchmark sends, made before the clock starts: a relying party (``private_key_jwt``)
and a resource server (``client_secret_basic``) of one agency, a citizen who consented, codes
and refresh tokens written straight to the database, and one fresh client assertion per request.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import secrets
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

import jwt as pyjwt
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey
from sqlalchemy import insert

from consent.consents import record_decision
from idp.accounts import create_account
from idp.app import build_services
from idp.config import Settings
from idp.consent_ledger import ledger_for
from idp.models import AuthorizationCode, LoginSession, RefreshToken, TokenFamily
from idp.oauth.tokens import encode_access_token, record_tokens, start_family, token_hash
from idp.registry import ClientMetadata, create_agency, create_client
from idp.services import Services
from store.db import utcnow

SCOPE = "openid profile email offline_access"
REDIRECT_URI = "https://rp.bench.test/cb"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
READ_ONLY_TOKENS = 256


@dataclasses.dataclass
class Fixture:
    services: Services
    settings: Settings
    client_id: str
    key: ec.EllipticCurvePrivateKey
    kid: str
    account_id: str
    session_id: str
    basic: str  # the resource server's Authorization header
    access_tokens: list[str]
    verifier: str = dataclasses.field(default_factory=lambda: secrets.token_urlsafe(48))

    def items(self, case: str, path: Path, count: int) -> Path:
        lines = {
            "token (authorization_code)": lambda: self._code_bodies(count),
            "token (refresh_token)": lambda: self._refresh_bodies(count),
            "userinfo": lambda: self.access_tokens,
            "introspection": lambda: [f"{self.basic}\t{urlencode({'token': t})}" for t in self.access_tokens],
        }.get(case, lambda: [])()
        path.write_text("\n".join(lines) + "\n")
        return path

    def close(self) -> None:
        self.services.engine.dispose()

    def _assertion(self, now: int) -> str:
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": self.settings.endpoint("/token"),
                  "jti": secrets.token_urlsafe(16), "iat": now, "exp": now + 600}
        return pyjwt.encode(claims, self.key, algorithm="ES256", headers={"kid": self.kid})

    def _authenticated(self, fields: dict[str, str], now: int) -> str:
        return urlencode(fields | {"client_assertion_type": ASSERTION_TYPE, "client_assertion": self._assertion(now)})

    def _code_bodies(self, count: int) -> list[str]:
        codes = [secrets.token_urlsafe(32) for _ in range(count)]
        now, challenge = utcnow(), _s256(self.verifier)
        rows = [{"code_hash": token_hash(code), "client_id": self.client_id, "account_id": self.account_id,
                 "session_id": self.session_id, "redirect_uri": REDIRECT_URI, "scope": SCOPE,
                 "nonce": secrets.token_urlsafe(8), "code_challenge": challenge, "code_challenge_method": "S256",
                 "auth_time": now.replace(microsecond=0), "acr": "Cl", "amr": ["pwd"], "created_at": now,
                 "expires_at": now + dt.timedelta(seconds=self.settings.code_ttl)} for code in codes]
        with self.services.sessions.begin() as session:
            session.execute(insert(AuthorizationCode), rows)
        stamp = int(time.time())
        return [self._authenticated({"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
                                     "code_verifier": self.verifier}, stamp) for code in codes]

    def _refresh_bodies(self, count: int) -> list[str]:
        tokens = [secrets.token_urlsafe(32) for _ in range(count)]
        now = utcnow()
        families = [{"id": str(uuid.uuid4()), "client_id": self.client_id, "account_id": self.account_id,
                     "session_id": self.session_id, "scope": SCOPE, "auth_time": now.replace(microsecond=0),
                     "acr": "Cl", "amr": ["pwd"], "created_at": now,
                     "absolute_expires_at": now + dt.timedelta(days=90)} for _ in tokens]
        refresh = [{"token_hash": token_hash(token), "family_id": family["id"], "scope": SCOPE, "issued_at": now,
                    "expires_at": now + dt.timedelta(days=14)} for token, family in zip(tokens, families, strict=True)]
        with self.services.sessions.begin() as session:
            session.execute(insert(TokenFamily), families)
            session.execute(insert(RefreshToken), refresh)
        stamp = int(time.time())
        return [self._authenticated({"grant_type": "refresh_token", "refresh_token": token}, stamp) for token in tokens]


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


def prepare_fixture(env: dict[str, str]) -> Fixture:
    settings = Settings.from_env(environ=env)
    services = build_services(settings)
    private = ec.generate_private_key(ec.SECP256R1())
    public = ECKey.import_key(private.public_key()).as_dict(private=False) | {"alg": "ES256", "use": "sig"}
    kid = public["kid"] = "bench-rp"
    with services.sessions.begin() as session:
        services.keyring.ensure(session)
        agency, _token = create_agency(session, "Benchmark Agency")
        rp, _none = create_client(session, agency, ClientMetadata(
            client_name="Benchmark Service", redirect_uris=[REDIRECT_URI], token_endpoint_auth_method="private_key_jwt",
            jwks={"keys": [public]}, scope=SCOPE))
        api, secret = create_client(session, agency, ClientMetadata(
            client_name="Benchmark API", redirect_uris=[REDIRECT_URI], token_endpoint_auth_method="client_secret_basic",
            scope=SCOPE))
        account = create_account(session, email="bench@example.com", given_name="Bea", family_name="Bench",
                                 password=secrets.token_urlsafe(16))
        record_decision(session, account.id, agency.id, granted=set(SCOPE.split()), denied=set(),
                        ledger=ledger_for(settings, services.keyring), client_id=rp.client_id)
        login_id = _login_session(session, account.id, settings)
        access = _access_tokens(session, services, settings, rp, account, login_id)
        basic = "Basic " + base64.b64encode(f"{api.client_id}:{secret}".encode()).decode()
        return Fixture(services=services, settings=settings, client_id=rp.client_id, key=private, kid=kid,
                       account_id=account.id, session_id=login_id, basic=basic, access_tokens=access)


def _login_session(session: object, account_id: str, settings: Settings) -> str:
    now = utcnow()
    login = LoginSession(id=token_hash(secrets.token_urlsafe(32)), sid=secrets.token_urlsafe(32), account_id=account_id,
                         auth_time=now.replace(microsecond=0), acr="Cl", amr=["pwd"], created_at=now,
                         last_active_at=now, expires_at=now + dt.timedelta(hours=12))
    session.add(login)  # type: ignore[attr-defined]
    session.flush()  # type: ignore[attr-defined]
    return login.id


def _access_tokens(session: object, services: Services, settings: Settings, client: object, account: object,
                   login_id: str) -> list[str]:
    tokens = []
    for _ in range(READ_ONLY_TOKENS):
        family = start_family(session, settings, client_id=client.client_id, account_id=account.id,  # type: ignore
                              session_id=login_id, scope=SCOPE, claims_request=None, auth_time=utcnow(), acr="Cl",
                              amr=["pwd"])
        token = encode_access_token(services.keyring, session, settings, client, account, SCOPE)  # type: ignore
        session.flush()  # type: ignore[attr-defined]
        record_tokens(session, settings, family, pyjwt.decode(token, options={"verify_signature": False}), None, SCOPE)
        tokens.append(token)
    return tokens
