"""pairwise ledger pseudonyms; privileged scopes granted by operators only

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-04 20:00:00.000000+00:00

docs/consent-ledger.md "Pseudonyms" and "Migrating to pairwise pseudonyms":

* ``accounts.ledger_secret``: the per-citizen secret new entries' pairwise pseudonyms are derived
  from. Nullable and filled on each account's next ledger event, so no ledger entry is touched:
  entries already appended keep their one legacy pseudonym (``accounts.ledger_pseudonym``, kept).
* ``clients.privileged_scopes``: scopes (``ledger:audit``) only an operator grants. A privileged
  scope found in a client's registered ``scope`` is removed from it and **not** carried over:
  registration accepted it from anyone holding an agency's initial access token, so it cannot be
  told from an operator's grant. Operators re-grant real auditors with ``idp client grant-scope``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PRIVILEGED_SCOPES = ('ledger:audit',)  # idp.models.clients.PRIVILEGED_SCOPES when this was written


def upgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ledger_secret', sa.LargeBinary(length=32), nullable=True))
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('privileged_scopes', sa.String(length=200), server_default='',
                                      nullable=False))
    _strip_self_registered_privileges()


def _strip_self_registered_privileges() -> None:
    clients = sa.table('clients', sa.column('client_id', sa.String), sa.column('scope', sa.String))
    connection = op.get_bind()
    for client_id, scope in connection.execute(sa.select(clients.c.client_id, clients.c.scope)).all():
        if any(token in PRIVILEGED_SCOPES for token in scope.split()):
            kept = ' '.join(token for token in scope.split() if token not in PRIVILEGED_SCOPES)
            connection.execute(sa.update(clients).where(clients.c.client_id == client_id).values(scope=kept))


def downgrade() -> None:
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_column('privileged_scopes')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('ledger_secret')
