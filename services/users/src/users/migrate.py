"""`users-migrate`: apply users' migrations (also `python -m users.migrate`)."""

from __future__ import annotations

import sys
from pathlib import Path

from platform_common import migrations
from users.config import get_settings

MIGRATIONS = Path(__file__).parent / "migrations"


def main(argv: list[str] | None = None) -> int:
    migrations.migrate_service(get_settings(), MIGRATIONS)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
