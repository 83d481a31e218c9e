"""idempotency records: an index for their retention; on PostgreSQL every new record is announced to the
workers (``LISTEN carebridge_idempotency``), in the inserting transaction

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 05:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_FUNCTION = """
CREATE OR REPLACE FUNCTION carebridge_idempotency_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('carebridge_idempotency', NEW.user_id::text || ':' || NEW.key);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    with op.batch_alter_table("idempotency_records", schema=None) as batch_op:
        batch_op.create_index("ix_idempotency_records_created_at", ["created_at"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_FUNCTION)
        op.execute(
            "CREATE TRIGGER idempotency_records_notify AFTER INSERT ON idempotency_records "
            "FOR EACH ROW EXECUTE FUNCTION carebridge_idempotency_notify()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS idempotency_records_notify ON idempotency_records")
        op.execute("DROP FUNCTION IF EXISTS carebridge_idempotency_notify()")
    with op.batch_alter_table("idempotency_records", schema=None) as batch_op:
        batch_op.drop_index("ix_idempotency_records_created_at")
