"""The keys a database session carries for secrets at rest (security.md "Secrets and data"):
derived once per sessionmaker from the key-encryption key, so that the database alone opens no
outbox body and reverses no email code."""

from __future__ import annotations

from typing import Any

from idp import email_codes, outbox


def session_info(kek: bytes) -> dict[str, Any]:
    """The ``info`` of every sessionmaker whose sessions queue mail or issue and check codes."""
    return outbox.session_info(kek) | email_codes.session_info(kek)
