"""What people type that ends up in an email: the one email-address check every entry point uses
(sign-up, recovery, sign-in, invitations, requests, child handover, the CLI), and the check on
names that reach email subjects and bodies.

An address is the ASCII ``dot-atom@domain`` that SMTP carries everywhere (RFC 5321 §4.1.2,
RFC 5322 §3.2.3 ``atext``) within the RFC 5321 §4.5.3.1 size limits; quoted local parts, IP
literals and comments are refused, and so is anything with whitespace or a control character,
which would otherwise end up in a mail header (security.md "Secrets and data").
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

EMAIL_FORMAT: Final = "Enter an email address in the correct format, like name@example.com"
MAX_LOCAL_PART: Final = 64  # RFC 5321 §4.5.3.1.1
MAX_DOMAIN: Final = 255  # RFC 5321 §4.5.3.1.2
MAX_ADDRESS: Final = 254  # RFC 5321 §4.5.3.1.3: a path of 256 octets, less "<" and ">"
MAX_NAME: Final = 200

_ATEXT: Final = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"  # RFC 5322 §3.2.3
_LOCAL_PART: Final = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")  # dot-atom: no leading, trailing or double dot
_BIDI_CONTROLS: Final = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")  # RFC 5321 §4.1.2 sub-domain (LDH, ≤ 63)


class InvalidEmailAddress(ValueError):
    """Not an address we can send to; the message is the form error to show."""

    def __init__(self, message: str = EMAIL_FORMAT) -> None:
        super().__init__(message)


def email_address(raw: str) -> str:
    """The address, trimmed and lower-cased (how accounts are stored), or InvalidEmailAddress."""
    address = raw.strip().lower()
    local, at, domain = address.rpartition("@")
    if not (at and len(address) <= MAX_ADDRESS and _valid_local_part(local) and _valid_domain(domain)):
        raise InvalidEmailAddress()
    return address


def email_problem(raw: str) -> str | None:
    """The form error for ``raw``, or None when it is a valid address."""
    try:
        email_address(raw)
    except InvalidEmailAddress as error:
        return str(error)
    return None


def _valid_local_part(local: str) -> bool:
    return len(local) <= MAX_LOCAL_PART and _LOCAL_PART.fullmatch(local) is not None


def _valid_domain(domain: str) -> bool:
    labels = domain.split(".")
    return (len(domain) <= MAX_DOMAIN and len(labels) >= 2 and not labels[-1].isdigit()
            and all(_LABEL.fullmatch(label) for label in labels))


def name_problem(name: str) -> str | None:
    """Why a given or family name cannot be used, or None. Names go into email subjects and bodies
    ("Ada Lovelace asked you to help them"), so no control character (Unicode Cc: CR, LF, tab, NUL…),
    line or paragraph separator (Zl, Zp) or bidirectional override is accepted. Joiners (Cf ZWJ,
    ZWNJ) stay allowed: some scripts need them in names."""
    if len(name) > MAX_NAME:
        return f"Enter a name of at most {MAX_NAME} characters"
    if any(unicodedata.category(char) in {"Cc", "Zl", "Zp"} or char in _BIDI_CONTROLS for char in name):
        return "Enter the name without line breaks or control characters"
    return None
