"""The attempt budgets of the request being served (idp.throttle): what one password check, one
emailed code or link checked, and one email sent cost the address and the client's network.

Budgets an attacker gets, across every path and however many requests run at once:

* sign-in: ``SIGN_IN_PER_EMAIL`` passwords per address, ``SIGN_IN_PER_NETWORK`` per network,
  then waits doubling up to 15 minutes (sign-in.md "Abuse resistance");
* emailed codes and links: ``GUESSES_PER_ADDRESS`` (10) checks per address per hour, whatever the
  purpose (sign-up, recovery, handover) and however many challenges were started, and
  ``GUESSES_PER_NETWORK`` failed checks per network per hour;
* emails with a code or a link, or any other email a stranger can have sent to an address (sign-up,
  recovery, invitations, requests, handover offers, lost passkeys):
  ``Settings.emails_per_address_per_hour`` per address and ``EMAILS_PER_NETWORK`` per network.

An address is charged whether or not it has an account, so a refusal says nothing about accounts.
"""

from __future__ import annotations

from idp.login_sessions import client_network
from idp.services import db, services, throttle
from idp.throttle import (
    EMAILS_PER_NETWORK,
    GUESSES_PER_ADDRESS,
    GUESSES_PER_NETWORK,
    SIGN_IN_PER_EMAIL,
    SIGN_IN_PER_NETWORK,
    Budget,
    Limit,
    TooManyAttempts,
    email_key,
    guess_key,
    ip_key,
    mail_key,
    network_guess_key,
    network_mail_key,
    reserve_all,
)

TOO_MANY_EMAILS = "Too many emails have been asked for this email address, or from your network."
TOO_MANY_GUESSES = "Too many security codes or links have been tried for this email address, or from your network."


def sign_in_limits(email: str) -> list[Limit]:
    return [Limit(email_key(email), SIGN_IN_PER_EMAIL), Limit(ip_key(client_network()), SIGN_IN_PER_NETWORK)]


def reserve_sign_in(email: str) -> int:
    """Reserve one password check (committed at once, so the check itself holds no lock); returns
    the address's count. TooManyAttempts if a budget is spent."""
    return _reserve(sign_in_limits(email))[0]


def sign_in_succeeded(email: str) -> None:
    email_limit, network_limit = sign_in_limits(email)
    throttle().reset(email_limit.key)
    throttle().release(network_limit.key, network_limit.budget)


def _network_guesses() -> Limit:
    return Limit(network_guess_key(client_network()), GUESSES_PER_NETWORK)


def reserve_guess(address: str | None) -> None:
    """Before an emailed code or link is compared: one check of the address's hourly ten (when the
    code or link names one) and of the network's budget. Committed at once."""
    limits = [_network_guesses()] + ([Limit(guess_key(address), GUESSES_PER_ADDRESS)] if address else [])
    _reserve(limits, TOO_MANY_GUESSES)


def guess_succeeded() -> None:
    """A right code or a working link (committed): the network is charged only for failures. The address keeps
    the count, so a citizen's own use cannot reopen the budget for someone guessing at it."""
    network = _network_guesses()
    throttle().release(network.key, network.budget)
    db().commit()


def reserve_email(address: str) -> None:
    """Before an email with a code or a link is queued for ``address``. Committed at once."""
    per_address = Budget.per_window(services().settings.emails_per_address_per_hour, EMAILS_PER_NETWORK.window)
    limits = [Limit(mail_key(address), per_address), Limit(network_mail_key(client_network()), EMAILS_PER_NETWORK)]
    _reserve(limits, TOO_MANY_EMAILS)


def _reserve(limits: list[Limit], reason: str | None = None) -> list[int]:
    """Reserve and commit, so no counter row stays locked while the attempt runs; a refusal
    rolls back at once (it wrote nothing that must stay)."""
    try:
        counts = reserve_all(throttle(), limits, reason)
    except TooManyAttempts:
        db().rollback()
        raise
    db().commit()
    return counts
