"""lost passkeys are removed after a wait

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 06:30:00.000000+00:00

sign-in.md "Account recovery": a citizen who lost every passkey asks for them to be removed;
``accounts.passkeys_reset_at`` is when that happens (idp/passkey_reset.py). A nullable column and
its index only, so the previous release keeps working.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import store.db

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('passkeys_reset_at', store.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_accounts_passkeys_reset_at'), ['passkeys_reset_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_accounts_passkeys_reset_at'))
        batch_op.drop_column('passkeys_reset_at')
