"""audit records by hospital and time (the FHIR AuditEvent search for regulators)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 19:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.create_index("ix_audit_hospital_time", ["hospital_id", "occurred_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_hospital_time")
