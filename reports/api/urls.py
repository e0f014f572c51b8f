"""API routes. ``/upload`` and ``/query`` keep the paths agents and scripts already use."""
from django.urls import path

from reports.api import views

app_name = "reports-api"

urlpatterns = [
    path("upload", views.UploadView.as_view(), name="upload"),
    path("query", views.QueryView.as_view(), name="query"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics_view, name="metrics"),
]
