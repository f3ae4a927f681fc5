"""The ledger's event types, the fields each carries, and the canonical entry (consent-ledger.md).

An entry is ``{"v": 2, "seq": …, "time": …, "type": …, <fields>}``; its leaf is the RFC 8785
(JCS) canonical JSON, UTF-8. People are named only by ledger pseudonym, under the keys in
``PERSON_FIELDS``; agencies and clients by their ids. ``v`` 2 entries name people by pairwise
pseudonyms (consent/pseudonyms.py); ``v`` 1 entries, appended before revision 0010 and never
rewritten, by one pseudonym across all agencies. Delegation events are declared now so
that their entries already have a fixed shape when delegation lands.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from typing import Any

import rfc8785

from consent.errors import InvalidEvent

ENTRY_VERSION = 2  # 2: pairwise pseudonyms (docs/consent-ledger.md "Migrating to pairwise pseudonyms")
ENVELOPE = frozenset({"v", "seq", "time", "type"})
PERSON_FIELDS = ("subject", "principal", "delegate")  # values are ledger pseudonyms
MAX_SAFE_INTEGER = 2**53 - 1


class EventType(enum.StrEnum):
    CONSENT_GRANTED = "consent.granted"
    CONSENT_WITHDRAWN = "consent.withdrawn"
    CONSENT_EXPIRED = "consent.expired"
    DISCLOSURE = "disclosure"
    DELEGATION_INVITED = "delegation.invited"
    DELEGATION_ACCEPTED = "delegation.accepted"
    DELEGATION_DECLINED = "delegation.declined"
    DELEGATION_REVOKED = "delegation.revoked"
    DELEGATION_EXPIRED = "delegation.expired"
    # delegation.md "Every step is a ledger event": the steps beyond those consent-ledger.md lists.
    DELEGATION_REQUESTED = "delegation.requested"
    DELEGATION_CREATED = "delegation.created"  # by an operator (attorney) or a parent (dependent)
    DELEGATION_SUSPENDED = "delegation.suspended"
    DELEGATION_RESUMED = "delegation.resumed"
    DELEGATION_RENEWED = "delegation.renewed"
    ACTED_ON_BEHALF = "acted_on_behalf"
    ACCOUNT_ERASED = "account.erased"


_DELEGATION = frozenset({"principal", "delegate", "delegation"})

# Required fields per type; an event may carry no other fields.
REQUIRED: Mapping[EventType, frozenset[str]] = {
    EventType.CONSENT_GRANTED: frozenset({"subject", "agency", "client", "scopes", "denied", "purpose", "expires"}),
    EventType.CONSENT_WITHDRAWN: frozenset({"subject", "agency", "scopes"}),
    EventType.CONSENT_EXPIRED: frozenset({"subject", "agency", "scopes"}),
    EventType.DISCLOSURE: frozenset({"subject", "agency", "client", "scopes", "claims", "basis"}),
    EventType.DELEGATION_INVITED: _DELEGATION,
    EventType.DELEGATION_ACCEPTED: _DELEGATION,
    EventType.DELEGATION_DECLINED: _DELEGATION,
    EventType.DELEGATION_REVOKED: _DELEGATION,
    EventType.DELEGATION_EXPIRED: _DELEGATION,
    EventType.DELEGATION_REQUESTED: _DELEGATION,
    EventType.DELEGATION_CREATED: _DELEGATION,
    EventType.DELEGATION_SUSPENDED: _DELEGATION,
    EventType.DELEGATION_RESUMED: _DELEGATION,
    EventType.DELEGATION_RENEWED: _DELEGATION,
    EventType.ACTED_ON_BEHALF: frozenset({"principal", "delegate", "delegation", "agency", "client"}),
    EventType.ACCOUNT_ERASED: frozenset({"subject"}),
}
OPTIONAL: Mapping[EventType, frozenset[str]] = {
    EventType.DISCLOSURE: frozenset({"legal_basis"}),  # the statutory basis, when basis = "statutory"
    EventType.DELEGATION_INVITED: frozenset({"scopes", "expires"}),
    EventType.DELEGATION_REQUESTED: frozenset({"scopes", "expires"}),
    EventType.DELEGATION_CREATED: frozenset({"scopes", "expires"}),
    EventType.DELEGATION_RENEWED: frozenset({"expires"}),
}


def build_entry(seq: int, time: dt.datetime, event: EventType, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The entry for leaf ``seq``; InvalidEvent if the fields do not fit the type."""
    check_fields(event, fields)
    return {"v": ENTRY_VERSION, "seq": seq, "time": format_time(time), "type": str(event), **fields}


def check_fields(event: EventType, fields: Mapping[str, Any]) -> None:
    required = REQUIRED[event]
    missing = required - fields.keys()
    extra = fields.keys() - required - OPTIONAL.get(event, frozenset())
    if missing or extra:
        raise InvalidEvent(f"{event}: missing {sorted(missing)}, unexpected {sorted(extra)}")
    for name in PERSON_FIELDS:
        if name in fields and not (isinstance(fields[name], str) and fields[name]):
            raise InvalidEvent(f"{event}: {name} must be a ledger pseudonym")
    _check_value(fields)


def _check_value(value: Any) -> None:
    """JSON that both RFC 8785 and the standalone verifier read identically: no floats."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidEvent("entry member names must be strings")
            _check_value(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_value(item)
    elif isinstance(value, bool) or value is None or isinstance(value, str):
        return
    elif isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise InvalidEvent("entry integers must be within ±2^53-1 (RFC 8785 §3.2.2.3)")
    else:
        raise InvalidEvent(f"an entry may not hold a {type(value).__name__}")


def canonical(entry: Mapping[str, Any]) -> bytes:
    """RFC 8785 canonical JSON, UTF-8: the leaf."""
    try:
        return rfc8785.dumps(dict(entry))
    except rfc8785.CanonicalizationError as error:
        raise InvalidEvent(f"entry cannot be canonicalised: {error}") from None


def format_time(time: dt.datetime) -> str:
    """RFC 3339 UTC with milliseconds, e.g. ``2026-11-30T02:15:11.123Z``."""
    if time.tzinfo is None:
        raise InvalidEvent("entry time must be timezone-aware")
    return time.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def people_in(entry: Mapping[str, Any]) -> list[str]:
    """The pseudonyms an entry names (each such person gets the receipt)."""
    return sorted({entry[name] for name in PERSON_FIELDS if isinstance(entry.get(name), str)})
