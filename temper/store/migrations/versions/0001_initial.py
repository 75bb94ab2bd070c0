"""initial schema: workspaces, models, api_keys, usage, revisions

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "workspaces",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "models",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("workspace_id", sa.String(40), sa.ForeignKey("workspaces.id"), nullable=False),
        sa.Column("modality", sa.String(20), nullable=False),
        sa.Column("aliases", sa.JSON, nullable=False),
        sa.Column("deployments", sa.JSON, nullable=False),
        sa.Column("fallbacks", sa.JSON, nullable=False),
        sa.Column("context_length", sa.Integer),
        sa.Column("parameters", sa.String(40)),
        sa.Column("input_price", sa.Float, nullable=False),
        sa.Column("output_price", sa.Float, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("workspace_id", sa.String(40), sa.ForeignKey("workspaces.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(20), nullable=False),
        sa.Column("is_admin", sa.Boolean, nullable=False),
        sa.Column("allowed_models", sa.JSON),
        sa.Column("rpm", sa.Integer),
        sa.Column("tpm", sa.Integer),
        sa.Column("token_budget", sa.Integer),
        sa.Column("tokens_used", sa.Integer, nullable=False),
        sa.Column("expires_at", TS),
        sa.Column("revoked_at", TS),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "usage",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(40), nullable=False),
        sa.Column("workspace_id", sa.String(40), nullable=False),
        sa.Column("key_id", sa.String(40)),
        sa.Column("app_id", sa.String(40)),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("operation", sa.String(20), nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=False),
        sa.Column("cost", sa.Float, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("ttft_ms", sa.Float),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("error_code", sa.String(60)),
        sa.Column("stream", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_usage_key_time", "usage", ["key_id", "created_at"])
    op.create_index("ix_usage_model_time", "usage", ["model", "created_at"])
    op.create_table(
        "revisions",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("value", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    for name in ("revisions", "usage", "api_keys", "models", "workspaces"):
        op.drop_table(name)
