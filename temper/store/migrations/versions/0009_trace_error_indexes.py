"""traces: partial indexes over failed traces only (by workspace, key and model), for error lists

A list of one key's errors walked the key's index and checked every row's status: ~30 rows read per match
at a 3% error rate. Indexes that hold failed traces only are that list's exact answer, and cost nothing
when a trace succeeds.

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

FAILED = sa.text("status = 'error'")
INDEXES = {"ix_traces_errors_ws": ["workspace_id", "start_us"], "ix_traces_errors_key": ["key_id", "start_us"],
           "ix_traces_errors_model": ["model", "start_us"]}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "traces", columns, sqlite_where=FAILED, postgresql_where=FAILED)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, "traces")
