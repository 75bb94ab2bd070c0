"""64-bit token counters and row ids on PostgreSQL: api_keys.token_budget and tokens_used, usage.id, spans.id

A key's lifetime token count passes 2^31 (a busy key does in weeks), and so do the ids of the usage and spans
tables; PostgreSQL's INTEGER stops there ("integer out of range": the usage writer would fail for good). SQLite's
INTEGER is already 64-bit, so it is left alone. On PostgreSQL this rewrites the tables once.

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

COLUMNS = {"api_keys": ["token_budget", "tokens_used"], "usage": ["id"], "spans": ["id"]}


def _alter(type_: type[sa.types.TypeEngine], sequence_type: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for table, columns in COLUMNS.items():
        for column in columns:
            op.alter_column(table, column, type_=type_())
            sequence = bind.scalar(sa.text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table, "c": column})
            if sequence:
                op.execute(f"ALTER SEQUENCE {sequence} AS {sequence_type}")


def upgrade() -> None:
    _alter(sa.BigInteger, "bigint")


def downgrade() -> None:
    _alter(sa.Integer, "integer")
