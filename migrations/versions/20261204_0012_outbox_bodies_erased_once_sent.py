"""outbox bodies erased once sent or given up

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-04 20:15:00.000000+00:00

security.md "Secrets and data": outbox bodies hold one-time codes and links. From this release
they are sealed when queued and erased when sent or given up (idp/outbox.py); this erases the
clear bodies that earlier releases kept of messages already sent or given up. Messages still
waiting keep their body (sent, then erased). Data only, no schema change: the previous release
keeps working, and there is nothing to restore on downgrade.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    outbox = sa.table('outbox_messages', sa.column('body', sa.Text), sa.column('sent_at'), sa.column('failed_at'))
    op.execute(outbox.update()
               .where(sa.or_(outbox.c.sent_at.is_not(None), outbox.c.failed_at.is_not(None)))
               .values(body=''))


def downgrade() -> None:
    pass  # erased bodies cannot come back, and the previous release reads an empty body as it is
