"""Authlib grants with our storage hooks: authorization code (+ PKCE S256, OpenID), refresh.

Every hook is one of Authlib's; the rules they enforce:

* a code is single use: only a redemption that passes every check consumes it, atomically; a
  second one revokes every token issued from it (RFC 6749 §4.1.2, RFC 9700 §4.5.3). A failed
  one (a wrong ``code_verifier``) leaves it to its rightful holder (RFC 6749 §10.5, RFC 7636
  §4.6), but at most ``MAX_REDEMPTION_ATTEMPTS`` verifiers are ever checked against a code;
* a refresh token is rotated on every use; presenting a used one revokes its family
  (RFC 9700 §4.14.2);
* the citizen's consent is re-checked whenever tokens are issued.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final, cast

from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin, grants
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidRequestError
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core.grants import OpenIDCode as _OpenIDCode
from authlib.oidc.core.grants.util import validate_nonce
from authlib.oidc.core.util import create_half_hash
from flask import g
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import contains_eager

from consent.consents import consented_scopes
from consent.errors import ConsentMissing, NotAllowedToAct
from idp.acting import acting_claims, current_grant, grant_for
from idp.login_sessions import current_session
from idp.models import Account, AuthorizationCode, Client, RefreshToken, TokenFamily
from idp.oauth.claims import parse_claims_request, released_claims
from idp.oauth.tokens import claim_refresh_token, revoke_family, token_hash
from idp.services import db, services
from store.db import run, utcnow

AUTH_METHODS = ["private_key_jwt", "client_secret_basic", "client_secret_post", "none"]
# Verifiers checked against one code, from any node, however many requests race: the budget of
# someone holding an intercepted code (a verifier has >= 256 bits; this is about never letting a
# code be tried without end). The fifth failure burns the code.
MAX_REDEMPTION_ATTEMPTS: Final = 5


class ConsentCheckedTokens:
    """Mixin: narrow every issued scope to what the citizen still consents to."""

    def generate_token(self, user: Account, scope: str, grant_type: str | None = None,
                       expires_in: int | None = None, include_refresh_token: bool = True) -> dict[str, Any]:
        client: Client = self.request.client  # type: ignore[attr-defined]
        acting = _acting_under(self.request)  # type: ignore[attr-defined]
        try:
            if acting is None:
                allowed = allowed_scopes(client, user.id, scope.split())
            else:  # delegation.md "Rules": the delegation is re-checked at every issuance and refresh
                allowed = set(grant_for(db(), client, acting[0], acting[1], scope.split()).scopes)
        except ConsentMissing:
            raise InvalidGrantError("The citizen's consent for this service has ended.") from None
        except NotAllowedToAct:
            raise InvalidGrantError("The delegation these tokens were issued under has ended.") from None
        g.acting_claims = acting_claims(db(), client, acting[0]) if acting else None
        include = include_refresh_token and "offline_access" in allowed and client.check_grant_type("refresh_token")
        return super().generate_token(  # type: ignore[misc, no-any-return]
            user=user, scope=" ".join(sorted(allowed)), grant_type=grant_type,
            expires_in=expires_in, include_refresh_token=include,
        )


def _acting_under(request: Any) -> tuple[str, str] | None:
    """(delegation id, actor account id) of the code or refresh token being redeemed, if acting."""
    record = request.authorization_code or getattr(request, "refresh_token", None)
    source = record if isinstance(record, AuthorizationCode) else getattr(record, "family", None)
    if source is None or source.delegation_id is None or source.actor_account_id is None:
        return None
    return source.delegation_id, source.actor_account_id


def allowed_scopes(client: Client, account_id: str, requested: list[str]) -> set[str]:
    """What may be issued: the citizen's consent, or (statutory basis) the client's registered scopes."""
    if client.statutory_basis:
        return set(client.get_allowed_scope(" ".join(requested)).split())
    return consented_scopes(db(), account_id, client.agency_id, requested)


# ConsentCheckedTokens.generate_token requires user and scope, which Authlib's grants always pass
# (types-Authlib's BaseGrant declares both optional).
class AuthorizationCodeGrant(ConsentCheckedTokens, grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def save_authorization_code(self, code: str, request: Any) -> None:
        login = current_session()
        assert login is not None  # the authorize view only issues codes inside a session
        data = request.payload.data
        settings = services().settings
        now = utcnow()
        acting = current_grant()
        if acting is None:
            granted = allowed_scopes(request.client, request.user.id, request.scope.split())
        else:
            granted = set(acting.scopes)
        db().add(AuthorizationCode(
            delegation_id=acting.delegation.id if acting else None,
            actor_account_id=acting.actors[0] if acting else None,
            code_hash=token_hash(code), client_id=request.client.client_id, account_id=request.user.id,
            session_id=login.id, redirect_uri=request.payload.redirect_uri, scope=" ".join(sorted(granted)),
            nonce=data.get("nonce"), code_challenge=data["code_challenge"],
            code_challenge_method=data["code_challenge_method"],
            claims_request=parse_claims_request(data.get("claims")),
            auth_time=login.auth_time, acr=login.acr, amr=login.amr, created_at=now,
            expires_at=now + dt.timedelta(seconds=settings.code_ttl),
        ))

    def query_authorization_code(self, code: str, client: ClientMixin) -> AuthorizationCode | None:
        """This client's unexpired code, once an attempt at it is reserved.

        The attempt is counted before the redirect URI and verifier are checked, in one conditional
        UPDATE, so no more than MAX_REDEMPTION_ATTEMPTS are checked, across nodes and under
        concurrency; on PostgreSQL its row lock also queues racing redemptions of the code until
        this one commits. A redeemed code presented again revokes what was issued from it.
        """
        session = db()
        record = session.get(AuthorizationCode, token_hash(code))
        if record is None or record.client_id != client.get_client_id() or record.expires_at <= utcnow():
            return None
        reserved = run(session, _RESERVE_ATTEMPT, {"hash": record.code_hash, "most": MAX_REDEMPTION_ATTEMPTS})
        if reserved.rowcount != 1:  # redeemed already, or out of attempts
            self._revoke_tokens_of_replayed(record.code_hash)
            return None
        if record.session_signed_out:
            # RFC 6749 §4.1.2 "short lived", OIDC Core §3.1.2.1 and RP-Initiated Logout §2: a code
            # stands for the sign-in it was issued in; once that session is signed out it is spent.
            return None
        return record

    def create_token_response(self) -> Any:
        """Every check has passed: only now is the code consumed (RFC 6749 §4.1.2 single use)."""
        code = self.request.authorization_code
        assert isinstance(code, AuthorizationCode)  # query_authorization_code found it
        if run(db(), _CLAIM_CODE, {"hash": code.code_hash, "now": utcnow()}).rowcount != 1:
            self._revoke_tokens_of_replayed(code.code_hash)
            raise InvalidGrantError("Invalid 'code' in request.")
        return super().create_token_response()

    def _revoke_tokens_of_replayed(self, code_hash: str) -> None:
        """RFC 6749 §4.1.2: a code used twice revokes what was issued from it (a code that was
        never redeemed, only tried, started no family)."""
        family_id = db().scalar(select(AuthorizationCode.family_id).where(AuthorizationCode.code_hash == code_hash))
        if family_id is not None:
            revoke_family(db(), family_id, "code_replayed")

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        """Kept (marked redeemed by create_token_response) rather than deleted, so a replay can be
        recognised."""

    def authenticate_user(self, authorization_code: AuthorizationCode) -> Account | None:
        account = authorization_code.account
        return account if account.status == "active" else None


_RESERVE_ATTEMPT = (update(AuthorizationCode)
                    .where(AuthorizationCode.code_hash == bindparam("hash"), AuthorizationCode.redeemed_at.is_(None),
                           AuthorizationCode.redemption_attempts < bindparam("most"))
                    .values(redemption_attempts=AuthorizationCode.redemption_attempts + 1))
_CLAIM_CODE = (update(AuthorizationCode)
               .where(AuthorizationCode.code_hash == bindparam("hash"), AuthorizationCode.redeemed_at.is_(None))
               .values(redeemed_at=bindparam("now")))


class RefreshTokenGrant(ConsentCheckedTokens, grants.RefreshTokenGrant):  # type: ignore[misc]  # as above
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation, RFC 9700 §4.14.2

    # Authlib treats a falsy result as an unknown token; types-Authlib's TokenMixin return leaves out None.
    def authenticate_refresh_token(self, refresh_token: str) -> RefreshToken | None:  # type: ignore[override]
        session = db()
        # Everything that changes a family takes its row lock first, so concurrent refreshes and
        # reuse revocations queue up instead of deadlocking on each other's token rows. A stale
        # read of used_at is harmless: claim_refresh_token's conditional UPDATE decides.
        query = (select(RefreshToken).join(RefreshToken.family).options(contains_eager(RefreshToken.family))
                 .where(RefreshToken.token_hash == token_hash(refresh_token)).with_for_update(of=TokenFamily))
        record = session.scalar(query)
        client = cast(Client, self.request.client)  # what our query_client returned to Authlib
        if record is None or not record.check_client(client):
            return None
        # before the token is spent, so a bad scope costs nothing (types-Authlib omits this private method)
        self._validate_token_scope(record)  # type: ignore[attr-defined]
        if record.used_at is not None or not claim_refresh_token(session, record):
            revoke_family(session, record.family_id, "refresh_token_reused")
            return None
        now = utcnow()
        family = record.family
        if record.revoked_at or family.revoked_at or record.expires_at <= now or family.absolute_expires_at <= now:
            return None
        return record

    def authenticate_user(self, refresh_token: RefreshToken) -> Account | None:
        account = refresh_token.family.account
        return account if account.status == "active" else None

    def revoke_old_credential(self, refresh_token: TokenMixin) -> None:
        """Nothing left to do: authenticate_refresh_token consumed the token atomically."""


class S256CodeChallenge(CodeChallenge):
    """PKCE is required of every client, with S256 only (RFC 9700 §2.1.1, RFC 7636 §4.2)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: missing 'code_challenge'.")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("PKCE 'code_challenge_method' must be 'S256'.")
        super().validate_code_challenge(grant, redirect_uri)


class OpenIDCode(_OpenIDCode):
    """ID tokens for the code flow (OIDC Core §3.1.3.6), signed with the client's algorithm.

    ``prompt`` is handled by the authorize view itself, so only Authlib's nonce check and
    token hook are registered here.
    """

    def __call__(self, grant: Any) -> None:
        grant.register_hook("after_create_token_response", self.process_token)
        grant.register_hook("after_validate_authorization_request_payload", self._check_nonce)

    def _check_nonce(self, grant: Any, redirect_uri: str) -> None:
        validate_nonce(grant.request, self.exists_nonce, required=False)

    def exists_nonce(self, nonce: str, request: Any) -> bool:
        query = select(AuthorizationCode.code_hash).where(
            AuthorizationCode.client_id == request.payload.client_id, AuthorizationCode.nonce == nonce
        )
        return db().scalar(query.limit(1)) is not None

    def encode_id_token(self, token: dict[str, Any], request: Any) -> str:
        code: AuthorizationCode = request.authorization_code
        client: Client = request.client
        settings, keyring = services().settings, services().keyring
        alg = client.id_token_signed_response_alg
        now = int(utcnow().timestamp())
        claims: dict[str, Any] = {
            "iss": settings.issuer, "sub": client.subject_for(request.user.id), "aud": client.client_id,
            "exp": now + settings.id_token_ttl, "iat": now, "auth_time": int(code.auth_time.timestamp()),
            "acr": code.acr, "amr": code.amr,
        }
        if code.nonce:
            claims["nonce"] = code.nonce
        if code.session_sid:
            claims["sid"] = code.session_sid
        at_hash = create_half_hash(token["access_token"], alg)  # OIDC Core §3.1.3.6
        assert at_hash is not None  # None only for an algorithm not in ID_TOKEN_ALGS
        claims["at_hash"] = at_hash.decode()
        requested = (code.claims_request or {}).get("id_token")
        claims |= released_claims(request.user, set(token["scope"].split()), by_scope=False, requested=requested)
        claims |= acting_claims(db(), client, code.delegation_id)  # delegation.md "What agencies receive"
        return keyring.sign_jwt(db(), claims, alg=alg)

