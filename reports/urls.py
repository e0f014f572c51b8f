"""The dashboard's page routes (app_name ``reports``); the API has its own in reports/api/urls.py."""
import datetime as dt

from django.urls import path, register_converter

from reports import addresses, alerts_page, views


class DateConverter:
    regex = r"\d{4}-\d{2}-\d{2}"

    def to_python(self, value):
        return dt.date.fromisoformat(value)

    def to_url(self, value):
        return value.isoformat()


class IPAddressConverter:
    """An address in a link, parsed strictly; anything else matches no route (404).

    The view gets the parsed address, never the text of the link, so nothing a
    client writes there can reach a header or a file name.
    """

    regex = r"[0-9A-Fa-f.:]{2,45}"

    def to_python(self, value):
        return addresses.parse_ip(value)  # ValueError: Django tries the next route, then 404

    def to_url(self, value):
        return str(value)


register_converter(DateConverter, "isodate")
register_converter(IPAddressConverter, "ipaddr")

app_name = "reports"

urlpatterns = [
    path("", views.host_list, name="host_list"),
    path("hosts/<int:pk>/", views.host_detail, name="host_detail"),
    path("hosts/<int:pk>/changes/", views.host_changes, name="host_changes"),
    path("hosts/<int:pk>/days/<ipaddr:ip>/<isodate:day>.json", views.host_day_file, name="host_day_file"),
    path("processes/", views.process_search, name="process_search"),
    path("software/", views.software_list, name="software_list"),
    path("hosts/add/", views.add_hosts, name="add_hosts"),
    path("packages/<str:name>", views.agent_package_download, name="agent_package"),
    path("alerts/", alerts_page.alert_list, name="alert_list"),
]
