"""``manage.py create_agent_token NAME``: prints a new agent token alone on the last line."""
from django.core.management.base import BaseCommand, CommandError

from reports import services


class Command(BaseCommand):
    help = "Create a token that lets agents upload snapshots. The token is shown once."

    def add_arguments(self, parser):
        parser.add_argument("name", help="A label for the token, e.g. the fleet or host it is for.")

    def handle(self, *args, name: str, **options):
        name = name.strip()
        if not name or len(name) > 100:
            raise CommandError("The name must be 1 to 100 characters.")
        token, raw = services.agent_token_create(name=name)
        self.stderr.write(f"Agent token {token.name!r} created; store it now, it is not shown again.")
        self.stdout.write(raw)
