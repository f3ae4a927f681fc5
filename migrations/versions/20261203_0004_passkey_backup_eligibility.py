"""passkey backup eligibility

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 10:00:00.000000+00:00

WebAuthn L3 §6.1.3: a credential's backup eligibility (BE) is fixed when it is created; the
relying party stores it, checks it at every assertion and uses it for ``amr`` (``hwk``/``swk``).
Existing rows (none in production yet) default to not eligible.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('passkeys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('backup_eligible', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('passkeys', schema=None) as batch_op:
        batch_op.drop_column('backup_eligible')
