"""``manage.py create_api_token USERNAME``: prints a new read token alone on the last line."""
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from reports import services


class Command(BaseCommand):
    help = "Create a token that reads the API as an existing user. The token is shown once."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="api", help="A label for the token.")

    def handle(self, *args, username: str, name: str, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}. Create one with `manage.py createsuperuser`.")
        if not user.is_active:
            raise CommandError(f"User {username!r} is inactive.")
        token, raw = services.api_token_create(user=user, name=name)
        self.stderr.write(f"API token for {user.username!r} created; store it now, it is not shown again.")
        self.stdout.write(raw)
