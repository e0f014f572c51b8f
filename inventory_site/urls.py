"""URL wiring: the agent/reader API at the root, the dashboard pages, sign-in, the admin under /admin/."""
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(next_page="login"), name="logout"),
    # Browsers ask for /favicon.ico on pages that name none (the admin's); answer rather than 404.
    path("favicon.ico", RedirectView.as_view(url=static("reports/favicon.svg"), permanent=True)),
    path("", include("reports.api.urls")),
    path("", include("reports.urls")),
]

handler404 = "reports.views.handler404"
handler500 = "reports.api.errors.server_error"
handler400 = "reports.api.errors.bad_request"
handler403 = "reports.api.errors.permission_denied"
