"""The benchmark's own parts: real payloads, and a load generator that really spreads over hosts.

If these were wrong the benchmark figures would be wrong without anyone
noticing, so they get tests of their own against a real gunicorn.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
import uuid
import sys
from pathlib import Path

import pytest

from bench.loadgen import run_load, source_address
from bench.payloads import UploadTemplate, collect_snapshot
from relevo_testing.prerequisites import require
from reports import payload as payload_schema


def test_upload_template_gives_distinct_valid_400_process_snapshots_of_this_machine():
    snapshot = collect_snapshot()
    template = UploadTemplate(snapshot, host_id="bench-host-x")
    now = dt.datetime.now(dt.timezone.utc)
    first, second = (payload_schema.decode(template.body(), now=now) for _ in range(2))
    assert len(first.processes) == 400 and first.host.id == "bench-host-x"
    assert first.snapshot_id != second.snapshot_id
    assert abs((first.collected_at - now).total_seconds()) < 60
    assert len({process.pid for process in first.processes}) == 400, "padding must not repeat pids"


def test_source_addresses_are_distinct_loopback_addresses():
    addresses = [source_address(i) for i in range(600)]
    assert len(set(addresses)) == 600
    assert all(address.startswith("127.") for address in addresses)


@pytest.mark.slow
def test_the_load_generator_writes_one_day_file_per_connection(live_relevo):
    port = int(live_relevo.url.rsplit(":", 1)[1])
    result = run_load(port=port, token=live_relevo.agent_token, snapshot=collect_snapshot(), connections=3,
                      count=30, duration=60)
    assert result["errors"] == 0 and result["statuses"] == {"201": 30}
    assert len(result["latencies"]) == 30
    files = sorted(live_relevo.data_dir.glob("127.0.1.*_*.json"))
    assert [path.name.split("_")[0] for path in files] == ["127.0.1.1", "127.0.1.2", "127.0.1.3"]
    assert sum(len(json.loads(path.read_bytes())) for path in files) == 30


def test_run_all_reads_figures_in_both_forms_and_ignores_prose():
    from bench import run_all

    figure = run_all.LINE.match("ingest.uploads_per_s: 196.972 uploads/s  [target >= 300, MISSED]")
    assert figure["name"] == "ingest.uploads_per_s" and float(figure["value"]) == 196.972
    assert (figure["unit"], figure["target"], figure["verdict"]) == ("uploads/s", ">= 300", "MISSED")
    other = run_all.LINE.match("agent peak RSS: 32.7 MB (target <= 40 MB)")
    assert (other["name"], other["value"], other["unit"], other["target"]) == ("agent peak RSS", "32.7", "MB", "<= 40 MB")
    assert run_all.LINE.match("machine: 2 cores, 24 GiB, Intel Xeon; load average 1.70") is None
    assert run_all.LINE.match("query.latest: 400 requests, 0 errors, median body 122943 bytes") is None


def test_run_all_finds_every_benchmark_script_but_not_the_helpers():
    from bench import run_all

    names = [name for name, _, _ in run_all.all_scripts()]
    assert names[:3] == ["ingest.py", "dayfile.py", "query.py"]
    assert not set(names) & run_all.HELPERS
    assert all((run_all.BENCH / name).exists() for name in names if name not in ("agent.py", "pages.py"))
    assert not set(names) & set(run_all.BY_HAND)


def test_every_script_run_all_runs_needs_no_argument():
    """``make bench`` runs each script with no arguments: one that requires some fails the whole run.

    (bench/outage.py requires its scenario and restarts PostgreSQL; run_all
    once picked it up and ``make bench`` exited 1 on its usage error.)
    """
    from bench import run_all

    for name, _, _ in run_all.all_scripts():
        path = run_all.BENCH / name
        if not path.exists():
            continue
        source = path.read_text()
        if "argparse" not in source:  # no parser: it can only require arguments through sys.argv
            assert "sys.argv[" not in source, name
            continue
        result = subprocess.run([sys.executable, str(path), "--help"], cwd=run_all.ROOT,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{name} --help: {result.stderr[-500:]}"
        usage = " ".join(result.stdout.split("\n\n")[0].split())
        while "[" in usage:  # drop the optional groups, innermost first
            usage = re.sub(r"\[[^\[\]]*\]", "", usage)
        assert usage.split() == ["usage:", path.name], f"{name} requires arguments: {usage!r}"


@pytest.mark.slow
def test_upload_cost_counts_the_same_instructions_for_the_same_snapshot(tmp_path):
    """The instruction count is the figure that tells code changes apart on a noisy machine: it must repeat."""
    from bench import run_all

    require(shutil.which("valgrind") is not None and shutil.which("callgrind_control") is not None,
            "valgrind is not installed (apt-get install valgrind)")
    snapshot = tmp_path / "snapshot.json"
    snapshot.write_text(json.dumps(collect_snapshot()))
    counts = []
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "bench/upload_cost.py", "--uploads", "5", "--counted", "3", "--snapshot", str(snapshot)],
            cwd=Path(run_all.ROOT), capture_output=True, text=True, timeout=600,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        figures = {m["name"]: float(m["value"]) for m in map(run_all.LINE.match, result.stdout.splitlines()) if m}
        assert figures["upload_cost.cpu_per_upload"] > 0
        counts.append(figures["upload_cost.instructions_per_upload"])
    # A 400-process upload is millions of instructions (decoding alone is about 3 M), not a stub's few thousand.
    assert all(2 < count < 200 for count in counts), counts
    assert abs(counts[0] - counts[1]) / counts[0] < 0.02, counts


@pytest.mark.django_db
def test_the_loader_fills_host_rows_as_ingest_would():
    """bench/loader.py skips ingest; its host columns must still be what ingest derives (no drift)."""
    from bench import loader
    from reports import addresses, services
    from reports.models import Host

    loader.load(hosts=4, snapshots_per_host=2, progress=lambda _: None)
    hosts = list(Host.objects.select_related("latest_snapshot"))
    assert len(hosts) == 4
    for host in hosts:
        payload = payload_schema.decode_stored(host.latest_snapshot.document_bytes).payload
        expected = services.host_columns(payload, addresses.parse_ip(host.last_ip))
        assert {name: getattr(host, name) for name in expected} == expected
        assert host.os_version == host.latest_snapshot.os_version != ""


@pytest.mark.django_db
def test_the_loader_writes_a_daily_series_whose_rows_read_back_as_the_orm_would_write_them():
    """The fleet loader inserts snapshot rows with its own SQL: every value must read back typed, the newest linked."""
    from bench import loader
    from reports.models import Host, Snapshot

    now = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.timezone.utc)
    counts = loader.load(hosts=3, snapshots_per_host=4, interval=dt.timedelta(days=1), now=now,
                         progress=lambda _: None)
    assert (counts["hosts"], counts["snapshots"]) == (3, 12)
    for host in Host.objects.all():
        series = list(Snapshot.objects.filter(host=host).order_by("collected_at"))
        assert len(series) == 4 and len({snapshot.day for snapshot in series}) == 4
        assert [b.collected_at - a.collected_at for a, b in zip(series, series[1:])] == [dt.timedelta(days=1)] * 3
        assert host.latest_snapshot_id == series[-1].pk and series[-1].collected_at == host.last_seen
        newest = payload_schema.decode_stored(series[-1].document_bytes)
        assert str(newest.payload.snapshot_id) == str(series[-1].snapshot_id)
        assert all(isinstance(s.snapshot_id, uuid.UUID) and s.file_name == f"{s.ip}_{s.day.isoformat()}.json"
                   for s in series)
        assert payload_schema.decode_stored(series[0].document_bytes).payload.processes  # a pooled document
