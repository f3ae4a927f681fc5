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


class LedgerKeyMissing(LedgerError):
    """There is no current ledger signing key (run ``Keyring.ensure``)."""
