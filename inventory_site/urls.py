"""URL wiring: the agent/reader API at the root, the admin under /admin/."""
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("reports.api.urls")),
]

handler404 = "reports.api.errors.not_found"
handler500 = "reports.api.errors.server_error"
handler400 = "reports.api.errors.bad_request"
handler403 = "reports.api.errors.permission_denied"
