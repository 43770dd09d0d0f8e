from platform_common.migrations import run_env
from users.config import get_settings
from users.models import Profile

run_env(Profile.metadata, lambda: get_settings().resolved_database_url())
