"""CSV exports: the fleet software list, one host's software and the hosts list, streamed and formula-safe.

A package name is chosen by whoever packages it, so a hostile one that a
spreadsheet would run as a formula is uploaded for real and must come back
neutralised (the OWASP CSV injection rule).
"""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest

from reports import csv_export, services
from reports.models import Host
from relevo_testing.factories import make_inventory, make_payload
from reports.tests.helpers import all_rows, api_client, upload

pytestmark = pytest.mark.django_db

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
HOSTILE = ["=cmd|' /C calc'!A0", "+SUM(1,2)", "-2+3", "@HYPERLINK(\"http://x\")", "\tTAB", "\rCR"]


@pytest.mark.parametrize("value, expected", [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@x", "'@x"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("openssl", "openssl"), ("a=b", "a=b"), ("", ""), (None, ""), (-1, -1), (2.5, 2.5), (True, "true"),
    (dt.date(2026, 5, 9), "2026-05-09"),
])
def test_a_cell_a_spreadsheet_would_run_is_neutralised(value, expected):
    assert csv_export.cell(value) == expected


def test_lines_are_quoted_csv():
    lines = b"".join(csv_export.csv_lines(["name", "n"], [['a "b", c', 3], ["=x", None]]))
    assert lines == b'name,n\r\n"a ""b"", c",3\r\n\'=x,\r\n'


@pytest.fixture
def hostile_host():
    token = services.agent_token_create(name="test")[1]
    software = [{"name": name, "version": "1.0", "vendor": "=evil()", "source": "windows"} for name in HOSTILE]
    payload = make_payload(host_id="h1", hostname="=HOST()", collected_at=NOW, **make_inventory(software=software))
    assert upload(token, payload).status_code == 201
    assert upload(token, make_payload(host_id="h2", hostname="plain", collected_at=NOW), ip="10.0.0.6").status_code == 201
    return Host.objects.get(host_id="h1")


def read_csv(response) -> list[list[str]]:
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response.streaming
    assert response["Content-Disposition"].startswith("attachment; filename=")
    text = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.reader(io.StringIO(text, newline="")))


def test_fleet_software_csv_neutralises_hostile_names(reader_client, hostile_host):
    rows = read_csv(reader_client.get("/api/software.csv"))
    assert rows[0] == ["name", "version", "vendor", "arch", "source", "host_count"]
    assert sorted(row[0] for row in rows[1:]) == sorted("'" + name for name in HOSTILE)
    assert {row[2] for row in rows[1:]} == {"'=evil()"}
    assert {row[5] for row in rows[1:]} == {"1"}


def test_fleet_software_csv_takes_the_list_filters(reader_client, hostile_host):
    rows = read_csv(reader_client.get("/api/software.csv", {"search": "sum"}))
    assert [row[0] for row in rows[1:]] == ["'+SUM(1,2)"]


def test_one_hosts_software_csv(reader_client, hostile_host):
    rows = read_csv(reader_client.get(f"/api/hosts/{hostile_host.pk}/software.csv"))
    assert rows[0] == ["name", "version", "vendor", "arch", "source", "install_date"]
    assert len(rows) == 1 + len(HOSTILE)
    assert all(row[0].startswith("'") for row in rows[1:])


def test_hosts_csv_is_the_hosts_list_as_filtered(reader_client, hostile_host):
    rows = read_csv(reader_client.get("/api/hosts.csv"))
    assert rows[0][:3] == ["id", "host_id", "hostname"] and rows[0][-1] == "status"
    assert sorted(row[2] for row in rows[1:]) == ["'=HOST()", "plain"]
    filtered = read_csv(reader_client.get("/api/hosts.csv", {"search": "plain"}))
    assert [row[1] for row in filtered[1:]] == ["h2"]
    assert filtered[1][-1] == "online"


@pytest.mark.parametrize("path, params", [
    ("/api/software.csv", {"source": "BAD SOURCE"}),
    ("/api/software.csv", {"source": ""}),
    ("/api/hosts.csv", {"status": "sideways"}),
    ("/api/hosts.csv", {"port": ""}),
    ("/api/hosts/{pk}/software.csv", {"search": "x" * 257}),
])
def test_bad_parameters_are_a_json_400_and_write_nothing(reader_client, hostile_host, path, params):
    before = all_rows()
    response = reader_client.get(path.format(pk=hostile_host.pk), params)
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid_parameters"
    assert all_rows() == before


def test_csv_needs_a_reader_and_a_known_host(reader_client, hostile_host):
    assert api_client().get("/api/software.csv").status_code == 401
    assert reader_client.get("/api/hosts/999999/software.csv").status_code == 404
