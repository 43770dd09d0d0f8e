"""deleted users: a tombstone per account deleted at auth

Revision ID: del0003e5f6
Revises: 990a1a59a26e
Create Date: 2026-12-05 12:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import platform_common.models

revision: str = "del0003e5f6"
down_revision: str | None = "990a1a59a26e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deleted_users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "deleted_at", platform_common.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deleted_users")),
    )


def downgrade() -> None:
    op.drop_table("deleted_users")
