"""Reading the small text files of ``/proc``, ``/sys`` and ``/etc`` that collectors parse.

A leaf module (it imports nothing of the agent's), so that ``collector`` and
``inventory`` (which ``collector`` imports) share one rule without an import
cycle: a file that cannot be read is ``None``, never an error, because a
collector keeps what it can read.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def read_text(path: Path) -> str | None:
    """The file's text (undecodable bytes replaced), or ``None`` when it cannot be read.

    Some files are readable by root only (DMI's ``product_serial`` and
    ``product_uuid``), so a failure is logged at debug, not as a warning.
    """
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        log.debug("cannot read %s: %s", path, exc)
        return None
