#!/usr/bin/env python3
"""Benchmark: the dashboard pages and /api/hosts/ on a loaded fleet, through real gunicorn.

    .venv/bin/python bench/pages.py              # 10,000 hosts x 30 snapshots, loaded once (cached in build/)
    .venv/bin/python bench/pages.py --hosts 100000 --days 30 --requests 40   # issue 18's fleet: 3,000,000 snapshots
    .venv/bin/python bench/pages.py --fresh      # rebuild the database first
    .venv/bin/python bench/pages.py --hosts 1000 --per-host 10 --requests 50   # a quick run
    .venv/bin/python bench/pages.py --hosts 100000 --days 30 --only "sort"    # some page kinds only
    .venv/bin/python bench/pages.py --hosts 100000 --days 30 --database-url postgres://postgres@127.0.0.1:5432/test --keep

The database is filled by ``bench/loader.py`` (about 3 minutes for 10,000
hosts, 15-30 for 100,000 on a busy 2-core machine, 14 GB) and kept in
``build/bench-pages-<hosts>x<per-host>[d]/`` so reruns only time. A real
gunicorn (2 workers, the production settings, SQLite in WAL mode) serves it
on 127.0.0.1; one signed-in ``requests`` session asks each page kind in turn,
sequentially (the API with a reader token), and the script prints p50 and p99
wall time per kind against issue 18's targets: p50 <= 150 ms, p99 <= 500 ms.
With ``--database-url`` the fleet goes into a new PostgreSQL database made on
that server (the folder gets a ``-postgresql`` suffix) and dropped at the end;
``--keep`` keeps it, and the next run with ``--database-url`` reuses it
(``--fresh`` drops and reloads). Kinds: the hosts page plain, on page 100, with each status, OS and search
filter and with each sort both ways; a host page; the changes page; process
search, now and over the last 7 days (page and API); ``/api/hosts/`` plain, filtered and sorted; the admin's lists.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import sys
import time
from pathlib import Path

import psycopg
import psycopg.sql
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import common  # noqa: E402  (needs ROOT on the path)
from relevo_testing import live  # noqa: E402

# Issue 18: every page at 100,000 hosts x 30 days, p50 and p99.
TARGET_P50_MS, TARGET_P99_MS = 150, 500


def prepare(base: Path, *, hosts: int, per_host: int, fresh: bool,
            interval: dt.timedelta = dt.timedelta(minutes=30), database_url: str = "") -> tuple[dict, dict]:
    """The loaded fleet's server env and credentials: loaded now, or reused from *base*'s marker.

    With *database_url* the rows go into a new PostgreSQL database made on that
    server (``create_database``; ``main`` drops it at the end unless --keep), and
    dropped here if loading fails.
    """
    marker = base / "prepared.json"
    if marker.exists() and fresh:
        _drop_saved_database(marker)
    if marker.exists() and not fresh:
        saved = json.loads(marker.read_text())
        print(f"pages: reusing the loaded database in {base} (--fresh to rebuild)")
        live.manage(saved["env"], "migrate", "--noinput", "-v", "0")  # the code may have moved on since
        os.environ.update(saved["env"])
        import django
        django.setup()
        return _as_loaded(saved["env"], saved.get("loaded_at")), saved["credentials"]
    if base.exists():
        for path in sorted(base.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
    base.mkdir(parents=True, exist_ok=True)
    created = create_database(database_url) if database_url else ""
    try:
        return _load(base, marker, hosts=hosts, per_host=per_host, interval=interval, created=created)
    except BaseException:
        if created:
            drop_database(created)
        raise


def _load(base: Path, marker: Path, *, hosts: int, per_host: int, interval: dt.timedelta,
          created: str) -> tuple[dict, dict]:
    env, credentials = live.prepare(base, {"DATABASE_URL": created} if created else None)
    os.environ.update(env)
    import django
    django.setup()
    from bench.loader import load
    started = time.monotonic()
    loaded_at = dt.datetime.now(dt.timezone.utc)
    counts = load(hosts=hosts, snapshots_per_host=per_host, interval=interval, now=loaded_at,
                  progress=lambda line: print(line, flush=True))
    print(f"pages: loaded {counts['hosts']} hosts, {counts['snapshots']} snapshots "
          f"({counts['document_bytes'] / 1e9:.2f} GB compressed documents) in {time.monotonic() - started:.0f} s")
    marker.write_text(json.dumps({"env": env, "credentials": credentials, "loaded_at": loaded_at.isoformat()}))
    return _as_loaded(env, loaded_at.isoformat()), credentials


def create_database(url: str) -> str:
    """A new, empty database on the PostgreSQL server of *url*; returns its URL."""
    name = f"relevo_bench_pages_{int(time.time())}"
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as admin:
        admin.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    return url.rsplit("/", 1)[0] + "/" + name


def drop_database(url: str) -> None:
    """Drop the database *url* names, connected to its server's maintenance database."""
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True, connect_timeout=10) as admin:
        admin.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            psycopg.sql.Identifier(url.rsplit("/", 1)[1])))


def _drop_saved_database(marker: Path) -> None:
    """Drop the PostgreSQL database a kept run left behind (SQLite's file goes with its folder)."""
    url = json.loads(marker.read_text())["env"].get("DATABASE_URL")
    if url:
        drop_database(url)
    marker.unlink()


def _as_loaded(env: dict, loaded_at: str | None) -> dict:
    """The server's env with the status thresholds moved by the data's age, so statuses stay as loaded.

    The loader makes 80% of the hosts online, 15% offline and 5% stale as of
    the load; timed an hour later, every host would be offline.
    """
    if not loaded_at:
        return env
    age = int((dt.datetime.now(dt.timezone.utc) - dt.datetime.fromisoformat(loaded_at)).total_seconds())
    return {**env, "INVENTORY_OFFLINE_AFTER": f"{30 * 60 + age}s", "INVENTORY_STALE_AFTER": f"{7 * 86_400 + age}s"}


def sign_in(url: str, password: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{url}/accounts/login/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = session.post(f"{url}/accounts/login/", timeout=30, allow_redirects=False,
                            data={"username": "admin", "password": password, "csrfmiddlewaretoken": token, "next": "/"})
    assert response.status_code == 302, f"sign-in failed: {response.status_code}"
    return session


def timed(session: requests.Session, urls: list[str], headers: dict[str, str] | None = None) -> list[float]:
    times = []
    for url in urls:
        started = time.perf_counter()
        response = session.get(url, timeout=60, headers=headers)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}")
        times.append(elapsed)
    return times


def report(name: str, times: list[float]) -> None:
    """Two figure lines, p50 and p99, against issue 18's fleet targets (150 and 500 ms)."""
    key = "pages." + re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    for label, fraction, target in (("p50", 0.5, TARGET_P50_MS), ("p99", 0.99, TARGET_P99_MS)):
        value = common.percentile(times, fraction)
        common.report(f"{key}.{label}", value, "ms", target=f"<= {target} ms", ok=value <= target)


def page_kinds(n: int, pks: list[int]) -> list[tuple[str, list[str], bool]]:
    """(name, paths, is_api) of every page kind timed: the hosts page with each filter and each sort, and the rest."""
    from reports.host_table import COLUMNS  # Django is set up by now (prepare)

    few = max(10, n // 4)
    week = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=7)).strftime("%Y-%m-%dT%H:%M")
    kinds = [
        ("hosts page", ["/"] * n, False),
        ("hosts page, page 100", ["/?page=100"] * few, False),
        ("hosts page, status online", ["/?status=online"] * few, False),
        ("hosts page, status offline", ["/?status=offline"] * few, False),
        ("hosts page, status stale", ["/?status=stale"] * few, False),
        ("hosts page, os Linux", ["/?os=Linux"] * few, False),
        ("hosts page, os Windows", ["/?os=Windows"] * few, False),
        ("hosts page, search web-00", ["/?q=web-00"] * few, False),
        ("hosts page, search 10.0.1", ["/?q=10.0.1"] * few, False),
        ("hosts page, search nothing", ["/?q=no-such-host"] * few, False),
        ("hosts page, search + filters", ["/?q=web-00&os=Linux&status=online"] * few, False),
    ]
    for field in (column.key for column in COLUMNS if column.sortable):
        for sort, label in ((field, field), (f"-{field}", f"{field} desc")):
            kinds.append((f"hosts page, sort {label}", [f"/?sort={sort}"] * few, False))
    kinds += [
        ("hosts page, status online, sort process_count desc", ["/?status=online&sort=-process_count"] * few, False),
        ("host page", [f"/hosts/{pk}/" for pk in pks], False),
        ("host page, parent/child view", [f"/hosts/{pk}/?tree=on" for pk in pks[: n // 2]], False),
        ("changes page", [f"/hosts/{pk}/changes/" for pk in pks[: n // 2]], False),
        ("process search postgres", ["/processes/?q=postgres"] * few, False),
        ("process search no match", ["/processes/?q=no-such-process"] * few, False),
        # Issue 18 item 5: which hosts ran X in the last 7 days (the process history; "since" alone runs to now).
        ("process search postgres, 7 days", [f"/processes/?q=postgres&since={week}"] * few, False),
        ("process search cmdline autovacuum, 7 days",
         [f"/processes/?q=autovacuum&match=cmdline&since={week}"] * few, False),
        ("process search xmrig, 7 days", [f"/processes/?q=xmrig&since={week}"] * few, False),
        ("api processes postgres, 7 days", [f"/api/processes/?name=postgres&match=name&since={week}Z"] * few, True),
        ("api hosts", ["/api/hosts/"] * n, True),
        ("api hosts, status online", ["/api/hosts/?status=online"] * few, True),
        ("api hosts, os Linux, search web-00", ["/api/hosts/?os=Linux&search=web-00"] * few, True),
        ("api hosts, ordering last_seen desc", ["/api/hosts/?ordering=-last_seen"] * few, True),
        ("api hosts, ordering process_count", ["/api/hosts/?ordering=process_count"] * few, True),
        ("admin host changelist", ["/admin/reports/host/"] * few, False),
        ("admin snapshot changelist", ["/admin/reports/snapshot/"] * few, False),
    ]
    return kinds


def run(args: argparse.Namespace, base: Path, env: dict, credentials: dict, *, per_host: int,
        interval: dt.timedelta) -> None:
    """Start gunicorn on the loaded fleet and time every page kind (or those --only names)."""
    server = live.start(base, workers=args.workers, prepared=(env, credentials), timeout=60)
    try:
        url = server.url
        session = sign_in(url, credentials["admin_password"])
        api = {"Authorization": f"Token {credentials['reader_token']}"}
        rng = random.Random(7)
        pks = [rng.randint(1, args.hosts) for _ in range(args.requests)]
        timed(session, [f"{url}/"] * 10 + [f"{url}/hosts/{pks[0]}/"] * 10)  # warm both workers
        print(f"pages: {args.hosts} hosts x {per_host} snapshots ({interval} apart) on "
              f"{'PostgreSQL' if env.get('DATABASE_URL') else 'SQLite'}, {args.workers} gunicorn "
              f"workers, sequential requests on one signed-in session")
        for name, paths, is_api in page_kinds(args.requests, pks):
            if args.only and args.only not in name:
                continue
            report(name, timed(session, [url + path for path in paths], api if is_api else None))
    finally:
        server.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--per-host", type=int, default=30, help="snapshots per host, 30 minutes apart")
    parser.add_argument("--days", type=int, default=0,
                        help="instead of --per-host: one snapshot a day for this many days (issue 18's fleet)")
    parser.add_argument("--requests", type=int, default=200, help="requests per page kind (a quarter for most)")
    parser.add_argument("--only", default="", help="time only the page kinds whose name contains this")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--database-url", default="",
                        help="a PostgreSQL server: load into a new database made there (dropped at the end)")
    parser.add_argument("--keep", action="store_true",
                        help="with --database-url: keep the loaded database for the next run")
    args = parser.parse_args(argv)
    print(common.machine_line())

    per_host, interval, suffix = args.per_host, dt.timedelta(minutes=30), ""
    if args.days:
        per_host, interval, suffix = args.days, dt.timedelta(days=1), "d"
    database = "-postgresql" if args.database_url else ""
    base = ROOT / "build" / f"bench-pages-{args.hosts}x{per_host}{suffix}{database}"
    if args.database_url and not live.postgres_reachable(args.database_url):
        raise SystemExit(f"pages: cannot reach {args.database_url}")
    env, credentials = prepare(base, hosts=args.hosts, per_host=per_host, fresh=args.fresh, interval=interval,
                               database_url=args.database_url)
    try:
        run(args, base, env, credentials, per_host=per_host, interval=interval)
    finally:
        if env.get("DATABASE_URL") and not args.keep:
            _drop_saved_database(base / "prepared.json")
            print(f"pages: dropped {env['DATABASE_URL']} (--keep keeps it for the next run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
