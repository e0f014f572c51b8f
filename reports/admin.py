"""Admin registrations (the full dashboard-grade admin comes with the pages)."""
from django.contrib import admin

from reports.models import AgentToken, ApiToken, Host, Snapshot


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    list_display = ["hostname", "last_ip", "os_name", "os_version", "process_count", "last_seen"]
    search_fields = ["hostname", "host_id", "last_ip"]
    list_filter = ["os_name"]
    raw_id_fields = ["latest_snapshot"]


@admin.register(Snapshot)
class SnapshotAdmin(admin.ModelAdmin):
    list_display = ["snapshot_id", "host", "ip", "day", "collected_at", "process_count"]
    list_select_related = ["host"]
    raw_id_fields = ["host"]
    exclude = ["document_zlib"]


@admin.register(AgentToken)
class AgentTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "key_prefix", "created_at", "revoked_at", "last_used_at"]
    readonly_fields = ["key_prefix", "created_at", "last_used_at"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "key_prefix", "created_at", "revoked_at"]
    readonly_fields = ["key_prefix", "created_at", "last_used_at"]
