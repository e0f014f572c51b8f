"""Property tests of the day-file store: whatever happens, the file parses and keeps what was acknowledged.

A crash is modelled as "only the first k bytes of a write reached the file":
the appended bytes overwrite the old tail in place, so the file after a crash
at byte k of an append is ``after[:at + k] + before[at + k:]``, where ``at``
is where the write started. The real append produces ``after``; the test then
puts the crash image on disk, as a killed process would leave it, and the
next real operation (append or read) has to cope.

A document whose every byte landed before the crash (only the closing
``\n]\n`` was cut) is kept by the repair: it was fsync-able and complete, and
``services`` adopts such a tail into the database. Any shorter cut must
vanish without trace.
"""

from __future__ import annotations

import datetime as dt
import json
import os

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from reports import addresses, store

IP = addresses.parse_ip("192.0.2.10")
DAY = dt.date(2026, 11, 27)

# Padding that looks like the file's own structure, to trip a naive repair.
PAD = st.text(alphabet=st.sampled_from(list('ab ,[]{}"\\\n\u00e9\u2028x')), max_size=40)


def _document(number: int, pad: str) -> bytes:
    return msgspec.json.encode({"n": number, "pad": pad})


def _acknowledged_append(document: bytes) -> store.Appended:
    with store.locked_for_append(IP, DAY) as writer:
        return writer.append(document)


def _crash_during_append(document: bytes, fraction: float) -> bool:
    """Append for real, then leave the file as if the process died after k bytes of the write.

    Returns whether the whole document landed (and so must survive the repair).
    """
    path = store.day_path(IP, DAY)
    before = path.read_bytes() if path.exists() else b""
    appended = _acknowledged_append(document)
    after = path.read_bytes()
    start = max(0, appended.previous_size - 2) if appended.previous_size else 0
    written = len(after) - start
    k = min(written - 1, int(fraction * written))  # strictly less than the whole write
    image = after[: start + k] + before[start + k:]
    with open(path, "wb") as handle:  # the test plays the dying process
        handle.write(image)
    return start + k >= appended.offset + appended.length


def _stored_numbers() -> list[int]:
    stream = store.open_day(IP, DAY)  # the store's reader: it repairs a torn tail first
    if stream is None:
        return []
    return [item["n"] for item in json.loads(stream.read())]


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), PAD),
        st.tuples(st.just("crash"), PAD, st.floats(min_value=0, max_value=1)),
        st.tuples(st.just("read")),
    ),
    max_size=25,
)


@pytest.fixture
def fast_store(settings):
    # fsync changes what survives a power cut, not what a process sees; the property is about the latter.
    settings.INVENTORY_FSYNC = False


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_any_sequence_of_appends_crashes_and_reads_keeps_every_acknowledged_document_once_in_order(
    data_dir, fast_store, ops
):
    store.day_path(IP, DAY).unlink(missing_ok=True)
    acknowledged: list[int] = []
    for number, op in enumerate(ops):
        if op[0] == "append":
            _acknowledged_append(_document(number, op[1]))
            acknowledged.append(number)
        elif op[0] == "crash":
            if _crash_during_append(_document(number, op[1]), op[2]):
                acknowledged.append(number)
        assert _stored_numbers() == acknowledged  # the file parses and holds exactly these, in order
    path = store.day_path(IP, DAY)
    if acknowledged:
        assert path.read_bytes().endswith(store.CLOSE_TAIL)
        with store.locked_for_append(IP, DAY) as writer:  # what prune and reindex read
            offsets = [offset for offset, _ in writer.documents()]
        assert offsets == sorted(offsets) and len(offsets) == len(acknowledged)


def test_a_crash_at_every_byte_offset_of_a_write_is_repaired(data_dir, fast_store):
    """Exhaustive over one write: the first, second and a later append each cut at every byte."""
    for existing in (0, 1, 3):
        first = [_document(i, "x" * i + ",]") for i in range(existing)]
        new = _document(99, 'tricky ,\\n] {"n": 5}')
        store.day_path(IP, DAY).unlink(missing_ok=True)
        for document in first:
            _acknowledged_append(document)
        before = store.day_path(IP, DAY).read_bytes() if existing else b""
        appended = _acknowledged_append(new)
        after = store.day_path(IP, DAY).read_bytes()
        start = max(0, appended.previous_size - 2) if appended.previous_size else 0
        complete_at = appended.offset + appended.length - start
        for k in range(len(after) - start):
            path = store.day_path(IP, DAY)
            with open(path, "wb") as handle:
                handle.write(after[: start + k] + before[start + k:])
            if k < complete_at:
                assert _stored_numbers() == list(range(existing)), (existing, k)
                if existing:
                    assert path.read_bytes() == before
            else:
                assert _stored_numbers() == [*range(existing), 99], (existing, k)
                assert path.read_bytes() == after
        # and the next writer appends cleanly after a repair that cut the document
        with open(store.day_path(IP, DAY), "wb") as handle:
            handle.write(after[: start + complete_at - 1] + before[start + complete_at - 1:])
        _acknowledged_append(_document(7, ""))
        assert _stored_numbers() == [*range(existing), 7]


def test_a_file_that_is_not_a_day_file_at_all_is_emptied_not_trusted(data_dir, fast_store):
    path = store.day_path(IP, DAY)
    path.write_bytes(b"garbage that is not JSON\n")
    assert store.open_day(IP, DAY) is None
    assert not os.path.exists(path)
