"""The identity provider's storage: agencies and clients, citizen accounts, sessions, tokens."""

from idp.models.accounts import Account
from idp.models.challenges import EmailChallenge, WebAuthnChallenge
from idp.models.clients import Agency, Client
from idp.models.forms import FormSubmission
from idp.models.outbox import OutboxMessage
from idp.models.passkeys import Passkey
from idp.models.sessions import LoginSession, SessionParticipant
from idp.models.throttles import ThrottleCounter
from idp.models.tokens import AccessToken, AuthorizationCode, ClientAssertionJti, RefreshToken, TokenFamily

__all__ = [
    "AccessToken",
    "Account",
    "Agency",
    "AuthorizationCode",
    "Client",
    "ClientAssertionJti",
    "EmailChallenge",
    "FormSubmission",
    "LoginSession",
    "OutboxMessage",
    "Passkey",
    "RefreshToken",
    "SessionParticipant",
    "ThrottleCounter",
    "TokenFamily",
    "WebAuthnChallenge",
]
