"""`orgs-migrate`: apply orgs' migrations (also `python -m orgs.migrate`).

Runs as its own step (a Kubernetes Job, `make up`), never at app start-up. Idempotent.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from orgs.config import get_settings
from platform_common import migrations
from platform_common.observability import setup_logging

MIGRATIONS = Path(__file__).parent / "migrations"
logger = logging.getLogger("orgs.migrate")


def main(argv: list[str] | None = None) -> int:
    settings = get_settings()
    setup_logging(settings)
    migrations.upgrade(MIGRATIONS, settings.resolved_database_url())
    logger.info("orgs database is at the latest revision")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
