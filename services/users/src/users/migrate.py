"""`users-migrate`: apply users' migrations (also `python -m users.migrate`)."""

from __future__ import annotations

import sys
from pathlib import Path

from platform_common import migrations
from users.config import get_settings

MIGRATIONS = Path(__file__).parent / "migrations"
main = migrations.migrate_command(get_settings, MIGRATIONS)

if __name__ == "__main__":
    sys.exit(main())
