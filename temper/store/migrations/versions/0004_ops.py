"""ops: spans, traces, scores, annotation queues, prompts

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "spans",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("span_id", sa.String(16), nullable=False),
        sa.Column("trace_id", sa.String(32), nullable=False, index=True),
        sa.Column("parent_id", sa.String(16)),
        sa.Column("workspace_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("start_us", sa.BigInteger, nullable=False),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("attributes", sa.JSON, nullable=False),
        sa.Column("input", sa.Text),
        sa.Column("output", sa.Text),
    )
    op.create_table(
        "traces",
        sa.Column("trace_id", sa.String(32), primary_key=True),
        sa.Column("span_id", sa.String(16), nullable=False),
        sa.Column("parent_id", sa.String(16)),
        sa.Column("workspace_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("start_us", sa.BigInteger, nullable=False),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("app_id", sa.String(40)),
        sa.Column("model", sa.String(200)),
        sa.Column("key_id", sa.String(40)),
        sa.Column("input_tokens", sa.Integer, nullable=False),
        sa.Column("output_tokens", sa.Integer, nullable=False),
        sa.Column("cost", sa.Float, nullable=False),
        sa.Column("ttft_ms", sa.Float),
        sa.Column("span_count", sa.Integer, nullable=False),
        sa.Column("attributes", sa.JSON, nullable=False),
        sa.Column("input", sa.Text),
        sa.Column("output", sa.Text),
        sa.Column("raw_input", sa.Text),
        sa.Column("raw_output", sa.Text),
    )
    op.create_index("ix_traces_ws_start", "traces", ["workspace_id", "start_us"])
    op.create_index("ix_traces_model_start", "traces", ["model", "start_us"])
    op.create_index("ix_traces_key_start", "traces", ["key_id", "start_us"])
    op.create_index("ix_traces_app_start", "traces", ["app_id", "start_us"],
                    sqlite_where=sa.text("app_id IS NOT NULL"),
                    postgresql_where=sa.text("app_id IS NOT NULL"))
    op.create_table(
        "scores",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("workspace_id", sa.String(40), nullable=False),
        sa.Column("trace_id", sa.String(32), nullable=False, index=True),
        sa.Column("span_id", sa.String(16)),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("data_type", sa.String(20), nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("string_value", sa.String(200)),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("author", sa.String(200)),
        sa.Column("comment", sa.Text),
        sa.Column("queue_id", sa.String(40)),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_scores_name", "scores", ["workspace_id", "name"])
    op.create_table(
        "annotation_queues",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("workspace_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("filters", sa.JSON, nullable=False),
        sa.Column("score_configs", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "annotation_items",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("queue_id", sa.String(40), sa.ForeignKey("annotation_queues.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("annotated_by", sa.String(200)),
        sa.Column("done_at", TS),
    )
    op.create_table(
        "prompts",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("workspace_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ux_prompts_ws_name", "prompts", ["workspace_id", "name"], unique=True)
    op.create_table(
        "prompt_versions",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("prompt_id", sa.String(40), sa.ForeignKey("prompts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("type", sa.String(10), nullable=False),
        sa.Column("template", sa.JSON, nullable=False),
        sa.Column("variables", sa.JSON, nullable=False),
        sa.Column("model_config", sa.JSON, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(200)),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ux_prompt_versions", "prompt_versions", ["prompt_id", "version"], unique=True)
    op.create_table(
        "prompt_labels",
        sa.Column("prompt_id", sa.String(40), sa.ForeignKey("prompts.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("label", sa.String(50), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )


def downgrade() -> None:
    for name in ("prompt_labels", "prompt_versions", "prompts", "annotation_items", "annotation_queues", "scores",
                 "traces", "spans"):
        op.drop_table(name)
