"""API routes. ``/upload`` and ``/query`` keep the paths agents and scripts already use."""
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from reports import metrics_view
from reports.api import views

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
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="reports-api:schema"), name="docs"),
]
