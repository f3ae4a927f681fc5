"""Key lifecycle: ensure, rotate, retire, remove, and how fast other keyrings notice."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from keys.encryption import KeyEncryptor
from keys.keyring import Keyring
from keys.models import ALGS, SigningKey
from tests.keys.conftest import AUDIENCE, ISSUER, FakeClock

NOW = dt.datetime.now(dt.UTC)
CLAIMS = {"iss": ISSUER, "aud": AUDIENCE, "sub": "citizen-1", "iat": NOW, "exp": NOW + dt.timedelta(hours=1)}
LONG_AGO = dt.timedelta(days=30)


def _states(keyring: Keyring, session: Session, alg: str, purpose: str = "token") -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for info in keyring.list(session):
        if (info.alg, info.purpose) == (alg, purpose):
            found.setdefault(info.state, []).append(info.kid)
    return found


def _published_kids(keyring: Keyring, session: Session) -> set[str]:
    return {jwk["kid"] for jwk in keyring.jwks(session)["keys"]}


def test_ensure_creates_a_current_and_a_next_key_per_alg(db_session: Session, keyring: Keyring) -> None:
    for alg in ALGS:
        states = _states(keyring, db_session, alg)
        assert {state: len(kids) for state, kids in states.items()} == {"current": 1, "next": 1}


def test_ensure_creates_one_current_ed25519_ledger_key(db_session: Session, keyring: Keyring) -> None:
    assert {s: len(k) for s, k in _states(keyring, db_session, "EdDSA", "ledger").items()} == {"current": 1}
    ledger = keyring.ledger_signing_key(db_session)
    assert ledger.alg == "EdDSA" and list(keyring.ledger_public_keys(db_session)) == [ledger.kid]
    assert ledger.kid not in _published_kids(keyring, db_session)


def test_ensure_twice_creates_nothing_more(db_session: Session, keyring: Keyring) -> None:
    before = keyring.list(db_session)
    keyring.ensure(db_session)
    assert keyring.list(db_session) == before


def test_ensure_leaves_the_transaction_to_the_caller(db_session: Session, encryptor: KeyEncryptor) -> None:
    Keyring(encryptor, cache_seconds=0).ensure(db_session)
    db_session.rollback()  # would not undo a commit made inside ensure()
    assert db_session.scalars(select(SigningKey)).first() is None


def test_the_next_key_is_published_before_it_signs(db_session: Session, keyring: Keyring) -> None:
    upcoming = _states(keyring, db_session, "ES256")["next"][0]
    assert upcoming in _published_kids(keyring, db_session)
    assert keyring.signing_key(db_session, "ES256").kid != upcoming


def test_rotation_retires_current_promotes_next_and_publishes_a_new_next(
    db_session: Session, keyring: Keyring
) -> None:
    before = {alg: _states(keyring, db_session, alg) for alg in ALGS}
    keyring.rotate(db_session, retire_after=LONG_AGO)
    for alg in ALGS:
        after = _states(keyring, db_session, alg)
        assert after["retired"] == before[alg]["current"]
        assert after["current"] == before[alg]["next"]
        assert after["next"] != before[alg]["next"] and after["next"][0] in _published_kids(keyring, db_session)
        assert keyring.signing_key(db_session, alg).kid == before[alg]["next"][0]


def test_rotation_records_when_keys_were_activated_and_retired(db_session: Session, keyring: Keyring) -> None:
    old = keyring.signing_key(db_session, "RS256").kid
    keyring.rotate(db_session, retire_after=LONG_AGO)
    infos = {info.kid: info for info in keyring.list(db_session)}
    new = infos[keyring.signing_key(db_session, "RS256").kid]
    retired_at = infos[old].retired_at
    assert retired_at is not None and retired_at.tzinfo is not None
    assert new.activated_at == retired_at


def test_a_retired_key_stays_in_the_jwks(db_session: Session, keyring: Keyring) -> None:
    old = keyring.signing_key(db_session, "PS256").kid
    keyring.rotate(db_session, retire_after=LONG_AGO)
    assert old in _published_kids(keyring, db_session)


def test_a_token_signed_before_rotation_still_verifies(db_session: Session, keyring: Keyring) -> None:
    token = keyring.sign_jwt(db_session, CLAIMS, alg="ES256")
    keyring.rotate(db_session, retire_after=LONG_AGO)
    assert keyring.verify_jwt(db_session, token, audience=AUDIENCE, issuer=ISSUER)["sub"] == "citizen-1"


def test_keys_retired_long_enough_are_removed_unpublished_and_lose_their_private_key(
    db_session: Session, keyring: Keyring
) -> None:
    first = keyring.signing_key(db_session, "EdDSA").kid
    keyring.rotate(db_session, retire_after=dt.timedelta(0))
    assert _states(keyring, db_session, "EdDSA")["retired"] == [first]  # not removed by the same rotation
    keyring.rotate(db_session, retire_after=dt.timedelta(0))
    row = db_session.get(SigningKey, first)
    assert row is not None and row.state == "removed" and row.removed_at is not None
    assert row.private_key_encrypted is None
    assert first not in _published_kids(keyring, db_session)
    assert keyring.public_key(db_session, first) is None


def test_keys_retired_recently_are_kept(db_session: Session, keyring: Keyring) -> None:
    first = keyring.signing_key(db_session, "ES256").kid
    keyring.rotate(db_session, retire_after=LONG_AGO)
    keyring.rotate(db_session, retire_after=LONG_AGO)
    assert first in _states(keyring, db_session, "ES256")["retired"]


def test_the_ledger_key_is_not_rotated_with_the_token_keys(db_session: Session, keyring: Keyring) -> None:
    ledger = keyring.ledger_signing_key(db_session).kid
    keyring.rotate(db_session, retire_after=dt.timedelta(0))
    assert keyring.ledger_signing_key(db_session).kid == ledger


def test_the_key_list_is_newest_first(db_session: Session, keyring: Keyring) -> None:
    keyring.rotate(db_session, retire_after=LONG_AGO)
    created = [info.created_at for info in keyring.list(db_session)]
    assert created == sorted(created, reverse=True)


def test_a_negative_retire_after_is_refused(db_session: Session, keyring: Keyring) -> None:
    with pytest.raises(ValueError):
        keyring.rotate(db_session, retire_after=dt.timedelta(seconds=-1))


def test_the_database_refuses_a_second_current_key_for_an_alg(db_session: Session, keyring: Keyring) -> None:
    upcoming = db_session.scalars(select(SigningKey).filter_by(alg="ES256", state="next")).one()
    with pytest.raises(IntegrityError), db_session.begin_nested():
        upcoming.state = "current"
        db_session.flush()


def test_another_keyring_signs_with_the_old_key_until_its_state_cache_expires(
    db_session: Session, keyring: Keyring, encryptor: KeyEncryptor, clock: FakeClock
) -> None:
    other_node = Keyring(encryptor, cache_seconds=30, clock=clock)
    old = other_node.signing_key(db_session, "ES256").kid
    keyring.rotate(db_session, retire_after=LONG_AGO)
    new = keyring.signing_key(db_session, "ES256").kid
    clock.advance(29)
    assert other_node.signing_key(db_session, "ES256").kid == old
    clock.advance(1)
    assert other_node.signing_key(db_session, "ES256").kid == new


def test_another_keyring_sees_the_rotation_once_its_cache_is_invalidated(
    db_session: Session, keyring: Keyring, encryptor: KeyEncryptor, clock: FakeClock
) -> None:
    other_node = Keyring(encryptor, cache_seconds=30, clock=clock)
    old = other_node.signing_key(db_session, "ES256").kid
    keyring.rotate(db_session, retire_after=LONG_AGO)
    other_node.invalidate_cache()
    assert other_node.signing_key(db_session, "ES256").kid not in (old, None)


def test_a_keyring_without_a_state_cache_sees_a_rotation_at_once(
    db_session: Session, keyring: Keyring, encryptor: KeyEncryptor
) -> None:
    uncached = Keyring(encryptor, cache_seconds=0)
    old = uncached.signing_key(db_session, "ES256").kid
    keyring.rotate(db_session, retire_after=LONG_AGO)
    assert uncached.signing_key(db_session, "ES256").kid == keyring.signing_key(db_session, "ES256").kid != old


# --- the automatic schedule (operations.md "Keys") -------------------------------------------

EVERY = dt.timedelta(days=90)


def _age_keys(session: Session, *, current_for: dt.timedelta, next_for: dt.timedelta) -> None:
    now = dt.datetime.now(dt.UTC)
    for row in session.scalars(select(SigningKey).where(SigningKey.purpose == "token")):
        if row.state == "current":
            row.activated_at = now - current_for
        if row.state == "next":
            row.created_at = now - next_for
    session.flush()


def test_the_schedule_rotates_a_key_that_has_signed_long_enough(db_session: Session, keyring: Keyring) -> None:
    before = {alg: _states(keyring, db_session, alg) for alg in ALGS}
    _age_keys(db_session, current_for=EVERY + dt.timedelta(hours=1), next_for=EVERY)
    assert keyring.rotate_if_due(db_session, every=EVERY, retire_after=dt.timedelta(hours=1))
    for alg in ALGS:
        after = _states(keyring, db_session, alg)
        assert after["current"] == before[alg]["next"] and after["retired"] == before[alg]["current"]
        assert after["next"] != before[alg]["next"]
    # The new current key has only just started: nothing more is due.
    assert not keyring.rotate_if_due(db_session, every=EVERY, retire_after=dt.timedelta(hours=1))


def test_the_schedule_waits_for_the_age_and_for_the_successor_to_be_known(db_session: Session,
                                                                         keyring: Keyring) -> None:
    before = _states(keyring, db_session, "ES256")
    _age_keys(db_session, current_for=EVERY - dt.timedelta(hours=1), next_for=EVERY)
    assert not keyring.rotate_if_due(db_session, every=EVERY, retire_after=dt.timedelta(hours=1))
    _age_keys(db_session, current_for=EVERY + dt.timedelta(hours=1), next_for=dt.timedelta(hours=2))
    assert not keyring.rotate_if_due(db_session, every=EVERY, retire_after=dt.timedelta(hours=1))  # too new to promote
    assert _states(keyring, db_session, "ES256") == before
