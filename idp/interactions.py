"""Pending authorization requests while the citizen signs in or decides on consent.

Kept in Flask's signed session cookie (so any node can resume them); at most a few at once.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from typing import Any

from flask import session

MAX_PENDING = 5
LIFETIME_SECONDS = 30 * 60
_KEY = "interactions"


@dataclasses.dataclass
class Interaction:
    id: str
    params: dict[str, str]
    created: float
    login_done: bool = False
    consent_done: bool = False
    account_chosen: bool = False
    step_up_declined: bool = False  # the citizen chose not to use a passkey (idp.assurance)
    who_chosen: bool = False  # delegation.md "Act": answered "Who are you using this service for?"
    acting_for: str | None = None  # the delegation chosen, or None for "Myself"


def start(params: dict[str, str]) -> Interaction:
    interaction = Interaction(id=secrets.token_urlsafe(16), params=params, created=time.time())
    save(interaction)
    return interaction


def load(interaction_id: str | None) -> Interaction | None:
    pending: dict[str, Any] = session.get(_KEY, {})
    raw = pending.get(interaction_id or "")
    if raw is None or time.time() - raw["created"] > LIFETIME_SECONDS:
        return None
    return Interaction(**raw)


def save(interaction: Interaction) -> None:
    pending: dict[str, Any] = dict(session.get(_KEY, {}))
    pending[interaction.id] = dataclasses.asdict(interaction)
    newest = sorted(pending.values(), key=lambda item: item["created"])[-MAX_PENDING:]
    session[_KEY] = {item["id"]: item for item in newest}


def pending_redirect_uris() -> list[str]:
    """The redirect URIs of this browser's pending requests: each was checked as registered for
    its client before the request was kept (``authorize.load_client``)."""
    pending: dict[str, Any] = session.get(_KEY, {})
    return [str(raw["params"].get("redirect_uri", "")) for raw in pending.values()]


def finish(interaction: Interaction | None) -> None:
    if interaction is None:
        return
    pending: dict[str, Any] = dict(session.get(_KEY, {}))
    pending.pop(interaction.id, None)
    session[_KEY] = pending
