"""Errors of the consent domain, mapped to protocol responses by ``idp``."""


class ConsentError(Exception):
    """Base class for consent-domain errors."""


class ConsentMissing(ConsentError):
    """The citizen has not (or no longer) consented to what is being asked."""
