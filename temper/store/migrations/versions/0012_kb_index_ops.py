"""kb_index_ops: index changes an ingestion job made in another process, for the index's owner to apply;
64-bit ids for job_events and kb_chunks on PostgreSQL (as 0010 did for usage and spans)

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
WIDENED = {"job_events": "id", "kb_chunks": "id"}


def _alter(type_: type[sa.types.TypeEngine], sequence_type: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for table, column in WIDENED.items():
        op.alter_column(table, column, type_=type_())
        sequence = bind.scalar(sa.text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table, "c": column})
        if sequence:
            op.execute(f"ALTER SEQUENCE {sequence} AS {sequence_type}")


def upgrade() -> None:
    op.create_table(
        "kb_index_ops",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("kb_id", sa.String(40), nullable=False, index=True),
        sa.Column("job_id", sa.String(40), nullable=False, index=True),
        sa.Column("op", sa.String(10), nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("vectors", sa.LargeBinary, nullable=True),
        sa.Column("created_at", TS, nullable=False),
    )
    _alter(sa.BigInteger, "bigint")


def downgrade() -> None:
    _alter(sa.Integer, "integer")
    op.drop_table("kb_index_ops")
