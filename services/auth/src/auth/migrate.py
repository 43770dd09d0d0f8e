"""`auth-migrate`: apply auth's migrations, then seed the platform admin when configured.

Runs as its own step (a Kubernetes Job, `make up`), never at app start-up. Idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

from auth.config import AuthSettings, get_settings
from platform_common import migrations
from platform_common.state import platform_state

MIGRATIONS = Path(__file__).parent / "migrations"
logger = logging.getLogger("auth.migrate")


async def seed_admin(settings: AuthSettings, email: str, password: str) -> bool:
    """Create (or promote) the platform admin; True when the account was created."""
    from prometheus_client import values

    from auth.app import create_app

    # The app counts in memory here, not in PROMETHEUS_MULTIPROC_DIR: the image sets that for
    # the servers, but the migration Job has no writable mount there (read-only root file
    # system) and its counts would mean nothing. prometheus_client picks the value class per
    # process from the environment; this one-shot command chooses the in-memory one.
    values.ValueClass = values.MutexValue
    app = create_app(settings, run_outbox=False, run_revocation_keeper=False)
    async with (
        app.router.lifespan_context(app),
        platform_state(app).sessionmaker() as db,
        db.begin(),
    ):
        _, created = await app.state.account_service.ensure_admin(db, email, password)
    return bool(created)


def main(argv: list[str] | None = None) -> int:
    settings = get_settings()
    migrations.migrate_service(settings, MIGRATIONS)
    email = settings.platform_admin_email
    password = settings.platform_admin_password
    if email and password:
        created = asyncio.run(seed_admin(settings, email, password.get_secret_value()))
        logger.info("platform admin %s %s", email, "created" if created else "already present")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
