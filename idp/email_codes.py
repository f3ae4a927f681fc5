"""One-time email codes (sign-in.md: 6 digits, 10 minutes, 5 attempts), stored only as keyed digests.

Six digits are a million values: a plain hash of one is reversed in a second by anyone who reads
the row, so the digest is an HMAC under a key derived from the KEK, which the sessions that issue
and check codes carry in their ``info`` (:func:`session_info`), like the outbox's sealer."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hmac
import secrets

from sqlalchemy import update
from sqlalchemy.orm import Session

from idp.models import EmailChallenge
from keys.digests import keyed_digest
from keys.encryption import derive_key
from store.db import utcnow

LIFETIME = dt.timedelta(minutes=10)
MAX_ATTEMPTS = 5
WRONG_CODE = "Enter the 6-digit code from the email, or request a new one"
DIGEST_KEY = "email_codes.digest_key"  # in Session.info


def session_info(kek: bytes) -> dict[str, bytes]:
    """The ``info`` a sessionmaker's sessions need to issue and check codes."""
    return {DIGEST_KEY: derive_key(kek, "email-code-digest")}


@dataclasses.dataclass(frozen=True)
class CodeCheck:
    ok: bool
    message: str | None = None  # shown to the citizen when not ok
    exhausted: bool = False  # a new code is needed


def _hash(session: Session, challenge_id: str, code: str) -> str:
    # Prefixed with the challenge id, so equal codes of two challenges hash differently.
    key = session.info.get(DIGEST_KEY)
    if not isinstance(key, bytes):
        raise RuntimeError("this session cannot digest email codes: build its sessionmaker with "
                           "info=idp.session_keys.session_info(kek)")
    return keyed_digest(key, f"{challenge_id}:{code}")


def issue_code(session: Session, *, purpose: str, email: str, account_id: str | None) -> tuple[EmailChallenge, str]:
    code = f"{secrets.randbelow(1_000_000):06d}"
    challenge = EmailChallenge(purpose=purpose, email=email, account_id=account_id,
                               expires_at=utcnow() + LIFETIME, code_hash="")
    session.add(challenge)
    session.flush()
    challenge.code_hash = _hash(session, challenge.id, code)
    return challenge, code


def check_code(session: Session, challenge: EmailChallenge, code: str) -> CodeCheck:
    """Count the attempt first (atomically), then compare in constant time."""
    if challenge.verified_at is not None or challenge.consumed_at is not None:
        return CodeCheck(False, "This code has already been used. Request a new code", exhausted=True)
    if challenge.expires_at <= utcnow():
        return CodeCheck(False, "This code has expired. Request a new code", exhausted=True)
    counted = session.execute(
        update(EmailChallenge)
        .where(EmailChallenge.id == challenge.id, EmailChallenge.attempts < MAX_ATTEMPTS)
        .values(attempts=EmailChallenge.attempts + 1)
    )
    if counted.rowcount != 1:  # type: ignore[attr-defined]
        return CodeCheck(False, "You have entered the wrong code too many times. Request a new code",
                         exhausted=True)
    digits = code.strip().replace(" ", "")
    if not (len(digits) == 6 and digits.isdigit() and hmac.compare_digest(challenge.code_hash,
                                                                         _hash(session, challenge.id, digits))):
        return CodeCheck(False, WRONG_CODE)
    challenge.verified_at = utcnow()
    return CodeCheck(True)
