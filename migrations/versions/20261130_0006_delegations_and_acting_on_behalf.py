"""delegations and acting on behalf

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 02:58:21.449494+00:00

delegation.md: delegations (an explicit state machine, invariants as named constraints, indexes
for the sign-in path) and their change history; token families and authorization codes record
the delegation and the acting delegate; clients say whether they support acting-for tokens.
Only new tables and nullable or defaulted columns, so the previous release keeps working.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import store.db


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('delegations',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('principal_id', sa.String(length=36), nullable=False),
    sa.Column('delegate_id', sa.String(length=36), nullable=True),
    sa.Column('invite_email', sa.String(length=320), nullable=True),
    sa.Column('type', sa.String(length=10), nullable=False),
    sa.Column('basis', sa.String(length=30), nullable=False),
    sa.Column('evidence_reference', sa.String(length=200), nullable=True),
    sa.Column('evidence_checked_by', sa.String(length=200), nullable=True),
    sa.Column('evidence_checked_at', store.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('agencies', sa.JSON(), nullable=True),
    sa.Column('scopes', sa.String(length=2000), nullable=True),
    sa.Column('mode', sa.String(length=4), nullable=False),
    sa.Column('may_delegate_onward', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('parent_id', sa.String(length=36), nullable=True),
    sa.Column('starts_at', store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ends_at', store.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('status_reason', sa.String(length=30), nullable=False),
    sa.Column('status_note', sa.String(length=500), nullable=True),
    sa.Column('status_changed_at', store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status_changed_by', sa.String(length=250), nullable=False),
    sa.Column('notify', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('created_at', store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=250), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=True),
    sa.Column('pending_until', store.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', store.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reminded_at', store.db.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("(type IN ('carer', 'family')) = (basis = 'consent')", name=op.f('ck_delegations_basis_fits_type')),
    sa.CheckConstraint("basis IN ('consent', 'parental_responsibility', 'power_of_attorney', 'deputyship')", name=op.f('ck_delegations_basis')),
    sa.CheckConstraint("mode IN ('view', 'act')", name=op.f('ck_delegations_mode')),
    sa.CheckConstraint("status <> 'invited' OR (invite_email IS NOT NULL AND token_hash IS NOT NULL)", name=op.f('ck_delegations_invitation_has_link')),
    sa.CheckConstraint("status IN ('invited', 'requested', 'declined', 'expired', 'revoked') OR delegate_id IS NOT NULL", name=op.f('ck_delegations_active_has_delegate')),
    sa.CheckConstraint("status IN ('requested', 'invited', 'active', 'suspended', 'declined', 'revoked', 'expired')", name=op.f('ck_delegations_status')),
    sa.CheckConstraint("status_reason IN ('invited', 'requested', 'accepted', 'approved', 'created_by_operator', 'created_for_dependent', 'created_onward', 'declined', 'request_declined', 'revoked_by_principal', 'revoked_by_delegate', 'revoked_by_operator', 'stop_everyone', 'upstream_ended', 'ended_date_passed', 'unused', 'invitation_lapsed', 'request_lapsed', 'suspended_by_operator', 'dependent_came_of_age', 'resumed', 'renewed')", name=op.f('ck_delegations_status_reason')),
    sa.CheckConstraint("type <> 'attorney' OR (evidence_reference IS NOT NULL AND evidence_checked_by IS NOT NULL)", name=op.f('ck_delegations_attorney_evidence')),
    sa.CheckConstraint("type IN ('carer', 'family', 'parent', 'attorney')", name=op.f('ck_delegations_type')),
    sa.CheckConstraint("type NOT IN ('carer', 'family') OR ends_at IS NOT NULL", name=op.f('ck_delegations_carer_and_family_end')),
    sa.CheckConstraint('delegate_id IS NULL OR delegate_id <> principal_id', name=op.f('ck_delegations_no_self_delegation')),
    sa.CheckConstraint('ends_at IS NULL OR starts_at < ends_at', name=op.f('ck_delegations_start_before_end')),
    sa.CheckConstraint('parent_id IS NULL OR may_delegate_onward = false', name=op.f('ck_delegations_one_hop_only')),
    sa.CheckConstraint('parent_id IS NULL OR parent_id <> id', name=op.f('ck_delegations_not_its_own_parent')),
    sa.ForeignKeyConstraint(['delegate_id'], ['accounts.id'], name=op.f('fk_delegations_delegate_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['parent_id'], ['delegations.id'], name=op.f('fk_delegations_parent_id_delegations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['principal_id'], ['accounts.id'], name=op.f('fk_delegations_principal_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_delegations')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_delegations_token_hash'))
    )
    with op.batch_alter_table('delegations', schema=None) as batch_op:
        batch_op.create_index('ix_delegations_delegate_id_status_principal_id', ['delegate_id', 'status', 'principal_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_delegations_parent_id'), ['parent_id'], unique=False)
        batch_op.create_index('ix_delegations_principal_id_status', ['principal_id', 'status'], unique=False)
        batch_op.create_index('ix_delegations_status_ends_at', ['status', 'ends_at'], unique=False)
        batch_op.create_index('ix_delegations_status_pending_until', ['status', 'pending_until'], unique=False)

    op.create_table('delegation_changes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('delegation_id', sa.String(length=36), nullable=False),
    sa.Column('at', store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('from_status', sa.String(length=10), nullable=True),
    sa.Column('to_status', sa.String(length=10), nullable=False),
    sa.Column('reason', sa.String(length=30), nullable=False),
    sa.Column('actor', sa.String(length=250), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.CheckConstraint("reason IN ('invited', 'requested', 'accepted', 'approved', 'created_by_operator', 'created_for_dependent', 'created_onward', 'declined', 'request_declined', 'revoked_by_principal', 'revoked_by_delegate', 'revoked_by_operator', 'stop_everyone', 'upstream_ended', 'ended_date_passed', 'unused', 'invitation_lapsed', 'request_lapsed', 'suspended_by_operator', 'dependent_came_of_age', 'resumed', 'renewed')", name=op.f('ck_delegation_changes_reason')),
    sa.CheckConstraint("to_status IN ('requested', 'invited', 'active', 'suspended', 'declined', 'revoked', 'expired')", name=op.f('ck_delegation_changes_to_status')),
    sa.ForeignKeyConstraint(['delegation_id'], ['delegations.id'], name=op.f('fk_delegation_changes_delegation_id_delegations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_delegation_changes'))
    )
    with op.batch_alter_table('delegation_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_delegation_changes_delegation_id'), ['delegation_id'], unique=False)

    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('delegation_id', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('actor_account_id', sa.String(length=36), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_authorization_codes_delegation_id_delegations'), 'delegations', ['delegation_id'], ['id'], ondelete='SET NULL')
        batch_op.create_foreign_key(batch_op.f('fk_authorization_codes_actor_account_id_accounts'), 'accounts', ['actor_account_id'], ['id'], ondelete='CASCADE')

    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('delegation_supported', sa.Boolean(), server_default=sa.true(), nullable=False))

    with op.batch_alter_table('token_families', schema=None) as batch_op:
        batch_op.add_column(sa.Column('delegation_id', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('actor_account_id', sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f('ix_token_families_delegation_id'), ['delegation_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_token_families_actor_account_id_accounts'), 'accounts', ['actor_account_id'], ['id'], ondelete='CASCADE')
        batch_op.create_foreign_key(batch_op.f('fk_token_families_delegation_id_delegations'), 'delegations', ['delegation_id'], ['id'], ondelete='SET NULL')



def downgrade() -> None:
    with op.batch_alter_table('token_families', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_token_families_delegation_id_delegations'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_token_families_actor_account_id_accounts'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_token_families_delegation_id'))
        batch_op.drop_column('actor_account_id')
        batch_op.drop_column('delegation_id')

    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_column('delegation_supported')

    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_authorization_codes_actor_account_id_accounts'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_authorization_codes_delegation_id_delegations'), type_='foreignkey')
        batch_op.drop_column('actor_account_id')
        batch_op.drop_column('delegation_id')

    with op.batch_alter_table('delegation_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_delegation_changes_delegation_id'))

    op.drop_table('delegation_changes')
    with op.batch_alter_table('delegations', schema=None) as batch_op:
        batch_op.drop_index('ix_delegations_status_pending_until')
        batch_op.drop_index('ix_delegations_status_ends_at')
        batch_op.drop_index('ix_delegations_principal_id_status')
        batch_op.drop_index(batch_op.f('ix_delegations_parent_id'))
        batch_op.drop_index('ix_delegations_delegate_id_status_principal_id')

    op.drop_table('delegations')
