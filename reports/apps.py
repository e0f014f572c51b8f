"""App configuration: registers Relevo's system checks and what deleting a host also deletes."""
from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "reports"
    verbose_name = "Inventory"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, pre_delete

        from reports import checks  # noqa: F401  (registers the checks)
        from reports.models import Host
        from reports.services import lifecycle

        # A deleted host's rows go by cascade; their host-days' archives, keyed by address and day, go here.
        pre_delete.connect(lifecycle.host_days_note, sender=Host, dispatch_uid="reports.host_days_note")
        post_delete.connect(lifecycle.host_archives_forget, sender=Host, dispatch_uid="reports.host_archives_forget")
