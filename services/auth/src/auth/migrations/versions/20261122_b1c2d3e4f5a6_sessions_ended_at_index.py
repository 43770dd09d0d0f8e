"""index sessions by ended_at, for rebuilding the revocation keys

Revision ID: b1c2d3e4f5a6
Revises: af6cd90a81f9
Create Date: 2026-11-22 18:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b1c2d3e4f5a6"
down_revision: str | None = "af6cd90a81f9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_sessions_ended_at",
        "sessions",
        ["ended_at"],
        unique=False,
        postgresql_where=sa.text("ended_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_sessions_ended_at", table_name="sessions")
