"""single-use form tokens; how a young person's agreement was given

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-04 20:00:00.000000+00:00

``form_submissions``: one row per state-changing form submitted, written in the transaction of the
change it made (idp/forms.py), so a second submission of the same rendered form gets the first's
outcome instead of making the change again. ``delegations.continued_assurance``: how the young
person's agreement that a parent keeps helping was given (docs/delegation.md). A new table and a
nullable column only, so the previous release keeps working.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import store.db

revision: str = '0014'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'form_submissions',
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('path', sa.String(length=2000), nullable=False),
        sa.Column('outcome', sa.String(length=2000), nullable=True),
        sa.Column('flow', sa.JSON(), nullable=True),
        sa.Column('created_at', store.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_form_submissions')),
    )
    with op.batch_alter_table('form_submissions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_form_submissions_created_at'), ['created_at'], unique=False)
    with op.batch_alter_table('delegations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('continued_assurance', sa.String(length=30), nullable=True))
        batch_op.create_check_constraint(
            'continued_assurance',
            "continued_assurance IS NULL OR continued_assurance IN ('handover_password', 'handover_passkey')")


def downgrade() -> None:
    with op.batch_alter_table('delegations', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_delegations_continued_assurance'), type_='check')
        batch_op.drop_column('continued_assurance')
    with op.batch_alter_table('form_submissions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_form_submissions_created_at'))
    op.drop_table('form_submissions')
