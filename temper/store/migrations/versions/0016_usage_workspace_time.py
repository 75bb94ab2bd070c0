"""usage (workspace_id, created_at): Usage and Analytics both count a workspace's usage rows over a period;
without it the last hour of 385k rows took 80 ms (a scan) against 10 ms on the traces' equivalent index

Revision ID: 0016
Revises: 0015
"""
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_usage_ws_time", "usage", ["workspace_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_usage_ws_time", table_name="usage")
