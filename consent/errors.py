"""Errors of the consent domain, mapped to protocol responses by ``idp``."""


class ConsentError(Exception):
    """Base class for consent-domain errors."""


class ConsentMissing(ConsentError):
    """The citizen has not (or no longer) consented to what is being asked."""


class ConsentNotActive(ConsentError):
    """The transition needs an active consent (e.g. withdrawing one already withdrawn or expired)."""


class LedgerError(ConsentError):
    """Base class for consent-ledger errors."""


class InvalidEvent(LedgerError):
    """An event lacks a field its type requires, or holds a value a ledger entry may not hold."""


class ProofRequestInvalid(LedgerError):
    """A proof or range was asked for sizes or indices outside the tree (an HTTP 400)."""


class LedgerCorrupt(LedgerError):
    """Stored ledger data is missing or inconsistent (found while serving, not by an audit)."""


class DelegationError(ConsentError):
    """Base class for delegation errors; ``status`` is the HTTP status a page shows it with."""

    status = 400


class DelegationInvalid(DelegationError):
    """The terms break a rule of delegation.md (self-delegation, a past end date, a widening, ...);
    ``term`` names the term at fault (a ``Terms`` field or ``"email"``), for a form to point at."""

    def __init__(self, message: str, term: str | None = None) -> None:
        super().__init__(message)
        self.term = term


class DelegationNotFound(DelegationError):
    """No such delegation that this person may see (forged or foreign ids look the same)."""

    status = 404


class DelegationStateError(DelegationError):
    """The transition is not allowed from the delegation's current status."""

    status = 409


class InvitationUnusable(DelegationError):
    """An invitation link that is unknown, already used, or past its 7 days."""

    status = 410


class InvitationForSomeoneElse(DelegationError):
    """An invitation opened, accepted or declined by a signed-in person it was not sent to: they
    learn nothing of it (not who sent it, not its terms) and can change nothing."""

    status = 403


class NotAllowedToAct(DelegationError):
    """The signed-in person may not act for that principal with this client and these scopes."""

    status = 403
