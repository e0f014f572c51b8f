"""The digest a row keeps of a text it would otherwise have to read back to compare.

Three host-side columns are keyed or compared this way: the process history's
text key (``ProcessText.digest``), ``Host.process_index_digest`` and
``Host.search_digest``. An upload compares digests instead of reading tens of
kilobytes back, so all three must agree on one rule: blake2b with a 16-byte
digest (fast in CPython, and 128 bits makes an accidental collision out of
reach for any fleet), over UTF-8 with ``surrogatepass`` so that any text a
payload can carry encodes, as hex (32 characters, the columns' width).
Migration 0013 keeps its own frozen copy of this rule, as migrations do.
"""

from __future__ import annotations

import hashlib


def text_digest(text: str) -> str:
    """blake2b-128 of *text*, hex: the one rule the digest columns share."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
