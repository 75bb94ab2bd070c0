"""knowledge-base sources synced from elsewhere (database queries): kb_sources; knowledge_bases.dim

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("knowledge_bases") as batch:
        batch.add_column(sa.Column("dim", sa.Integer))  # the index's dimensions, known at the first embedding
    op.create_table(
        "kb_sources",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("kb_id", sa.String(40), sa.ForeignKey("knowledge_bases.id", ondelete="CASCADE"), nullable=False),
        sa.Column("workspace_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("cursor", sa.JSON),
        sa.Column("synced_at", TS),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ux_kb_sources_name", "kb_sources", ["kb_id", "name"], unique=True)


def downgrade() -> None:
    op.drop_table("kb_sources")
    with op.batch_alter_table("knowledge_bases") as batch:
        batch.drop_column("dim")
