"""The "Add hosts" page and the package downloads: staff only, exact names only, commands for this server."""

from __future__ import annotations

import hashlib
import re

import pytest
from django.urls import reverse

from reports.models import AgentToken

pytestmark = pytest.mark.django_db

MSI = "relevo-agent-1.2.3-x64.msi"
ZIP = "relevo-agent-1.2.3-windows-amd64.zip"
DEB = "relevo-agent_1.2.3_all.deb"


@pytest.fixture
def packages_dir(tmp_path, settings):
    folder = tmp_path / "dist"
    folder.mkdir()
    for name in (MSI, ZIP, DEB):
        (folder / name).write_bytes(name.encode() * 100)
    # The MSI's checksum comes from its .sha256 file; the others are computed.
    (folder / (MSI + ".sha256")).write_text(f"{'a' * 64}  {MSI}\n")
    (folder / "notes.txt").write_text("not a package")
    (tmp_path / "secret.msi").write_text("outside the folder")
    settings.INVENTORY_PACKAGES_DIR = folder
    return folder


@pytest.fixture
def staff(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("boss", password="a-long-test-password", is_staff=True))
    return client


@pytest.fixture
def non_staff(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("ops", password="a-long-test-password"))
    return client


def text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


@pytest.mark.parametrize("url", ["/hosts/add/", f"/packages/{MSI}"])
def test_anonymous_users_are_sent_to_sign_in(client, packages_dir, url):
    response = client.get(url)
    assert response.status_code == 302 and response["Location"] == f"/accounts/login/?next={url}"


@pytest.mark.parametrize("method,url", [("get", "/hosts/add/"), ("post", "/hosts/add/"), ("get", f"/packages/{MSI}")])
def test_non_staff_users_are_refused_and_no_token_is_made(non_staff, packages_dir, method, url):
    response = getattr(non_staff, method)(url)
    assert response.status_code == 403 and "Staff only" in text(response)
    assert AgentToken.objects.count() == 0


def test_the_page_lists_packages_with_checksums_and_fills_in_server_and_secret(staff, packages_dir, settings):
    settings.INVENTORY_ENROLL_SECRETS = ["old-secret-0123456789", "new-secret-0123456789"]
    response = staff.get(reverse("reports:add_hosts"))
    assert response.status_code == 200
    page = text(response)
    assert MSI in page and ZIP in page and DEB in page and "notes.txt" not in page
    assert "a" * 64 in page  # from the .sha256 file
    assert hashlib.sha256(ZIP.encode() * 100).hexdigest() in page
    assert f"msiexec /i {MSI} /qn SERVER=http://testserver ENROLL_SECRET=new-secret-0123456789" in page
    assert ".\\relevo-agent\\relevo-agent.cmd --once --server http://testserver --enroll-secret new-secret" in page
    assert f"sudo apt-get install ./{DEB}" in page and "INVENTORY_ENROLL_SECRET=new-secret-0123456789" in page
    assert "relevo-agent-VERSION.noarch.rpm" in page  # no rpm in the folder: a placeholder name
    assert "Make a fleet token" not in page
    assert 'aria-current="page">Add hosts' in response.content.decode()


def test_without_enrollment_a_post_makes_a_fleet_token_shown_once(staff, packages_dir, settings):
    settings.INVENTORY_ENROLL_SECRETS = []
    page = text(staff.get("/hosts/add/"))
    assert "Enrollment is off" in page and "Make a fleet token" in page and "TOKEN=TOKEN" in page

    response = staff.post("/hosts/add/")
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    token = re.search(r'<code id="new-token" class="sha">([^<]+)</code>', response.content.decode()).group(1)
    assert f"SERVER=http://testserver TOKEN={token}" in text(response)
    [stored] = AgentToken.objects.all()
    assert stored.host_id in (None, "") and stored.revoked_at is None and "boss" in stored.name
    assert token not in text(staff.get("/hosts/add/"))  # never shown again


def test_a_post_without_csrf_is_refused(client, django_user_model, packages_dir, settings):
    from django.test import Client

    settings.INVENTORY_ENROLL_SECRETS = []
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(django_user_model.objects.create_user("boss2", password="a-long-test-password", is_staff=True))
    assert strict.post("/hosts/add/").status_code == 403
    assert AgentToken.objects.count() == 0


def test_a_package_downloads_by_its_exact_name(staff, packages_dir):
    response = staff.get(f"/packages/{MSI}")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == MSI.encode() * 100
    assert response["Content-Disposition"] == f'attachment; filename="{MSI}"'


@pytest.mark.parametrize("name", [
    "notes.txt", MSI + ".sha256", "secret.msi", "..%2Fsecret.msi", "..%2F..%2Fetc%2Fpasswd",
    MSI.upper(), "relevo-agent-1.2.4-x64.msi", "%2Fetc%2Fpasswd", "relevo-agent-1.2.3-x64.msi%00",
])
def test_only_listed_packages_are_served(staff, packages_dir, name):
    assert staff.get(f"/packages/{name}").status_code == 404


def test_a_symlink_in_the_folder_is_not_served(staff, packages_dir, tmp_path):
    (packages_dir / "relevo-agent-9.9.9-x64.msi").symlink_to(tmp_path / "secret.msi")
    assert staff.get("/packages/relevo-agent-9.9.9-x64.msi").status_code == 404
    assert "9.9.9" not in text(staff.get("/hosts/add/"))


def test_no_folder_says_how_to_build_the_packages(staff, settings, tmp_path):
    settings.INVENTORY_PACKAGES_DIR = tmp_path / "missing"
    page = text(staff.get("/hosts/add/"))
    assert "No packages in" in page and "make packages" in page


def test_the_first_run_page_points_staff_to_add_hosts(staff):
    assert "/hosts/add/" in staff.get("/").content.decode()
