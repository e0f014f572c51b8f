"""API routes. ``/upload`` and ``/query`` keep the paths agents and scripts already use."""
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from reports import metrics_view
from reports.api import alert_views, inventory_views, views

app_name = "reports-api"

urlpatterns = [
    path("upload", views.UploadView.as_view(), name="upload"),
    path("query", views.QueryView.as_view(), name="query"),
    path("enroll", views.EnrollView.as_view(), name="enroll"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", metrics_view.metrics_view, name="metrics"),
    path("api/hosts/", views.HostListView.as_view(), name="host_list"),
    path("api/hosts/<int:pk>/", views.HostDetailView.as_view(), name="host_detail"),
    path("api/hosts/<int:pk>/snapshots/", views.HostSnapshotListView.as_view(), name="host_snapshot_list"),
    path("api/snapshots/<uuid:snapshot_id>/", views.SnapshotDetailView.as_view(), name="snapshot_detail"),
    path("api/processes/", views.ProcessSearchView.as_view(), name="process_search"),
    path("api/software/", inventory_views.SoftwareListView.as_view(), name="software_list"),
    path("api/software.csv", inventory_views.SoftwareCSVView.as_view(), name="software_csv"),
    path("api/software/hosts/", inventory_views.SoftwareHostListView.as_view(), name="software_host_list"),
    path("api/listening/hosts/", inventory_views.ListeningHostListView.as_view(), name="listening_host_list"),
    path("api/disks/hosts/", inventory_views.DiskHostListView.as_view(), name="disk_host_list"),
    path("api/hosts.csv", inventory_views.HostCSVView.as_view(), name="host_csv"),
    path("api/hosts/<int:pk>/software/", inventory_views.HostSoftwareListView.as_view(), name="host_software"),
    path("api/hosts/<int:pk>/software.csv", inventory_views.HostSoftwareCSVView.as_view(),
         name="host_software_csv"),
    path("api/hosts/<int:pk>/listening/", inventory_views.HostListeningListView.as_view(), name="host_listening"),
    path("api/hosts/<int:pk>/disks/", inventory_views.HostDiskListView.as_view(), name="host_disks"),
    path("api/hosts/<int:pk>/interfaces/", inventory_views.HostInterfaceListView.as_view(),
         name="host_interfaces"),
    path("api/hosts/<int:pk>/services/", inventory_views.HostServiceListView.as_view(), name="host_services"),
    path("api/hosts/<int:pk>/hardware/", inventory_views.HostHardwareView.as_view(), name="host_hardware"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="reports-api:schema"), name="docs"),
    path("api/alerts/", alert_views.AlertListView.as_view(), name="alert_list"),
    path("api/alerts/rules/", alert_views.AlertRuleListView.as_view(), name="alert_rule_list"),
]

