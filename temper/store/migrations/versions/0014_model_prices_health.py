"""models.input_price/output_price may be NULL (no price set, not "free"); model_health: the last reachability
check of each remote model

Revision ID: 0014
Revises: 0013
"""
import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.alter_column("input_price", existing_type=sa.Float, nullable=True)
        batch.alter_column("output_price", existing_type=sa.Float, nullable=True)
    op.create_table(
        "model_health",
        sa.Column("model_id", sa.String(200), primary_key=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("code", sa.String(40), nullable=True),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("status", sa.Integer, nullable=True),
        sa.Column("latency_ms", sa.Float, nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("model_health")
    op.execute("UPDATE models SET input_price = 0 WHERE input_price IS NULL")
    op.execute("UPDATE models SET output_price = 0 WHERE output_price IS NULL")
    with op.batch_alter_table("models") as batch:
        batch.alter_column("input_price", existing_type=sa.Float, nullable=False)
        batch.alter_column("output_price", existing_type=sa.Float, nullable=False)
