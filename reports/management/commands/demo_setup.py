"""``manage.py demo_setup``: the first-run set-up behind ``make run``.

Creates a demo admin user and an agent token when there are none, prints
them, and keeps the agent token in the git-ignored ``.env`` (as
``INVENTORY_TOKEN``) so that the next ``make run`` can still send a snapshot:
only the token's hash is in the database.
"""

import secrets
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from inventory_site import envfile
from reports import services
from reports.models import AgentToken


class Command(BaseCommand):
    help = "Create a demo admin user and an agent token if none exist (for make run)."

    def add_arguments(self, parser):
        parser.add_argument("--env-file", default=".env", help="Where to keep the demo agent token.")

    def handle(self, *args, env_file: str, **options):
        users = get_user_model().objects
        if not users.filter(is_superuser=True).exists():
            password = secrets.token_urlsafe(12)
            users.create_superuser("admin", "admin@example.invalid", password)
            self.stdout.write(f"Created the admin user:  admin / {password}")
            envfile.set_value(Path(env_file), "RELEVO_DEMO_ADMIN_PASSWORD", password)
        else:
            self.stdout.write("An admin user exists already (its password is in .env if make run created it).")
        if not AgentToken.objects.filter(revoked_at__isnull=True).exists():
            _, raw = services.agent_token_create(name="demo")
            envfile.set_value(Path(env_file), "INVENTORY_TOKEN", raw)
            self.stdout.write(f"Created the agent token 'demo':  {raw}  (saved in {env_file} as INVENTORY_TOKEN)")
