"""authorization code redemption attempts

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 20:20:00.000000+00:00

A code is consumed only by a successful redemption (RFC 6749 §10.5, RFC 7636 §4.6), so a wrong
``code_verifier`` no longer burns it; instead each attempt is counted, atomically and before the
verifier is checked, and a code that has had its attempts is refused (idp.oauth.grants).
Existing rows start at 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('redemption_attempts', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.drop_column('redemption_attempts')
