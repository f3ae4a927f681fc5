"""consent ledger: RFC 9162 tree tables, receipts, checkpoints; pseudonyms, purposes, statutory basis

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 03:10:00.000000+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import store.db

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('ledger_checkpoints',
    sa.Column('tree_size', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('root_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created_at', store.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tree_size', name=op.f('pk_ledger_checkpoints'))
    )
    op.create_table('ledger_entries',
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('leaf', sa.Text(), nullable=False),
    sa.Column('leaf_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('created_at', store.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('seq >= 0', name=op.f('ck_ledger_entries_seq_not_negative')),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_ledger_entries'))
    )
    head = op.create_table('ledger_head',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('frontier', sa.LargeBinary(), nullable=False),
    sa.Column('checkpoint_size', sa.BigInteger(), nullable=False),
    sa.Column('checkpoint_at', store.db.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint('id = 1', name=op.f('ck_ledger_head_single_row')),
    sa.CheckConstraint('size >= 0 AND checkpoint_size >= 0 AND checkpoint_size <= size',
                       name=op.f('ck_ledger_head_sizes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_head'))
    )
    # The row every append locks: it must exist before the first append.
    op.bulk_insert(head, [{'id': 1, 'size': 0, 'frontier': b'', 'checkpoint_size': 0}])
    op.create_table('ledger_nodes',
    sa.Column('level', sa.SmallInteger(), autoincrement=False, nullable=False),
    sa.Column('idx', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('hash', sa.LargeBinary(length=32), nullable=False),
    sa.PrimaryKeyConstraint('level', 'idx', name=op.f('pk_ledger_nodes'))
    )
    op.create_table('ledger_receipts',
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('token', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['seq'], ['ledger_entries.seq'], name=op.f('fk_ledger_receipts_seq_ledger_entries')),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_ledger_receipts'))
    )
    op.create_table('ledger_subjects',
    sa.Column('pseudonym', sa.String(length=32), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['seq'], ['ledger_entries.seq'], name=op.f('fk_ledger_subjects_seq_ledger_entries')),
    sa.PrimaryKeyConstraint('pseudonym', 'seq', name=op.f('pk_ledger_subjects'))
    )
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ledger_pseudonym', sa.String(length=32), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_accounts_ledger_pseudonym'), ['ledger_pseudonym'])

    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('purpose', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('consent_days', sa.Integer(), server_default='365', nullable=False))
        batch_op.add_column(sa.Column('statutory_basis', sa.String(length=500), nullable=True))
        batch_op.create_check_constraint(op.f('ck_clients_consent_days_positive'), 'consent_days > 0')

    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expired_at', store.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('purpose', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('last_used_at', store.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.drop_column('last_used_at')
        batch_op.drop_column('purpose')
        batch_op.drop_column('expired_at')

    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_clients_consent_days_positive'), type_='check')
        batch_op.drop_column('statutory_basis')
        batch_op.drop_column('consent_days')
        batch_op.drop_column('purpose')

    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_accounts_ledger_pseudonym'), type_='unique')
        batch_op.drop_column('ledger_pseudonym')

    op.drop_table('ledger_subjects')
    op.drop_table('ledger_receipts')
    op.drop_table('ledger_nodes')
    op.drop_table('ledger_head')
    op.drop_table('ledger_entries')
    op.drop_table('ledger_checkpoints')
