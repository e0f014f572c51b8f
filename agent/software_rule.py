"""The bounded-payload rule for the software list (docs/payload.md, "The software rule").

A host's software list is large (2,000 packages are about 200 KB of JSON) and
rarely changes, so a run sends it in full only when:

- its digest differs from the one last delivered in full, or
- the last full list was delivered 24 hours ago or more, or
- the server answered ``software_wanted`` to an earlier upload (it holds no
  list with our digest: a new server, a pruned snapshot, a lost state file),
- or the agent has no record of a delivery (first run, unreadable state).

Otherwise the snapshot carries ``software: null`` with ``software_digest`` and
``software_count``. The state changes only on a delivery the server
acknowledged, so a spooled or rejected snapshot never counts as sent.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Mapping

from .state import SoftwareState, software_state_load, software_state_save

FULL_LIST_EVERY = timedelta(hours=24)


def software_trim(snapshot: dict[str, Any], *, state: SoftwareState, now: datetime) -> bool:
    """Drop the full software list from ``snapshot`` unless the rule says send it; True if it stays."""
    digest = snapshot.get("software_digest")
    if snapshot.get("software") is None or digest is None:
        return False  # nothing collected: nothing to send or to trim
    due = state.sent_at is None or now - state.sent_at >= FULL_LIST_EVERY or now < state.sent_at
    if state.wanted or due or state.digest != digest:
        return True
    snapshot["software"] = None
    return False


def software_delivered(state_dir: Path, *, snapshot: Mapping[str, Any], sent_full: bool,
                       answer: Mapping[str, Any], now: datetime) -> None:
    """Update the kept state after the server acknowledged ``snapshot`` with ``answer``."""
    state = software_state_load(state_dir)
    wanted = bool(answer.get("software_wanted"))
    if sent_full:
        new = SoftwareState(digest=snapshot["software_digest"], sent_at=now, wanted=wanted)
    elif wanted and not state.wanted:
        new = replace(state, wanted=True)
    else:
        return  # the usual 5-minute run: nothing changes, nothing is written
    software_state_save(state_dir, new)
