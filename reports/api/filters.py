"""Query parameters of the read API, validated by django-filter and answered by the selectors.

The filter sets only check and document the parameters (an unknown status or
ordering is a 400, and drf-spectacular lists them in the schema); the query
itself is ``selectors.host_list``, the same one the pages use.
"""

from __future__ import annotations

import django_filters

from reports import selectors
from reports.models import Host

_ORDERINGS = [(name, name) for field in selectors.HOST_ORDERINGS for name in (field, f"-{field}")]


class HostFilter(django_filters.FilterSet):
    search = django_filters.CharFilter(
        method="_by_selector", max_length=256, help_text="Substring of hostname, IP or host id (any case)."
    )
    os = django_filters.CharFilter(method="_by_selector", max_length=64, help_text="Exact OS name, e.g. Linux.")
    status = django_filters.ChoiceFilter(
        method="_by_selector", choices=[(s, s) for s in selectors.HOST_STATUSES],
        help_text="online, offline or stale (see INVENTORY_OFFLINE_AFTER / INVENTORY_STALE_AFTER).",
    )
    ordering = django_filters.ChoiceFilter(
        method="_by_selector", choices=_ORDERINGS, help_text="A field, with '-' for descending.",
    )

    class Meta:
        model = Host
        fields: list[str] = []

    def _by_selector(self, queryset, name, value):
        return queryset  # the whole query is built once in filter_queryset

    def filter_queryset(self, queryset):
        data = self.form.cleaned_data
        hosts = selectors.host_list(
            search=data.get("search") or "",
            os_name=data.get("os") or "",
            status=data.get("status") or "",
            ordering=data.get("ordering") or "hostname",
        )
        return selectors.with_latest_snapshot(hosts)


class ProcessFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(
        method="_by_selector", required=True, max_length=256,
        help_text="Substring of a process name or command line (any case).",
    )

    class Meta:
        model = Host
        fields: list[str] = []

    def _by_selector(self, queryset, name, value):
        return queryset

    def filter_queryset(self, queryset):
        return selectors.process_matches(query=self.form.cleaned_data["name"])
