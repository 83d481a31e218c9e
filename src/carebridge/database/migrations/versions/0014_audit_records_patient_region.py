"""audit records carry the patient's region when no hospital is theirs (regulators see partner apps' reads)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 20:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("region", sa.String(length=12), nullable=True))
        batch_op.create_index("ix_audit_region_time", ["region", "occurred_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_region_time")
        batch_op.drop_column("region")
