from orgs.config import get_settings
from orgs.models import Base
from platform_common.migrations import run_env

run_env(Base.metadata, lambda: get_settings().resolved_database_url())
