"""`orgs-migrate`: apply orgs' migrations (also `python -m orgs.migrate`)."""

from __future__ import annotations

import sys
from pathlib import Path

from orgs.config import get_settings
from platform_common import migrations

MIGRATIONS = Path(__file__).parent / "migrations"
main = migrations.migrate_command(get_settings, MIGRATIONS)

if __name__ == "__main__":
    sys.exit(main())
