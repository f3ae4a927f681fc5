"""a young person agrees that a parent delegation continues; handing a child profile over

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 05:20:00.000000+00:00

delegation.md "Review / expire": a ``parent`` delegation is suspended when the dependent reaches
the configured age unless the young person, now with their own account, consents to continue.
``delegations.continued_at`` records that consent and the reason code ``young_person_consented``
joins the allowed status reasons; an emailed single-use ``handover`` link gives a child profile to
the young person as their own account. A nullable column and wider CHECK constraints only, so
the previous release keeps working.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import store.db

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_REASONS = (
    "invited", "requested", "accepted", "approved", "created_by_operator", "created_for_dependent",
    "created_onward", "declined", "request_declined", "revoked_by_principal", "revoked_by_delegate",
    "revoked_by_operator", "stop_everyone", "upstream_ended", "ended_date_passed", "unused", "invitation_lapsed",
    "request_lapsed", "suspended_by_operator", "dependent_came_of_age", "resumed", "renewed",
)
NEW_REASONS = (*OLD_REASONS, "young_person_consented")


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def _checks(reasons: Sequence[str], purposes: Sequence[str]) -> None:
    with op.batch_alter_table('delegations', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_delegations_status_reason'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_delegations_status_reason'), _in('status_reason', reasons))
    with op.batch_alter_table('delegation_changes', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_delegation_changes_reason'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_delegation_changes_reason'), _in('reason', reasons))
    with op.batch_alter_table('email_challenges', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_email_challenges_purpose'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_email_challenges_purpose'), _in('purpose', purposes))


def upgrade() -> None:
    with op.batch_alter_table('delegations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('continued_at', store.db.UTCDateTime(timezone=True), nullable=True))
    _checks(NEW_REASONS, ("signup", "recovery", "handover"))


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM email_challenges WHERE purpose = 'handover'"))
    for table, column in (("delegations", "status_reason"), ("delegation_changes", "reason")):
        op.execute(sa.text(f"UPDATE {table} SET {column} = 'renewed' WHERE {column} = 'young_person_consented'"))
    _checks(OLD_REASONS, ("signup", "recovery"))
    with op.batch_alter_table('delegations', schema=None) as batch_op:
        batch_op.drop_column('continued_at')
