"""The dashboard pages: thin views that parse the query string, call selectors and render.

Every page needs a signed-in user; "Add hosts" (packages, enroll secret,
fleet tokens) needs a staff user. Reads live in ``reports.selectors`` (shared
with the API); the only file access, the raw day-file download, goes through
``selectors.host_day_file`` and so through ``reports.store``.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from reports import addresses, breadth, charts, forms, host_table, inventory_selectors, paging, selectors, services, store
from reports import packages as agent_packages
from reports import processes as process_rule
from reports.api import errors as api_errors
from reports.templatetags import relevo as relevo_tags
from reports.forms import HOST_PAGE_SIZE, HostFilterForm, ProcessFilterForm, ProcessSearchForm, SoftwareSearchForm

SNAPSHOTS_PER_PAGE = 25
PROCESSES_PER_PAGE = 100
CHART_POINTS = 100
PROCESS_SEARCH_PER_PAGE = 50
HOST_ROW_FILTERS = ("os", "os_version", "status", "software", "port", "disk_full", "identity_conflict")



def _not_found(request, what: str) -> HttpResponse:
    """An HTML 404 for the pages (the site-wide handler answers JSON, for API clients)."""
    return render(request, "reports/not_found.html", {"what": what}, status=404)


@login_required
@require_GET
def host_list(request):
    now = timezone.now()
    counts = selectors.host_counts(now)
    versions = sorted({version for by_os in counts["versions"].values() for version in by_os})
    form = HostFilterForm(request.GET or None, os_names=list(counts["os"]), os_versions=versions)
    sort = form.value("sort") or "hostname"

    def listed(search_in_order: bool = False):
        hosts = selectors.host_list(search=form.value("q"), os_name=form.value("os"),
                                    os_version=form.value("os_version"), status=form.value("status"), ordering=sort,
                                    identity_conflict=bool(form.value("identity_conflict")), now=now,
                                    search_in_order=search_in_order)
        return inventory_selectors.hosts_narrowed(hosts, software=form.value("software"),
                                                  port=form.value("port") or None,
                                                  disk_full=bool(form.value("disk_full")))

    # A search alone is counted (up to the cap) from the search text's own index, and when it matches
    # more than the cap its page is read in sort order (selectors.host_list); with other filters too,
    # those filters' indexes lead and the match stays a subquery.
    search_alone = bool(form.value("q")) and not any(form.value(f) for f in HOST_ROW_FILTERS)
    paginator = paging.CappedPaginator(listed(), form.value("per_page") or HOST_PAGE_SIZE,
                                       count_list=listed(search_in_order=True) if search_alone else None)
    if search_alone and paginator.capped:
        paginator.object_list = listed(search_in_order=True)
    page = paginator.get_page(request.GET.get("page"))
    rows = [(host, selectors.host_status(host, now)) for host in page]
    shown = host_table.chosen(form.value("col"))
    shown_keys = {column.key for column in shown}
    return render(request, "reports/host_list.html", {
        "form": form, "page": page, "rows": rows, "now": now, "counts": counts, "shown_columns": shown,
        "columns": host_table.header_links(shown, sort),
        "column_choices": [(c.key, c.label, c.key in shown_keys) for c in host_table.COLUMNS if c.key not in host_table.REQUIRED],
        "total_hosts": sum(counts["status"].values()),
        "filtered": any(form.value(f) for f in ("q", *HOST_ROW_FILTERS)),
        "offline_after": settings.INVENTORY_OFFLINE_AFTER, "stale_after": settings.INVENTORY_STALE_AFTER,
        "csv_query": _hosts_csv_query(form, sort),
    })


def _hosts_csv_query(form: HostFilterForm, sort: str) -> str:
    """The page's filters and sort as ``/api/hosts.csv`` names them, so its CSV link exports what is listed."""
    params = {"search": form.value("q"), "os": form.value("os"), "os_version": form.value("os_version"),
              "status": form.value("status"), "ordering": sort, "software": form.value("software"),
              "port": form.value("port"), "disk_full": "true" if form.value("disk_full") else "",
              "identity_conflict": "true" if form.value("identity_conflict") else ""}
    return urlencode({name: value for name, value in params.items() if value not in (None, "")})


# (sort key, header, CSS class, biggest first by default): the process table's sortable columns.
PROCESS_COLUMNS = [
    ("pid", "PID", "c-num", False), ("name", "Name", "", False), ("user", "User", "", False),
    ("cpu", "CPU %", "c-num", True), ("memory", "Memory", "c-num", True), ("status", "Status", "opt", False),
]


def _process_columns(current: str) -> list[dict]:
    """Header links for the process table: each toggles its direction and says which it is (``aria-sort``).

    CPU and memory sort biggest first, so their plain key is the descending order.
    """
    result = []
    for key, label, css, biggest_first in PROCESS_COLUMNS:
        active = current.lstrip("-") == key
        reversed_ = current.startswith("-")
        descending = biggest_first != reversed_
        result.append({
            "label": label, "css": css,
            "sort": (key if reversed_ else f"-{key}") if active else key,
            "aria_sort": ("descending" if descending else "ascending") if active else "none",
        })
    return result


API_PATHS = ("/api/", "/upload", "/query", "/metrics")


def handler404(request, exception=None) -> HttpResponse:
    """A browser's mistyped page URL gets the HTML "not found" page; every other client the JSON error.

    A browser says so with ``Accept: text/html``; API paths, downloads of
    ``.json`` and ``.csv`` files and clients asking for JSON keep the one JSON
    error shape (``reports.api.errors``).
    """
    accept = request.headers.get("Accept", "")
    browser = ("text/html" in accept and "application/json" not in accept
               and not request.path.startswith(API_PATHS) and not request.path.endswith((".json", ".csv")))
    if not browser:
        return api_errors.not_found(request, exception)
    return render(request, "reports/not_found.html", {"what": "page"}, status=404)


@login_required
@require_GET
def host_detail(request, pk: int):
    host = selectors.host_get(pk=pk)
    if host is None:
        return _not_found(request, "host")
    form = ProcessFilterForm(request.GET)
    document = None
    rows: list = []
    kernel_threads = 0
    sort = form.value("psort") or "cpu"
    if host.latest_snapshot_id:
        document = selectors.snapshot_document(snapshot=host.latest_snapshot)
        chosen = selectors.snapshot_processes(processes=document.payload.processes, search=form.value("pq"),
                                              match=form.value("match") or process_rule.MATCH_CMDLINE, ordering=sort)
        if not form.value("kthreads"):
            shown = [p for p in chosen if not process_rule.is_kernel_thread(p)]
            kernel_threads = len(chosen) - len(shown)
            chosen = shown
        # One (depth, process) list for both views: a single template loop, no include per row.
        rows = selectors.process_tree(chosen) if form.value("tree") else [(0, p) for p in chosen]
    process_page = Paginator(rows, PROCESSES_PER_PAGE).get_page(form.value("ppage") or 1)
    history = Paginator(selectors.host_snapshots(host=host), SNAPSHOTS_PER_PAGE).get_page(request.GET.get("page"))
    series = selectors.host_series(host=host, limit=CHART_POINTS)
    payload = document.payload if document else None
    boot_time = payload.host.boot_time if payload else None
    memory_total = payload.memory.total_bytes if payload else None
    memory_available = payload.memory.available_bytes if payload else None
    return render(request, "reports/host_detail.html", {
        "host": host, "status": selectors.host_status(host), "document": document, "payload": payload,
        "form": form, "process_page": process_page, "process_rows": process_page.object_list,
        "process_total": len(rows), "kernel_threads": kernel_threads, "show_kernel_threads": bool(form.value("kthreads")),
        "process_columns": _process_columns(sort),
        "history": history, "day_files": selectors.host_day_files(host=host),
        "history_rows": _history_rows(host, history),
        "uptime_seconds": (host.last_seen - boot_time).total_seconds() if boot_time else None,
        "memory_used": (memory_total - memory_available) if memory_total is not None and memory_available is not None else None,
        "process_chart": charts.time_chart([(p.collected_at, p.process_count) for p in series], title="Processes",
                                           format_value=lambda v: f"{v:.0f}", tick_text=relevo_tags.time_text),
        "memory_chart": charts.time_chart([(p.collected_at, p.memory_used_bytes) for p in series], title="Memory in use",
                                          format_value=relevo_tags.binary_size, tick_text=relevo_tags.time_text,
                                          top=max((p.memory_total_bytes or 0 for p in series), default=0) or None),
        "chart_points": len(series),
        "inventory": breadth.host_inventory(host=host, payload=payload,
                                            software_search=request.GET.get("software", ""),
                                            software_page=request.GET.get("spage")),
    })


def _history_rows(host, history) -> list[tuple]:
    """(snapshot, (started, stopped) or None) for one page of the host's history: its "+3 −2" column."""
    snapshots = list(history.object_list)
    counts = selectors.history_process_counts(host=host, snapshots=snapshots)
    return [(snapshot, counts.get(snapshot.pk)) for snapshot in snapshots]


@login_required
@require_GET
def host_changes(request, pk: int):
    host = selectors.host_get(pk=pk)
    if host is None:
        return _not_found(request, "host")
    choices = list(selectors.host_snapshots(host=host)[:200])
    old_id, new_id = request.GET.get("from", ""), request.GET.get("to", "")
    changes = selectors.snapshot_changes(host=host, old_id=old_id, new_id=new_id)
    changes = breadth.changes_with_software(host=host, changes=changes)
    if changes is None and (old_id or new_id):
        return _not_found(request, "snapshot")
    show_kernel = request.GET.get("kernel") == "on"
    return render(request, "reports/host_changes.html", {
        "host": host, "changes": changes, "choices": choices,
        "diff": changes.diff if changes else None,
        "shown": changes.diff.processes(show_kernel=show_kernel) if changes else None,
    })


@login_required
@require_GET
def host_day_file(request, pk: int, ip: addresses.IPAddress, day: dt.date):
    host = selectors.host_get(pk=pk)
    content = selectors.host_day_file(host=host, ip=str(ip), day=day) if host else None
    if content is None:
        return _not_found(request, "day file")
    response = StreamingHttpResponse(content, content_type="application/json")
    response["Content-Length"] = str(len(content))
    response["Content-Disposition"] = f'attachment; filename="{store.file_name(ip, day)}"'
    return response


@login_required
@require_GET
def process_search(request):
    """Which hosts ran a process (by name, or name and command line), now or in a time range; paged by host."""
    form = ProcessSearchForm(request.GET)
    valid = form.is_valid()
    data = form.cleaned_data if valid else {}
    query = (data.get("q") or "").strip()
    match = data.get("match") or process_rule.MATCH_NAME
    now = timezone.now()
    since, until = forms.process_range(data.get("since"), data.get("until"), now)
    page = None
    if query:
        results = selectors.process_search(query=query, match=match, since=since, until=until, now=now)
        # Counted up to the cap; past it, the page is read by walking hosts in name order (selectors).
        page = paging.CappedPaginator(results, PROCESS_SEARCH_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "reports/process_search.html", {
        "nav": "processes", "form": form, "query": query, "match": match, "since": since, "until": until,
        "page": page,
    }, status=200 if valid else 400)


def _staff_only(request) -> HttpResponse:
    return render(request, "reports/staff_only.html", status=403)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def add_hosts(request):
    """Packages and copy-paste install commands; a POST makes a fleet token, shown once."""
    if not request.user.is_staff:
        return _staff_only(request)
    token = None
    if request.method == "POST":
        _, token = services.agent_token_create(name=f"fleet (Add hosts, {request.user.get_username()})"[:100])
    packages = agent_packages.package_list()
    secrets = settings.INVENTORY_ENROLL_SECRETS
    return render(request, "reports/add_hosts.html", {
        "nav": "add_hosts", "packages": packages, "newest": agent_packages.package_newest(packages),
        "packages_dir": settings.INVENTORY_PACKAGES_DIR, "server_url": request.build_absolute_uri("/").rstrip("/"),
        # The last one listed: operators add the new secret at the end while rotating.
        "enroll_secret": secrets[-1] if secrets else None, "token": token,
        # What the commands carry: MSI property name, agent env/flag names, and the value.
        "credential": (("ENROLL_SECRET", "INVENTORY_ENROLL_SECRET", "--enroll-secret", secrets[-1]) if secrets
                       else ("TOKEN", "INVENTORY_TOKEN", "--token", token or "TOKEN")),
    })


@login_required
@require_GET
def agent_package_download(request, name: str):
    if not request.user.is_staff:
        return _staff_only(request)
    handle = agent_packages.package_open(name)
    if handle is None:
        return _not_found(request, "package")
    return FileResponse(handle, as_attachment=True, filename=name, content_type="application/octet-stream")


SOFTWARE_PER_PAGE = 50


@login_required
@require_GET
def software_list(request):
    """The fleet's software with host counts; with ``name`` (and ``version``), the hosts that have it."""
    form = SoftwareSearchForm(request.GET)
    name, version = form.value("name"), form.value("version")
    if name:
        rows = inventory_selectors.hosts_with_software(name=name, version=version)
    else:
        rows = inventory_selectors.software_list(search=form.value("q").strip())
    page = Paginator(rows, SOFTWARE_PER_PAGE).get_page(request.GET.get("page"))
    now = timezone.now()
    return render(request, "reports/software_list.html", {
        "nav": "software", "form": form, "page": page, "name": name, "version": version, "query": form.value("q"),
        "host_rows": [(host, selectors.host_status(host, now)) for host in page] if name else None,
    })
