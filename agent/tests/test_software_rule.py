"""The software rule: full list on change, once a day, or when the server asks; digest otherwise."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from agent.software_rule import software_delivered, software_trim
from agent.state import SOFTWARE_STATE_FILE, SoftwareState, software_state_load, software_state_save

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)
LIST = [{"name": "openssl", "version": "3.0.11", "vendor": None, "arch": "amd64", "source": "deb",
         "install_date": None}]


def _snapshot(digest="d" * 64):
    return {"software": list(LIST), "software_digest": digest, "software_count": 1}


def test_first_run_sends_the_full_list():
    snapshot = _snapshot()
    assert software_trim(snapshot, state=SoftwareState(), now=NOW) is True
    assert snapshot["software"] == LIST


def test_unchanged_list_within_a_day_sends_only_the_digest():
    snapshot = _snapshot()
    state = SoftwareState(digest="d" * 64, sent_at=NOW - timedelta(hours=23, minutes=59))
    assert software_trim(snapshot, state=state, now=NOW) is False
    assert snapshot == {"software": None, "software_digest": "d" * 64, "software_count": 1}


def test_full_list_again_after_a_day_on_change_on_request_or_clock_going_back():
    day_old = SoftwareState(digest="d" * 64, sent_at=NOW - timedelta(hours=24))
    changed = SoftwareState(digest="e" * 64, sent_at=NOW - timedelta(minutes=5))
    wanted = SoftwareState(digest="d" * 64, sent_at=NOW - timedelta(minutes=5), wanted=True)
    future = SoftwareState(digest="d" * 64, sent_at=NOW + timedelta(hours=1))
    for state in (day_old, changed, wanted, future):
        snapshot = _snapshot()
        assert software_trim(snapshot, state=state, now=NOW) is True, state
        assert snapshot["software"] == LIST


def test_nothing_collected_is_left_alone():
    snapshot = {"software": None, "software_digest": None, "software_count": None}
    assert software_trim(snapshot, state=SoftwareState(), now=NOW) is False
    assert snapshot["software"] is None


def test_delivery_of_a_full_list_is_kept_and_a_request_is_remembered(tmp_path):
    software_delivered(tmp_path, snapshot=_snapshot(), sent_full=True, answer={"software_wanted": False}, now=NOW)
    assert software_state_load(tmp_path) == SoftwareState(digest="d" * 64, sent_at=NOW, wanted=False)

    software_delivered(tmp_path, snapshot=_snapshot(), sent_full=False, answer={"software_wanted": True}, now=NOW)
    state = software_state_load(tmp_path)
    assert state.wanted is True

    snapshot = _snapshot()
    assert software_trim(snapshot, state=state, now=NOW + timedelta(minutes=5)) is True
    software_delivered(tmp_path, snapshot=snapshot, sent_full=True, answer={}, now=NOW + timedelta(minutes=5))
    assert software_state_load(tmp_path).wanted is False


def test_the_usual_run_writes_nothing(tmp_path):
    software_state_save(tmp_path, SoftwareState(digest="d" * 64, sent_at=NOW))
    path = tmp_path / SOFTWARE_STATE_FILE
    before = path.stat().st_mtime_ns
    software_delivered(tmp_path, snapshot=_snapshot(), sent_full=False, answer={"software_wanted": False}, now=NOW)
    assert path.stat().st_mtime_ns == before


def test_a_torn_state_file_means_a_full_list(tmp_path, caplog):
    for text in ("{not json", '{"digest": 5}', '{"sent_at": "2026-11-29T12:00:00"}', "[]"):
        (tmp_path / SOFTWARE_STATE_FILE).write_text(text)
        assert software_state_load(tmp_path) == SoftwareState(), text
    assert "unreadable" in caplog.text
