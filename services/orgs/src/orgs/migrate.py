"""`orgs-migrate`: apply orgs' migrations (also `python -m orgs.migrate`)."""

from __future__ import annotations

import sys
from pathlib import Path

from orgs.config import get_settings
from platform_common import migrations

MIGRATIONS = Path(__file__).parent / "migrations"


def main(argv: list[str] | None = None) -> int:
    migrations.migrate_service(get_settings(), MIGRATIONS)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
