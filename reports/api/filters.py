"""Query parameters of the read API, validated by django-filter and answered by the selectors.

The filter sets only check and document the parameters (an unknown status or
ordering is a 400, and drf-spectacular lists them in the schema); the query
itself is ``selectors.host_list``, the same one the pages use.
"""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema_field

from reports import selectors
from reports.models import Host

_ORDERINGS = [(name, name) for field in selectors.HOST_ORDERINGS for name in (field, f"-{field}")]


def text_filter(*, max_length: int, required: bool = False, help_text: str) -> django_filters.CharFilter:
    """A string parameter taken as sent, with its OpenAPI schema built from the same limits.

    drf-spectacular publishes a CharFilter as a bare string, so an over-long
    value, a NUL, or (when required) an empty or blank value was valid by the
    schema and refused by the form. The selectors strip whitespace themselves.
    """
    schema = {"type": "string", "maxLength": max_length, "pattern": "^[^\\u0000]*$"}
    if required:
        schema["minLength"] = 1
    field = django_filters.CharFilter(method="_by_selector", max_length=max_length, required=required,
                                      strip=False, help_text=help_text)
    return extend_schema_field(schema)(field)


class HostFilter(django_filters.FilterSet):
    search = text_filter(max_length=256, help_text="Substring of hostname, IP or host id (any case).")
    os = text_filter(max_length=64, help_text="Exact OS name, e.g. Linux.")
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
    name = text_filter(max_length=256, required=True,
                       help_text="Substring of a process name or command line (any case).")

    class Meta:
        model = Host
        fields: list[str] = []

    def _by_selector(self, queryset, name, value):
        return queryset

    def filter_queryset(self, queryset):
        return selectors.process_matches(query=self.form.cleaned_data["name"])
