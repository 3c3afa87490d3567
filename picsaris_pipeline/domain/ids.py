"""Time-sortable identifiers (ULID layout: 48-bit millisecond time + 80 random bits, Crockford base32).

Photo ids sort by upload time, which the bucket sensor and range runs rely on.
"""

from __future__ import annotations

import os
import re
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


def new_id(now_ms: int | None = None) -> str:
    """Return a new 26-character ULID; ids minted later sort after earlier ones (ms resolution)."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def is_valid_id(value: str) -> bool:
    return bool(_ID_RE.match(value))


def id_timestamp_ms(value: str) -> int:
    """The millisecond timestamp encoded in an id."""
    number = 0
    for char in value[:10]:
        number = number * 32 + _ALPHABET.index(char)
    return number
