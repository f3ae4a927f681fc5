"""The identity provider's storage: agencies and clients, citizen accounts, sessions, tokens."""

from idp.models.accounts import Account
from idp.models.clients import Agency, Client
from idp.models.sessions import LoginSession, SessionParticipant
from idp.models.tokens import AccessToken, AuthorizationCode, ClientAssertionJti, RefreshToken, TokenFamily

__all__ = [
    "AccessToken",
    "Account",
    "Agency",
    "AuthorizationCode",
    "Client",
    "ClientAssertionJti",
    "LoginSession",
    "RefreshToken",
    "SessionParticipant",
    "TokenFamily",
]
