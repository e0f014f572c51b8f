"""The admin: declarative, read-mostly, and every write goes through ``reports.services``.

Hosts and snapshots are made only by ingest, so their admin pages are for
looking; nothing here edits a stored document. Changelists
never load the large columns (``Host.process_index``, ``Snapshot.document_compressed``)
and never count the snapshot table more than once per page.

The lists fit a 1440 px screen: times in the dashboard's one short format,
snapshot ids shortened (the full id is the row's title and on its page),
byte counts in binary units, columns named as a person would ("IP address"),
50 rows a page.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

from django.contrib import admin, messages
from django.db import models
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from reports import paging, selectors, services
from reports.alerts import outbox
from reports.models import (AgentToken, AlertDelivery, AlertDestination, AlertRule, ApiToken, Host, HostQuerySet,
                            Snapshot)
from reports.templatetags.relevo import bytes_or_dash, os_label, time_text

ROWS_PER_PAGE = 50


def _time(description: str, field: str):
    """A list column showing *field* (a datetime) in the dashboard's one format, sortable by it."""
    @admin.display(description=description, ordering=field)
    def column(self, obj) -> str:
        return time_text(getattr(obj, field))
    return column


def _bytes(description: str, field: str):
    """A column showing the byte count *field* with its binary unit ("8 GiB")."""
    @admin.display(description=description, ordering=field)
    def column(self, obj) -> str:
        return bytes_or_dash(getattr(obj, field))
    return column


def _label(description: str, field: str):
    """A model field under a readable header ("IP address" rather than "Ip")."""
    @admin.display(description=description, ordering=field)
    def column(self, obj):
        return getattr(obj, field)
    return column


class HostStatusFilter(admin.SimpleListFilter):
    """online / offline / stale, by the same thresholds as the dashboard."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [(status, status.capitalize()) for status in selectors.HOST_STATUSES]

    def queryset(self, request, queryset):
        if self.value() not in selectors.HOST_STATUSES:
            return queryset
        return queryset.with_status(self.value())


class DateHierarchyQuerySet(HostQuerySet):
    """Host rows whose ``datetimes()`` (the admin's date drill-down) probes the index instead of truncating every row.

    Django's ``date_hierarchy`` lists the years, months or days that hold rows
    with ``SELECT DISTINCT`` of the truncated date over every matching row: at
    100,000 hosts SQLite calls its Python truncation function 100,000 times
    (docs/performance.md, fleet scale). The same list comes from one
    ``EXISTS`` per period between the first and the last value, each a short
    range of the ``last_seen`` index: at most a dozen months or 31 days.
    """

    def datetimes(self, field_name, kind, order="ASC", tzinfo=None):
        if kind not in ("year", "month", "day"):
            return super().datetimes(field_name, kind, order, tzinfo)
        bounds = self.aggregate(first=models.Min(field_name), last=models.Max(field_name))
        if bounds["first"] is None:
            return []
        zone = tzinfo or timezone.get_current_timezone()
        first, last = (timezone.localtime(bounds[key], zone) for key in ("first", "last"))
        start = _period_start(first, kind)
        found = []
        while start <= last:
            end = _period_next(start, kind)
            if self.filter(**{f"{field_name}__gte": start, f"{field_name}__lt": end}).exists():
                found.append(start)
            start = end
        return found[::-1] if order == "DESC" else found


def _period_start(moment: dt.datetime, kind: str) -> dt.datetime:
    """The local midnight starting *moment*'s year, month or day."""
    day = moment.date().replace(**({"month": 1, "day": 1} if kind == "year" else {"day": 1} if kind == "month" else {}))
    return dt.datetime(day.year, day.month, day.day, tzinfo=moment.tzinfo)


def _period_next(start: dt.datetime, kind: str) -> dt.datetime:
    """The local midnight starting the year, month or day after *start*'s."""
    if kind == "year":
        return start.replace(year=start.year + 1)
    if kind == "month":
        return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    day = start.date() + dt.timedelta(days=1)
    return dt.datetime(day.year, day.month, day.day, tzinfo=start.tzinfo)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows that only ingest creates: viewable and deletable, never added or edited here."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        # Deleting rows would leave their day files behind (and reindex would bring
        # them back); removing old data is the prune command's job, which owns both.
        return False


@admin.register(Host)
class HostAdmin(ReadOnlyAdmin):
    list_display = ["hostname", "status_badge", "ip_address", "os", "processes",
                    "users", "memory_total", "last_seen_at", "dashboard_link"]
    list_filter = [HostStatusFilter, "os_name"]
    search_fields = ["hostname", "host_id", "=last_ip", "fqdn"]
    date_hierarchy = "last_seen"
    ordering = ["hostname"]
    show_full_result_count = False
    list_per_page = ROWS_PER_PAGE
    exclude = ["process_index"]
    actions = ["identity_conflict_clear"]

    ip_address = _label("IP address", "last_ip")
    processes = _label("processes", "process_count")
    users = _label("users", "user_count")
    memory_total = _bytes("memory", "memory_total_bytes")
    last_seen_at = _time("last seen", "last_seen")

    def get_queryset(self, request):
        queryset = super().get_queryset(request).defer("process_index")
        return DateHierarchyQuerySet(model=Host, query=queryset.query, using=queryset.db)

    def has_clear_identity_permission(self, request) -> bool:
        return request.user.is_superuser

    @admin.action(description="Clear the identity conflict (each machine has its own id now)",
                  permissions=["clear_identity"])
    def identity_conflict_clear(self, request, queryset):
        hosts = list(queryset.filter(identity_conflict_since__isnull=False))
        for host in hosts:
            services.identity_conflict_clear(host=host)
        self.message_user(request, f"Cleared the identity conflict of {len(hosts)} host(s).", messages.SUCCESS)

    @admin.display(description="status")
    def status_badge(self, host: Host) -> str:
        return selectors.host_status(host)

    @admin.display(description="OS", ordering="os_version")
    def os(self, host: Host) -> str:
        return os_label(host)

    @admin.display(description="page")
    def dashboard_link(self, host: Host) -> str:
        return format_html('<a href="{}">open</a>', reverse("reports:host_detail", args=[host.pk]))


class SnapshotOsFilter(admin.SimpleListFilter):
    """Filter by OS, listing the names from the host table.

    The stock filter would run ``SELECT DISTINCT os_name`` over every snapshot
    on every changelist view.
    """

    title = "OS"
    parameter_name = "os_name"

    def lookups(self, request, model_admin):
        names = Host.objects.order_by("os_name").values_list("os_name", flat=True).distinct()
        return [(name, name) for name in names if name]

    def queryset(self, request, queryset):
        return queryset.filter(os_name=self.value()) if self.value() else queryset


@admin.register(Snapshot)
class SnapshotAdmin(ReadOnlyAdmin):
    """Snapshots, newest row first.

    Measured with bench/pages.py, the stock choices each cost a full scan of
    the snapshot table per page view: ``date_hierarchy`` (its DISTINCT month
    query), an ``os_name`` filter and ordering by ``collected_at``, which has
    no index of its own. Hence: a date filter with fixed
    ranges (no query to build it), the OS list from the host table, and the
    default order by id, which is arrival order. Sorting by a column is still
    one click away. The count stops at a cap (``reports.paging``): past
    it the list says "10,000+ snapshots", and a page past the cap counts
    exactly.
    """

    list_display = ["short_id", "host_link", "ip_address", "collected", "received", "os",
                    "processes", "users", "memory_available"]
    list_filter = [("collected_at", admin.DateFieldListFilter), SnapshotOsFilter]
    search_fields = ["=ip", "host__hostname"]
    ordering = ["-pk"]
    show_full_result_count = False
    # Counts to 10,000 and says "10,000+": an exact count read the whole table (millions of rows) per page.
    paginator = paging.CappedPaginator
    list_per_page = ROWS_PER_PAGE
    fields = ["snapshot_id", "host_link", "ip_address", "day", "collected_at", "received_at", "os", "os_version",
              "cpu_model", "process_count", "user_count", "memory_total", "memory_available",
              "file_name", "file_offset", "file_length", "document_pretty"]
    readonly_fields = fields

    ip_address = _label("IP address", "ip")
    os = _label("OS name", "os_name")
    processes = _label("processes", "process_count")
    users = _label("users", "user_count")
    collected = _time("collected", "collected_at")
    received = _time("received", "received_at")
    memory_total = _bytes("memory total", "memory_total_bytes")
    memory_available = _bytes("memory available", "memory_available_bytes")

    @admin.display(description="snapshot", ordering="pk")
    def short_id(self, snapshot: Snapshot) -> str:
        return format_html('<span title="{}" class="mono">{}…</span>', snapshot.snapshot_id, str(snapshot.snapshot_id)[:8])

    def get_queryset(self, request):
        queryset = super().get_queryset(request).select_related("host").defer("host__process_index")
        if request.resolver_match and request.resolver_match.url_name.endswith("changelist"):
            queryset = queryset.defer("document_compressed")
        return queryset

    def get_search_results(self, request, queryset, search_term):
        """A pasted snapshot id finds its snapshot; anything else searches address and hostname.

        (``=snapshot_id`` in search_fields would fail on every term that is not a UUID.)
        """
        try:
            snapshot_id = uuid.UUID(search_term.strip())
        except ValueError:
            return super().get_search_results(request, queryset, search_term)
        return queryset.filter(snapshot_id=snapshot_id), False

    @admin.display(description="host", ordering="host__hostname")
    def host_link(self, snapshot: Snapshot) -> str:
        return format_html('<a href="{}">{}</a>', reverse("admin:reports_host_change", args=[snapshot.host_id]),
                           snapshot.host.hostname)

    @admin.display(description="document")
    def document_pretty(self, snapshot: Snapshot) -> str:
        """The stored document, pretty-printed; read from the row, so no day file is opened."""
        text = json.dumps(json.loads(snapshot.document_bytes), indent=2, ensure_ascii=False)
        return format_html('<pre style="white-space: pre-wrap; max-height: 40rem; overflow: auto">{}</pre>', text)


class TokenStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


class CreatedOnceTokenAdmin(admin.ModelAdmin):
    """Tokens are made by a service; the raw value is shown once, on the page that answers the form.

    It is not stored (only its hash is), not put in a message (messages may
    travel in a cookie), and that page is ``Cache-Control: no-store``.
    """

    add_fields: list[str] = ["name"]
    readonly_on_change = ["key_prefix", "created_at", "last_used_at", "revoked_at"]

    def get_fields(self, request, obj=None):
        return self.add_fields if obj is None else self.fields

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_on_change + self.add_fields if obj else []

    @admin.display(boolean=True, description="active")
    def is_active(self, token) -> bool:
        return token.is_active

    def create_token(self, data: dict):
        raise NotImplementedError

    def revoke_selected(self, request, queryset, revoke) -> None:
        """The body of each admin's *revoke* action: one service call per live token, then a message."""
        count = 0
        for token in queryset.filter(revoked_at__isnull=True):
            revoke(token=token)
            count += 1
        self.message_user(request, f"Revoked {count} token{'s' if count != 1 else ''}.", messages.SUCCESS)

    def save_model(self, request, obj, form, change):
        if change:
            return
        token, raw = self.create_token(form.cleaned_data)
        obj.pk, obj.key_prefix, obj.key_hash, obj.created_at = token.pk, token.key_prefix, token.key_hash, token.created_at
        obj._state.adding = False
        request._relevo_raw_token = raw

    def response_add(self, request, obj, post_url_continue=None):
        opts = self.model._meta
        response = TemplateResponse(request, "admin/reports/token_created.html", {
            **self.admin_site.each_context(request),
            "opts": opts, "token": obj, "raw_token": request._relevo_raw_token,
            "title": f"{opts.verbose_name.capitalize()} created", "is_agent_token": isinstance(obj, AgentToken),
            "changelist_url": reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
            "server_url": request.build_absolute_uri("/").rstrip("/"),
        })
        response["Cache-Control"] = "no-store"
        return response


@admin.register(AgentToken)
class AgentTokenAdmin(CreatedOnceTokenAdmin):
    """Made by ``services.agent_token_create``; revoked by ``services.agent_token_revoke``."""

    list_display = ["name", "key_prefix", "host_id", "is_active", "created_at", "last_used_at", "revoked_at"]
    list_filter = [TokenStateFilter]
    search_fields = ["name", "key_prefix", "host_id"]
    date_hierarchy = "created_at"
    actions = ["revoke"]
    fields = ["name", "key_prefix", "host_id", "created_at", "last_used_at", "revoked_at"]
    readonly_on_change = [*CreatedOnceTokenAdmin.readonly_on_change, "host_id"]

    def create_token(self, data: dict):
        return services.agent_token_create(name=data["name"])

    @admin.action(description="Revoke the selected tokens (agents using them can no longer upload)")
    def revoke(self, request, queryset):
        self.revoke_selected(request, queryset, services.agent_token_revoke)


@admin.register(ApiToken)
class ApiTokenAdmin(CreatedOnceTokenAdmin):
    """Made by ``services.api_token_create`` (saving the bare model would store a token with no hash);
    revoked by ``services.api_token_revoke``."""

    list_display = ["name", "user", "key_prefix", "is_active", "created_at", "last_used_at", "revoked_at"]
    list_select_related = ["user"]
    list_filter = [TokenStateFilter]
    search_fields = ["name", "key_prefix", "user__username"]
    add_fields = ["name", "user"]
    fields = ["name", "user", "key_prefix", "created_at", "last_used_at", "revoked_at"]
    raw_id_fields = ["user"]
    actions = ["revoke"]

    def create_token(self, data: dict):
        return services.api_token_create(user=data["user"], name=data["name"])

    @admin.action(description="Revoke the selected tokens (scripts using them can no longer read)")
    def revoke(self, request, queryset):
        self.revoke_selected(request, queryset, services.api_token_revoke)


admin.site.site_header = "Relevo administration"
admin.site.site_title = "Relevo admin"
admin.site.index_title = "Inventory and credentials"


# --- Alerts (docs/alerts.md): rules and destinations written through reports.alerts.outbox ---

class AlertServiceAdmin(admin.ModelAdmin):
    """Saves and deletes through the alert services, so the rules cache follows every write."""

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        outbox.rules_changed()  # the destinations of a rule are saved after the rule itself

    def delete_model(self, request, obj):
        outbox.alert_delete(instance=obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            outbox.alert_delete(instance=obj)


@admin.register(AlertDestination)
class AlertDestinationAdmin(AlertServiceAdmin):
    list_display = ["name", "kind", "url", "slack", "emails"]
    list_filter = ["kind"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def save_model(self, request, obj, form, change):
        outbox.alert_destination_save(destination=obj)


@admin.register(AlertRule)
class AlertRuleAdmin(AlertServiceAdmin):
    list_display = ["name", "kind", "active", "pattern", "os_name", "os_version", "hostname_pattern", "group_seconds"]
    list_filter = ["active", "kind"]
    filter_horizontal = ["destinations"]

    def save_model(self, request, obj, form, change):
        outbox.alert_rule_save(rule=obj)


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(ReadOnlyAdmin):
    """Every delivery, its state and last error: where an operator looks first when alerts do not arrive."""

    list_display = ["created_at", "rule", "destination", "host_name", "subject", "state", "attempts",
                    "next_attempt_at", "last_error"]
    list_filter = ["state", "kind", "rule", "destination"]
    search_fields = ["host_name", "subject", "key", "batch"]
    list_select_related = ["rule", "destination"]
    date_hierarchy = "created_at"
