"""The spool folder: crash-safe files, oldest first, bounded, refused snapshots set aside."""

import gzip
import logging

from agent.spool import Spool


def _body(n: int) -> bytes:
    return gzip.compress(b'{"n": %d}' % n)


def test_put_then_pending_oldest_first(tmp_path):
    spool = Spool(tmp_path / "spool")
    ids = [f"00000000-0000-0000-0000-00000000000{i}" for i in range(3)]
    for i, sid in enumerate(ids):
        spool.put(snapshot_id=sid, body_gz=_body(i))
    entries = spool.pending()
    assert [e.snapshot_id for e in entries] == ids
    assert [gzip.decompress(e.read()) for e in entries] == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}']
    # No temporary files are left behind after atomic writes.
    assert sorted(p.name for p in (tmp_path / "spool").iterdir()) == sorted(e.path.name for e in entries)


def test_remove_is_idempotent(tmp_path):
    spool = Spool(tmp_path)
    entry = spool.put(snapshot_id="a", body_gz=_body(1))
    spool.remove(entry)
    spool.remove(entry)
    assert spool.pending() == []


def test_leftover_temp_file_is_not_a_snapshot(tmp_path):
    spool = Spool(tmp_path)
    (tmp_path / ".tmp-crashed").write_bytes(b"half a snapsh")
    assert spool.pending() == []


def test_full_spool_drops_the_oldest_by_count(tmp_path, caplog):
    spool = Spool(tmp_path, max_count=3)
    with caplog.at_level(logging.WARNING, logger="agent.spool"):
        for i in range(5):
            spool.put(snapshot_id=f"id-{i}", body_gz=_body(i))
    assert [e.snapshot_id for e in spool.pending()] == ["id-2", "id-3", "id-4"]
    assert sum("spool full" in r.message for r in caplog.records) == 2


def test_full_spool_drops_the_oldest_by_bytes(tmp_path):
    big = b"x" * 1000
    spool = Spool(tmp_path, max_count=100, max_bytes=2500)
    for i in range(4):
        spool.put(snapshot_id=f"id-{i}", body_gz=big)
    assert [e.snapshot_id for e in spool.pending()] == ["id-2", "id-3"]


def test_newest_snapshot_is_kept_even_if_alone_over_the_limit(tmp_path):
    spool = Spool(tmp_path, max_bytes=10)
    spool.put(snapshot_id="old", body_gz=b"y" * 5)
    spool.put(snapshot_id="new", body_gz=b"z" * 50)
    assert [e.snapshot_id for e in spool.pending()] == ["new"]


def test_set_aside_keeps_body_and_error_out_of_the_queue(tmp_path):
    spool = Spool(tmp_path)
    entry = spool.put(snapshot_id="bad", body_gz=_body(9))
    spool.set_aside(snapshot_id="bad", body_gz=entry.read(), error="HTTP 400: processes: required", entry=entry)
    assert spool.pending() == []
    [rejected] = spool.rejected()
    assert gzip.decompress(rejected.read_bytes()) == b'{"n": 9}'
    error_file = rejected.with_name(rejected.name.replace(".json.gz", ".error.txt"))
    assert error_file.read_text() == "HTTP 400: processes: required"


def test_rejected_folder_is_bounded(tmp_path):
    spool = Spool(tmp_path)
    for i in range(25):
        spool.set_aside(snapshot_id=f"r{i}", body_gz=_body(i), error="400")
    assert len(spool.rejected()) == 20
    assert len(list((tmp_path / "rejected").glob("*.error.txt"))) == 20
