"""``manage.py revoke_agent_token``: stop an agent token at once (by host, name, prefix or value)."""
from django.core.management.base import BaseCommand, CommandError

from reports import services
from reports.models import AgentToken


class Command(BaseCommand):
    help = (
        "Revoke agent tokens. The next request with a revoked token gets 401: "
        "tokens are checked against the database on every request."
    )

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--host-id", help="Every live token enrolled for this host.id.")
        which.add_argument("--name", help="The token(s) with this name (as given to create_agent_token).")
        which.add_argument("--prefix", help="The token whose display prefix is this (e.g. rlv_a_Ab12Cd).")
        which.add_argument("--token", help="The raw token value (only its hash is looked up).")

    def handle(self, *args, host_id=None, name=None, prefix=None, token=None, **options):
        if host_id is not None:
            count = services.agent_tokens_revoke_for_host(host_id=host_id)
        else:
            live = AgentToken.objects.filter(revoked_at__isnull=True)
            if name is not None:
                tokens = list(live.filter(name=name))
            elif prefix is not None:
                tokens = list(live.filter(key_prefix=prefix))
            else:
                tokens = list(live.filter(key_hash=AgentToken.hash(token.strip())))
            for item in tokens:
                services.agent_token_revoke(token=item)
            count = len(tokens)
        if count == 0:
            raise CommandError("No live agent token matched; nothing was revoked.")
        self.stdout.write(f"Revoked {count} agent token(s).")
