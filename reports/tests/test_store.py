"""The day-file store: format, O(1) appends, locking, repair and path safety (real files)."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest

from reports import addresses, store

DAY = dt.date(2026, 11, 27)
IP = addresses.parse_ip("10.0.0.5")


def doc(n: int, size: int = 40) -> bytes:
    return json.dumps({"n": n, "pad": "x" * size}, separators=(",", ":")).encode()


def read_day(ip, day) -> bytes | None:
    """The whole day file through the store's reader (which repairs a torn tail first), or None."""
    stream = store.open_day(ip, day)
    return None if stream is None else stream.read()


def append(ip, day, document: bytes) -> store.Appended:
    with store.locked_for_append(ip, day) as writer:
        return writer.append(document)


def test_file_name_is_ip_and_day_and_round_trips():
    assert store.file_name(IP, DAY) == "10.0.0.5_2026-11-27.json"
    v6 = addresses.parse_ip("2001:db8::1")
    assert store.file_name(v6, DAY) == "2001-db8--1_2026-11-27.json"
    assert store.parse_file_name("2001-db8--1_2026-11-27.json") == (v6, DAY)
    assert store.parse_file_name("10.0.0.5_2026-11-27.json") == (IP, DAY)
    for other in ["relevo.sqlite3", "10.0.0.5_2026-13-01.json", "010.0.0.5_2026-11-27.json", "../x_2026-11-27.json"]:
        assert store.parse_file_name(other) is None


def test_appends_keep_a_json_array_in_order_with_exact_offsets(data_dir):
    placed = [append(IP, DAY, doc(n)) for n in range(5)]
    raw = (data_dir / "10.0.0.5_2026-11-27.json").read_bytes()
    assert [item["n"] for item in json.loads(raw)] == [0, 1, 2, 3, 4]
    for n, where in enumerate(placed):
        assert raw[where.offset:where.offset + where.length] == doc(n)
        assert store.read_document(where.file_name, where.offset, where.length) == doc(n)
    assert read_day(IP, DAY) == raw


def test_an_append_writes_only_the_new_document(data_dir):
    """O(one snapshot): the bytes before the old closing bracket are never touched."""
    append(IP, DAY, doc(0, 5000))
    path = data_dir / "10.0.0.5_2026-11-27.json"
    before = path.read_bytes()
    append(IP, DAY, doc(1, 10))
    after = path.read_bytes()
    assert after[: len(before) - 2] == before[:-2]
    assert len(after) - len(before) == len(b"," + doc(1, 10) + b"\n")


def test_undo_takes_back_the_last_append(data_dir):
    append(IP, DAY, doc(0))
    path = data_dir / "10.0.0.5_2026-11-27.json"
    before = path.read_bytes()
    with store.locked_for_append(IP, DAY) as writer:
        writer.undo(writer.append(doc(1)))
    assert path.read_bytes() == before


def test_undo_of_the_first_append_removes_the_file(data_dir):
    with store.locked_for_append(IP, DAY) as writer:
        writer.undo(writer.append(doc(0)))
    assert os.listdir(data_dir) == []


def test_reading_a_missing_day_gives_none_and_creates_nothing(data_dir):
    assert read_day(IP, DAY) is None
    assert os.listdir(data_dir) == []


def _torn_copies(data_dir):
    """A file with two documents, then every way a third append can be cut short."""
    append(IP, DAY, doc(0))
    append(IP, DAY, doc(1))
    path = data_dir / "10.0.0.5_2026-11-27.json"
    whole = path.read_bytes()
    third = b"," + doc(2) + store.CLOSE_TAIL
    for cut in range(len(third) + 1):
        yield path, whole[:-2] + third[:cut] + whole[len(whole) - 2 + cut:], cut == len(third)


def test_a_write_cut_at_any_byte_is_repaired_on_the_next_read(data_dir):
    for path, torn, complete in _torn_copies(data_dir):
        path.write_bytes(torn)
        items = json.loads(read_day(IP, DAY))
        assert [item["n"] for item in items][:2] == [0, 1]
        assert len(items) in (2, 3)
        if complete:
            assert len(items) == 3
        assert json.loads(path.read_bytes()) == items


def test_a_write_cut_at_any_byte_is_repaired_before_the_next_append(data_dir):
    for path, torn, _ in _torn_copies(data_dir):
        path.write_bytes(torn)
        append(IP, DAY, doc(9))
        items = [item["n"] for item in json.loads(path.read_bytes())]
        assert items[:2] == [0, 1] and items[-1] == 9


def test_garbage_after_the_last_document_is_cut(data_dir):
    append(IP, DAY, doc(0))
    path = data_dir / "10.0.0.5_2026-11-27.json"
    path.write_bytes(path.read_bytes()[:-2] + b",{\"n\":1,\"pad\x00\x00\x00\x00")
    assert [item["n"] for item in json.loads(read_day(IP, DAY))] == [0]


def test_a_file_with_no_complete_document_is_removed(data_dir):
    path = data_dir / "10.0.0.5_2026-11-27.json"
    path.write_bytes(b"[\n{\"n\":0,")
    assert read_day(IP, DAY) is None
    assert not path.exists()
    path.write_bytes(b"")
    append(IP, DAY, doc(3))
    assert json.loads(path.read_bytes()) == [json.loads(doc(3))]


def test_a_symlink_in_place_of_a_day_file_is_never_followed(data_dir, tmp_path):
    target = tmp_path / "outside.json"
    target.write_bytes(b"[\n{}\n]\n")
    (data_dir / "10.0.0.5_2026-11-27.json").symlink_to(target)
    with pytest.raises(store.StoreError):
        append(IP, DAY, doc(0))
    with pytest.raises(store.StoreError):
        read_day(IP, DAY)
    assert target.read_bytes() == b"[\n{}\n]\n"


def test_read_document_refuses_names_that_are_not_day_files(data_dir, tmp_path):
    (tmp_path / "secret.txt").write_text("{secret}")
    assert store.read_document("../secret.txt", 0, 8) is None
    assert store.read_document("secret.txt", 0, 8) is None


def test_documents_gives_offsets_for_rebuilds(data_dir):
    placed = [append(IP, DAY, doc(n)) for n in range(3)]
    with store.locked_for_append(IP, DAY) as writer:
        assert list(writer.documents()) == [(p.offset, doc(n)) for n, p in enumerate(placed)]
    assert [(ip, day) for ip, day, _ in store.iter_day_files()] == [(IP, DAY)]


def test_concurrent_appenders_in_processes_lose_nothing(data_dir):
    """Eight processes append 50 documents each to one file under the lock."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(str(data_dir), w, 50)) for w in range(8)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    items = json.loads((data_dir / "10.0.0.5_2026-11-27.json").read_bytes())
    assert len(items) == 400
    assert sorted((i["w"], i["n"]) for i in items) == [(w, n) for w in range(8) for n in range(50)]
    for w in range(8):  # each writer's documents stay in its own order
        assert [i["n"] for i in items if i["w"] == w] == list(range(50))


def _append_many(folder: str, writer_id: int, count: int) -> None:
    from django.conf import settings

    settings.INVENTORY_DATA_DIR = folder
    for n in range(count):
        append(IP, DAY, json.dumps({"w": writer_id, "n": n}, separators=(",", ":")).encode())


def test_kill_9_during_appends_loses_no_acknowledged_document(data_dir):
    """A writer process is SIGKILLed at random moments, 15 times; every append it
    reported as done is in the file, in order, and the file always parses."""
    import multiprocessing
    import random
    import signal
    import time

    ctx = multiprocessing.get_context("fork")
    acknowledged: list[int] = []
    path = data_dir / "10.0.0.5_2026-11-27.json"
    for round_ in range(15):
        reader, writer_end = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_append_and_report, args=(str(data_dir), round_, writer_end))
        proc.start()
        writer_end.close()
        time.sleep(random.uniform(0.02, 0.15))
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        while reader.poll():
            try:
                acknowledged.append(reader.recv())
            except EOFError:
                break
        items = [item["k"] for item in json.loads(read_day(IP, DAY) or b"[]")]
        assert json.loads(path.read_bytes()) is not None
        missing = set(acknowledged) - set(items)
        assert not missing, f"acknowledged documents lost after kill -9: {sorted(missing)[:5]}"
        assert len(items) == len(set(items))
    assert len(acknowledged) > 15


def _append_and_report(folder: str, round_: int, conn) -> None:
    from django.conf import settings

    settings.INVENTORY_DATA_DIR = folder
    n = 0
    while True:
        key = round_ * 1_000_000 + n
        append(IP, DAY, json.dumps({"k": key, "pad": "y" * 20_000}, separators=(",", ":")).encode())
        conn.send(key)
        n += 1


# --- a full file system (a real 48 MB tmpfs) ---------------------------------------------

def test_an_append_that_meets_a_full_disk_is_cut_back_and_nothing_else_changes(small_filesystem, settings):
    settings.INVENTORY_DATA_DIR = small_filesystem.path / "data"
    first = append(IP, DAY, doc(1))
    before = (small_filesystem.path / "data" / first.file_name).read_bytes()
    small_filesystem.fill(leave=8192)  # room for part of the next document: a partial write
    with pytest.raises(store.StorageFull):
        append(IP, DAY, doc(2, size=256 * 1024))
    assert (small_filesystem.path / "data" / first.file_name).read_bytes() == before
    assert json.loads(read_day(IP, DAY)) == [json.loads(doc(1))]

    other = addresses.parse_ip("10.0.0.6")
    with pytest.raises(store.StorageFull):
        append(other, DAY, doc(3, size=256 * 1024))
    assert read_day(other, DAY) is None
    assert sorted(os.listdir(small_filesystem.path / "data")) == [first.file_name]

    small_filesystem.free()
    append(IP, DAY, doc(4, size=256 * 1024))
    assert [d["n"] for d in json.loads(read_day(IP, DAY))] == [1, 4]


def test_free_bytes_is_the_file_systems_free_space(small_filesystem, settings):
    settings.INVENTORY_DATA_DIR = small_filesystem.path
    assert 40 * 2**20 < store.free_bytes() <= 48 * 2**20
    small_filesystem.fill()
    assert store.free_bytes() < 64 * 1024


# --- streaming a day file (for /query and the download) ---

def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_day_file_streams_in_bounded_chunks_and_equals_the_file(data_dir):
    for n in range(12):
        append(IP, DAY, doc(n, 100_000))
    raw = (data_dir / "10.0.0.5_2026-11-27.json").read_bytes()
    stream = store.open_day(IP, DAY)
    chunks = list(stream)
    assert b"".join(chunks) == raw and len(stream) == len(raw)
    assert len(chunks) > 4 and max(map(len, chunks)) <= store.STREAM_CHUNK


def test_a_stream_is_the_array_as_it_was_opened_while_writers_carry_on(data_dir):
    """Opened before an append, a retention rewrite and an undo, it still yields the old, whole array."""
    for n in range(3):
        append(IP, DAY, doc(n, 300_000))
    stream = store.open_day(IP, DAY).framed(b'{"s":', b"}")
    with store.locked_for_append(IP, DAY) as writer:  # the shared lock is not held by an open stream
        undone = writer.append(doc(99))
        writer.undo(undone)
        writer.append(doc(3))
    assert [d["n"] for d in json.loads(stream.read())["s"]] == [0, 1, 2]
    rewritten = store.open_day(IP, DAY)
    with store.locked_for_append(IP, DAY) as writer:
        writer.replace_all([doc(7)])
    assert [d["n"] for d in json.loads(rewritten.read())] == [0, 1, 2, 3]
    assert [d["n"] for d in json.loads(read_day(IP, DAY))] == [7]


def test_a_stream_closes_its_file_when_closed_unread_or_read_to_the_end(data_dir):
    append(IP, DAY, doc(0))
    before = _open_fds()
    unread = store.open_day(IP, DAY)
    assert _open_fds() == before + 1
    unread.close()
    assert _open_fds() == before
    store.open_day(IP, DAY).read()
    assert _open_fds() == before
    framed_away = store.open_day(IP, DAY)
    framed_away.framed(b"", b"").close()  # the framed copy owns the descriptor now
    framed_away.close()
    assert _open_fds() == before


def test_opening_a_torn_day_file_repairs_it_first(data_dir):
    append(IP, DAY, doc(0))
    append(IP, DAY, doc(1))
    path = data_dir / "10.0.0.5_2026-11-27.json"
    path.write_bytes(path.read_bytes()[:-7])  # a crash in the middle of the second document
    assert [d["n"] for d in json.loads(store.open_day(IP, DAY).read())] == [0]
