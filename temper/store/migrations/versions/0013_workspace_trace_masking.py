"""workspaces.trace_mask_pii: a workspace's choice to store traces with personal data masked or verbatim
(NULL: the server's TEMPER_TRACE_MASK_PII)

Revision ID: 0013
Revises: 0012
"""
import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("workspaces", sa.Column("trace_mask_pii", sa.Boolean, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workspaces") as batch:
        batch.drop_column("trace_mask_pii")
