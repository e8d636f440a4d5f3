"""The size limit on a request's head (request line and headers): its one setting.

MAX_HEADER_BYTES is read twice from the environment: by the launcher, which refuses a bad value
before the exec and hands the checked number on in uvicorn's environment (and to h11 as its
`--h11-max-incomplete-event-size`), and by the protocol in each uvicorn worker, which enforces
it (httptools_protocol.py). Standard library only: the launcher reads it before uvicorn exists.
"""

from __future__ import annotations

from collections.abc import Mapping

MAX_HEADER_BYTES = "MAX_HEADER_BYTES"
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
# Below this no real client gets a request through: a value meant in KiB, most likely.
MIN_HEADER_BYTES = 1024


def max_header_bytes(environ: Mapping[str, str]) -> int:
    """The limit the environment sets, or the default; ValueError names a bad value."""
    raw = environ.get(MAX_HEADER_BYTES, "").strip()
    if not raw:
        return DEFAULT_MAX_HEADER_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < MIN_HEADER_BYTES:
        raise ValueError(
            f"{MAX_HEADER_BYTES} must be a number of bytes of at least {MIN_HEADER_BYTES}, "
            f"not {raw!r}"
        )
    return value
