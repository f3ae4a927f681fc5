"""merge ledger and sign-in branches

Revision ID: 0005
Revises: 0002, 0004
Create Date: 2026-11-30 02:42:02.042053+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import store.db


revision: str = '0005'
down_revision: str | None = ('0002', '0004')
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
