"""Delegations (delegation.md): who may act for whom, how, until when; and every change to one.

The invariants are named database constraints so no code path can store a delegation the
spec forbids; the indexes serve the two sign-in-path queries (whom may this delegate act for;
may they act for this principal now).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, false, true
from sqlalchemy.orm import Mapped, aliased, mapped_column

from store.db import Base, utcnow

TYPES = ("carer", "family", "parent", "attorney")
MODES = ("view", "act")
STATUSES = ("requested", "invited", "active", "suspended", "declined", "revoked", "expired")
BASES = ("consent", "parental_responsibility", "power_of_attorney", "deputyship")
REASONS = (
    "invited", "requested", "accepted", "approved", "created_by_operator", "created_for_dependent",
    "created_onward", "declined", "request_declined", "revoked_by_principal", "revoked_by_delegate",
    "revoked_by_operator", "stop_everyone", "upstream_ended", "ended_date_passed", "unused", "invitation_lapsed",
    "request_lapsed", "suspended_by_operator", "dependent_came_of_age", "resumed", "renewed",
    "young_person_consented",
)
# How a young person's agreement that their parent keeps helping was given (docs/delegation.md).
AGREEMENT_ASSURANCES = ("handover_password", "handover_passkey")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


class Delegation(Base):
    __tablename__ = "delegations"
    __table_args__ = (
        CheckConstraint(_in("type", TYPES), name="type"),
        CheckConstraint(_in("mode", MODES), name="mode"),
        CheckConstraint(_in("status", STATUSES), name="status"),
        CheckConstraint(_in("basis", BASES), name="basis"),
        CheckConstraint(_in("status_reason", REASONS), name="status_reason"),
        CheckConstraint("delegate_id IS NULL OR delegate_id <> principal_id", name="no_self_delegation"),
        CheckConstraint("ends_at IS NULL OR starts_at < ends_at", name="start_before_end"),
        CheckConstraint("type NOT IN ('carer', 'family') OR ends_at IS NOT NULL", name="carer_and_family_end"),
        CheckConstraint("type <> 'attorney' OR (evidence_reference IS NOT NULL AND evidence_checked_by IS NOT NULL)",
                        name="attorney_evidence"),
        CheckConstraint("(type IN ('carer', 'family')) = (basis = 'consent')", name="basis_fits_type"),
        CheckConstraint("status IN ('invited', 'requested', 'declined', 'expired', 'revoked') "
                        "OR delegate_id IS NOT NULL", name="active_has_delegate"),
        CheckConstraint("status <> 'invited' OR (invite_email IS NOT NULL AND token_hash IS NOT NULL)",
                        name="invitation_has_link"),
        CheckConstraint("parent_id IS NULL OR may_delegate_onward = false", name="one_hop_only"),
        CheckConstraint("parent_id IS NULL OR parent_id <> id", name="not_its_own_parent"),
        CheckConstraint("continued_assurance IS NULL OR " + _in("continued_assurance", AGREEMENT_ASSURANCES),
                        name="continued_assurance"),
        # The sign-in path: whom may this delegate act for (and check one principal).
        Index("ix_delegations_delegate_id_status_principal_id", "delegate_id", "status", "principal_id"),
        Index("ix_delegations_principal_id_status", "principal_id", "status"),
        Index("ix_delegations_status_ends_at", "status", "ends_at"),
        Index("ix_delegations_status_pending_until", "status", "pending_until"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    principal_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    delegate_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    invite_email: Mapped[str | None] = mapped_column(String(320))
    type: Mapped[str] = mapped_column(String(10))
    basis: Mapped[str] = mapped_column(String(30))
    evidence_reference: Mapped[str | None] = mapped_column(String(200))
    evidence_checked_by: Mapped[str | None] = mapped_column(String(200))
    evidence_checked_at: Mapped[dt.datetime | None]
    agencies: Mapped[list[str] | None] = mapped_column(JSON)  # None: every agency
    scopes: Mapped[str | None] = mapped_column(String(2000))  # None: every scope the principal allows
    mode: Mapped[str] = mapped_column(String(4))
    may_delegate_onward: Mapped[bool] = mapped_column(default=False, server_default=false())
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("delegations.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ends_at: Mapped[dt.datetime | None]
    status: Mapped[str] = mapped_column(String(10))
    status_reason: Mapped[str] = mapped_column(String(30))
    status_note: Mapped[str | None] = mapped_column(String(500))  # operator only: never shown to the delegate
    status_changed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    status_changed_by: Mapped[str] = mapped_column(String(250))
    notify: Mapped[bool] = mapped_column(default=True, server_default=true())  # False: safeguarding
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(250))
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)  # the emailed link, hashed
    pending_until: Mapped[dt.datetime | None]  # an invitation's or a request's deadline
    last_used_at: Mapped[dt.datetime | None]
    reminded_at: Mapped[dt.datetime | None]
    # A ``parent`` delegation past the configured age: when the young person, from their own
    # account, agreed that it continues (delegation.md "Review / expire").
    continued_at: Mapped[dt.datetime | None]
    continued_assurance: Mapped[str | None] = mapped_column(String(30))  # AGREEMENT_ASSURANCES

    @property
    def scope_set(self) -> frozenset[str] | None:
        return None if self.scopes is None else frozenset(self.scopes.split())

    def covers_agency(self, agency_id: str) -> bool:
        return self.agencies is None or agency_id in self.agencies

    def in_force(self, now: dt.datetime) -> bool:
        return self.status == "active" and self.starts_at <= now and (self.ends_at is None or now < self.ends_at)

    def summary(self) -> dict[str, Any]:
        """The ``delegation`` claim (delegation.md "What agencies receive"; the caller puts the agency's
        pairwise reference in place of ``id``); for a ``parent`` delegation
        the young person agreed to continue, ``young_person_agreement`` says how that agreement was
        given (docs/delegation.md "A young person's agreement")."""
        claim: dict[str, Any] = {"id": self.id, "type": self.type, "mode": self.mode}
        if self.continued_assurance is not None:
            claim["young_person_agreement"] = self.continued_assurance
        return claim


# The delegation an onward one was passed on from, for joins. Made once: building an alias (and
# compiling a statement around a new one) costs about a millisecond, more than the query it serves.
UPSTREAM = aliased(Delegation, name="upstream")


class DelegationChange(Base):
    """Who changed a delegation's status, when, from what to what and why (history: never updated)."""

    __tablename__ = "delegation_changes"
    __table_args__ = (
        CheckConstraint(_in("to_status", STATUSES), name="to_status"),
        CheckConstraint(_in("reason", REASONS), name="reason"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delegation_id: Mapped[str] = mapped_column(ForeignKey("delegations.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    from_status: Mapped[str | None] = mapped_column(String(10))
    to_status: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(String(30))
    actor: Mapped[str] = mapped_column(String(250))
    note: Mapped[str | None] = mapped_column(String(500))
