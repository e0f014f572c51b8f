"""Reads of the alerts for the API and the pages: the rules, and what fired recently."""

from __future__ import annotations

from django.db.models import QuerySet

from reports.models import AlertDelivery, AlertRule


def alert_rule_list() -> QuerySet[AlertRule]:
    return AlertRule.objects.prefetch_related("destinations").order_by("name")


def alert_recent(*, state: str | None = None, host: int | None = None, rule: int | None = None) -> QuerySet:
    """Deliveries, newest first, optionally of one state, host or rule."""
    deliveries = AlertDelivery.objects.select_related("rule", "destination").order_by("-created_at", "-id")
    if state:
        deliveries = deliveries.filter(state=state)
    if host is not None:
        deliveries = deliveries.filter(host_id=host)
    if rule is not None:
        deliveries = deliveries.filter(rule_id=rule)
    return deliveries
