"""The "Recent alerts" page: what the alert rules fired, newest first (``?host=`` narrows it to one host)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render
from django.views.decorators.http import require_GET

from reports.alerts import selectors

ALERTS_PER_PAGE = 50


@require_GET
@login_required
def alert_list(request):
    host = request.GET.get("host", "")
    deliveries = selectors.alert_recent(host=int(host) if host.isdigit() else None)
    page = Paginator(deliveries, ALERTS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "reports/alerts_recent.html", {"page": page, "nav": "alerts"})
