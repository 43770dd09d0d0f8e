"""account deletion: users.deleted_at (a tombstone), outbox_events.destination

Revision ID: del0001a1b2
Revises: otok0001a1b2
Create Date: 2026-12-05 12:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import platform_common.models

revision: str = "del0001a1b2"
down_revision: str | None = "otok0001a1b2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("deleted_at", platform_common.models.UTCDateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "outbox_events",
        sa.Column("destination", sa.String(length=32), server_default="users", nullable=False),
    )


def downgrade() -> None:
    # Without the column every event would be the users service's: drop the others.
    op.execute("DELETE FROM outbox_events WHERE destination <> 'users'")
    op.drop_column("outbox_events", "destination")
    op.drop_column("users", "deleted_at")
